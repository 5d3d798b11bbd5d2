//! Caller-provided working memory: how much a forward pass needs and how it is carved.

use crate::config::{Heads, ModelConfig};
use crate::error::Error;
use crate::kernels::attention::{QROWS, keys_stride};

/// Rows of activations one int8 GEMM call takes at most (its i32 output block is
/// `GEMM_ROWS × N`); longer inputs are processed in blocks of rows. 128 rather than 64:
/// a 128-token pass streams the weights once instead of twice, 4 % faster end to end
/// (`albert bench --seq 128`, three alternating runs) for 0.8 MB more scratch.
pub(crate) const GEMM_ROWS: usize = 128;

/// Element counts of every scratch region for `batch` sequences of `seq` tokens.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Plan {
    pub tokens: usize,
    /// Hidden, intermediate and embedding widths, and the widest of them.
    h: usize,
    i: usize,
    e: usize,
    max_k: usize,
    i32s: usize,
    /// The leading i32 accumulators (a block of GEMM output rows), before the i64 ones.
    acc32: usize,
    i8s: usize,
    i16s: usize,
    probs: usize,
}

/// 4-byte words in a cache line. Every region starts on a line: a 32- or 64-byte vector
/// load from a region that starts mid-line straddles two lines every other time or every
/// time, as the `avx2` kernel's stack panel did (`kernels/README.md`, "Panel alignment").
const LINE_WORDS: usize = 16;

/// Alignment of the start of the regions, in bytes.
const LINE: usize = 4 * LINE_WORDS;

impl Plan {
    pub fn new(c: &ModelConfig, seq: usize, batch: usize) -> Plan {
        let (e, h, i) = (c.embedding_size as usize, c.hidden_size as usize, c.intermediate_size as usize);
        let t = seq.saturating_mul(batch);
        let max_k = e.max(h).max(i);
        let mut max_n = max_k.max(2).max(c.num_labels as usize);
        if c.heads.has(Heads::MLM) {
            max_n = max_n.max(c.vocab_size as usize);
        }
        // Attention, per head: QROWS rows of S probabilities and of the head's context, its
        // keys (transposed, head_dim rows of `keys_stride(S)`, or packed) and its S ×
        // head_dim values (packed).
        let nh = c.num_attention_heads as usize;
        let hd = c.head_dim();
        let probs = nh.saturating_mul(
            QROWS
                .saturating_mul(seq.saturating_add(hd))
                .saturating_add(seq.saturating_mul(hd))
                .saturating_add(keys_stride(seq).saturating_mul(hd)),
        );
        // i32s holds the i32 accumulators of int8 GEMMs: a block of up to GEMM_ROWS output
        // rows of the widest hidden/FFN linear, and at least one row of any linear; then
        // max_n i64 ones for int16-activation GEMMs (2 words each, plus one word of
        // alignment slack).
        let acc32 = max_n.max(t.min(GEMM_ROWS).saturating_mul(h.max(i)));
        Plan {
            tokens: t,
            h,
            i,
            e,
            max_k,
            acc32,
            i32s: acc32.saturating_add(max_n.saturating_mul(2)).saturating_add(1),
            i8s: t.saturating_mul(max_k),
            i16s: t.saturating_mul(max_k),
            probs,
        }
    }

    /// Bytes the caller must provide (with slack to align the start to a line).
    pub fn bytes(&self) -> usize {
        self.words().saturating_mul(4).saturating_add(LINE - 1)
    }

    /// 4-byte words of each region, in the order `carve` takes them: hidden, attention out,
    /// q, k, v, context (T×H each); FFN (T×I); embeddings (T×E); attention probabilities
    /// and transposed keys; per-token activation scales and centres (T each); a dequantized
    /// weight row (max K); head temporaries (H, E); accumulators; int16 and int8
    /// activations (T × max K each).
    fn region_words(&self) -> [usize; 17] {
        let (t, h) = (self.tokens, self.h);
        let th = t.saturating_mul(h);
        [
            th,
            th,
            th,
            th,
            th,
            th,
            t.saturating_mul(self.i),
            t.saturating_mul(self.e),
            self.probs,
            t,
            t,
            self.max_k,
            h,
            self.e,
            self.i32s,
            self.i16s.div_ceil(2),
            self.i8s.div_ceil(4),
        ]
    }

    /// 4-byte words the regions fill, each rounded up to whole lines.
    fn words(&self) -> usize {
        self.region_words().iter().fold(0usize, |sum, &w| sum.saturating_add(lines(w)))
    }
}

/// `words` rounded up to whole cache lines.
fn lines(words: usize) -> usize {
    words.saturating_add(LINE_WORDS - 1) / LINE_WORDS * LINE_WORDS
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

/// The next `n` elements of `buf`; the region after them starts on the next line.
fn take<'s>(buf: &mut &'s mut [f32], n: usize) -> &'s mut [f32] {
    let (a, b) = core::mem::take(buf).split_at_mut(lines(n));
    *buf = b;
    &mut a[..n]
}

