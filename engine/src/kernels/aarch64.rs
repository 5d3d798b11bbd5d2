//! aarch64 int8 GEMM kernels: plain NEON (`smull` + `sadalp`, every ARMv8-A such as the
//! Pi 4's Cortex-A72), `sdot` (ARMv8.2 dotprod: the Pi 5's Cortex-A76) and `smmla`
//! (ARMv8.6 i8mm).
//!
//! `sdot` and `smmla` are written as `asm!` because their intrinsics (`vdotq_s32`,
//! `vmmlaq_s32`) are still unstable in Rust; each is one instruction with register
//! operands only, inside a function compiled with the feature enabled.
//!
//! All three are exact for the full `[-128, 127]` range: `smull` forms i16 products
//! (|p| ≤ 2¹⁴) and `sadalp` adds them pairwise into i32 (no `smlal` into i16, which would
//! overflow on two −128·−128 products); `sdot` and `smmla` accumulate in i32.

use core::arch::aarch64::*;
use core::arch::asm;

#[allow(unused_imports)] // the driver's default `prep`
use super::{drive, no_prep};

pub(super) fn has_neon() -> bool {
    #[cfg(feature = "std")]
    {
        std::arch::is_aarch64_feature_detected!("neon")
    }
    #[cfg(not(feature = "std"))]
    {
        cfg!(target_feature = "neon")
    }
}

pub(super) fn has_sdot() -> bool {
    #[cfg(feature = "std")]
    {
        std::arch::is_aarch64_feature_detected!("neon") && std::arch::is_aarch64_feature_detected!("dotprod")
    }
    #[cfg(not(feature = "std"))]
    {
        cfg!(all(target_feature = "neon", target_feature = "dotprod"))
    }
}

pub(super) fn has_i8mm() -> bool {
    #[cfg(feature = "std")]
    {
        std::arch::is_aarch64_feature_detected!("neon") && std::arch::is_aarch64_feature_detected!("i8mm")
    }
    #[cfg(not(feature = "std"))]
    {
        cfg!(all(target_feature = "neon", target_feature = "i8mm"))
    }
}

/// Adds the scalar products of `a[i][p..k]` and `b[j][p..k]` to `out` (the K tail).
///
/// # Safety
/// Each pointer valid for `k` bytes.
#[inline(always)]
unsafe fn tail<const R: usize, const C: usize>(
    p: usize,
    k: usize,
    a: &[*const i8; R],
    b: &[*const i8; C],
    out: &mut [[i32; C]; R],
) {
    for i in 0..R {
        for j in 0..C {
            for q in p..k {
                // SAFETY: q < k, inside both rows.
                out[i][j] += unsafe { *a[i].add(q) as i32 * *b[j].add(q) as i32 };
            }
        }
    }
}

/// Plain NEON tile: 16 K values per step, `smull`/`smull2` into i16x8 and `sadalp` into
/// i32x4 (four instructions per 16 multiply-adds). Registers: R·C accumulators + R + C
/// operands (4×4: 24 of 32).
///
/// # Safety
/// NEON present; each pointer valid for `k` bytes.
#[inline(always)]
unsafe fn tile_neon<const R: usize, const C: usize>(
    k: usize,
    a: [*const i8; R],
    b: [*const i8; C],
    _prep: [i32; R],
) -> [[i32; C]; R] {
    // Opaque to LLVM, as in `tile_sdot` (the 4×4 step: 87 instructions before, 76 after).
    let (a, b) = core::hint::black_box((a, b));
    // SAFETY: loads read `[p, p + 16)` with `p + 16 ≤ k`; NEON per the contract.
    unsafe {
        let mut acc = [[vdupq_n_s32(0); C]; R];
        let mut p = 0;
        while p + 16 <= k {
            let mut bv = [vdupq_n_s8(0); C];
            for j in 0..C {
                bv[j] = vld1q_s8(b[j].add(p));
            }
            for i in 0..R {
                let av = vld1q_s8(a[i].add(p));
                for j in 0..C {
                    let lo = vmull_s8(vget_low_s8(av), vget_low_s8(bv[j]));
                    let hi = vmull_high_s8(av, bv[j]);
                    acc[i][j] = vpadalq_s16(vpadalq_s16(acc[i][j], lo), hi);
                }
            }
            p += 16;
        }
        let mut out = [[0i32; C]; R];
        for i in 0..R {
            for j in 0..C {
                out[i][j] = vaddvq_s32(acc[i][j]);
            }
        }
        tail(p, k, &a, &b, &mut out);
        out
    }
}

