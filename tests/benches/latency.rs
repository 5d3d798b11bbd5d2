//! End-to-end encoder latency of an albert-base-v2-shaped int8 model (768 hidden, 12 heads,
//! 3072 FFN, 12 iterations; vocabulary 1000): sequence lengths 8, 32, 128 and 384 at batch 1,
//! on 1 thread and on all cores.
//!
//! `cargo bench -p albert-tests --bench latency` (filter: `-- 't1/'`). The model is the
//! `outlier_base` fixture's checkpoint (rebuilt by `synth`, with 512 positions so that 384
//! fits) packed with `quantize`'s default int8 scheme except GPTQ rounding, which changes
//! which integers the weights hold but not the work, and takes minutes to pack. Throughput
//! is in elements/s with one element = one token.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use albert_engine::config::DType;
use albert_engine::threads::{self, Pool};
use albert_engine::{Inputs, Model};
use albert_quantize::{checkpoint, pack};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn latency(c: &mut Criterion) {
    let tmp = tempfile::tempdir().expect("temporary directory");
    let fixture = albert_tests::fixtures_dir().join("outlier_base");
    albert_tests::synth::write_outlier_checkpoint_positions(&fixture, tmp.path(), 512).expect("checkpoint");
    let ck = checkpoint::load(tmp.path(), None).expect("checkpoint loads");
    let opts = pack::PackOptions { gptq: false, ..pack::PackOptions::new(DType::I8) };
    let (bytes, _) = pack::pack_with(&ck, &opts).expect("packs");
    let blob = pack::AlignedBlob::new(&bytes);
    let mut model = Model::from_bytes(blob.as_bytes()).expect("blob loads");
    let cfg = *model.config();

    let mut g = c.benchmark_group("latency");
    g.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    let all = threads::available();
    let mut counts = vec![1];
    if all > 1 {
        counts.push(all);
    }
    for &t in &counts {
        model.set_pool((t > 1).then(|| Arc::new(Pool::new(t).expect("threads start"))));
        for seq in [8usize, 32, 128, 384] {
            let ids: Vec<u32> = (0..seq).map(|i| 5 + (i as u32 * 7919) % (cfg.vocab_size - 5)).collect();
            let inputs = Inputs::single(&ids);
            let mut scratch = vec![0u8; model.scratch_bytes(seq, 1)];
            g.throughput(Throughput::Elements(seq as u64));
            g.bench_function(BenchmarkId::new(format!("t{t}"), format!("seq{seq}")), |b| {
                b.iter(|| {
                    let enc = model.encode(black_box(&inputs), &mut scratch).expect("runs");
                    black_box(enc.last_hidden_state()[0]);
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, latency);
criterion_main!(benches);
