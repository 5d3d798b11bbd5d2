//! x86_64 int8 GEMM kernels on `core::arch`: AVX2 (`vpmaddwd` on sign-extended i16) and
//! AVX-512 VNNI (`vpdpbusd` on zmm).
//!
//! Both read `a` (activations) and `b` (weights) row-major along K, as the blob stores
//! them; each tile accumulates one vector per (row, column) pair along K and reduces the
//! vectors horizontally once at the end (amortised over K ≥ 128).

use core::arch::x86_64::*;

#[allow(unused_imports)] // the driver's default `prep`
use super::{drive, no_prep};

/// A stack panel on a cache-line boundary. Rust aligns an `[i16]` or `[u64]` array to 2 or
/// 8 bytes, and a vector load from such a panel straddles two lines every other time
/// (32-byte loads) or every time (64-byte misaligned by 8): that cost the `avx2` kernel
/// about a quarter of its speed (`kernels/README.md`, "Panel alignment").
#[repr(C, align(64))]
pub(super) struct Lines<T>(pub(super) T);

pub(super) fn has_avx2() -> bool {
    #[cfg(feature = "std")]
    {
        std::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(feature = "std"))]
    {
        cfg!(target_feature = "avx2")
    }
}

/// AVX-VNNI (VEX `vpdpbusd`) with AVX2: the `avxvnni` kernel.
pub(super) fn has_avxvnni() -> bool {
    #[cfg(feature = "std")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("avxvnni")
    }
    #[cfg(not(feature = "std"))]
    {
        cfg!(all(target_feature = "avx2", target_feature = "avxvnni"))
    }
}

pub(super) fn has_vnni() -> bool {
    #[cfg(feature = "std")]
    {
        std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512dq")
            && std::is_x86_feature_detected!("avx512vl")
            && std::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(feature = "std"))]
    {
        cfg!(all(
            target_feature = "avx512f",
            target_feature = "avx512bw",
            target_feature = "avx512dq",
            target_feature = "avx512vl",
            target_feature = "avx512vnni"
        ))
    }
}

/// Sums of four i32x8 vectors: lane `j` of the result is the sum of the lanes of `v[j]`.
#[inline(always)]
unsafe fn hsum4_256(v0: __m256i, v1: __m256i, v2: __m256i, v3: __m256i) -> __m128i {
    // SAFETY: only called from functions compiled with AVX2 (inlined into them).
    unsafe {
        let t0 = _mm256_hadd_epi32(v0, v1); // per 128-bit half: v0 pairs, v1 pairs
        let t1 = _mm256_hadd_epi32(v2, v3);
        let t = _mm256_hadd_epi32(t0, t1); // per half: partial sums of v0, v1, v2, v3
        _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256::<1>(t))
    }
}

/// Stores the horizontal sums of `acc[..C]` (C ≤ 4) into `out[..C]`.
#[inline(always)]
#[allow(clippy::manual_memcpy)] // element copies on purpose: see below
unsafe fn reduce_row_256<const C: usize>(acc: &[__m256i; C], out: &mut [i32; C]) {
    // SAFETY: AVX2 context (see `hsum4_256`); the array is 4 i32s, read in place.
    unsafe {
        // Element by element: `copy_from_slice` of C = 3 vectors compiled to a `memcpy`
        // call per tile (1 % of a forward pass).
        let mut v = [_mm256_setzero_si256(); 4];
        for j in 0..C {
            v[j] = acc[j];
        }
        let s = hsum4_256(v[0], v[1], v[2], v[3]);
        let mut lanes = [0i32; 4];
        _mm_storeu_si128(lanes.as_mut_ptr().cast(), s);
        for j in 0..C {
            out[j] = lanes[j];
        }
    }
}

/// AVX2 tile: 16 K values per step, both sides sign-extended to i16 by `vpmovsxbw` from
/// memory, `vpmaddwd` into i32 (exact: two products of at most 128² each).
///
/// Registers: R·C accumulators + C weight vectors + an activation vector + a product (at
/// 4×3, 17 of the 16 ymm: the full tiles of K ≤ [`PANEL16_K`] take
/// [`tile_avx2_4x3_a16`] instead).
///
/// # Safety
/// AVX2 present; each pointer valid for `k` bytes.
#[inline(always)]
unsafe fn tile_avx2<const R: usize, const C: usize>(
    k: usize,
    a: [*const i8; R],
    b: [*const i8; C],
    _prep: [i32; R],
) -> [[i32; C]; R] {
    // SAFETY: loads stay inside `[p, p + 16)` with `p + 16 ≤ k`; AVX2 per the contract.
    unsafe {
        let mut acc = [[_mm256_setzero_si256(); C]; R];
        let mut p = 0;
        while p + 16 <= k {
            let mut bv = [_mm256_setzero_si256(); C];
            for j in 0..C {
                bv[j] = _mm256_cvtepi8_epi16(_mm_loadu_si128(b[j].add(p).cast()));
            }
            for i in 0..R {
                let av = _mm256_cvtepi8_epi16(_mm_loadu_si128(a[i].add(p).cast()));
                for j in 0..C {
                    acc[i][j] = _mm256_add_epi32(acc[i][j], _mm256_madd_epi16(av, bv[j]));
                }
            }
            p += 16;
        }
        finish_tile(&acc, p, k, a, b)
    }
}

/// The end of an AVX2 dot-product tile: each accumulator's lanes summed, plus the scalar
/// products of the K values `p..k` the vector steps left (activations `a` of type `T`).
///
/// # Safety
/// AVX2 context (inlined into it); each pointer valid for `k` elements.
#[inline(always)]
pub(super) unsafe fn finish_tile<const R: usize, const C: usize, T: Copy + Into<i32>>(
    acc: &[[__m256i; C]; R],
    p: usize,
    k: usize,
    a: [*const T; R],
    b: [*const i8; C],
) -> [[i32; C]; R] {
    // SAFETY: reads `q < k` of each row; AVX2 per the contract.
    unsafe {
        let mut out = [[0i32; C]; R];
        for i in 0..R {
            reduce_row_256(&acc[i], &mut out[i]);
            for q in p..k {
                for j in 0..C {
                    out[i][j] += (*a[i].add(q)).into() * *b[j].add(q) as i32;
                }
            }
        }
        out
    }
}

/// The AVX2 kernel's 4×3 tile on activation rows already sign-extended to i16 (`a16`, in a
/// [`PANEL16_K`] panel), the 16-K step in assembly: 12 accumulators, one weight vector and
/// one product (14 ymm), `vpmaddwd` reading the activations from the panel. With
/// intrinsics, [`tile_avx2`] needs 17 ymm at 4×3: LLVM spilled an accumulator and
/// recomputed a weight pointer (9 scalar instructions) every step; the same loop over the
/// panel kept all four activation vectors in registers and spilled two accumulators.
/// With `PF`, each step also prefetches 48 bytes of the `3·k` at `pf` (the weight rows two
/// column tiles ahead), so that the prefetches of a tile spread over its steps.
///
/// # Safety
/// AVX2 present; each `a16` pointer valid for `k` i16 values, each `b` pointer for `k` bytes.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn tile_avx2_4x3_a16<const PF: bool>(
    k: usize,
    a16: [*const i16; 4],
    b: [*const i8; 3],
    pf: *const i8,
) -> [[i32; 3]; 4] {
    let mut x = [_mm256_setzero_si256(); 12];
    let mut p = 0;
    while p + 16 <= k {
        if PF {
            // Spread over the steps: 48 bytes of the 3·k at `pf` per 16-K step (a prefetch
            // never faults, and `wrapping_add` needs no allocation).
            _mm_prefetch::<_MM_HINT_T1>(pf.wrapping_add(3 * p));
        }
        // SAFETY: reads 16 bytes at `b[j] + p` and 32 at `a16[i] + 2p`, inside the rows
        // (p + 16 ≤ k); registers only otherwise.
        unsafe {
            core::arch::asm!(
                "vpmovsxbw {w}, xmmword ptr [{b0} + {p}]",
                "vpmaddwd {t}, {w}, ymmword ptr [{a0} + 2*{p}]",
                "vpaddd {x0}, {x0}, {t}",
                "vpmaddwd {t}, {w}, ymmword ptr [{a1} + 2*{p}]",
                "vpaddd {x3}, {x3}, {t}",
                "vpmaddwd {t}, {w}, ymmword ptr [{a2} + 2*{p}]",
                "vpaddd {x6}, {x6}, {t}",
                "vpmaddwd {t}, {w}, ymmword ptr [{a3} + 2*{p}]",
                "vpaddd {x9}, {x9}, {t}",
                "vpmovsxbw {w}, xmmword ptr [{b1} + {p}]",
                "vpmaddwd {t}, {w}, ymmword ptr [{a0} + 2*{p}]",
                "vpaddd {x1}, {x1}, {t}",
                "vpmaddwd {t}, {w}, ymmword ptr [{a1} + 2*{p}]",
                "vpaddd {x4}, {x4}, {t}",
                "vpmaddwd {t}, {w}, ymmword ptr [{a2} + 2*{p}]",
                "vpaddd {x7}, {x7}, {t}",
                "vpmaddwd {t}, {w}, ymmword ptr [{a3} + 2*{p}]",
                "vpaddd {x10}, {x10}, {t}",
                "vpmovsxbw {w}, xmmword ptr [{b2} + {p}]",
                "vpmaddwd {t}, {w}, ymmword ptr [{a0} + 2*{p}]",
                "vpaddd {x2}, {x2}, {t}",
                "vpmaddwd {t}, {w}, ymmword ptr [{a1} + 2*{p}]",
                "vpaddd {x5}, {x5}, {t}",
                "vpmaddwd {t}, {w}, ymmword ptr [{a2} + 2*{p}]",
                "vpaddd {x8}, {x8}, {t}",
                "vpmaddwd {t}, {w}, ymmword ptr [{a3} + 2*{p}]",
                "vpaddd {x11}, {x11}, {t}",
                b0 = in(reg) b[0], b1 = in(reg) b[1], b2 = in(reg) b[2],
                a0 = in(reg) a16[0], a1 = in(reg) a16[1], a2 = in(reg) a16[2], a3 = in(reg) a16[3],
                p = in(reg) p,
                w = out(ymm_reg) _, t = out(ymm_reg) _,
                x0 = inout(ymm_reg) x[0], x1 = inout(ymm_reg) x[1], x2 = inout(ymm_reg) x[2],
                x3 = inout(ymm_reg) x[3], x4 = inout(ymm_reg) x[4], x5 = inout(ymm_reg) x[5],
                x6 = inout(ymm_reg) x[6], x7 = inout(ymm_reg) x[7], x8 = inout(ymm_reg) x[8],
                x9 = inout(ymm_reg) x[9], x10 = inout(ymm_reg) x[10], x11 = inout(ymm_reg) x[11],
                options(nostack, preserves_flags, readonly),
            );
        }
        p += 16;
    }
    // x[3i + j]: activation row i, weight row j.
    let acc: [[__m256i; 3]; 4] = core::array::from_fn(|i| core::array::from_fn(|j| x[3 * i + j]));
    // SAFETY: the pointers as above; AVX2 per the contract.
    unsafe { finish_tile(&acc, p, k, a16, b) }
}

/// Requests the `len` bytes at `p` into L2, one `prefetcht1` per cache line.
///
/// # Safety
/// `p..p + len` lies inside one allocation (prefetches never fault; the pointer arithmetic
/// must stay in bounds).
#[inline(always)]
unsafe fn prefetch_l2(p: *const i8, len: usize) {
    let mut o = 0;
    while o < len {
        // SAFETY: o < len, inside the allocation per the contract.
        unsafe { _mm_prefetch::<_MM_HINT_T1>(p.add(o)) };
        o += 64;
    }
}

/// Longest K the AVX2 kernel's i16 activation panel (4 rows, 32 KiB of stack) holds;
/// longer rows take [`tile_avx2`] throughout, which extends the activations at every step.
const PANEL16_K: usize = 4096;

