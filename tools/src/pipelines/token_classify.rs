//! `token-classify`: a label per token and the grouping of tokens into entities, as
//! transformers' TokenClassificationPipeline does it (its `aggregation_strategy`).

use albert_engine::Heads;
use anyhow::{Result, bail};
use serde::Serialize;

use super::{Pipeline, math, tokens_to_string};

/// transformers' `aggregation_strategy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aggregation {
    /// One entity per token (`entity`, `index`).
    None,
    /// Adjacent tokens with the same tag (B-/I- prefix aside) become one `entity_group`.
    Simple,
    /// Words take the first token's label, then as `Simple`.
    First,
    /// Words take the label of the highest average score over their tokens.
    Average,
    /// Words take the label of their single most confident token.
    Max,
}

/// An entity with transformers' field names: `entity` and `index` without aggregation,
/// `entity_group` with it.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Entity {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity_group: Option<String>,
    pub score: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    pub word: String,
    /// Character offsets into the text.
    pub start: usize,
    pub end: usize,
}

/// A token before aggregation (transformers' "pre-entity").
struct PreEntity {
    word: String,
    scores: Vec<f32>,
    start: usize,
    end: usize,
    index: usize,
    is_subword: bool,
}

/// A labelled token or word.
struct Tagged {
    label: usize,
    score: f32,
    index: Option<usize>,
    word: String,
    start: usize,
    end: usize,
}

/// `B-PER` → (B, PER); a label without prefix counts as a continuation (`I`).
fn tag(label: &str) -> (bool, &str) {
    match label.strip_prefix("B-") {
        Some(t) => (true, t),
        None => (false, label.strip_prefix("I-").unwrap_or(label)),
    }
}

fn mean(xs: impl Iterator<Item = f32>) -> f32 {
    let (mut s, mut n) = (0f32, 0usize);
    for x in xs {
        s += x;
        n += 1;
    }
    s / n.max(1) as f32
}

impl Pipeline<'_, '_> {
    /// Entities of each text; labels `O` are left out, as transformers' `ignore_labels`.
    pub fn token_classify_batch(&mut self, texts: &[&str], aggregation: Aggregation) -> Result<Vec<Vec<Entity>>> {
        self.require_head(
            Heads::TOKEN_CLS,
            "this blob has no token-classification head (pack an AlbertForTokenClassification checkpoint)",
        )?;
        let n = self.model.config().num_labels as usize;
        let labels: Vec<String> =
            (0..n).map(|i| self.model.label(i).map_or_else(|| format!("LABEL_{i}"), str::to_string)).collect();
        let encoded = texts.iter().map(|t| self.encode(t, None)).collect::<Result<Vec<_>>>()?;
        let refs: Vec<_> = encoded.iter().collect();
        let scores = self.run(&refs, |model, enc, b, i| {
            let mut rows = Vec::new();
            for p in 0..encoded[i].ids.len() {
                let mut s = vec![0f32; n];
                model.classify_token(enc, b, p, &mut s)?;
                math::softmax(&mut s);
                rows.push(s);
            }
            Ok(rows)
        })?;
        let unk = self.tokenizer.piece_to_id("<unk>");
        let mut out = Vec::new();
        for ((text, e), scores) in texts.iter().zip(&encoded).zip(scores) {
            let chars: Vec<char> = text.chars().collect();
            let mut pre = Vec::new();
            for (idx, s) in scores.into_iter().enumerate() {
                let id = e.ids[idx];
                // Skip [CLS]/[SEP]: `<unk>` is a special token too, but one the text gave.
                if self.tokenizer.is_special(id) && Some(id) != unk {
                    continue;
                }
                let [start, end] = e.offsets[idx];
                let word_ref: String = chars[start.min(chars.len())..end.min(chars.len())].iter().collect();
                // transformers' fallback for tokenizers without word-continuation prefixes:
                // a token continues a word unless a space is at or just before its start.
                let around = &chars[start.saturating_sub(1).min(chars.len())..(start + 1).min(chars.len())];
                let mut is_subword = start > 0 && !around.contains(&' ');
                let mut word = self.piece(id).to_string();
                if Some(id) == unk {
                    word = word_ref;
                    is_subword = false;
                }
                pre.push(PreEntity { word, scores: s, start, end, index: idx, is_subword });
            }
            out.push(self.aggregate(pre, aggregation, &labels)?);
        }
        Ok(out)
    }

