//! Host-side library behind the `quantize` and `albert` binaries: reading Hugging Face
//! checkpoints, packing them into `.albq` blobs, and writing files atomically.

pub mod calib;
pub mod checkpoint;
pub mod eval;
pub mod goldens;
pub mod gptq;
pub mod pack;
pub mod pipelines;
pub mod report;
pub mod tokenizer;
pub mod write;