/// The AVX2 kernel (`avx2`), tiles of 4 rows × 3 columns (1..=3 rows at the bottom edge).
/// Each full row tile is sign-extended to i16 once per column block, into a stack panel,
/// and every column tile of the block reads it from there ([`tile_avx2_4x3_a16`]); the
/// bottom rows take [`tile_avx2`]. The blocking is `drive!`'s.
///
/// # Safety
/// AVX2 present; `a`, `b`, `c` valid for `m·k`, `n·k`, `m·n` elements.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn avx2_gemm_i8_i32_4x3(m: usize, n: usize, k: usize, a: *const i8, b: *const i8, c: *mut i32) {
    // SAFETY: the same contract, passed on (no sums).
    unsafe { avx2_gemm_i8_i32_sums(m, n, k, a, b, core::ptr::null(), c) }
}

/// [`avx2_gemm_i8_i32_4x3`] with the weight row sums (null: summed per column block where
/// needed). Activations that all lie in `[-64, 63]` take the `vpmaddubsw` form
/// (`avx2_a7.rs`), which needs the sums; others the `vpmaddwd` tiles, which ignore them.
///
/// # Safety
/// As [`avx2_gemm_i8_i32_4x3`]; `sums` null or valid for `n` values, each `Σ_k b[j][k]`.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn avx2_gemm_i8_i32_sums(
    m: usize,
    n: usize,
    k: usize,
    a: *const i8,
    b: *const i8,
    sums: *const f32,
    c: *mut i32,
) {
    // SAFETY: `a` holds m·k values (the contract); `gemm` gets the range it needs.
    if k <= super::avx2_a7::PANEL_K && unsafe { super::avx2_a7::fits(a, m * k) } {
        // SAFETY: the same contract, passed on; k and the range checked above.
        unsafe { super::avx2_a7::gemm(m, n, k, a, b, sums, c) };
        return;
    }
    if k > PANEL16_K {
        // SAFETY: the driver only forms pointers to rows < m of `a`, < n of `b`, and
        // stores to `c[i·n + j]` with i < m, j < n; AVX2 per the contract.
        unsafe { drive!(tile_avx2, [1, 2, 3, 4], 3, m, n, k, a, b, c) };
        return;
    }
    let mut panel = core::mem::MaybeUninit::<Lines<[i16; 4 * PANEL16_K]>>::uninit();
    let pp = panel.as_mut_ptr().cast::<i16>();
    let nb = super::col_block(k, 3);
    let mut j0 = 0;
    while j0 < n {
        let j1 = (j0 + nb).min(n);
        let mut i = 0;
        while i < m {
            let rows = (m - i).min(4);
            macro_rules! row_tile {
                ($r:literal, $tile:expr, $ap:expr) => {{
                    let mut j = j0;
                    while j < j1 {
                        let cols = (j1 - j).min(3);
                        // The first row tile of a block streams its weights from memory (L3
                        // at best: a layer's weights exceed L2), which the hardware prefetcher
                        // does not keep up with at a few tokens. It requests the rows two
                        // column tiles ahead into L2 (`kernels/README.md`, "Weight
                        // prefetch"); later row tiles find the block in L2.
                        let ahead = if i == 0 && j + 2 * 3 < n {
                            Some((b.add((j + 2 * 3) * k), (n - j - 2 * 3).min(3)))
                        } else {
                            None
                        };
                        let bp: [*const i8; 3] = core::array::from_fn(|t| b.add((j + t.min(cols - 1)) * k));
                        let out: [[i32; 3]; $r] = $tile(k, $ap, bp, ahead);
                        for (t, row) in out.iter().enumerate() {
                            super::store_cols!(row, c.add((i + t) * n + j), cols, 3);
                        }
                        j += 3;
                    }
                }};
            }
            // SAFETY: rows i..i + rows < m of `a` are read (k bytes each); a full row tile
            // is written to panel rows 0..4 (k ≤ PANEL16_K values each), which its tiles
            // read; weight rows < n and output elements (i + t, j + u) with t < rows,
            // u < cols are in bounds.
            unsafe {
                if rows == 4 {
                    for t in 0..4 {
                        let (src, dst) = (a.add((i + t) * k), pp.add(t * k));
                        let mut q = 0;
                        while q + 16 <= k {
                            let v = _mm256_cvtepi8_epi16(_mm_loadu_si128(src.add(q).cast()));
                            _mm256_storeu_si256(dst.add(q).cast(), v);
                            q += 16;
                        }
                        for q in q..k {
                            *dst.add(q) = *src.add(q) as i16;
                        }
                    }
                    let ap: [*const i16; 4] = core::array::from_fn(|t| pp.add(t * k).cast_const());
                    row_tile!(
                        4,
                        |k, ap, bp, ahead: Option<(*const i8, usize)>| match ahead {
                            Some((pf, _)) => tile_avx2_4x3_a16::<true>(k, ap, bp, pf),
                            None => tile_avx2_4x3_a16::<false>(k, ap, bp, core::ptr::null()),
                        },
                        ap
                    );
                } else {
                    // The bottom 1-3 rows: the plain tile on the i8 rows (last row repeated).
                    macro_rules! plain {
                        ($r:literal) => {{
                            let ap: [*const i8; $r] = core::array::from_fn(|t| a.add((i + t.min(rows - 1)) * k));
                            let tile = |k, ap, bp, ahead: Option<(*const i8, usize)>| {
                                if let Some((pf, rows)) = ahead {
                                    // At 1-3 rows one burst per column tile (this path is
                                    // the bottom edge, or a whole GEMM of 1-3 tokens).
                                    prefetch_l2(pf, rows * k);
                                }
                                tile_avx2::<$r, 3>(k, ap, bp, [0; $r])
                            };
                            row_tile!($r, tile, ap);
                        }};
                    }
                    match rows {
                        3 => plain!(3),
                        2 => plain!(2),
                        _ => plain!(1),
                    }
                }
            }
            i += rows;
        }
        j0 = j1;
    }
}

/// AVX-512 VNNI tile: 64 K values per step. `vpdpbusd` multiplies unsigned by signed
/// bytes, so the weights are biased to unsigned (`b ^ 0x80` = `b + 128`) and the bias is
/// taken back once per row: `Σ a·b = Σ a·(b + 128) − 128·Σ a`, with `Σ a` computed once
/// per row tile ([`rowsum_vnni`], the driver's `prep`). Every intermediate is a wrapping
/// i32 and the true result fits in i32 (k < 131 072), so it is exact for the full
/// `[-128, 127]` range of both operands (`vpdpbusd` does not saturate). The K tail is a
/// masked (zeroing) load, so there is no scalar tail: zero activations add nothing and a
/// zero weight byte biased to 128 meets a zero activation.
///
/// Registers: R·C accumulators + C weight vectors + the bias (4×4: 16 + 4 + 1 of 32 zmm).
///
/// # Safety
/// AVX-512F/BW/VL/VNNI present; each pointer valid for `k` bytes.
#[inline(always)]
unsafe fn tile_vnni<const R: usize, const C: usize>(
    k: usize,
    a: [*const i8; R],
    b: [*const i8; C],
    asum: [i32; R],
) -> [[i32; C]; R] {
    // SAFETY: full loads stay inside `[p, p + 64)` with `p + 64 ≤ k`; the tail load is
    // masked to `[p, k)` (masked-off bytes are not accessed); AVX-512 per the contract.
    unsafe {
        let mut acc = [[_mm512_setzero_si512(); C]; R];
        let mut p = 0;
        while p + 64 <= k {
            step_vnni(p, u64::MAX, &a, &b, &mut acc);
            p += 64;
        }
        if p < k {
            step_vnni(p, (1u64 << (k - p)) - 1, &a, &b, &mut acc);
        }
        let mut out = [[0i32; C]; R];
        for i in 0..R {
            let mut half = [_mm256_setzero_si256(); C];
            for j in 0..C {
                let v = acc[i][j];
                half[j] = _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64::<1>(v));
            }
            reduce_row_256(&half, &mut out[i]);
            let corr = asum[i].wrapping_mul(128);
            for o in out[i].iter_mut() {
                *o = o.wrapping_sub(corr);
            }
        }
        out
    }
}

/// `Σ_k a[i][k]` for each row of a tile (wrapping i32; exact for k < 2²⁴).
///
/// # Safety
/// AVX-512F/BW/VL/VNNI present; each pointer valid for `k` bytes.
#[inline(always)]
unsafe fn rowsum_vnni<const R: usize>(k: usize, a: &[*const i8; R]) -> [i32; R] {
    // SAFETY: full loads inside `[p, p + 64)` with `p + 64 ≤ k`, the tail masked to `[p, k)`.
    unsafe {
        let ones = _mm512_set1_epi8(1);
        let mut out = [0i32; R];
        for i in 0..R {
            let mut s = _mm512_setzero_si512();
            let mut p = 0;
            while p < k {
                let mask = if p + 64 <= k { u64::MAX } else { (1u64 << (k - p)) - 1 };
                s = _mm512_dpbusd_epi32(s, ones, _mm512_maskz_loadu_epi8(mask, a[i].add(p)));
                p += 64;
            }
            out[i] = _mm512_reduce_add_epi32(s);
        }
        out
    }
}

/// One 64-byte step of [`tile_vnni`] over the bytes `mask` selects from `p`.
///
/// # Safety
/// AVX-512F/BW/VL/VNNI present; each pointer valid for the bytes `mask` selects from `p`.
#[inline(always)]
unsafe fn step_vnni<const R: usize, const C: usize>(
    p: usize,
    mask: u64,
    a: &[*const i8; R],
    b: &[*const i8; C],
    acc: &mut [[__m512i; C]; R],
) {
    // SAFETY: masked loads touch only the selected bytes; AVX-512 per the contract.
    unsafe {
        let bias = _mm512_set1_epi8(-128);
        let mut bv = [_mm512_setzero_si512(); C];
        for j in 0..C {
            bv[j] = _mm512_xor_si512(_mm512_maskz_loadu_epi8(mask, b[j].add(p)), bias);
        }
        for i in 0..R {
            let av = _mm512_maskz_loadu_epi8(mask, a[i].add(p));
            for j in 0..C {
                acc[i][j] = _mm512_dpbusd_epi32(acc[i][j], bv[j], av);
            }
        }
    }
}

/// The AVX-512 VNNI kernel (`vnni`), tiles of 4 rows × 4 columns.
///
/// # Safety
/// AVX-512F/BW/VL/VNNI present; `a`, `b`, `c` valid for `m·k`, `n·k`, `m·n` elements.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn avx512vnni_gemm_i8_i32_4x4(m: usize, n: usize, k: usize, a: *const i8, b: *const i8, c: *mut i32) {
    // SAFETY: as in `avx2_gemm_i8_i32_4x3`; the features per the contract.
    unsafe { drive!(tile_vnni, rowsum_vnni, [1, 2, 3, 4], 4, m, n, k, a, b, c) }
}

/// K values per i32 accumulation block of the i16×i8 kernel: a `vpmaddwd` lane gains at
/// most 2·2¹⁵·2⁷ = 2²³ per step of 16, so 128 steps (2048 values) stay below 2³¹; each
/// block's lanes are then added up in i64.
const I16_BLOCK: usize = 2048;

