//! `albert eval`: how closely one model follows a reference, a second blob or the outputs
//! transformers computed.

use std::collections::BTreeMap;
use std::path::Path;

use albert_engine::{Inputs, Model};
use anyhow::{Context, Result, anyhow, bail, ensure};
use serde::Serialize;
use serde_json::Value;

use crate::goldens::{Array, Case, Goldens, cosine, engine_name, run_case};

/// Agreement of one output between model and reference.
#[derive(Serialize, Clone, Debug, Default)]
pub struct OutputStats {
    pub max_abs_err: f64,
    /// `max |a − b| / max |b|`.
    pub rel_max_err: f64,
}

/// The whole comparison.
#[derive(Serialize, Clone, Debug, Default)]
pub struct Report {
    /// Real (unmasked) tokens compared.
    pub tokens: usize,
    pub hidden_cos_mean: f64,
    pub hidden_cos_min: f64,
    pub outputs: BTreeMap<String, OutputStats>,
    /// MLM logit rows of real tokens, when both sides have them.
    pub mlm_cos_mean: Option<f64>,
    pub mlm_cos_min: Option<f64>,
    /// Fraction of rows whose argmax agrees.
    pub mlm_top1_agree: Option<f64>,
    /// Mean |top-5 ∩ reference top-5| / 5.
    pub mlm_top5_overlap: Option<f64>,
}

fn top5(row: &[f32]) -> [usize; 5] {
    let mut best = [(f32::NEG_INFINITY, 0usize); 5];
    for (i, &v) in row.iter().enumerate() {
        if v > best[4].0 {
            best[4] = (v, i);
            best.sort_by(|a, b| b.0.total_cmp(&a.0));
        }
    }
    best.map(|b| b.1)
}

#[derive(Default)]
struct Acc {
    hidden: Vec<f64>,
    mlm: Vec<f64>,
    top1: Vec<bool>,
    top5: Vec<f64>,
    outputs: BTreeMap<String, (f64, f64)>,
}

impl Acc {
    fn add_case(
        &mut self,
        mine: &BTreeMap<String, Array>,
        reference: &BTreeMap<String, Array>,
        case: &Case,
        h: usize,
        v: usize,
    ) {
        let real = |i: usize| case.attention_mask.get(i).is_none_or(|&m| m == 1);
        for (name, r) in reference {
            let Some(m) = mine.get(name) else { continue };
            let e = self.outputs.entry(name.clone()).or_default();
            // Per-token outputs: padded positions hold whatever the padded query rows
            // compute, which no caller reads, so they are left out like in the cosines.
            let row = match name.as_str() {
                "last_hidden_state" => h,
                "prediction_logits" => v,
                _ => m.data.len().max(1),
            };
            let rows = m.data.chunks(row).zip(r.data.chunks(row)).enumerate();
            for (_, (ma, ra)) in rows.filter(|(i, _)| row == m.data.len().max(1) || real(*i)) {
                for (&a, &b) in ma.iter().zip(ra) {
                    e.0 = e.0.max((a as f64 - b as f64).abs());
                    e.1 = e.1.max((b as f64).abs());
                }
            }
            if name == "last_hidden_state" {
                let rows = m.data.chunks(h).zip(r.data.chunks(h)).enumerate();
                self.hidden.extend(rows.filter(|(i, _)| real(*i)).map(|(_, (a, b))| cosine(a, b)));
            }
            if name == "prediction_logits" {
                for (_, (a, b)) in m.data.chunks(v).zip(r.data.chunks(v)).enumerate().filter(|(i, _)| real(*i)) {
                    self.mlm.push(cosine(a, b));
                    let (ta, tb) = (top5(a), top5(b));
                    self.top1.push(ta[0] == tb[0]);
                    self.top5.push(ta.iter().filter(|x| tb.contains(x)).count() as f64 / 5.0);
                }
            }
        }
    }

