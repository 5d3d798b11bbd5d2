//! The encoder: embeddings, projection to hidden, and the shared layer(s) iterated
//! `num_hidden_layers` times, as transformers' `AlbertModel` computes them.

use super::observe::{Gemm, NoObserver, Observer, Site};
use super::scratch::{Plan, Work};
use super::weights::{Layer, Linear, Matrix, Norm};
use super::{Inputs, Model};
use crate::config::ModelConfig;
use crate::error::Error;
use crate::kernels::{self, attention, scalar};
use crate::ops;

/// The encoder's output (`last_hidden_state`), living in the caller's scratch, plus the
/// scratch the heads still need.
pub struct Encoded<'s> {
    pub(crate) hidden: &'s mut [f32],
    pub(crate) work: Work<'s>,
    batch: usize,
    seq_len: usize,
    hidden_size: usize,
}

impl Encoded<'_> {
    /// `batch × seq_len × hidden_size`, row-major: transformers' `last_hidden_state`.
    pub fn last_hidden_state(&self) -> &[f32] {
        self.hidden
    }

    /// The hidden state of token `pos` of sequence `b`.
    pub fn token(&self, b: usize, pos: usize) -> &[f32] {
        let h = self.hidden_size;
        let at = (b * self.seq_len + pos) * h;
        &self.hidden[at..at + h]
    }

    pub fn batch(&self) -> usize {
        self.batch
    }

    pub fn seq_len(&self) -> usize {
        self.seq_len
    }

    pub fn hidden_size(&self) -> usize {
        self.hidden_size
    }
}

/// `y[m×n] = x[m×k] Wᵀ + b`. For int8 weights the rows of `x` are quantized per token
/// into `work.qx` and multiplied exactly in i32 (`FORMAT.md`, "Quantization").
pub(crate) fn linear(x: &[f32], m: usize, lin: &Linear<'_>, y: &mut [f32], work: &mut Work<'_>) {
    let (n, k) = (lin.w.rows, lin.w.cols);
    match lin.w.m {
        Matrix::F32(w) => scalar::gemm_f32(m, n, k, x, w, y),
        Matrix::F16(_) => {
            // Convert one weight row at a time, then use it for every token.
            let wrow = &mut work.wrow[..k];
            for j in 0..n {
                lin.w.row_into(j, wrow);
                for r in 0..m {
                    y[r * n + j] = scalar::dot_f32(&x[r * k..(r + 1) * k], wrow);
                }
            }
        }
        Matrix::I8 { q, scales, act16 } => {
            // Quantize every input row (per token; centred when the linear has row sums),
            // then one exact integer product per row.
            let asym = lin.row_sum.is_some();
            for r in 0..m {
                let xr = &x[r * k..(r + 1) * k];
                let (t, c) = if act16 {
                    ops::quantize_row(xr, lin.input_mul, asym, &mut work.qx16[r * k..(r + 1) * k])
                } else {
                    ops::quantize_row(xr, lin.input_mul, asym, &mut work.qx[r * k..(r + 1) * k])
                };
                (work.qs[r], work.qc[r]) = (t, c);
            }
            // The process's kernel (`kernels::selected`) over blocks of rows as large as
            // the accumulators allow (all rows at short sequences). int16 activations
            // accumulate in i64: the i32 region viewed as i64 when a row fits there (the
            // dedicated one-row `acc64` otherwise, e.g. for a vocabulary-wide decoder).
            let kern = kernels::active();
            let (acc32, acc64): (&mut [i32], &mut [i64]) = if act16 {
                let wide64 = bytemuck::pod_align_to_mut::<i32, i64>(&mut *work.acc).1;
                (&mut [], if wide64.len() >= n { wide64 } else { &mut *work.acc64 })
            } else {
                (&mut *work.acc, &mut [])
            };
            let block = if act16 { acc64.len() / n } else { acc32.len() / n }.clamp(1, m);
            for r0 in (0..m).step_by(block) {
                let rows = block.min(m - r0);
                if act16 {
                    kern.gemm_i16_i8_i64(rows, n, k, &work.qx16[r0 * k..(r0 + rows) * k], q, &mut acc64[..rows * n]);
                } else {
                    kern.gemm_i8_i32(rows, n, k, &work.qx[r0 * k..(r0 + rows) * k], q, &mut acc32[..rows * n]);
                }
                for r in r0..r0 + rows {
                    let (t, c) = (work.qs[r], work.qc[r]);
                    let out = &mut y[r * n..(r + 1) * n];
                    let at = (r - r0) * n..(r - r0 + 1) * n;
                    if act16 {
                        for ((o, &a), &s) in out.iter_mut().zip(&acc64[at]).zip(scales) {
                            *o = t * s * a as f32;
                        }
                    } else {
                        for ((o, &a), &s) in out.iter_mut().zip(&acc32[at]).zip(scales) {
                            *o = t * s * a as f32;
                        }
                    }
                    if let Some(rs) = lin.row_sum {
                        // The centre c of the token's range times Σ_k W[n][k].
                        out.iter_mut().zip(rs).for_each(|(o, &s)| *o += c * s);
                    }
                }
            }
        }
    }
    for row in y[..m * n].chunks_exact_mut(n) {
        row.iter_mut().zip(lin.b).for_each(|(o, b)| *o += b);
    }
    if let Some(o) = &lin.outliers {
        let c = o.cols.len();
        // Gather the token's outlier channels once (not once per output), on the stack
        // when they fit; the sum keeps its order, so the result is the same either way.
        let mut gathered = [0f32; 256];
        for r in 0..m {
            let xr = &x[r * k..(r + 1) * k];
            if c <= gathered.len() {
                let xo = &mut gathered[..c];
                xo.iter_mut().zip(o.cols).for_each(|(v, &col)| *v = xr[col as usize]);
                for (yo, wrow) in y[r * n..(r + 1) * n].iter_mut().zip(o.w.chunks_exact(c)) {
                    *yo += xo.iter().zip(wrow).map(|(&v, &w)| v * w).sum::<f32>();
                }
            } else {
                for (yo, wrow) in y[r * n..(r + 1) * n].iter_mut().zip(o.w.chunks_exact(c)) {
                    *yo += o.cols.iter().zip(wrow).map(|(&col, &w)| xr[col as usize] * w).sum::<f32>();
                }
            }
        }
    }
}

