//! One memory-mapped model shared by 8 threads, each running its own inputs many times:
//! every result must equal the single-threaded one, bit for bit.
#![allow(clippy::result_large_err)] // the engine's Error, see engine/src/lib.rs

mod common;

use albert_engine::{Inputs, Model};

/// A blob file removed when the test ends, pass or fail.
struct TempBlob(std::path::PathBuf);

impl Drop for TempBlob {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn eight_threads_on_one_mapped_model_match_the_single_threaded_results() {
    let path = std::env::temp_dir().join(format!("albert-concurrency-{}.albq", std::process::id()));
    std::fs::write(&path, common::blob()).expect("write the test blob");
    let file = TempBlob(path);
    let mapped = Model::open(&file.0).expect("mapped blob loads");
    let m = mapped.model();
    // Per thread: a different length, ids and segments, and the sequence-classification
    // logits after the encoder.
    let inputs: Vec<(Vec<u32>, Vec<u32>)> = (0..8u32)
        .map(|t| {
            let n = 2 + t as usize;
            let ids = (0..n as u32).map(|i| (i * 7 + t * 3) % 20).collect();
            let types = (0..n as u32).map(|i| u32::from(i >= n as u32 / 2)).collect();
            (ids, types)
        })
        .collect();
    let run = |(ids, types): &(Vec<u32>, Vec<u32>)| {
        let mut scratch = vec![0u8; m.scratch_bytes(ids.len(), 1)];
        let inp = Inputs { token_type_ids: Some(types), ..Inputs::single(ids) };
        let mut enc = m.encode(&inp, &mut scratch).expect("valid input runs");
        let hidden = enc.last_hidden_state().to_vec();
        let mut logits = vec![0f32; 3];
        m.classify(&mut enc, 0, &mut logits).expect("classifier runs");
        (hidden, logits)
    };
    let want: Vec<_> = inputs.iter().map(run).collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let (inputs, want, run) = (&inputs, &want, &run);
                s.spawn(move || {
                    for round in 0..20 {
                        // Each thread walks all inputs, starting at its own, so that
                        // different inputs run at the same time.
                        let k = (t + round) % inputs.len();
                        assert_eq!(run(&inputs[k]), want[k], "thread {t}, round {round}, input {k}");
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("no thread panicked");
        }
    });
}
