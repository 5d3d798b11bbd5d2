//! The `quantize` binary's own failures: each exits non-zero with the reason on stderr and
//! leaves no blob (or the previous one) behind. (`quantize` followed by `albert`:
//! tools/tests/cli.rs and tools/tests/tokenize_cli.rs.)

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures").join(name)
}

fn quantize(dir: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_quantize")).arg(dir).arg("-o").arg(out).args(extra).output().unwrap()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn text(o: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Copies a fixture checkpoint so a test can damage it.
fn copy_fixture(name: &str, to: &Path) {
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture(name).join(f), to.join(f)).unwrap();
    }
}

#[test]
fn pytorch_bin_only_directory_says_how_to_convert() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("albert_model").join("config.json"), tmp.path().join("config.json")).unwrap();
    std::fs::write(tmp.path().join("pytorch_model.bin"), b"not really").unwrap();
    let o = quantize(tmp.path(), &tmp.path().join("x.albq"), &[]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("pytorch_model.bin") && e.contains("save_pretrained"), "{e}");
    assert!(!tmp.path().join("x.albq").exists());
}

#[test]
fn shape_disagreeing_with_config_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    copy_fixture("albert_model", tmp.path());
    let cfg_path = tmp.path().join("config.json");
    let mut cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
    cfg["intermediate_size"] = 100.into();
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let o = quantize(tmp.path(), &tmp.path().join("x.albq"), &[]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("ffn.weight") && e.contains("shape"), "{e}");
}

#[test]
fn unsupported_activation_and_model_type_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    copy_fixture("albert_model", tmp.path());
    let cfg_path = tmp.path().join("config.json");
    let orig: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
    for (key, val, needle) in [("hidden_act", "mish_v9", "hidden_act"), ("model_type", "bert", "model_type")] {
        let mut cfg = orig.clone();
        cfg[key] = val.into();
        std::fs::write(&cfg_path, cfg.to_string()).unwrap();
        let o = quantize(tmp.path(), &tmp.path().join("x.albq"), &[]);
        assert!(!o.status.success());
        assert!(stderr(&o).contains(needle), "{}", stderr(&o));
    }
}

#[test]
fn failed_quantize_leaves_existing_blob_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("keep.albq");
    std::fs::write(&out, b"previous contents").unwrap();
    let o = quantize(&tmp.path().join("no-such-dir"), &out, &[]);
    assert!(!o.status.success());
    assert_eq!(std::fs::read(&out).unwrap(), b"previous contents");
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 1, "temp files left: {leftovers:?}");
}

#[test]
fn quantize_refuses_a_tokenizer_larger_than_the_vocabulary() {
    let tmp = tempfile::tempdir().unwrap();
    let blob = tmp.path().join("t.albq");
    let small = fixture("albert_model");
    let o = quantize(&small, &blob, &["-q", "--tokenizer", fixture("tokenizer").to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(text(&o).contains("4000 pieces but the model's vocab_size is 300"), "{}", text(&o));
}

#[test]
fn activation_widths_by_name() {
    // `--act7 all` gives every int8 linear 7-bit activations; a linear named by both
    // `--act7` and `--act16` is refused with its name.
    let tmp = tempfile::tempdir().unwrap();
    let blob = tmp.path().join("t.albq");
    let o = quantize(&fixture("albert_model"), &blob, &["-q", "--nearest-rounding", "--act7", "all"]);
    assert!(o.status.success(), "{}", text(&o));
    let bytes = std::fs::read(&blob).unwrap();
    let parsed = albert_engine::format::Blob::parse(&bytes).unwrap();
    let codes: Vec<u8> = parsed.tensors().filter(|t| t.scales.is_some()).map(|t| t.quant).collect();
    assert!(!codes.is_empty() && codes.iter().all(|&q| q == albert_engine::format::quant::PER_ROW_SYMMETRIC_A7));
    let o = quantize(&fixture("albert_model"), &blob, &["-q", "--act7", "all", "--act16", "ffn_output"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("ffn_output.weight` is named by both --act16 and --act7"), "{}", text(&o));
}
