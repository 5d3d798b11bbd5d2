//! The C API of `albert-engine` (`include/albert.h`, generated from this file by cbindgen).
//!
//! # Memory and ownership
//!
//! The library allocates nothing: the caller owns every byte it touches.
//!
//! - **The handle.** An [`AlbertModel`] is an opaque struct of fixed size and alignment that
//!   the caller places anywhere (a static, the stack, the heap). `albert_model_open_bytes`
//!   or `albert_model_open_path` initialises it, `albert_model_close` releases it. Do not
//!   copy an open handle; open it again instead. A handle may be used from several threads
//!   at once (inference only reads it), but not while it is being opened or closed.
//! - **The blob.** `albert_model_open_bytes` borrows the `.albq` bytes: they must start at
//!   an 8-byte aligned address and stay alive and unchanged until `albert_model_close`.
//!   `albert_model_open_path` (host builds with the `std` feature) memory-maps the file
//!   and unmaps it on close.
//! - **Scratch.** Every inference call takes a scratch buffer (any alignment) whose size the
//!   matching `albert_*_scratch_bytes` call reports. Calls never keep pointers to it.
//! - **Outputs** are caller arrays with explicit lengths. Strings written for the caller
//!   (fill-mask's decoded tokens) are UTF-8 and NUL-terminated, inside the caller's buffer.
//!
//! # Errors
//!
//! Every entry point returns an `int32_t` status: `ALBERT_OK` (0) or a negative
//! `ALBERT_ERR_*` code. No panic crosses the boundary: pointers and lengths are checked
//! first, and with `std` a panic inside the engine is caught and returned as
//! `ALBERT_ERR_PANIC`. The message of the last failure is kept on the handle (and, with
//! `std`, per thread) for `albert_last_error`; `albert_status_name` names a code.
//!
//! # Without `std`
//!
//! Built with `--no-default-features` the library is `no_std` with no allocator;
//! `albert_model_open_path` returns `ALBERT_ERR_UNSUPPORTED`, softmax uses libm's `expf`,
//! and a panic (an engine bug; inputs are validated) spins in the library's panic handler.
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]
#![allow(clippy::result_large_err)]

mod mem;
mod pipeline;
mod state;

use core::ffi::{c_char, c_void};

use albert_engine::{EncodeOptions, Encoding, Error, Heads, Inputs, Model, Tokenizer, Truncation};

use mem::{Arena, opt_slice, slice, slice_mut};
use state::{Fail, Loaded};

// ---- status codes -----------------------------------------------------------------------

/// Success.
pub const ALBERT_OK: i32 = 0;
/// A required pointer argument is NULL.
pub const ALBERT_ERR_NULL: i32 = -1;
/// The handle is not an open model (never opened, closed, its open failed, or corrupted).
pub const ALBERT_ERR_BAD_HANDLE: i32 = -2;
/// An argument is out of range (a length, a flag, an enum value, a misaligned array).
pub const ALBERT_ERR_INVALID_ARGUMENT: i32 = -3;
/// A caller buffer (scratch, output array or string buffer) is too small.
pub const ALBERT_ERR_BUFFER_TOO_SMALL: i32 = -4;
/// The blob is not a valid `.albq` model (bad magic, version, checksum, layout).
pub const ALBERT_ERR_BAD_MODEL: i32 = -5;
/// The blob's start address is not 8-byte aligned.
pub const ALBERT_ERR_ALIGNMENT: i32 = -6;
/// The model lacks what the call needs (a head, a tokenizer, `[MASK]`), or the build lacks
/// the feature (`albert_model_open_path` without `std`).
pub const ALBERT_ERR_UNSUPPORTED: i32 = -7;
/// Input the model cannot take: token ids out of range, text that is not UTF-8, no
/// `[MASK]` in a fill-mask text, a sequence longer than the model's maximum.
pub const ALBERT_ERR_BAD_INPUT: i32 = -8;
/// Opening or mapping a file failed.
pub const ALBERT_ERR_IO: i32 = -9;
/// An internal error (a panic in the engine, caught at the boundary). The handle stays usable.
pub const ALBERT_ERR_PANIC: i32 = -10;

/// Version of this ABI: bumped whenever a signature, struct layout or constant changes.
pub const ALBERT_ABI_VERSION: u32 = 1;

/// `AlbertModelInfo::heads` bit: the pooler (`pooler_output`).
pub const ALBERT_HEAD_POOLER: u32 = 1 << 0;
/// `AlbertModelInfo::heads` bit: the masked-LM head (fill-mask).
pub const ALBERT_HEAD_MASKED_LM: u32 = 1 << 1;
/// `AlbertModelInfo::heads` bit: the sentence-order head.
pub const ALBERT_HEAD_SENTENCE_ORDER: u32 = 1 << 2;
/// `AlbertModelInfo::heads` bit: sequence classification (`albert_classify`).
pub const ALBERT_HEAD_SEQUENCE_CLASSIFICATION: u32 = 1 << 3;
/// `AlbertModelInfo::heads` bit: token classification.
pub const ALBERT_HEAD_TOKEN_CLASSIFICATION: u32 = 1 << 4;
/// `AlbertModelInfo::heads` bit: question answering.
pub const ALBERT_HEAD_QUESTION_ANSWERING: u32 = 1 << 5;
/// `AlbertModelInfo::heads` bit: multiple choice.
pub const ALBERT_HEAD_MULTIPLE_CHOICE: u32 = 1 << 6;
const _: () = assert!(
    ALBERT_HEAD_POOLER == Heads::POOLER
        && ALBERT_HEAD_MASKED_LM == Heads::MLM
        && ALBERT_HEAD_SENTENCE_ORDER == Heads::SOP
        && ALBERT_HEAD_SEQUENCE_CLASSIFICATION == Heads::SEQ_CLS
        && ALBERT_HEAD_TOKEN_CLASSIFICATION == Heads::TOKEN_CLS
        && ALBERT_HEAD_QUESTION_ANSWERING == Heads::QA
        && ALBERT_HEAD_MULTIPLE_CHOICE == Heads::MULTIPLE_CHOICE
);

