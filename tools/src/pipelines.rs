//! Hugging Face-style pipelines over a blob with a tokenizer: text in, task results out,
//! with transformers' field names.

use albert_engine::tokenizer::{EncodeOptions, Encoding, OwnedWorkspace};
use albert_engine::{Heads, Inputs, Model, Tokenizer};
use anyhow::{Context, Result, bail};
use serde::Serialize;

/// One fill-mask candidate, as transformers' `fill-mask` pipeline reports it.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct FillMask {
    pub score: f32,
    pub token: u32,
    pub token_str: String,
    pub sequence: String,
}

/// Text encoded for the model.
pub struct Encoded {
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
    /// Byte offsets into the text each token came from.
    pub offsets: Vec<[u32; 2]>,
}

/// A model and its tokenizer.
pub struct Pipeline<'m, 'b> {
    pub model: &'m Model<'b>,
    pub tokenizer: Tokenizer<'b>,
    scratch: Vec<u8>,
}

/// `softmax` of a row, in place.
fn softmax(x: &mut [f32]) {
    let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let sum: f32 = x
        .iter_mut()
        .map(|v| {
            *v = (*v - max).exp();
            *v
        })
        .sum();
    x.iter_mut().for_each(|v| *v /= sum);
}

/// transformers' `clean_up_tokenization`: no space before punctuation and contractions.
fn clean_up(s: &str) -> String {
    let mut out = s.to_string();
    for (from, to) in [
        (" .", "."),
        (" ?", "?"),
        (" !", "!"),
        (" ,", ","),
        (" ' ", "'"),
        (" n't", "n't"),
        (" 'm", "'m"),
        (" 's", "'s"),
        (" 've", "'ve"),
        (" 're", "'re"),
    ] {
        out = out.replace(from, to);
    }
    out
}

impl<'m, 'b> Pipeline<'m, 'b> {
    /// Fails when the blob has no tokenizer.
    pub fn new(model: &'m Model<'b>) -> Result<Self> {
        let section = model.blob().tokenizer_section().context(
            "this blob has no tokenizer (re-run quantize on a checkpoint with tokenizer.json or spiece.model)",
        )?;
        Ok(Pipeline { model, tokenizer: Tokenizer::from_section(section)?, scratch: Vec::new() })
    }

    /// Tokenizes `text` (and `pair`), truncated to the model's maximum length.
    pub fn encode(&self, text: &str, pair: Option<&str>) -> Result<Encoded> {
        let max = self.model.config().max_position_embeddings as usize;
        let opts = EncodeOptions { max_length: Some(max), ..EncodeOptions::default() };
        let mut ws = OwnedWorkspace::new(text.len().max(pair.map_or(0, str::len)));
        let cap = max;
        let (mut ids, mut type_ids, mut mask, mut offsets) =
            (vec![0; cap], vec![0; cap], vec![0; cap], vec![[0u32; 2]; cap]);
        let mut out =
            Encoding { ids: &mut ids, type_ids: &mut type_ids, attention_mask: &mut mask, offsets: &mut offsets };
        let n = self.tokenizer.encode(text, pair, &opts, &mut ws.workspace(), &mut out)?;
        ids.truncate(n);
        type_ids.truncate(n);
        offsets.truncate(n);
        Ok(Encoded { ids, type_ids, offsets })
    }

    /// transformers' `tokenizer.decode(ids, skip_special_tokens=True)`.
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut s = String::new();
        for &id in ids {
            if self.tokenizer.is_special(id) {
                continue;
            }
            s.push_str(self.tokenizer.id_to_piece(id).unwrap_or(""));
        }
        clean_up(s.replace('\u{2581}', " ").trim())
    }

    /// Top `top_k` fillers for every `[MASK]` in `text` (one list per mask).
    pub fn fill_mask(&mut self, text: &str, top_k: usize) -> Result<Vec<Vec<FillMask>>> {
        let c = *self.model.config();
        if !c.heads.has(Heads::MLM) {
            bail!("this blob has no masked-LM head (pack an AlbertForMaskedLM or AlbertForPreTraining checkpoint)");
        }
        let mask_id = self.tokenizer.piece_to_id("[MASK]").context("the tokenizer has no [MASK] token")?;
        let e = self.encode(text, None)?;
        let positions: Vec<usize> =
            e.ids.iter().enumerate().filter(|&(_, &id)| id == mask_id).map(|(i, _)| i).collect();
        if positions.is_empty() {
            bail!("no [MASK] in the input text");
        }
        let inputs = Inputs { token_type_ids: Some(&e.type_ids), ..Inputs::single(&e.ids) };
        self.scratch.resize(self.model.scratch_bytes(e.ids.len(), 1), 0);
        let mut enc = self.model.encode(&inputs, &mut self.scratch)?;
        let mut logits = vec![0f32; c.vocab_size as usize];
        let mut best = Vec::new();
        for &p in &positions {
            self.model.mlm_logits(&mut enc, 0, p, &mut logits)?;
            softmax(&mut logits);
            let mut order: Vec<usize> = (0..logits.len()).collect();
            order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
            best.push(order.iter().take(top_k).map(|&id| (id as u32, logits[id])).collect::<Vec<_>>());
        }
        let mut all = Vec::new();
        for (&p, cands) in positions.iter().zip(best) {
            let results = cands
                .into_iter()
                .map(|(id, score)| {
                    let mut filled = e.ids.clone();
                    filled[p] = id;
                    FillMask { score, token: id, token_str: self.decode(&[id]), sequence: self.decode(&filled) }
                })
                .collect();
            all.push(results);
        }
        Ok(all)
    }
}
