//! AVX-512 versions of the hot element-wise loops, 16 lanes at a time.
//!
//! Each function performs, per element, exactly the IEEE operations of the portable `f32x8`
//! version in `super` in the same order (no fused multiply-add: `_mm512_mul_ps` then
//! `_mm512_add_ps` are two roundings, as `a * b + c` on `f32x8`), so the results are the
//! same bits; `super::tests` checks that over sweeps of values. Sums keep the portable
//! version's 8-lane structure: the low and high halves of each 16 are added to one 8-lane
//! accumulator in turn, which is the order the portable loop adds consecutive chunks in.
//! Tails run through the same vector code on masked loads padded as `map8` pads.
//!
//! Chosen when the process's GEMM kernel is `vnni` (AVX-512 present; `ALBERT_KERNEL`
//! forcing another kernel selects the portable loops as well).

use core::arch::x86_64::*;

use super::{LN2_HI, LN2_LO, LO_EXP, LOG2_E, ROUND, SQRT_2_OVER_PI};

/// Lanes per vector.
const L: usize = 16;

#[inline(always)]
fn splat(v: f32) -> __m512 {
    // SAFETY: only reached from the `target_feature` functions below (AVX-512F present).
    unsafe { _mm512_set1_ps(v) }
}

/// The mask of the first `n ≤ 16` lanes.
#[inline(always)]
fn first(n: usize) -> __mmask16 {
    ((1u32 << n) - 1) as __mmask16
}

/// `f(i)` for each of `N` vectors, as an array: every step of the functions below is
/// applied to all `N` vectors before the next step, so their long dependency chains
/// (about 45 operations from load to store in GELU) interleave in program order and the
/// out-of-order core overlaps them. One vector at a time, GELU took 40 cycles per 16 lanes
/// on Zen 4 (3072-wide rows; 47 on 336-wide ones), bound by that chain's latency; four at
/// a time, 33 (38). A loop, not `array::from_fn`, whose closure was not inlined into
/// `target_feature` functions.
macro_rules! each {
    (|$i:ident| $e:expr) => {{
        let mut out = [_mm512_setzero_ps(); N];
        for $i in 0..N {
            out[$i] = $e;
        }
        out
    }};
}

/// `super::exp_neg`, 16 lanes, `N` vectors at a time.
#[inline(always)]
unsafe fn exp_neg<const N: usize>(x: [__m512; N]) -> [__m512; N] {
    // SAFETY: AVX-512F present (every caller is a `target_feature` function that requires it).
    unsafe {
        let xc = each!(|i| _mm512_min_ps(_mm512_max_ps(x[i], splat(LO_EXP)), splat(0.0)));
        let t = each!(|i| _mm512_add_ps(_mm512_mul_ps(xc[i], splat(LOG2_E)), splat(ROUND)));
        let n = each!(|i| _mm512_sub_ps(t[i], splat(ROUND)));
        let r = each!(|i| _mm512_sub_ps(
            _mm512_sub_ps(xc[i], _mm512_mul_ps(n[i], splat(LN2_HI))),
            _mm512_mul_ps(n[i], splat(LN2_LO))
        ));
        let mut p = [splat(1.0 / 5040.0); N];
        for c in [1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5] {
            p = each!(|i| _mm512_add_ps(_mm512_mul_ps(p[i], r[i]), splat(c)));
        }
        let er =
            each!(|i| _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(_mm512_mul_ps(p[i], r[i]), r[i]), r[i]), splat(1.0)));
        each!(|i| {
            let ni = _mm512_sub_epi32(_mm512_castps_si512(t[i]), _mm512_set1_epi32(ROUND.to_bits() as i32));
            let pow2 = _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(ni, _mm512_set1_epi32(127))));
            let y = _mm512_mul_ps(er[i], pow2);
            let y = _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_LT_OQ>(x[i], splat(LO_EXP)), y, splat(0.0));
            _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_EQ_OQ>(x[i], x[i]), x[i], y)
        })
    }
}

