//! Error-compensating weight rounding (GPTQ, Frantar et al. 2022) for the encoder's int8
//! linears.
//!
//! Rounding each weight to its nearest int8 level minimises the weight error, not the
//! output error. GPTQ quantizes one input column at a time and pushes each column's rounding
//! error onto the columns not yet quantized, weighted by how the calibration activations
//! correlate (`H = Σ x xᵀ`), so the errors cancel in `W x` instead of adding up. The stored
//! format does not change: the result is ordinary per-row int8 with the same scales.
//!
//! The linear algebra (a Cholesky factorisation and a triangular inverse of a K × K matrix,
//! K ≤ a few thousand) is written out here rather than pulled from a linear-algebra crate:
//! it is forty lines, runs once per linear at pack time, and a crate such as `faer` would
//! add more build time to every CI run than the whole quantizer takes.

use std::collections::BTreeMap;

use albert_engine::model::observe::{Observer, Site};
use albert_engine::{Model, ModelConfig};
use anyhow::Result;

use crate::calib::linear_name;

/// `Σ x xᵀ` over every token and iteration that reached a linear (row-major K × K, f64),
/// and how many rows were summed.
#[derive(Debug)]
pub struct Hessian {
    pub k: usize,
    pub rows: usize,
    pub h: Vec<f64>,
}

/// Per linear name (`encoder.…attention.query`, as [`linear_name`] gives).
pub type Hessians = BTreeMap<String, Hessian>;

struct Collect<'c> {
    cfg: &'c ModelConfig,
    out: Hessians,
}

impl Observer for Collect<'_> {
    fn gemm(&mut self, site: Site, x: &[f32], _y: &[f32], m: usize) {
        let k = x.len() / m.max(1);
        let e = self.out.entry(linear_name(self.cfg, site.gemm, site.layer)).or_insert_with(|| Hessian {
            k,
            rows: 0,
            h: vec![0.0; k * k],
        });
        for row in x[..m * k].chunks_exact(k) {
            let row: Vec<f64> = row.iter().map(|&v| v as f64).collect();
            // Upper triangle only; mirrored once at the end.
            for (i, &xi) in row.iter().enumerate() {
                let hrow = &mut e.h[i * k + i..(i + 1) * k];
                for (h, &xj) in hrow.iter_mut().zip(&row[i..]) {
                    *h += xi * xj;
                }
            }
            e.rows += 1;
        }
    }
}

/// Runs `model` (the f32 blob) on each sequence and accumulates every encoder linear's
/// input correlation.
pub fn collect(model: &Model<'_>, seqs: &[Vec<u32>]) -> Result<Hessians> {
    let cfg = *model.config();
    let mut obs = Collect { cfg: &cfg, out: BTreeMap::new() };
    crate::calib::run_observed(model, seqs, &mut obs)?;
    for e in obs.out.values_mut() {
        let k = e.k;
        for i in 0..k {
            for j in 0..i {
                e.h[i * k + j] = e.h[j * k + i];
            }
        }
    }
    Ok(obs.out)
}

/// In-place lower Cholesky factor of the symmetric positive definite `a` (K × K, row-major):
/// `a = L Lᵀ`. Returns false if a pivot is not positive.
fn cholesky_lower(a: &mut [f64], k: usize) -> bool {
    let mut lj = vec![0f64; k];
    for j in 0..k {
        let row_j = &mut a[j * k..(j + 1) * k];
        let d = row_j[j] - row_j[..j].iter().map(|v| v * v).sum::<f64>();
        if d.is_nan() || d <= 0.0 {
            return false;
        }
        let d = d.sqrt();
        row_j[j] = d;
        row_j[j + 1..].iter_mut().for_each(|v| *v = 0.0);
        lj[..j].copy_from_slice(&row_j[..j]);
        // Column j below the diagonal: L[i][j] = (a[i][j] − L[i][..j]·L[j][..j]) / d.
        for i in j + 1..k {
            let row_i = &mut a[i * k..(i + 1) * k];
            let s: f64 = row_i[..j].iter().zip(&lj[..j]).map(|(x, y)| x * y).sum();
            row_i[j] = (row_i[j] - s) / d;
        }
    }
    true
}

/// The upper triangular `U` with `H⁻¹ = Uᵀ U` (the factor GPTQ walks), without forming
/// `H⁻¹`: with `J` the index reversal, `J H J = M Mᵀ` (lower `M`) gives `H = R Rᵀ` for the
/// upper `R = J M J`, hence `H⁻¹ = R⁻ᵀ R⁻¹` and `U = R⁻¹`.
fn inverse_upper_factor(h: &[f64], k: usize) -> Option<Vec<f64>> {
    let mut m: Vec<f64> = (0..k * k).map(|idx| h[(k - 1 - idx / k) * k + (k - 1 - idx % k)]).collect();
    if !cholesky_lower(&mut m, k) {
        return None;
    }
    // R = J M J (upper), stored row-major.
    let r: Vec<f64> = (0..k * k).map(|idx| m[(k - 1 - idx / k) * k + (k - 1 - idx % k)]).collect();
    // U = R⁻¹, a row at a time from U R = I: for row i, walking j = i.., u[i][j] =
    // (δ_ij − Σ_{t<j} u[i][t] r[t][j]) / r[j][j], the sums kept in `acc` and updated with
    // contiguous rows of R.
    let mut u = vec![0.0; k * k];
    let mut acc = vec![0.0; k];
    for i in 0..k {
        acc[i..].iter_mut().for_each(|a| *a = 0.0);
        for j in i..k {
            let uij = ((i == j) as u8 as f64 - acc[j]) / r[j * k + j];
            u[i * k + j] = uij;
            for (a, &rv) in acc[j + 1..].iter_mut().zip(&r[j * k + j + 1..(j + 1) * k]) {
                *a += uij * rv;
            }
        }
    }
    Some(u)
}

