//! Host-side library behind the `quantize` binary: reading Hugging Face checkpoints,
//! calibrating, packing them into `.albq` blobs, and writing files atomically. [`cli`] is
//! the binary itself (its arguments and `main`'s logic), so tests can quantize a fixture
//! without spawning a process.

pub mod calib;
pub mod checkpoint;
pub mod cli;
pub mod gptq;
pub mod pack;
pub mod report;
pub mod tokenizer;
pub mod write;
