//! Plain-Rust reference kernels: the test oracle, and the fallback on any CPU.

/// `c[i][j] = Σ_k a[i][k] · b[j][k]`, exact in i32.
///
/// `a` is `m × k` row-major (activations, one token per row), `b` is `n × k` row-major
/// (a linear weight in PyTorch's `[out, in]` orientation), `c` is `m × n`.
/// |sum| ≤ k · 128², so the result is exact for `k < 131 072`.
///
/// ```
/// use albert_engine::kernels::scalar::gemm_i8_i32;
/// let a = [1i8, 2, 3, -128];
/// let b = [4i8, 5, 6, 127, -1, 0, 0, 0];
/// let mut c = [0i32; 2];
/// gemm_i8_i32(1, 2, 4, &a, &b, &mut c);
/// assert_eq!(c, [1 * 4 + 2 * 5 + 3 * 6 - 128 * 127, -1]);
/// ```
pub fn gemm_i8_i32(m: usize, n: usize, k: usize, a: &[i8], b: &[i8], c: &mut [i32]) {
    assert!(a.len() >= m * k && b.len() >= n * k && c.len() >= m * n, "gemm_i8_i32: buffers too small");
    for i in 0..m {
        let row = &a[i * k..(i + 1) * k];
        for j in 0..n {
            let col = &b[j * k..(j + 1) * k];
            c[i * n + j] = row.iter().zip(col).map(|(&x, &y)| x as i32 * y as i32).sum();
        }
    }
}

/// `c[i][j] = Σ_k a[i][k] · b[j][k]` for int16 activations `a` and int8 weights `b`,
/// exact in i64 (an i32 would overflow past k = 516 at the extremes).
pub fn gemm_i16_i8_i64(m: usize, n: usize, k: usize, a: &[i16], b: &[i8], c: &mut [i64]) {
    assert!(a.len() >= m * k && b.len() >= n * k && c.len() >= m * n, "gemm_i16_i8_i64: buffers too small");
    for i in 0..m {
        let row = &a[i * k..(i + 1) * k];
        for j in 0..n {
            let col = &b[j * k..(j + 1) * k];
            c[i * n + j] = row.iter().zip(col).map(|(&x, &y)| x as i64 * y as i64).sum();
        }
    }
}

/// `c[i][j] = Σ_k a[i][k] · b[j][k]` in f32 (the float reference path).
pub fn gemm_f32(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    assert!(a.len() >= m * k && b.len() >= n * k && c.len() >= m * n, "gemm_f32: buffers too small");
    for i in 0..m {
        let row = &a[i * k..(i + 1) * k];
        for j in 0..n {
            let col = &b[j * k..(j + 1) * k];
            c[i * n + j] = dot_f32(row, col);
        }
    }
}

/// Dot product in f32. Eight independent partial sums let the compiler vectorise
/// (a single running sum pins the float addition order and stays scalar). Always inlined so
/// that callers compiled with `#[target_feature]` (the AVX2 attention loop) vectorise it
/// with their instructions and the same addition order.
#[inline(always)]
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; 8];
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    dot_f32_finish(acc, dot_f32_tail(ca.remainder(), cb.remainder()))
}

/// The sum of the products of a dot product's last `len % 8` elements, in order.
#[inline(always)]
pub(crate) fn dot_f32_tail(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(&x, &y)| x * y).sum()
}

/// [`dot_f32`]'s final reduction of its eight partial sums and the tail: shared with the
/// attention kernel, which computes several dot products at once in the same order.
#[inline(always)]
pub(crate) fn dot_f32_finish(acc: [f32; 8], tail: f32) -> f32 {
    (acc[0] + acc[4]) + (acc[1] + acc[5]) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        // No failure file: under Miri's isolation proptest cannot look up the working
        // directory, and a seed worth keeping goes into a named test instead.
        #![proptest_config(ProptestConfig {
            cases: if cfg!(miri) { 8 } else { 256 },
            failure_persistence: None,
            ..ProptestConfig::default()
        })]
        #[test]
        fn gemm_i8_matches_i64_sum(m in 1usize..6, n in 1usize..9, k in 1usize..70, seed in any::<u64>()) {
            let mut s = seed | 1;
            let mut next = || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; (s >> 24) as i8 };
            let a: Vec<i8> = (0..m * k).map(|_| next()).collect();
            let b: Vec<i8> = (0..n * k).map(|_| next()).collect();
            let mut c = vec![0i32; m * n];
            gemm_i8_i32(m, n, k, &a, &b, &mut c);
            for i in 0..m { for j in 0..n {
                let want: i64 = (0..k).map(|t| a[i * k + t] as i64 * b[j * k + t] as i64).sum();
                prop_assert_eq!(c[i * n + j] as i64, want);
            }}
        }
    }

    #[test]
    fn gemm_i8_extremes_are_exact() {
        let k = 4096;
        let a = vec![-128i8; k];
        let b = vec![-128i8; k];
        let mut c = [0i32];
        gemm_i8_i32(1, 1, k, &a, &b, &mut c);
        assert_eq!(c[0], 128 * 128 * k as i32);
    }
}
