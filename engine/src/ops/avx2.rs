//! AVX2 versions of the hot element-wise loops: the portable `f32x8` loops of `super` on
//! one ymm register instead of the default x86_64 build's two SSE2 registers.
//!
//! Each function performs, per element, exactly the IEEE operations of the portable version
//! in the same order (no fused multiply-add), and keeps its 8-lane sums, folds and scalar
//! tails, so the results are the same bits; `super::tests` checks that over sweeps of
//! values. Chosen when the process's GEMM kernel is `avx2` (`ALBERT_KERNEL` forcing `wide`
//! or `scalar` selects the portable loops as well).

use core::arch::x86_64::*;

use super::{LN2_HI, LN2_LO, LO_EXP, LOG2_E, ROUND, SQRT_2_OVER_PI};

/// Lanes per vector.
const L: usize = 8;

#[inline(always)]
fn splat(v: f32) -> __m256 {
    // SAFETY: only reached from the `target_feature` functions below (AVX2 present).
    unsafe { _mm256_set1_ps(v) }
}

/// `where mask { b } else { a }` (the portable `mask.blend(b, a)`).
#[inline(always)]
unsafe fn select(mask: __m256, b: __m256, a: __m256) -> __m256 {
    // SAFETY: AVX present (callers' contract).
    unsafe { _mm256_blendv_ps(a, b, mask) }
}

#[inline(always)]
unsafe fn abs(v: __m256) -> __m256 {
    // SAFETY: AVX2 present (callers' contract).
    unsafe { _mm256_castsi256_ps(_mm256_and_si256(_mm256_castps_si256(v), _mm256_set1_epi32(0x7fff_ffff))) }
}

/// `N` independent ymm as one value: every step below applies one instruction to all `N`
/// in turn, so the `N` dependency chains of a long formula (about 45 instructions and
/// 110 cycles of latency for `gelu_new`) sit side by side in the scheduler, which a loop
/// over one vector fills with a single chain. Per element the same operations.
type V<const N: usize> = [__m256; N];

/// `[body(0), body(1), ...]` as a loop in the caller's body: closures through
/// `core::array::from_fn` (or a helper taking one) were not inlined into the AVX2 function
/// and called every intrinsic out of line, 9× slower.
macro_rules! each {
    ($n:expr, |$i:ident| $body:expr) => {{
        let mut out = [_mm256_setzero_ps(); $n];
        for $i in 0..$n {
            out[$i] = $body;
        }
        out
    }};
}

/// `super::exp_neg`, on `N` ymm.
#[inline(always)]
unsafe fn exp_neg<const N: usize>(x: V<N>) -> V<N> {
    // SAFETY: AVX2 present (every caller is a `target_feature` function that requires it).
    unsafe {
        let xc: V<N> = each!(N, |i| _mm256_min_ps(_mm256_max_ps(x[i], splat(LO_EXP)), splat(0.0)));
        let t: V<N> = each!(N, |i| _mm256_add_ps(_mm256_mul_ps(xc[i], splat(LOG2_E)), splat(ROUND)));
        let n: V<N> = each!(N, |i| _mm256_sub_ps(t[i], splat(ROUND)));
        let r: V<N> = each!(N, |i| {
            _mm256_sub_ps(_mm256_sub_ps(xc[i], _mm256_mul_ps(n[i], splat(LN2_HI))), _mm256_mul_ps(n[i], splat(LN2_LO)))
        });
        let mut p: V<N> = [splat(1.0 / 5040.0); N];
        for c in [1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5] {
            p = each!(N, |i| _mm256_add_ps(_mm256_mul_ps(p[i], r[i]), splat(c)));
        }
        let er: V<N> = each!(N, |i| _mm256_add_ps(
            _mm256_add_ps(_mm256_mul_ps(_mm256_mul_ps(p[i], r[i]), r[i]), r[i]),
            splat(1.0)
        ));
        each!(N, |i| {
            let ni = _mm256_sub_epi32(_mm256_castps_si256(t[i]), _mm256_set1_epi32(ROUND.to_bits() as i32));
            let pow2 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(ni, _mm256_set1_epi32(127))));
            let y = _mm256_mul_ps(er[i], pow2);
            let y = select(_mm256_cmp_ps::<_CMP_LT_OQ>(x[i], splat(LO_EXP)), splat(0.0), y);
            select(_mm256_cmp_ps::<_CMP_EQ_OQ>(x[i], x[i]), y, x[i])
        })
    }
}

