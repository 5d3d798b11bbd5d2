//! int8 GEMM throughput per kernel on the ALBERT-base linear shapes.
//!
//! `cargo bench -p albert-engine --bench gemm` (filter: `-- 'gemm_i8/avx2'`). Throughput is
//! reported in elements/s where one element is one int8 operation (a multiply-add is 2),
//! so `Gelem/s` reads as GOPS. M is the number of tokens (1, 8, 32, 128, 384); N×K the
//! weight (`[out, in]`): 768×768 (Q, K, V, attention output), 3072×768 (FFN in), 768×3072
//! (FFN out). The `peak` bench measures the instructions' peak in the same unit, so
//! efficiency = this ÷ that. `scalar` (the oracle) runs only M ≤ 8: at larger M one call
//! takes seconds. `gemm_i16` is the int16-activation GEMM, `gemm_i7` the int8 one on 7-bit
//! activations (`quantize --act7`).

use std::hint::black_box;
use std::time::Duration;

use albert_engine::kernels;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn fill(len: usize, seed: u64) -> Vec<i8> {
    let mut s = seed | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 24) as i8).max(-127)
        })
        .collect()
}

/// Times `kern` on `(n, k)` weights at each M of `ms`, activations from `fill` shifted right
/// by `shift` (1: 7-bit activations), given the weight row sums as a forward pass gives them.
fn shape(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    kern: kernels::Kernel,
    (n, k): (usize, usize),
    ms: &[usize],
    shift: u32,
) {
    let b = fill(n * k, 7);
    let sums: Vec<f32> = b.chunks_exact(k).map(|r| r.iter().map(|&x| x as i32).sum::<i32>() as f32).collect();
    for &m in ms {
        let a: Vec<i8> = fill(m * k, 3).iter().map(|&v| v >> shift).collect();
        let mut out = vec![0i32; m * n];
        g.throughput(Throughput::Elements(2 * (m * n * k) as u64));
        let id = BenchmarkId::new(kern.name(), format!("m{m}_n{n}_k{k}"));
        g.bench_function(id, |bench| {
            bench.iter(|| {
                kern.gemm_i8_i32_sums(m, n, k, black_box(&a), black_box(&b), black_box(&sums), black_box(&mut out))
            })
        });
    }
}

const SHAPES: [(usize, usize); 3] = [(768, 768), (3072, 768), (768, 3072)];

fn gemm(c: &mut Criterion) {
    let mut g = c.benchmark_group("gemm_i8");
    g.sample_size(10).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1));
    for kern in kernels::available() {
        // `scalar` only at M ≤ 8: at larger M one call takes seconds.
        let ms: &[usize] = if kern.name() == "scalar" { &[1, 8] } else { &[1, 8, 32, 128, 384] };
        for nk in SHAPES {
            shape(&mut g, kern, nk, ms, 0);
        }
    }
    g.finish();
}

/// The int16-activation GEMM (`--act16` linears) on the FFN output shape.
fn gemm16(c: &mut Criterion) {
    let (n, k) = (768usize, 3072usize);
    let b = fill(n * k, 7);
    let mut g = c.benchmark_group("gemm_i16");
    g.sample_size(10).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1));
    for kern in kernels::available() {
        for m in [1usize, 128].into_iter().filter(|&m| kern.name() != "scalar" || m <= 8) {
            let a: Vec<i16> = fill(m * k, 3).iter().map(|&v| v as i16 * 251).collect();
            let mut out = vec![0i64; m * n];
            g.throughput(Throughput::Elements(2 * (m * n * k) as u64));
            let id = BenchmarkId::new(kern.name(), format!("m{m}_n{n}_k{k}"));
            g.bench_function(id, |bench| {
                bench.iter(|| kern.gemm_i16_i8_i64(m, n, k, black_box(&a), black_box(&b), black_box(&mut out)))
            });
        }
    }
    g.finish();
}

/// 7-bit activations (`--act7` linears, `[-64, 63]`: the `avx2` kernel's `vpmaddubsw`
/// form; the other kernels run them as any int8) on the three shapes at M = 8 and 128.
fn gemm7(c: &mut Criterion) {
    let mut g = c.benchmark_group("gemm_i7");
    g.sample_size(10).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1));
    for kern in kernels::available().filter(|k| k.name() != "scalar") {
        for nk in SHAPES {
            shape(&mut g, kern, nk, &[8, 128], 1);
        }
    }
    g.finish();
}

criterion_group!(benches, gemm, gemm16, gemm7);
criterion_main!(benches);
