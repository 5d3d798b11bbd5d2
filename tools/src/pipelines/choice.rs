//! `multiple-choice`: one score per (prompt, choice) pair from AlbertForMultipleChoice, and
//! their softmax (transformers has no pipeline for it; this is the model's documented use).

use albert_engine::Heads;
use anyhow::{Result, bail};
use serde::Serialize;

use super::{Encoded, Pipeline, math};

/// Scores of the choices of one prompt.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct ChoiceScores {
    /// Index of the likeliest choice.
    pub best: usize,
    /// Softmax over the choices.
    pub scores: Vec<f32>,
    pub logits: Vec<f32>,
}

impl Pipeline<'_, '_> {
    /// Scores each `(prompt, choices)`: every choice is encoded as the pair (prompt, choice).
    pub fn multiple_choice_batch(&mut self, items: &[(&str, Vec<&str>)]) -> Result<Vec<ChoiceScores>> {
        self.require_head(
            Heads::MULTIPLE_CHOICE,
            "this blob has no multiple-choice head (pack an AlbertForMultipleChoice checkpoint)",
        )?;
        let mut encoded: Vec<Encoded> = Vec::new();
        for (prompt, choices) in items {
            if choices.is_empty() {
                bail!("multiple-choice: no choices given for `{prompt}`");
            }
            for c in choices {
                encoded.push(self.encode(prompt, Some(c))?);
            }
        }
        let refs: Vec<_> = encoded.iter().collect();
        let logits = self.run_pooled(&refs, |model, enc, b, _| Ok(model.choice_logit(enc, b)?))?;
        let mut out = Vec::new();
        let mut rest = &logits[..];
        for (_, choices) in items {
            let (mine, tail) = rest.split_at(choices.len());
            rest = tail;
            let mut scores = mine.to_vec();
            math::softmax(&mut scores);
            out.push(ChoiceScores { best: math::argmax(&scores), scores, logits: mine.to_vec() });
        }
        Ok(out)
    }
}
