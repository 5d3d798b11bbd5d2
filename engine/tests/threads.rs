//! A model on a thread pool gives the same bits as on one thread, also when several
//! callers share the pool (their runs take turns). The tiny test model splits rows and
//! heads; the base-shaped models (whose GEMMs split into column parts too) are checked in
//! `tests/tests/threads.rs`. The pool and the split views themselves run under Miri in
//! their unit tests (`threads.rs`, `par.rs`); a forward pass cannot (libm's `sqrtf` is
//! inline assembly on x86_64).
#![allow(clippy::result_large_err)] // the engine's Error, see engine/src/lib.rs

mod common;

use std::sync::Arc;

use albert_engine::threads::Pool;
use albert_engine::{Inputs, Model};

type Outputs = (Vec<u32>, Vec<u32>);

fn run(m: &Model<'_>, ids: &[u32], batch: usize) -> Outputs {
    let seq = ids.len() / batch;
    // The second sequence is padded: its last two positions are masked.
    let mask: Vec<u32> = (0..ids.len()).map(|i| u32::from(i < seq || i % seq < seq.saturating_sub(2))).collect();
    let inp = Inputs { input_ids: ids, token_type_ids: None, attention_mask: Some(&mask), batch, seq_len: seq };
    let mut scratch = vec![0u8; m.scratch_bytes(seq, batch)];
    let mut enc = m.encode(&inp, &mut scratch).expect("valid input runs");
    let hidden = enc.last_hidden_state().iter().map(|v| v.to_bits()).collect();
    let mut logits = vec![0f32; 3];
    m.classify(&mut enc, batch - 1, &mut logits).expect("classifier runs");
    (hidden, logits.iter().map(|v| v.to_bits()).collect())
}

#[test]
fn pools_of_2_3_and_8_threads_match_one_thread_bit_for_bit() {
    let b = common::blob();
    let a = common::aligned(&b);
    let mut model = Model::from_bytes(&bytemuck::cast_slice(&a)[..b.len()]).expect("blob loads");
    let inputs: Vec<(Vec<u32>, usize)> = [(1, 1), (5, 1), (9, 2), (4, 2)]
        .iter()
        .map(|&(seq, batch)| ((0..(seq * batch) as u32).map(|i| (i * 7 + 3) % 20).collect(), batch))
        .collect();
    let want: Vec<Outputs> = inputs.iter().map(|(ids, b)| run(&model, ids, *b)).collect();
    for threads in [2, 3, 8] {
        model.set_pool(Some(Arc::new(Pool::new(threads).expect("threads start"))));
        for ((ids, b), w) in inputs.iter().zip(&want) {
            assert!(run(&model, ids, *b) == *w, "{threads} threads, {} tokens", ids.len());
        }
        // Two callers on the same pool at once.
        std::thread::scope(|s| {
            for t in 0..2 {
                let (model, inputs, want) = (&model, &inputs, &want);
                s.spawn(move || {
                    for k in 0..inputs.len() {
                        let k = (k + t) % inputs.len();
                        assert!(run(model, &inputs[k].0, inputs[k].1) == want[k], "caller {t}, input {k}");
                    }
                });
            }
        });
    }
}