/// `super::u_sigmoid_2z`, on `N` ymm.
#[inline(always)]
unsafe fn u_sigmoid_2z<const N: usize>(u: V<N>, z: V<N>) -> V<N> {
    // SAFETY: AVX2 present (callers' contract).
    unsafe {
        let e = exp_neg(each!(N, |i| _mm256_mul_ps(splat(-2.0), abs(z[i]))));
        each!(N, |i| {
            let num = select(_mm256_cmp_ps::<_CMP_LT_OQ>(z[i], splat(0.0)), e[i], splat(1.0));
            let s = _mm256_div_ps(num, _mm256_add_ps(splat(1.0), e[i]));
            _mm256_mul_ps(_mm256_max_ps(u[i], splat(-20.0)), s)
        })
    }
}

#[inline(always)]
unsafe fn gelu_new<const N: usize>(u: V<N>) -> V<N> {
    // SAFETY: AVX2 present (callers' contract).
    unsafe {
        let z: V<N> = each!(N, |i| {
            let cube = _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(splat(0.044715), u[i]), u[i]), u[i]);
            _mm256_mul_ps(splat(SQRT_2_OVER_PI), _mm256_add_ps(u[i], cube))
        });
        u_sigmoid_2z(u, z)
    }
}

#[inline(always)]
unsafe fn gelu_fast<const N: usize>(u: V<N>) -> V<N> {
    // SAFETY: AVX2 present (callers' contract).
    unsafe {
        let z: V<N> = each!(N, |i| {
            let sq = _mm256_mul_ps(_mm256_mul_ps(splat(0.044715), u[i]), u[i]);
            _mm256_mul_ps(_mm256_mul_ps(u[i], splat(SQRT_2_OVER_PI)), _mm256_add_ps(splat(1.0), sq))
        });
        u_sigmoid_2z(u, z)
    }
}

/// Vectors per step of [`map8_by`].
const BY: usize = 4;

/// `super::map8` on one ymm: full vectors, then the tail through the same `f` on a copy
/// padded with `pad`.
#[inline(always)]
unsafe fn map8(x: &mut [f32], pad: f32, mut f: impl FnMut(__m256) -> __m256) {
    let full = x.len() - x.len() % L;
    let p = x.as_mut_ptr();
    // SAFETY: AVX2 present (callers' contract); the vector accesses are at `i + lane` with
    // `i + 8 ≤ full ≤ len`, the tail goes through a local buffer.
    unsafe {
        let mut i = 0;
        while i < full {
            _mm256_storeu_ps(p.add(i), f(_mm256_loadu_ps(p.add(i))));
            i += L;
        }
        let tail = &mut x[full..];
        if !tail.is_empty() {
            let mut buf = [pad; L];
            buf[..tail.len()].copy_from_slice(tail);
            _mm256_storeu_ps(buf.as_mut_ptr(), f(_mm256_loadu_ps(buf.as_ptr())));
            tail.copy_from_slice(&buf[..tail.len()]);
        }
    }
}

/// [`map8`] with [`BY`] vectors per step through `f4` (the same function on `BY` vectors),
/// then the rest one vector at a time through `f1`.
#[inline(always)]
unsafe fn map8_by(x: &mut [f32], pad: f32, f4: impl Fn(V<BY>) -> V<BY>, f1: impl FnMut(__m256) -> __m256) {
    let steps = x.len() / (BY * L) * (BY * L);
    let p = x.as_mut_ptr();
    // SAFETY: AVX2 present (callers' contract); accesses at `i + 8·v + lane < i + 32 ≤ steps ≤ len`.
    unsafe {
        let mut i = 0;
        while i < steps {
            let y = f4(each!(BY, |v| _mm256_loadu_ps(p.add(i + L * v))));
            for (v, y) in y.iter().enumerate() {
                _mm256_storeu_ps(p.add(i + L * v), *y);
            }
            i += BY * L;
        }
        map8(&mut x[steps..], pad, f1)
    }
}

/// `gelu_new` over `x`, in place.
///
/// # Safety
/// AVX2 present.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn gelu_new_slice(x: &mut [f32]) {
    // SAFETY: AVX2 present (this function's contract).
    unsafe { map8_by(x, 0.0, |v| gelu_new(v), |v| gelu_new([v])[0]) }
}

