//! `quantize --report`: where int8 error comes from.
//!
//! - per tensor: SQNR of the stored weights against the checkpoint's f32 values;
//! - with calibration inputs, per encoder GEMM: SQNR of the int8 GEMM against the same
//!   GEMM in f32 *on the same input* (its local error), pooled over all iterations and
//!   split by iteration;
//! - per iteration of the shared layer: cosine of the int8 hidden states against the f32
//!   model's (the accumulated end-to-end error).

use std::collections::BTreeMap;

use albert_engine::kernels::scalar;
use albert_engine::model::observe::{Gemm, Observer, Site};
use albert_engine::model::weights::{Linear, Matrix};
use albert_engine::{Inputs, Model};
use albert_tools::goldens::cosine;
use anyhow::Result;
use serde::Serialize;

/// Signal and noise energies, accumulated.
#[derive(Clone, Copy, Default, Debug)]
pub struct Energy {
    pub signal: f64,
    pub noise: f64,
}

impl Energy {
    pub fn add(&mut self, reference: &[f32], actual: &[f32]) {
        for (&r, &a) in reference.iter().zip(actual) {
            self.signal += (r as f64) * (r as f64);
            self.noise += (r as f64 - a as f64) * (r as f64 - a as f64);
        }
    }

    /// 10·log10(signal / noise) in dB (infinite when exact).
    pub fn sqnr_db(&self) -> f64 {
        if self.noise == 0.0 { f64::INFINITY } else { 10.0 * (self.signal / self.noise).log10() }
    }
}

/// One GEMM's local error.
#[derive(Serialize, Clone, Debug)]
pub struct GemmRow {
    pub gemm: String,
    pub layer: usize,
    pub sqnr_db: f64,
    /// SQNR per iteration of the shared layer.
    pub per_iteration_db: Vec<f64>,
}

/// Accumulated error of the hidden states after one iteration.
#[derive(Serialize, Clone, Debug)]
pub struct IterationRow {
    pub iteration: u32,
    pub cos_mean: f64,
    pub cos_min: f64,
    pub sqnr_db: f64,
}

/// The end-to-end part of the report.
#[derive(Serialize, Clone, Debug)]
pub struct EndToEnd {
    pub gemms: Vec<GemmRow>,
    pub iterations: Vec<IterationRow>,
}

fn f32_linear<'a>(model: &'a Model<'_>, site: Site) -> &'a Linear<'a> {
    let w = model.weights();
    match site.gemm {
        Gemm::MappingIn => &w.mapping_in,
        g => {
            let l = &w.layers[site.layer];
            match g {
                Gemm::Query => &l.query,
                Gemm::Key => &l.key,
                Gemm::Value => &l.value,
                Gemm::Dense => &l.dense,
                Gemm::Ffn => &l.ffn,
                _ => &l.ffn_output,
            }
        }
    }
}

/// Records the f32 model's hidden states per iteration.
struct Record(Vec<Vec<f32>>);

impl Observer for Record {
    fn layer(&mut self, _iteration: u32, _layer: usize, hidden: &[f32]) {
        self.0.push(hidden.to_vec());
    }
}

struct Compare<'m, 'b> {
    reference: &'m Model<'b>,
    hidden_size: usize,
    gemm: BTreeMap<(Gemm, usize), (Energy, BTreeMap<u32, Energy>)>,
    f32_hidden: Vec<Vec<f32>>,
    step: usize,
    iters: BTreeMap<u32, (Vec<f64>, Energy)>,
    y_ref: Vec<f32>,
}

