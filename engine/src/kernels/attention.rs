//! The f32 inner loops of attention, for one query row of one head: the scores `q·k_j`
//! and the context `Σ_j p_j v_j`.
//!
//! The plain bodies below are the definition (and the build for targets without SIMD):
//! a score is [`super::scalar::dot_f32`] (eight partial sums over chunks of 8, then a fixed
//! reduction), a context element the sum over `j` in order. The AVX2 (x86_64, chosen at
//! run time) and NEON (aarch64) versions compute the same operations in the same order
//! with explicit vectors — Rust never contracts `a·b + c` into an FMA — so every build
//! gives the same bits (`tests` below; CI runs them under qemu for aarch64). They exist
//! because LLVM vectorised the plain scores loop across keys, with a shuffle per element.
//!
//! Scores: four keys at a time (four independent accumulators, each query chunk loaded
//! once for all four), and with AVX2 two query rows per key load ([`scores_rows`]).
//! Context: the output row's columns stay in registers over all `j`. The forward pass
//! hands these loops a head's keys and values packed `head_dim` apart ([`pack_rows`]):
//! token rows `hidden_size` floats apart fall into a few L1 sets.

/// Keys per step of the vector scores loops.
#[allow(dead_code)] // only the vector versions use it
const KEYS: usize = 4;

/// The plain scores: the reference.
#[inline(always)]
fn scores_body(q: &[f32], keys: &[f32], stride: usize, scale: f32, mask: Option<&[u32]>, out: &mut [f32]) {
    let d = q.len();
    for (j, o) in out.iter_mut().enumerate() {
        let kj = &keys[j * stride..j * stride + d];
        *o = super::scalar::dot_f32(q, kj) * scale + mask_bias(mask, j);
    }
}

/// transformers adds finfo(float32).min where the mask is 0.
#[inline(always)]
fn mask_bias(mask: Option<&[u32]>, j: usize) -> f32 {
    if mask.is_some_and(|m| m[j] == 0) { f32::MIN } else { 0.0 }
}

/// The loop both SIMD `scores_rows` forms run: four keys at a time, each against the query
/// rows in pairs (`dot2`: one key load per two rows; `dot1` for an odd last row), `put`
/// finishing a row's four scores (`· scale + bias`) into its 4-float output; the last
/// `n mod 4` keys by the scalar dot product. Inlined into each form, so that its closures
/// compile with that form's instructions.
#[allow(dead_code)] // used by the AVX2 and NEON forms only
#[allow(clippy::too_many_arguments)] // the scores' operands and the three vector steps
#[inline(always)]
fn scores_rows_by<V>(
    (qs, keys, stride): (&[&[f32]], &[f32], usize),
    scale: f32,
    mask: Option<&[u32]>,
    out: &mut [f32],
    n: usize,
    dot2: impl Fn(&[f32], &[f32], [&[f32]; KEYS]) -> (V, V),
    dot1: impl Fn(&[f32], [&[f32]; KEYS]) -> V,
    put: impl Fn(&mut [f32], V, &[f32; KEYS]),
) {
    let d = qs.first().map_or(0, |q| q.len());
    let key = |j: usize| &keys[j * stride..j * stride + d];
    let full = n - n % KEYS;
    for j in (0..full).step_by(KEYS) {
        let ks = [key(j), key(j + 1), key(j + 2), key(j + 3)];
        let bias: [f32; KEYS] = core::array::from_fn(|u| mask_bias(mask, j + u));
        let mut r = 0;
        while r + 2 <= qs.len() {
            let (d0, d1) = dot2(qs[r], qs[r + 1], ks);
            put(&mut out[r * n + j..r * n + j + KEYS], d0, &bias);
            put(&mut out[(r + 1) * n + j..(r + 1) * n + j + KEYS], d1, &bias);
            r += 2;
        }
        if r < qs.len() {
            put(&mut out[r * n + j..r * n + j + KEYS], dot1(qs[r], ks), &bias);
        }
    }
    for (r, q) in qs.iter().enumerate() {
        for j in full..n {
            out[r * n + j] = super::scalar::dot_f32(q, key(j)) * scale + mask_bias(mask, j);
        }
    }
}

/// The plain context: the reference.
#[inline(always)]
fn context_body(probs: &[f32], values: &[f32], stride: usize, out: &mut [f32]) {
    let d = out.len();
    out.fill(0.0);
    for (j, &p) in probs.iter().enumerate() {
        let vj = &values[j * stride..j * stride + d];
        out.iter_mut().zip(vj).for_each(|(o, &v)| *o += p * v);
    }
}

#[cfg(all(target_arch = "x86_64", feature = "std"))]
mod avx2 {
    use super::{KEYS, mask_bias};
    use crate::kernels::scalar::{dot_f32, dot_f32_tail};
    use core::arch::x86_64::*;

