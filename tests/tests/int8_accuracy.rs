//! int8 fidelity of the default scheme on models with realistic activations (issue #3),
//! side by side with ONNX Runtime's `quantize_dynamic` on the same inputs
//! (`tests/fixtures/ort_baseline.json`, written by `tests/reference/ort_baseline.py`).
//! The full per-option table: `cargo run --release -p albert-tests --example int8_schemes`.

use albert_engine::Model;
use albert_engine::config::DType;
use albert_quantize::pack::PackOptions;
use albert_tests::{Fixture, fixture_names, fixtures_dir};
use albert_tools::eval::{self, Report};
use serde_json::Value;

fn ort(fixture: &str) -> Value {
    let v: Value = serde_json::from_slice(&std::fs::read(fixtures_dir().join("ort_baseline.json")).unwrap()).unwrap();
    v["fixtures"][fixture].clone()
}

fn ours(name: &str) -> (Fixture, Report) {
    let fx = Fixture::load(name).unwrap();
    let blob = fx.pack_with(&PackOptions::new(DType::I8)).unwrap();
    let model = Model::from_bytes(blob.as_bytes()).unwrap();
    let r = eval::against_goldens(&model, &fx.dir).unwrap();
    (fx, r)
}

/// Prints ours against ORT's two modes and returns ORT's best (mean, min) token cosine.
fn side_by_side(name: &str, r: &Report) -> (f64, f64) {
    let o = ort(name);
    let f = |m: &str, k: &str| o[m][k].as_f64().unwrap_or(f64::NAN);
    println!("{name}: token cosine mean/min, MLM row cosine mean");
    println!("  albert-engine int8    {:.6} / {:.6}  {:?}", r.hidden_cos_mean, r.hidden_cos_min, r.mlm_cos_mean);
    for m in ["per_tensor", "per_channel"] {
        println!("  ORT {m:<17} {:.6} / {:.6}  {:.6}", f(m, "tok_cos_mean"), f(m, "tok_cos_min"), f(m, "mlm_cos_mean"));
    }
    let best = |k: &str| f("per_tensor", k).max(f("per_channel", k));
    (best("tok_cos_mean"), best("tok_cos_min"))
}

#[test]
fn outlier_model_default_scheme() {
    let (_, r) = ours("outlier_base");
    let (ort_mean, ort_min) = side_by_side("outlier_base", &r);
    assert!(r.hidden_cos_mean >= 0.998, "mean {}", r.hidden_cos_mean);
    assert!(r.hidden_cos_min >= 0.99, "min {}", r.hidden_cos_min);
    assert!(r.hidden_cos_mean > ort_mean && r.hidden_cos_min > ort_min, "not better than ONNX Runtime");
}

/// The trained model quantized the way the README tells users to quantize a trained
/// checkpoint: default options, calibrated on a few paragraphs of its training text
/// (`models/calib-pydoc.txt`, what the bundled blob is made with). The same options
/// calibrated on the built-in synthetic sequences are measured beside it.
#[test]
fn trained_model_default_scheme() {
    let fx = Fixture::load("trained_pydoc").unwrap();
    let calib = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/calib-pydoc.txt");
    let o = ort("trained_pydoc");
    for (label, blob) in [
        ("calibrated on text", fx.pack_calibrated_on_text(&PackOptions::new(DType::I8), &calib).unwrap()),
        ("synthetic calibration", fx.pack_with(&PackOptions::new(DType::I8)).unwrap()),
    ] {
        let model = Model::from_bytes(blob.as_bytes()).unwrap();
        let r = eval::against_goldens(&model, &fx.dir).unwrap();
        println!("[{label}]");
        let (ort_mean, ort_min) = side_by_side("trained_pydoc", &r);
        let h = eval::heldout_agreement(&model, &fx.dir.join("heldout.json")).unwrap();
        println!(
            "  held-out fill-mask ({} sentences): top-1 agreement {:.4}, top-5 overlap {:.4}; {} flips, fp32 top-2 gaps {:.3?} nats",
            h.sentences,
            h.top1_agree,
            h.top5_overlap,
            h.flip_gaps.len(),
            h.flip_gaps
        );
        for m in ["per_tensor", "per_channel"] {
            println!("  ORT {m:<17} top-1 {:.4}, top-5 {:.4}", o[m]["top1_agree"], o[m]["top5_overlap"]);
        }
        assert!(r.hidden_cos_mean >= 0.998 && r.hidden_cos_min >= 0.99, "{} / {}", r.hidden_cos_mean, r.hidden_cos_min);
        assert!(r.hidden_cos_mean > ort_mean && r.hidden_cos_min > ort_min, "{label}: not better than ONNX Runtime");
        assert!(h.top5_overlap >= 0.90, "{label}: top-5 {}", h.top5_overlap);
        for m in ["per_tensor", "per_channel"] {
            assert!(h.top1_agree > o[m]["top1_agree"].as_f64().unwrap(), "{label}: top-1 not better than ORT {m}");
            assert!(h.top5_overlap > o[m]["top5_overlap"].as_f64().unwrap(), "{label}: top-5 not better than ORT {m}");
        }
        // The model's distributions are often flat (it is small and briefly trained): 21 of
        // the 300 sentences have transformers' top two within 0.05 nats. A flip there is a
        // near-tie that rounding decides; a flip across a wide gap would be a real error.
        // The bound sits well under the int8 logits' own error on the goldens (max |Δ| 0.33
        // with int16 FFN-output activations, 0.49 with the int8 default): the widest flip
        // was 0.052 nats with the former, 0.113 with the latter (same top-1 agreement).
        assert!(h.widest_flip_gap() < 0.15, "{label}: a top-1 flip across a gap of {:.3} nats", h.widest_flip_gap());
        if label == "calibrated on text" {
            assert!(h.top1_agree >= 0.97, "top-1 {}", h.top1_agree);
        }
    }
}

#[test]
fn index_fixtures_default_scheme_against_ort() {
    for name in fixture_names().unwrap() {
        let (_, r) = ours(&name);
        let (ort_mean, ort_min) = side_by_side(&name, &r);
        assert!(r.hidden_cos_mean >= 0.9995, "{name}: mean {}", r.hidden_cos_mean);
        assert!(r.mlm_cos_mean.is_none_or(|m| m >= 0.9995), "{name}: MLM {:?}", r.mlm_cos_mean);
        // Random-init weights have no outliers: both engines' error is mostly the int8
        // weights', where nearest rounding leaves the two within ~1e-5; GPTQ's rounding is
        // what puts ours ahead.
        assert!(r.hidden_cos_mean > ort_mean, "{name}: mean {} vs ORT {ort_mean}", r.hidden_cos_mean);
        assert!(r.hidden_cos_min > ort_min, "{name}: min {} vs ORT {ort_min}", r.hidden_cos_min);
    }
}
