//! `fill-mask`: the likeliest tokens behind each `[MASK]` (transformers' FillMaskPipeline).

use albert_engine::Heads;
use anyhow::{Context, Result, bail};
use serde::Serialize;

use super::{Pipeline, math};

/// One fill-mask candidate, as transformers' `fill-mask` pipeline reports it.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct FillMask {
    pub score: f32,
    pub token: u32,
    pub token_str: String,
    pub sequence: String,
}

impl Pipeline<'_, '_> {
    /// Top `top_k` fillers for every `[MASK]` in `text` (one list per mask).
    pub fn fill_mask(&mut self, text: &str, top_k: usize) -> Result<Vec<Vec<FillMask>>> {
        Ok(self.fill_mask_batch(&[text], top_k)?.remove(0))
    }

    /// [`Pipeline::fill_mask`] for many texts, run through the engine in batches.
    pub fn fill_mask_batch(&mut self, texts: &[&str], top_k: usize) -> Result<Vec<Vec<Vec<FillMask>>>> {
        self.require_head(
            Heads::MLM,
            "this blob has no masked-LM head (pack an AlbertForMaskedLM or AlbertForPreTraining checkpoint)",
        )?;
        let mask_id = self.tokenizer.piece_to_id("[MASK]").context("the tokenizer has no [MASK] token")?;
        let encoded = texts.iter().map(|t| self.encode(t, None)).collect::<Result<Vec<_>>>()?;
        let positions: Vec<Vec<usize>> = encoded
            .iter()
            .map(|e| e.ids.iter().enumerate().filter(|&(_, &id)| id == mask_id).map(|(i, _)| i).collect())
            .collect();
        if let Some(i) = positions.iter().position(Vec::is_empty) {
            bail!("no [MASK] in the input text `{}`", texts[i]);
        }
        let vocab = self.model.config().vocab_size as usize;
        let refs: Vec<_> = encoded.iter().collect();
        // The engine runs the last layer and the vocabulary-sized logits only at the masked
        // positions.
        let best = self.run_at(&refs, &positions, |model, enc, b, i, at| {
            let mut logits = vec![0f32; vocab];
            let mut per_mask = Vec::new();
            for &p in &positions[i] {
                let r = at.binary_search(&p).ok().context("a [MASK] position left out of the encoding")?;
                model.mlm_logits(enc, b, r, &mut logits)?;
                math::softmax(&mut logits);
                per_mask.push(math::top_k(&logits, top_k).into_iter().map(|id| (id as u32, logits[id])).collect());
            }
            Ok::<Vec<Vec<(u32, f32)>>, anyhow::Error>(per_mask)
        })?;
        let mut all = Vec::new();
        for ((e, pos), best) in encoded.iter().zip(&positions).zip(best) {
            // transformers keeps special tokens in `sequence` when there are several masks,
            // so that the other [MASK]s stay visible.
            let skip_special = pos.len() == 1;
            let mut per_text = Vec::new();
            for (&p, cands) in pos.iter().zip(best) {
                let results = cands
                    .into_iter()
                    .map(|(id, score)| {
                        let mut filled = e.ids.clone();
                        filled[p] = id;
                        FillMask {
                            score,
                            token: id,
                            token_str: self.decode(&[id], false),
                            sequence: self.decode(&filled, skip_special),
                        }
                    })
                    .collect();
                per_text.push(results);
            }
            all.push(per_text);
        }
        Ok(all)
    }
}
