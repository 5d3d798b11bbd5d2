//! The ALBERT model: loading a blob, the encoder, and the heads.

mod forward;
mod heads;
pub mod observe;
mod scratch;
pub mod weights;

use crate::config::ModelConfig;
use crate::error::Error;
use crate::format::Blob;
use weights::Weights;

pub use forward::Encoded;

/// A model viewing its blob in place. Cheap to share across threads (`Send + Sync`):
/// inference only reads it.
#[derive(Clone, Debug)]
pub struct Model<'a> {
    blob: Blob<'a>,
    weights: Weights<'a>,
    /// The threads inference runs on (none: the calling thread alone).
    #[cfg(feature = "std")]
    pool: Option<std::sync::Arc<crate::threads::Pool>>,
}

/// A batch of token sequences, all of length `seq_len` (pad shorter ones and mask them).
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'i> {
    /// `batch × seq_len` token ids.
    pub input_ids: &'i [u32],
    /// `batch × seq_len` segment ids (all 0 when `None`).
    pub token_type_ids: Option<&'i [u32]>,
    /// `batch × seq_len`, 1 for real tokens and 0 for padding (all 1 when `None`).
    pub attention_mask: Option<&'i [u32]>,
    pub batch: usize,
    pub seq_len: usize,
}

impl<'i> Inputs<'i> {
    /// One unpadded sequence of segment 0.
    pub fn single(ids: &'i [u32]) -> Self {
        Inputs { input_ids: ids, token_type_ids: None, attention_mask: None, batch: 1, seq_len: ids.len() }
    }
}

impl<'a> Model<'a> {
    /// Validates `bytes` (checksum included) and views its tensors without copying.
    ///
    /// `bytes` must start at an 8-byte aligned address (a memory map or an aligned
    /// `include_bytes!` does).
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Self, Error> {
        let blob = Blob::parse(bytes)?;
        let weights = Weights::load(&blob)?;
        Ok(Model {
            blob,
            weights,
            #[cfg(feature = "std")]
            pool: crate::threads::default_pool(),
        })
    }

    /// Runs inference on `pool`'s threads from now on (`None`: on the calling thread
    /// alone). A model starts with [`crate::threads::default_pool`]. Results are bit-identical for any number of threads; one pool
    /// may serve several models (their runs take turns).
    #[cfg(feature = "std")]
    pub fn set_pool(&mut self, pool: Option<std::sync::Arc<crate::threads::Pool>>) {
        self.pool = pool;
    }

    /// Threads inference runs on.
    pub fn threads(&self) -> usize {
        self.par().threads()
    }

    pub(crate) fn par(&self) -> crate::par::Par<'_> {
        #[cfg(feature = "std")]
        return crate::par::Par::pool(self.pool.as_deref());
        #[cfg(not(feature = "std"))]
        crate::par::Par::default()
    }

    /// The configuration stored in the blob.
    pub fn config(&self) -> &ModelConfig {
        &self.blob.config
    }

    /// The validated blob (tensor list, labels, checksum).
    pub fn blob(&self) -> &Blob<'a> {
        &self.blob
    }

    /// The typed weights.
    pub fn weights(&self) -> &Weights<'a> {
        &self.weights
    }

    /// Label of class `i` from the checkpoint's `id2label`, if stored.
    pub fn label(&self, i: usize) -> Option<&'a str> {
        self.blob.label(i)
    }

    /// Bytes of scratch [`Model::encode`] needs for `batch` sequences of `seq_len` tokens
    /// (heads included).
    pub fn scratch_bytes(&self, seq_len: usize, batch: usize) -> usize {
        scratch::Plan::new(self.config(), seq_len, batch).bytes()
    }
}

/// A model over a memory-mapped file (host builds).
#[cfg(feature = "std")]
pub struct MappedModel {
    // Field order matters: `model` borrows `_map` and must drop first.
    model: Model<'static>,
    _map: memmap2::Mmap,
}

#[cfg(feature = "std")]
impl Model<'static> {
    /// Memory-maps `path` and validates it.
    pub fn open(path: impl AsRef<std::path::Path>) -> Result<MappedModel, Error> {
        let path = path.as_ref();
        let io = |e: std::io::Error| Error::Io { path: path.display().to_string(), message: e.to_string() };
        let file = std::fs::File::open(path).map_err(io)?;
        // SAFETY: the file is mapped read-only; the engine treats it as immutable. Another
        // process truncating it while mapped is outside what any mmap user can prevent.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        // SAFETY: the mapping's address is stable for its lifetime (moving `Mmap` moves
        // only its handle), `MappedModel` keeps it alive as long as the model and drops the
        // model first, and `model()` hands out the model only for `&self`'s lifetime.
        let bytes: &'static [u8] = unsafe { core::slice::from_raw_parts(map.as_ptr(), map.len()) };
        let model = Model::from_bytes(bytes)?;
        Ok(MappedModel { model, _map: map })
    }
}

#[cfg(feature = "std")]
impl MappedModel {
    /// The model, borrowing the mapping.
    pub fn model(&self) -> &Model<'_> {
        &self.model
    }

    /// [`Model::set_pool`] for the mapped model.
    pub fn set_pool(&mut self, pool: Option<std::sync::Arc<crate::threads::Pool>>) {
        self.model.set_pool(pool);
    }
}
