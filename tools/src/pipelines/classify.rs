//! `classify` (transformers' TextClassificationPipeline: labels from `id2label`, softmax,
//! or sigmoid for a single label) and `sop` (the sentence-order head of AlbertForPreTraining).

use albert_engine::Heads;
use anyhow::Result;
use serde::Serialize;

use super::{Pipeline, math};

/// A label and its probability.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Label {
    pub label: String,
    pub score: f32,
}

/// Sentence-order prediction for a pair: is `text_pair` the text that follows `text`?
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct SentenceOrder {
    /// `in-order` (class 0 of `sop_logits`) or `swapped` (class 1).
    pub label: &'static str,
    pub score: f32,
    /// Softmax of the logits: [in-order, swapped].
    pub scores: [f32; 2],
    pub logits: [f32; 2],
}

/// The SOP classes, in `sop_logits` order.
pub const SOP_LABELS: [&str; 2] = ["in-order", "swapped"];

impl Pipeline<'_, '_> {
    /// Classifies each text (or `(text, text_pair)`); returns every label sorted by score,
    /// cut to `top_k` when given.
    pub fn classify_batch(&mut self, inputs: &[(&str, Option<&str>)], top_k: Option<usize>) -> Result<Vec<Vec<Label>>> {
        self.require_head(
            Heads::SEQ_CLS,
            "this blob has no sequence-classification head (pack an AlbertForSequenceClassification checkpoint)",
        )?;
        let n = self.model.config().num_labels as usize;
        let labels: Vec<String> =
            (0..n).map(|i| self.model.label(i).map_or_else(|| format!("LABEL_{i}"), str::to_string)).collect();
        let encoded = inputs.iter().map(|(t, p)| self.encode(t, *p)).collect::<Result<Vec<_>>>()?;
        let refs: Vec<_> = encoded.iter().collect();
        self.run_pooled(&refs, |model, enc, b, _| {
            let mut scores = vec![0f32; n];
            model.classify(enc, b, &mut scores)?;
            if n == 1 {
                scores[0] = math::sigmoid(scores[0]);
            } else {
                math::softmax(&mut scores);
            }
            let order = math::top_k(&scores, top_k.unwrap_or(n));
            Ok(order.into_iter().map(|i| Label { label: labels[i].clone(), score: scores[i] }).collect())
        })
    }

    /// Sentence-order prediction for each `(text, text_pair)`.
    pub fn sop_batch(&mut self, pairs: &[(&str, &str)]) -> Result<Vec<SentenceOrder>> {
        self.require_head(
            Heads::SOP,
            "this blob has no sentence-order head (pack an AlbertForPreTraining checkpoint)",
        )?;
        let encoded = pairs.iter().map(|(a, b)| self.encode(a, Some(b))).collect::<Result<Vec<_>>>()?;
        let refs: Vec<_> = encoded.iter().collect();
        self.run_pooled(&refs, |model, enc, b, _| {
            let mut logits = [0f32; 2];
            model.sop_logits(enc, b, &mut logits)?;
            let mut scores = logits;
            math::softmax(&mut scores);
            let best = math::argmax(&scores);
            Ok(SentenceOrder { label: SOP_LABELS[best], score: scores[best], scores, logits })
        })
    }
}