/// `albert_embed` kind: `batch × seq_len × hidden_size` values: the encoder's `last_hidden_state`.
pub const ALBERT_EMBED_LAST_HIDDEN_STATE: u32 = 0;
/// `albert_embed` kind: `batch × hidden_size` values, `pooler_output`, `tanh(W · h[CLS] + b)`.
pub const ALBERT_EMBED_POOLER_OUTPUT: u32 = 1;
/// `albert_embed` kind: `batch × hidden_size` values, the mean of `last_hidden_state` over tokens whose
/// attention mask is non-zero (all tokens without a mask).
pub const ALBERT_EMBED_MEAN: u32 = 2;

/// `AlbertEncodeOptions::truncation`: `tokenizers`' `longest_first` (the default).
pub const ALBERT_TRUNCATION_LONGEST_FIRST: u32 = 0;
/// `AlbertEncodeOptions::truncation`: cut only the first text.
pub const ALBERT_TRUNCATION_ONLY_FIRST: u32 = 1;
/// `AlbertEncodeOptions::truncation`: cut only the second text.
pub const ALBERT_TRUNCATION_ONLY_SECOND: u32 = 2;

/// Words (8 bytes each) in an [`AlbertModel`]: 24 KiB, the engine's model view (about
/// 16 KiB on 64-bit targets, less on 32-bit ones) with room to grow. On small stacks
/// place the handle in static storage.
pub const ALBERT_MODEL_WORDS: usize = 3072;

// ---- types ------------------------------------------------------------------------------

/// A model handle: opaque storage the caller provides (`AlbertModel m;`), initialised by
/// `albert_model_open_bytes` / `albert_model_open_path` and released by `albert_model_close`.
/// Its size is part of the ABI (`albert_model_storage_size` reports the library's).
#[repr(C)]
pub struct AlbertModel {
    pub _opaque: [u64; ALBERT_MODEL_WORDS],
}

/// What a blob holds (`albert_model_info`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct AlbertModelInfo {
    pub vocab_size: u32,
    pub embedding_size: u32,
    pub hidden_size: u32,
    pub intermediate_size: u32,
    pub num_hidden_layers: u32,
    pub num_attention_heads: u32,
    pub max_position_embeddings: u32,
    pub type_vocab_size: u32,
    /// Classes of the classification head (0 without one).
    pub num_labels: u32,
    /// `ALBERT_HEAD_*` bits.
    pub heads: u32,
    /// 1 when the blob has a tokenizer (text entry points work), else 0.
    pub has_tokenizer: u32,
    /// The `[MASK]` id, or `UINT32_MAX` without a tokenizer or mask token.
    pub mask_token_id: u32,
    /// The padding id.
    pub pad_token_id: u32,
}

/// A batch of token sequences, all `seq_len` long (pad and mask shorter ones).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct AlbertInputs {
    /// `batch × seq_len` token ids (required).
    pub input_ids: *const u32,
    /// `batch × seq_len` segment ids, or NULL for all 0.
    pub token_type_ids: *const u32,
    /// `batch × seq_len` values, 1 for real tokens and 0 for padding, or NULL for all 1.
    pub attention_mask: *const u32,
    pub batch: usize,
    pub seq_len: usize,
}

/// Tokenizer options (`albert_tokenize`); NULL options mean transformers' `tok(text)`:
/// special tokens added, no truncation, no padding.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct AlbertEncodeOptions {
    /// Non-zero: add `[CLS]`/`[SEP]`.
    pub add_special_tokens: u32,
    /// Truncate to this many tokens, special tokens included; 0: no truncation.
    pub max_length: u32,
    /// `ALBERT_TRUNCATION_*`.
    pub truncation: u32,
    /// Non-zero: pad with the pad token up to `max_length`.
    pub pad_to_max_length: u32,
}

/// One fill-mask candidate: what `albert fill-mask --json` prints for it.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct AlbertFillMaskCandidate {
    /// Token id (`token`).
    pub token: u32,
    /// Softmax probability (`score`).
    pub score: f32,
    /// Which `[MASK]` of the text, from 0.
    pub mask_index: u32,
    /// The mask's token position in the encoded sequence.
    pub position: u32,
    /// The decoded token (`token_str`): UTF-8, NUL-terminated, inside the caller's buffer.
    pub token_str: *const c_char,
    /// Bytes of `token_str` before its NUL.
    pub token_str_len: usize,
    /// The text with this token in the mask (`sequence`), as `token_str`.
    pub sequence: *const c_char,
    pub sequence_len: usize,
}