/// The plain NEON kernel (`neon`), tiles of 4 rows × 4 columns.
///
/// # Safety
/// NEON present; `a`, `b`, `c` valid for `m·k`, `n·k`, `m·n` elements.
#[target_feature(enable = "neon")]
pub(super) unsafe fn neon_gemm_i8_i32_4x4(m: usize, n: usize, k: usize, a: *const i8, b: *const i8, c: *mut i32) {
    // SAFETY: the driver only forms pointers to rows < m of `a`, < n of `b`, and stores
    // to `c[i·n + j]` with i < m, j < n; NEON per the contract.
    unsafe { drive!(tile_neon, [1, 2, 3, 4], 4, m, n, k, a, b, c) }
}

/// `acc += sdot(a, b)`: lane `l` adds the dot product of bytes `4l..4l+4` of `a` and `b`.
///
/// # Safety
/// dotprod present (the caller is compiled with it).
#[inline(always)]
unsafe fn sdot(mut acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    // SAFETY: one register-only instruction, available per the contract.
    unsafe {
        asm!("sdot {0:v}.4s, {1:v}.16b, {2:v}.16b", inout(vreg) acc, in(vreg) a, in(vreg) b,
             options(pure, nomem, nostack, preserves_flags));
    }
    acc
}

/// `sdot` tile: 16 K values per step, one `sdot` per (row, column) pair (4× the work of
/// the four-instruction NEON step). Registers: 4×4: 16 accumulators + 8 operands.
///
/// # Safety
/// NEON and dotprod present; each pointer valid for `k` bytes.
#[inline(always)]
unsafe fn tile_sdot<const R: usize, const C: usize>(
    k: usize,
    a: [*const i8; R],
    b: [*const i8; C],
    _prep: [i32; R],
) -> [[i32; C]; R] {
    // Opaque to LLVM: otherwise it recomputes the driver's padded column pointers
    // (`csel`, `madd`) inside the loop (the 4×4 step: 36 instructions before, 28 after).
    let (a, b) = core::hint::black_box((a, b));
    // SAFETY: loads read `[p, p + 16)` with `p + 16 ≤ k`; the features per the contract.
    unsafe {
        let mut acc = [[vdupq_n_s32(0); C]; R];
        let mut p = 0;
        while p + 16 <= k {
            let mut bv = [vdupq_n_s8(0); C];
            for j in 0..C {
                bv[j] = vld1q_s8(b[j].add(p));
            }
            for i in 0..R {
                let av = vld1q_s8(a[i].add(p));
                for j in 0..C {
                    acc[i][j] = sdot(acc[i][j], av, bv[j]);
                }
            }
            p += 16;
        }
        let mut out = [[0i32; C]; R];
        for i in 0..R {
            for j in 0..C {
                out[i][j] = vaddvq_s32(acc[i][j]);
            }
        }
        tail(p, k, &a, &b, &mut out);
        out
    }
}

/// The dotprod kernel (`sdot`), tiles of 4 rows × 4 columns.
///
/// # Safety
/// NEON and dotprod present; `a`, `b`, `c` valid for `m·k`, `n·k`, `m·n` elements.
#[target_feature(enable = "neon,dotprod")]
pub(super) unsafe fn sdot_gemm_i8_i32_4x4(m: usize, n: usize, k: usize, a: *const i8, b: *const i8, c: *mut i32) {
    // SAFETY: as in `neon_gemm_i8_i32_4x4`; the features per the contract.
    unsafe { drive!(tile_sdot, [1, 2, 3, 4], 4, m, n, k, a, b, c) }
}