/// `R` rows of `a` (int16) against `C` rows of `b` (int8), exact in i64.
///
/// # Safety
/// AVX2 present; each `a[i]` valid for `k` i16, each `b[j]` for `k` bytes.
#[inline(always)]
unsafe fn tile16_avx2<const R: usize, const C: usize>(
    k: usize,
    a: [*const i16; R],
    b: [*const i8; C],
) -> [[i64; C]; R] {
    // SAFETY: loads read `[p, p + 16)` with `p + 16 ≤ k`; AVX2 per the contract.
    unsafe {
        let mut out = [[0i64; C]; R];
        let mut p = 0;
        while p + 16 <= k {
            let end = (p + I16_BLOCK).min(k);
            let mut acc = [[_mm256_setzero_si256(); C]; R];
            while p + 16 <= end {
                let mut bv = [_mm256_setzero_si256(); C];
                for j in 0..C {
                    bv[j] = _mm256_cvtepi8_epi16(_mm_loadu_si128(b[j].add(p).cast()));
                }
                for i in 0..R {
                    let av = _mm256_loadu_si256(a[i].add(p).cast());
                    for j in 0..C {
                        acc[i][j] = _mm256_add_epi32(acc[i][j], _mm256_madd_epi16(av, bv[j]));
                    }
                }
                p += 16;
            }
            for i in 0..R {
                for j in 0..C {
                    let mut lanes = [0i32; 8];
                    _mm256_storeu_si256(lanes.as_mut_ptr().cast(), acc[i][j]);
                    out[i][j] += lanes.iter().map(|&v| v as i64).sum::<i64>();
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

/// The AVX2 int16×int8 kernel (`avx2` and `vnni`): tiles of 3 activation rows × 4 weight
/// rows (12 accumulators + 4 weight vectors of 16 ymm).
///
/// # Safety
/// AVX2 present; `a`, `b`, `c` valid for `m·k`, `n·k`, `m·n` elements.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn avx2_gemm_i16_i8_i64_3x4(m: usize, n: usize, k: usize, a: *const i16, b: *const i8, c: *mut i64) {
    // SAFETY: rows < m of `a`, < n of `b`, stores to `c[i·n + j]` with i < m, j < n.
    unsafe { super::drive16!(tile16_avx2, 3, 4, m, n, k, a, b, c) }
}

/// K values per i32 block of the AVX-512 int16×int8 kernel: a `vpdpwssd` lane gains at
/// most 2·2¹⁵·2⁷ = 2²³ per step of 32 values, so 128 steps (4096 values) stay below 2³¹.
const I16_BLOCK_512: usize = 4096;

/// `R` rows of `a` (int16) against `C` rows of `b` (int8), exact in i64: 32 weights
/// sign-extended by `vpmovsxbw` (ymm memory → zmm), `vpdpwssd` into i32, the K tail
/// masked.
///
/// # Safety
/// AVX-512F/BW/VL/VNNI present; each `a[i]` valid for `k` i16, each `b[j]` for `k` bytes.
#[inline(always)]
unsafe fn tile16_vnni<const R: usize, const C: usize>(
    k: usize,
    a: [*const i16; R],
    b: [*const i8; C],
) -> [[i64; C]; R] {
    // SAFETY: full loads read `[p, p + 32)` with `p + 32 ≤ k`, the tail loads are masked to
    // `[p, k)`; AVX-512 per the contract.
    unsafe {
        let mut out = [[0i64; C]; R];
        let mut p = 0;
        while p < k {
            let end = (p + I16_BLOCK_512).min(k);
            let mut acc = [[_mm512_setzero_si512(); C]; R];
            while p < end {
                let mask = if p + 32 <= end { u32::MAX } else { (1u32 << (end - p)) - 1 };
                let mut bv = [_mm512_setzero_si512(); C];
                for j in 0..C {
                    bv[j] = _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(mask, b[j].add(p)));
                }
                for i in 0..R {
                    let av = _mm512_maskz_loadu_epi16(mask, a[i].add(p));
                    for j in 0..C {
                        acc[i][j] = _mm512_dpwssd_epi32(acc[i][j], av, bv[j]);
                    }
                }
                p += 32;
            }
            p = end;
            for i in 0..R {
                for j in 0..C {
                    let v = acc[i][j];
                    let lo = _mm512_cvtepi32_epi64(_mm512_castsi512_si256(v));
                    let hi = _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64::<1>(v));
                    out[i][j] += _mm512_reduce_add_epi64(_mm512_add_epi64(lo, hi));
                }
            }
        }
        out
    }
}

/// The AVX-512 VNNI int16×int8 kernel (`vnni`). From 16 rows up, with `K` a multiple of 4,
/// the broadcast form on the two bytes of each activation ([`vnni_bcast16`]); 2-15 rows
/// with `K` a multiple of 16, the quad form ([`vnni_quad16`], twice from 9 rows); 5-8 rows
/// with `K` a multiple of 8, the pair form ([`vnni_pair16`]); the `vpdpwssd` tiles
/// ([`tile16_vnni`]) otherwise.
///
/// # Safety
/// AVX-512F/BW/VL/VNNI present; `a`, `b`, `c` valid for `m·k`, `n·k`, `m·n` elements.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn avx512vnni_gemm_i16_i8_i64(
    m: usize,
    n: usize,
    k: usize,
    a: *const i16,
    b: *const i8,
    c: *mut i64,
) {
    // SAFETY: the same contract, passed on (no sums).
    unsafe { avx512vnni_gemm_i16_i8_i64_sums(m, n, k, a, b, core::ptr::null(), c) }
}

/// [`avx512vnni_gemm_i16_i8_i64`] with the weight row sums `sums` (null: computed here).
///
/// # Safety
/// As [`avx512vnni_gemm_i16_i8_i64`]; `sums` null or valid for `n` values, each `Σ_k b[j][k]`.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn avx512vnni_gemm_i16_i8_i64_sums(
    m: usize,
    n: usize,
    k: usize,
    a: *const i16,
    b: *const i8,
    sums: *const f32,
    c: *mut i64,
) {
    let ws = WeightSums::new(sums, k);
    // SAFETY: the same contract, passed on.
    unsafe {
        if m >= PANEL && k.is_multiple_of(4) {
            vnni_bcast16(m, n, k, a, b, ws, c)
        } else if m >= QUAD_MIN && k.is_multiple_of(16) {
            // 2-8 tokens in one call, 9-15 in two: the weights stream twice, which is still
            // faster than the 4×4 tiles (`vnni_quad16`).
            let first = m.min(2 * QUAD_TOKENS);
            vnni_quad16(first, n, k, a, b, ws, c);
            let rest = m - first;
            if rest >= QUAD_MIN {
                vnni_quad16(rest, n, k, a.add(first * k), b, ws, c.add(first * n));
            } else if rest > 0 {
                avx512vnni_gemm_i16_i8_i64_4x4(rest, n, k, a.add(first * k), b, c.add(first * n));
            }
        } else if (PAIR16_MIN..=PAIR_TOKENS).contains(&m) && k.is_multiple_of(8) {
            vnni_pair16(m, n, k, a, b, ws, c)
        } else {
            avx512vnni_gemm_i16_i8_i64_4x4(m, n, k, a, b, c)
        }
    }
}

/// The AVX-512 VNNI int16×int8 tiles: 4 activation rows × 4 weight rows.
///
/// # Safety
/// AVX-512F/BW/VL/VNNI present; `a`, `b`, `c` valid for `m·k`, `n·k`, `m·n` elements.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn avx512vnni_gemm_i16_i8_i64_4x4(m: usize, n: usize, k: usize, a: *const i16, b: *const i8, c: *mut i64) {
    // SAFETY: rows < m of `a`, < n of `b`, stores to `c[i·n + j]` with i < m, j < n.
    unsafe { super::drive16!(tile16_vnni, 4, 4, m, n, k, a, b, c) }
}

/// Tokens per activation panel of the broadcast VNNI kernel (one zmm of i32 lanes).
const PANEL: usize = 16;
/// K bytes per packed chunk of the broadcast VNNI kernel: its stack panel is at most
/// `2·PANEL·KC` = 32 KiB (L1-sized), whatever `K` is; longer rows add chunk results into `c`.
const KC: usize = 1024;
/// Weight rows per tile of the broadcast VNNI kernel (with two panels: 24 accumulators, two
/// activation vectors, of 32 zmm).
const BR: usize = 12;
/// The most weight rows per column block of the broadcast VNNI kernel (the block's row sums
/// live in a stack array of this many i32).
pub(super) const NB_MAX: usize = 1020;

/// The AVX-512 VNNI kernel (`vnni`). From 8 rows up, with `K` a multiple of 4, the
/// broadcast form ([`vnni_bcast`]); the dot-product tiles ([`tile_vnni`]) otherwise.
///
/// # Safety
/// AVX-512F/BW/VL/VNNI present; `a`, `b`, `c` valid for `m·k`, `n·k`, `m·n` elements.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn avx512vnni_gemm_i8_i32(m: usize, n: usize, k: usize, a: *const i8, b: *const i8, c: *mut i32) {
    // SAFETY: the same contract, passed on (no sums).
    unsafe { avx512vnni_gemm_i8_i32_sums(m, n, k, a, b, core::ptr::null(), c) }
}

/// [`avx512vnni_gemm_i8_i32`] with the weight row sums `sums` (null: computed here).
///
/// # Safety
/// As [`avx512vnni_gemm_i8_i32`]; `sums` null or valid for `n` values, each `Σ_k b[j][k]`.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn avx512vnni_gemm_i8_i32_sums(
    m: usize,
    n: usize,
    k: usize,
    a: *const i8,
    b: *const i8,
    sums: *const f32,
    c: *mut i32,
) {
    let ws = WeightSums::new(sums, k);
    // SAFETY: the same contract, passed on.
    unsafe {
        if (QUAD_MIN..=2 * QUAD_TOKENS).contains(&m) && k.is_multiple_of(16) {
            vnni_steps::<16>(m, n, k, a, b, ws, c)
        } else if (8..2 * PAIR_TOKENS).contains(&m) && k.is_multiple_of(8) {
            vnni_steps::<8>(m, n, k, a, b, ws, c)
        } else if m >= 8 && k.is_multiple_of(4) {
            vnni_bcast(m, n, k, a, b, ws, c)
        } else {
            avx512vnni_gemm_i8_i32_4x4(m, n, k, a, b, c)
        }
    }
}

/// The weight row sums a caller gave (`Σ_k b[j][k]`, exact integers in f32), when usable:
/// the kernels then correct the 0x80 bias once, in the first K chunk, with `128·Σ` of the
/// whole row (the chunks' results are added, so their corrections may be), instead of
/// summing each chunk of each row on every call.
#[derive(Clone, Copy)]
struct WeightSums(*const f32);

impl WeightSums {
    /// `sums` (null: none) for rows of `k` bytes. Not used past `K = 2¹⁶`, where the int16
    /// forms' first-chunk value `Σ hi·b − 128·Σ_rest b` could leave i32.
    fn new(sums: *const f32, k: usize) -> Self {
        WeightSums(if k <= 1 << 16 { sums } else { core::ptr::null() })
    }

    /// The bias correction of weight row `j` in the chunk at `k0`, if sums were given.
    ///
    /// # Safety
    /// The sums, if given, are valid for row `j`.
    #[inline(always)]
    unsafe fn corr(self, j: usize, k0: usize) -> Option<i32> {
        // SAFETY: row j's sum, per the contract; an exact integer below 2²⁴ in magnitude.
        (!self.0.is_null()).then(|| if k0 == 0 { (unsafe { *self.0.add(j) } as i32).wrapping_mul(128) } else { 0 })
    }
}