    fn aggregate(&self, pre: Vec<PreEntity>, aggregation: Aggregation, labels: &[String]) -> Result<Vec<Entity>> {
        let tagged: Vec<Tagged> = match aggregation {
            Aggregation::None | Aggregation::Simple => pre
                .into_iter()
                .map(|p| {
                    let label = math::argmax(&p.scores);
                    Tagged {
                        label,
                        score: p.scores[label],
                        index: Some(p.index),
                        word: p.word,
                        start: p.start,
                        end: p.end,
                    }
                })
                .collect(),
            _ => {
                let mut words: Vec<Vec<PreEntity>> = Vec::new();
                for p in pre {
                    match words.last_mut() {
                        Some(w) if p.is_subword => w.push(p),
                        _ => words.push(vec![p]),
                    }
                }
                words.into_iter().map(|w| self.aggregate_word(&w, aggregation)).collect::<Result<_>>()?
            }
        };
        let ignored = |label: &str| label == "O";
        if aggregation == Aggregation::None {
            return Ok(tagged
                .into_iter()
                .filter(|t| !ignored(&labels[t.label]))
                .map(|t| Entity {
                    entity: Some(labels[t.label].clone()),
                    entity_group: None,
                    score: t.score,
                    index: t.index,
                    word: t.word,
                    start: t.start,
                    end: t.end,
                })
                .collect());
        }
        // Group adjacent entities of one tag, a B- label starting a new group.
        let mut groups: Vec<Vec<Tagged>> = Vec::new();
        for t in tagged {
            let joins = groups.last().and_then(|g| g.last()).is_some_and(|last| {
                let ((b, t1), (_, t0)) = (tag(&labels[t.label]), tag(&labels[last.label]));
                t1 == t0 && !b
            });
            match groups.last_mut() {
                Some(g) if joins => g.push(t),
                _ => groups.push(vec![t]),
            }
        }
        Ok(groups
            .into_iter()
            .map(|g| {
                let first = &labels[g[0].label];
                let group = first.split_once('-').map_or(first.as_str(), |(_, rest)| rest).to_string();
                Entity {
                    entity: None,
                    entity_group: Some(group),
                    score: mean(g.iter().map(|t| t.score)),
                    index: None,
                    word: tokens_to_string(g.iter().map(|t| t.word.as_str())),
                    start: g[0].start,
                    end: g[g.len() - 1].end,
                }
            })
            .filter(|e| !e.entity_group.as_deref().is_some_and(ignored))
            .collect())
    }

    /// One word's label under `first`, `average` or `max`.
    fn aggregate_word(&self, w: &[PreEntity], aggregation: Aggregation) -> Result<Tagged> {
        let (label, score) = match aggregation {
            Aggregation::First => {
                let l = math::argmax(&w[0].scores);
                (l, w[0].scores[l])
            }
            Aggregation::Max => {
                // The first token with the highest top score, as Python's `max`.
                let mut best = &w[0];
                for p in &w[1..] {
                    if p.scores.iter().fold(f32::MIN, |m, &v| m.max(v))
                        > best.scores.iter().fold(f32::MIN, |m, &v| m.max(v))
                    {
                        best = p;
                    }
                }
                let l = math::argmax(&best.scores);
                (l, best.scores[l])
            }
            Aggregation::Average => {
                let avg: Vec<f32> = (0..w[0].scores.len()).map(|k| mean(w.iter().map(|p| p.scores[k]))).collect();
                let l = math::argmax(&avg);
                (l, avg[l])
            }
            Aggregation::None | Aggregation::Simple => bail!("word aggregation needs first, average or max"),
        };
        Ok(Tagged {
            label,
            score,
            index: None,
            word: tokens_to_string(w.iter().map(|p| p.word.as_str())),
            start: w[0].start,
            end: w[w.len() - 1].end,
        })
    }
}