/// `super::u_sigmoid_2z`, 16 lanes, `N` vectors at a time.
#[inline(always)]
unsafe fn u_sigmoid_2z<const N: usize>(u: [__m512; N], z: [__m512; N]) -> [__m512; N] {
    // SAFETY: AVX-512F present (callers' contract).
    unsafe {
        let az =
            each!(|i| _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(z[i]), _mm512_set1_epi32(0x7fff_ffff))));
        let e = exp_neg(each!(|i| _mm512_mul_ps(splat(-2.0), az[i])));
        each!(|i| {
            let num = _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_LT_OQ>(z[i], splat(0.0)), splat(1.0), e[i]);
            let s = _mm512_div_ps(num, _mm512_add_ps(splat(1.0), e[i]));
            _mm512_mul_ps(_mm512_max_ps(u[i], splat(-20.0)), s)
        })
    }
}

#[inline(always)]
unsafe fn gelu_new<const N: usize>(u: [__m512; N]) -> [__m512; N] {
    // SAFETY: AVX-512F present (callers' contract).
    unsafe {
        let z = each!(|i| {
            let cube = _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(splat(0.044715), u[i]), u[i]), u[i]);
            _mm512_mul_ps(splat(SQRT_2_OVER_PI), _mm512_add_ps(u[i], cube))
        });
        u_sigmoid_2z(u, z)
    }
}

#[inline(always)]
unsafe fn gelu_fast<const N: usize>(u: [__m512; N]) -> [__m512; N] {
    // SAFETY: AVX-512F present (callers' contract).
    unsafe {
        let z = each!(|i| {
            let sq = _mm512_mul_ps(_mm512_mul_ps(splat(0.044715), u[i]), u[i]);
            _mm512_mul_ps(_mm512_mul_ps(u[i], splat(SQRT_2_OVER_PI)), _mm512_add_ps(splat(1.0), sq))
        });
        u_sigmoid_2z(u, z)
    }
}

/// Vectors per step of [`map16_by`] (as `BY` in `avx2.rs`, whose loops interleave the same
/// way).
const BY: usize = 4;

/// [`map16`], `N` full vectors per step through `fn_n` while they last (the same
/// operations per element as `f`, which takes the rest and the tail).
#[inline(always)]
unsafe fn map16_by<const N: usize>(
    x: &mut [f32],
    pad: f32,
    mut fn_n: impl FnMut([__m512; N]) -> [__m512; N],
    f: impl FnMut(__m512) -> __m512,
) {
    let wide = x.len() - x.len() % (N * L);
    let p = x.as_mut_ptr();
    // SAFETY: AVX-512F present (callers' contract); every access is at `i + 16·j + lane`
    // with `i + 16·N ≤ wide ≤ len`; the rest through `map16`.
    unsafe {
        let mut i = 0;
        while i < wide {
            let mut v = [_mm512_setzero_ps(); N];
            for (j, v) in v.iter_mut().enumerate() {
                *v = _mm512_loadu_ps(p.add(i + L * j));
            }
            for (j, r) in fn_n(v).into_iter().enumerate() {
                _mm512_storeu_ps(p.add(i + L * j), r);
            }
            i += N * L;
        }
        map16(&mut x[wide..], pad, f);
    }
}

/// `super::map8` with 16 lanes: full vectors, then the tail on a masked load padded with
/// `pad` and a masked store.
#[inline(always)]
unsafe fn map16(x: &mut [f32], pad: f32, mut f: impl FnMut(__m512) -> __m512) {
    let full = x.len() - x.len() % L;
    let p = x.as_mut_ptr();
    // SAFETY: AVX-512F present (callers' contract); every access is at `i + lane` with
    // `i + 16 ≤ full ≤ len` or masked to the `len − full` elements that exist.
    unsafe {
        let mut i = 0;
        while i < full {
            _mm512_storeu_ps(p.add(i), f(_mm512_loadu_ps(p.add(i))));
            i += L;
        }
        if full < x.len() {
            let m = first(x.len() - full);
            let v = _mm512_mask_loadu_ps(splat(pad), m, p.add(full));
            _mm512_mask_storeu_ps(p.add(full), m, f(v));
        }
    }
}

