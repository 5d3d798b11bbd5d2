//! The observed forward pass (`Model::encode_observed`, what calibration and `quantize
//! --report` run) computes the same hidden states as the plain one, whose row-wise steps
//! are fused into the GEMMs (`linear_rows` in `engine/src/model/forward.rs`), with and
//! without threads; and the observer sees every GEMM of every iteration.

use std::sync::Arc;

use albert_engine::Inputs;
use albert_engine::Model;
use albert_engine::config::DType;
use albert_engine::model::observe::{Gemm, Observer, Site};
use albert_engine::threads::Pool;
use albert_quantize::pack::PackOptions;
use albert_tests::Fixture;

/// Counts the GEMMs it is shown.
#[derive(Default)]
struct Count {
    gemms: usize,
    ffn_rows: usize,
}

impl Observer for Count {
    fn gemm(&mut self, site: Site, _x: &[f32], _y: &[f32], m: usize) {
        self.gemms += 1;
        if site.gemm == Gemm::Ffn {
            self.ffn_rows += m;
        }
    }
}

#[test]
fn observed_and_plain_forward_passes_are_bit_identical() {
    let f = Fixture::load("trained_pydoc").expect("fixture loads");
    let blob = f.pack_with(&PackOptions { gptq: false, ..PackOptions::new(DType::I8) }).expect("fixture packs");
    let mut model = Model::from_bytes(blob.as_bytes()).expect("blob loads");
    let layers = model.config().num_hidden_layers as usize;
    // 128 tokens: with 2 threads the FFN and output GEMMs are cut by rows (fused path).
    let ids: Vec<u32> = (0..128u32).map(|i| 5 + (i * 37) % 7000).collect();
    for threads in [1, 2] {
        model.set_pool(if threads > 1 { Some(Arc::new(Pool::new(threads).expect("threads start"))) } else { None });
        let mut scratch = vec![0u8; model.scratch_bytes(ids.len(), 1)];
        let plain = model.encode(&Inputs::single(&ids), &mut scratch).expect("runs").last_hidden_state().to_vec();
        let mut count = Count::default();
        let mut scratch = vec![0u8; model.scratch_bytes(ids.len(), 1)];
        let observed = model
            .encode_observed(&Inputs::single(&ids), &mut scratch, &mut count)
            .expect("runs")
            .last_hidden_state()
            .to_vec();
        assert!(
            plain.iter().map(|v| v.to_bits()).eq(observed.iter().map(|v| v.to_bits())),
            "{threads} threads: the observed pass differs from the plain one"
        );
        // The embedding mapping once, then six GEMMs per iteration.
        assert_eq!(count.gemms, 1 + 6 * layers, "{threads} threads");
        assert_eq!(count.ffn_rows, ids.len() * layers, "{threads} threads");
    }
}