/// The broadcast form of the VNNI GEMM, for the shapes of a forward pass (many tokens).
///
/// The weights stay as stored (row-major along K) and are the *signed* operand of
/// `vpdpbusd`: four bytes of one weight row broadcast to all 16 lanes straight from memory.
/// The activations are repacked per call into a stack panel, four K bytes per i32 lane
/// (`[K/4][16 tokens][4]`), biased to unsigned (`a ^ 0x80` = `a + 128`). One zmm
/// accumulator then holds one weight row for 16 tokens, with no horizontal reductions; per
/// 4 K values a tile of 12 weight rows × 2 panels issues 24 `vpdpbusd` for 2 activation
/// loads and 12 weight broadcasts (48 bytes of weight traffic).
///
/// The bias of 128 on every token adds `128·Σ b` to each result of weight row `b`. Those
/// row sums are computed once per column block and K chunk (one `vpdpbusd` per 64 weight
/// bytes, against a vector of ones) and subtracted at the store. Below 16 tokens that pass
/// would cost more than it saves (the weights are streamed once), so lane 15 of the one
/// panel is a *bias lane* instead: its activation bytes are all 0x80, so it accumulates
/// exactly `128·Σ b`, and one lane permute takes it back. Exact: every product and
/// sum is a wrapping i32 and the true result fits (as in [`tile_vnni`]); padding lanes are
/// zero bytes and are never stored.
///
/// # Safety
/// AVX-512F/BW/VL/VNNI present; `k % 4 == 0`; `a`, `b`, `c` valid for `m·k`, `n·k`, `m·n`.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn vnni_bcast(m: usize, n: usize, k: usize, a: *const i8, b: *const i8, ws: WeightSums, c: *mut i32) {
    // Every lane a tile reads is written by `pack_panel` first.
    let mut panel = core::mem::MaybeUninit::<Lines<[u32; 2 * PANEL * KC / 4]>>::uninit();
    let panel = panel.as_mut_ptr().cast::<u32>();
    let mut sums = [0i32; NB_MAX];
    let bias_lane = m < PANEL;
    let mut k0 = 0;
    while k0 < k {
        let kc = (k - k0).min(KC);
        let nb = col_block(kc);
        let mut j0 = 0;
        while j0 < n {
            let j1 = (j0 + nb).min(n);
            if !bias_lane {
                // SAFETY: rows j0 .. j1 ≤ n hold bytes k0 .. k0 + kc ≤ k; j1 - j0 ≤ nb ≤
                // NB_MAX; AVX-512 per the contract.
                unsafe { block_row_sums(b, k, k0, kc, (j0, j1), ws, &mut sums) };
            }
            let mut i = 0;
            while i < m {
                let rows = (m - i).min(2 * PANEL);
                let p = rows.div_ceil(PANEL);
                // SAFETY: rows i .. i + rows < m hold bytes k0 .. k0 + kc ≤ k; the panel
                // holds 2·PANEL·KC/4 ≥ p·PANEL·kc/4 u32; AVX-512 per the contract.
                unsafe {
                    for q in 0..p {
                        let count = (rows - q * PANEL).min(PANEL);
                        let dst = panel.add(q * PANEL);
                        pack_panel(a.add((i + q * PANEL) * k + k0), k, count, kc / 4, dst, p, bias_lane);
                    }
                }
                let mut j = j0;
                while j < j1 {
                    let cols = (j1 - j).min(BR);
                    // The last row tile of a block requests the same tile of the next
                    // block into L2; the first block's first row tile, the rows two tiles
                    // ahead.
                    let last = i + rows >= m;
                    let first = i == 0 && j0 == 0 && k0 == 0;
                    let ahead = if last {
                        if j1 < n {
                            Some((j1 + (j - j0), k0, kc))
                        } else if k0 + kc < k {
                            Some((j - j0, k0 + kc, (k - k0 - kc).min(KC)))
                        } else {
                            None
                        }
                    } else {
                        None
                    };
                    let ahead = if first && !last { Some((j + 2 * BR, k0, kc)) } else { ahead };
                    let pf = ahead.and_then(|(r0, pk, len)| Prefetch::tile(b, n, k, r0, pk, len));
                    // SAFETY: rows j .. j + cols ≤ j1 ≤ n, k0 < k.
                    let (bp, corr) = unsafe { tile_rows(b, k, k0, (j0, j, cols), &sums) };
                    // SAFETY: the panel holds kc/4 steps of `p·PANEL` u32; each weight pointer
                    // is valid for kc bytes; the tile's outputs, rows i .. i + rows < m and
                    // columns j .. j + cols ≤ n of `c`, are valid; AVX-512 per the contract.
                    unsafe {
                        let out = c.add(i * n + j);
                        let panel = panel.cast_const().cast();
                        if p == 2 {
                            bcast_tile::<2>(kc / 4, panel, &bp, Some(&corr), out, n, rows, cols, k0 > 0, pf);
                        } else {
                            let corr = (!bias_lane).then_some(&corr);
                            bcast_tile::<1>(kc / 4, panel, &bp, corr, out, n, rows, cols, k0 > 0, pf);
                        }
                    }
                    j += BR;
                }
                i += rows;
            }
            j0 = j1;
        }
        k0 += kc;
    }
}

/// Tokens per panel of the pair form ([`vnni_steps`]): 8 tokens × 8 bytes fill one zmm.
const PAIR_TOKENS: usize = 8;

/// Tokens per panel of the quad form ([`vnni_steps`]): 4 tokens × 16 bytes fill one zmm.
const QUAD_TOKENS: usize = 4;
/// The fewest tokens the quad forms take: one token keeps the 4×4 dot tiles (`gemm_one vnni
/// 1 768 768`: 58 against 50 Gelem/s with the weights in L2; int16, `gemm_one vnni 1 768 3072
/// 300 i16`: 48 against 34).
const QUAD_MIN: usize = 2;

/// The broadcast forms for fewer than 16 tokens, `W` K bytes per step: the activations
/// are packed once per K chunk into one or two panels of `64 / W` tokens, then the weights
/// are streamed once, 12 rows at a time, with no L2 blocking.
///
/// The pair form (`W` = 8) takes 9 to 15 tokens (8 with K not a multiple of 16), where
/// [`vnni_bcast`]'s 16-token panels would be half empty and its one panel per step makes it
/// load-bound (13 loads per 12 `vpdpbusd`). A step covers 8 K bytes: lanes `2t` and `2t + 1` of a panel hold token `t`'s bytes
/// `8s .. 8s + 4` and `8s + 4 .. 8s + 8`, and each weight row's 8 bytes are broadcast as
/// one qword (`vpbroadcastq`), so that the even lanes meet the first 4 weight bytes and the
/// odd lanes the next 4: every lane does useful work, twice the K per `vpdpbusd` of a
/// half-filled 16-token panel. With 9-15 tokens two panels share each weight broadcast.
/// At the store the two lanes of a token are added (exact in wrapping i32, as everything
/// here) and the 0x80 bias is taken back with the weight row sums of the chunk.
///
/// The quad form (`W` = 16) takes 2 to 8 tokens: lanes `4t .. 4t + 4` of a panel hold
/// token `t`'s bytes `16s .. 16s + 16` and each weight row's 16 bytes are
/// broadcast to every 128-bit lane (`vbroadcasti32x4`), so two panels (8 tokens) share each
/// weight load: 14 loads per 24 `vpdpbusd`, where the pair form at 8 tokens issues 13 per
/// 12. At the store, four accumulators at a time reduce to one vector (lane `4t + r`: token
/// `t`, weight row `r`), and a 4×4 shuffle of 128-bit lanes gives each token its 12 results:
/// about 40 operations per panel where a 16×16 transpose took 64 shuffles alone.
///
/// # Safety
/// AVX-512F/BW/VL/VNNI present; `W` is 8 or 16; `m ≤ 2·64/W`, `k % W == 0`; `a`, `b`, `c`
/// valid for `m·k`, `n·k`, `m·n`.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn vnni_steps<const W: usize>(
    m: usize,
    n: usize,
    k: usize,
    a: *const i8,
    b: *const i8,
    ws: WeightSums,
    c: *mut i32,
) {
    let tokens = 64 / W;
    // Two panels of KC/W steps × 64 bytes, the most either form packs; every lane a tile
    // reads is written by `pack_steps` first.
    let mut panel = core::mem::MaybeUninit::<Lines<[u64; 2 * 64 * KC / 8 / 8]>>::uninit();
    let panel = panel.as_mut_ptr().cast::<u8>();
    let p = m.div_ceil(tokens);
    let mut k0 = 0;
    while k0 < k {
        let kc = (k - k0).min(KC);
        // SAFETY: rows q·tokens .. q·tokens + count ≤ m hold bytes k0 .. k0 + kc ≤ k; the
        // panel holds 2·64·KC/8 ≥ p·64·kc/W bytes.
        unsafe {
            for q in 0..p {
                let count = (m - q * tokens).min(tokens);
                pack_steps::<W>(a.add(q * tokens * k + k0), k, count, kc / W, panel.add(q * 64), p);
            }
        }
        let mut j = 0;
        while j < n {
            let cols = (n - j).min(BR);
            // The rows two tiles ahead, into L2 while this tile runs (`bcast_acc_pf`).
            let pf = Prefetch::tile(b, n, k, j + 2 * BR, k0, kc);
            // SAFETY: rows j .. j + cols ≤ n, offset k0 < k; each row holds kc bytes from
            // there; AVX-512 per the contract.
            let bp = unsafe { tile_ptrs(b, k, k0, j, cols) };
            // SAFETY: as above, and the sums, if given, hold rows j .. j + cols.
            let corr = unsafe { tile_corr(&bp, kc, ws, (j, cols), k0) };
            // SAFETY: the panel holds kc/W steps of p panels; each weight pointer is valid
            // for kc bytes; the tile's outputs, rows 0 .. m and columns j .. j + cols ≤ n of
            // `c`, are valid; AVX-512 per the contract.
            unsafe {
                let (panel, out, add) = (panel.cast_const(), c.add(j), k0 > 0);
                match (W, p) {
                    (16, 2) => quad_tile::<2>(kc / W, panel, &bp, &corr, out, n, m, cols, add, pf),
                    (16, _) => quad_tile::<1>(kc / W, panel, &bp, &corr, out, n, m, cols, add, pf),
                    (_, 2) => pair_tile::<2>(kc / W, panel, &bp, &corr, out, n, m, cols, add, pf),
                    _ => pair_tile::<1>(kc / W, panel, &bp, &corr, out, n, m, cols, add, pf),
                }
            }
            j += BR;
        }
        k0 += kc;
    }
}

/// `steps` steps of 8 K values of the pair form: `P` panels against `BR` weight rows, then
/// stored (or, with `add`, added) to `rows` rows × `cols` columns at `c`, rows `n` apart.
///
/// # Safety
/// AVX-512F/BW/VL/VNNI present; `panel` valid for `steps·P·64` bytes, each `b[r]` for
/// `8·steps` bytes; `rows ≤ 8·P`, `cols ≤ BR`; `c` valid for those rows and columns.
#[inline(always)]
#[allow(clippy::too_many_arguments)] // one tile's geometry, passed down from one caller
unsafe fn pair_tile<const P: usize>(
    steps: usize,
    panel: *const u8,
    b: &[*const i8; BR],
    corr: &[i32; BR],
    c: *mut i32,
    n: usize,
    rows: usize,
    cols: usize,
    add: bool,
    pf: Option<Prefetch>,
) {
    // SAFETY: loads inside the panel and the weight rows, stores inside the tile of `c`,
    // per the contract.
    unsafe {
        let acc = bcast_acc_pf::<P, 8, BR>(steps, panel, b, pf);
        let mask: __mmask16 = (1u16 << cols) - 1;
        for q in 0..P {
            // Lane 2t: token t's two halves added, less the bias correction.
            let v: [__m512i; 16] = core::array::from_fn(|r| match acc.get(r) {
                Some(a) => _mm512_sub_epi32(pair_sum(a[q]), _mm512_set1_epi32(corr[r])),
                None => _mm512_setzero_si512(),
            });
            let v = transpose_16x16(v);
            for t in 0..rows.saturating_sub(q * PAIR_TOKENS).min(PAIR_TOKENS) {
                let dst = c.add((q * PAIR_TOKENS + t) * n);
                let row = v[2 * t];
                let row = if add { _mm512_add_epi32(row, _mm512_maskz_loadu_epi32(mask, dst)) } else { row };
                _mm512_mask_storeu_epi32(dst, mask, row);
            }
        }
    }
}

