//! x86_64 int8 GEMM kernels on `core::arch`: AVX2 (`vpmaddwd` on sign-extended i16) and
//! AVX-512 VNNI (`vpdpbusd` on zmm).
//!
//! Both read `a` (activations) and `b` (weights) row-major along K, as the blob stores
//! them; each tile accumulates one vector per (row, column) pair along K and reduces the
//! vectors horizontally once at the end (amortised over K ≥ 128).

use core::arch::x86_64::*;

#[allow(unused_imports)] // the driver's default `prep`
use super::{drive, no_prep};

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

pub(super) fn has_vnni() -> bool {
    #[cfg(feature = "std")]
    {
        std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vl")
            && std::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(feature = "std"))]
    {
        cfg!(all(
            target_feature = "avx512f",
            target_feature = "avx512bw",
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
/// Registers: R·C accumulators + C weight vectors (4×3: 12 + 3 of 16 ymm; the activation
/// vector is re-loaded per row).
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
        let mut out = [[0i32; C]; R];
        for i in 0..R {
            reduce_row_256(&acc[i], &mut out[i]);
            for q in p..k {
                for j in 0..C {
                    out[i][j] += *a[i].add(q) as i32 * *b[j].add(q) as i32;
                }
            }
        }
        out
    }
}

/// The AVX2 kernel (`avx2`), tiles of 4 rows × 3 columns (1..=3 rows at the bottom edge).
///
/// # Safety
/// AVX2 present; `a`, `b`, `c` valid for `m·k`, `n·k`, `m·n` elements.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn avx2_gemm_i8_i32_4x3(m: usize, n: usize, k: usize, a: *const i8, b: *const i8, c: *mut i32) {
    // SAFETY: the driver only forms pointers to rows < m of `a`, < n of `b`, and stores
    // to `c[i·n + j]` with i < m, j < n; AVX2 per the contract.
    unsafe { drive!(tile_avx2, [1, 2, 3, 4], 3, m, n, k, a, b, c) }
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

/// The AVX-512 VNNI int16×int8 kernel (`vnni`): tiles of 4 activation rows × 4 weight rows.
///
/// # Safety
/// AVX-512F/BW/VL/VNNI present; `a`, `b`, `c` valid for `m·k`, `n·k`, `m·n` elements.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn avx512vnni_gemm_i16_i8_i64_4x4(
    m: usize,
    n: usize,
    k: usize,
    a: *const i16,
    b: *const i8,
    c: *mut i64,
) {
    // SAFETY: rows < m of `a`, < n of `b`, stores to `c[i·n + j]` with i < m, j < n.
    unsafe { super::drive16!(tile16_vnni, 4, 4, m, n, k, a, b, c) }
}