/// `acc += smmla(a, b)`: with `a` = rows (a0, a1) and `b` = rows (b0, b1) of 8 bytes each,
/// `acc` lanes get `[a0·b0, a0·b1, a1·b0, a1·b1]`.
///
/// # Safety
/// i8mm present (the caller is compiled with it).
#[inline(always)]
unsafe fn smmla(mut acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    // SAFETY: one register-only instruction, available per the contract.
    unsafe {
        asm!("smmla {0:v}.4s, {1:v}.16b, {2:v}.16b", inout(vreg) acc, in(vreg) a, in(vreg) b,
             options(pure, nomem, nostack, preserves_flags));
    }
    acc
}

/// Interleaves 8-byte halves of two rows: (`x[0..8] y[0..8]`, `x[8..16] y[8..16]`).
#[inline(always)]
unsafe fn zip_rows(x: int8x16_t, y: int8x16_t) -> (int8x16_t, int8x16_t) {
    // SAFETY: plain NEON register shuffles (the caller has NEON).
    unsafe {
        let (x, y) = (vreinterpretq_s64_s8(x), vreinterpretq_s64_s8(y));
        (vreinterpretq_s8_s64(vzip1q_s64(x, y)), vreinterpretq_s8_s64(vzip2q_s64(x, y)))
    }
}

/// `smmla` tile (R and C even): 16 K values per step; rows and columns are paired into
/// 2×8 operands by `zip1`/`zip2` on 64-bit lanes, two `smmla` per (row pair, column pair),
/// each 32 multiply-adds (2× `sdot`'s 16 per instruction).
///
/// # Safety
/// NEON and i8mm present; each pointer valid for `k` bytes.
#[inline(always)]
unsafe fn tile_i8mm<const R: usize, const C: usize>(
    k: usize,
    a: [*const i8; R],
    b: [*const i8; C],
    _prep: [i32; R],
) -> [[i32; C]; R] {
    // Opaque to LLVM, as in `tile_sdot` (the 4×4 step: 39 instructions before, 28 after).
    let (a, b) = core::hint::black_box((a, b));
    // SAFETY: loads read `[p, p + 16)` with `p + 16 ≤ k`; the features per the contract.
    unsafe {
        let mut acc = [[vdupq_n_s32(0); C]; R]; // only [..R/2][..C/2] used
        let mut p = 0;
        while p + 16 <= k {
            let mut bz = [(vdupq_n_s8(0), vdupq_n_s8(0)); C];
            for j in (0..C).step_by(2) {
                bz[j / 2] = zip_rows(vld1q_s8(b[j].add(p)), vld1q_s8(b[j + 1].add(p)));
            }
            for i in (0..R).step_by(2) {
                let (a_lo, a_hi) = zip_rows(vld1q_s8(a[i].add(p)), vld1q_s8(a[i + 1].add(p)));
                for j in 0..C / 2 {
                    acc[i / 2][j] = smmla(smmla(acc[i / 2][j], a_lo, bz[j].0), a_hi, bz[j].1);
                }
            }
            p += 16;
        }
        let mut out = smmla_out(&acc);
        tail(p, k, &a, &b, &mut out);
        out
    }
}

/// `smmla` tile on activations already zipped into row pairs (`az[q]`: pair `q`'s
/// [`zip_rows`] halves, 32 bytes per 16-K step, from [`zip_pairs`]): `R/2` pairs × `C`
/// columns, 16 K values per step, the first `steps · 16` of each row. Per step of the 8×4
/// tile: 16 `smmla` (512 multiply-adds), the weights' 4 loads and 4 `zip1`/`zip2`, 8
/// activation loads; [`tile_i8mm`] zips the activations too, at every column tile (8
/// `smmla` and 8 zips per 256 multiply-adds).
///
/// # Safety
/// NEON and i8mm present; `az[..R/2]` valid for `32·steps` bytes, each `b[j]` for
/// `16·steps`.
#[inline(always)]
unsafe fn tile_i8mm_zipped<const R: usize, const C: usize>(
    steps: usize,
    az: [*const i8; R],
    b: [*const i8; C],
) -> [[i32; C]; R] {
    // Opaque to LLVM, as in `tile_sdot`.
    let (az, b) = core::hint::black_box((az, b));
    // SAFETY: loads read `[16s, 16s + 16)` of the weight rows and `[32s, 32s + 32)` of the
    // pair streams, s < steps; the features per the contract.
    unsafe {
        let mut acc = [[vdupq_n_s32(0); C]; R]; // only [..R/2][..C/2] used
        for s in 0..steps {
            let mut bz = [(vdupq_n_s8(0), vdupq_n_s8(0)); C];
            for j in (0..C).step_by(2) {
                bz[j / 2] = zip_rows(vld1q_s8(b[j].add(16 * s)), vld1q_s8(b[j + 1].add(16 * s)));
            }
            for q in 0..R / 2 {
                let (a_lo, a_hi) = (vld1q_s8(az[q].add(32 * s)), vld1q_s8(az[q].add(32 * s + 16)));
                for j in 0..C / 2 {
                    acc[q][j] = smmla(smmla(acc[q][j], a_lo, bz[j].0), a_hi, bz[j].1);
                }
            }
        }
        smmla_out(&acc)
    }
}

