//! The f32 inner loops of attention, for one query row of one head: the scores `q·k_j`
//! and the context `Σ_j p_j v_j`.
//!
//! One safe generic body, compiled twice: as is (SSE2 on a default x86_64 build, NEON on
//! aarch64) and inside an `#[target_feature(enable = "avx2")]` wrapper chosen at run time
//! on x86_64 (the `matrixmultiply` pattern). Rust never contracts `a·b + c` into an FMA,
//! and the summation order is written out (eight partial sums in
//! [`super::scalar::dot_f32`], inlined into each build), so both builds give bit-identical results: the AVX2 one
//! only does each step on one ymm instead of two xmm.

#[inline(always)]
fn scores_body(q: &[f32], keys: &[f32], stride: usize, scale: f32, mask: Option<&[u32]>, out: &mut [f32]) {
    let d = q.len();
    for (j, o) in out.iter_mut().enumerate() {
        let kj = &keys[j * stride..j * stride + d];
        let masked = mask.is_some_and(|m| m[j] == 0);
        // transformers adds finfo(float32).min where the mask is 0.
        *o = super::scalar::dot_f32(q, kj) * scale + if masked { f32::MIN } else { 0.0 };
    }
}

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
        super::scores_body(q, keys, stride, scale, mask, out)
    }

    /// # Safety
    /// AVX2 present.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn context(probs: &[f32], values: &[f32], stride: usize, out: &mut [f32]) {
        super::context_body(probs, values, stride, out)
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
        // SAFETY: AVX2 was detected; the body is safe code.
        return unsafe { avx2::scores(q, keys, stride, scale, mask, out) };
    }
    scores_body(q, keys, stride, scale, mask, out)
}

/// `out = Σ_j probs[j] · v_j` with `v_j = values[j·stride..][..out.len()]`, accumulated in
/// order of `j`.
pub fn attention_context(probs: &[f32], values: &[f32], stride: usize, out: &mut [f32]) {
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    if has_avx2() {
        // SAFETY: AVX2 was detected; the body is safe code.
        return unsafe { avx2::context(probs, values, stride, out) };
    }
    context_body(probs, values, stride, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispatched_equals_plain_bit_for_bit() {
        let (s, d, stride) = (37, 64, 100);
        let f = |i: usize| ((i * 2654435761) % 1000) as f32 / 137.0 - 3.5;
        let q: Vec<f32> = (0..d).map(|i| f(i + 7)).collect();
        let kv: Vec<f32> = (0..s * stride).map(f).collect();
        let mask: Vec<u32> = (0..s).map(|j| (j % 5 != 0) as u32).collect();
        let (mut a, mut b) = (vec![0f32; s], vec![0f32; s]);
        attention_scores(&q, &kv, stride, 0.125, Some(&mask), &mut a);
        scores_body(&q, &kv, stride, 0.125, Some(&mask), &mut b);
        assert_eq!(
            a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            b.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        for (j, &v) in b.iter().enumerate() {
            let want = crate::kernels::scalar::dot_f32(&q, &kv[j * stride..][..d]) * 0.125
                + if mask[j] == 0 { f32::MIN } else { 0.0 };
            assert_eq!(v.to_bits(), want.to_bits());
        }
        let (mut c, mut e) = (vec![0f32; d], vec![0f32; d]);
        attention_context(&a[..s].iter().map(|v| v.abs().min(1.0)).collect::<Vec<_>>(), &kv, stride, &mut c);
        context_body(&a[..s].iter().map(|v| v.abs().min(1.0)).collect::<Vec<_>>(), &kv, stride, &mut e);
        assert_eq!(
            c.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            e.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }
}
