//! The fill-mask demo shared by the Linux binary and the bare-metal image: `no_std`, no
//! allocator; every buffer comes from the caller ([`Buffers`]).
//!
//! Both front ends print the same lines for the same blob and text, so the host run, the
//! qemu-user run and the bare-metal run can be compared byte for byte (`qemu-test.sh`),
//! and the host run against `albert fill-mask --json`:
//!
//! ```text
//! > The [MASK] function returns a list.
//! mask 1 top 1 id 5 score 0.0579 token 'the'
//! ...
//! # 10 tokens: tokenize 0.041 ms, encode 3.120 ms, mlm 0.410 ms, total 3.571 ms (223187 ticks at 62500000 Hz)
//! ```
//!
//! Lines starting with `#` (timing, sizes) differ between runs; the others must not.
#![no_std]
// `Problem` wraps the engine's `Error`, which carries tensor names inline (no allocator), so
// it is large; it is only built on the cold failure path (the engine allows this too).
#![allow(clippy::result_large_err)]

use albert_engine::tokenizer::Workspace;
use albert_engine::{EncodeOptions, Encoding, Error, Heads, Inputs, Model, Tokenizer, scores};
use core::fmt::{self, Write};

include!(concat!(env!("OUT_DIR"), "/consts.rs"));

/// Candidates printed per `[MASK]` (transformers' default `top_k`).
pub const TOP_K: usize = 5;

/// `[MASK]`s per text for which the last layer runs on the masked tokens alone
/// (`Model::encode_positions`, the list on the stack); more take the full encoder.
pub const MAX_MASKS: usize = 16;

/// Aligns its contents to 64 bytes (the blob format's tensor alignment; the engine needs 8).
#[repr(C, align(64))]
pub struct Aligned<B: ?Sized>(pub B);

/// The blob built into the binary (`FIRMWARE_DEMO_BLOB` at build time, by default
/// `models/albert-pydoc.albq`).
pub static BUNDLED: &Aligned<[u8]> = &Aligned(*include_bytes!(env!("FIRMWARE_DEMO_BLOB")));

/// The demo sentences the bare-metal image runs (the same file `qemu-test.sh` feeds the
/// Linux demo and the host CLI).
pub const SENTENCES: &str = include_str!("../sentences.txt");

/// What can stop the demo.
#[derive(Debug)]
pub enum Problem {
    /// The engine refused the blob or the input.
    Engine(Error),
    /// The blob has no tokenizer section.
    NoTokenizer,
    /// The blob has no masked-LM head.
    NoMlmHead,
    /// The tokenizer has no `[MASK]` piece.
    NoMaskToken,
    /// The text has no `[MASK]`.
    NoMask,
    /// The caller's scratch is smaller than the model needs for this text.
    ScratchTooSmall { needed: usize, found: usize },
    /// The logits buffer does not have `vocab_size` entries.
    LogitsSize { needed: usize, found: usize },
}

impl From<Error> for Problem {
    fn from(e: Error) -> Self {
        Problem::Engine(e)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Engine(e) => write!(f, "{e}"),
            Problem::NoTokenizer => f.write_str("this blob has no tokenizer section"),
            Problem::NoMlmHead => f.write_str("this blob has no masked-LM head"),
            Problem::NoMaskToken => f.write_str("the tokenizer has no [MASK] token"),
            Problem::NoMask => f.write_str("no [MASK] in the input text"),
            Problem::ScratchTooSmall { needed, found } => {
                write!(f, "scratch too small: the model needs {needed} bytes, {found} given")
            }
            Problem::LogitsSize { needed, found } => write!(f, "logits buffer has {found} entries, {needed} needed"),
        }
    }
}