/// The `R × C` results of `smmla` accumulators (`acc[q][j]`, only `[..R/2][..C/2]` used):
/// lanes `[a0·b0, a0·b1, a1·b0, a1·b1]` of row pair `q` and column pair `j`.
#[inline(always)]
fn smmla_out<const R: usize, const C: usize>(acc: &[[int32x4_t; C]; R]) -> [[i32; C]; R] {
    let mut out = [[0i32; C]; R];
    for q in 0..R / 2 {
        for j in 0..C / 2 {
            let mut l = [0i32; 4];
            // SAFETY: NEON (the callers run with it); `l` holds 4 values.
            unsafe { vst1q_s32(l.as_mut_ptr(), acc[q][j]) };
            out[2 * q][2 * j] = l[0];
            out[2 * q][2 * j + 1] = l[1];
            out[2 * q + 1][2 * j] = l[2];
            out[2 * q + 1][2 * j + 1] = l[3];
        }
    }
    out
}

/// Writes rows `x` and `y` zipped for [`tile_i8mm_zipped`]: per 16 bytes of each, the two
/// [`zip_rows`] halves (32 bytes), `steps` times.
///
/// # Safety
/// NEON present; `x`, `y` valid for `16·steps` bytes, `dst` for `32·steps`.
#[inline(always)]
unsafe fn zip_pairs(x: *const i8, y: *const i8, steps: usize, dst: *mut i8) {
    // SAFETY: reads and writes inside the ranges of the contract.
    unsafe {
        for s in 0..steps {
            let (lo, hi) = zip_rows(vld1q_s8(x.add(16 * s)), vld1q_s8(y.add(16 * s)));
            vst1q_s8(dst.add(32 * s), lo);
            vst1q_s8(dst.add(32 * s + 16), hi);
        }
    }
}

/// K values per chunk of the `i8mm` kernel's zipped activation panel (8 rows: 32 KiB of
/// stack).
const ZIP_KC: usize = 4096;