    fn finish(self) -> Report {
        let mean = |x: &[f64]| (!x.is_empty()).then(|| x.iter().sum::<f64>() / x.len() as f64);
        let min = |x: &[f64]| (!x.is_empty()).then(|| x.iter().cloned().fold(f64::INFINITY, f64::min));
        let top1: Vec<f64> = self.top1.iter().map(|&b| b as u8 as f64).collect();
        Report {
            tokens: self.hidden.len(),
            hidden_cos_mean: mean(&self.hidden).unwrap_or(f64::NAN),
            hidden_cos_min: min(&self.hidden).unwrap_or(f64::NAN),
            outputs: self
                .outputs
                .into_iter()
                .map(|(k, (err, scale))| (k, OutputStats { max_abs_err: err, rel_max_err: err / scale.max(1e-30) }))
                .collect(),
            mlm_cos_mean: mean(&self.mlm),
            mlm_cos_min: min(&self.mlm),
            mlm_top1_agree: mean(&top1),
            mlm_top5_overlap: mean(&self.top5),
        }
    }
}

/// Compares `model` with the transformers outputs in a goldens directory.
pub fn against_goldens(model: &Model<'_>, dir: &Path) -> Result<Report> {
    let g = Goldens::load(dir).with_context(|| format!("reading goldens in {}", dir.display()))?;
    let c = model.config();
    let mut acc = Acc::default();
    for case in &g.cases {
        let mine = run_case(model, case)?;
        let reference: BTreeMap<String, Array> =
            case.golden.iter().map(|(k, a)| (engine_name(&g.model_class, k).to_string(), a.clone())).collect();
        acc.add_case(&mine, &reference, case, c.hidden_size as usize, c.vocab_size as usize);
    }
    Ok(acc.finish())
}

/// Compares `model` with a `reference` blob on sequences of ids (one case each).
pub fn against_model(model: &Model<'_>, reference: &Model<'_>, seqs: &[Vec<u32>]) -> Result<Report> {
    let (a, b) = (model.config(), reference.config());
    ensure!(
        (a.hidden_size, a.vocab_size, a.heads) == (b.hidden_size, b.vocab_size, b.heads),
        "the two blobs are different models (hidden size, vocabulary or heads differ)"
    );
    let mut acc = Acc::default();
    for ids in seqs {
        let case = Case {
            name: String::new(),
            shape: vec![1, ids.len()],
            input_ids: ids.clone(),
            attention_mask: vec![1; ids.len()],
            token_type_ids: vec![0; ids.len()],
            golden: BTreeMap::new(),
        };
        let mine = run_case(model, &case)?;
        let theirs = run_case(reference, &case)?;
        acc.add_case(&mine, &theirs, &case, a.hidden_size as usize, a.vocab_size as usize);
    }
    Ok(acc.finish())
}

/// Reads a file of token ids (`albert eval --ids-file`, `quantize --calib-ids`): one sequence
/// per line, ids separated by commas or spaces.
pub fn read_ids(path: &Path) -> Result<Vec<Vec<u32>>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut seqs = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let ids: Vec<u32> = line
            .split([',', ' ', '\t'])
            .filter(|t| !t.is_empty())
            .map(|t| t.parse().with_context(|| format!("{}:{}: `{t}` is not a token id", path.display(), n + 1)))
            .collect::<Result<_>>()?;
        if !ids.is_empty() {
            seqs.push(ids);
        }
    }
    if seqs.is_empty() {
        bail!("{}: no sequences", path.display());
    }
    Ok(seqs)
}

/// Fill-mask agreement with transformers on a held-out set; see [`heldout_agreement`].
#[derive(Serialize, Clone, Debug)]
pub struct HeldOut {
    /// Sentences compared.
    pub sentences: usize,
    /// Fraction whose top-1 prediction is transformers' top-1.
    pub top1_agree: f64,
    /// Mean fraction of transformers' top 5 found in ours.
    pub top5_overlap: f64,
    /// For each sentence whose top-1 differs: how far apart transformers' own top two were,
    /// `ln(p1 / p2)` in nats. A flip at a gap of 0.01 is a near-tie that any rounding
    /// decides; one at 1.0 would be a real error.
    pub flip_gaps: Vec<f64>,
}