/// `steps` steps of 16 K values of the quad form: `P` panels against `BR` weight rows, then
/// stored (or, with `add`, added) to `rows` rows × `cols` columns at `c`, rows `n` apart.
///
/// # Safety
/// AVX-512F/BW/VL/VNNI present; `panel` valid for `steps·P·64` bytes, each `b[r]` for
/// `16·steps` bytes; `rows ≤ 4·P`, `cols ≤ BR`; `c` valid for those rows and columns.
#[inline(always)]
#[allow(clippy::too_many_arguments)] // one tile's geometry, passed down from one caller
unsafe fn quad_tile<const P: usize>(
    steps: usize,
    panel: *const u8,
    b: &[*const i8; BR],
    corr: &[i32; BR],
    c: *mut i32,
    n: usize,
    rows: usize,
    cols: usize,
    add: bool,
    pf: Option<Prefetch>,
) {
    // SAFETY: loads inside the panel and the weight rows, stores inside the tile of `c`,
    // per the contract.
    unsafe {
        let acc = bcast_acc_pf::<P, 16, BR>(steps, panel, b, pf);
        let mask: __mmask16 = (1u16 << cols) - 1;
        // Lane 4t + r of group g: the bias correction of weight row 4g + r.
        // (Loops, not closures: a closure would not be compiled for AVX-512.)
        let mut corr4 = [_mm512_setzero_si512(); 3];
        for (g, cg) in corr4.iter_mut().enumerate() {
            *cg = _mm512_broadcast_i32x4(_mm_loadu_si128(corr[4 * g..].as_ptr().cast()));
        }
        #[allow(clippy::needless_range_loop)] // `q` picks the panel inside each row's accumulators
        for q in 0..P {
            // Lane 4t + r of u[g]: token t's four lanes of weight row 4g + r added (two
            // rounds of unpack and add), less the correction.
            let mut u = [_mm512_setzero_si512(); 3];
            for (g, ug) in u.iter_mut().enumerate() {
                let s = quad_sum([acc[4 * g][q], acc[4 * g + 1][q], acc[4 * g + 2][q], acc[4 * g + 3][q]]);
                *ug = _mm512_sub_epi32(s, corr4[g]);
            }
            // Token t's 12 results: 128-bit lane t of u[0], u[1], u[2].
            let z = _mm512_setzero_si512();
            let x0 = _mm512_shuffle_i32x4::<0x44>(u[0], u[1]);
            let x1 = _mm512_shuffle_i32x4::<0xEE>(u[0], u[1]);
            let y0 = _mm512_shuffle_i32x4::<0x44>(u[2], z);
            let y1 = _mm512_shuffle_i32x4::<0xEE>(u[2], z);
            let v = [
                _mm512_shuffle_i32x4::<0x88>(x0, y0),
                _mm512_shuffle_i32x4::<0xDD>(x0, y0),
                _mm512_shuffle_i32x4::<0x88>(x1, y1),
                _mm512_shuffle_i32x4::<0xDD>(x1, y1),
            ];
            for (t, &row) in v.iter().enumerate().take(rows.saturating_sub(q * QUAD_TOKENS).min(QUAD_TOKENS)) {
                let dst = c.add((q * QUAD_TOKENS + t) * n);
                let row = if add { _mm512_add_epi32(row, _mm512_maskz_loadu_epi32(mask, dst)) } else { row };
                _mm512_mask_storeu_epi32(dst, mask, row);
            }
        }
    }
}

/// A pair-form accumulator with lane `2t` = lanes `2t` + `2t + 1` (wrapping).
///
/// # Safety
/// AVX-512F present.
#[inline(always)]
unsafe fn pair_sum(a: __m512i) -> __m512i {
    // SAFETY: register-only AVX-512F instructions.
    unsafe { _mm512_add_epi32(a, _mm512_srli_epi64::<32>(a)) }
}

/// The fewest tokens for which [`vnni_pair16`] beats the `vpdpwssd` tiles (`gemm_one vnni M
/// 768 3072 300 i16`: 4 rows 122 against 66 Gelem/s, 5 rows 91 against 92, 7 rows 71 against
/// 127): its cost does not depend on the token count up to 8. Where `K` is a multiple of
/// 16 (every real model's FFN size), [`vnni_quad16`] runs instead.
const PAIR16_MIN: usize = 5;

/// The pair form for int16 activations and at most 8 tokens: [`vnni_steps`]'s steps of 8 K
/// values with [`vnni_bcast16`]'s split of each activation into its high byte (biased by
/// 0x80, corrected with the weight row sums) in panel 0 and its low byte in panel 1. The
/// pair sums are moved to lanes `0..8` and stored as [`vnni_bcast16`] stores.
///
/// # Safety
/// AVX-512F/BW/VL/VNNI present; `m ≤ 8`, `k % 8 == 0`; `a`, `b`, `c` valid for `m·k`,
/// `n·k`, `m·n`.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn vnni_pair16(m: usize, n: usize, k: usize, a: *const i16, b: *const i8, ws: WeightSums, c: *mut i64) {
    // Every lane a tile reads is written by `pack_pairs16` first.
    let mut panel = core::mem::MaybeUninit::<Lines<[u64; 2 * PAIR_TOKENS * KC / 8]>>::uninit();
    let panel = panel.as_mut_ptr().cast::<u64>();
    let mut k0 = 0;
    while k0 < k {
        let kc = (k - k0).min(KC);
        // SAFETY: rows 0 .. m hold values k0 .. k0 + kc ≤ k; the panel holds 2·8·kc/8 u64.
        unsafe { pack_pairs16(a.add(k0), k, m, kc / 8, panel) };
        let mut j = 0;
        while j < n {
            let cols = (n - j).min(BR);
            // SAFETY: rows j .. j + cols ≤ n, offset k0 < k; each row holds kc bytes from
            // there.
            let bp = unsafe { tile_ptrs(b, k, k0, j, cols) };
            // SAFETY: as above; the panel holds kc/8 steps of 2 panels; the tile's outputs,
            // rows 0 .. m ≤ 8 and columns j .. j + cols ≤ n of `c`, are valid; AVX-512 per
            // the contract.
            unsafe {
                let corr = tile_corr(&bp, kc, ws, (j, cols), k0);
                let mut acc = bcast_acc::<2, 8, BR>(kc / 8, panel.cast_const().cast(), &bp);
                let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 0, 0, 0, 0, 0, 0, 0, 0);
                // (Loops, not `map`: a closure would not be compiled for AVX-512.)
                for a in acc.iter_mut() {
                    for v in a.iter_mut() {
                        *v = _mm512_permutexvar_epi32(even, pair_sum(*v));
                    }
                }
                store16(acc, &corr, c.add(j), n, m, cols, k0 > 0);
            }
            j += BR;
        }
        k0 += kc;
    }
}

/// Weight rows per tile of [`vnni_quad16`]: four panels (two groups of 4 tokens × the high
/// and the low bytes) × 6 rows = 24 accumulators.
const QUAD16_ROWS: usize = 6;

/// The quad form for int16 activations and at most 8 tokens: [`vnni_steps`]'s quad steps
/// (4 tokens × 16 K values per panel, each weight row's 16 bytes broadcast to the four
/// 128-bit lanes) with [`vnni_bcast16`]'s split of each activation into its high byte
/// (biased by 0x80, corrected with the weight row sums) and its low byte. Each group of 4
/// tokens has a high-byte and a low-byte panel, so 8 tokens make four panels and a tile
/// takes 6 weight rows: 10 loads per 24 `vpdpbusd`, where [`vnni_pair16`] issues 14 (12
/// qword broadcasts and 2 panels), and every weight line is touched 4 times instead of 8.
/// `gemm_one vnni M 768 3072 300 i16` (the FFN output's shape, weights from L3), best
/// Gelem/s before / after: 8 rows 171-188 / 212; 5 rows 116-121 / 134-137; 4 rows (the
/// `vpdpwssd` tiles before) 120 / 132-133; 2 rows 48 / 67. From 9 to 15 rows it runs
/// twice (8 rows, then the rest), which beats both the tiles (12 rows 120 / 180, 9 rows 98
/// / 151, 15 rows 91 / 135-196) and the 16-token broadcast form on a part-filled panel
/// (136, 103 and 166 at 12, 9 and 15 rows). For int8 the pair form stays at 9-15 tokens:
/// two quad-form calls were slower there (12 rows 216-218 against 267-272).
///
/// # Safety
/// AVX-512F/BW/VL/VNNI present; `m ≤ 8`, `k % 16 == 0`; `a`, `b`, `c` valid for `m·k`,
/// `n·k`, `m·n`.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn vnni_quad16(m: usize, n: usize, k: usize, a: *const i16, b: *const i8, ws: WeightSums, c: *mut i64) {
    // Four panels of KC/16 steps × 64 bytes; every lane a tile reads is written by
    // `pack_quads16` first.
    let mut panel = core::mem::MaybeUninit::<Lines<[u64; 4 * 64 * (KC / 16) / 8]>>::uninit();
    let panel = panel.as_mut_ptr().cast::<u8>();
    let p = 2 * m.div_ceil(QUAD_TOKENS);
    let mut k0 = 0;
    while k0 < k {
        let kc = (k - k0).min(KC);
        // SAFETY: rows 0 .. m hold values k0 .. k0 + kc ≤ k; the panel holds 4·64·KC/16 ≥
        // p·64·kc/16 bytes.
        unsafe { pack_quads16(a.add(k0), k, m, kc / 16, panel, p) };
        let mut j = 0;
        while j < n {
            let cols = (n - j).min(QUAD16_ROWS);
            // SAFETY: rows j .. j + cols ≤ n, offset k0 < k; each row holds kc bytes from
            // there; the sums, if given, hold those rows; the panel holds kc/16 steps of p
            // panels; the tile's outputs, rows 0 .. m and columns j .. j + cols of `c`, are
            // valid; AVX-512 per the contract.
            unsafe {
                let bp = tile_ptrs::<QUAD16_ROWS>(b, k, k0, j, cols);
                let corr = tile_corr(&bp, kc, ws, (j, cols), k0);
                let (panel, out, add) = (panel.cast_const(), c.add(j), k0 > 0);
                if p == 4 {
                    quad16_tile::<4>(kc / 16, panel, &bp, &corr, out, n, m, cols, add);
                } else {
                    quad16_tile::<2>(kc / 16, panel, &bp, &corr, out, n, m, cols, add);
                }
            }
            j += QUAD16_ROWS;
        }
        k0 += kc;
    }
}

/// `steps` steps of 16 K values of [`vnni_quad16`]: `P` panels (high, low, high, low)
/// against 6 weight rows; `256·(high − corr) + low` per token and weight row, in i64,
/// stored (or, with `add`, added) to `rows` rows × `cols` columns at `c`, rows `n` apart.
///
/// # Safety
/// AVX-512F/BW/VL/VNNI present; `panel` valid for `steps·P·64` bytes, each `b[r]` for
/// `16·steps` bytes; `rows ≤ 2·P`, `cols ≤ 6`; `c` valid for those rows and columns.
#[inline(always)]
#[allow(clippy::too_many_arguments)] // one tile's geometry, passed down from one caller
unsafe fn quad16_tile<const P: usize>(
    steps: usize,
    panel: *const u8,
    b: &[*const i8; QUAD16_ROWS],
    corr: &[i32; QUAD16_ROWS],
    c: *mut i64,
    n: usize,
    rows: usize,
    cols: usize,
    add: bool,
) {
    // SAFETY: loads inside the panel and the weight rows, stores inside the tile of `c`,
    // per the contract; register-only otherwise.
    unsafe {
        let acc = bcast_acc::<P, 16, QUAD16_ROWS>(steps, panel, b);
        let z = _mm512_setzero_si512();
        // Lane 4t + r: the correction of weight row r (rows 0-3), of row 4 + r (rows 4-5).
        let mut c8 = [0i32; 8];
        c8[..QUAD16_ROWS].copy_from_slice(corr);
        let corr0 = _mm512_broadcast_i32x4(_mm_loadu_si128(c8.as_ptr().cast()));
        let corr1 = _mm512_broadcast_i32x4(_mm_loadu_si128(c8[4..].as_ptr().cast()));
        let mask: __mmask8 = (1u8 << cols) - 1;
        #[allow(clippy::needless_range_loop)] // `g` picks the panels inside each row's accumulators
        for g in 0..P / 2 {
            // Lane 4t + r: token 4g + t's sum for weight row r (x0) and 4 + r (x1).
            let h0 = _mm512_sub_epi32(quad_sum([acc[0][2 * g], acc[1][2 * g], acc[2][2 * g], acc[3][2 * g]]), corr0);
            let h1 = _mm512_sub_epi32(quad_sum([acc[4][2 * g], acc[5][2 * g], z, z]), corr1);
            let l0 = quad_sum([acc[0][2 * g + 1], acc[1][2 * g + 1], acc[2][2 * g + 1], acc[3][2 * g + 1]]);
            let l1 = quad_sum([acc[4][2 * g + 1], acc[5][2 * g + 1], z, z]);
            // [x0 lane t, x1 lane t] in the low 256 bits: token t's six results (and two
            // unused lanes), for t = 0 .. 4.
            let hx = [_mm512_shuffle_i32x4::<0x44>(h0, h1), _mm512_shuffle_i32x4::<0xEE>(h0, h1)];
            let lx = [_mm512_shuffle_i32x4::<0x44>(l0, l1), _mm512_shuffle_i32x4::<0xEE>(l0, l1)];
            for t in 0..rows.saturating_sub(4 * g).min(QUAD_TOKENS) {
                // Token t is 128-bit lanes (t % 2, t % 2 + 2) of hx[t / 2].
                let (h, l) = if t % 2 == 0 {
                    (
                        _mm512_shuffle_i32x4::<0x08>(hx[t / 2], hx[t / 2]),
                        _mm512_shuffle_i32x4::<0x08>(lx[t / 2], lx[t / 2]),
                    )
                } else {
                    (
                        _mm512_shuffle_i32x4::<0x0D>(hx[t / 2], hx[t / 2]),
                        _mm512_shuffle_i32x4::<0x0D>(lx[t / 2], lx[t / 2]),
                    )
                };
                let v = hi_lo_i64(_mm512_castsi512_si256(h), _mm512_castsi512_si256(l));
                let dst = c.add((4 * g + t) * n);
                let v = if add { _mm512_add_epi64(v, _mm512_maskz_loadu_epi64(mask, dst)) } else { v };
                _mm512_mask_storeu_epi64(dst, mask, v);
            }
        }
    }
}