// ---- the boundary -----------------------------------------------------------------------

/// Runs an entry point's body: panics caught (std), failures recorded, a status returned.
fn call(handle: *const AlbertModel, f: impl FnOnce() -> Result<(), Fail>) -> i32 {
    #[cfg(feature = "std")]
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(Fail::new(ALBERT_ERR_PANIC, "internal error: the engine panicked (a bug; please report it)"))
    });
    #[cfg(not(feature = "std"))]
    let r = f();
    match r {
        Ok(()) => ALBERT_OK,
        Err(fail) => {
            state::record(handle, &fail);
            fail.code
        }
    }
}

/// Writes `v` through an out-pointer.
///
/// # Safety
/// `p` is NULL or points to writable memory for a `T`.
unsafe fn put<T>(p: *mut T, v: T, what: &'static str) -> Result<(), Fail> {
    if p.is_null() {
        return Err(Fail::null(what));
    }
    if !p.is_aligned() {
        return Err(Fail::new(ALBERT_ERR_INVALID_ARGUMENT, "an out-pointer is misaligned"));
    }
    // SAFETY: non-null and aligned; writable per the contract.
    unsafe { p.write(v) };
    Ok(())
}

fn loaded<'h>(model: *const AlbertModel) -> Result<&'h Loaded, Fail> {
    state::state(model)?.loaded()
}

/// Validates a blob (the caller checked its alignment) and its tokenizer section.
fn load(bytes: &'static [u8]) -> Result<Loaded, Fail> {
    let model = Model::from_bytes(bytes)?;
    let tokenizer = match model.blob().tokenizer_section() {
        Some(s) => Some(Tokenizer::from_section(s)?),
        None => None,
    };
    Ok(Loaded {
        model,
        tokenizer,
        #[cfg(feature = "std")]
        map: None,
    })
}

/// Checks the storage pointer and installs the outcome of `open` there.
fn open_into(model: *mut AlbertModel, open: impl FnOnce() -> Result<Loaded, Fail>) -> i32 {
    call(model, || {
        if model.is_null() {
            return Err(Fail::null("the model handle is NULL"));
        }
        if !model.is_aligned() {
            return Err(Fail::new(ALBERT_ERR_INVALID_ARGUMENT, "the model handle is misaligned"));
        }
        match open() {
            Ok(l) => {
                // SAFETY: non-null, aligned storage the caller hands over for this handle.
                unsafe { state::install(model, Ok(l)) };
                Ok(())
            }
            Err(f) => {
                // SAFETY: as above.
                unsafe { state::install(model, Err(&f)) };
                Err(f)
            }
        }
    })
}

// ---- entry points: library and handle ---------------------------------------------------

/// The library's `ALBERT_ABI_VERSION`; compare it with the header's.
#[unsafe(no_mangle)]
pub extern "C" fn albert_abi_version() -> u32 {
    ALBERT_ABI_VERSION
}

/// `sizeof(AlbertModel)` as the library was built; compare it with the header's.
#[unsafe(no_mangle)]
pub extern "C" fn albert_model_storage_size() -> usize {
    core::mem::size_of::<AlbertModel>()
}

/// A static, NUL-terminated description of a status code (never NULL).
#[unsafe(no_mangle)]
pub extern "C" fn albert_status_name(status: i32) -> *const c_char {
    let s: &'static core::ffi::CStr = match status {
        ALBERT_OK => c"ALBERT_OK",
        ALBERT_ERR_NULL => c"ALBERT_ERR_NULL: a required pointer is NULL",
        ALBERT_ERR_BAD_HANDLE => c"ALBERT_ERR_BAD_HANDLE: not an open model handle",
        ALBERT_ERR_INVALID_ARGUMENT => c"ALBERT_ERR_INVALID_ARGUMENT: an argument is out of range",
        ALBERT_ERR_BUFFER_TOO_SMALL => c"ALBERT_ERR_BUFFER_TOO_SMALL: a caller buffer is too small",
        ALBERT_ERR_BAD_MODEL => c"ALBERT_ERR_BAD_MODEL: not a valid .albq blob",
        ALBERT_ERR_ALIGNMENT => c"ALBERT_ERR_ALIGNMENT: the blob is not 8-byte aligned",
        ALBERT_ERR_UNSUPPORTED => c"ALBERT_ERR_UNSUPPORTED: the model or build lacks what the call needs",
        ALBERT_ERR_BAD_INPUT => c"ALBERT_ERR_BAD_INPUT: input the model cannot take",
        ALBERT_ERR_IO => c"ALBERT_ERR_IO: opening or mapping a file failed",
        ALBERT_ERR_PANIC => c"ALBERT_ERR_PANIC: internal error",
        _ => c"unknown status code",
    };
    s.as_ptr()
}

