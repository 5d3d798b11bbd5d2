//! What one parallel loop costs on the thread pool (`albert_engine::threads::Pool::run`),
//! apart from its work: a forward pass is a few hundred such loops, and at short inputs
//! each is only tens of µs of work, so this cost decides whether more threads help.
//!
//! For each thread count: runs of `tasks` empty tasks back to back, then runs of tiny
//! tasks (about 1 µs each, as a few columns of a GEMM at 8 tokens) with 20 µs of caller
//! work between runs (as a forward pass's serial steps). Prints the median over 15 batches
//! of the µs per run beyond the work's own time.
//!
//! `cargo run --release -p albert-engine --example pool_overhead -- [THREADS...]`
//! (default: 1, 2 and every core)
use albert_engine::threads::Pool;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Busy work: `iters` dependent steps (calibrated by `iters_per_us`).
fn spin_for(iters: u64) -> u64 {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..iters {
        x = black_box(x.rotate_left(5) ^ 0x2545_f491_4f6c_dd1d).wrapping_mul(3);
    }
    x
}

fn iters_per_us() -> u64 {
    let n = 2_000_000;
    let t = Instant::now();
    black_box(spin_for(n));
    (n as f64 / (t.elapsed().as_secs_f64() * 1e6)).max(1.0) as u64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let all = albert_engine::threads::available();
    let mut counts: Vec<usize> = std::env::args().skip(1).map(|s| s.parse().expect("thread counts")).collect();
    if counts.is_empty() {
        counts = vec![1, 2, all];
        counts.dedup();
    }
    let per_us = iters_per_us();
    let sink = AtomicU64::new(0);
    println!("threads  tasks  empty run (µs)  1 µs tasks, 20 µs gaps: overhead per run (µs)");
    for &t in &counts {
        let pool = Pool::new(t).expect("spawn the pool");
        for tasks in [t, 4 * t] {
            let runs = 2000;
            let empty: Vec<f64> = (0..15)
                .map(|_| {
                    let s = Instant::now();
                    for _ in 0..runs {
                        pool.run(tasks, &|_| {});
                    }
                    s.elapsed().as_secs_f64() * 1e6 / runs as f64
                })
                .collect();
            // The same work with no pool: ceil(tasks / t) tasks, then the gap, per run.
            let work = |tasks: usize| {
                for _ in 0..tasks {
                    sink.fetch_add(spin_for(per_us), Ordering::Relaxed);
                }
            };
            let timed = |body: &dyn Fn()| {
                let v: Vec<f64> = (0..15)
                    .map(|_| {
                        let s = Instant::now();
                        for _ in 0..runs / 4 {
                            body();
                            sink.fetch_add(spin_for(20 * per_us), Ordering::Relaxed);
                        }
                        s.elapsed().as_secs_f64() * 1e6 / (runs / 4) as f64
                    })
                    .collect();
                median(v)
            };
            let ideal = timed(&|| work(tasks.div_ceil(t)));
            let pooled = timed(&|| pool.run(tasks, &|_| work(1)));
            println!("{t:7}  {tasks:5}  {:14.2}  {:12.2}", median(empty), pooled - ideal);
        }
    }
    black_box(sink.load(Ordering::Relaxed));
}
