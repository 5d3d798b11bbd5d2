//! `quantize` packs the tokenizer of a checkpoint directory; `albert tokenize` prints what
//! `AlbertTokenizerFast` gives (the first corpus cases of `tests/fixtures/tokenizer/`).
//! (quantize refusing a tokenizer: tools/quantize/tests/cli.rs.)

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tokenizer")
}

/// `quantize -q DIR -o OUT EXTRA...` (in-process), returning its stdout.
fn quantize(dir: &Path, out: &Path, extra: &[&str]) -> String {
    common::quantize(dir, out, &[&["-q"], extra].concat())
}

fn albert(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_albert")).args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn quantize_packs_tokenizer_and_albert_tokenize_matches_transformers() {
    let tmp = tempfile::tempdir().unwrap();
    let blob = tmp.path().join("t.albq");
    let summary = quantize(&fixture(), &blob, &[]);
    assert!(summary.contains("tokenizer (4000 pieces"), "{summary}");
    let g: Value = serde_json::from_str(&std::fs::read_to_string(fixture().join("goldens.json")).unwrap()).unwrap();
    let blob_s = blob.to_str().unwrap();
    let mut checked = 0;
    for case in g["cases"].as_array().unwrap() {
        let want = &case["fast"];
        if want.get("error").is_some() {
            continue;
        }
        let mut args = vec!["tokenize", "--model", blob_s, "--json"];
        let ml;
        if let Some(m) = case.get("max_length") {
            ml = m.to_string();
            args.extend(["--max-length", &ml, "--truncation"]);
            args.push(match case["truncation"].as_str().unwrap() {
                "only_first" => "only-first",
                "only_second" => "only-second",
                _ => "longest-first",
            });
            if case["padding"].as_bool() == Some(true) {
                args.extend(["--padding", "max-length"]);
            }
        }
        if let Some(p) = case.get("pair").and_then(Value::as_str) {
            args.extend(["--pair", p]);
        }
        let t = case["text"].as_str().unwrap();
        if t.contains('\0') || case.get("pair").and_then(Value::as_str).is_some_and(|p| p.contains('\0')) {
            continue; // not passable as a command-line argument
        }
        args.extend(["--", t]);
        let o = albert(&args);
        assert!(o.status.success(), "{t:?}: {}", text(&o));
        let got: Value = serde_json::from_slice(&o.stdout).unwrap();
        for k in ["input_ids", "token_type_ids", "attention_mask", "offsets"] {
            assert_eq!(got[k], want[k], "{k} of {t:?}");
        }
        let keys: Vec<&String> = got.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 5);
        checked += 1;
        if checked == 40 {
            break;
        }
    }
    assert_eq!(checked, 40);
}

#[test]
fn tokenize_refuses_a_blob_without_tokenizer_and_explains() {
    let tmp = tempfile::tempdir().unwrap();
    let blob = tmp.path().join("t.albq");
    quantize(&fixture(), &blob, &["--no-tokenizer"]);
    let o = albert(&["tokenize", "--model", blob.to_str().unwrap(), "hello"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("has no tokenizer"), "{}", text(&o));
}

#[test]
fn sentencepiece_mode_gives_the_slow_tokenizers_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let blob = tmp.path().join("t.albq");
    quantize(&fixture(), &blob, &["--tokenizer-mode", "sentencepiece"]);
    let g: Value = serde_json::from_str(&std::fs::read_to_string(fixture().join("goldens.json")).unwrap()).unwrap();
    let mut differs = 0;
    for case in g["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c.get("pair").is_none() && c.get("max_length").is_none())
        .take(60)
    {
        let t = case["text"].as_str().unwrap();
        if t.contains('\0') {
            continue;
        }
        let o = albert(&["tokenize", "--model", blob.to_str().unwrap(), "--json", "--", t]);
        assert!(o.status.success(), "{t:?}: {}", text(&o));
        let got: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(got["input_ids"], case["slow_input_ids"], "{t:?}");
        differs += (got["input_ids"] != case["fast"]["input_ids"]) as usize;
    }
    assert!(differs > 0, "the corpus should show cases where slow and fast differ");
}
