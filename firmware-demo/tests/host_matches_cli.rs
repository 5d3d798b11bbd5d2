//! On the host, the demo (the code the firmware runs) prints exactly what the CLI's
//! fill-mask pipeline gives for the bundled blob and the demo sentences: token ids,
//! scores to 4 decimals, token strings. `qemu-test.sh` checks the same under QEMU.

use albert_engine::tokenizer::{NChar, Node, Workspace};
use albert_tools::pipelines::Pipeline;
use firmware_demo::{BUNDLED, Buffers, Clock, Demo, SENTENCES, TOP_K};

struct NoClock;

impl Clock for NoClock {
    fn now(&mut self) -> u64 {
        0
    }
    fn hz(&self) -> u64 {
        1
    }
}

#[test]
fn demo_prints_the_pipelines_predictions() {
    let demo = Demo::new(&BUNDLED.0).unwrap();
    let mut pipeline = Pipeline::new(&demo.model).unwrap();
    let cap = demo.model.config().max_position_embeddings as usize;
    let n = Workspace::chars_for(256);
    let (mut ids, mut type_ids, mut mask, mut offsets) = (vec![0; cap], vec![0; cap], vec![0; cap], vec![[0; 2]; cap]);
    let (mut chars, mut chars2, mut bytes, mut lattice) =
        (vec![NChar::EMPTY; n], vec![NChar::EMPTY; n], vec![0u8; 4 * n], vec![Node::EMPTY; 4 * n + 1]);
    let mut scratch = vec![0u8; demo.model.scratch_bytes(cap, 1)];
    let mut logits = vec![0f32; demo.model.config().vocab_size as usize];
    for text in SENTENCES.lines().filter(|l| !l.trim().is_empty()) {
        let mut bufs = Buffers {
            ids: &mut ids,
            type_ids: &mut type_ids,
            attention_mask: &mut mask,
            offsets: &mut offsets,
            workspace: Workspace { chars: &mut chars, chars2: &mut chars2, bytes: &mut bytes, lattice: &mut lattice },
            scratch: &mut scratch,
            logits: &mut logits,
        };
        let mut got = String::new();
        demo.fill_mask(text, &mut bufs, &mut NoClock, &mut got).unwrap();
        let mut want = format!("> {text}\n");
        for (m, cands) in pipeline.fill_mask(text, TOP_K).unwrap().iter().enumerate() {
            for (r, c) in cands.iter().enumerate() {
                want += &format!(
                    "mask {} top {} id {} score {:.4} token '{}'\n",
                    m + 1,
                    r + 1,
                    c.token,
                    c.score,
                    c.token_str
                );
            }
        }
        assert_eq!(got, want);
    }
}