/// Opens a model over `len` bytes of an `.albq` blob at `bytes`, validating it (checksum
/// included), without copying it.
///
/// On failure the handle is still initialised in a failed state: `albert_last_error` gives
/// the reason and `albert_model_close` may be called on it (other calls refuse it).
///
/// # Safety
/// `model` points to writable `AlbertModel` storage not currently open (opening an open
/// handle again leaks its mapping). `bytes` points to `len` readable bytes, 8-byte
/// aligned, that stay alive and unchanged until `albert_model_close`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn albert_model_open_bytes(model: *mut AlbertModel, bytes: *const u8, len: usize) -> i32 {
    open_into(model, || {
        if bytes.is_null() {
            return Err(Fail::null("the blob pointer is NULL"));
        }
        if bytes.align_offset(8) != 0 {
            return Err(Fail::new(ALBERT_ERR_ALIGNMENT, "the blob must start at an 8-byte aligned address"));
        }
        // SAFETY: non-null, aligned; the caller keeps the bytes alive and unchanged until
        // close, which drops every borrow of them (the 'static is the handle's lifetime).
        let b: &'static [u8] = unsafe { slice(bytes, len, "the blob pointer is NULL") }?;
        load(b)
    })
}

/// Opens a model by memory-mapping the file at `path` (a NUL-terminated path). Host builds
/// (`std`) only: without it, returns `ALBERT_ERR_UNSUPPORTED`.
///
/// # Safety
/// `model` as for `albert_model_open_bytes`; `path` is NULL or a NUL-terminated string.
/// The file must not be truncated or modified while open.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn albert_model_open_path(model: *mut AlbertModel, path: *const c_char) -> i32 {
    open_into(model, || {
        if path.is_null() {
            return Err(Fail::null("the path is NULL"));
        }
        #[cfg(feature = "std")]
        {
            // SAFETY: non-null and NUL-terminated per the contract.
            let c = unsafe { core::ffi::CStr::from_ptr(path) };
            open_mapped(c)
        }
        #[cfg(not(feature = "std"))]
        {
            Err(Fail::new(ALBERT_ERR_UNSUPPORTED, "albert_model_open_path needs a build with the std feature"))
        }
    })
}

#[cfg(feature = "std")]
fn open_mapped(path: &core::ffi::CStr) -> Result<Loaded, Fail> {
    #[cfg(unix)]
    let p = std::path::PathBuf::from(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(path.to_bytes()));
    #[cfg(not(unix))]
    let p = std::path::PathBuf::from(
        path.to_str().map_err(|_| Fail::new(ALBERT_ERR_INVALID_ARGUMENT, "the path is not UTF-8"))?,
    );
    let io = |e: std::io::Error| Fail::from(Error::Io { path: p.display().to_string(), message: e.to_string() });
    let file = std::fs::File::open(&p).map_err(io)?;
    // SAFETY: mapped read-only and treated as immutable; the file must not change while
    // open (the documented contract, as for any mmap user).
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
    // SAFETY: the mapping's address is stable while `map` lives; `Loaded` keeps it and
    // drops the model and tokenizer (the only borrowers) before it.
    let bytes: &'static [u8] = unsafe { core::slice::from_raw_parts(map.as_ptr(), map.len()) };
    let mut l = load(bytes)?;
    l.map = Some(map);
    Ok(l)
}

/// Releases an open (or failed) handle; its storage may then be reused or freed.
///
/// # Safety
/// `model` is NULL or points to `AlbertModel` storage; no other thread uses the handle
/// during or after the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn albert_model_close(model: *mut AlbertModel) -> i32 {
    call(core::ptr::null(), || {
        state::state(model)?;
        // SAFETY: `state` found an installed state; exclusive use per the contract.
        unsafe { state::uninstall(model) };
        Ok(())
    })
}

/// Copies the message of the last failure into `buf` (NUL-terminated, cut to fit) and its
/// full length to `*len` (when `len` is not NULL). With an open or failed `model`, the
/// handle's last failure; with a NULL `model`, the calling thread's last failure (`std`
/// builds; empty without). An empty message means no failure was recorded.
///
/// # Safety
/// `model` is NULL or as for other calls; `buf` is NULL (with `buf_len` 0) or points to
/// `buf_len` writable bytes; `len` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn albert_last_error(
    model: *const AlbertModel,
    buf: *mut c_char,
    buf_len: usize,
    len: *mut usize,
) -> i32 {
    call(core::ptr::null(), || {
        let m = if model.is_null() { state::thread_message() } else { state::state(model)?.message() };
        let text = m.as_str().as_bytes();
        if !len.is_null() {
            // SAFETY: non-null and writable per the contract.
            unsafe { put(len, text.len(), "len") }?;
        }
        // SAFETY: `buf_len` writable bytes per the contract.
        let out = unsafe { slice_mut(buf.cast::<u8>(), buf_len, "the message buffer is NULL") }?;
        if let Some(room) = out.len().checked_sub(1) {
            let mut n = text.len().min(room);
            while n > 0 && !m.as_str().is_char_boundary(n) {
                n -= 1;
            }
            out[..n].copy_from_slice(&text[..n]);
            out[n] = 0;
        }
        Ok(())
    })
}

/// Fills `*info` with the blob's configuration.
///
/// # Safety
/// `model` points to an `AlbertModel`; `info` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn albert_model_info(model: *const AlbertModel, info: *mut AlbertModelInfo) -> i32 {
    call(model, || {
        let l = loaded(model)?;
        let c = l.model.config();
        let mask = l.tokenizer.as_ref().and_then(|t| t.piece_to_id("[MASK]")).unwrap_or(u32::MAX);
        let i = AlbertModelInfo {
            vocab_size: c.vocab_size,
            embedding_size: c.embedding_size,
            hidden_size: c.hidden_size,
            intermediate_size: c.intermediate_size,
            num_hidden_layers: c.num_hidden_layers,
            num_attention_heads: c.num_attention_heads,
            max_position_embeddings: c.max_position_embeddings,
            type_vocab_size: c.type_vocab_size,
            num_labels: c.num_labels,
            heads: c.heads.0,
            has_tokenizer: l.tokenizer.is_some() as u32,
            mask_token_id: mask,
            pad_token_id: l.tokenizer.as_ref().map_or(c.pad_token_id, |t| t.pad_id()),
        };
        // SAFETY: writable per the contract (NULL is refused).
        unsafe { put(info, i, "info is NULL") }
    })
}

