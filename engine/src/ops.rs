//! Float element-wise operations of the transformer: LayerNorm, softmax, activations,
//! and the per-token int8 quantization of activations.

use crate::config::Activation;

/// In-place LayerNorm over one row, as `torch.nn.LayerNorm` (biased variance).
pub fn layer_norm(x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let n = x.len() as f32;
    let mean = x.iter().sum::<f32>() / n;
    let var = x.iter().map(|&v| (v - mean) * (v - mean)).sum::<f32>() / n;
    let inv = 1.0 / libm::sqrtf(var + eps);
    for ((v, &g), &b) in x.iter_mut().zip(gamma).zip(beta) {
        *v = (*v - mean) * inv * g + b;
    }
}

/// In-place softmax of one row, max-subtracted for range.
pub fn softmax(x: &mut [f32]) {
    let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let mut sum = 0.0;
    for v in x.iter_mut() {
        *v = libm::expf(*v - max);
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + libm::expf(-x))
}

/// Applies `act` in place.
pub fn activate(x: &mut [f32], act: Activation) {
    use Activation::*;
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    match act {
        Gelu => x.iter_mut().for_each(|v| *v = 0.5 * *v * (1.0 + libm::erff(*v * core::f32::consts::FRAC_1_SQRT_2))),
        GeluNew => x.iter_mut().for_each(|v| {
            let u = *v;
            *v = 0.5 * u * (1.0 + libm::tanhf(SQRT_2_OVER_PI * (u + 0.044715 * u * u * u)));
        }),
        Relu => x.iter_mut().for_each(|v| *v = v.max(0.0)),
        GeluFast => x.iter_mut().for_each(|v| {
            let u = *v;
            *v = 0.5 * u * (1.0 + libm::tanhf(u * 0.797_884_6 * (1.0 + 0.044715 * u * u)));
        }),
        QuickGelu => x.iter_mut().for_each(|v| *v *= sigmoid(1.702 * *v)),
        Silu => x.iter_mut().for_each(|v| *v *= sigmoid(*v)),
        Tanh => x.iter_mut().for_each(|v| *v = libm::tanhf(*v)),
        Sigmoid => x.iter_mut().for_each(|v| *v = sigmoid(*v)),
        Linear => {}
    }
}

/// An integer type activations are quantized to.
pub trait Quant: Copy {
    /// Largest magnitude used (symmetric range, so negation is exact).
    const MAX: f32;
    fn from_f32(v: f32) -> Self;
}

impl Quant for i8 {
    const MAX: f32 = 127.0;
    fn from_f32(v: f32) -> Self {
        v as i8
    }
}

impl Quant for i16 {
    const MAX: f32 = 32767.0;
    fn from_f32(v: f32) -> Self {
        v as i16
    }
}

/// Quantizes one activation row (`FORMAT.md`, "Quantization"): `x ⊙ mul` (`mul` optional,
/// per channel) becomes `q` with `x ⊙ mul ≈ t · q + c`. Symmetric (`c = 0`, `t = max|x|/MAX`)
/// or, with `centred`, around the midpoint of the row's range (`c = (max + min) / 2`,
/// `t = (max − min) / 2MAX`), which spends every level on the values the row has: half the
/// step for one-sided rows such as GELU outputs. Returns `(t, c)`.
pub fn quantize_row<T: Quant>(x: &[f32], mul: Option<&[f32]>, centred: bool, q: &mut [T]) -> (f32, f32) {
    let m = |k: usize| mul.map_or(1.0, |m| m[k]);
    let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
    for (k, &v) in x.iter().enumerate() {
        let v = v * m(k);
        lo = lo.min(v);
        hi = hi.max(v);
    }
    let (t, c) = if centred { ((hi - lo) / (2.0 * T::MAX), 0.5 * (hi + lo)) } else { (hi.max(-lo) / T::MAX, 0.0) };
    if !(t > 0.0 && t.is_finite() && c.is_finite()) {
        // All equal (or empty, or not finite): represent the row by its centre alone.
        q.iter_mut().for_each(|v| *v = T::from_f32(0.0));
        let c = if centred && c.is_finite() { c } else { 0.0 };
        return (1.0, c);
    }
    let inv = 1.0 / t;
    for (k, (d, &v)) in q.iter_mut().zip(x).enumerate() {
        *d = T::from_f32(libm::roundf((v * m(k) - c) * inv).clamp(-T::MAX, T::MAX));
    }
    (t, c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_norm_normalises() {
        let mut x = [1.0, 2.0, 3.0, 4.0];
        layer_norm(&mut x, &[1.0; 4], &[0.0; 4], 1e-12);
        let mean: f32 = x.iter().sum::<f32>() / 4.0;
        let var: f32 = x.iter().map(|v| v * v).sum::<f32>() / 4.0;
        assert!(mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-5, "{x:?}");
    }

    #[test]
    fn softmax_sums_to_one_and_survives_large_inputs() {
        let mut x = [1000.0, 999.0, f32::MIN, 0.0];
        softmax(&mut x);
        assert!((x.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(x[0] > x[1] && x[2] == 0.0);
    }

    #[test]
    fn quantize_row_round_trips_within_half_a_step() {
        let x = [0.5, -1.27, 0.0, 1.0, -0.01];
        for centred in [false, true] {
            let mut q = [0i8; 5];
            let (t, c) = quantize_row(&x, None, centred, &mut q);
            assert_eq!(q[1], -127);
            for (a, &b) in x.iter().zip(&q) {
                assert!((a - (t * b as f32 + c)).abs() <= t / 2.0 + 1e-6, "centred {centred}");
            }
        }
        let mut z = [5i8; 3];
        assert_eq!(quantize_row(&[0.0; 3], None, false, &mut z), (1.0, 0.0));
        assert_eq!(z, [0; 3]);
        assert_eq!(quantize_row(&[2.0; 3], None, true, &mut z), (1.0, 2.0));
    }

    #[test]
    fn centred_quantization_halves_the_step_of_one_sided_rows() {
        let x: Vec<f32> = (0..100).map(|i| i as f32 / 99.0 - 0.1).collect();
        let mut q = vec![0i8; 100];
        let (ts, _) = quantize_row(&x, None, false, &mut q);
        let (tc, c) = quantize_row(&x, None, true, &mut q);
        assert!(tc < 0.6 * ts && (c - 0.4).abs() < 1e-6, "{tc} {ts} {c}");
        let mut q16 = vec![0i16; 100];
        let mul = vec![2.0; 100];
        let (t16, _) = quantize_row(&x, Some(&mul), false, &mut q16);
        assert!((t16 - 2.0 * 0.9 / 32767.0).abs() < 1e-9);
    }

    #[test]
    fn gelu_variants_match_known_values() {
        let mut a = [1.0f32, -1.0];
        activate(&mut a, Activation::Gelu);
        assert!((a[0] - 0.841_344_7).abs() < 1e-6 && (a[1] + 0.158_655_3).abs() < 1e-6);
        let mut b = [1.0f32];
        activate(&mut b, Activation::GeluNew);
        assert!((b[0] - 0.841_192).abs() < 1e-5);
    }
}