fn norm_rows(x: &mut [f32], width: usize, norm: &Norm<'_>, eps: f32) {
    for row in x.chunks_exact_mut(width) {
        ops::layer_norm(row, norm.gamma, norm.beta, eps);
    }
}

impl Model<'_> {
    /// Checks ids, type ids and mask against the config.
    fn check_inputs(&self, inp: &Inputs<'_>) -> Result<(), Error> {
        let c = self.config();
        let t = inp.batch.checked_mul(inp.seq_len).ok_or(Error::BadInput {
            what: "batch × seq_len",
            index: 0,
            value: u64::MAX,
            limit: usize::MAX as u64,
        })?;
        if inp.seq_len == 0 || inp.batch == 0 {
            return Err(Error::BadInput {
                what: "sequence length and batch (empty input)",
                index: 0,
                value: 0,
                limit: 1,
            });
        }
        if inp.seq_len > c.max_position_embeddings as usize {
            return Err(Error::BadInput {
                what: "sequence length (max_position_embeddings + 1)",
                index: 0,
                value: inp.seq_len as u64,
                limit: c.max_position_embeddings as u64 + 1,
            });
        }
        let lens = [
            ("input_ids length", Some(inp.input_ids.len())),
            ("token_type_ids length", inp.token_type_ids.map(<[u32]>::len)),
            ("attention_mask length", inp.attention_mask.map(<[u32]>::len)),
        ];
        for (what, len) in lens {
            if let Some(len) = len.filter(|&l| l != t) {
                return Err(Error::BadInput { what, index: 0, value: len as u64, limit: t as u64 + 1 });
            }
        }
        if let Some((i, &id)) = inp.input_ids.iter().enumerate().find(|&(_, &id)| id >= c.vocab_size) {
            return Err(Error::BadInput { what: "token id", index: i, value: id as u64, limit: c.vocab_size as u64 });
        }
        if let Some(tt) = inp.token_type_ids
            && let Some((i, &v)) = tt.iter().enumerate().find(|&(_, &v)| v >= c.type_vocab_size)
        {
            return Err(Error::BadInput {
                what: "token type id",
                index: i,
                value: v as u64,
                limit: c.type_vocab_size as u64,
            });
        }
        if let Some(m) = inp.attention_mask
            && let Some((i, &v)) = m.iter().enumerate().find(|&(_, &v)| v > 1)
        {
            return Err(Error::BadInput { what: "attention mask value", index: i, value: v as u64, limit: 2 });
        }
        Ok(())
    }

    /// Runs the encoder over a batch, writing everything into `scratch`.
    ///
    /// `scratch` must be at least [`Model::scratch_bytes`]`(inputs.seq_len, inputs.batch)`
    /// long. Nothing is allocated.
    pub fn encode<'s>(&self, inputs: &Inputs<'_>, scratch: &'s mut [u8]) -> Result<Encoded<'s>, Error> {
        self.encode_observed(inputs, scratch, &mut NoObserver)
    }

    /// [`Model::encode`], reporting every GEMM and layer output to `obs`.
    pub fn encode_observed<'s, O: Observer>(
        &self,
        inputs: &Inputs<'_>,
        scratch: &'s mut [u8],
        obs: &mut O,
    ) -> Result<Encoded<'s>, Error> {
        self.check_inputs(inputs)?;
        let c: ModelConfig = *self.config();
        let (b, s) = (inputs.batch, inputs.seq_len);
        let plan = Plan::new(&c, s, b);
        let r = plan.carve(&c, s, scratch)?;
        let t = plan.tokens;
        let (e, h) = (c.embedding_size as usize, c.hidden_size as usize);
        let w = &self.weights;
        let eps = c.layer_norm_eps;
        let mut work = r.work;

        // Embeddings: word + token type + position, then LayerNorm (AlbertEmbeddings).
        for (tok, row) in r.emb.chunks_exact_mut(e).enumerate() {
            w.word.row_into(inputs.input_ids[tok] as usize, row);
            let tt = inputs.token_type_ids.map_or(0, |v| v[tok]) as usize;
            w.token_type.add_row_into(tt, row);
            w.position.add_row_into(tok % s, row);
        }
        norm_rows(r.emb, e, &w.emb_norm, eps);
        linear(r.emb, t, &w.mapping_in, r.hidden, &mut work);
        obs.gemm(Site { gemm: Gemm::MappingIn, layer: 0, iteration: 0 }, r.emb, r.hidden, t);

        let inner = c.inner_group_num as usize;
        for it in 0..c.num_hidden_layers {
            let g = ModelConfig::group_of_iteration(it, c.num_hidden_layers, c.num_hidden_groups);
            for (j, layer) in w.layers[g * inner..(g + 1) * inner].iter().enumerate() {
                let bufs = LayerBufs {
                    attn: &mut *r.attn,
                    q: &mut *r.q,
                    k: &mut *r.k,
                    v: &mut *r.v,
                    ctx: &mut *r.ctx,
                    ffn: &mut *r.ffn,
                    probs: &mut *r.probs,
                };
                let at = Site { gemm: Gemm::Query, layer: g * inner + j, iteration: it };
                layer_forward(&c, layer, inputs, r.hidden, bufs, &mut work, at, obs);
                obs.layer(it, g * inner + j, r.hidden);
            }
        }
        Ok(Encoded { hidden: r.hidden, work, batch: b, seq_len: s, hidden_size: h })
    }
}