/// `gelu_fast` over `x`, in place.
///
/// # Safety
/// AVX2 present.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn gelu_fast_slice(x: &mut [f32]) {
    // SAFETY: AVX2 present (this function's contract).
    unsafe { map8_by(x, 0.0, |v| gelu_fast(v), |v| gelu_fast([v])[0]) }
}

/// `wide`'s NaN-ignoring `max` of the running maximum `m` (never NaN) and `v`.
#[inline(always)]
unsafe fn max_ignoring_nan(m: __m256, v: __m256) -> __m256 {
    // SAFETY: AVX present (callers' contract).
    unsafe { select(_mm256_cmp_ps::<_CMP_UNORD_Q>(v, v), m, _mm256_max_ps(m, v)) }
}

/// `wide`'s NaN-ignoring `min` of the running minimum `m` (never NaN) and `v`.
#[inline(always)]
unsafe fn min_ignoring_nan(m: __m256, v: __m256) -> __m256 {
    // SAFETY: AVX present (callers' contract).
    unsafe { select(_mm256_cmp_ps::<_CMP_UNORD_Q>(v, v), m, _mm256_min_ps(m, v)) }
}

#[inline(always)]
unsafe fn lanes(v: __m256) -> [f32; L] {
    let mut a = [0f32; L];
    // SAFETY: AVX present (callers' contract); `a` holds 8 floats.
    unsafe { _mm256_storeu_ps(a.as_mut_ptr(), v) };
    a
}

/// `super::softmax8`: the same maximum, the same exponentials, and their sum in the same
/// 8-lane order.
///
/// # Safety
/// AVX2 present.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn softmax(x: &mut [f32]) {
    // SAFETY: AVX2 present (this function's contract); loads at `i + 8 ≤ full ≤ len`.
    unsafe {
        let full = x.len() - x.len() % L;
        let mut m8 = splat(f32::NEG_INFINITY);
        let mut i = 0;
        while i < full {
            m8 = max_ignoring_nan(m8, _mm256_loadu_ps(x.as_ptr().add(i)));
            i += L;
        }
        let max = lanes(m8).into_iter().chain(x[full..].iter().copied()).fold(f32::NEG_INFINITY, f32::max);
        let (max8, mut sum8) = (splat(max), splat(0.0));
        map8(x, f32::NEG_INFINITY, |v| {
            let e = exp_neg([_mm256_sub_ps(v, max8)])[0];
            sum8 = _mm256_add_ps(sum8, e);
            e
        });
        let inv = splat(1.0 / super::hsum_array(lanes(sum8)));
        map8(x, 0.0, |v| _mm256_mul_ps(v, inv));
    }
}

/// `x[i..i + 8]`, times `mul[i..i + 8]` if given.
///
/// # Safety
/// AVX present; `i + 8 ≤ x.len()`, and `≤ mul.len()` if given.
#[inline(always)]
unsafe fn load_mul(x: &[f32], mul: Option<&[f32]>, i: usize) -> __m256 {
    // SAFETY: the caller's contract.
    unsafe {
        let v = _mm256_loadu_ps(x.as_ptr().add(i));
        match mul {
            Some(m) => _mm256_mul_ps(v, _mm256_loadu_ps(m.as_ptr().add(i))),
            None => v,
        }
    }
}

/// `super::range8`: the minimum and maximum of `x ⊙ mul`, NaN ignored.
///
/// # Safety
/// AVX2 present.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn range(x: &[f32], mul: Option<&[f32]>) -> (f32, f32) {
    let full = x.len() - x.len() % L;
    let m = mul.map(|m| &m[..x.len()]);
    // SAFETY: AVX2 present; loads at `i + 8 ≤ full ≤ len` of `x` and `mul` (`len` long).
    unsafe {
        let (mut lo, mut hi) = (splat(f32::INFINITY), splat(f32::NEG_INFINITY));
        let mut i = 0;
        while i < full {
            let v = load_mul(x, m, i);
            lo = min_ignoring_nan(lo, v);
            hi = max_ignoring_nan(hi, v);
            i += L;
        }
        super::range_finish(lanes(lo), lanes(hi), x, m, full)
    }
}

