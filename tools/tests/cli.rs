//! `quantize` then the `albert forward` binary, end to end, on the committed fixtures
//! (quantize's own errors: tools/quantize/tests/cli.rs).

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::quantize;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(name)
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn quantize_then_forward_prints_transformers_names() {
    let tmp = tempfile::tempdir().unwrap();
    let blob = tmp.path().join("m.albq");
    let summary = quantize(&fixture("pretraining"), &blob, &[]);
    assert!(summary.contains("embeddings.word_embeddings.weight") && summary.contains("int8"), "{summary}");
    assert!(summary.contains("wrote"), "{summary}");

    let o = Command::new(env!("CARGO_BIN_EXE_albert"))
        .args(["forward", "--model"])
        .arg(&blob)
        .args([
            "--ids",
            "2,31,7,3",
            "--ids",
            "2,5,3",
            "--type-ids",
            "0,0,1,1",
            "--type-ids",
            "0,0,0",
            "--mask-positions",
            "1,2",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    let first = &lines[0];
    assert_eq!(first["last_hidden_state"].as_array().unwrap().len(), 4);
    assert_eq!(first["last_hidden_state"][0].as_array().unwrap().len(), 64);
    assert_eq!(first["pooler_output"].as_array().unwrap().len(), 64);
    assert_eq!(first["prediction_logits"].as_array().unwrap().len(), 2);
    assert_eq!(first["prediction_logits"][0].as_array().unwrap().len(), 320);
    assert_eq!(first["sop_logits"].as_array().unwrap().len(), 2);
    assert_eq!(lines[1]["last_hidden_state"].as_array().unwrap().len(), 3);
}

#[test]
fn forward_matches_golden_f32() {
    // The first case of the QA fixture through the CLI, against transformers' numbers.
    let tmp = tempfile::tempdir().unwrap();
    let blob = tmp.path().join("qa.albq");
    quantize(&fixture("qa"), &blob, &["--dtype", "f32", "-q"]);
    let g: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("qa").join("goldens.json")).unwrap()).unwrap();
    let case =
        g["cases"].as_array().unwrap().iter().find(|c| c["name"].as_str().unwrap().starts_with("single_len")).unwrap();
    let ids: Vec<String> = case["input_ids"][0].as_array().unwrap().iter().map(|v| v.to_string()).collect();
    let o = Command::new(env!("CARGO_BIN_EXE_albert"))
        .args(["forward", "--json", "--model"])
        .arg(&blob)
        .args(["--ids", &ids.join(",")])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let st = std::fs::read(fixture("qa").join("goldens.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&st).unwrap();
    let name = case["name"].as_str().unwrap();
    let gold = st.tensor(&format!("{name}/start_logits")).unwrap();
    let gold: Vec<f32> = gold.data().chunks(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
    let mine: Vec<f32> = out["start_logits"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
    assert_eq!(mine.len(), gold.len());
    let scale = gold.iter().fold(0f32, |m, x| m.max(x.abs()));
    for (a, b) in mine.iter().zip(&gold) {
        assert!((a - b).abs() <= 1e-4 * scale, "{a} vs {b}");
    }
}

#[test]
fn forward_rejects_bad_input_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let blob = tmp.path().join("m.albq");
    quantize(&fixture("albert_model"), &blob, &["-q"]);
    for ids in ["2,99999,3", "2,x,3", ""] {
        let o = Command::new(env!("CARGO_BIN_EXE_albert"))
            .args(["forward", "--model"])
            .arg(&blob)
            .args(["--ids", ids])
            .output()
            .unwrap();
        assert!(!o.status.success(), "ids {ids:?} accepted");
        let e = stderr(&o);
        assert!(e.starts_with("albert: error:") && e.trim_end().lines().count() == 1, "{e}");
    }
    // A corrupted blob.
    let mut b = std::fs::read(&blob).unwrap();
    let n = b.len();
    b[n / 2] ^= 1;
    std::fs::write(&blob, &b).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_albert"))
        .args(["forward", "--model"])
        .arg(&blob)
        .args(["--ids", "2,3"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("checksum"), "{}", stderr(&o));
}

/// `albert eval`: against transformers' goldens an f32 blob agrees to rounding and an int8
/// blob less closely; against a reference blob on ids from a file, the int8 blob is
/// compared over exactly the tokens of those ids.
#[test]
fn eval_compares_with_goldens_and_with_a_reference_blob() {
    let tmp = tempfile::tempdir().unwrap();
    let (f32b, i8b) = (tmp.path().join("f.albq"), tmp.path().join("q.albq"));
    quantize(&fixture("albert_model"), &f32b, &["-q", "--dtype", "f32"]);
    quantize(&fixture("albert_model"), &i8b, &["-q"]);
    let eval = |args: &[&std::ffi::OsStr]| -> serde_json::Value {
        let o = Command::new(env!("CARGO_BIN_EXE_albert")).arg("eval").args(args).arg("--json").output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["report"].clone()
    };
    let goldens = fixture("albert_model");
    let f = eval(&["--model".as_ref(), f32b.as_os_str(), "--goldens".as_ref(), goldens.as_os_str()]);
    let q = eval(&["--model".as_ref(), i8b.as_os_str(), "--goldens".as_ref(), goldens.as_os_str()]);
    let num = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap_or_else(|| panic!("no `{k}` in {v}"));
    assert!(num(&f, "hidden_cos_min") > 0.99999, "{f}");
    assert!(num(&q, "hidden_cos_mean") > 0.999 && num(&q, "hidden_cos_min") < num(&f, "hidden_cos_min"), "{q}");
    assert_eq!(f["tokens"], q["tokens"]);
    let ids = tmp.path().join("ids.txt");
    std::fs::write(&ids, "2,10,20,30,3\n2 7 3\n").unwrap();
    let r = eval(&[
        "--model".as_ref(),
        i8b.as_os_str(),
        "--reference".as_ref(),
        f32b.as_os_str(),
        "--ids-file".as_ref(),
        ids.as_os_str(),
    ]);
    assert_eq!(r["tokens"], 8, "{r}");
    assert!(num(&r, "hidden_cos_mean") > 0.999, "{r}");
}