struct LayerBufs<'x> {
    attn: &'x mut [f32],
    q: &'x mut [f32],
    k: &'x mut [f32],
    v: &'x mut [f32],
    ctx: &'x mut [f32],
    ffn: &'x mut [f32],
    probs: &'x mut [f32],
}

/// One `AlbertLayer`: attention with residual and LayerNorm, then FFN with residual and
/// LayerNorm. Updates `hidden` in place.
#[allow(clippy::too_many_arguments)]
fn layer_forward<O: Observer>(
    c: &ModelConfig,
    l: &Layer<'_>,
    inp: &Inputs<'_>,
    hidden: &mut [f32],
    x: LayerBufs<'_>,
    work: &mut Work<'_>,
    at: Site,
    obs: &mut O,
) {
    let site = |gemm| Site { gemm, ..at };
    let (b, s) = (inp.batch, inp.seq_len);
    let t = b * s;
    let h = c.hidden_size as usize;
    let nh = c.num_attention_heads as usize;
    let d = c.head_dim();
    let scale = 1.0 / libm::sqrtf(d as f32);

    linear(hidden, t, &l.query, x.q, work);
    obs.gemm(site(Gemm::Query), hidden, x.q, t);
    linear(hidden, t, &l.key, x.k, work);
    obs.gemm(site(Gemm::Key), hidden, x.k, t);
    linear(hidden, t, &l.value, x.v, work);
    obs.gemm(site(Gemm::Value), hidden, x.v, t);

    for bi in 0..b {
        let base = bi * s;
        for head in 0..nh {
            let col = head * d;
            // The head's keys and values of token j start at `j·h` in these slices.
            let keys = &x.k[base * h + col..];
            let values = &x.v[base * h + col..];
            let mask = inp.attention_mask.map(|m| &m[base..base + s]);
            for i in 0..s {
                let qi = &x.q[(base + i) * h + col..][..d];
                // transformers adds finfo(float32).min where the mask is 0.
                attention::attention_scores(qi, keys, h, scale, mask, &mut x.probs[..s]);
                ops::softmax(&mut x.probs[..s]);
                let out = &mut x.ctx[(base + i) * h + col..][..d];
                attention::attention_context(&x.probs[..s], values, h, out);
            }
        }
    }

    linear(x.ctx, t, &l.dense, x.attn, work);
    obs.gemm(site(Gemm::Dense), x.ctx, x.attn, t);
    x.attn.iter_mut().zip(hidden.iter()).for_each(|(a, &hv)| *a += hv);
    norm_rows(x.attn, h, &l.attn_norm, c.layer_norm_eps);

    linear(x.attn, t, &l.ffn, x.ffn, work);
    obs.gemm(site(Gemm::Ffn), x.attn, x.ffn, t);
    ops::activate(x.ffn, c.hidden_act);
    linear(x.ffn, t, &l.ffn_output, hidden, work);
    obs.gemm(site(Gemm::FfnOutput), x.ffn, hidden, t);
    hidden.iter_mut().zip(x.attn.iter()).for_each(|(hv, &a)| *hv += a);
    norm_rows(hidden, h, &l.out_norm, c.layer_norm_eps);
}
