//! The `profile` feature's stage counters: a forward pass counts time in every stage of
//! the encoder with the feature, and nothing without it (the default build, where the
//! timing calls must compile away). `.ci/run` runs this file both ways.
#![allow(clippy::result_large_err)] // the engine's Error, see engine/src/lib.rs

mod common;

use albert_engine::profile::{self, Stage};
use albert_engine::{Inputs, Model};

#[test]
fn profile_counts_every_stage_of_a_pass_with_the_feature_and_nothing_without() {
    let b = common::blob();
    let a = common::aligned(&b);
    let model = Model::from_bytes(&bytemuck::cast_slice(&a)[..b.len()]).expect("blob loads");
    let ids: Vec<u32> = (0..9).map(|i| (i * 7 + 3) % 20).collect();
    let mut scratch = vec![0u8; model.scratch_bytes(ids.len(), 1)];
    // The only test in this binary: nothing else moves the counters.
    profile::reset();
    model.encode(&Inputs::single(&ids), &mut scratch).expect("valid input runs");
    let counts = profile::snapshot();
    assert_eq!(counts.map(|(s, ..)| s), Stage::ALL);
    if profile::ENABLED {
        for (stage, nanos, calls) in counts {
            // Three layer iterations: every stage runs at least once in each.
            assert!(calls >= 3, "{} ran {calls} times", stage.name());
            assert!(nanos > 0, "{} took no time", stage.name());
        }
        profile::reset();
        assert!(profile::snapshot().iter().all(|&(_, n, c)| n == 0 && c == 0), "reset clears");
    } else {
        assert!(counts.iter().all(|&(_, n, c)| n == 0 && c == 0), "counted without the feature: {counts:?}");
    }
}
