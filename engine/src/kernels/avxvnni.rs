//! The AVX-VNNI kernel (`avxvnni`): `vpdpbusd` on ymm, VEX-encoded, for x86 CPUs that have
//! AVX-VNNI but not AVX-512 (Intel client cores from Alder Lake on, Sierra Forest; Zen 5 and
//! Sapphire Rapids have both and run `vnni`).
//!
//! The broadcast form of `vnni` (`x86.rs`, `vnni_bcast`) in 256-bit registers: the weights
//! stay as stored and are the signed operand, four bytes of a weight row broadcast to the 8
//! lanes (`vpbroadcastd`: VEX has no embedded broadcast); the activations are packed per
//! call into a stack panel, four K bytes per i32 lane (`[K/4][8 tokens][4]`), biased to
//! unsigned (`a ^ 0x80` = `a + 128`); the bias adds `128·Σ_k b[j][k]` to every result of
//! weight row `j`, which the store subtracts (from the blob's weight sums, or summed here
//! with `vpdpbusd` against ones). A tile is 6 weight rows × 16 tokens: 12 accumulators, 2
//! panel vectors and the broadcast of 16 ymm registers; per 4 K values it issues 12
//! `vpdpbusd` (384 multiply-adds) for 2 panel loads and 6 weight broadcasts. The `avx2`
//! kernel needs 24 `vpmaddwd` + 24 `vpaddd` for the same work. The store transposes each
//! panel's 8 × 8 block of results (`super::x86::transpose_8x8`) into token rows.
//!
//! Exact: `vpdpbusd` (not the saturating `vpdpbusds`) adds products in wrapping i32, and
//! every true partial sum fits (`K·255·128 < 2³¹` for K chunks of 1024). Shapes below 4
//! tokens or with `K` not a multiple of 4, and the int16 GEMM, run the `avx2` kernel.
//!
//! No CPU this project runs on has AVX-VNNI without AVX-512: the kernel is checked against
//! the scalar reference in the Bochs emulator (`bench/bochs/`), and by the conformance
//! suite on any machine that has the instructions.

use core::arch::x86_64::*;

// Column blocks as `vnni`'s (about 256 KiB of weights, a multiple of its 12-row tile and so
// of this one's 6): `Kernel::column_chunk` hands both kernels calls of one such block.
use super::x86::{Lines, NB_MAX, col_block, transpose_8x8};

/// Tokens per panel vector (8 i32 lanes).
const PANEL: usize = 8;
/// Weight rows per tile.
const BR: usize = 6;
/// K bytes per packed chunk: the panel is at most `2·PANEL·KC` = 16 KiB.
const KC: usize = 1024;
/// The fewest tokens this form takes: at 4, half the lanes of one panel carry tokens, as
/// many products per instruction as `vpmaddwd` without its `vpaddd`.
const MIN_TOKENS: usize = 4;

/// The `avxvnni` int8 GEMM (`c = a · bᵀ`, exact in wrapping i32).
///
/// # Safety
/// AVX2 and AVX-VNNI present; `a`, `b`, `c` valid for `m·k`, `n·k`, `m·n` elements.
#[target_feature(enable = "avx2,avxvnni")]
pub(super) unsafe fn avxvnni_gemm_i8_i32(m: usize, n: usize, k: usize, a: *const i8, b: *const i8, c: *mut i32) {
    // SAFETY: the same contract, passed on (no sums).
    unsafe { avxvnni_gemm_i8_i32_sums(m, n, k, a, b, core::ptr::null(), c) }
}

/// [`avxvnni_gemm_i8_i32`] with the weight row sums (null: summed here per K chunk).
///
/// # Safety
/// As [`avxvnni_gemm_i8_i32`]; `sums` null or valid for `n` values, each `Σ_k b[j][k]`.
#[target_feature(enable = "avx2,avxvnni")]
pub(super) unsafe fn avxvnni_gemm_i8_i32_sums(
    m: usize,
    n: usize,
    k: usize,
    a: *const i8,
    b: *const i8,
    sums: *const f32,
    c: *mut i32,
) {
    // SAFETY: the same contract, passed on; AVX2 is part of it.
    unsafe {
        if m >= MIN_TOKENS && k.is_multiple_of(4) {
            bcast(m, n, k, a, b, sums, c)
        } else {
            // The sums passed on: the `avx2` form for 7-bit activations uses them.
            super::x86::avx2_gemm_i8_i32_sums(m, n, k, a, b, sums, c)
        }
    }
}

