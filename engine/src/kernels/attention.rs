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
//! once for all four). Context: the output row's columns stay in registers over all `j`.

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
        let mut c0 = 0;
        // 32 columns (8 q registers) per pass, then 4 at a time, then the plain loop.
        while c0 + 32 <= d {
            // SAFETY (every intrinsic here): NEON at build time; loads and stores stay
            // inside `vj` (32 floats) and `out[c0..c0 + 32]`.
            unsafe {
                let mut acc = [vdupq_n_f32(0.0); 8];
                for (j, &p) in probs.iter().enumerate() {
                    let vj = &values[j * stride + c0..][..32];
                    let pv = vdupq_n_f32(p);
                    for (i, a) in acc.iter_mut().enumerate() {
                        *a = vaddq_f32(*a, vmulq_f32(pv, vld1q_f32(vj.as_ptr().add(4 * i))));
                    }
                }
                for (i, a) in acc.iter().enumerate() {
                    vst1q_f32(out.as_mut_ptr().add(c0 + 4 * i), *a);
                }
            }
            c0 += 32;
        }
        while c0 + 4 <= d {
            // SAFETY: as above, 4 floats.
            unsafe {
                let mut acc = vdupq_n_f32(0.0);
                for (j, &p) in probs.iter().enumerate() {
                    let vj = &values[j * stride + c0..][..4];
                    acc = vaddq_f32(acc, vmulq_f32(vdupq_n_f32(p), vld1q_f32(vj.as_ptr())));
                }
                vst1q_f32(out.as_mut_ptr().add(c0), acc);
            }
            c0 += 4;
        }
        super::context_body(probs, &values[c0..], stride, &mut out[c0..]);
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
}