    /// `out[j]` for four keys: the eight partial sums of each key in one ymm, reduced as
    /// `dot_f32_finish` does: `((s0 + s4) + (s1 + s5)) + ((s2 + s6) + (s3 + s7))`.
    ///
    /// # Safety
    /// AVX2 present; `q.len() = d` and `ks[u][..d]` in bounds (slices guarantee it).
    #[target_feature(enable = "avx2")]
    unsafe fn dot4(q: &[f32], ks: [&[f32]; KEYS]) -> __m128 {
        let d = q.len();
        let body = d - d % 8;
        let mut acc = [_mm256_setzero_ps(); KEYS];
        let mut c = 0;
        while c < body {
            // SAFETY: c + 8 ≤ body ≤ d ≤ every slice's length.
            unsafe {
                let qc = _mm256_loadu_ps(q.as_ptr().add(c));
                for (a, k) in acc.iter_mut().zip(&ks) {
                    *a = _mm256_add_ps(*a, _mm256_mul_ps(qc, _mm256_loadu_ps(k.as_ptr().add(c))));
                }
            }
            c += 8;
        }
        // s = (s0 + s4, s1 + s5, s2 + s6, s3 + s7) per key, then hadd pairs: (s0+s4)+(s1+s5)
        // and (s2+s6)+(s3+s7), then their sum: one lane per key.
        let half = |a: __m256| _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps::<1>(a));
        let h01 = _mm_hadd_ps(half(acc[0]), half(acc[1]));
        let h23 = _mm_hadd_ps(half(acc[2]), half(acc[3]));
        let dots = _mm_hadd_ps(h01, h23);
        if body == d {
            // The tail is an empty sum, −0.0, and x + (−0.0) = x: nothing to add.
            return dots;
        }
        let tail: [f32; KEYS] = core::array::from_fn(|u| dot_f32_tail(&q[body..], &ks[u][body..d]));
        // SAFETY: `tail` holds 4 floats.
        _mm_add_ps(dots, unsafe { _mm_loadu_ps(tail.as_ptr()) })
    }

    /// [`dot4`] for two query rows of the same length: each key vector is loaded once for
    /// both; per row the same operations in the same order.
    ///
    /// # Safety
    /// AVX2 present; `q1.len() = q0.len() = d`, `ks[u][..d]` in bounds.
    #[target_feature(enable = "avx2")]
    unsafe fn dot4x2(q0: &[f32], q1: &[f32], ks: [&[f32]; KEYS]) -> (__m128, __m128) {
        let d = q0.len();
        let body = d - d % 8;
        let mut a0 = [_mm256_setzero_ps(); KEYS];
        let mut a1 = [_mm256_setzero_ps(); KEYS];
        let mut c = 0;
        while c < body {
            // SAFETY: c + 8 ≤ body ≤ d ≤ every slice's length.
            unsafe {
                let (x0, x1) = (_mm256_loadu_ps(q0.as_ptr().add(c)), _mm256_loadu_ps(q1[..d].as_ptr().add(c)));
                for u in 0..KEYS {
                    let k = _mm256_loadu_ps(ks[u].as_ptr().add(c));
                    a0[u] = _mm256_add_ps(a0[u], _mm256_mul_ps(x0, k));
                    a1[u] = _mm256_add_ps(a1[u], _mm256_mul_ps(x1, k));
                }
            }
            c += 8;
        }
        let half = |a: __m256| _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps::<1>(a));
        let reduce =
            |a: &[__m256; KEYS]| _mm_hadd_ps(_mm_hadd_ps(half(a[0]), half(a[1])), _mm_hadd_ps(half(a[2]), half(a[3])));
        let (mut d0, mut d1) = (reduce(&a0), reduce(&a1));
        if body < d {
            let t0: [f32; KEYS] = core::array::from_fn(|u| dot_f32_tail(&q0[body..], &ks[u][body..d]));
            let t1: [f32; KEYS] = core::array::from_fn(|u| dot_f32_tail(&q1[body..d], &ks[u][body..d]));
            // SAFETY: `t0`, `t1` hold 4 floats.
            unsafe {
                d0 = _mm_add_ps(d0, _mm_loadu_ps(t0.as_ptr()));
                d1 = _mm_add_ps(d1, _mm_loadu_ps(t1.as_ptr()));
            }
        }
        (d0, d1)
    }

    /// [`scores`] for the rows `qs` (all of one length) at once, row `r`'s scores in
    /// `out[r·n..][..n]`: four keys at a time, each against the rows in pairs, so that a
    /// key is loaded once per two rows. The same bits as one [`scores`] call per row.
    ///
    /// # Safety
    /// AVX2 present.
    #[target_feature(enable = "avx2")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn scores_rows(
        qs: &[&[f32]],
        keys: &[f32],
        stride: usize,
        scale: f32,
        mask: Option<&[u32]>,
        out: &mut [f32],
        n: usize,
    ) {
        let scale4 = _mm_set1_ps(scale);
        super::scores_rows_by(
            (qs, keys, stride),
            scale,
            mask,
            out,
            n,
            // SAFETY (both): AVX2 present (this function's contract); the rows have length d.
            |q0, q1, ks| unsafe { dot4x2(q0, q1, ks) },
            |q, ks| unsafe { dot4(q, ks) },
            |o, dots, bias| {
                // SAFETY: `o` and `bias` hold 4 floats.
                unsafe {
                    _mm_storeu_ps(o.as_mut_ptr(), _mm_add_ps(_mm_mul_ps(dots, scale4), _mm_loadu_ps(bias.as_ptr())))
                }
            },
        )
    }

    /// # Safety
    /// AVX2 present.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn scores(
        q: &[f32],
        keys: &[f32],
        stride: usize,
        scale: f32,
        mask: Option<&[u32]>,
        out: &mut [f32],
    ) {
        let d = q.len();
        let key = |j: usize| &keys[j * stride..j * stride + d];
        let full = out.len() - out.len() % KEYS;
        let scale4 = _mm_set1_ps(scale);
        for j in (0..full).step_by(KEYS) {
            // SAFETY: AVX2 is present (this function's contract); the key slices are bounds-checked.
            let dots = unsafe { dot4(q, [key(j), key(j + 1), key(j + 2), key(j + 3)]) };
            let bias: [f32; KEYS] = core::array::from_fn(|u| mask_bias(mask, j + u));
            // SAFETY: `bias` holds 4 floats; `out[j..j + 4]` is in bounds (j + 4 ≤ full).
            unsafe {
                let r = _mm_add_ps(_mm_mul_ps(dots, scale4), _mm_loadu_ps(bias.as_ptr()));
                _mm_storeu_ps(out[j..j + KEYS].as_mut_ptr(), r);
            }
        }
        for (j, o) in out.iter_mut().enumerate().skip(full) {
            *o = dot_f32(q, key(j)) * scale + mask_bias(mask, j);
        }
    }

    /// [`context`] for two rows of probabilities (`p0`, `p1`, the same length) into `o0`
    /// and `o1` (the same length): 32 columns of both rows in registers, each value vector
    /// loaded once for the two. Per element the operations of one [`context`] call.
    ///
    /// # Safety
    /// AVX2 present.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn context2(
        (p0, p1): (&[f32], &[f32]),
        values: &[f32],
        stride: usize,
        (o0, o1): (&mut [f32], &mut [f32]),
    ) {
        let d = o0.len();
        let p1 = &p1[..p0.len()];
        let o1 = &mut o1[..d];
        let mut c0 = 0;
        while c0 + 32 <= d {
            let (mut a0, mut a1) = ([_mm256_setzero_ps(); 4], [_mm256_setzero_ps(); 4]);
            for (j, (&x0, &x1)) in p0.iter().zip(p1).enumerate() {
                let vj = &values[j * stride + c0..][..32];
                let (b0, b1) = (_mm256_set1_ps(x0), _mm256_set1_ps(x1));
                for i in 0..4 {
                    // SAFETY: 8·i + 8 ≤ 32 = vj.len().
                    let v = unsafe { _mm256_loadu_ps(vj.as_ptr().add(8 * i)) };
                    a0[i] = _mm256_add_ps(a0[i], _mm256_mul_ps(b0, v));
                    a1[i] = _mm256_add_ps(a1[i], _mm256_mul_ps(b1, v));
                }
            }
            for i in 0..4 {
                // SAFETY: c0 + 8·i + 8 ≤ c0 + 32 ≤ d, both rows d long.
                unsafe {
                    _mm256_storeu_ps(o0.as_mut_ptr().add(c0 + 8 * i), a0[i]);
                    _mm256_storeu_ps(o1.as_mut_ptr().add(c0 + 8 * i), a1[i]);
                }
            }
            c0 += 32;
        }
        if c0 < d {
            // SAFETY: AVX2 present (this function's contract).
            unsafe {
                context(p0, &values[c0..], stride, &mut o0[c0..]);
                context(p1, &values[c0..], stride, &mut o1[c0..]);
            }
        }
    }

    /// # Safety
    /// AVX2 present.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn context(probs: &[f32], values: &[f32], stride: usize, out: &mut [f32]) {
        let d = out.len();
        let mut c0 = 0;
        // 64 columns (8 ymm) per pass, then 8 at a time, then the plain loop for the rest.
        while c0 + 64 <= d {
            let mut acc = [_mm256_setzero_ps(); 8];
            for (j, &p) in probs.iter().enumerate() {
                let vj = &values[j * stride + c0..][..64];
                let pv = _mm256_set1_ps(p);
                for (i, a) in acc.iter_mut().enumerate() {
                    // SAFETY: 8·i + 8 ≤ 64 = vj.len().
                    *a = _mm256_add_ps(*a, _mm256_mul_ps(pv, unsafe { _mm256_loadu_ps(vj.as_ptr().add(8 * i)) }));
                }
            }
            for (i, a) in acc.iter().enumerate() {
                // SAFETY: c0 + 8·i + 8 ≤ c0 + 64 ≤ d.
                unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(c0 + 8 * i), *a) };
            }
            c0 += 64;
        }
        while c0 + 8 <= d {
            let mut acc = _mm256_setzero_ps();
            for (j, &p) in probs.iter().enumerate() {
                let vj = &values[j * stride + c0..][..8];
                // SAFETY: vj holds 8 floats.
                acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_set1_ps(p), unsafe { _mm256_loadu_ps(vj.as_ptr()) }));
            }
            // SAFETY: c0 + 8 ≤ d.
            unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(c0), acc) };
            c0 += 8;
        }
        super::context_body(probs, &values[c0..], stride, &mut out[c0..]);
    }
}

