//! A full forward pass and every head on tiny valid blobs (`albert_fuzz::forward_models`)
//! with arbitrary ids, type ids, masks, shapes, scratch sizes and head positions. Errors
//! are fine; a pass that succeeds must give finite outputs.
//!
//! Input: byte 0 the model; byte 1 flags (batch 1..=4 in bits 0-1, type ids, mask, raw
//! u32 ids, short scratch); byte 2 the sequence length; then per token an id (u16 folded
//! just past the vocabulary, or a raw u32), a type id, a mask byte; then head queries.
#![no_main]

use albert_engine::{Heads, Inputs};
use albert_fuzz::{Bytes, forward_models};
use libfuzzer_sys::fuzz_target;

fn finite(what: &str, v: &[f32]) {
    assert!(v.iter().all(|x| x.is_finite()), "{what}: non-finite output {v:?}");
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    let models = forward_models();
    let m = &models[b.u8() as usize % models.len()];
    let c = *m.config();
    let flags = b.u8();
    let batch = (flags & 3) as usize + 1;
    let seq = b.u8() as usize % (c.max_position_embeddings as usize + 3);
    let t = batch * seq;
    let (mut ids, mut types, mut mask) = (Vec::with_capacity(t), Vec::with_capacity(t), Vec::with_capacity(t));
    for _ in 0..t {
        ids.push(if flags & 16 != 0 { b.u32() } else { b.u16() as u32 % (c.vocab_size + 2) });
        types.push(b.u8() as u32 % (c.type_vocab_size + 1));
        mask.push(match b.u8() {
            0 => 0,
            255 => 2,
            _ => 1,
        });
    }
    let inputs = Inputs {
        input_ids: &ids,
        token_type_ids: (flags & 4 != 0).then_some(&types[..]),
        attention_mask: (flags & 8 != 0).then_some(&mask[..]),
        batch,
        seq_len: seq,
    };
    let mut need = m.scratch_bytes(seq, batch);
    if flags & 32 != 0 {
        need = need.saturating_sub(b.u16() as usize + 1);
    }
    let mut scratch = vec![0u8; need];
    let mut enc = match m.encode(&inputs, &mut scratch) {
        Ok(enc) => enc,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    finite("last_hidden_state", enc.last_hidden_state());
    let (h, v, labels) = (c.hidden_size as usize, c.vocab_size as usize, c.num_labels as usize);
    // Head queries: a head, a sequence index and a position, each possibly out of range.
    for _ in 0..4 {
        let (head, bi, pos) = (b.u8(), b.u8() as usize % (batch + 1), b.u8() as usize % (seq + 1));
        let wrong = head & 0x80 != 0; // an output buffer of the wrong length
        let len = |n: usize| if wrong { n + 1 } else { n };
        let r = match head % 7 {
            0 => {
                let mut o = vec![0f32; len(h)];
                m.pooler_output(&mut enc, bi, &mut o).map(|_| finite("pooler", &o))
            }
            1 => {
                let mut o = vec![0f32; len(v)];
                m.mlm_logits(&mut enc, bi, pos, &mut o).map(|_| finite("mlm", &o))
            }
            2 => {
                let mut o = vec![0f32; len(2)];
                m.sop_logits(&mut enc, bi, &mut o).map(|_| finite("sop", &o))
            }
            3 => {
                let mut o = vec![0f32; len(labels)];
                m.classify(&mut enc, bi, &mut o).map(|_| finite("classify", &o))
            }
            4 => {
                let mut o = vec![0f32; len(labels)];
                m.classify_token(&mut enc, bi, pos, &mut o).map(|_| finite("classify_token", &o))
            }
            5 => m.qa_logits(&mut enc, bi, pos).map(|(s, e)| finite("qa", &[s, e])),
            _ => m.choice_logit(&mut enc, bi).map(|s| finite("choice", &[s])),
        };
        if let Err(e) = r {
            let _ = e.to_string();
        } else if head % 7 == 1 {
            assert!(c.heads.has(Heads::MLM));
        }
    }
});