/// Copies the name of class `index` (the checkpoint's `id2label`) into `buf`,
/// NUL-terminated; `*len` gets its length. `ALBERT_ERR_BAD_INPUT` when the blob has no
/// such label; `ALBERT_ERR_BUFFER_TOO_SMALL` (with `*len` set) when `buf` is short.
///
/// # Safety
/// `model` points to an `AlbertModel`; `buf` points to `buf_len` writable bytes; `len`
/// is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn albert_label(
    model: *const AlbertModel,
    index: u32,
    buf: *mut c_char,
    buf_len: usize,
    len: *mut usize,
) -> i32 {
    call(model, || {
        let l = loaded(model)?;
        let label = l.model.label(index as usize).ok_or(Fail::new(ALBERT_ERR_BAD_INPUT, "no label with this index"))?;
        if !len.is_null() {
            // SAFETY: non-null, writable per the contract.
            unsafe { put(len, label.len(), "len") }?;
        }
        // SAFETY: `buf_len` writable bytes per the contract.
        let out = unsafe { slice_mut(buf.cast::<u8>(), buf_len, "the label buffer is NULL") }?;
        if out.len() <= label.len() {
            return Err(Fail::size("label buffer (bytes with the NUL)", label.len() + 1, out.len()));
        }
        out[..label.len()].copy_from_slice(label.as_bytes());
        out[label.len()] = 0;
        Ok(())
    })
}

// ---- entry points: sizes ----------------------------------------------------------------

/// Scratch bytes `albert_forward`, `albert_classify` and `albert_embed` need for `batch`
/// sequences of `seq_len` tokens.
///
/// # Safety
/// `model` points to an `AlbertModel`; `bytes` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn albert_scratch_bytes(
    model: *const AlbertModel,
    seq_len: usize,
    batch: usize,
    bytes: *mut usize,
) -> i32 {
    call(model, || {
        let l = loaded(model)?;
        // SAFETY: writable per the contract.
        unsafe { put(bytes, l.model.scratch_bytes(seq_len, batch), "bytes is NULL") }
    })
}

/// Scratch bytes `albert_tokenize` needs for texts of up to `text_len` bytes (the longer
/// of a pair) and `capacity` tokens (room for the optional arrays passed as NULL).
///
/// # Safety
/// As `albert_scratch_bytes`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn albert_tokenize_scratch_bytes(
    model: *const AlbertModel,
    text_len: usize,
    capacity: usize,
    bytes: *mut usize,
) -> i32 {
    call(model, || {
        loaded(model)?;
        let n = pipeline::ws_bytes(text_len).saturating_add(pipeline::encoding_bytes(capacity));
        // SAFETY: writable per the contract.
        unsafe { put(bytes, n, "bytes is NULL") }
    })
}

/// Scratch bytes `albert_fill_mask` needs for a text of up to `text_len` bytes (enough
/// for the model's longest sequence; shorter texts use less of it).
///
/// # Safety
/// As `albert_scratch_bytes`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn albert_fill_mask_scratch_bytes(
    model: *const AlbertModel,
    text_len: usize,
    bytes: *mut usize,
) -> i32 {
    call(model, || {
        let l = loaded(model)?;
        // SAFETY: writable per the contract.
        unsafe { put(bytes, pipeline::fill_mask_bytes(&l.model, text_len), "bytes is NULL") }
    })
}

// ---- entry points: text -----------------------------------------------------------------