#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
mod neon {
    use super::{KEYS, mask_bias};
    use crate::kernels::scalar::{dot_f32, dot_f32_tail};
    use core::arch::aarch64::*;

    /// As the AVX2 `dot4`: eight partial sums per key in two q registers (lanes 0-3 and
    /// 4-7), reduced as `((s0 + s4) + (s1 + s5)) + ((s2 + s6) + (s3 + s7))` with `faddp`.
    #[inline(always)]
    fn dot4(q: &[f32], ks: [&[f32]; KEYS]) -> float32x4_t {
        let d = q.len();
        let body = d - d % 8;
        // SAFETY (every intrinsic here): NEON is a build-time target feature; each load
        // reads 4 floats at c or c + 4 with c + 8 ≤ body ≤ the slice's length.
        unsafe {
            let mut lo = [vdupq_n_f32(0.0); KEYS];
            let mut hi = [vdupq_n_f32(0.0); KEYS];
            let mut c = 0;
            while c < body {
                let (q0, q1) = (vld1q_f32(q.as_ptr().add(c)), vld1q_f32(q.as_ptr().add(c + 4)));
                for u in 0..KEYS {
                    let k = ks[u].as_ptr().add(c);
                    lo[u] = vaddq_f32(lo[u], vmulq_f32(q0, vld1q_f32(k)));
                    hi[u] = vaddq_f32(hi[u], vmulq_f32(q1, vld1q_f32(k.add(4))));
                }
                c += 8;
            }
            let s: [float32x4_t; KEYS] = core::array::from_fn(|u| vaddq_f32(lo[u], hi[u]));
            // faddp: (a0+a1, a2+a3, b0+b1, b2+b3).
            let dots = vpaddq_f32(vpaddq_f32(s[0], s[1]), vpaddq_f32(s[2], s[3]));
            if body == d {
                return dots;
            }
            let tail: [f32; KEYS] = core::array::from_fn(|u| dot_f32_tail(&q[body..], &ks[u][body..d]));
            vaddq_f32(dots, vld1q_f32(tail.as_ptr()))
        }
    }