/// The int16 GEMM of `avxvnni` given weight sums: the `avx2` one, which needs none.
///
/// # Safety
/// AVX2 present; `a`, `b`, `c` valid for `m·k`, `n·k`, `m·n` elements.
pub(super) unsafe fn avx2_gemm_i16_i8_i64_sums(
    m: usize,
    n: usize,
    k: usize,
    a: *const i16,
    b: *const i8,
    _sums: *const f32,
    c: *mut i64,
) {
    // SAFETY: the same contract, passed on.
    unsafe { super::x86::avx2_gemm_i16_i8_i64_3x4(m, n, k, a, b, c) }
}

/// The broadcast form: K chunks, column blocks, 16-token panels, tiles of 6 weight rows.
///
/// # Safety
/// AVX2 and AVX-VNNI present; `k % 4 == 0`; `a`, `b`, `c` valid for `m·k`, `n·k`, `m·n`;
/// `sums` null or valid for `n`.
#[target_feature(enable = "avx2,avxvnni")]
unsafe fn bcast(m: usize, n: usize, k: usize, a: *const i8, b: *const i8, sums: *const f32, c: *mut i32) {
    // Every lane a tile reads is written by `pack` first.
    let mut panel = core::mem::MaybeUninit::<Lines<[u32; 2 * PANEL * KC / 4]>>::uninit();
    let panel = panel.as_mut_ptr().cast::<u32>();
    let mut corr = [0i32; NB_MAX];
    // The given sums correct the whole row once, in the first chunk (the chunks' results are
    // added, so their corrections may be); `128·Σ b` stays in i32 up to K = 2¹⁶.
    let given = !sums.is_null() && k <= 1 << 16;
    let mut k0 = 0;
    while k0 < k {
        let kc = (k - k0).min(KC);
        let nb = col_block(kc);
        let mut j0 = 0;
        while j0 < n {
            let j1 = (j0 + nb).min(n);
            for (j, s) in (j0..j1).zip(corr.iter_mut()) {
                // SAFETY: row j < n holds bytes k0 .. k0 + kc ≤ k, and its sum if given (an
                // exact integer below 2²⁴ in magnitude).
                *s = unsafe {
                    match (given, k0) {
                        (true, 0) => (*sums.add(j) as i32).wrapping_mul(128),
                        (true, _) => 0,
                        (false, _) => row_sum_x128(b.add(j * k + k0), kc),
                    }
                };
            }
            let mut i = 0;
            while i < m {
                let rows = (m - i).min(2 * PANEL);
                let p = rows.div_ceil(PANEL);
                // SAFETY: token rows i .. i + rows ≤ m hold bytes k0 .. k0 + kc; the panel
                // holds 2·PANEL·KC/4 ≥ p·PANEL·kc/4 u32.
                unsafe {
                    for q in 0..p {
                        let count = (rows - q * PANEL).min(PANEL);
                        pack(a.add((i + q * PANEL) * k + k0), k, count, kc / 4, panel.add(q * PANEL), p);
                    }
                }
                let mut j = j0;
                while j < j1 {
                    let cols = (j1 - j).min(BR);
                    // Rows past the last are repeats of it: computed, not stored.
                    // SAFETY: row j + min(t, cols − 1) < j1 ≤ n, offset k0 < k.
                    let bp: [*const i8; BR] =
                        core::array::from_fn(|t| unsafe { b.add((j + t.min(cols - 1)) * k + k0) });
                    // Opaque, so that LLVM keeps the six pointers instead of recomputing the
                    // clamped row offsets (`cmov`, `imul`) in the K loop, as it did.
                    let bp = core::hint::black_box(bp);
                    let cr: [i32; BR] = core::array::from_fn(|t| corr[j - j0 + t.min(cols - 1)]);
                    // SAFETY: the panel holds kc/4 steps of p vectors; each weight pointer is
                    // valid for kc bytes; the outputs, rows i .. i + rows and columns
                    // j .. j + cols of `c`, are valid.
                    unsafe {
                        let out = c.add(i * n + j);
                        let pp = panel.cast_const().cast::<u8>();
                        let geometry = (out, n, rows, cols, k0 > 0);
                        if p == 2 {
                            tile::<2>(kc / 4, pp, &bp, &cr, geometry);
                        } else {
                            tile::<1>(kc / 4, pp, &bp, &cr, geometry);
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

/// `steps` steps of 4 K values: `P` panel vectors against `BR` weight rows, then each
/// panel's results less the rows' bias corrections `corr`, transposed to token rows and
/// stored (or, with `add`, added) to `rows` rows × `cols` columns at `c`, rows `n` apart.
///
/// # Safety
/// AVX2 and AVX-VNNI present; `panel` valid for `steps·P·32` bytes (32-byte aligned), each
/// `b[r]` for `4·steps` bytes; `rows ≤ P·PANEL`, `cols ≤ BR`, and `c` valid for those rows
/// and columns.
#[inline(always)]
unsafe fn tile<const P: usize>(
    steps: usize,
    panel: *const u8,
    b: &[*const i8; BR],
    corr: &[i32; BR],
    (c, n, rows, cols, add): (*mut i32, usize, usize, usize, bool),
) {
    // SAFETY: loads inside the panel and the weight rows, stores inside the tile of `c`.
    unsafe {
        // Built element by element: an array repeat expression can become a `memset`.
        let mut acc: [[__m256i; P]; BR] = core::array::from_fn(|_| core::array::from_fn(|_| _mm256_setzero_si256()));
        for s in 0..steps {
            let av: [__m256i; P] = core::array::from_fn(|q| _mm256_load_si256(panel.add((s * P + q) * 32).cast()));
            for r in 0..BR {
                let w = _mm256_set1_epi32((b[r].add(4 * s) as *const i32).read_unaligned());
                for q in 0..P {
                    acc[r][q] = _mm256_dpbusd_avx_epi32(acc[r][q], av[q], w);
                }
            }
        }
        // Lanes 0 .. cols of a token row.
        let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        // `q` indexes the inner arrays of `acc` (and the panel rows): a constant trip count
        // the compiler unrolls, keeping the accumulators in registers.
        #[allow(clippy::needless_range_loop)]
        for q in 0..P {
            let v: [__m256i; 8] = core::array::from_fn(|r| {
                if r < BR { _mm256_sub_epi32(acc[r][q], _mm256_set1_epi32(corr[r])) } else { _mm256_setzero_si256() }
            });
            let t = transpose_8x8(v);
            for (tok, &row) in t.iter().enumerate().take(rows.saturating_sub(q * PANEL).min(PANEL)) {
                let dst = c.add((q * PANEL + tok) * n);
                let row = if add { _mm256_add_epi32(row, _mm256_maskload_epi32(dst, mask)) } else { row };
                _mm256_maskstore_epi32(dst, mask, row);
            }
        }
    }
}

/// Packs `count ≤ 8` token rows (`k` bytes apart from `a`) into one panel vector per step:
/// `steps` steps of 4 bytes, step `s` at `dst + s·p·PANEL` (u32), the tokens biased by 0x80,
/// missing tokens zero. Eight steps at a time: 8 row loads (masked at the end of the
/// chunk), one 8 × 8 transpose, 8 stores.
///
/// # Safety
/// AVX2 present; each of the `count` rows valid for `4·steps` bytes; `dst` valid for
/// `steps` steps of `p·PANEL` u32.
#[inline(always)]
unsafe fn pack(a: *const i8, k: usize, count: usize, steps: usize, dst: *mut u32, p: usize) {
    // SAFETY: masked loads read only the `4·cnt` bytes left in each row (masked-out lanes
    // do not fault); stores stay within the `steps` steps of `dst`.
    unsafe {
        let bias = _mm256_set1_epi32(0x8080_8080u32 as i32);
        let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let mut s0 = 0;
        while s0 < steps {
            let cnt = (steps - s0).min(8);
            let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(cnt as i32), lanes);
            let r: [__m256i; 8] = core::array::from_fn(|t| {
                if t < count {
                    _mm256_xor_si256(_mm256_maskload_epi32(a.add(t * k + 4 * s0).cast(), mask), bias)
                } else {
                    _mm256_setzero_si256()
                }
            });
            for (x, &v) in transpose_8x8(r).iter().enumerate().take(cnt) {
                _mm256_storeu_si256(dst.add((s0 + x) * p * PANEL).cast(), v);
            }
            s0 += 8;
        }
    }
}

/// `128·Σ b[0..len]` (wrapping): what the 0x80 bias of the activations adds to a result
/// of weight row `b`.
///
/// # Safety
/// AVX2 and AVX-VNNI present; `b` valid for `len` bytes.
#[inline(always)]
unsafe fn row_sum_x128(b: *const i8, len: usize) -> i32 {
    // SAFETY: full loads inside `len`, then single bytes.
    unsafe {
        let ones = _mm256_set1_epi8(1);
        let mut acc = _mm256_setzero_si256();
        let mut o = 0;
        while o + 32 <= len {
            acc = _mm256_dpbusd_avx_epi32(acc, ones, _mm256_loadu_si256(b.add(o).cast()));
            o += 32;
        }
        let s = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256::<1>(acc));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
        let tail: i32 = (o..len).map(|i| *b.add(i) as i32).sum();
        _mm_cvtsi128_si32(s).wrapping_add(tail).wrapping_mul(128)
    }
}
