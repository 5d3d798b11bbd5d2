//! Caller-provided working memory: how much a forward pass needs and how it is carved.

use crate::config::{Heads, ModelConfig};
use crate::error::Error;
use crate::kernels::attention::QROWS;

/// Rows of activations one int8 GEMM call takes at most (its i32 output block is
/// `GEMM_ROWS × N`); longer inputs are processed in blocks of rows. 128 rather than 64:
/// a 128-token pass streams the weights once instead of twice, 4 % faster end to end
/// (`albert bench --seq 128`, three alternating runs) for 0.8 MB more scratch.
pub(crate) const GEMM_ROWS: usize = 128;

/// Element counts of every scratch region for `batch` sequences of `seq` tokens.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Plan {
    pub tokens: usize,
    f32s: usize,
    i32s: usize,
    /// The leading i32 accumulators (a block of GEMM output rows), before the i64 ones.
    acc32: usize,
    i8s: usize,
    i16s: usize,
    probs: usize,
}

impl Plan {
    pub fn new(c: &ModelConfig, seq: usize, batch: usize) -> Plan {
        let (e, h, i) = (c.embedding_size as usize, c.hidden_size as usize, c.intermediate_size as usize);
        let t = seq.saturating_mul(batch);
        let max_k = e.max(h).max(i);
        let mut max_n = max_k.max(2).max(c.num_labels as usize);
        if c.heads.has(Heads::MLM) {
            max_n = max_n.max(c.vocab_size as usize);
        }
        // hidden, attention out, q, k, v, context: T×H each; FFN: T×I; embeddings: T×E;
        // attention, per head: QROWS rows of S probabilities and of the head's context, and
        // its S × head_dim keys transposed; per-token activation scales and centres: 2T;
        // a dequantized weight row: max K; head temporaries: H + E.
        let nh = c.num_attention_heads as usize;
        let hd = c.head_dim();
        let probs =
            nh.saturating_mul(QROWS.saturating_mul(seq.saturating_add(hd)).saturating_add(seq.saturating_mul(hd)));
        let f32s = t.saturating_mul(6 * h + i + e + 2).saturating_add(probs.saturating_add(max_k + h + e));
        // i32s holds the i32 accumulators of int8 GEMMs: a block of up to GEMM_ROWS output
        // rows of the widest hidden/FFN linear, and at least one row of any linear; then
        // max_n i64 ones for int16-activation GEMMs (2 words each, plus one word of
        // alignment slack).
        let acc32 = max_n.max(t.min(GEMM_ROWS).saturating_mul(h.max(i)));
        Plan {
            tokens: t,
            f32s,
            acc32,
            i32s: acc32.saturating_add(max_n.saturating_mul(2)).saturating_add(1),
            i8s: t.saturating_mul(max_k),
            i16s: t.saturating_mul(max_k),
            probs,
        }
    }

    /// Bytes the caller must provide (with slack to align the start).
    pub fn bytes(&self) -> usize {
        self.words().saturating_mul(4).saturating_add(4)
    }

    /// 4-byte words the regions fill once aligned.
    fn words(&self) -> usize {
        self.f32s.saturating_add(self.i32s).saturating_add(self.i16s.div_ceil(2)).saturating_add(self.i8s.div_ceil(4))
    }
}

/// The scratch regions that outlive the encoder (used by the heads).
pub(crate) struct Work<'s> {
    /// Quantized activations, up to T × max K.
    pub qx: &'s mut [i8],
    /// Per-token activation scales.
    pub qs: &'s mut [f32],
    /// Per-token activation centres.
    pub qc: &'s mut [f32],
    /// i32 accumulators: at least one row (max N), up to `GEMM_ROWS` rows of a hidden or
    /// FFN linear.
    pub acc: &'s mut [i32],
    /// One row of i64 accumulators (max N), for int16-activation GEMMs.
    pub acc64: &'s mut [i64],
    /// Activations quantized to int16, up to T × max K.
    pub qx16: &'s mut [i16],
    /// One dequantized weight row (max K).
    pub wrow: &'s mut [f32],
    /// Head temporaries.
    pub th: &'s mut [f32],
    pub te: &'s mut [f32],
}