/// The i8mm kernel (`i8mm`): tiles of 8 rows × 4 columns (2, 4 or 6 rows at the bottom
/// edge; missing rows repeat the last real one and are not stored). Per column block and
/// K chunk of [`ZIP_KC`], a row tile's rows are zipped into pairs once ([`zip_pairs`], a
/// stack panel) and every column tile of the block reads them from there
/// ([`tile_i8mm_zipped`]); the K values past the last multiple of 16 are added by
/// [`tail`]. Later K chunks add to `c`: a chunk's sums and the total stay exact in i32
/// (|Σ| ≤ k·2¹⁴ < 2³¹ for k < 131 072).
///
/// # Safety
/// NEON and i8mm present; `a`, `b`, `c` valid for `m·k`, `n·k`, `m·n` elements.
#[target_feature(enable = "neon,i8mm")]
pub(super) unsafe fn i8mm_gemm_i8_i32_8x4(m: usize, n: usize, k: usize, a: *const i8, b: *const i8, c: *mut i32) {
    let mut panel = core::mem::MaybeUninit::<[i8; 8 * ZIP_KC]>::uninit();
    let pz = panel.as_mut_ptr().cast::<i8>();
    let mut k0 = 0;
    // SAFETY: rows < m of `a` and < n of `b` are read at columns k0..k0 + kc ≤ k; the panel
    // holds R/2 pairs of 2·kz ≤ 2·ZIP_KC bytes (R ≤ 8); `c[(i + t)·n + j + u]` is written
    // for t < rows, u < cols only; the features per the contract.
    unsafe {
        while k0 < k {
            let kc = (k - k0).min(ZIP_KC);
            let steps = kc / 16;
            let nb = crate::kernels::col_block(kc, 4);
            let mut j0 = 0;
            while j0 < n {
                let j1 = (j0 + nb).min(n);
                crate::kernels::row_tiles!([2, 4, 6, 8], m, |R, i, rows| {
                    let ap: [*const i8; R] = core::array::from_fn(|t| a.add((i + t.min(rows - 1)) * k + k0));
                    let az: [*const i8; R] = core::array::from_fn(|q| pz.add(q * 32 * steps).cast_const());
                    for q in 0..R / 2 {
                        zip_pairs(ap[2 * q], ap[2 * q + 1], steps, pz.add(q * 32 * steps));
                    }
                    let mut j = j0;
                    while j < j1 {
                        let cols = (j1 - j).min(4);
                        let bp: [*const i8; 4] = core::array::from_fn(|u| b.add((j + u.min(cols - 1)) * k + k0));
                        let mut out: [[i32; 4]; R] = tile_i8mm_zipped::<R, 4>(steps, az, bp);
                        tail(16 * steps, kc, &ap, &bp, &mut out);
                        for (t, row) in out.iter().enumerate().take(rows) {
                            let dst = c.add((i + t) * n + j);
                            if k0 == 0 {
                                crate::kernels::store_cols!(row, dst, cols, 4);
                            } else {
                                for (u, &v) in row.iter().enumerate().take(cols) {
                                    *dst.add(u) += v;
                                }
                            }
                        }
                        j += 4;
                    }
                });
                j0 = j1;
            }
            k0 += kc;
        }
    }
}

/// K values per i32 accumulation block of the i16×i8 kernel: a lane gains at most
/// 2·2¹⁵·2⁷ = 2²³ per step of 8, so 128 steps (1024 values) stay below 2³¹; each block is
/// then added up in i64 (`saddlv`).
const I16_BLOCK: usize = 1024;

/// `R` rows of `a` (int16) against `C` rows of `b` (int8), exact in i64: `sxtl` widens
/// 8 weights, `smlal`/`smlal2` multiply-accumulate into i32x4.
///
/// # Safety
/// NEON present; each `a[i]` valid for `k` i16, each `b[j]` for `k` bytes.
#[inline(always)]
unsafe fn tile16_neon<const R: usize, const C: usize>(
    k: usize,
    a: [*const i16; R],
    b: [*const i8; C],
) -> [[i64; C]; R] {
    // SAFETY: loads read `[p, p + 8)` with `p + 8 ≤ k`; NEON per the contract.
    unsafe {
        let mut out = [[0i64; C]; R];
        let mut p = 0;
        while p + 8 <= k {
            let end = (p + I16_BLOCK).min(k);
            let mut acc = [[vdupq_n_s32(0); C]; R];
            while p + 8 <= end {
                let mut bv = [vdupq_n_s16(0); C];
                for j in 0..C {
                    bv[j] = vmovl_s8(vld1_s8(b[j].add(p)));
                }
                for i in 0..R {
                    let av = vld1q_s16(a[i].add(p));
                    for j in 0..C {
                        let lo = vmlal_s16(acc[i][j], vget_low_s16(av), vget_low_s16(bv[j]));
                        acc[i][j] = vmlal_high_s16(lo, av, bv[j]);
                    }
                }
                p += 8;
            }
            for i in 0..R {
                for j in 0..C {
                    out[i][j] += vaddlvq_s32(acc[i][j]);
                }
            }
        }
        for q in p..k {
            for i in 0..R {
                for j in 0..C {
                    out[i][j] += *a[i].add(q) as i64 * *b[j].add(q) as i64;
                }
            }
        }
        out
    }
}

/// The NEON int16×int8 kernel (`neon`, `sdot`, `i8mm`): tiles of 4 activation rows × 4
/// weight rows.
///
/// # Safety
/// NEON present; `a`, `b`, `c` valid for `m·k`, `n·k`, `m·n` elements.
#[target_feature(enable = "neon")]
pub(super) unsafe fn neon_gemm_i16_i8_i64_4x4(m: usize, n: usize, k: usize, a: *const i16, b: *const i8, c: *mut i64) {
    // SAFETY: rows < m of `a`, < n of `b`, stores to `c[i·n + j]` with i < m, j < n.
    unsafe { super::drive16!(tile16_neon, 4, 4, m, n, k, a, b, c) }
}