/// Tokenizes UTF-8 `text` (and `pair`, making `[CLS] A [SEP] B [SEP]`, when not NULL) as
/// transformers' `AlbertTokenizerFast` does, into caller arrays of `capacity` tokens;
/// `*n_tokens` gets the count. `offsets` holds `2 × capacity` values: byte `[start, end)`
/// of each token in its text (`[0, 0]` for special tokens). `type_ids`, `attention_mask`
/// and `offsets` may be NULL (the scratch then holds them). When the arrays are short,
/// returns `ALBERT_ERR_BUFFER_TOO_SMALL` with `*n_tokens` set to the count needed.
///
/// # Safety
/// `model` points to an `AlbertModel`; `text` points to `text_len` bytes, `pair` is NULL
/// or points to `pair_len` bytes; `options` is NULL or readable; `scratch` points to
/// `scratch_len` writable bytes; each non-NULL array is writable for its length;
/// `n_tokens` is writable. Buffers do not overlap.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn albert_tokenize(
    model: *const AlbertModel,
    text: *const c_char,
    text_len: usize,
    pair: *const c_char,
    pair_len: usize,
    options: *const AlbertEncodeOptions,
    scratch: *mut c_void,
    scratch_len: usize,
    ids: *mut u32,
    type_ids: *mut u32,
    attention_mask: *mut u32,
    offsets: *mut u32,
    capacity: usize,
    n_tokens: *mut usize,
) -> i32 {
    call(model, || {
        let l = loaded(model)?;
        let tok = pipeline::tokenizer(l)?;
        if n_tokens.is_null() {
            return Err(Fail::null("n_tokens is NULL"));
        }
        // SAFETY (inputs): readable for their lengths per the contract.
        let first = unsafe { slice(text.cast::<u8>(), text_len, "text is NULL") }?;
        // SAFETY: as above.
        let second = unsafe { opt_slice(pair.cast::<u8>(), pair_len, "pair") }?;
        let opts = if options.is_null() {
            EncodeOptions::default()
        } else {
            // SAFETY: non-null and readable per the contract.
            let o = unsafe { options.read_unaligned() };
            let truncation = match o.truncation {
                ALBERT_TRUNCATION_LONGEST_FIRST => Truncation::LongestFirst,
                ALBERT_TRUNCATION_ONLY_FIRST => Truncation::OnlyFirst,
                ALBERT_TRUNCATION_ONLY_SECOND => Truncation::OnlySecond,
                _ => return Err(Fail::new(ALBERT_ERR_INVALID_ARGUMENT, "unknown truncation strategy")),
            };
            EncodeOptions {
                add_special_tokens: o.add_special_tokens != 0,
                max_length: (o.max_length != 0).then_some(o.max_length as usize),
                truncation,
                pad_to_max_length: o.pad_to_max_length != 0,
            }
        };
        // SAFETY: `scratch_len` writable bytes per the contract.
        let scratch = unsafe { slice_mut(scratch.cast::<u8>(), scratch_len, "scratch is NULL") }?;
        let mut a = Arena::new(scratch);
        let mut ws = pipeline::workspace(&mut a, first.len().max(second.map_or(0, <[u8]>::len)))?;
        // SAFETY (outputs): each non-NULL array is writable for `capacity` values (offsets:
        // 2 × capacity) and they do not overlap, per the contract.
        let ids = unsafe { slice_mut(ids, capacity, "ids is NULL") }?;
        let type_ids = match type_ids.is_null() {
            true => a.take(capacity, 0u32, "scratch (token type ids)")?,
            // SAFETY: as above.
            false => unsafe { slice_mut(type_ids, capacity, "type_ids") }?,
        };
        let attention_mask = match attention_mask.is_null() {
            true => a.take(capacity, 0u32, "scratch (attention mask)")?,
            // SAFETY: as above.
            false => unsafe { slice_mut(attention_mask, capacity, "attention_mask") }?,
        };
        let offsets = match offsets.is_null() {
            true => a.take(capacity, [0u32; 2], "scratch (offsets)")?,
            // SAFETY: as above; `[u32; 2]` has the alignment of `u32`.
            false => unsafe { slice_mut(offsets.cast::<[u32; 2]>(), capacity, "offsets") }?,
        };
        let mut out = Encoding { ids, type_ids, attention_mask, offsets };
        let r = tok.encode_bytes(first, second, &opts, &mut ws, &mut out);
        let n = match &r {
            Ok(n) => *n,
            Err(Error::OutputSize { needed, .. }) => *needed,
            Err(_) => 0,
        };
        // SAFETY: non-null (checked) and writable per the contract.
        unsafe { put(n_tokens, n, "n_tokens is NULL") }?;
        r.map(|_| ()).map_err(Fail::from)
    })
}

/// transformers' `fill-mask` pipeline, exactly as `albert fill-mask --json` computes it:
/// the `top_k` most likely tokens for every `[MASK]` in UTF-8 `text`, masks in order,
/// each mask's candidates best first. `*out_count` gets the number of candidates
/// (`masks × min(top_k, vocab_size)`); `strings` receives each candidate's `token_str`
/// and `sequence`, NUL-terminated, and `*strings_used` the bytes used. When `out` or
/// `strings` is short, returns `ALBERT_ERR_BUFFER_TOO_SMALL` with `*out_count` /
/// `*strings_used` set to sizes that suffice.
///
/// # Safety
/// `model` points to an `AlbertModel`; `text` points to `text_len` bytes; `scratch` to
/// `scratch_len` writable bytes; `out` to `out_capacity` writable candidates; `strings`
/// to `strings_len` writable bytes; `out_count` and `strings_used` are writable (or
/// NULL). Buffers do not overlap; the candidates' string pointers point into `strings`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn albert_fill_mask(
    model: *const AlbertModel,
    text: *const c_char,
    text_len: usize,
    top_k: usize,
    scratch: *mut c_void,
    scratch_len: usize,
    out: *mut AlbertFillMaskCandidate,
    out_capacity: usize,
    out_count: *mut usize,
    strings: *mut c_char,
    strings_len: usize,
    strings_used: *mut usize,
) -> i32 {
    call(model, || {
        let l = loaded(model)?;
        // SAFETY (all slices): readable / writable for their lengths per the contract.
        let text = unsafe { slice(text.cast::<u8>(), text_len, "text is NULL") }?;
        // SAFETY: as above.
        let scratch = unsafe { slice_mut(scratch.cast::<u8>(), scratch_len, "scratch is NULL") }?;
        // SAFETY: as above.
        let out = unsafe { slice_mut(out, out_capacity, "out is NULL") }?;
        // SAFETY: as above.
        let strings = unsafe { slice_mut(strings.cast::<u8>(), strings_len, "strings is NULL") }?;
        for c in out.iter_mut() {
            (c.token_str, c.token_str_len, c.sequence, c.sequence_len) = (core::ptr::null(), 0, core::ptr::null(), 0);
        }
        let mut f = pipeline::Filled { count: 0, strings: 0 };
        let r = pipeline::fill_mask(l, text, top_k, scratch, out, strings, &mut f);
        if !out_count.is_null() {
            // SAFETY: non-null and writable per the contract.
            unsafe { put(out_count, f.count, "out_count") }?;
        }
        if !strings_used.is_null() {
            // SAFETY: as above.
            unsafe { put(strings_used, f.strings, "strings_used") }?;
        }
        r
    })
}