    /// [`dot4`] for two query rows of the same length: each key vector is loaded once for
    /// both (per 8 values of a head, 12 loads for 32 FP operations where two [`dot4`] calls
    /// issue 20); per row the same operations in the same order.
    #[inline(always)]
    fn dot4x2(q0: &[f32], q1: &[f32], ks: [&[f32]; KEYS]) -> (float32x4_t, float32x4_t) {
        let d = q0.len();
        let q1 = &q1[..d];
        let body = d - d % 8;
        // SAFETY (every intrinsic here): NEON is a build-time target feature; each load
        // reads 4 floats at c or c + 4 with c + 8 ≤ body ≤ every slice's length.
        unsafe {
            let z = vdupq_n_f32(0.0);
            let (mut lo0, mut hi0, mut lo1, mut hi1) = ([z; KEYS], [z; KEYS], [z; KEYS], [z; KEYS]);
            let mut c = 0;
            while c < body {
                let (a0, a1) = (vld1q_f32(q0.as_ptr().add(c)), vld1q_f32(q0.as_ptr().add(c + 4)));
                let (b0, b1) = (vld1q_f32(q1.as_ptr().add(c)), vld1q_f32(q1.as_ptr().add(c + 4)));
                for u in 0..KEYS {
                    let k = ks[u].as_ptr().add(c);
                    let (k0, k1) = (vld1q_f32(k), vld1q_f32(k.add(4)));
                    lo0[u] = vaddq_f32(lo0[u], vmulq_f32(a0, k0));
                    hi0[u] = vaddq_f32(hi0[u], vmulq_f32(a1, k1));
                    lo1[u] = vaddq_f32(lo1[u], vmulq_f32(b0, k0));
                    hi1[u] = vaddq_f32(hi1[u], vmulq_f32(b1, k1));
                }
                c += 8;
            }
            let reduce = |lo: &[float32x4_t; KEYS], hi: &[float32x4_t; KEYS]| {
                let s: [float32x4_t; KEYS] = core::array::from_fn(|u| vaddq_f32(lo[u], hi[u]));
                vpaddq_f32(vpaddq_f32(s[0], s[1]), vpaddq_f32(s[2], s[3]))
            };
            let (mut d0, mut d1) = (reduce(&lo0, &hi0), reduce(&lo1, &hi1));
            if body < d {
                let t0: [f32; KEYS] = core::array::from_fn(|u| dot_f32_tail(&q0[body..], &ks[u][body..d]));
                let t1: [f32; KEYS] = core::array::from_fn(|u| dot_f32_tail(&q1[body..], &ks[u][body..d]));
                d0 = vaddq_f32(d0, vld1q_f32(t0.as_ptr()));
                d1 = vaddq_f32(d1, vld1q_f32(t1.as_ptr()));
            }
            (d0, d1)
        }
    }

    /// [`scores`] for the rows `qs` (all of one length) at once, row `r`'s scores in
    /// `out[r·n..][..n]`: four keys at a time, each against the rows in pairs, as the AVX2
    /// form does. The same bits as one [`scores`] call per row.
    pub(super) fn scores_rows(
        qs: &[&[f32]],
        keys: &[f32],
        stride: usize,
        scale: f32,
        mask: Option<&[u32]>,
        out: &mut [f32],
        n: usize,
    ) {
        super::scores_rows_by((qs, keys, stride), scale, mask, out, n, dot4x2, dot4, |o, dots, bias| {
            // SAFETY: NEON at build time; `bias` and `o` hold 4 floats.
            unsafe {
                vst1q_f32(o.as_mut_ptr(), vaddq_f32(vmulq_f32(dots, vdupq_n_f32(scale)), vld1q_f32(bias.as_ptr())))
            }
        })
    }

    pub(super) fn scores(q: &[f32], keys: &[f32], stride: usize, scale: f32, mask: Option<&[u32]>, out: &mut [f32]) {
        let d = q.len();
        let key = |j: usize| &keys[j * stride..j * stride + d];
        let full = out.len() - out.len() % KEYS;
        for j in (0..full).step_by(KEYS) {
            let dots = dot4(q, [key(j), key(j + 1), key(j + 2), key(j + 3)]);
            let bias: [f32; KEYS] = core::array::from_fn(|u| mask_bias(mask, j + u));
            // SAFETY: NEON at build time; `bias` holds 4 floats, `out[j..j + 4]` is in bounds.
            unsafe {
                let r = vaddq_f32(vmulq_f32(dots, vdupq_n_f32(scale)), vld1q_f32(bias.as_ptr()));
                vst1q_f32(out[j..j + KEYS].as_mut_ptr(), r);
            }
        }
        for (j, o) in out.iter_mut().enumerate().skip(full) {
            *o = dot_f32(q, key(j)) * scale + mask_bias(mask, j);
        }
    }