/// `super::quantize8` on `N` ymm: `round((v − c)·inv)` half away from zero, clamped to
/// `±max`, NaN to 0.
#[inline(always)]
unsafe fn quantize8<const N: usize>(v: V<N>, c: __m256, inv: __m256, max: __m256) -> [__m256i; N] {
    // SAFETY: AVX2 present (callers' contract).
    unsafe {
        let sign = _mm256_set1_epi32(i32::MIN);
        let neg_max = _mm256_castsi256_ps(_mm256_xor_si256(_mm256_castps_si256(max), sign));
        let y: V<N> = each!(N, |i| _mm256_mul_ps(_mm256_sub_ps(v[i], c), inv));
        let y: V<N> = each!(N, |i| select(_mm256_cmp_ps::<_CMP_EQ_OQ>(y[i], y[i]), y[i], splat(0.0)));
        let y: V<N> = each!(N, |i| _mm256_min_ps(_mm256_max_ps(y[i], neg_max), max));
        let a: V<N> = each!(N, |i| abs(y[i]));
        let r: V<N> = each!(N, |i| _mm256_sub_ps(_mm256_add_ps(a[i], splat(ROUND)), splat(ROUND)));
        let r: V<N> = each!(N, |i| {
            let up = _mm256_cmp_ps::<_CMP_GE_OQ>(_mm256_sub_ps(a[i], r[i]), splat(0.5));
            _mm256_add_ps(r[i], select(up, splat(1.0), splat(0.0)))
        });
        let mut out = [_mm256_setzero_si256(); N];
        for i in 0..N {
            let signed = _mm256_or_si256(
                _mm256_andnot_si256(sign, _mm256_castps_si256(r[i])),
                _mm256_and_si256(sign, _mm256_castps_si256(y[i])),
            );
            out[i] = _mm256_cvtps_epi32(_mm256_castsi256_ps(signed));
        }
        out
    }
}

/// An integer type the 8-lane quantizer stores (saturating packs: exact, the values are
/// within `±MAX`).
pub(crate) trait Store8 {
    /// # Safety
    /// AVX2 present; `dst` valid for 8 elements.
    unsafe fn store8(dst: *mut Self, v: __m256i);
}

impl Store8 for i8 {
    #[inline(always)]
    unsafe fn store8(dst: *mut i8, v: __m256i) {
        // SAFETY: the caller's contract. Per 128-bit half, lanes 0-3 (4-7) become bytes
        // 0-3 of that half; the two dwords are then put side by side.
        unsafe {
            let w = _mm256_packs_epi32(v, v);
            let b = _mm256_packs_epi16(w, w);
            let lo = _mm256_castsi256_si128(b);
            let hi = _mm256_extracti128_si256::<1>(b);
            _mm_storel_epi64(dst.cast(), _mm_unpacklo_epi32(lo, hi));
        }
    }
}

impl Store8 for i16 {
    #[inline(always)]
    unsafe fn store8(dst: *mut i16, v: __m256i) {
        // SAFETY: the caller's contract. Qwords 0 and 2 of the pack hold lanes 0-3 and 4-7.
        unsafe {
            let w = _mm256_permute4x64_epi64::<0b1000>(_mm256_packs_epi32(v, v));
            _mm_storeu_si128(dst.cast(), _mm256_castsi256_si128(w));
        }
    }
}

/// `super::quantize_into8`: full vectors in the lane form, the tail in the scalar form.
///
/// # Safety
/// AVX2 present.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn quantize_into<T: Store8 + super::Quant>(
    x: &[f32],
    mul: Option<&[f32]>,
    c: f32,
    inv: f32,
    max: f32,
    q: &mut [T],
) {
    let n = x.len();
    let (q, m) = (&mut q[..n], mul.map(|m| &m[..n]));
    let (c8, inv8, max8) = (splat(c), splat(inv), splat(max));
    let full = n - n % L;
    // SAFETY: AVX2 present; every load and store is at `i + lane` with `i + 8 ≤ full ≤ n`,
    // within `x`, `mul` and `q` (all `n` long).
    unsafe {
        let mut i = 0;
        while i + BY * L <= full {
            let v: V<BY> = each!(BY, |u| load_mul(x, m, i + L * u));
            for (u, &y) in quantize8(v, c8, inv8, max8).iter().enumerate() {
                T::store8(q.as_mut_ptr().add(i + L * u), y);
            }
            i += BY * L;
        }
        while i < full {
            let v = load_mul(x, m, i);
            T::store8(q.as_mut_ptr().add(i), quantize8([v], c8, inv8, max8)[0]);
            i += L;
        }
    }
    super::quantize_tail(x, m, c, inv, max, q, full);
}
