//! `albert-engine`: an int8 inference engine for ALBERT that runs from a packed blob.
//!
//! The engine borrows a blob written by the `quantize` tool (see `FORMAT.md`), validates it
//! and views its tensors in place: no copy, no allocation. Inference writes into scratch
//! memory the caller provides, sized by [`Model::scratch_bytes`].
//!
//! ```no_run
//! # fn main() -> Result<(), albert_engine::Error> {
//! use albert_engine::{Inputs, Model};
//! let model = Model::open("model.albq")?;
//! let model = model.model();
//! let ids = [2u32, 31, 7, 3];
//! let inputs = Inputs::single(&ids);
//! let mut scratch = vec![0u8; model.scratch_bytes(ids.len(), 1)];
//! let enc = model.encode(&inputs, &mut scratch)?;
//! println!("{:?}", &enc.token(0, 0)[..4]);
//! # Ok(()) }
//! ```
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]
// `Error` carries tensor names inline (no allocator in no_std), so it is ~140 bytes; it is
// only built on the cold failure path, where its size costs nothing.
#![allow(clippy::result_large_err)]

#[cfg(feature = "alloc")]
extern crate alloc;

pub mod config;
#[cfg(feature = "std")]
mod cores;
pub mod error;
pub mod format;
pub mod kernels;
pub mod model;
mod ops;
mod par;
pub mod profile;
pub mod scores;
#[cfg(feature = "std")]
pub mod threads;
pub mod tokenizer;

pub use config::{Activation, Heads, ModelConfig};
pub use error::Error;
#[cfg(feature = "std")]
pub use model::MappedModel;
pub use model::{Encoded, Inputs, Model};
pub use tokenizer::{EncodeOptions, Encoding, Tokenizer, Truncation, Workspace};
