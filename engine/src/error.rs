//! The engine's one error type: what was expected, what was found, and where.

use core::fmt;

/// A tensor name carried inside an error (copied, so errors outlive the blob).
pub type Name = heapless::String<128>;

/// Copies `s` into a [`Name`], keeping as much as fits.
pub(crate) fn name(s: &str) -> Name {
    let mut out = Name::new();
    for c in s.chars() {
        if out.push(c).is_err() {
            break;
        }
    }
    out
}

/// Everything that can go wrong while loading a blob or running the model.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// The buffer ends before a structure that must be there.
    Truncated { what: &'static str, needed: u64, found: u64 },
    /// The first 8 bytes are not the `.albq` magic.
    BadMagic { found: [u8; 8] },
    /// A format version this engine does not read.
    UnsupportedVersion { found: u32, supported: u32 },
    /// The CRC-32 stored in the header disagrees with the file's bytes.
    Checksum { stored: u32, computed: u32 },
    /// The buffer or a region inside it is not aligned as the format requires.
    Misaligned { what: &'static str, offset: u64, align: u64 },
    /// A region points outside the file (or outside its section).
    OutOfBounds { what: &'static str, offset: u64, len: u64, limit: u64 },
    /// Two regions of the file overlap.
    Overlap { what: &'static str, offset: u64 },
    /// A header or table field holds a value the format does not allow.
    BadField { field: &'static str, offset: u64, value: u64, expected: &'static str },
    /// A section kind this reader does not know but must understand.
    UnknownRequiredSection { kind: u32, offset: u64 },
    /// A section every blob must have is absent from the section table.
    MissingSection { kind: &'static str },
    /// A tensor entry's name is not valid UTF-8 or is empty.
    BadTensorName { entry: u32, offset: u64 },
    /// A tensor the engine does not know (a blob for another engine or corrupted names).
    UnknownTensor { name: Name },
    /// The same tensor name appears twice.
    DuplicateTensor { name: Name },
    /// A tensor the configuration requires is absent.
    MissingTensor { name: Name },
    /// A tensor's shape disagrees with the configuration.
    ShapeMismatch { name: Name, expected: [u32; 4], found: [u32; 4] },
    /// A tensor's dtype, quantization or layout is not one this tensor may have.
    BadTensorEncoding { name: Name, detail: &'static str },
    /// The model configuration is inconsistent or beyond what the engine supports.
    BadConfig { field: &'static str, value: u64, detail: &'static str },
    /// Inference input that the model cannot take.
    BadInput { what: &'static str, index: usize, value: u64, limit: u64 },
    /// A position list ([`crate::Model::encode_positions`]) that is empty, not strictly
    /// increasing, or reaches past the sequence.
    BadPositions { detail: &'static str, index: usize, value: usize, seq_len: usize },
    /// The caller's scratch buffer is smaller than [`crate::Model::scratch_bytes`].
    ScratchTooSmall { needed: usize, found: usize },
    /// A head was asked for that the blob does not contain.
    NoSuchHead { head: &'static str },
    /// A caller-provided output buffer has the wrong length.
    OutputSize { what: &'static str, needed: usize, found: usize },
    /// The blob's `TOKENIZER` section holds a value its layout does not allow.
    BadTokenizer { field: &'static str, offset: u64, value: u64, expected: &'static str },
    /// A tokenizer workspace buffer is too small for this text.
    TokenizerCapacity { what: &'static str, needed: usize, found: usize },
    /// Text given as bytes is not UTF-8.
    InvalidUtf8 { which: &'static str, offset: usize },
    /// Truncation that the options make impossible (as `tokenizers` refuses it).
    Truncation { detail: &'static str },
    /// An I/O error while opening or mapping a file (host builds only).
    #[cfg(feature = "std")]
    Io { path: std::string::String, message: std::string::String },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Error::*;
        match self {
            Truncated { what, needed, found } => {
                write!(f, "blob truncated: {what} needs {needed} bytes but only {found} are there")
            }
            BadMagic { found } => {
                write!(f, "not an .albq blob: magic is {found:02x?}, expected \"ALBQ\\r\\n\\x1a\\n\"")
            }
            UnsupportedVersion { found, supported } => write!(
                f,
                "blob format version {found} is not supported (this engine reads version {supported}); re-run quantize with this version of the tools"
            ),
            Checksum { stored, computed } => {
                write!(f, "blob corrupted: checksum stored in header is {stored:#010x}, bytes give {computed:#010x}")
            }
            Misaligned { what, offset, align } => {
                write!(f, "{what} at byte offset {offset} is not {align}-byte aligned")
            }
            OutOfBounds { what, offset, len, limit } => {
                write!(f, "{what} at byte offset {offset} with length {len} runs past its limit of {limit} bytes")
            }
            Overlap { what, offset } => write!(f, "{what} at byte offset {offset} overlaps another region"),
            BadField { field, offset, value, expected } => {
                write!(f, "header field `{field}` at byte offset {offset} is {value}, expected {expected}")
            }
            UnknownRequiredSection { kind, offset } => write!(
                f,
                "section of unknown kind {kind} (table entry at byte offset {offset}) is marked required; this blob needs a newer engine"
            ),
            MissingSection { kind } => write!(f, "blob has no {kind} section"),
            BadTensorName { entry, offset } => {
                write!(f, "tensor entry {entry} (byte offset {offset}) has an empty or non-UTF-8 name")
            }
            UnknownTensor { name } => write!(f, "unknown tensor `{name}` in blob"),
            DuplicateTensor { name } => write!(f, "tensor `{name}` appears twice in blob"),
            MissingTensor { name } => write!(f, "tensor `{name}` is missing from blob"),
            ShapeMismatch { name, expected, found } => {
                write!(f, "tensor `{name}` has shape {found:?} but the config implies {expected:?}")
            }
            BadTensorEncoding { name, detail } => write!(f, "tensor `{name}`: {detail}"),
            BadConfig { field, value, detail } => write!(f, "config `{field}` = {value}: {detail}"),
            BadInput { what, index, value, limit } => {
                write!(f, "invalid input: {what} at index {index} is {value}, must be below {limit}")
            }
            BadPositions { detail, index, value, seq_len } => {
                write!(f, "invalid positions: {detail} (entry {index} is {value}; the sequence has {seq_len} tokens)")
            }
            ScratchTooSmall { needed, found } => {
                write!(f, "scratch buffer is {found} bytes but this input needs {needed} (see Model::scratch_bytes)")
            }
            NoSuchHead { head } => write!(f, "this blob has no {head} head"),
            OutputSize { what, needed, found } => {
                write!(f, "output buffer for {what} has length {found}, expected {needed}")
            }
            BadTokenizer { field, offset, value, expected } => write!(
                f,
                "tokenizer section field `{field}` at byte offset {offset} (from the section start) is {value}, expected {expected}"
            ),
            TokenizerCapacity { what, needed, found } => {
                write!(f, "tokenizer buffer too small: {what} needs {needed} but has room for {found}")
            }
            InvalidUtf8 { which, offset } => {
                write!(f, "{which} is not valid UTF-8 (first bad byte at offset {offset})")
            }
            Truncation { detail } => write!(f, "cannot truncate: {detail}"),
            #[cfg(feature = "std")]
            Io { path, message } => write!(f, "{path}: {message}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}
