//! The small numeric steps the pipelines share: softmax, sigmoid, top-k, normalisation.

/// `softmax` of a row, in place (shifted by the maximum, as transformers does): the
/// engine's, which the C API and the firmware demo use too.
pub use albert_engine::scores::softmax;

/// `1 / (1 + e^-x)`.
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Index of the largest value (the first of equals, as numpy's `argmax`).
pub fn argmax(x: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best
}

/// Indices of the `k` largest values, largest first (equal values in index order).
pub fn top_k(x: &[f32], k: usize) -> Vec<usize> {
    let mut best = vec![0usize; k.min(x.len())];
    albert_engine::scores::top_k(x, &mut best, |b, i, _| *b = i as usize, |&b| x[b]);
    best
}

/// Scales `x` to unit Euclidean length (left as is when it is all zeros).
pub fn l2_normalize(x: &mut [f32]) {
    let norm = x.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        x.iter_mut().for_each(|v| *v /= norm);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let mut x = [1.0, 3.0, 2.0, -1000.0];
        softmax(&mut x);
        assert!((x.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(top_k(&x, 3), vec![1, 2, 0]);
        assert_eq!(x[3], 0.0);
        assert_eq!(argmax(&x), 1);
    }

    #[test]
    fn normalize_and_sigmoid() {
        let mut v = [3.0, 4.0];
        l2_normalize(&mut v);
        assert_eq!(v, [0.6, 0.8]);
        let mut z = [0.0, 0.0];
        l2_normalize(&mut z);
        assert_eq!(z, [0.0, 0.0]);
        assert!((sigmoid(0.0) - 0.5).abs() < 1e-7);
    }
}