/// Caller-provided memory for one inference.
pub struct Buffers<'b> {
    /// Token outputs: all four the same length, the longest sequence accepted.
    pub ids: &'b mut [u32],
    pub type_ids: &'b mut [u32],
    pub attention_mask: &'b mut [u32],
    pub offsets: &'b mut [[u32; 2]],
    pub workspace: Workspace<'b>,
    /// At least `Model::scratch_bytes(tokens, 1)`.
    pub scratch: &'b mut [u8],
    /// `vocab_size` entries.
    pub logits: &'b mut [f32],
}

/// A monotonic counter: the generic timer on bare metal, `Instant` on Linux.
pub trait Clock {
    /// Ticks since some fixed point.
    fn now(&mut self) -> u64;
    /// Ticks per second.
    fn hz(&self) -> u64;
    /// CPU cycles since some fixed point, where the CPU counts them.
    fn cycles(&mut self) -> Option<u64> {
        None
    }
}

/// Where one inference spent its time, in clock ticks.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timing {
    pub tokens: usize,
    pub tokenize: u64,
    pub encode: u64,
    pub mlm: u64,
    pub hz: u64,
    pub cycles: Option<u64>,
}

impl Timing {
    pub fn total(&self) -> u64 {
        self.tokenize + self.encode + self.mlm
    }
}

/// Ticks as milliseconds with 3 decimals, in integers (no float rounding surprises).
struct Ms(u64, u64);

impl fmt::Display for Ms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = (self.0 as u128 * 1_000_000 / self.1.max(1) as u128) as u64;
        write!(f, "{}.{:03} ms", us / 1000, us % 1000)
    }
}

impl fmt::Display for Timing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hz = self.hz;
        write!(
            f,
            "# {} tokens: tokenize {}, encode {}, mlm {}, total {} ({} ticks at {} Hz)",
            self.tokens,
            Ms(self.tokenize, hz),
            Ms(self.encode, hz),
            Ms(self.mlm, hz),
            Ms(self.total(), hz),
            self.total(),
            hz
        )?;
        if let Some(c) = self.cycles {
            write!(f, " {c} cycles")?;
        }
        Ok(())
    }
}

/// A validated model and its tokenizer.
pub struct Demo<'b> {
    pub model: Model<'b>,
    pub tokenizer: Tokenizer<'b>,
    mask_id: u32,
}

impl<'b> Demo<'b> {
    /// Validates `blob` (checksum included) and its tokenizer; the blob must start at an
    /// 8-byte aligned address.
    pub fn new(blob: &'b [u8]) -> Result<Self, Problem> {
        let model = Model::from_bytes(blob)?;
        let section = model.blob().tokenizer_section().ok_or(Problem::NoTokenizer)?;
        let tokenizer = Tokenizer::from_section(section)?;
        if !model.config().heads.has(Heads::MLM) {
            return Err(Problem::NoMlmHead);
        }
        let mask_id = tokenizer.piece_to_id("[MASK]").ok_or(Problem::NoMaskToken)?;
        Ok(Demo { model, tokenizer, mask_id })
    }

    /// `#` lines describing the model and the int8 kernel the engine picked for this CPU.
    pub fn describe(&self, out: &mut impl Write) -> fmt::Result {
        let c = self.model.config();
        writeln!(
            out,
            "# model: {} bytes, checksum {:#010x}, vocab {}, hidden {}, embedding {}, layers {}, heads {}, ffn {}",
            self.model.blob().bytes().len(),
            self.model.blob().checksum,
            c.vocab_size,
            c.hidden_size,
            c.embedding_size,
            c.num_hidden_layers,
            c.num_attention_heads,
            c.intermediate_size
        )?;
        match albert_engine::kernels::selected() {
            Ok(k) => writeln!(out, "# int8 GEMM kernel: {}", k.name()),
            Err(e) => writeln!(out, "# int8 GEMM kernel: {e}"),
        }
    }

