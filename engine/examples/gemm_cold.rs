//! One GEMM shape on weights that are not in cache: calls the kernel on 1, 3 and 16
//! different weight matrices in rotation (about 7 and 38 MB for the FFN shapes at 3 and 16),
//! as a forward pass meets each linear's weights once per layer iteration. Prints Gelem/s
//! (one multiply-add = 2, as `gemm_one`) for each rotation.
//!
//! `cargo run --release -p albert-engine --example gemm_cold -- KERNEL M N K`
use albert_engine::kernels;
use std::hint::black_box;
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let kern = kernels::by_name(&args.next().expect("KERNEL M N K")).expect("a kernel this CPU runs");
    let d: Vec<usize> = args.take(3).map(|s| s.parse().expect("M N K as numbers")).collect();
    let (m, n, k) = (d[0], d[1], d[2]);
    let a: Vec<i8> = (0..m * k).map(|i| (i * 7 % 251) as i8).collect();
    let mut c = vec![0i32; m * n];
    let mut line = format!("m{m} n{n} k{k}");
    for sets in [1usize, 3, 16] {
        let bs: Vec<Vec<i8>> = (0..sets).map(|s| (0..n * k).map(|i| ((i + s) * 13 % 253) as i8).collect()).collect();
        let sums: Vec<Vec<f32>> = bs
            .iter()
            .map(|b| b.chunks_exact(k).map(|r| r.iter().map(|&x| x as i32).sum::<i32>() as f32).collect())
            .collect();
        // About 0.3 G multiply-adds per rotation, and every matrix at least twice.
        let reps = (300_000_000 / (m * n * k)).max(2 * sets);
        let t = Instant::now();
        for r in 0..reps {
            let s = r % sets;
            kern.gemm_i8_i32_sums(m, n, k, black_box(&a), black_box(&bs[s]), &sums[s], black_box(&mut c));
        }
        let g = 2.0 * (m * n * k * reps) as f64 / t.elapsed().as_secs_f64() / 1e9;
        line += &format!("  {sets} matrices {g:.1}");
    }
    println!("{line} Gelem/s");
}
