//! Tokenizer throughput: the engine against the `tokenizers` crate (0.19.1, what
//! `AlbertTokenizerFast` runs) on the same texts, one thread, same `tokenizer.json`.
//!
//! `cargo bench -p albert-tests --bench tokenizer`
//!
//! Texts: every single text of the committed corpus (`tests/fixtures/tokenizer/goldens.json`:
//! hard strings in many scripts, plus two long English/French texts), each encoded with
//! `[CLS]`/`[SEP]` and offsets. Both sides' ids are checked equal before timing.

use std::hint::black_box;
use std::time::Instant;

use albert_engine::Tokenizer;
use albert_engine::tokenizer::{EncodeOptions, Encoding, OwnedWorkspace};
use serde_json::Value;

fn main() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/tokenizer");
    let json = std::fs::read_to_string(dir.join("tokenizer.json")).expect("tokenizer.json");
    let spec = albert_quantize::tokenizer::from_tokenizer_json(&serde_json::from_str(&json).unwrap()).unwrap();
    let section = albert_quantize::tokenizer::build_section(&spec).unwrap();
    let ours = Tokenizer::from_section(&section).unwrap();
    let peer = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).unwrap();
    let g: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("goldens.json")).unwrap()).unwrap();
    let texts: Vec<String> = g["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c.get("pair").is_none() && c.get("max_length").is_none())
        .map(|c| c["text"].as_str().unwrap().to_string())
        .collect();
    let bytes: usize = texts.iter().map(String::len).sum();
    let longest = texts.iter().map(String::len).max().unwrap_or(0);
    let mut ws = OwnedWorkspace::new(longest);
    let cap = 4 * longest + 16;
    let (mut ids, mut types, mut mask, mut offs) = (vec![0; cap], vec![0; cap], vec![0; cap], vec![[0; 2]; cap]);
    let opts = EncodeOptions::default();
    let mut tokens = 0usize;
    for t in &texts {
        let mut out = Encoding { ids: &mut ids, type_ids: &mut types, attention_mask: &mut mask, offsets: &mut offs };
        let n = ours.encode(t, None, &opts, &mut ws.workspace(), &mut out).unwrap();
        let e = peer.encode(t.as_str(), true).unwrap();
        assert_eq!(&ids[..n], e.get_ids(), "{t:?}");
        tokens += n;
    }
    let rounds = 40;
    let time = |f: &mut dyn FnMut()| {
        f(); // warm-up
        let t0 = Instant::now();
        for _ in 0..rounds {
            f();
        }
        t0.elapsed().as_secs_f64() / rounds as f64
    };
    let engine_s = time(&mut || {
        for t in &texts {
            let mut out =
                Encoding { ids: &mut ids, type_ids: &mut types, attention_mask: &mut mask, offsets: &mut offs };
            black_box(ours.encode(black_box(t), None, &opts, &mut ws.workspace(), &mut out).unwrap());
        }
    });
    let peer_s = time(&mut || {
        for t in &texts {
            black_box(peer.encode(black_box(t.as_str()), true).unwrap());
        }
    });
    println!("corpus: {} texts, {} bytes, {} tokens per pass; {rounds} passes each", texts.len(), bytes, tokens);
    for (name, s) in [("albert-engine", engine_s), ("tokenizers 0.19.1", peer_s)] {
        println!(
            "{name:<18} {:>8.3} ms/pass  {:>12.0} tokens/s  {:>7.2} MB/s",
            s * 1e3,
            tokens as f64 / s,
            bytes as f64 / s / 1e6
        );
    }
    println!("ratio (engine / tokenizers tokens per second): {:.2}", peer_s / engine_s);
}
