//! Multi-threaded inference is bit-identical to single-threaded: every fixture case's
//! outputs (encoder and heads) with pools of 1, 2, 3 and 8 threads against the model
//! without a pool, for the int8 default scheme (outlier channels, centred and int16
//! activations), f32 and f16 blobs.

use std::sync::Arc;

use albert_engine::Model;
use albert_engine::config::DType;
use albert_engine::threads::Pool;
use albert_quantize::pack::PackOptions;
use albert_tests::{Fixture, run_case};

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn check(fixture: &str, dtype: DType) {
    // The default scheme without GPTQ rounding (slow to pack in a debug build): which
    // integers the weights hold does not matter here, only that every code path runs.
    let f = Fixture::load(fixture).expect("fixture loads");
    let blob = f.pack_with(&PackOptions { gptq: false, ..PackOptions::new(dtype) }).expect("fixture packs");
    let mut model = Model::from_bytes(blob.as_bytes()).expect("blob loads");
    assert!(!f.cases.is_empty());
    let serial: Vec<_> = f.cases.iter().map(|c| run_case(&model, c).expect("case runs")).collect();
    for threads in [1, 2, 3, 8] {
        model.set_pool(Some(Arc::new(Pool::new(threads).expect("threads start"))));
        assert_eq!(model.threads(), threads);
        for (case, want) in f.cases.iter().zip(&serial) {
            let got = run_case(&model, case).expect("case runs");
            assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>());
            for (name, a) in &got {
                assert!(
                    bits(&a.data) == bits(&want[name].data),
                    "{fixture} {} {}: {name} differs with {threads} threads",
                    dtype.name(),
                    case.name
                );
            }
        }
    }
}

#[test]
fn int8_outlier_model_is_bit_identical_on_1_2_3_and_8_threads() {
    // albert-base-v2's layer shapes (768 hidden, 12 heads, 3072 FFN).
    check("outlier_base", DType::I8);
}

#[test]
fn int8_trained_model_is_bit_identical_on_1_2_3_and_8_threads() {
    check("trained_pydoc", DType::I8);
}

#[test]
fn float_blobs_are_bit_identical_on_1_2_3_and_8_threads() {
    check("trained_pydoc", DType::F32);
    check("qa", DType::F16);
}