impl Observer for Compare<'_, '_> {
    fn gemm(&mut self, site: Site, x: &[f32], y: &[f32], m: usize) {
        let lin = f32_linear(self.reference, site);
        let (n, k) = (lin.w.rows, lin.w.cols);
        let Matrix::F32(w) = lin.w.m else { return };
        self.y_ref.resize(m * n, 0.0);
        scalar::gemm_f32(m, n, k, x, w, &mut self.y_ref);
        for row in self.y_ref.chunks_exact_mut(n) {
            row.iter_mut().zip(lin.b).for_each(|(o, b)| *o += b);
        }
        let e = self.gemm.entry((site.gemm, site.layer)).or_default();
        e.0.add(&self.y_ref, &y[..m * n]);
        e.1.entry(site.iteration).or_default().add(&self.y_ref, &y[..m * n]);
    }

    fn layer(&mut self, iteration: u32, _layer: usize, hidden: &[f32]) {
        let h = self.hidden_size;
        let reference = &self.f32_hidden[self.step];
        self.step += 1;
        let e = self.iters.entry(iteration).or_default();
        for (a, b) in hidden.chunks_exact(h).zip(reference.chunks_exact(h)) {
            e.0.push(cosine(a, b));
        }
        e.1.add(reference, hidden);
    }
}

/// Runs `reference` (the f32 blob) and `quantized` on every sequence and compares them
/// GEMM by GEMM and iteration by iteration.
pub fn end_to_end(reference: &Model<'_>, quantized: &Model<'_>, seqs: &[Vec<u32>]) -> Result<EndToEnd> {
    let h = reference.config().hidden_size as usize;
    let mut cmp = Compare {
        reference,
        hidden_size: h,
        gemm: BTreeMap::new(),
        f32_hidden: Vec::new(),
        step: 0,
        iters: BTreeMap::new(),
        y_ref: Vec::new(),
    };
    let mut scratch = Vec::new();
    for ids in seqs {
        scratch.resize(reference.scratch_bytes(ids.len(), 1), 0);
        let types = crate::calib::type_ids(reference.config(), ids);
        let inputs = Inputs { token_type_ids: Some(&types), ..Inputs::single(ids) };
        let mut rec = Record(Vec::new());
        reference.encode_observed(&inputs, &mut scratch, &mut rec)?;
        cmp.f32_hidden = rec.0;
        cmp.step = 0;
        quantized.encode_observed(&inputs, &mut scratch, &mut cmp)?;
    }
    let gemms = cmp
        .gemm
        .iter()
        .map(|((g, layer), (e, per))| GemmRow {
            gemm: g.hf_name().to_string(),
            layer: *layer,
            sqnr_db: e.sqnr_db(),
            per_iteration_db: per.values().map(Energy::sqnr_db).collect(),
        })
        .collect();
    let iterations = cmp
        .iters
        .iter()
        .map(|(&iteration, (cos, e))| IterationRow {
            iteration,
            cos_mean: cos.iter().sum::<f64>() / cos.len() as f64,
            cos_min: cos.iter().cloned().fold(1.0, f64::min),
            sqnr_db: e.sqnr_db(),
        })
        .collect();
    Ok(EndToEnd { gemms, iterations })
}

/// Writes the end-to-end report to `out` as a table.
pub fn print_end_to_end(r: &EndToEnd, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    writeln!(out, "\nper GEMM, int8 against f32 on the same input (local error):")?;
    writeln!(out, "{:<30} {:>5} {:>10}  per iteration (dB)", "gemm", "layer", "SQNR dB")?;
    for g in &r.gemms {
        let per: Vec<String> = g.per_iteration_db.iter().map(|d| format!("{d:.1}")).collect();
        writeln!(out, "{:<30} {:>5} {:>10.2}  {}", g.gemm, g.layer, g.sqnr_db, per.join(" "))?;
    }
    writeln!(out, "\nper iteration, int8 hidden states against the f32 model's (accumulated error):")?;
    writeln!(out, "{:>9} {:>12} {:>12} {:>10}", "iteration", "cos mean", "cos min", "SQNR dB")?;
    for i in &r.iterations {
        writeln!(out, "{:>9} {:>12.6} {:>12.6} {:>10.2}", i.iteration, i.cos_mean, i.cos_min, i.sqnr_db)?;
    }
    Ok(())
}