/// `256·h + l` per lane, widened to i64: an int16 form's high- and low-byte sums of eight
/// (token, weight row) pairs combined.
///
/// # Safety
/// AVX-512F present.
#[inline(always)]
unsafe fn hi_lo_i64(h: __m256i, l: __m256i) -> __m512i {
    // SAFETY: register-only AVX-512F instructions.
    unsafe { _mm512_add_epi64(_mm512_slli_epi64::<8>(_mm512_cvtepi32_epi64(h)), _mm512_cvtepi32_epi64(l)) }
}

/// Lane `4L + r` = the sum of accumulator `r`'s four lanes in 128-bit lane `L` (wrapping):
/// two rounds of unpack and add (the quad forms' stores).
///
/// # Safety
/// AVX-512F present.
#[inline(always)]
unsafe fn quad_sum([a0, a1, a2, a3]: [__m512i; 4]) -> __m512i {
    // SAFETY: register-only AVX-512F instructions.
    unsafe {
        let t0 = _mm512_add_epi32(_mm512_unpacklo_epi32(a0, a1), _mm512_unpackhi_epi32(a0, a1));
        let t1 = _mm512_add_epi32(_mm512_unpacklo_epi32(a2, a3), _mm512_unpackhi_epi32(a2, a3));
        _mm512_add_epi32(_mm512_unpacklo_epi64(t0, t1), _mm512_unpackhi_epi64(t0, t1))
    }
}

/// Packs `count` ≤ 8 rows of int16 activations (`k` apart from `a`) into the `p` panels of
/// [`vnni_quad16`], `steps` steps of 16 values: step `s` at `dst + s·p·64` (bytes) holds
/// for each group `g` of 4 tokens a panel of their high bytes (^ 0x80) at `+ 2g·64`, then
/// one of their low bytes at `+ (2g + 1)·64`, token `4g + i` at `+ 16i`; zeros for missing
/// tokens.
///
/// # Safety
/// AVX-512F/BW/VL present; each of the `count` rows valid for `16·steps` values; `dst` valid
/// for `steps·p·64` bytes; `count ≤ 2·p`.
#[inline(always)]
unsafe fn pack_quads16(a: *const i16, k: usize, count: usize, steps: usize, dst: *mut u8, p: usize) {
    // SAFETY: reads inside the first 16·steps values of the rows, writes inside the steps.
    unsafe {
        let bias = _mm_set1_epi8(0x80u8 as i8);
        for t in 0..2 * p {
            let (g, i) = (t / QUAD_TOKENS, t % QUAD_TOKENS);
            for s in 0..steps {
                let (hi, lo) = if t < count {
                    let v = _mm256_loadu_si256(a.add(t * k + 16 * s).cast());
                    (_mm_xor_si128(_mm256_cvtepi16_epi8(_mm256_srai_epi16::<8>(v)), bias), _mm256_cvtepi16_epi8(v))
                } else {
                    (_mm_setzero_si128(), _mm_setzero_si128())
                };
                let at = dst.add(s * p * 64 + 2 * g * 64 + 16 * i);
                _mm_storeu_si128(at.cast(), hi);
                _mm_storeu_si128(at.add(64).cast(), lo);
            }
        }
    }
}

/// Packs `count` ≤ 8 rows of int16 activations (`k` apart from `a`) into the two panels of
/// [`vnni_pair16`], interleaved per step: step `s` at `dst + 2s·8` (u64 units) holds each
/// token's 8 high bytes (^ 0x80), then at `+ 8` its 8 low bytes; zeros for missing tokens.
///
/// # Safety
/// AVX-512F/BW present; each of the `count` rows valid for `8·steps` values; `dst` valid for
/// `2·8·steps` u64.
#[inline(always)]
unsafe fn pack_pairs16(a: *const i16, k: usize, count: usize, steps: usize, dst: *mut u64) {
    // SAFETY: reads inside the first 8·steps values of the rows, writes inside the steps.
    unsafe {
        let low = _mm_set1_epi16(0xFF);
        let bias = _mm_set1_epi8(0x80u8 as i8);
        for t in 0..PAIR_TOKENS {
            for s in 0..steps {
                let (hi, lo) = if t < count {
                    let v = _mm_loadu_si128(a.add(t * k + 8 * s).cast());
                    let hi = _mm_xor_si128(_mm_packus_epi16(_mm_srli_epi16::<8>(v), low), bias);
                    let lo = _mm_packus_epi16(_mm_and_si128(v, low), low);
                    (_mm_cvtsi128_si64(hi) as u64, _mm_cvtsi128_si64(lo) as u64)
                } else {
                    (0, 0)
                };
                dst.add(2 * s * PAIR_TOKENS + t).write(hi);
                dst.add((2 * s + 1) * PAIR_TOKENS + t).write(lo);
            }
        }
    }
}

/// Packs `count` ≤ `64 / W` token rows (`k` bytes apart from `a`) into one panel of the
/// pair (`W` = 8) or quad (`W` = 16) form: step `s` at `dst + s·p·64` (bytes) holds each
/// token's bytes `W·s .. W·s + W`, biased by 0x80, then zeros for the missing tokens.
///
/// # Safety
/// `W` is a multiple of 8 dividing 64; each of the `count` rows valid for `W·steps` bytes;
/// `dst` valid for `steps` steps.
#[inline(always)]
unsafe fn pack_steps<const W: usize>(a: *const i8, k: usize, count: usize, steps: usize, dst: *mut u8, p: usize) {
    // SAFETY: reads inside the first W·steps bytes of the rows, writes inside the steps.
    unsafe {
        for t in 0..64 / W {
            for s in 0..steps {
                for h in (0..W).step_by(8) {
                    let v = if t < count {
                        (a.add(t * k + W * s + h) as *const u64).read_unaligned() ^ 0x8080_8080_8080_8080
                    } else {
                        0
                    };
                    (dst.add(s * p * 64 + t * W + h) as *mut u64).write_unaligned(v);
                }
            }
        }
    }
}

/// Weight rows per column block of the broadcast VNNI kernels for a K chunk of `kc` bytes:
/// about 256 KiB of weights, which stay in L2 while every token panel passes over them (the
/// panels are packed again per block: 2-6 % of the work), a multiple of the tile, at most
/// [`NB_MAX`]. Also `avxvnni`'s.
pub(super) fn col_block(kc: usize) -> usize {
    ((256 * 1024 / kc) / BR).clamp(1, NB_MAX / BR) * BR
}

/// [`col_block`] of the first K chunk of rows of `k` bytes (`super::Kernel::column_chunk`).
pub(super) fn first_col_block(k: usize) -> usize {
    col_block(k.clamp(1, KC))
}

/// The bias corrections of weight rows `j0..j1` in the K chunk at `k0` (`kc` bytes), into
/// `sums`: from the given weight sums, or `row_sum_x128` of the chunk of each row.
///
/// # Safety
/// AVX-512F/BW/VNNI present; rows `j0..j1` of `b` (`k` bytes apart) valid for `k0 + kc`
/// bytes; `ws` valid for those rows; `j1 - j0 ≤ NB_MAX`.
#[inline(always)]
#[allow(clippy::too_many_arguments)] // one block's geometry and its sums
unsafe fn block_row_sums(
    b: *const i8,
    k: usize,
    k0: usize,
    kc: usize,
    (j0, j1): (usize, usize),
    ws: WeightSums,
    sums: &mut [i32; NB_MAX],
) {
    for (j, s) in (j0..j1).zip(sums.iter_mut()) {
        // SAFETY: row j < j1 holds bytes k0 .. k0 + kc, and its sum if given; AVX-512 per
        // the contract.
        *s = unsafe { ws.corr(j, k0).unwrap_or_else(|| row_sum_x128(b.add(j * k + k0), kc)) };
    }
}

/// The weight rows of the tile at column `j` of a block starting at `j0` (`cols` of them
/// real; rows past the last are repeats of it, computed, not stored), at byte `k0`, and
/// their bias corrections from the block's `sums`.
///
/// # Safety
/// Rows `j .. j + cols` of `b` (`k` bytes apart) exist, `k0 < k`; `1 ≤ cols ≤ BR`.
#[inline(always)]
unsafe fn tile_rows(
    b: *const i8,
    k: usize,
    k0: usize,
    (j0, j, cols): (usize, usize, usize),
    sums: &[i32; NB_MAX],
) -> ([*const i8; BR], [i32; BR]) {
    // SAFETY: the contract, passed on.
    let bp = unsafe { tile_ptrs(b, k, k0, j, cols) };
    (bp, core::array::from_fn(|t| sums[j - j0 + t.min(cols - 1)]))
}

/// Pointers to byte `k0` of weight rows `j .. j + cols` (`k` bytes apart), the last one
/// repeated up to `N` rows (computed, not stored).
///
/// # Safety
/// Rows `j .. j + cols` of `b` exist, `k0 < k`; `1 ≤ cols ≤ BR`.
#[inline(always)]
unsafe fn tile_ptrs<const N: usize>(b: *const i8, k: usize, k0: usize, j: usize, cols: usize) -> [*const i8; N] {
    // SAFETY: row j + min(t, cols - 1) < j + cols, offset k0 < k.
    core::array::from_fn(|t| unsafe { b.add((j + t.min(cols - 1)) * k + k0) })
}

/// The bias corrections of a pair-form tile: weight rows `j .. j + cols` (repeats of the
/// last past `cols`, as `b`) in the K chunk at `k0`, from the given sums or computed.
///
/// # Safety
/// AVX-512F/BW/VNNI present; each `b[r]` valid for `len` bytes; `ws` valid for those rows.
#[inline(always)]
unsafe fn tile_corr<const N: usize>(
    b: &[*const i8; N],
    len: usize,
    ws: WeightSums,
    (j, cols): (usize, usize),
    k0: usize,
) -> [i32; N] {
    // SAFETY: the contract, passed on.
    unsafe {
        if ws.corr(j, k0).is_some() {
            let mut out = [0i32; N];
            for (t, o) in out.iter_mut().enumerate() {
                *o = ws.corr(j + t.min(cols - 1), k0).unwrap_or(0);
            }
            out
        } else {
            tile_row_sums_x128(b, len)
        }
    }
}

