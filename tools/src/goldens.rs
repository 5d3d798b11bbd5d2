//! Reference outputs written by transformers (`tests/reference/`): loading a goldens
//! directory, running the engine on the same inputs, and comparing the two. Shared by
//! `albert eval` and the golden tests.

use std::collections::BTreeMap;
use std::path::Path;

use albert_engine::{Heads, Inputs, Model};
use anyhow::{Result, anyhow};
use safetensors::SafeTensors;
use serde_json::Value;

/// A float tensor with its shape.
#[derive(Clone, Debug)]
pub struct Array {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// One input case of a fixture and transformers' outputs for it.
pub struct Case {
    pub name: String,
    /// Input shape as given to transformers: [batch, seq] or [batch, choices, seq].
    pub shape: Vec<usize>,
    pub input_ids: Vec<u32>,
    pub attention_mask: Vec<u32>,
    pub token_type_ids: Vec<u32>,
    pub golden: BTreeMap<String, Array>,
}

impl Case {
    /// The case as the engine's input: every leading axis (batch, choices) flattened into
    /// the batch, the last one the sequence.
    pub fn inputs(&self) -> Result<Inputs<'_>> {
        let seq = *self.shape.last().ok_or_else(|| anyhow!("empty input shape"))?;
        Ok(Inputs {
            input_ids: &self.input_ids,
            token_type_ids: Some(&self.token_type_ids),
            attention_mask: Some(&self.attention_mask),
            batch: self.input_ids.len() / seq.max(1),
            seq_len: seq,
        })
    }
}

/// A goldens directory: `goldens.json` (inputs, output names) and `goldens.safetensors`.
pub struct Goldens {
    pub model_class: String,
    pub cases: Vec<Case>,
}

fn flatten(v: &Value, shape: &mut Vec<usize>, out: &mut Vec<u32>, depth: usize) -> Result<()> {
    match v {
        Value::Array(a) => {
            if shape.len() == depth {
                shape.push(a.len());
            }
            for x in a {
                flatten(x, shape, out, depth + 1)?;
            }
            Ok(())
        }
        Value::Number(n) => {
            out.push(n.as_u64().and_then(|x| u32::try_from(x).ok()).ok_or_else(|| anyhow!("bad id {n}"))?);
            Ok(())
        }
        _ => Err(anyhow!("unexpected JSON in inputs: {v}")),
    }
}

impl Goldens {
    /// Reads `dir/goldens.json` and `dir/goldens.safetensors`.
    pub fn load(dir: &Path) -> Result<Goldens> {
        let name = dir.display();
        let g: Value = serde_json::from_slice(&std::fs::read(dir.join("goldens.json"))?)?;
        let bytes = std::fs::read(dir.join("goldens.safetensors"))?;
        let st = SafeTensors::deserialize(&bytes)?;
        let mut cases = Vec::new();
        for c in g["cases"].as_array().ok_or_else(|| anyhow!("{name}: no cases"))? {
            let cname = c["name"].as_str().ok_or_else(|| anyhow!("case without name"))?.to_string();
            let mut shape = Vec::new();
            let mut input_ids = Vec::new();
            flatten(&c["input_ids"], &mut shape, &mut input_ids, 0)?;
            let (mut s2, mut s3) = (Vec::new(), Vec::new());
            let mut attention_mask = Vec::new();
            flatten(&c["attention_mask"], &mut s2, &mut attention_mask, 0)?;
            let mut token_type_ids = Vec::new();
            flatten(&c["token_type_ids"], &mut s3, &mut token_type_ids, 0)?;
            anyhow::ensure!(shape == s2 && shape == s3, "{name}/{cname}: input shapes differ");
            let mut golden = BTreeMap::new();
            for o in c["outputs"].as_array().ok_or_else(|| anyhow!("case without outputs"))? {
                let o = o.as_str().ok_or_else(|| anyhow!("output name not a string"))?;
                let t = st.tensor(&format!("{cname}/{o}"))?;
                let data = t.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
                golden.insert(o.to_string(), Array { shape: t.shape().to_vec(), data });
            }
            cases.push(Case { name: cname, shape, input_ids, attention_mask, token_type_ids, golden });
        }
        Ok(Goldens { model_class: g["model_class"].as_str().unwrap_or("").into(), cases })
    }
}

