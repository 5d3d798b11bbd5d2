//! The weight row sums `quantize` stores (`P.weight_sum`) change no output bit: the same
//! fixture packed with and without them gives the same encoder and head outputs, at
//! sequence lengths that reach every form of the `vnni` kernel (the dot-product tiles
//! below 5 tokens, the pair forms at 5-15, the broadcast forms from 16), with one thread
//! and with two (the row-cut path). On a CPU without `vnni` both blobs run kernels that
//! ignore the sums, and the test still checks that the blob with them loads and agrees.

use std::sync::Arc;

use albert_engine::config::DType;
use albert_engine::threads::Pool;
use albert_engine::{Inputs, Model};
use albert_quantize::pack::PackOptions;
use albert_tests::{Fixture, run_case};

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn weight_sums_change_no_output_bit() {
    let f = Fixture::load("outlier_base").expect("fixture loads");
    let pack = |weight_sums| {
        f.pack_with(&PackOptions { gptq: false, weight_sums, ..PackOptions::new(DType::I8) }).expect("fixture packs")
    };
    let (with, without) = (pack(true), pack(false));
    assert!(with.as_bytes().len() > without.as_bytes().len(), "the sums are stored");
    let mut a = Model::from_bytes(with.as_bytes()).expect("blob loads");
    let mut b = Model::from_bytes(without.as_bytes()).expect("blob loads");
    assert!(!f.cases.is_empty());
    // The fixture's cases have 16, 64 and 80 tokens; shorter inputs reach the other forms.
    let vocab = a.config().vocab_size;
    let encode = |m: &Model, len: usize| {
        let ids: Vec<u32> = (0..len as u32).map(|i| 2 + (i * 37) % (vocab - 2)).collect();
        let mut scratch = vec![0u8; m.scratch_bytes(len, 1)];
        bits(m.encode(&Inputs::single(&ids), &mut scratch).expect("encodes").last_hidden_state())
    };
    for threads in [1, 2] {
        for m in [&mut a, &mut b] {
            m.set_pool(Some(Arc::new(Pool::new(threads).expect("threads start"))));
        }
        for len in [3, 5, 8, 12, 15, 16, 40] {
            assert!(encode(&a, len) == encode(&b, len), "{len} tokens: hidden states differ ({threads} threads)");
        }
        for case in &f.cases {
            let (x, y) = (run_case(&a, case).expect("case runs"), run_case(&b, case).expect("case runs"));
            assert_eq!(x.keys().collect::<Vec<_>>(), y.keys().collect::<Vec<_>>());
            for (name, v) in &x {
                assert!(bits(&v.data) == bits(&y[name].data), "{}: {name} differs ({threads} threads)", case.name);
            }
        }
    }
}