/// All regions of one forward pass.
pub(crate) struct Regions<'s> {
    pub hidden: &'s mut [f32],
    pub attn: &'s mut [f32],
    pub q: &'s mut [f32],
    pub k: &'s mut [f32],
    pub v: &'s mut [f32],
    pub ctx: &'s mut [f32],
    pub ffn: &'s mut [f32],
    pub emb: &'s mut [f32],
    pub probs: &'s mut [f32],
    pub work: Work<'s>,
}

fn take<'s, T>(buf: &mut &'s mut [T], n: usize) -> &'s mut [T] {
    let (a, b) = core::mem::take(buf).split_at_mut(n);
    *buf = b;
    a
}

/// Splits the accumulator words: the first `acc32` as i32, the rest as i64 (8-byte aligned).
fn split_acc(acc: &mut [i32], acc32: usize) -> (&mut [i32], &mut [i64]) {
    let (a, b) = acc.split_at_mut(acc32);
    let (_, b64, _) = bytemuck::pod_align_to_mut::<i32, i64>(b);
    (a, b64)
}

impl Plan {
    /// Splits `bytes` into typed regions; errors when it is too small.
    pub fn carve<'s>(&self, c: &ModelConfig, bytes: &'s mut [u8]) -> Result<Regions<'s>, Error> {
        let found = bytes.len();
        let needed = self.bytes();
        if found < needed {
            return Err(Error::ScratchTooSmall { needed, found });
        }
        let (e, h, i) = (c.embedding_size as usize, c.hidden_size as usize, c.intermediate_size as usize);
        let t = self.tokens;
        let max_k = e.max(h).max(i);
        // Align to 4 for f32/i32; at most 3 bytes lost, covered by the slack.
        let (_, body, _) = bytemuck::pod_align_to_mut::<u8, f32>(bytes);
        let mut floats: &mut [f32] = body;
        if floats.len() < self.words() {
            return Err(Error::ScratchTooSmall { needed, found });
        }
        let hidden = take(&mut floats, t * h);
        let attn = take(&mut floats, t * h);
        let q = take(&mut floats, t * h);
        let k = take(&mut floats, t * h);
        let v = take(&mut floats, t * h);
        let ctx = take(&mut floats, t * h);
        let ffn = take(&mut floats, t * i);
        let emb = take(&mut floats, t * e);
        let probs = take(&mut floats, self.probs);
        let qs = take(&mut floats, t);
        let qc = take(&mut floats, t);
        let wrow = take(&mut floats, max_k);
        let th = take(&mut floats, h);
        let te = take(&mut floats, e);
        let acc_f = take(&mut floats, self.i32s);
        let acc: &mut [i32] = bytemuck::cast_slice_mut(acc_f);
        let qx16_f = take(&mut floats, self.i16s.div_ceil(2));
        let qx16: &mut [i16] = &mut bytemuck::cast_slice_mut(qx16_f)[..self.i16s];
        let rest: &mut [u8] = bytemuck::cast_slice_mut(floats);
        let qx: &mut [i8] = bytemuck::cast_slice_mut(&mut rest[..self.i8s]);
        // Split the accumulators: i32 view for int8 GEMMs, i64 view (same memory, used at
        // other times) for int16 ones. The i64 view needs 8-byte alignment.
        let (acc, acc64) = split_acc(acc, self.acc32);
        Ok(Regions {
            hidden,
            attn,
            q,
            k,
            v,
            ctx,
            ffn,
            emb,
            probs,
            work: Work { qx, qs, qc, acc, acc64, qx16, wrow, th, te },
        })
    }
}