    /// Writes piece `id` as transformers' `decode([id])` (the fill-mask `token_str`) gives
    /// it: the `Metaspace` decoder drops `▁` from a first token; special tokens as their text.
    fn write_token(&self, out: &mut impl Write, id: u32) -> fmt::Result {
        let piece = self.tokenizer.id_to_piece(id).unwrap_or("");
        for c in piece.chars().filter(|&c| c != '\u{2581}') {
            out.write_char(c)?;
        }
        Ok(())
    }

    /// Top-[`TOP_K`] fillers for every `[MASK]` of `text`, printed to `out` (the `>` echo
    /// line, then one line per candidate); returns where the time went. Errors are
    /// returned, not printed.
    pub fn fill_mask(
        &self,
        text: &str,
        bufs: &mut Buffers<'_>,
        clock: &mut impl Clock,
        out: &mut impl Write,
    ) -> Result<Timing, Problem> {
        let vocab = self.model.config().vocab_size as usize;
        if bufs.logits.len() != vocab {
            return Err(Problem::LogitsSize { needed: vocab, found: bufs.logits.len() });
        }
        let cycles0 = clock.cycles();
        let t0 = clock.now();
        // As the host pipeline: truncate to the model's maximum length. A text longer than
        // the output arrays is an error (not a silent, different truncation).
        let max = self.model.config().max_position_embeddings as usize;
        let opts = EncodeOptions { max_length: Some(max), ..EncodeOptions::default() };
        let mut enc = Encoding {
            ids: bufs.ids,
            type_ids: bufs.type_ids,
            attention_mask: bufs.attention_mask,
            offsets: bufs.offsets,
        };
        let n = self.tokenizer.encode(text, None, &opts, &mut bufs.workspace, &mut enc)?;
        let (ids, type_ids) = (&enc.ids[..n], &enc.type_ids[..n]);
        if !ids.contains(&self.mask_id) {
            return Err(Problem::NoMask);
        }
        let needed = self.model.scratch_bytes(n, 1);
        if needed > bufs.scratch.len() {
            return Err(Problem::ScratchTooSmall { needed, found: bufs.scratch.len() });
        }
        let t1 = clock.now();
        let inputs = Inputs { token_type_ids: Some(type_ids), ..Inputs::single(ids) };
        // The last layer for the masked tokens only (`encode_positions`), for up to
        // MAX_MASKS of them (a list on the stack); more take the full encoder.
        let mut at = [0usize; MAX_MASKS];
        let masks = ids.iter().filter(|&&id| id == self.mask_id).count();
        let mask_positions = ids.iter().enumerate().filter(|&(_, &id)| id == self.mask_id).map(|(p, _)| p);
        at.iter_mut().zip(mask_positions.clone()).for_each(|(a, p)| *a = p);
        let pruned = masks <= MAX_MASKS;
        let mut hidden = if pruned {
            self.model.encode_positions(&inputs, &at[..masks], bufs.scratch)?
        } else {
            self.model.encode(&inputs, bufs.scratch)?
        };
        let t2 = clock.now();
        let _ = writeln!(out, "> {text}");
        let mut m = 0;
        for p in mask_positions {
            let row = if pruned { m } else { p };
            m += 1;
            self.model.mlm_logits(&mut hidden, 0, row, bufs.logits)?;
            scores::softmax(bufs.logits);
            let mut best = [(0u32, 0f32); TOP_K];
            let len = scores::top_k(bufs.logits, &mut best, |b, id, p| *b = (id, p), |b| b.1);
            for (r, &(id, score)) in best[..len].iter().enumerate() {
                let _ = write!(out, "mask {m} top {} id {id} score {score:.4} token '", r + 1);
                let _ = self.write_token(out, id);
                let _ = writeln!(out, "'");
            }
        }
        let t3 = clock.now();
        let cycles = match (cycles0, clock.cycles()) {
            (Some(a), Some(b)) => Some(b.wrapping_sub(a)),
            _ => None,
        };
        Ok(Timing { tokens: n, tokenize: t1 - t0, encode: t2 - t1, mlm: t3 - t2, hz: clock.hz(), cycles })
    }
}