// ---- entry points: tensors --------------------------------------------------------------

/// # Safety
/// `p` is NULL or points to an `AlbertInputs` whose arrays are readable for
/// `batch × seq_len` values each.
unsafe fn inputs<'a>(p: *const AlbertInputs) -> Result<Inputs<'a>, Fail> {
    if p.is_null() {
        return Err(Fail::null("inputs is NULL"));
    }
    // SAFETY: non-null and readable per the contract.
    let i = unsafe { p.read_unaligned() };
    let t =
        i.batch.checked_mul(i.seq_len).ok_or(Fail::new(ALBERT_ERR_INVALID_ARGUMENT, "batch × seq_len overflows"))?;
    // SAFETY (arrays): readable for `t` values per the contract.
    let input_ids = unsafe { slice(i.input_ids, t, "inputs->input_ids is NULL") }?;
    // SAFETY: as above.
    let token_type_ids = unsafe { opt_slice(i.token_type_ids, t, "token_type_ids") }?;
    // SAFETY: as above.
    let attention_mask = unsafe { opt_slice(i.attention_mask, t, "attention_mask") }?;
    Ok(Inputs { input_ids, token_type_ids, attention_mask, batch: i.batch, seq_len: i.seq_len })
}

/// Output slice of exactly `needed` values from a caller array of `len`.
///
/// # Safety
/// `p` points to `len` writable floats.
unsafe fn output<'a>(p: *mut f32, len: usize, needed: usize) -> Result<&'a mut [f32], Fail> {
    // SAFETY: per the contract.
    let out = unsafe { slice_mut(p, len, "the output array is NULL") }?;
    if out.len() < needed {
        return Err(Fail::size("output array (floats)", needed, out.len()));
    }
    Ok(&mut out[..needed])
}

/// Runs the encoder and writes what `kind` (`ALBERT_EMBED_*`) asks for into `out`
/// (`out_len` floats, at least the kind's size).
///
/// # Safety
/// `model` points to an `AlbertModel`; `inputs` as described on `AlbertInputs`; `scratch`
/// points to `scratch_len` writable bytes, `out` to `out_len` writable floats; no overlap.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn albert_embed(
    model: *const AlbertModel,
    inputs: *const AlbertInputs,
    kind: u32,
    scratch: *mut c_void,
    scratch_len: usize,
    out: *mut f32,
    out_len: usize,
) -> i32 {
    call(model, || {
        let l = loaded(model)?;
        let m = &l.model;
        // SAFETY: per the contract.
        let inp = unsafe { self::inputs(inputs) }?;
        let h = m.config().hidden_size as usize;
        let needed = match kind {
            ALBERT_EMBED_LAST_HIDDEN_STATE => inp.input_ids.len().saturating_mul(h),
            ALBERT_EMBED_POOLER_OUTPUT | ALBERT_EMBED_MEAN => inp.batch.saturating_mul(h),
            _ => return Err(Fail::new(ALBERT_ERR_INVALID_ARGUMENT, "unknown embedding kind")),
        };
        // SAFETY: per the contract.
        let out = unsafe { output(out, out_len, needed) }?;
        // SAFETY: per the contract.
        let scratch = unsafe { slice_mut(scratch.cast::<u8>(), scratch_len, "scratch is NULL") }?;
        // The pooler reads only [CLS]: the last layer runs for that token alone.
        let mut enc =
            if kind == ALBERT_EMBED_POOLER_OUTPUT { m.encode_pooled(&inp, scratch)? } else { m.encode(&inp, scratch)? };
        match kind {
            ALBERT_EMBED_LAST_HIDDEN_STATE => out.copy_from_slice(enc.last_hidden_state()),
            ALBERT_EMBED_POOLER_OUTPUT => {
                for (b, o) in out.chunks_exact_mut(h).enumerate() {
                    m.pooler_output(&mut enc, b, o)?;
                }
            }
            _ => {
                for (b, o) in out.chunks_exact_mut(h).enumerate() {
                    o.fill(0.0);
                    let mut n = 0usize;
                    for p in 0..inp.seq_len {
                        if inp.attention_mask.is_none_or(|am| am[b * inp.seq_len + p] != 0) {
                            o.iter_mut().zip(enc.token(b, p)).for_each(|(a, &x)| *a += x);
                            n += 1;
                        }
                    }
                    if n > 0 {
                        o.iter_mut().for_each(|a| *a /= n as f32);
                    }
                }
            }
        }
        Ok(())
    })
}

