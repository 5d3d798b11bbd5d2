//! One blob, one result: `albert forward --json` prints the same bytes whichever GEMM
//! kernel runs it (`ALBERT_KERNEL`, every kernel this CPU has), for an int8 blob with the
//! default int8 activations and for one packed with 7-bit activations (`quantize --act7
//! all`, which the `avx2` kernel multiplies with `vpmaddubsw`). The kernels' own
//! conformance suite (`engine/tests/kernels.rs`) checks each GEMM; this checks that a whole
//! forward pass, float loops and thread split included, does not depend on the CPU.

use std::path::{Path, PathBuf};
use std::process::Command;

use albert_engine::config::DType;
use albert_quantize::{checkpoint, pack};
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `albert args` with `ALBERT_KERNEL=kernel`: its stdout, which must be a success.
fn albert(kernel: &str, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_albert"))
        .args(args)
        .env_remove("ALBERT_MODEL")
        .env("ALBERT_KERNEL", kernel)
        .output()
        .expect("spawn albert");
    assert!(out.status.success(), "ALBERT_KERNEL={kernel} albert {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn forward_is_the_same_on_every_kernel() {
    let listed = albert("scalar", &["inspect", "--kernels", "--json"]);
    let v: Value = serde_json::from_str(&listed).unwrap();
    let kernels: Vec<String> = v["available"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().into()).collect();
    assert!(kernels.len() >= 2, "only {kernels:?}: nothing to compare");
    // The trained fixture: hidden 256, FFN 1024, 12 iterations, real activations.
    let ck = checkpoint::load(&repo().join("tests/fixtures/trained_pydoc"), None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let base = pack::PackOptions { gptq: false, ..pack::PackOptions::new(DType::I8) };
    let act7 = pack::PackOptions { act7: vec![String::new()], ..base.clone() };
    let mut outputs = Vec::new();
    for (label, opts) in [("int8", base), ("act7", act7)] {
        let path = dir.path().join(format!("{label}.albq"));
        std::fs::write(&path, pack::pack_with(&ck, &opts).unwrap().0).unwrap();
        let model = path.to_str().unwrap();
        let info: Value = serde_json::from_str(&albert("scalar", &["inspect", "--model", model, "--json"])).unwrap();
        let n7 = info["quantization"]["linears_with_7bit_activations"].as_u64().unwrap();
        assert_eq!(n7 > 0, label == "act7", "{label}: {n7} linears with 7-bit activations");
        // 5, 13 and 40 tokens (row tiles of every height at the bottom edge), 1 and 2 threads.
        for n in [5usize, 13, 40] {
            let ids: Vec<String> = (0..n).map(|i| (5 + (i * 7919) % 7000).to_string()).collect();
            let ids = format!("2,{},3", ids.join(","));
            for threads in ["1", "2"] {
                let args = ["forward", "--model", model, "--ids", &ids, "--threads", threads, "--json"];
                let want = albert("scalar", &args);
                for k in &kernels {
                    assert!(
                        albert(k, &args) == want,
                        "{label}: kernel {k} differs from scalar at {n} tokens, {threads} threads"
                    );
                }
                outputs.push((label, n, threads, want));
            }
        }
    }
    // The two blobs do compute differently (7-bit activations are not int8 ones).
    let half = outputs.len() / 2;
    for (a, b) in outputs[..half].iter().zip(&outputs[half..]) {
        assert_ne!(a.3, b.3, "{:?} and {:?} gave the same output", &a.0, &b.0);
    }
}