/// K values of the split int16 kernels' stack panels (4 rows × 2 panels × 4096 = 32 KiB).
const SPLIT_KC: usize = 4096;

/// Splits `len` int16 activations into their signed high bytes (`hi = x >> 8`) and their
/// low bytes offset to signed (`lo = (x & 0xff) − 128`), so that
/// `x = 256·hi + lo + 128` with both parts in `[-128, 127]`.
///
/// # Safety
/// NEON present; `src` valid for `len` i16, `hi` and `lo` for `len` bytes.
#[inline(always)]
unsafe fn split_row(src: *const i16, len: usize, hi: *mut i8, lo: *mut i8) {
    // SAFETY: vector loads and stores at `q < len - 15`, the scalar tail at `q < len`.
    unsafe {
        let bias = vdupq_n_s8(-128);
        let mut q = 0;
        while q + 16 <= len {
            let (v0, v1) = (vld1q_s16(src.add(q)), vld1q_s16(src.add(q + 8)));
            // `shrn #8` keeps bits 15..8 (the arithmetic `x >> 8` as a byte); `xtn` bits 7..0.
            vst1q_s8(hi.add(q), vshrn_high_n_s16::<8>(vshrn_n_s16::<8>(v0), v1));
            vst1q_s8(lo.add(q), veorq_s8(vmovn_high_s16(vmovn_s16(v0), v1), bias));
            q += 16;
        }
        for q in q..len {
            let x = *src.add(q);
            *hi.add(q) = (x >> 8) as i8;
            *lo.add(q) = ((x as u8) ^ 0x80) as i8;
        }
    }
}

/// The int16×int8 GEMM as two int8 GEMMs on a kernel's own int8 tile (`sdot`, `smmla`):
/// each activation is split as in [`split_row`], a row tile's high and low bytes are packed
/// into two stack panels per column block and K chunk of [`SPLIT_KC`], the tile runs on
/// both, and the store combines `256·Σ hi·b + Σ lo·b + 128·Σ b` in i64, `Σ b` being the
/// weight row sum the caller gave (added once, with the first K chunk). Exact: a chunk's
/// int8 sums stay below `4096 · 2¹⁴ = 2²⁶` in magnitude.
///
/// `sdot` multiplies 16 pairs of bytes per instruction where `smlal` multiplies 4 of int16
/// by int8, so the two int8 products cost half as many multiply instructions as the NEON
/// int16 tile (`tile16_neon`), and on the Cortex-A76 they issue to both vector pipes where
/// `smlal` has one (`kernels/README.md`, "Int16 activations on ARM").
macro_rules! split16 {
    ($tile:ident, [$($rr:literal),+], $m:expr, $n:expr, $k:expr, $a:expr, $b:expr, $sums:expr, $c:expr) => {{
        let (m, n, k): (usize, usize, usize) = ($m, $n, $k);
        let (a, b, sums, c): (*const i16, *const i8, *const f32, *mut i64) = ($a, $b, $sums, $c);
        let mut panel = core::mem::MaybeUninit::<[i8; 8 * SPLIT_KC]>::uninit();
        let (hp, lp) = (panel.as_mut_ptr().cast::<i8>(), panel.as_mut_ptr().cast::<i8>().add(4 * SPLIT_KC));
        let mut k0 = 0;
        while k0 < k {
            let kc = (k - k0).min(SPLIT_KC);
            let nb = $crate::kernels::col_block(kc, 4);
            let mut j0 = 0;
            while j0 < n {
                let j1 = (j0 + nb).min(n);
                $crate::kernels::row_tiles!([$($rr),+], m, |R, i, rows| {
                    for t in 0..rows {
                        split_row(a.add((i + t) * k + k0), kc, hp.add(t * kc), lp.add(t * kc));
                    }
                    // Missing rows repeat the last real one (computed, not stored).
                    let hi: [*const i8; R] = core::array::from_fn(|t| hp.add(t.min(rows - 1) * kc).cast_const());
                    let lo: [*const i8; R] = core::array::from_fn(|t| lp.add(t.min(rows - 1) * kc).cast_const());
                    let mut j = j0;
                    while j < j1 {
                        let cols = (j1 - j).min(4);
                        let bp: [*const i8; 4] = core::array::from_fn(|u| b.add((j + u.min(cols - 1)) * k + k0));
                        let sh: [[i32; 4]; R] = $tile::<R, 4>(kc, hi, bp, [0; R]);
                        let sl: [[i32; 4]; R] = $tile::<R, 4>(kc, lo, bp, [0; R]);
                        for t in 0..rows {
                            let dst = c.add((i + t) * n + j);
                            for u in 0..cols {
                                let v = 256 * sh[t][u] as i64 + sl[t][u] as i64;
                                if k0 == 0 {
                                    *dst.add(u) = v + 128 * *sums.add(j + u) as i64;
                                } else {
                                    *dst.add(u) += v;
                                }
                            }
                        }
                        j += 4;
                    }
                });
                j0 = j1;
            }
            k0 += kc;
        }
    }};
}