    pub(super) fn context(probs: &[f32], values: &[f32], stride: usize, out: &mut [f32]) {
        let d = out.len();
        // Every row the loops below read, `values[j·stride..][..d]` for j < probs.len(),
        // checked once here: a slice per key cost two bounds checks in the inner loop
        // (29 instructions for 16 multiply-adds; `kernels/README.md`).
        let Some(last) = probs.len().checked_sub(1) else {
            out.fill(0.0);
            return;
        };
        assert!(last * stride + d <= values.len(), "context: values too short");
        let mut c0 = 0;
        // 32 columns (8 q registers) per pass, then 4 at a time, then the plain loop.
        while c0 + 32 <= d {
            // SAFETY (every intrinsic here): NEON at build time; key j reads 32 floats at
            // j·stride + c0 with c0 + 32 ≤ d, inside `values` by the assert above; stores
            // stay inside `out[c0..c0 + 32]`.
            unsafe {
                let mut acc = [vdupq_n_f32(0.0); 8];
                let mut vj = values.as_ptr().add(c0);
                for &p in probs {
                    let pv = vdupq_n_f32(p);
                    for (i, a) in acc.iter_mut().enumerate() {
                        *a = vaddq_f32(*a, vmulq_f32(pv, vld1q_f32(vj.add(4 * i))));
                    }
                    vj = vj.wrapping_add(stride);
                }
                for (i, a) in acc.iter().enumerate() {
                    vst1q_f32(out.as_mut_ptr().add(c0 + 4 * i), *a);
                }
            }
            c0 += 32;
        }
        while c0 + 4 <= d {
            // SAFETY: as above, 4 floats per key.
            unsafe {
                let mut acc = vdupq_n_f32(0.0);
                let mut vj = values.as_ptr().add(c0);
                for &p in probs {
                    acc = vaddq_f32(acc, vmulq_f32(vdupq_n_f32(p), vld1q_f32(vj)));
                    vj = vj.wrapping_add(stride);
                }
                vst1q_f32(out.as_mut_ptr().add(c0), acc);
            }
            c0 += 4;
        }
        super::context_body(probs, &values[c0..], stride, &mut out[c0..]);
    }
}

/// Query rows per block of [`scores_rows`] and [`context_rows`].
pub const QROWS: usize = 6;

/// Whether [`scores_rows`] reads the transposed keys (the AVX-512 form runs): callers
/// fill them with [`transpose_keys`] only then.
pub fn reads_transposed_keys() -> bool {
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    return super::float_avx512();
    #[allow(unreachable_code)]
    false
}

/// The row length of the transposed keys of `n` tokens ([`transpose_keys`]): `n` rounded up
/// to 16 floats, plus 16 where that makes an even count of 64-byte lines. Rows an even
/// count of lines apart fall into a fraction of L1's sets (128 keys: rows 512 bytes apart,
/// 64 rows in 8 of 64 sets), and the scores read one line of every row per 16 keys.
pub fn keys_stride(n: usize) -> usize {
    // Saturating: scratch sizes are asked for any length (and refused when too large).
    let lanes = n.saturating_add(15) & !15;
    if (lanes / 16).is_multiple_of(2) { lanes.saturating_add(16) } else { lanes }
}

/// `kt[d·ld + j] = keys[j·stride + d]` for `j < n`, `d < dh`, `ld = keys_stride(n)`: a
/// head's keys (token `j`'s at `keys[j·stride..][..dh]`) transposed, the layout the
/// AVX-512 scores read. `kt` holds at least `dh · keys_stride(n)` floats.
pub fn transpose_keys(keys: &[f32], stride: usize, n: usize, dh: usize, kt: &mut [f32]) {
    let ld = keys_stride(n);
    let kt = &mut kt[..dh * ld];
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    if super::float_avx512() && n > 0 {
        // SAFETY: AVX-512F present (`float_avx512`); the function slices `keys` to the n rows
        // it reads and `kt` to dh rows of ld ≥ n, so a short slice panics there.
        return unsafe { avx512::transpose_keys(keys, stride, n, dh, ld, kt) };
    }
    for j in 0..n {
        for (d, &v) in keys[j * stride..j * stride + dh].iter().enumerate() {
            kt[d * ld + j] = v;
        }
    }
}

/// `out[j·dh..][..dh] = rows[j·stride..][..dh]` for `j < n`: a head's keys or values (token
/// `j`'s at `rows[j·stride..]`) packed `dh` apart.
pub fn pack_rows(rows: &[f32], stride: usize, n: usize, dh: usize, out: &mut [f32]) {
    for (j, o) in out[..n * dh].chunks_exact_mut(dh.max(1)).enumerate() {
        o.copy_from_slice(&rows[j * stride..j * stride + dh]);
    }
}

/// Query-blocked versions for AVX-512 machines. Scores read the transposed keys
/// ([`transpose_keys`]) with 16 keys in the lanes of a zmm: each lane keeps a key's eight
/// partial sums of [`super::scalar::dot_f32`] in eight registers (partial `p` takes
/// `d ≡ p mod 8`, in order), then reduces them with vertical adds in `dot_f32_finish`'s
/// order and adds the tail's sum: the same operations as `dot_f32` per (query, key), with
/// no horizontal reductions. Contexts: [`QROWS`] rows share every value load, per element the
/// operations of `context_body`. Same bits as the per-row loops.
#[cfg(all(target_arch = "x86_64", feature = "std"))]
mod avx512 {
    use super::QROWS;
    use core::arch::x86_64::*;

    /// Query rows per register tile of the scores: 3 rows × 8 partial sums = 24 zmm.
    const SR: usize = 3;