/// Fill-mask agreement on a held-out set (`heldout.json`: `input_ids`, `mask_position`,
/// transformers' fp32 `top5_ids` and `top5_probs`).
pub fn heldout_agreement(model: &Model<'_>, path: &Path) -> Result<HeldOut> {
    let v: Value =
        serde_json::from_slice(&std::fs::read(path).with_context(|| format!("reading {}", path.display()))?)?;
    let cases = v["cases"].as_array().ok_or_else(|| anyhow!("{}: no `cases`", path.display()))?;
    let vocab = model.config().vocab_size as usize;
    let (mut top1, mut top5_sum, mut flip_gaps) = (0usize, 0f64, Vec::new());
    let mut scratch = Vec::new();
    let mut logits = vec![0f32; vocab];
    for c in cases {
        let ids: Vec<u32> = c["input_ids"]
            .as_array()
            .ok_or_else(|| anyhow!("case without input_ids"))?
            .iter()
            .map(|x| x.as_u64().map(|x| x as u32).ok_or_else(|| anyhow!("bad id")))
            .collect::<Result<_>>()?;
        let pos = c["mask_position"].as_u64().ok_or_else(|| anyhow!("case without mask_position"))? as usize;
        let reference: Vec<usize> = c["top5_ids"]
            .as_array()
            .ok_or_else(|| anyhow!("case without top5_ids"))?
            .iter()
            .filter_map(|x| x.as_u64().map(|x| x as usize))
            .collect();
        let probs: Vec<f64> =
            c["top5_probs"].as_array().map(|a| a.iter().filter_map(Value::as_f64).collect()).unwrap_or_default();
        scratch.resize(model.scratch_bytes(ids.len(), 1), 0);
        let mut enc = model.encode(&Inputs::single(&ids), &mut scratch)?;
        model.mlm_logits(&mut enc, 0, pos, &mut logits)?;
        let mine = top5(&logits);
        if mine[0] == reference[0] {
            top1 += 1;
        } else {
            flip_gaps.push(match probs.as_slice() {
                [p1, p2, ..] if *p2 > 0.0 => (p1 / p2).ln(),
                _ => f64::NAN,
            });
        }
        top5_sum += mine.iter().filter(|x| reference.contains(x)).count() as f64 / 5.0;
    }
    let n = cases.len().max(1) as f64;
    Ok(HeldOut { sentences: cases.len(), top1_agree: top1 as f64 / n, top5_overlap: top5_sum / n, flip_gaps })
}

impl HeldOut {
    /// The widest fp32 top-2 gap among the flipped sentences (0 when none flipped).
    pub fn widest_flip_gap(&self) -> f64 {
        self.flip_gaps.iter().cloned().fold(0.0, f64::max)
    }
}

/// Prints a report as a table.
pub fn print(r: &Report) {
    println!("tokens compared          {}", r.tokens);
    println!("hidden cosine mean/min   {:.6} / {:.6}", r.hidden_cos_mean, r.hidden_cos_min);
    if let (Some(m), Some(n)) = (r.mlm_cos_mean, r.mlm_cos_min) {
        println!("MLM logit cosine mean/min {:.6} / {:.6}", m, n);
    }
    if let (Some(t1), Some(t5)) = (r.mlm_top1_agree, r.mlm_top5_overlap) {
        println!("MLM top-1 agreement      {:.2} %", 100.0 * t1);
        println!("MLM top-5 overlap        {:.2} %", 100.0 * t5);
    }
    println!("{:<20} {:>14} {:>14}", "output", "max abs err", "rel max err");
    for (k, s) in &r.outputs {
        println!("{k:<20} {:>14.3e} {:>14.3e}", s.max_abs_err, s.rel_max_err);
    }
}