/// `gelu_new` over `x`, in place.
///
/// # Safety
/// AVX-512F present.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn gelu_new_slice(x: &mut [f32]) {
    // SAFETY: AVX-512F present (this function's contract).
    unsafe { map16_by::<BY>(x, 0.0, |v| gelu_new(v), |v| gelu_new([v])[0]) }
}

/// `gelu_fast` over `x`, in place.
///
/// # Safety
/// AVX-512F present.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn gelu_fast_slice(x: &mut [f32]) {
    // SAFETY: AVX-512F present (this function's contract).
    unsafe { map16_by::<BY>(x, 0.0, |v| gelu_fast(v), |v| gelu_fast([v])[0]) }
}

/// `super::softmax`: the same maximum, the same exponentials, and their sum in the same
/// 8-lane order.
///
/// # Safety
/// AVX-512F present.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn softmax(x: &mut [f32]) {
    // SAFETY: AVX-512F present (this function's contract); `map16` bounds every access.
    unsafe {
        // The maximum ignoring NaN (as the portable fold): where a lane is NaN keep the
        // running value.
        let mut m = splat(f32::NEG_INFINITY);
        map16_read(x, f32::NEG_INFINITY, |v| {
            let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
            m = _mm512_mask_blend_ps(nan, _mm512_max_ps(m, v), m);
        });
        let max = _mm512_reduce_max_ps(m);
        let max16 = splat(max);
        let mut sum8 = _mm256_setzero_ps();
        map16(x, f32::NEG_INFINITY, |v| {
            let [e] = exp_neg([_mm512_sub_ps(v, max16)]);
            sum8 = _mm256_add_ps(sum8, _mm512_castps512_ps256(e));
            sum8 = _mm256_add_ps(sum8, _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(e))));
            e
        });
        let mut a = [0f32; 8];
        _mm256_storeu_ps(a.as_mut_ptr(), sum8);
        let inv = splat(1.0 / super::hsum_array(a));
        map16(x, 0.0, |v| _mm512_mul_ps(v, inv));
    }
}

/// Reads `x` 16 lanes at a time (the tail padded with `pad`) into `f`.
#[inline(always)]
unsafe fn map16_read(x: &[f32], pad: f32, mut f: impl FnMut(__m512)) {
    let full = x.len() - x.len() % L;
    let p = x.as_ptr();
    // SAFETY: as `map16`.
    unsafe {
        let mut i = 0;
        while i < full {
            f(_mm512_loadu_ps(p.add(i)));
            i += L;
        }
        if full < x.len() {
            f(_mm512_mask_loadu_ps(splat(pad), first(x.len() - full), p.add(full)));
        }
    }
}

/// `super::range`: the minimum and maximum of `x ⊙ mul`, NaN ignored.
///
/// # Safety
/// AVX-512F present.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn range(x: &[f32], mul: Option<&[f32]>) -> (f32, f32) {
    let (mut lo, mut hi) = (splat(f32::INFINITY), splat(f32::NEG_INFINITY));
    let mut step = |v: __m512| {
        let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
        lo = _mm512_mask_blend_ps(nan, _mm512_min_ps(lo, v), lo);
        hi = _mm512_mask_blend_ps(nan, _mm512_max_ps(hi, v), hi);
    };
    let full = x.len() - x.len() % L;
    let m = mul.map(|m| &m[..x.len()]);
    // SAFETY: AVX-512F present; loads at `i + 16 ≤ full ≤ len` (`mul` has `len` elements),
    // or masked to the tail.
    unsafe {
        let load = |i: usize, k: __mmask16| {
            let v = _mm512_maskz_loadu_ps(k, x.as_ptr().add(i));
            match m {
                Some(m) => _mm512_mul_ps(v, _mm512_maskz_loadu_ps(k, m.as_ptr().add(i))),
                None => v,
            }
        };
        let mut i = 0;
        while i < full {
            step(load(i, 0xffff));
            i += L;
        }
        if full < x.len() {
            // Padding lanes: +∞ for the minimum and −∞ for the maximum change nothing.
            let k = first(x.len() - full);
            let v = load(full, k);
            let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v) | !k;
            lo = _mm512_mask_blend_ps(nan, _mm512_min_ps(lo, v), lo);
            hi = _mm512_mask_blend_ps(nan, _mm512_max_ps(hi, v), hi);
        }
        (_mm512_reduce_min_ps(lo), _mm512_reduce_max_ps(hi))
    }
}