    /// `super::transpose_keys` in 16 × 16 blocks: 16 key rows loaded (masked to the `dh`
    /// columns left), one in-register transpose, 16 stores (masked to the keys left).
    ///
    /// # Safety
    /// AVX-512F present; `n ≥ 1`; `keys` holds rows `j·stride .. j·stride + dh` for `j < n`; `kt`
    /// holds `dh` rows of `ld ≥ n`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn transpose_keys(keys: &[f32], stride: usize, n: usize, dh: usize, ld: usize, kt: &mut [f32]) {
        let (keys, kt) = (&keys[..(n - 1) * stride + dh], &mut kt[..dh * ld]);
        let mut j0 = 0;
        while j0 < n {
            let w = (n - j0).min(16);
            let key_lanes = ((1u32 << w) - 1) as __mmask16;
            let mut d0 = 0;
            while d0 < dh {
                let cols = ((1u32 << (dh - d0).min(16)) - 1) as __mmask16;
                let rows: [__m512i; 16] = core::array::from_fn(|t| {
                    if t < w {
                        // SAFETY: masked to columns d0 + l < dh of key row j0 + t < n.
                        unsafe { _mm512_maskz_loadu_epi32(cols, keys.as_ptr().add((j0 + t) * stride + d0).cast()) }
                    } else {
                        _mm512_setzero_si512()
                    }
                });
                // SAFETY: register-only AVX-512F instructions.
                let out = unsafe { crate::kernels::x86::transpose_16x16(rows) };
                for (i, v) in out.iter().enumerate().take((dh - d0).min(16)) {
                    // SAFETY: row d0 + i < dh of `kt`, masked to keys j0 + l < n ≤ ld.
                    unsafe { _mm512_mask_storeu_epi32(kt.as_mut_ptr().add((d0 + i) * ld + j0).cast(), key_lanes, *v) };
                }
                d0 += 16;
            }
            j0 += 16;
        }
    }

    /// `out[r·n + j] = dot_f32(q_r, k_j)·scale + mask bias` for the `QROWS` rows of `qs`
    /// (`dh` each) against the transposed keys `kt` (`dh` rows of `keys_stride(n)`).
    ///
    /// # Safety
    /// AVX-512F present; `kt.len() ≥ dh·keys_stride(n)`, `out.len() ≥ QROWS·n`, `mask` (if
    /// any) `≥ n`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn scores_block(
        qs: [&[f32]; QROWS],
        kt: &[f32],
        n: usize,
        scale: f32,
        mask: Option<&[u32]>,
        out: &mut [f32],
    ) {
        let dh = qs[0].len();
        let body = dh - dh % 8;
        let ld = super::keys_stride(n);
        let (kt, out) = (&kt[..dh * ld], &mut out[..QROWS * n]);
        let mask = mask.map(|m| &m[..n]);
        let scale16 = _mm512_set1_ps(scale);
        let mut j0 = 0;
        while j0 < n {
            let w = (n - j0).min(16);
            let lanes = ((1u32 << w) - 1) as __mmask16;
            // SAFETY (loads below): masked to lanes `l < w`, key `j0 + l < n ≤ ld`, row `d < dh`.
            let load = |d: usize| unsafe { _mm512_maskz_loadu_ps(lanes, kt.as_ptr().add(d * ld + j0)) };
            let bias = match mask {
                Some(m) => {
                    // SAFETY: masked to the `w` keys from `j0`, all `< n`.
                    let mi = unsafe { _mm512_maskz_loadu_epi32(lanes, m.as_ptr().add(j0).cast()) };
                    let zero = _mm512_cmpeq_epi32_mask(mi, _mm512_setzero_si512()) & lanes;
                    _mm512_mask_blend_ps(zero, _mm512_setzero_ps(), _mm512_set1_ps(f32::MIN))
                }
                None => _mm512_setzero_ps(),
            };
            for r0 in (0..QROWS).step_by(SR) {
                let mut acc = [[_mm512_setzero_ps(); 8]; SR];
                // Each query value broadcast from the row itself (a copy to the stack made
                // every 8 values wait on a store).
                let qp: [*const f32; SR] = core::array::from_fn(|s| qs[r0 + s].as_ptr());
                for c in (0..body).step_by(8) {
                    #[allow(clippy::needless_range_loop)] // `p` is a query index and a register's
                    for p in 0..8 {
                        let kv = load(c + p);
                        for s in 0..SR {
                            // SAFETY: c + p < body ≤ dh, the length of every row of `qs`.
                            let qv = unsafe { _mm512_set1_ps(*qp[s].add(c + p)) };
                            acc[s][p] = _mm512_add_ps(acc[s][p], _mm512_mul_ps(qv, kv));
                        }
                    }
                }
                for (s, (a, q)) in acc.iter().zip(&qs[r0..r0 + SR]).enumerate() {
                    // `dot_f32_tail`: the remaining products summed in order from −0.0.
                    let mut tail = _mm512_set1_ps(-0.0);
                    for d in body..dh {
                        tail = _mm512_add_ps(tail, _mm512_mul_ps(_mm512_set1_ps(q[d]), load(d)));
                    }
                    // `dot_f32_finish`: ((a0 + a4) + (a1 + a5)) + ((a2 + a6) + (a3 + a7)), + tail.
                    let x = _mm512_add_ps(_mm512_add_ps(a[0], a[4]), _mm512_add_ps(a[1], a[5]));
                    let y = _mm512_add_ps(_mm512_add_ps(a[2], a[6]), _mm512_add_ps(a[3], a[7]));
                    let dot = _mm512_add_ps(_mm512_add_ps(x, y), tail);
                    let v = _mm512_add_ps(_mm512_mul_ps(dot, scale16), bias);
                    let o = &mut out[(r0 + s) * n + j0..][..w];
                    // SAFETY: masked to lanes `l < w = o.len()`.
                    unsafe { _mm512_mask_storeu_ps(o.as_mut_ptr(), lanes, v) };
                }
            }
            j0 += w;
        }
    }

    /// `out[r·d..][..d] = Σ_j probs[r·n + j] · v_j` for the `QROWS` rows; 16 columns per zmm,
    /// the sum over `j` in order from +0.0 (as `context_body`).
    ///
    /// # Safety
    /// AVX-512F present; `probs.len() = QROWS·n`, `out.len() = QROWS·d`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn context_block(
        probs: &[f32],
        n: usize,
        values: &[f32],
        stride: usize,
        out: &mut [f32],
        d: usize,
    ) {
        let (probs, out) = (&probs[..QROWS * n], &mut out[..QROWS * d]);
        let mut c0 = 0;
        while c0 < d {
            // Up to 64 columns: 4 zmm per row, the last one masked to the columns that exist.
            let w = (d - c0).min(64);
            let masks: [__mmask16; 4] = core::array::from_fn(|i| {
                let n = w.saturating_sub(16 * i).min(16);
                ((1u32 << n) - 1) as __mmask16
            });
            let mut acc = [[_mm512_setzero_ps(); 4]; QROWS];
            for j in 0..n {
                let vj = &values[j * stride + c0..][..w];
                // SAFETY: each load is masked to lanes `16·i + l < w = vj.len()`.
                let v: [__m512; 4] =
                    core::array::from_fn(|i| unsafe { _mm512_maskz_loadu_ps(masks[i], vj.as_ptr().add(16 * i)) });
                for (r, a) in acc.iter_mut().enumerate() {
                    let p = _mm512_set1_ps(probs[r * n + j]);
                    for i in 0..4 {
                        if masks[i] != 0 {
                            a[i] = _mm512_add_ps(a[i], _mm512_mul_ps(p, v[i]));
                        }
                    }
                }
            }
            for (r, a) in acc.iter().enumerate() {
                let o = &mut out[r * d + c0..][..w];
                for i in 0..4 {
                    // SAFETY: the store is masked to lanes `16·i + l < w = o.len()`.
                    unsafe { _mm512_mask_storeu_ps(o.as_mut_ptr().add(16 * i), masks[i], a[i]) };
                }
            }
            c0 += w;
        }
    }
}