/// The raw encoder: token ids in, `last_hidden_state` (`batch × seq_len × hidden_size`
/// floats) out. The same as `albert_embed` with `ALBERT_EMBED_LAST_HIDDEN_STATE`.
///
/// # Safety
/// As `albert_embed`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn albert_forward(
    model: *const AlbertModel,
    inputs: *const AlbertInputs,
    scratch: *mut c_void,
    scratch_len: usize,
    last_hidden_state: *mut f32,
    len: usize,
) -> i32 {
    // SAFETY: forwarded contract.
    unsafe { albert_embed(model, inputs, ALBERT_EMBED_LAST_HIDDEN_STATE, scratch, scratch_len, last_hidden_state, len) }
}

/// Sequence-classification logits, `batch × num_labels` floats (apply softmax for
/// probabilities; `albert_label` names the classes). `ALBERT_ERR_UNSUPPORTED` when the
/// blob has no sequence-classification head.
///
/// # Safety
/// As `albert_embed`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn albert_classify(
    model: *const AlbertModel,
    inputs: *const AlbertInputs,
    scratch: *mut c_void,
    scratch_len: usize,
    logits: *mut f32,
    len: usize,
) -> i32 {
    call(model, || {
        let l = loaded(model)?;
        let m = &l.model;
        if !m.config().heads.has(Heads::SEQ_CLS) || m.config().num_labels == 0 {
            return Err(Error::NoSuchHead { head: "sequence-classification" }.into());
        }
        // SAFETY: per the contract.
        let inp = unsafe { self::inputs(inputs) }?;
        let n = m.config().num_labels as usize;
        // SAFETY: per the contract.
        let out = unsafe { output(logits, len, inp.batch.saturating_mul(n)) }?;
        // SAFETY: per the contract.
        let scratch = unsafe { slice_mut(scratch.cast::<u8>(), scratch_len, "scratch is NULL") }?;
        // The classifier reads only [CLS]: the last layer runs for that token alone.
        let mut enc = m.encode_pooled(&inp, scratch)?;
        for (b, o) in out.chunks_exact_mut(n).enumerate() {
            m.classify(&mut enc, b, o)?;
        }
        Ok(())
    })
}

#[cfg(all(not(feature = "std"), not(test)))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    // Unreachable for validated inputs; a bug if it happens. Firmware watchdogs reset.
    loop {
        core::hint::spin_loop();
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_a_status_and_a_message() {
        let st = call(core::ptr::null(), || -> Result<(), Fail> { panic!("boom") });
        assert_eq!(st, ALBERT_ERR_PANIC);
        assert!(state::thread_message().as_str().contains("panicked"));
    }

    fn message(m: *const AlbertModel) -> std::string::String {
        let mut buf = [0 as c_char; 128];
        let mut len = 0;
        // SAFETY: a valid buffer; `m` is NULL or a handle.
        assert_eq!(unsafe { albert_last_error(m, buf.as_mut_ptr(), buf.len(), &mut len) }, ALBERT_OK);
        // SAFETY: NUL-terminated by the call.
        let s: std::string::String = unsafe { core::ffi::CStr::from_ptr(buf.as_ptr()) }.to_str().unwrap().into();
        assert!(len >= buf.len() - 1 || len == s.len());
        s
    }

    /// The handle's life without a model (fast enough for Miri): failed opens, messages,
    /// close, and calls on NULL, never-opened, failed and closed handles.
    #[test]
    fn handle_states_and_messages() {
        let mut m = std::boxed::Box::new(AlbertModel { _opaque: [0; ALBERT_MODEL_WORDS] });
        let h: *mut AlbertModel = &mut *m;
        let mut info = AlbertModelInfo::default();
        let blob = [0u64; 8];
        // SAFETY (all calls): valid or deliberately NULL/garbage pointers the API checks.
        unsafe {
            assert_eq!(albert_model_info(h, &mut info), ALBERT_ERR_BAD_HANDLE);
            assert_eq!(albert_model_info(core::ptr::null(), &mut info), ALBERT_ERR_NULL);
            assert!(message(core::ptr::null()).contains("NULL"));
            assert_eq!(albert_model_open_bytes(h, blob.as_ptr().cast::<u8>().add(1), 16), ALBERT_ERR_ALIGNMENT);
            assert!(message(h).contains("aligned"));
            assert_eq!(albert_model_open_bytes(h, blob.as_ptr().cast(), 64), ALBERT_ERR_BAD_MODEL);
            assert!(message(h).contains("magic"), "{}", message(h));
            assert_eq!(albert_model_info(h, &mut info), ALBERT_ERR_BAD_HANDLE);
            assert!(message(h).contains("not open"));
            assert_eq!(albert_model_close(h), ALBERT_OK);
            assert_eq!(albert_model_close(h), ALBERT_ERR_BAD_HANDLE);
            assert_eq!(albert_model_open_path(h, c"/nonexistent.albq".as_ptr()), ALBERT_ERR_IO);
            assert!(message(h).contains("/nonexistent.albq"));
            assert_eq!(albert_model_close(h), ALBERT_OK);
            let mut bytes = 0;
            assert_eq!(albert_scratch_bytes(h, 4, 1, &mut bytes), ALBERT_ERR_BAD_HANDLE);
            assert_eq!(albert_abi_version(), ALBERT_ABI_VERSION);
            assert!(!albert_status_name(-99).is_null());
        }
    }
}
