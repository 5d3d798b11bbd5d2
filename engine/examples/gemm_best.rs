//! Best-of-N GEMM throughput per kernel, for machines too noisy for criterion's means.
//!
//! `cargo run --release -p albert-engine --example gemm_best [-- KERNEL [REPS [7]]]`: for each
//! of the ALBERT-base shapes and M in {8, 32, 64, 128, 384}, the fastest of REPS (default 200)
//! timed calls, in Gelem/s (one int8 multiply-add = 2 elements, as in `benches/gemm.rs`),
//! given the weight row sums as a forward pass gives them (`Kernel::gemm_i8_i32_sums`).
//! With `7`, the activations are 7-bit (`[-64, 63]`, as `quantize --act7` makes them).
//! On a shared host, the fastest call is the one least disturbed by neighbours; the
//! criterion benches remain the reference where the machine is quiet.

use std::hint::black_box;
use std::time::Instant;

use albert_engine::kernels;

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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let reps: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(200);
    let act7 = args.get(3).is_some_and(|s| s == "7");
    let kern = match args.get(1) {
        Some(name) => kernels::by_name(name).unwrap_or_else(|e| panic!("{e}")),
        None => kernels::selected().expect("a kernel"),
    };
    println!("kernel {}, best of {reps}{}", kern.name(), if act7 { ", 7-bit activations" } else { "" });
    for (n, k) in [(768usize, 768usize), (3072, 768), (768, 3072)] {
        let b = fill(n * k, 7);
        // The weight row sums a blob stores (`weight_sum`), as a forward pass passes them.
        let sums: Vec<f32> = b.chunks_exact(k).map(|r| r.iter().map(|&x| x as i32).sum::<i32>() as f32).collect();
        for m in [8usize, 32, 64, 128, 384] {
            let mut a = fill(m * k, 3);
            if act7 {
                a.iter_mut().for_each(|v| *v >>= 1);
            }
            let mut c = vec![0i32; m * n];
            let mut best = f64::INFINITY;
            for _ in 0..reps {
                let t = Instant::now();
                kern.gemm_i8_i32_sums(m, n, k, black_box(&a), black_box(&b), black_box(&sums), black_box(&mut c));
                best = best.min(t.elapsed().as_secs_f64());
            }
            println!("m{m:<4} n{n:<5} k{k:<5} {:7.1} Gelem/s", 2.0 * (m * n * k) as f64 / best / 1e9);
        }
    }
}