#[cfg(all(target_arch = "x86_64", feature = "std"))]
fn has_avx2() -> bool {
    std::is_x86_feature_detected!("avx2")
}

/// `out[j] = (q · k_j) · scale + (f32::MIN where mask[j] == 0)` for `j < out.len()`, where
/// `k_j = keys[j·stride..][..q.len()]` (a head's slice of token j's keys).
pub fn attention_scores(q: &[f32], keys: &[f32], stride: usize, scale: f32, mask: Option<&[u32]>, out: &mut [f32]) {
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    if has_avx2() {
        // SAFETY: AVX2 was detected.
        return unsafe { avx2::scores(q, keys, stride, scale, mask, out) };
    }
    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    return neon::scores(q, keys, stride, scale, mask, out);
    #[allow(unreachable_code)]
    scores_body(q, keys, stride, scale, mask, out)
}

/// `out = Σ_j probs[j] · v_j` with `v_j = values[j·stride..][..out.len()]`, accumulated in
/// order of `j`.
pub fn attention_context(probs: &[f32], values: &[f32], stride: usize, out: &mut [f32]) {
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    if has_avx2() {
        // SAFETY: AVX2 was detected.
        return unsafe { avx2::context(probs, values, stride, out) };
    }
    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    return neon::context(probs, values, stride, out);
    #[allow(unreachable_code)]
    context_body(probs, values, stride, out)
}

/// [`attention_scores`] for `qs.len() ≤ QROWS` query rows: row `r`'s scores in
/// `out[r·n..][..n]`, the same bits as one call per row. `kt` holds the same `n` keys
/// transposed ([`transpose_keys`], `head_dim · keys_stride(n)` floats), which the AVX-512
/// form reads.
#[allow(clippy::too_many_arguments)]
pub fn scores_rows(
    qs: &[&[f32]],
    keys: &[f32],
    stride: usize,
    kt: &[f32],
    scale: f32,
    mask: Option<&[u32]>,
    out: &mut [f32],
    n: usize,
) {
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    if qs.len() == QROWS && reads_transposed_keys() {
        let q4: [&[f32]; QROWS] = core::array::from_fn(|r| qs[r]);
        if q4.iter().all(|q| q.len() == q4[0].len()) {
            // SAFETY: the `vnni` kernel was selected, so AVX-512F is present.
            return unsafe { avx512::scores_block(q4, kt, n, scale, mask, &mut out[..QROWS * n]) };
        }
    }
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    if has_avx2() && qs.iter().all(|q| q.len() == qs[0].len()) {
        // SAFETY: AVX2 was detected.
        return unsafe { avx2::scores_rows(qs, keys, stride, scale, mask, out, n) };
    }
    #[cfg(not(all(target_arch = "x86_64", feature = "std")))]
    let _ = kt;
    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    if qs.iter().all(|q| q.len() == qs[0].len()) {
        return neon::scores_rows(qs, keys, stride, scale, mask, out, n);
    }
    for (r, q) in qs.iter().enumerate() {
        attention_scores(q, keys, stride, scale, mask, &mut out[r * n..(r + 1) * n]);
    }
}

