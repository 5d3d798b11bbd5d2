//! Prints the table of int8 fidelity per quantization option and test model that
//! `engine/FORMAT.md` quotes: `cargo run --release -p albert-tests --example int8_schemes
//! [FIXTURE,... [VARIANT,...]]` (default: every fixture in index.json and the outlier model;
//! every variant).
//! Each cell: per-token cosine of `last_hidden_state` mean / min, MLM logit-row cosine mean.

use albert_engine::Model;
use albert_engine::config::DType;
use albert_quantize::pack::PackOptions;
use albert_tests::{Fixture, fixture_names};
use albert_tools::eval;

/// `--act16 ffn_output`: int16 activations for the FFN output GEMM.
fn ffn_output() -> Vec<String> {
    vec!["ffn_output".to_string()]
}

/// `--act7` on every encoder linear but the FFN output (whose error the trained model
/// amplifies, `FORMAT.md`).
fn act7_but_ffn_output() -> Vec<String> {
    ["query", "key", "value", "attention.dense", "ffn", "embedding_hidden_mapping_in"].map(String::from).to_vec()
}

fn main() -> anyhow::Result<()> {
    let plain = PackOptions::plain(DType::I8);
    let variants: Vec<(&str, PackOptions)> = vec![
        ("plain", plain.clone()),
        ("split", PackOptions { outlier_threshold: Some(6.0), ..plain.clone() }),
        ("centred", PackOptions { centred: true, ..plain.clone() }),
        ("mse", PackOptions { mse_weights: true, ..plain.clone() }),
        ("smooth.5", PackOptions { smooth_alpha: Some(0.5), ..plain.clone() }),
        ("all-act16", PackOptions { act16: vec![String::new()], ..plain.clone() }),
        ("gptq", PackOptions { gptq: true, ..plain.clone() }),
        ("default-nearest", PackOptions { gptq: false, ..PackOptions::new(DType::I8) }),
        ("midpoint-act8", PackOptions { zero_on_grid: false, ..PackOptions::new(DType::I8) }),
        ("midpoint-act16", PackOptions { zero_on_grid: false, act16: ffn_output(), ..PackOptions::new(DType::I8) }),
        ("default-act16", PackOptions { act16: ffn_output(), ..PackOptions::new(DType::I8) }),
        ("default", PackOptions::new(DType::I8)),
        ("act7", PackOptions { act7: vec![String::new()], ..PackOptions::new(DType::I8) }),
        ("act7-but-ffn-out", PackOptions { act7: act7_but_ffn_output(), ..PackOptions::new(DType::I8) }),
    ];
    // Optional second argument: the variants to run (comma separated names).
    let variants: Vec<(&str, PackOptions)> = match std::env::args().nth(2) {
        Some(only) => variants.into_iter().filter(|(n, _)| only.split(',').any(|o| o == *n)).collect(),
        None => variants,
    };
    let names: Vec<String> = match std::env::args().nth(1) {
        Some(list) => list.split(',').map(str::to_string).collect(),
        None => {
            let mut n = fixture_names()?;
            n.push("outlier_base".into());
            n
        }
    };
    print!("{:>18}", "fixture");
    for (n, _) in &variants {
        print!(" {n:>25}");
    }
    println!();
    for name in names {
        let fx = Fixture::load(&name)?;
        print!("{name:>18}");
        for (_, opts) in &variants {
            let blob = fx.pack_with(opts)?;
            let model = Model::from_bytes(blob.as_bytes())?;
            let r = eval::against_goldens(&model, &fx.dir)?;
            let mlm = r.mlm_cos_mean.map_or("-".to_string(), |m| format!("{m:.5}"));
            print!(" {:.5}/{:.4}/{mlm:>7}", r.hidden_cos_mean, r.hidden_cos_min);
            std::io::Write::flush(&mut std::io::stdout())?;
        }
        println!();
    }
    Ok(())
}