/// Runs the engine on `case` and returns every output transformers stored, by the same
/// names and shapes.
pub fn run_case(model: &Model<'_>, case: &Case) -> Result<BTreeMap<String, Array>> {
    let c = *model.config();
    let inputs = case.inputs()?;
    let (batch, seq) = (inputs.batch, inputs.seq_len);
    let mut scratch = vec![0u8; model.scratch_bytes(seq, batch)];
    let mut enc = model.encode(&inputs, &mut scratch)?;
    let (h, v, nl) = (c.hidden_size as usize, c.vocab_size as usize, c.num_labels as usize);
    let mut out = BTreeMap::new();
    let arr = |shape: Vec<usize>, data: Vec<f32>| Array { shape, data };
    let mut put = |k: &str, a: Array| {
        out.insert(k.to_string(), a);
    };
    put("last_hidden_state", arr(vec![batch, seq, h], enc.last_hidden_state().to_vec()));
    let per_seq = |n: usize, f: &mut dyn FnMut(usize, &mut [f32]) -> Result<()>| -> Result<Vec<f32>> {
        let mut all = vec![0f32; batch * n];
        for (b, row) in all.chunks_mut(n).enumerate() {
            f(b, row)?;
        }
        Ok(all)
    };
    if c.heads.has(Heads::POOLER) {
        let d = per_seq(h, &mut |b, r| Ok(model.pooler_output(&mut enc, b, r)?))?;
        put("pooler_output", arr(vec![batch, h], d));
    }
    if c.heads.has(Heads::MLM) {
        let d = per_seq(seq * v, &mut |b, r| {
            for (p, row) in r.chunks_mut(v).enumerate() {
                model.mlm_logits(&mut enc, b, p, row)?;
            }
            Ok(())
        })?;
        put("prediction_logits", arr(vec![batch, seq, v], d));
    }
    if c.heads.has(Heads::SOP) {
        let d = per_seq(2, &mut |b, r| Ok(model.sop_logits(&mut enc, b, r)?))?;
        put("sop_logits", arr(vec![batch, 2], d));
    }
    if c.heads.has(Heads::SEQ_CLS) {
        let d = per_seq(nl, &mut |b, r| Ok(model.classify(&mut enc, b, r)?))?;
        put("logits", arr(vec![batch, nl], d));
    }
    if c.heads.has(Heads::TOKEN_CLS) {
        let d = per_seq(seq * nl, &mut |b, r| {
            for (p, row) in r.chunks_mut(nl).enumerate() {
                model.classify_token(&mut enc, b, p, row)?;
            }
            Ok(())
        })?;
        put("logits", arr(vec![batch, seq, nl], d));
    }
    if c.heads.has(Heads::MULTIPLE_CHOICE) {
        let d = per_seq(1, &mut |b, r| {
            r[0] = model.choice_logit(&mut enc, b)?;
            Ok(())
        })?;
        put("logits", arr(case.shape[..case.shape.len() - 1].to_vec(), d));
    }
    if c.heads.has(Heads::QA) {
        let mut s = vec![0f32; batch * seq];
        let mut e = vec![0f32; batch * seq];
        for b in 0..batch {
            for p in 0..seq {
                (s[b * seq + p], e[b * seq + p]) = model.qa_logits(&mut enc, b, p)?;
            }
        }
        put("start_logits", arr(vec![batch, seq], s));
        put("end_logits", arr(vec![batch, seq], e));
    }
    Ok(out)
}

/// The engine's name for a transformers output of `model_class`: `AlbertForMaskedLM`
/// calls its MLM logits `logits`, the engine (like `AlbertForPreTraining`)
/// `prediction_logits`.
pub fn engine_name<'a>(model_class: &str, output: &'a str) -> &'a str {
    if model_class == "AlbertForMaskedLM" && output == "logits" { "prediction_logits" } else { output }
}

/// Cosine similarity (1 when both vectors are zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        ab += x as f64 * y as f64;
        aa += x as f64 * x as f64;
        bb += y as f64 * y as f64;
    }
    if aa == 0.0 && bb == 0.0 { 1.0 } else { ab / (aa.sqrt() * bb.sqrt()).max(1e-300) }
}

/// `max |a - b| / max |b|`: the error relative to the output's scale.
pub fn rel_max_err(a: &[f32], golden: &[f32]) -> f64 {
    let scale = golden.iter().fold(0f64, |m, &x| m.max((x as f64).abs())).max(1e-30);
    let err = a.iter().zip(golden).fold(0f64, |m, (&x, &y)| m.max((x as f64 - y as f64).abs()));
    err / scale
}