/// Splits the accumulator words: the first `acc32` as i32, the rest as i64 (8-byte aligned).
fn split_acc(acc: &mut [i32], acc32: usize) -> (&mut [i32], &mut [i64]) {
    let (a, b) = acc.split_at_mut(acc32);
    let (_, b64, _) = bytemuck::pod_align_to_mut::<i32, i64>(b);
    (a, b64)
}

impl Plan {
    /// Splits `bytes` into typed regions; errors when it is too small.
    pub fn carve<'s>(&self, bytes: &'s mut [u8]) -> Result<Regions<'s>, Error> {
        let found = bytes.len();
        let needed = self.bytes();
        if found < needed {
            return Err(Error::ScratchTooSmall { needed, found });
        }
        let [hidden, attn, q, k, v, ctx, ffn, emb, probs, qs, qc, wrow, th, te, acc_w, qx16_w, qx_w] =
            self.region_words();
        // Start on a line; at most LINE - 1 bytes lost, covered by the slack.
        let start = bytes.as_ptr().align_offset(LINE).min(found);
        let (_, body, _) = bytemuck::pod_align_to_mut::<u8, f32>(&mut bytes[start..]);
        let mut floats: &mut [f32] = body;
        if floats.len() < self.words() {
            return Err(Error::ScratchTooSmall { needed, found });
        }
        let hidden = take(&mut floats, hidden);
        let attn = take(&mut floats, attn);
        let q = take(&mut floats, q);
        let k = take(&mut floats, k);
        let v = take(&mut floats, v);
        let ctx = take(&mut floats, ctx);
        let ffn = take(&mut floats, ffn);
        let emb = take(&mut floats, emb);
        let probs = take(&mut floats, probs);
        let qs = take(&mut floats, qs);
        let qc = take(&mut floats, qc);
        let wrow = take(&mut floats, wrow);
        let th = take(&mut floats, th);
        let te = take(&mut floats, te);
        let acc: &mut [i32] = bytemuck::cast_slice_mut(take(&mut floats, acc_w));
        let qx16: &mut [i16] = &mut bytemuck::cast_slice_mut(take(&mut floats, qx16_w))[..self.i16s];
        let qx: &mut [i8] = &mut bytemuck::cast_slice_mut(take(&mut floats, qx_w))[..self.i8s];
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Activation, DType};

    /// Odd widths and lengths, so that no region's size is a multiple of a line by chance.
    fn config() -> ModelConfig {
        ModelConfig {
            vocab_size: 101,
            embedding_size: 13,
            hidden_size: 36,
            num_hidden_layers: 2,
            num_hidden_groups: 1,
            inner_group_num: 1,
            num_attention_heads: 3,
            intermediate_size: 37,
            max_position_embeddings: 64,
            type_vocab_size: 2,
            hidden_act: Activation::GeluNew,
            layer_norm_eps: 1e-12,
            num_labels: 3,
            heads: Heads(Heads::MLM),
            weight_dtype: DType::I8,
            pad_token_id: 0,
            bos_token_id: 2,
            eos_token_id: 3,
            activation_scheme: 2,
        }
    }

    #[test]
    fn every_region_starts_on_a_line_at_any_buffer_offset() {
        let plan = Plan::new(&config(), 7, 2);
        let mut buf = vec![0u8; plan.bytes() + LINE];
        for off in [0, 1, 3, 4, 17, 32, 63] {
            let r = plan.carve(&mut buf[off..off + plan.bytes()]).expect("the reported size is enough");
            let w = &r.work;
            let starts = [
                r.hidden.as_ptr() as usize,
                r.attn.as_ptr() as usize,
                r.q.as_ptr() as usize,
                r.k.as_ptr() as usize,
                r.v.as_ptr() as usize,
                r.ctx.as_ptr() as usize,
                r.ffn.as_ptr() as usize,
                r.emb.as_ptr() as usize,
                r.probs.as_ptr() as usize,
                w.qs.as_ptr() as usize,
                w.qc.as_ptr() as usize,
                w.wrow.as_ptr() as usize,
                w.th.as_ptr() as usize,
                w.te.as_ptr() as usize,
                w.acc.as_ptr() as usize,
                w.qx16.as_ptr() as usize,
                w.qx.as_ptr() as usize,
            ];
            for (n, s) in starts.iter().enumerate() {
                assert_eq!(s % LINE, 0, "region {n} at buffer offset {off}");
            }
            // The regions do not overlap and stay inside the buffer.
            let end = w.qx.as_ptr() as usize + w.qx.len();
            assert!(end <= buf[off..].as_ptr() as usize + plan.bytes());
            assert!(starts.windows(2).all(|p| p[0] < p[1]));
        }
        // One byte less is refused.
        assert!(matches!(plan.carve(&mut buf[..plan.bytes() - 1]), Err(Error::ScratchTooSmall { .. })));
    }
}