/// The `sdot` kernel's int16×int8 GEMM given the weight row sums: [`split16`] on
/// [`tile_sdot`].
///
/// # Safety
/// NEON and dotprod present; `a`, `b`, `c`, `sums` valid for `m·k`, `n·k`, `m·n`, `n`
/// elements, the sums exact (`Σ_k b[j][k]`).
#[target_feature(enable = "neon,dotprod")]
pub(super) unsafe fn sdot_gemm_i16_i8_i64_sums(
    m: usize,
    n: usize,
    k: usize,
    a: *const i16,
    b: *const i8,
    sums: *const f32,
    c: *mut i64,
) {
    // SAFETY: rows < m of `a` (k0 + kc ≤ k values each), panel rows < 4 of kc ≤ SPLIT_KC
    // bytes, weight rows < n from k0, sums < n, stores to `c[i·n + j]` with i < m, j < n;
    // the features per the contract.
    unsafe { split16!(tile_sdot, [1, 2, 3, 4], m, n, k, a, b, sums, c) }
}

/// The `i8mm` kernel's int16×int8 GEMM given the weight row sums: [`split16`] on
/// [`tile_i8mm`] (row pairs; a single last row is paired with itself).
///
/// # Safety
/// NEON and i8mm present; as [`sdot_gemm_i16_i8_i64_sums`].
#[target_feature(enable = "neon,i8mm")]
pub(super) unsafe fn i8mm_gemm_i16_i8_i64_sums(
    m: usize,
    n: usize,
    k: usize,
    a: *const i16,
    b: *const i8,
    sums: *const f32,
    c: *mut i64,
) {
    // SAFETY: as in `sdot_gemm_i16_i8_i64_sums`; the features per the contract.
    unsafe { split16!(tile_i8mm, [2, 4], m, n, k, a, b, sums, c) }
}

/// The `sdot` kernel's int8 GEMM in the form that takes weight sums (it needs none).
///
/// # Safety
/// As [`sdot_gemm_i8_i32_4x4`].
pub(super) unsafe fn sdot_gemm_i8_i32_sums(
    m: usize,
    n: usize,
    k: usize,
    a: *const i8,
    b: *const i8,
    _sums: *const f32,
    c: *mut i32,
) {
    // SAFETY: the contract is that of `sdot_gemm_i8_i32_4x4`.
    unsafe { sdot_gemm_i8_i32_4x4(m, n, k, a, b, c) }
}

/// The `i8mm` kernel's int8 GEMM in the form that takes weight sums (it needs none).
///
/// # Safety
/// As [`i8mm_gemm_i8_i32_8x4`].
pub(super) unsafe fn i8mm_gemm_i8_i32_sums(
    m: usize,
    n: usize,
    k: usize,
    a: *const i8,
    b: *const i8,
    _sums: *const f32,
    c: *mut i32,
) {
    // SAFETY: the contract is that of `i8mm_gemm_i8_i32_8x4`.
    unsafe { i8mm_gemm_i8_i32_8x4(m, n, k, a, b, c) }
}
