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

#[test]
fn trained_model_default_scheme() {
    let (fx, r) = ours("trained_pydoc");
    let (ort_mean, ort_min) = side_by_side("trained_pydoc", &r);
    let blob = fx.pack_with(&PackOptions::new(DType::I8)).unwrap();
    let model = Model::from_bytes(blob.as_bytes()).unwrap();
    let (top1, top5, n) = eval::heldout_agreement(&model, &fx.dir.join("heldout.json")).unwrap();
    let o = ort("trained_pydoc");
    println!("  held-out fill-mask ({n} sentences): top-1 agreement {top1:.4}, top-5 overlap {top5:.4}");
    for m in ["per_tensor", "per_channel"] {
        println!("  ORT {m:<17} top-1 {:.4}, top-5 {:.4}", o[m]["top1_agree"], o[m]["top5_overlap"]);
    }
    assert!(r.hidden_cos_mean >= 0.998 && r.hidden_cos_min >= 0.99, "{} / {}", r.hidden_cos_mean, r.hidden_cos_min);
    assert!(top1 >= 0.97 && top5 >= 0.90, "top-1 {top1}, top-5 {top5}");
    assert!(r.hidden_cos_mean > ort_mean && r.hidden_cos_min > ort_min, "not better than ONNX Runtime");
    for m in ["per_tensor", "per_channel"] {
        // One sentence in 300 is a tie on top-1 with ORT per-channel; top-5 must be better.
        assert!(top1 + 1e-9 >= o[m]["top1_agree"].as_f64().unwrap(), "top-1 worse than ORT {m}");
        assert!(top5 > o[m]["top5_overlap"].as_f64().unwrap(), "top-5 not better than ORT {m}");
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
