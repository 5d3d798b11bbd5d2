//! int8 fidelity on models with realistic activations (issue #3): the base-shaped
//! outlier model, and (when present) the trained model.

use albert_engine::Model;
use albert_engine::config::DType;
use albert_tests::{Fixture, cosine, run_case};

#[test]
fn outlier_model_int8_fidelity() {
    let fx = Fixture::load("outlier_base").unwrap();
    for dtype in [DType::F32, DType::I8] {
        let blob = fx.pack(dtype).unwrap();
        let model = Model::from_bytes(blob.as_bytes()).unwrap();
        let (h, v) = (model.config().hidden_size as usize, model.config().vocab_size as usize);
        let (mut toks, mut rows) = (Vec::new(), Vec::new());
        for case in &fx.cases {
            let got = run_case(&model, case).unwrap();
            for (i, (a, b)) in
                got["last_hidden_state"].data.chunks(h).zip(case.golden["last_hidden_state"].data.chunks(h)).enumerate()
            {
                if case.attention_mask[i] == 1 {
                    toks.push(cosine(a, b));
                }
            }
            for (i, (a, b)) in
                got["prediction_logits"].data.chunks(v).zip(case.golden["logits"].data.chunks(v)).enumerate()
            {
                if case.attention_mask[i] == 1 {
                    rows.push(cosine(a, b));
                }
            }
        }
        let mean = |x: &[f64]| x.iter().sum::<f64>() / x.len() as f64;
        let min = |x: &[f64]| x.iter().cloned().fold(1.0, f64::min);
        println!(
            "outlier_base {:>5}: token cos mean {:.6} min {:.6}; mlm row cos mean {:.6} min {:.6}",
            dtype.name(),
            mean(&toks),
            min(&toks),
            mean(&rows),
            min(&rows)
        );
    }
}
