//! What pipelines make of logits: softmax probabilities and the best `k` of them, without
//! allocating. The one implementation behind the `albert` CLI's pipelines, the C API and
//! the firmware demo, so all three print the same scores, bit for bit, on every target.

use core::cmp::Ordering;

/// In-place softmax of one row, shifted by its maximum as transformers does:
/// `exp(x − max) / Σ exp(x − max)`, the sum in index order, `libm::expf` on every target
/// (a platform's own `expf` may differ in the last bit).
///
/// ```
/// let mut x = [1.0f32, 3.0, 2.0];
/// albert_engine::scores::softmax(&mut x);
/// assert!((x.iter().sum::<f32>() - 1.0).abs() < 1e-6 && x[1] > x[2] && x[2] > x[0]);
/// ```
pub fn softmax(x: &mut [f32]) {
    let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let mut sum = 0f32;
    for v in x.iter_mut() {
        *v = libm::expf(*v - max);
        sum += *v;
    }
    x.iter_mut().for_each(|v| *v /= sum);
}

/// The `best.len()` highest of `x`, highest first, equal scores in index order: what a
/// stable descending sort by `f32::total_cmp` followed by `take(k)` gives, in one pass and
/// without allocating. `set(entry, index, score)` fills an entry, `score(entry)` reads
/// one back; returns how many entries were filled (`min(k, x.len())`).
///
/// ```
/// let mut best = [(0u32, 0f32); 2];
/// let n = albert_engine::scores::top_k(&[0.1, 0.5, 0.3, 0.5], &mut best, |b, i, s| *b = (i, s), |b| b.1);
/// assert_eq!((n, best), (2, [(1, 0.5), (3, 0.5)]));
/// ```
pub fn top_k<T: Copy>(x: &[f32], best: &mut [T], set: impl Fn(&mut T, u32, f32), score: impl Fn(&T) -> f32) -> usize {
    let k = best.len();
    let mut len = 0;
    for (id, &p) in x.iter().enumerate() {
        // After every kept entry that is at least as large (ties keep index order).
        let at = best[..len].iter().position(|b| score(b).total_cmp(&p) == Ordering::Less).unwrap_or(len);
        if at >= k {
            continue;
        }
        let end = len.min(k - 1);
        best.copy_within(at..end, at + 1);
        set(&mut best[at], id as u32, p);
        len = (len + 1).min(k);
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_matches_a_stable_descending_sort() {
        let x = [0.1f32, 0.5, 0.3, 0.5, -1.0, 0.3, 0.9, 0.0, 0.5, f32::NEG_INFINITY, -0.0];
        let mut order: Vec<usize> = (0..x.len()).collect();
        order.sort_by(|&a, &b| x[b].total_cmp(&x[a]));
        for k in 0..=x.len() + 2 {
            let mut best = vec![(u32::MAX, f32::NAN); k];
            let n = top_k(&x, &mut best, |b, i, s| *b = (i, s), |b| b.1);
            assert_eq!(n, k.min(x.len()));
            let got: Vec<usize> = best[..n].iter().map(|b| b.0 as usize).collect();
            assert_eq!(got, order[..n], "k {k}");
            assert!(best[..n].iter().all(|&(i, s)| s.to_bits() == x[i as usize].to_bits()));
        }
    }

    #[test]
    fn softmax_sums_to_one_and_survives_large_and_masked_inputs() {
        let mut x = [1000.0f32, 999.0, f32::MIN, 998.0];
        softmax(&mut x);
        assert!((x.iter().sum::<f32>() - 1.0).abs() < 1e-6, "{x:?}");
        assert_eq!(x[2], 0.0);
        assert!(x[0] > x[1] && x[1] > x[3]);
    }
}
