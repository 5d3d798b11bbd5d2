//! The task heads on top of the encoder, each computing only what is asked for.

use super::Model;
use super::forward::{Encoded, linear};
use super::weights::Linear;
use crate::error::Error;
use crate::ops;

fn check_out(what: &'static str, out: &[f32], needed: usize) -> Result<(), Error> {
    if out.len() != needed {
        return Err(Error::OutputSize { what, needed, found: out.len() });
    }
    Ok(())
}

fn check_pos(enc: &Encoded<'_>, b: usize, pos: usize) -> Result<(), Error> {
    if b >= enc.batch() {
        return Err(Error::BadInput { what: "sequence index", index: 0, value: b as u64, limit: enc.batch() as u64 });
    }
    if pos >= enc.seq_len() {
        return Err(Error::BadInput {
            what: "token position",
            index: 0,
            value: pos as u64,
            limit: enc.seq_len() as u64,
        });
    }
    Ok(())
}

impl Model<'_> {
    fn head<'m>(&self, head: Option<&'m Linear<'m>>, name: &'static str) -> Result<&'m Linear<'m>, Error> {
        head.ok_or(Error::NoSuchHead { head: name })
    }

    /// `pooler_output` of sequence `b`: `tanh(W · h[CLS] + b)`; `out` has `hidden_size` values.
    pub fn pooler_output(&self, enc: &mut Encoded<'_>, b: usize, out: &mut [f32]) -> Result<(), Error> {
        let pooler = self.head(self.weights.pooler.as_ref(), "pooler")?;
        check_pos(enc, b, 0)?;
        if enc.first_token != 0 {
            // An `encode_positions` result without token 0: its row 0 is another token.
            return Err(Error::BadInput {
                what: "first position of the encoding (the pooler reads [CLS], token 0)",
                index: b,
                value: enc.first_token as u64,
                limit: 1,
            });
        }
        check_out("pooler_output", out, enc.hidden_size())?;
        let h = enc.hidden_size();
        let at = b * enc.seq_len() * h;
        linear(&enc.hidden[at..at + h], 1, pooler, out, &mut enc.work, self.par());
        out.iter_mut().for_each(|v| *v = libm::tanhf(*v));
        Ok(())
    }

    /// Applies a small head to the pooled output of sequence `b`.
    fn pooled_head(&self, enc: &mut Encoded<'_>, b: usize, head: &Linear<'_>, out: &mut [f32]) -> Result<(), Error> {
        let h = enc.hidden_size();
        let pooled = core::mem::take(&mut enc.work.th);
        let r = self.pooler_output(enc, b, &mut pooled[..h]);
        if r.is_ok() {
            linear(&pooled[..h], 1, head, out, &mut enc.work, self.par());
        }
        enc.work.th = pooled;
        r
    }

    /// Applies a small head to the hidden state of token `pos` of sequence `b`.
    fn token_head(
        &self,
        enc: &mut Encoded<'_>,
        b: usize,
        pos: usize,
        head: &Linear<'_>,
        out: &mut [f32],
    ) -> Result<(), Error> {
        check_pos(enc, b, pos)?;
        let h = enc.hidden_size();
        let at = (b * enc.seq_len() + pos) * h;
        linear(&enc.hidden[at..at + h], 1, head, out, &mut enc.work, self.par());
        Ok(())
    }

    /// Masked-LM logits (`prediction_logits`) for token `pos` of sequence `b`; `out` has
    /// `vocab_size` values. Only the positions asked for are computed.
    pub fn mlm_logits(&self, enc: &mut Encoded<'_>, b: usize, pos: usize, out: &mut [f32]) -> Result<(), Error> {
        let mlm = self.weights.mlm.as_ref().ok_or(Error::NoSuchHead { head: "masked-LM" })?;
        check_pos(enc, b, pos)?;
        let c = self.config();
        check_out("prediction_logits", out, c.vocab_size as usize)?;
        let (h, e) = (c.hidden_size as usize, c.embedding_size as usize);
        let at = (b * enc.seq_len() + pos) * h;
        let t = core::mem::take(&mut enc.work.te);
        linear(&enc.hidden[at..at + h], 1, &mlm.dense, &mut t[..e], &mut enc.work, self.par());
        ops::activate(&mut t[..e], c.hidden_act);
        ops::layer_norm(&mut t[..e], mlm.norm.gamma, mlm.norm.beta, c.layer_norm_eps);
        let decoder = Linear {
            w: mlm.decoder,
            b: mlm.bias,
            input_mul: None,
            outliers: None,
            row_sum: mlm.decoder_row_sum,
            weight_sum: None,
            zero_on_grid: false,
        };
        linear(&t[..e], 1, &decoder, out, &mut enc.work, self.par());
        enc.work.te = t;
        Ok(())
    }

    /// Sentence-order logits (`sop_logits`, 2 values) of sequence `b`.
    pub fn sop_logits(&self, enc: &mut Encoded<'_>, b: usize, out: &mut [f32]) -> Result<(), Error> {
        let head = *self.head(self.weights.sop.as_ref(), "sentence-order")?;
        check_out("sop_logits", out, 2)?;
        self.pooled_head(enc, b, &head, out)
    }

    /// Sequence-classification logits (`num_labels` values) of sequence `b`.
    pub fn classify(&self, enc: &mut Encoded<'_>, b: usize, out: &mut [f32]) -> Result<(), Error> {
        if !self.config().heads.has(crate::Heads::SEQ_CLS) {
            return Err(Error::NoSuchHead { head: "sequence-classification" });
        }
        let head = *self.head(self.weights.classifier.as_ref(), "sequence-classification")?;
        check_out("logits", out, self.config().num_labels as usize)?;
        self.pooled_head(enc, b, &head, out)
    }

    /// Multiple-choice score of sequence `b` (one choice; batch the choices).
    pub fn choice_logit(&self, enc: &mut Encoded<'_>, b: usize) -> Result<f32, Error> {
        if !self.config().heads.has(crate::Heads::MULTIPLE_CHOICE) {
            return Err(Error::NoSuchHead { head: "multiple-choice" });
        }
        let head = *self.head(self.weights.classifier.as_ref(), "multiple-choice")?;
        let mut out = [0f32; 1];
        self.pooled_head(enc, b, &head, &mut out)?;
        Ok(out[0])
    }

    /// Token-classification logits (`num_labels` values) for token `pos` of sequence `b`.
    pub fn classify_token(&self, enc: &mut Encoded<'_>, b: usize, pos: usize, out: &mut [f32]) -> Result<(), Error> {
        if !self.config().heads.has(crate::Heads::TOKEN_CLS) {
            return Err(Error::NoSuchHead { head: "token-classification" });
        }
        let head = *self.head(self.weights.classifier.as_ref(), "token-classification")?;
        check_out("logits", out, self.config().num_labels as usize)?;
        self.token_head(enc, b, pos, &head, out)
    }

    /// Question-answering `(start_logit, end_logit)` for token `pos` of sequence `b`.
    pub fn qa_logits(&self, enc: &mut Encoded<'_>, b: usize, pos: usize) -> Result<(f32, f32), Error> {
        let head = *self.head(self.weights.qa.as_ref(), "question-answering")?;
        let mut out = [0f32; 2];
        self.token_head(enc, b, pos, &head, &mut out)?;
        Ok((out[0], out[1]))
    }
}