/// [`attention_context`] for `rows ≤ QROWS` rows of probabilities `probs[r·n..][..n]`,
/// into `out[r·d..][..d]`: the same bits as one call per row.
pub fn context_rows(probs: &[f32], n: usize, rows: usize, values: &[f32], stride: usize, out: &mut [f32], d: usize) {
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    if rows == QROWS && super::float_avx512() {
        // SAFETY: the `vnni` kernel was selected, so AVX-512F is present.
        return unsafe { avx512::context_block(probs, n, values, stride, out, d) };
    }
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    if has_avx2() {
        let (probs, out) = (&probs[..rows * n], &mut out[..rows * d]);
        let mut pairs = probs.chunks_exact(2 * n).zip(out.chunks_exact_mut(2 * d));
        for (p, o) in &mut pairs {
            let (o0, o1) = o.split_at_mut(d);
            // SAFETY: AVX2 was detected.
            unsafe { avx2::context2(p.split_at(n), values, stride, (o0, o1)) };
        }
        if rows % 2 == 1 {
            let r = rows - 1;
            attention_context(&probs[r * n..], values, stride, &mut out[r * d..]);
        }
        return;
    }
    for r in 0..rows {
        attention_context(&probs[r * n..(r + 1) * n], values, stride, &mut out[r * d..(r + 1) * d]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// Scores equal `dot_f32` per key and the context the plain ordered sum, bit for bit,
    /// both as dispatched (AVX2 where present) and as the plain build; shapes with key
    /// counts and head sizes that are not multiples of the tiles.
    #[test]
    fn dispatched_and_plain_equal_the_scalar_order_bit_for_bit() {
        for (s, d, stride) in [(37, 64, 100), (5, 100, 130), (8, 13, 13), (1, 64, 64), (130, 128, 128)] {
            let f = |i: usize| ((i * 2654435761) % 1000) as f32 / 137.0 - 3.5;
            let q: Vec<f32> = (0..d).map(|i| f(i + 7)).collect();
            let kv: Vec<f32> = (0..s * stride).map(f).collect();
            let mask: Vec<u32> = (0..s).map(|j| (j % 5 != 0) as u32).collect();
            let (mut a, mut b) = (vec![0f32; s], vec![0f32; s]);
            attention_scores(&q, &kv, stride, 0.125, Some(&mask), &mut a);
            scores_body(&q, &kv, stride, 0.125, Some(&mask), &mut b);
            assert_eq!(bits(&a), bits(&b));
            for (j, &v) in b.iter().enumerate() {
                let want = crate::kernels::scalar::dot_f32(&q, &kv[j * stride..][..d]) * 0.125
                    + if mask[j] == 0 { f32::MIN } else { 0.0 };
                assert_eq!(v.to_bits(), want.to_bits(), "s {s} d {d} key {j}");
            }
            let p: Vec<f32> = a.iter().map(|v| v.abs().min(1.0)).collect();
            let (mut c, mut e) = (vec![0f32; d], vec![0f32; d]);
            attention_context(&p, &kv, stride, &mut c);
            context_body(&p, &kv, stride, &mut e);
            assert_eq!(bits(&c), bits(&e));
            let mut want = vec![0f32; d];
            for (j, &pj) in p.iter().enumerate() {
                want.iter_mut().zip(&kv[j * stride..][..d]).for_each(|(o, &v)| *o += pj * v);
            }
            assert_eq!(bits(&e), bits(&want), "context s {s} d {d}");
        }
    }

    /// `transpose_keys` (AVX-512 blocks where the `vnni` kernel runs) puts key `j`'s value
    /// `d` at `d·keys_stride(n) + j` and leaves the padding past `n` alone: key counts and
    /// head sizes around the 16 × 16 blocks.
    #[test]
    fn transposed_keys_land_where_the_scores_read_them() {
        for (n, dh, stride) in
            [(1, 64, 64), (15, 7, 9), (16, 16, 16), (17, 80, 96), (33, 64, 768), (128, 64, 768), (40, 3, 5)]
        {
            let keys: Vec<f32> = (0..(n - 1) * stride + dh).map(|i| i as f32 * 0.5 - 7.0).collect();
            let ld = keys_stride(n);
            assert!(ld >= n && (ld / 16) % 2 == 1, "n {n}: stride {ld}");
            let mut kt = vec![f32::NAN; dh * ld + 5];
            transpose_keys(&keys, stride, n, dh, &mut kt);
            for d in 0..dh {
                for j in 0..ld {
                    let got = kt[d * ld + j];
                    if j < n {
                        assert_eq!(got.to_bits(), keys[j * stride + d].to_bits(), "n {n} dh {dh} key {j} value {d}");
                    } else {
                        assert!(got.is_nan(), "n {n} dh {dh}: padding {j} of row {d} written");
                    }
                }
            }
            assert!(kt[dh * ld..].iter().all(|v| v.is_nan()), "n {n} dh {dh}: past the rows");
        }
    }

    /// The query-blocked forms equal one call per row, bit for bit (AVX-512 where the
    /// `vnni` kernel runs, AVX2 or NEON row pairs where the CPU has them, the per-row loop
    /// elsewhere): head sizes and key counts around the tiles, 1 to `QROWS` rows.
    #[test]
    fn blocked_rows_equal_one_call_per_row() {
        for (s, d, stride) in [
            (37, 64, 100),
            (5, 100, 130),
            (8, 13, 13),
            (1, 64, 64),
            (130, 128, 128),
            (19, 80, 90),
            (64, 61, 70),
            (17, 7, 9),
        ] {
            let f = |i: usize| ((i * 2654435761) % 1000) as f32 / 137.0 - 3.5;
            let kv: Vec<f32> = (0..s * stride).map(f).collect();
            let qrows: Vec<Vec<f32>> = (0..QROWS).map(|r| (0..d).map(|i| f(i * 3 + r + 11)).collect()).collect();
            let mask: Vec<u32> = (0..s).map(|j| (j % 7 != 3) as u32).collect();
            for rows in 1..=QROWS {
                let qs: Vec<&[f32]> = qrows[..rows].iter().map(|q| &q[..]).collect();
                let mut got = vec![0f32; rows * s];
                let mut kt = vec![f32::NAN; d * keys_stride(s)];
                transpose_keys(&kv, stride, s, d, &mut kt);
                scores_rows(&qs, &kv, stride, &kt, 0.125, Some(&mask), &mut got, s);
                let mut want = vec![0f32; rows * s];
                for r in 0..rows {
                    scores_body(qs[r], &kv, stride, 0.125, Some(&mask), &mut want[r * s..(r + 1) * s]);
                }
                assert_eq!(bits(&got), bits(&want), "scores s {s} d {d} rows {rows}");
                let p: Vec<f32> = got.iter().map(|v| (v.abs() / 7.0).min(1.0)).collect();
                let mut got = vec![0f32; rows * d];
                context_rows(&p, s, rows, &kv, stride, &mut got, d);
                let mut want = vec![0f32; rows * d];
                for r in 0..rows {
                    context_body(&p[r * s..(r + 1) * s], &kv, stride, &mut want[r * d..(r + 1) * d]);
                }
                assert_eq!(bits(&got), bits(&want), "context s {s} d {d} rows {rows}");
            }
        }
    }
}
