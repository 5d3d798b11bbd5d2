//! Host-side library behind the `albert` binary: the pipelines (fill-mask, classify, …),
//! the goldens written by transformers, and `albert eval`. Reading checkpoints and packing
//! blobs is in `albert-quantize` (tools/quantize), which the `albert` binary does not need.

pub mod eval;
pub mod goldens;
pub mod pipelines;