/// [`row_sum_x128`] of a tile's `BR` weight rows at once: this is the first read of those
/// rows (from L3 or memory), and twelve independent streams keep that many loads in flight
/// where one row at a time would wait on each line.
///
/// # Safety
/// AVX-512F/BW/VNNI present; each `b[r]` valid for `len` bytes.
#[inline(always)]
unsafe fn tile_row_sums_x128<const N: usize>(b: &[*const i8; N], len: usize) -> [i32; N] {
    // SAFETY: full loads inside `len`, the last one masked to the bytes left.
    unsafe {
        let ones = _mm512_set1_epi8(1);
        let mut acc = [_mm512_setzero_si512(); N];
        let mut o = 0;
        while o + 64 <= len {
            for (a, &row) in acc.iter_mut().zip(b) {
                *a = _mm512_dpbusd_epi32(*a, ones, _mm512_loadu_si512(row.add(o).cast()));
            }
            o += 64;
        }
        if o < len {
            let mask: __mmask64 = (1u64 << (len - o)) - 1;
            for (a, &row) in acc.iter_mut().zip(b) {
                *a = _mm512_dpbusd_epi32(*a, ones, _mm512_maskz_loadu_epi8(mask, row.add(o)));
            }
        }
        let mut out = [0i32; N];
        for (o, &a) in out.iter_mut().zip(&acc) {
            *o = _mm512_reduce_add_epi32(a).wrapping_mul(128);
        }
        out
    }
}

/// `128·Σ b[0..len]` (wrapping): what the 0x80 bias of the activations adds to a result of
/// weight row `b`.
///
/// # Safety
/// AVX-512F/BW/VNNI present; `b` valid for `len` bytes.
#[inline(always)]
unsafe fn row_sum_x128(b: *const i8, len: usize) -> i32 {
    // SAFETY: full loads inside `len`, the last one masked to the bytes left.
    unsafe {
        let ones = _mm512_set1_epi8(1);
        let mut acc = _mm512_setzero_si512();
        let mut o = 0;
        while o + 64 <= len {
            acc = _mm512_dpbusd_epi32(acc, ones, _mm512_loadu_si512(b.add(o).cast()));
            o += 64;
        }
        if o < len {
            let mask: __mmask64 = (1u64 << (len - o)) - 1;
            acc = _mm512_dpbusd_epi32(acc, ones, _mm512_maskz_loadu_epi8(mask, b.add(o)));
        }
        _mm512_reduce_add_epi32(acc).wrapping_mul(128)
    }
}

/// `steps` steps of 4 K values: `P` panel vectors per step against `BR` weight rows. The
/// results, less each weight row's `corr` (the bias correction; `None`: lane 15 of the one
/// panel is the bias lane), are transposed in
/// registers (token-major) and stored (or, with `add`, added) to `rows` rows × `cols`
/// columns at `c`, rows `n` apart.
///
/// # Safety
/// AVX-512F/BW/VL/VNNI present; `panel` valid for `steps·P·64` bytes, each `b[r]` for
/// `4·steps` bytes; `rows ≤ P·PANEL` (`< PANEL` without `corr`), `cols ≤ BR`, and `c`
/// valid for those rows and columns.
#[inline(always)]
#[allow(clippy::too_many_arguments)] // one tile's geometry, passed down from one caller
unsafe fn bcast_tile<const P: usize>(
    steps: usize,
    panel: *const u8,
    b: &[*const i8; BR],
    corr: Option<&[i32; BR]>,
    c: *mut i32,
    n: usize,
    rows: usize,
    cols: usize,
    add: bool,
    pf: Option<Prefetch>,
) {
    // SAFETY: loads inside the panel and the weight rows, stores inside the tile of `c`,
    // per the contract.
    unsafe {
        let acc = bcast_acc_pf::<P, 4, BR>(steps, panel, b, pf);
        let mask: __mmask16 = (1u16 << cols) - 1;
        // One panel's accumulators, passed by value with constant panel indices: a loop over
        // `q` indexed `acc` at run time, which kept it in memory (a `memset` per tile).
        let geometry = (c, n, rows, mask, add);
        store_panel(0, core::array::from_fn(|r| acc[r][0]), corr, geometry);
        if P == 2 {
            store_panel(1, core::array::from_fn(|r| acc[r][1 % P]), corr, geometry);
        }
    }
}

/// `steps` steps of `W` K values of the broadcast VNNI kernels: `P` panel vectors per step
/// against `BR` weight rows, into `BR × P` accumulators. Each weight row's `W` bytes are
/// broadcast: 4 (`vpbroadcastd`, the 16-token panels), 8 (`vpbroadcastq`, the pair form,
/// whose even lanes meet the first 4 bytes and odd lanes the next 4) or 16
/// (`vbroadcasti32x4`, the quad form: lane `4t + i` meets bytes `4i .. 4i + 4`).
///
/// # Safety
/// AVX-512F/BW/VL/VNNI present; `W` is 4, 8 or 16; `panel` valid for `steps·P·64` bytes, each
/// `b[r]` for `W·steps` bytes.
#[inline(always)]
unsafe fn bcast_acc<const P: usize, const W: usize, const NR: usize>(
    steps: usize,
    panel: *const u8,
    b: &[*const i8; NR],
) -> [[__m512i; P]; NR] {
    // SAFETY: the contract, passed on; no prefetch.
    unsafe { bcast_acc_pf::<P, W, NR>(steps, panel, b, None) }
}

/// Weight rows to request into L2 while a tile runs: `rows` rows `stride` bytes apart from
/// `first`, `len` bytes of each.
#[derive(Clone, Copy)]
struct Prefetch {
    first: *const i8,
    stride: usize,
    rows: usize,
    len: usize,
}

impl Prefetch {
    /// The tile of weight rows from `r0` (up to `BR` of them), bytes `pk .. pk + len` of
    /// each, of the `n × k` weights at `b`; `None` when `r0` is past the last row.
    #[inline(always)]
    fn tile(b: *const i8, n: usize, k: usize, r0: usize, pk: usize, len: usize) -> Option<Prefetch> {
        (r0 < n && pk < k).then(|| Prefetch {
            // Prefetches never fault; the pointer itself stays inside the weights (row r0 < n,
            // byte pk < k).
            first: b.wrapping_add(r0 * k + pk),
            stride: k,
            rows: (n - r0).min(BR),
            len,
        })
    }
}

/// [`bcast_acc`], issuing `W/4` `prefetcht1` per step through `pf`'s lines, row by row (a
/// tile issues enough for all of them when `pf.len ≤ W·steps` and `pf.rows ≤ 16`: 12 rows
/// of `W·steps` bytes are `3·W·steps/16` lines); spread over the steps, they do not stall
/// the tile on a full miss queue as a burst before it did. Batching them every 8 steps,
/// outside the step loop, ran at half the speed (`gemm_cold`): the loop lost registers.
///
/// # Safety
/// As [`bcast_acc`]; `pf`'s rows lie inside one allocation.
#[inline(always)]
unsafe fn bcast_acc_pf<const P: usize, const W: usize, const NR: usize>(
    steps: usize,
    panel: *const u8,
    b: &[*const i8; NR],
    pf: Option<Prefetch>,
) -> [[__m512i; P]; NR] {
    // SAFETY: loads inside the panel and the weight rows, per the contract; prefetches
    // never fault, and their addresses stay inside `pf`'s rows (`wrapping_add`).
    unsafe {
        let (mut row, mut off, mut left, len, stride) = match pf {
            Some(p) => (p.first, 0, p.rows, p.len, p.stride),
            None => (core::ptr::null(), 0, 0, 0, 0),
        };
        // Built element by element: an array repeat expression became a `memset` call
        // (and a `vzeroupper`) per tile.
        let mut acc: [[__m512i; P]; NR] = core::array::from_fn(|_| core::array::from_fn(|_| _mm512_setzero_si512()));
        for s in 0..steps {
            for _ in 0..W / 4 {
                if left > 0 {
                    _mm_prefetch::<_MM_HINT_T1>(row.wrapping_add(off));
                    off += 64;
                    if off >= len {
                        (row, off, left) = (row.wrapping_add(stride), 0, left - 1);
                    }
                }
            }
            let mut av = [_mm512_setzero_si512(); P];
            for (q, v) in av.iter_mut().enumerate() {
                *v = _mm512_loadu_si512(panel.add((s * P + q) * 64).cast());
            }
            for r in 0..NR {
                let at = b[r].add(W * s);
                let w = if W == 16 {
                    _mm512_broadcast_i32x4(_mm_loadu_si128(at.cast()))
                } else if W == 8 {
                    _mm512_set1_epi64((at as *const i64).read_unaligned())
                } else {
                    _mm512_set1_epi32((at as *const i32).read_unaligned())
                };
                for q in 0..P {
                    acc[r][q] = _mm512_dpbusd_epi32(acc[r][q], av[q], w);
                }
            }
        }
        acc
    }
}

/// Stores panel `q` of a [`bcast_tile`]: `a` less the bias correction (`corr`, or lane 15),
/// transposed, to the tile's rows of that panel.
///
/// # Safety
/// As [`bcast_tile`]'s.
#[inline(always)]
unsafe fn store_panel(
    q: usize,
    a: [__m512i; BR],
    corr: Option<&[i32; BR]>,
    (c, n, rows, mask, add): (*mut i32, usize, usize, __mmask16, bool),
) {
    // SAFETY: stores inside the tile of `c` (the caller's contract); register-only otherwise.
    unsafe {
        let lane15 = _mm512_set1_epi32(PANEL as i32 - 1);
        let v: [__m512i; 16] = core::array::from_fn(|r| match (a.get(r), corr) {
            (Some(&a), Some(corr)) => _mm512_sub_epi32(a, _mm512_set1_epi32(corr[r])),
            (Some(&a), None) => _mm512_sub_epi32(a, _mm512_permutexvar_epi32(lane15, a)),
            (None, _) => _mm512_setzero_si512(),
        });
        let v = transpose_16x16(v);
        for (t, &row) in v.iter().enumerate().take(rows.saturating_sub(q * PANEL).min(PANEL)) {
            let dst = c.add((q * PANEL + t) * n);
            let row = if add { _mm512_add_epi32(row, _mm512_maskz_loadu_epi32(mask, dst)) } else { row };
            _mm512_mask_storeu_epi32(dst, mask, row);
        }
    }
}

/// Packs `count` ≤ 16 token rows (`k` bytes apart from `a`) into one panel of the broadcast
/// VNNI kernel: `steps` steps of 4 bytes, step `s` at `dst + s·p·PANEL` as 16 lanes (the
/// tokens biased by 0x80, then zero padding; with `bias_lane`, `count` < 16 and lane 15 is
/// all 0x80). Sixteen steps at a time: 16 row loads, one in-register transpose, 16 stores.
///
/// # Safety
/// AVX-512F/BW present; each of the `count` rows valid for `4·steps` bytes; `dst` valid
/// for `steps` steps.
#[inline(always)]
unsafe fn pack_panel(a: *const i8, k: usize, count: usize, steps: usize, dst: *mut u32, p: usize, bias_lane: bool) {
    // SAFETY: masked loads read only the `4·cnt` bytes left in each row; stores stay within
    // the `steps` steps of `dst`.
    unsafe {
        let bias = _mm512_set1_epi32(0x8080_8080u32 as i32);
        let mut s0 = 0;
        while s0 < steps {
            let cnt = (steps - s0).min(16);
            let mask: __mmask16 = if cnt == 16 { u16::MAX } else { (1u16 << cnt) - 1 };
            let mut r = [_mm512_setzero_si512(); 16];
            for (t, v) in r.iter_mut().enumerate().take(count) {
                *v = _mm512_xor_si512(_mm512_maskz_loadu_epi32(mask, a.add(t * k + 4 * s0).cast()), bias);
            }
            if bias_lane {
                r[PANEL - 1] = bias;
            }
            let out = transpose_16x16(r);
            for (x, &v) in out.iter().enumerate().take(cnt) {
                _mm512_storeu_si512(dst.add((s0 + x) * p * PANEL).cast(), v);
            }
            s0 += 16;
        }
    }
}