/// `super::quantize8` on 16 lanes: `round((v − c)·inv)` half away from zero, clamped to
/// `±max`, NaN to 0.
#[inline(always)]
unsafe fn quantize16(v: __m512, c: __m512, inv: __m512, max: __m512) -> __m512i {
    // SAFETY: AVX-512F present (callers' contract).
    unsafe {
        let sign = _mm512_set1_epi32(i32::MIN);
        let y = _mm512_mul_ps(_mm512_sub_ps(v, c), inv);
        let y = _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_EQ_OQ>(y, y), splat(0.0), y);
        let neg_max = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(max), sign));
        let y = _mm512_min_ps(_mm512_max_ps(y, neg_max), max);
        let a = _mm512_castsi512_ps(_mm512_andnot_si512(sign, _mm512_castps_si512(y)));
        let r = _mm512_sub_ps(_mm512_add_ps(a, splat(ROUND)), splat(ROUND));
        let up = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(_mm512_sub_ps(a, r), splat(0.5));
        let r = _mm512_add_ps(r, _mm512_mask_blend_ps(up, splat(0.0), splat(1.0)));
        let signed = _mm512_or_si512(
            _mm512_andnot_si512(sign, _mm512_castps_si512(r)),
            _mm512_and_si512(sign, _mm512_castps_si512(y)),
        );
        _mm512_cvtps_epi32(_mm512_castsi512_ps(signed))
    }
}

/// An integer type the 16-lane quantizer stores (`vpmovdb` / `vpmovdw`: exact, the
/// values are within `±MAX`).
pub(crate) trait Store16 {
    /// # Safety
    /// AVX-512F present; `dst` valid for the lanes of `k`.
    unsafe fn store(dst: *mut Self, k: __mmask16, v: __m512i);
}

impl Store16 for i8 {
    #[inline(always)]
    unsafe fn store(dst: *mut i8, k: __mmask16, v: __m512i) {
        // SAFETY: the caller's contract.
        unsafe { _mm512_mask_cvtepi32_storeu_epi8(dst, k, v) }
    }
}

impl Store16 for i16 {
    #[inline(always)]
    unsafe fn store(dst: *mut i16, k: __mmask16, v: __m512i) {
        // SAFETY: the caller's contract.
        unsafe { _mm512_mask_cvtepi32_storeu_epi16(dst, k, v) }
    }
}

/// The quantizing loop of `super::quantize_row`, every element (tail included) through
/// the lane form, which equals the scalar form (`quantize_row_lanes_equal_the_scalar_form`).
///
/// # Safety
/// AVX-512F present.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn quantize_into<T: Store16 + super::Quant>(
    x: &[f32],
    mul: Option<&[f32]>,
    c: f32,
    inv: f32,
    max: f32,
    q: &mut [T],
) {
    let n = x.len();
    let (q, m) = (&mut q[..n], mul.map(|m| &m[..n]));
    let (c16, inv16, max16) = (splat(c), splat(inv), splat(max));
    let full = n - n % L;
    // SAFETY: AVX-512F present; every load and store is at `i + lane` with `i + 16 ≤ full`
    // or masked to the tail, within `x`, `mul` and `q` (all `n` long).
    unsafe {
        let mut go = |i: usize, k: __mmask16| {
            let v = _mm512_maskz_loadu_ps(k, x.as_ptr().add(i));
            let v = match m {
                Some(m) => _mm512_mul_ps(v, _mm512_maskz_loadu_ps(k, m.as_ptr().add(i))),
                None => v,
            };
            T::store(q.as_mut_ptr().add(i), k, quantize16(v, c16, inv16, max16));
        };
        let mut i = 0;
        while i < full {
            go(i, 0xffff);
            i += L;
        }
        if full < n {
            go(full, first(n - full));
        }
    }
}