/// Rounds `w` (N × K rows, already scaled as the GEMM sees them) to int8 with the given
/// per-row `scales`, compensating errors with `hess`. Input channels that never carried a
/// value (a zero diagonal: split-out outlier channels, whose GEMM input is zeroed) are
/// rounded plainly. Falls back to plain rounding if `H` is not positive definite even after
/// damping.
pub fn quantize_rows(w: &[f32], scales: &[f32], hess: &Hessian) -> Vec<i8> {
    let k = hess.k;
    let quant = |v: f64, s: f64| (v / s).round().clamp(-127.0, 127.0);
    let plain = || {
        w.chunks_exact(k)
            .zip(scales)
            .flat_map(|(row, &s)| row.iter().map(move |&v| quant(v as f64, s as f64) as i8))
            .collect::<Vec<i8>>()
    };
    let mut h = hess.h.clone();
    let mean_diag = (0..k).map(|i| h[i * k + i]).sum::<f64>() / k as f64;
    if mean_diag <= 0.0 || !mean_diag.is_finite() {
        return plain();
    }
    // Dead channels get a unit diagonal (their rounding affects nothing); 1 % damping keeps
    // the factorisation stable when there are fewer calibration rows than channels.
    for i in 0..k {
        if h[i * k + i] == 0.0 {
            h[i * k + i] = mean_diag;
        }
        h[i * k + i] += 0.01 * mean_diag;
    }
    let Some(u) = inverse_upper_factor(&h, k) else {
        return plain();
    };
    let mut out = vec![0i8; w.len()];
    let mut row = vec![0f64; k];
    for ((wr, &s), qr) in w.chunks_exact(k).zip(scales).zip(out.chunks_exact_mut(k)) {
        let s = s as f64;
        row.iter_mut().zip(wr).for_each(|(d, &v)| *d = v as f64);
        for i in 0..k {
            let q = quant(row[i], s);
            qr[i] = q as i8;
            let err = (row[i] - q * s) / u[i * k + i];
            let ui = &u[i * k + i + 1..(i + 1) * k];
            for (r, &x) in row[i + 1..].iter_mut().zip(ui) {
                *r -= err * x;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> f64 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((*seed >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }

    #[test]
    fn inverse_upper_factor_inverts() {
        let k = 7;
        let mut s = 1;
        let a: Vec<f64> = (0..k * 3 * k).map(|_| lcg(&mut s)).collect();
        // H = AᵀA + I (positive definite)
        let mut h = vec![0.0; k * k];
        for i in 0..k {
            for j in 0..k {
                h[i * k + j] = (0..3 * k).map(|r| a[r * k + i] * a[r * k + j]).sum::<f64>() + (i == j) as u8 as f64;
            }
        }
        let u = inverse_upper_factor(&h, k).unwrap();
        // (UᵀU) H = I, U upper
        for i in 0..k {
            for j in 0..k {
                let v: f64 =
                    (0..k).map(|c| (0..k).map(|t| u[t * k + i] * u[t * k + c]).sum::<f64>() * h[c * k + j]).sum();
                assert!((v - (i == j) as u8 as f64).abs() < 1e-9, "({i},{j}) = {v}");
            }
            for j in 0..i {
                assert_eq!(u[i * k + j], 0.0);
            }
        }
    }

    /// On correlated inputs GPTQ's output error is below plain rounding's (the point of it),
    /// and it never leaves the int8 range.
    #[test]
    fn lowers_output_error_on_correlated_inputs() {
        let (n, k, rows) = (16, 48, 400);
        let mut s = 7;
        let w: Vec<f32> = (0..n * k).map(|_| lcg(&mut s) as f32).collect();
        // Inputs with a shared component: strongly correlated channels.
        let x: Vec<f32> = (0..rows)
            .flat_map(|_| {
                let common = lcg(&mut s);
                (0..k).map(|_| (common + 0.3 * lcg(&mut s)) as f32).collect::<Vec<_>>()
            })
            .collect();
        let mut h = vec![0.0; k * k];
        for r in x.chunks_exact(k) {
            for i in 0..k {
                for j in 0..k {
                    h[i * k + j] += r[i] as f64 * r[j] as f64;
                }
            }
        }
        let hess = Hessian { k, rows, h };
        let scales: Vec<f32> = w.chunks_exact(k).map(|r| r.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0).collect();
        let g = quantize_rows(&w, &scales, &hess);
        let plain: Vec<i8> = w
            .chunks_exact(k)
            .zip(&scales)
            .flat_map(|(r, &s)| r.iter().map(move |&v| (v / s).round().clamp(-127.0, 127.0) as i8))
            .collect();
        let out_err = |q: &[i8]| -> f64 {
            let mut e = 0.0;
            for xr in x.chunks_exact(k) {
                for ((wr, qr), &s) in w.chunks_exact(k).zip(q.chunks_exact(k)).zip(&scales) {
                    let d: f64 =
                        wr.iter().zip(qr).zip(xr).map(|((&a, &b), &v)| (a - b as f32 * s) as f64 * v as f64).sum();
                    e += d * d;
                }
            }
            e
        };
        let (eg, ep) = (out_err(&g), out_err(&plain));
        assert!(eg < 0.7 * ep, "gptq {eg} vs plain {ep}");
        assert!(g.iter().all(|&q| q >= -127));
    }
}
