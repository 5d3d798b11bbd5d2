//! Where a forward pass spends its time, stage by stage (the `profile` feature).
//!
//! With the feature, the encoder reads the clock around each stage of every linear, of
//! attention and of the row-wise steps, and adds the nanoseconds to one counter per
//! [`Stage`]. Without it, the timing wrapper is the bare call and nothing is counted, so
//! the normal build pays nothing. The clock is read thousands of times per pass (about
//! 20 ns each on a Linux x86_64 host: 1.5 % of a 128-token albert-base pass on one AVX2
//! core), so a profiled pass runs a little slower than a plain one.
//!
//! Counters are process-wide and summed over threads: a stage that runs on four threads
//! for 1 ms counts 4 ms. Profile with one thread to read the figures as a pass's wall
//! time (`albert bench --threads 1 --profile`).
//!
//! ```
//! use albert_engine::profile::{self, Stage};
//! profile::reset();
//! // ... encode ...
//! for (stage, nanos, calls) in profile::snapshot() {
//!     let _ = (stage.name(), nanos, calls); // all 0 without the `profile` feature
//! }
//! assert_eq!(profile::snapshot().len(), Stage::ALL.len());
//! ```

/// A stage of the encoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Activations to int8 (or int16) per token, before each int8 linear.
    Quantize,
    /// The matrix products of the linears: the selected kernel (and f32 / f16 weights).
    Gemm,
    /// Accumulators back to f32: scales, the row-sum term, bias, outlier channels (for
    /// f32 and f16 weights: bias and outlier channels).
    Dequantize,
    /// The FFN's activation (`gelu_new` for ALBERT).
    Activation,
    /// Residual additions and LayerNorm.
    Norm,
    /// Attention scores, with packing the keys and values per head.
    Scores,
    /// Attention softmax.
    Softmax,
    /// Attention probabilities times values.
    Context,
}

impl Stage {
    /// Every stage, in the order [`snapshot`] reports them.
    pub const ALL: [Stage; 8] = [
        Stage::Quantize,
        Stage::Gemm,
        Stage::Dequantize,
        Stage::Activation,
        Stage::Norm,
        Stage::Scores,
        Stage::Softmax,
        Stage::Context,
    ];

    /// A short lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Quantize => "quantize",
            Stage::Gemm => "gemm",
            Stage::Dequantize => "dequantize",
            Stage::Activation => "activation",
            Stage::Norm => "norm",
            Stage::Scores => "scores",
            Stage::Softmax => "softmax",
            Stage::Context => "context",
        }
    }
}

/// Whether this build counts (the `profile` feature).
pub const ENABLED: bool = cfg!(feature = "profile");

/// How many stages there are.
const STAGES: usize = Stage::ALL.len();

#[cfg(feature = "profile")]
mod counters {
    use core::sync::atomic::AtomicU64;
    pub(super) static NANOS: [AtomicU64; super::STAGES] = [const { AtomicU64::new(0) }; super::STAGES];
    pub(super) static CALLS: [AtomicU64; super::STAGES] = [const { AtomicU64::new(0) }; super::STAGES];
}

/// Runs `f`, adding its wall time to `stage`'s counter (with the `profile` feature).
#[inline(always)]
pub(crate) fn time<R>(stage: Stage, f: impl FnOnce() -> R) -> R {
    #[cfg(feature = "profile")]
    {
        use core::sync::atomic::Ordering::Relaxed;
        let t = std::time::Instant::now();
        let r = f();
        let ns = t.elapsed().as_nanos() as u64;
        counters::NANOS[stage as usize].fetch_add(ns, Relaxed);
        counters::CALLS[stage as usize].fetch_add(1, Relaxed);
        r
    }
    #[cfg(not(feature = "profile"))]
    {
        let _ = stage;
        f()
    }
}

/// Each stage's total nanoseconds and timed calls since the last [`reset`] (zeros without
/// the `profile` feature).
pub fn snapshot() -> [(Stage, u64, u64); STAGES] {
    core::array::from_fn(|i| {
        let s = Stage::ALL[i];
        #[cfg(feature = "profile")]
        {
            use core::sync::atomic::Ordering::Relaxed;
            (s, counters::NANOS[i].load(Relaxed), counters::CALLS[i].load(Relaxed))
        }
        #[cfg(not(feature = "profile"))]
        {
            (s, 0, 0)
        }
    })
}

/// Sets every counter to zero.
pub fn reset() {
    #[cfg(feature = "profile")]
    {
        use core::sync::atomic::Ordering::Relaxed;
        for (n, c) in counters::NANOS.iter().zip(&counters::CALLS) {
            n.store(0, Relaxed);
            c.store(0, Relaxed);
        }
    }
}

#[cfg(all(test, feature = "profile"))]
mod tests {
    use super::*;

    #[test]
    fn counts_the_time_of_the_stage_it_is_given() {
        // Other tests may run passes concurrently: compare against this test's own share.
        let before = snapshot()[Stage::Softmax as usize];
        time(Stage::Softmax, || std::thread::sleep(std::time::Duration::from_millis(5)));
        let after = snapshot()[Stage::Softmax as usize];
        assert!(after.1 - before.1 >= 5_000_000, "{before:?} -> {after:?}");
        assert!(after.2 > before.2);
    }
}