/// The broadcast form for int16 activations (the linears `quantize --act16` names): each
/// activation `x = 256·hi + lo` is split into its signed high byte `hi` and unsigned low
/// byte `lo` while it is packed, so `Σ x·b = 256·Σ hi·b + Σ lo·b` is two `vpdpbusd`
/// products of the [`vnni_bcast`] kind: a tile is 16 tokens, its high bytes (biased by
/// 0x80, corrected with the weight row sums) in panel 0 and its low bytes (already
/// unsigned) in panel 1, against 12 weight rows. The two i32 sums are combined in i64 at
/// the store. Exact: each K chunk's sums fit in i32 (1024·255·128 < 2³¹) and the combined
/// value is the true integer. Twice the `vpdpbusd` of an int8 GEMM, at int8 speed.
///
/// # Safety
/// AVX-512F/BW/VL/VNNI present; `k % 4 == 0`; `a`, `b`, `c` valid for `m·k`, `n·k`, `m·n`.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn vnni_bcast16(m: usize, n: usize, k: usize, a: *const i16, b: *const i8, ws: WeightSums, c: *mut i64) {
    // Every lane a tile reads is written by `pack_panel16` first.
    let mut panel = core::mem::MaybeUninit::<Lines<[u32; 2 * PANEL * KC / 4]>>::uninit();
    let panel = panel.as_mut_ptr().cast::<u32>();
    let mut sums = [0i32; NB_MAX];
    let mut k0 = 0;
    while k0 < k {
        let kc = (k - k0).min(KC);
        let nb = col_block(kc);
        let mut j0 = 0;
        while j0 < n {
            let j1 = (j0 + nb).min(n);
            // SAFETY: rows j0 .. j1 ≤ n hold bytes k0 .. k0 + kc ≤ k; j1 - j0 ≤ nb ≤ NB_MAX;
            // AVX-512 per the contract.
            unsafe { block_row_sums(b, k, k0, kc, (j0, j1), ws, &mut sums) };
            let mut i = 0;
            while i < m {
                let rows = (m - i).min(PANEL);
                // SAFETY: rows i .. i + rows < m hold values k0 .. k0 + kc ≤ k; the panel
                // holds 2·PANEL·KC/4 u32; AVX-512 per the contract.
                unsafe { pack_panel16(a.add(i * k + k0), k, rows, kc / 4, panel) };
                let mut j = j0;
                while j < j1 {
                    let cols = (j1 - j).min(BR);
                    // SAFETY: rows j .. j + cols ≤ j1 ≤ n, k0 < k.
                    let (bp, corr) = unsafe { tile_rows(b, k, k0, (j0, j, cols), &sums) };
                    // SAFETY: the panel holds kc/4 steps of 2·PANEL u32; each weight pointer
                    // is valid for kc bytes; the tile's outputs, rows i .. i + rows < m and
                    // columns j .. j + cols ≤ n of `c`, are valid; AVX-512 per the contract.
                    unsafe {
                        let acc = bcast_acc::<2, 4, BR>(kc / 4, panel.cast_const().cast(), &bp);
                        store16(acc, &corr, c.add(i * n + j), n, rows, cols, k0 > 0);
                    }
                    j += BR;
                }
                i += rows;
            }
            j0 = j1;
        }
        k0 += kc;
    }
}

/// Stores a tile of [`vnni_bcast16`]: `256·(hi − corr) + lo` per token and weight row, in
/// i64, to `rows` rows × `cols` columns at `c` (rows `n` apart), or with `add` added to it.
///
/// # Safety
/// AVX-512F/BW/VL present; `rows ≤ 16`, `cols ≤ BR`; `c` valid for those rows and columns.
#[inline(always)]
unsafe fn store16(
    acc: [[__m512i; 2]; BR],
    corr: &[i32; BR],
    c: *mut i64,
    n: usize,
    rows: usize,
    cols: usize,
    add: bool,
) {
    // SAFETY: stores inside the tile of `c` (the caller's contract); register-only otherwise.
    unsafe {
        let hi = transpose_16x16(core::array::from_fn(|r| match acc.get(r) {
            Some(a) => _mm512_sub_epi32(a[0], _mm512_set1_epi32(corr[r])),
            None => _mm512_setzero_si512(),
        }));
        let lo = transpose_16x16(core::array::from_fn(|r| acc.get(r).map_or(_mm512_setzero_si512(), |a| a[1])));
        let m0: __mmask8 = if cols >= 8 { 0xFF } else { (1u8 << cols) - 1 };
        let m1: __mmask8 = if cols > 8 { (1u8 << (cols - 8)) - 1 } else { 0 };
        for t in 0..rows {
            let dst = c.add(t * n);
            let mut v0 = hi_lo_i64(_mm512_castsi512_si256(hi[t]), _mm512_castsi512_si256(lo[t]));
            let mut v1 = hi_lo_i64(_mm512_extracti64x4_epi64::<1>(hi[t]), _mm512_extracti64x4_epi64::<1>(lo[t]));
            if add {
                v0 = _mm512_add_epi64(v0, _mm512_maskz_loadu_epi64(m0, dst));
                v1 = _mm512_add_epi64(v1, _mm512_maskz_loadu_epi64(m1, dst.add(8)));
            }
            _mm512_mask_storeu_epi64(dst, m0, v0);
            _mm512_mask_storeu_epi64(dst.add(8), m1, v1);
        }
    }
}

/// Packs `count` ≤ 16 rows of int16 activations (`k` apart from `a`) into the two panels
/// of [`vnni_bcast16`], interleaved per step (`dst + s·2·PANEL`: high bytes ^ 0x80, then
/// `+ PANEL`: low bytes), `steps` steps of 4 values. Sixteen steps at a time: per row two
/// loads of 32 values, narrowed to their low bytes (`vpmovwb`) and, after an arithmetic
/// shift, to their high bytes; then one in-register transpose per panel.
///
/// # Safety
/// AVX-512F/BW present; each of the `count` rows valid for `4·steps` values; `dst` valid
/// for `steps` steps of two panels.
#[inline(always)]
unsafe fn pack_panel16(a: *const i16, k: usize, count: usize, steps: usize, dst: *mut u32) {
    /// The low bytes of 64 i16 values (`vpmovwb` of each half).
    #[inline(always)]
    unsafe fn bytes(v0: __m512i, v1: __m512i) -> __m512i {
        // SAFETY: register-only AVX-512F/BW instructions, present per the caller's contract.
        unsafe { _mm512_inserti64x4::<1>(_mm512_castsi256_si512(_mm512_cvtepi16_epi8(v0)), _mm512_cvtepi16_epi8(v1)) }
    }
    // SAFETY: masked loads read only the `4·cnt` values left in each row; stores stay
    // within the `steps` steps of `dst`.
    unsafe {
        let bias = _mm512_set1_epi32(0x8080_8080u32 as i32);
        let mut s0 = 0;
        while s0 < steps {
            let cnt = (steps - s0).min(16);
            let vals = 4 * cnt;
            let m0: __mmask32 = if vals >= 32 { u32::MAX } else { (1u32 << vals) - 1 };
            let m1: __mmask32 = if vals >= 64 {
                u32::MAX
            } else if vals > 32 {
                (1u32 << (vals - 32)) - 1
            } else {
                0
            };
            let mut hi = [_mm512_setzero_si512(); 16];
            let mut lo = [_mm512_setzero_si512(); 16];
            for t in 0..count {
                let p = a.add(t * k + 4 * s0);
                let x0 = _mm512_maskz_loadu_epi16(m0, p);
                let x1 = _mm512_maskz_loadu_epi16(m1, p.add(32));
                lo[t] = bytes(x0, x1);
                hi[t] = _mm512_xor_si512(bytes(_mm512_srai_epi16::<8>(x0), _mm512_srai_epi16::<8>(x1)), bias);
            }
            let (hi, lo) = (transpose_16x16(hi), transpose_16x16(lo));
            for x in 0..cnt {
                _mm512_storeu_si512(dst.add((s0 + x) * 2 * PANEL).cast(), hi[x]);
                _mm512_storeu_si512(dst.add((s0 + x) * 2 * PANEL + PANEL).cast(), lo[x]);
            }
            s0 += 16;
        }
    }
}

/// The transpose of a 16×16 block of i32 (vector `i`, lane `j` → vector `j`, lane `i`):
/// 32-bit and 64-bit interleaves within 128-bit lanes, then two rounds of 128-bit lane
/// shuffles (64 instructions).
///
/// # Safety
/// AVX-512F present.
#[inline(always)]
pub(super) unsafe fn transpose_16x16(r: [__m512i; 16]) -> [__m512i; 16] {
    // SAFETY: register-only AVX-512F instructions, present per the contract.
    unsafe {
        let mut t = [_mm512_setzero_si512(); 16];
        for i in 0..8 {
            t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
        }
        // u[4g + e]: within each 128-bit lane L, element 4L + e of rows 4g .. 4g + 4.
        let mut u = [_mm512_setzero_si512(); 16];
        for g in 0..4 {
            u[4 * g] = _mm512_unpacklo_epi64(t[4 * g], t[4 * g + 2]);
            u[4 * g + 1] = _mm512_unpackhi_epi64(t[4 * g], t[4 * g + 2]);
            u[4 * g + 2] = _mm512_unpacklo_epi64(t[4 * g + 1], t[4 * g + 3]);
            u[4 * g + 3] = _mm512_unpackhi_epi64(t[4 * g + 1], t[4 * g + 3]);
        }
        let mut out = [_mm512_setzero_si512(); 16];
        for e in 0..4 {
            let x = _mm512_shuffle_i32x4::<0x44>(u[e], u[4 + e]);
            let y = _mm512_shuffle_i32x4::<0xEE>(u[e], u[4 + e]);
            let x2 = _mm512_shuffle_i32x4::<0x44>(u[8 + e], u[12 + e]);
            let y2 = _mm512_shuffle_i32x4::<0xEE>(u[8 + e], u[12 + e]);
            out[e] = _mm512_shuffle_i32x4::<0x88>(x, x2);
            out[4 + e] = _mm512_shuffle_i32x4::<0xDD>(x, x2);
            out[8 + e] = _mm512_shuffle_i32x4::<0x88>(y, y2);
            out[12 + e] = _mm512_shuffle_i32x4::<0xDD>(y, y2);
        }
        out
    }
}

/// Calls `f` inside a function compiled for AVX-512 (F, BW, DQ, VL), where LLVM inlines it
/// and vectorises its loops for those features (`super::vectorized`; DQ converts the i64
/// accumulators of int16 activations to f32 16 at a time instead of one by one).
///
/// # Safety
/// AVX-512F, BW, DQ and VL present.
#[cfg(feature = "std")] // `super::vectorized` detects at run time
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512dq,avx512vl")]
pub(crate) unsafe fn in_avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// [`in_avx512`] for CPUs with AVX2 only (no FMA: the bits stay those of the default build).
///
/// # Safety
/// AVX2 present.
#[cfg(feature = "std")] // `super::vectorized` detects at run time
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn in_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// `out[j]` lane `i` = `r[i]` lane `j` (AVX2; the `amx` and `avxvnni` stores and packs).
#[inline(always)]
pub(super) unsafe fn transpose_8x8(r: [__m256i; 8]) -> [__m256i; 8] {
    // SAFETY: register-only AVX2 instructions; only called from AVX2 functions.
    unsafe {
        let t: [__m256i; 8] = core::array::from_fn(|i| {
            let (x, y) = (r[2 * (i / 2)], r[2 * (i / 2) + 1]);
            if i % 2 == 0 { _mm256_unpacklo_epi32(x, y) } else { _mm256_unpackhi_epi32(x, y) }
        });
        // u[0..4]: rows 0-3 of columns {0,4}, {1,5}, {2,6}, {3,7}; u[4..8] rows 4-7.
        let u: [__m256i; 8] = core::array::from_fn(|i| {
            let (h, j) = (i / 4, i % 4);
            let (x, y) = (t[4 * h + j / 2], t[4 * h + 2 + j / 2]);
            if j % 2 == 0 { _mm256_unpacklo_epi64(x, y) } else { _mm256_unpackhi_epi64(x, y) }
        });
        core::array::from_fn(|j| {
            if j < 4 {
                _mm256_permute2x128_si256::<0x20>(u[j], u[4 + j])
            } else {
                _mm256_permute2x128_si256::<0x31>(u[j - 4], u[j])
            }
        })
    }
}
