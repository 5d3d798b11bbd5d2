//! `embed`: feature extraction (transformers' FeatureExtractionPipeline: the encoder's
//! `last_hidden_state`), per token or pooled into one vector.

use anyhow::Result;
use serde::Serialize;

use super::{Pipeline, math};

/// How token vectors become the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooling {
    /// One vector per token, special tokens included (what the pipeline returns).
    None,
    /// The `[CLS]` token's vector.
    Cls,
    /// The average over the tokens, special tokens included (sentence-transformers' mean).
    Mean,
}

/// Token vectors (`[tokens][hidden]`) or one pooled vector.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(untagged)]
pub enum Embedding {
    Tokens(Vec<Vec<f32>>),
    Pooled(Vec<f32>),
}

impl Pipeline<'_, '_> {
    /// Embeds each text; `normalize` scales every output vector to unit length.
    pub fn embed_batch(&mut self, texts: &[&str], pooling: Pooling, normalize: bool) -> Result<Vec<Embedding>> {
        let encoded = texts.iter().map(|t| self.encode(t, None)).collect::<Result<Vec<_>>>()?;
        let refs: Vec<_> = encoded.iter().collect();
        let each = |enc: &mut albert_engine::Encoded<'_>, b: usize, i: usize| {
            let mut out = match pooling {
                Pooling::None => {
                    Embedding::Tokens((0..encoded[i].ids.len()).map(|p| enc.token(b, p).to_vec()).collect())
                }
                Pooling::Cls => Embedding::Pooled(enc.token(b, 0).to_vec()),
                Pooling::Mean => {
                    let n = encoded[i].ids.len();
                    let mut mean = vec![0f32; enc.hidden_size()];
                    for p in 0..n {
                        mean.iter_mut().zip(enc.token(b, p)).for_each(|(m, v)| *m += v);
                    }
                    mean.iter_mut().for_each(|m| *m /= n as f32);
                    Embedding::Pooled(mean)
                }
            };
            if normalize {
                match &mut out {
                    Embedding::Tokens(rows) => rows.iter_mut().for_each(|r| math::l2_normalize(r)),
                    Embedding::Pooled(v) => math::l2_normalize(v),
                }
            }
            Ok(out)
        };
        if pooling == Pooling::Cls {
            // Only [CLS] is read: the last layer runs for that token alone (`encode_pooled`).
            self.run_pooled(&refs, |_, enc, b, i| each(enc, b, i))
        } else {
            self.run(&refs, |_, enc, b, i| each(enc, b, i))
        }
    }
}
