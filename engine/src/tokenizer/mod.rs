//! ALBERT's tokenizer, in the engine: `no_std`, no allocator, no SentencePiece library.
//!
//! The blob's `TOKENIZER` section (`FORMAT.md`, "The tokenizer section") holds the pieces,
//! their scores, a byte trie over them, the added (special) tokens, the normalizer steps
//! and SentencePiece's `precompiled_charsmap`. [`Tokenizer::encode`] reproduces what the
//! Hugging Face `tokenizers` library computes from the checkpoint's `tokenizer.json`, the
//! reference `AlbertTokenizerFast` uses:
//!
//! 1. added tokens (`[CLS]`, `[MASK]`, ...) are cut out of the raw text first, with their
//!    `lstrip`/`rstrip`/`single_word` rules;
//! 2. each remaining piece is normalized by the packed steps in order (``` `` ```/`''` to
//!    `"`, NFKD + accent stripping + lowercasing as one character map, the charsmap per
//!    grapheme, space-run collapsing), every output character keeping the byte range of the
//!    original text it came from, exactly as `tokenizers`' `NormalizedString` aligns it;
//! 3. Metaspace: spaces become `▁`, one is prepended, the piece splits before each `▁`;
//! 4. each word is segmented by Unigram Viterbi over the piece scores (ties keep the first
//!    candidate, unknown characters cost `min_score - 10`, adjacent unknowns fuse);
//! 5. `[CLS] A [SEP]` / `[CLS] A [SEP] B [SEP]`, truncation and padding as `tokenizers`.
//!
//! A section packed in sentencepiece mode follows the slow `AlbertTokenizer` instead
//! (module `sp`): ids only, identical to what SentencePiece and transformers' Python code give.
//!
//! Everything works in caller-provided buffers ([`Workspace`], [`Encoding`]); a text that
//! does not fit gives an error naming the buffer and the size it needed.

pub mod charsmap;
pub mod section;
mod sp;

use crate::error::Error;
use charsmap::Charsmap;
pub use section::Mode;
use section::{NONE, Section, added, pretok, step, u32_at};
use unicode_segmentation::UnicodeSegmentation;

/// One normalized character and the byte range of the original text it stands for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NChar {
    pub c: char,
    pub start: u32,
    pub end: u32,
}

impl NChar {
    /// An empty slot (for static workspace arrays).
    pub const EMPTY: NChar = NChar { c: '\0', start: 0, end: 0 };
}

/// One position of the Viterbi lattice.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Node {
    score: f64,
    from: u32,
    id: u32,
    ch: u32,
    next: u32,
}

impl Node {
    /// An empty slot (for static workspace arrays).
    pub const EMPTY: Node = Node { score: 0.0, from: 0, id: 0, ch: 0, next: 0 };
}

/// Working memory for one call of [`Tokenizer::encode`]: two character buffers (each holds
/// one normalized stretch of text between added tokens), a byte buffer and a lattice (each
/// holds one word). [`Workspace::chars_for`] gives safe sizes for a text length.
pub struct Workspace<'w> {
    pub chars: &'w mut [NChar],
    pub chars2: &'w mut [NChar],
    pub bytes: &'w mut [u8],
    pub lattice: &'w mut [Node],
}

impl Workspace<'_> {
    /// Character capacity enough for any text of `text_bytes` bytes unless normalization
    /// expands it more than 4 times on average (NFKD of a few rare characters does).
    pub const fn chars_for(text_bytes: usize) -> usize {
        4 * text_bytes + 8
    }
}

/// A workspace that owns its buffers (hosts).
#[cfg(feature = "alloc")]
pub struct OwnedWorkspace {
    chars: alloc::vec::Vec<NChar>,
    chars2: alloc::vec::Vec<NChar>,
    bytes: alloc::vec::Vec<u8>,
    lattice: alloc::vec::Vec<Node>,
}

#[cfg(feature = "alloc")]
impl OwnedWorkspace {
    /// Buffers for texts of up to `text_bytes` bytes (see [`Workspace::chars_for`]).
    pub fn new(text_bytes: usize) -> Self {
        let n = Workspace::chars_for(text_bytes);
        OwnedWorkspace {
            chars: alloc::vec![NChar::EMPTY; n],
            chars2: alloc::vec![NChar::EMPTY; n],
            bytes: alloc::vec![0; 4 * n],
            lattice: alloc::vec![Node::EMPTY; 4 * n + 1],
        }
    }

    /// Grows the buffers for a text of `text_bytes` bytes, if they are smaller.
    pub fn reserve(&mut self, text_bytes: usize) {
        if self.chars.len() < Workspace::chars_for(text_bytes) {
            *self = Self::new(text_bytes);
        }
    }

    /// Borrows the buffers.
    pub fn workspace(&mut self) -> Workspace<'_> {
        Workspace {
            chars: &mut self.chars,
            chars2: &mut self.chars2,
            bytes: &mut self.bytes,
            lattice: &mut self.lattice,
        }
    }
}

/// How a pair (or a single sequence) is cut to `max_length`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Truncation {
    LongestFirst,
    OnlyFirst,
    OnlySecond,
}

/// Options of [`Tokenizer::encode`]; the default is transformers' `tok(text)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodeOptions {
    /// Add `[CLS]`/`[SEP]` (transformers' `add_special_tokens=True`).
    pub add_special_tokens: bool,
    /// Truncate to this many tokens, special tokens included.
    pub max_length: Option<usize>,
    pub truncation: Truncation,
    /// Pad with `<pad>` up to `max_length` (transformers' `padding="max_length"`).
    pub pad_to_max_length: bool,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions {
            add_special_tokens: true,
            max_length: None,
            truncation: Truncation::LongestFirst,
            pad_to_max_length: false,
        }
    }
}

/// Caller-provided output arrays; all must have the same length (the capacity).
pub struct Encoding<'o> {
    pub ids: &'o mut [u32],
    pub type_ids: &'o mut [u32],
    pub attention_mask: &'o mut [u32],
    /// Byte offsets `[start, end)` into the text the token came from (the first text for
    /// type id 0, the pair for type id 1); `[0, 0]` for special and padding tokens.
    pub offsets: &'o mut [[u32; 2]],
}

/// A loaded tokenizer, borrowing the blob's section.
#[derive(Clone, Copy, Debug)]
pub struct Tokenizer<'a> {
    s: Section<'a>,
    charsmap: Charsmap<'a>,
    /// First bytes of added tokens, for a fast "can a token start here" test.
    added_first: [u32; 8],
}

/// One token as the pipeline produces it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token {
    pub id: u32,
    pub start: u32,
    pub end: u32,
}

/// Where a sequence's tokens go: `false` stops the pipeline early.
type Sink<'s> = &'s mut dyn FnMut(Token) -> bool;

fn cap_err(what: &'static str, needed: usize, found: usize) -> Error {
    Error::TokenizerCapacity { what, needed, found }
}

impl<'a> Tokenizer<'a> {
    /// Validates a `TOKENIZER` section's bytes.
    pub fn from_section(bytes: &'a [u8]) -> Result<Self, Error> {
        let s = Section::parse(bytes)?;
        let charsmap = Charsmap::parse(s.precompiled).map_err(|_| Error::BadTokenizer {
            field: "precompiled_charsmap",
            offset: 0,
            value: s.precompiled.len() as u64,
            expected: "SentencePiece's layout",
        })?;
        let mut added_first = [0u32; 8];
        for i in 0..s.added.len() / 16 {
            if let Some(t) = s.str_ref(s.added, 16 * i + 4) {
                let b = t.as_bytes()[0];
                added_first[(b >> 5) as usize] |= 1 << (b & 31);
            }
        }
        Ok(Tokenizer { s, charsmap, added_first })
    }

    /// The tokenization semantics this section was packed for.
    pub fn mode(&self) -> Mode {
        self.s.mode
    }

    /// Number of pieces (ids run from 0 to this, exclusive).
    pub fn vocab_size(&self) -> u32 {
        self.s.vocab_size
    }

    /// Piece `id`'s string (`▁` marks a word start).
    pub fn id_to_piece(&self, id: u32) -> Option<&'a str> {
        self.s.piece(id)
    }

    /// The id of the piece spelled exactly `piece`, if there is one.
    pub fn piece_to_id(&self, piece: &str) -> Option<u32> {
        self.trie_lookup(piece.as_bytes())
    }

    /// The id transformers pads with.
    pub fn pad_id(&self) -> u32 {
        if self.s.pad_id == NONE { 0 } else { self.s.pad_id }
    }

    /// Whether `id` is an added special token (`[CLS]`, `<pad>`, ...).
    pub fn is_special(&self, id: u32) -> bool {
        (0..self.s.added.len() / 16)
            .any(|i| u32_at(self.s.added, 16 * i) == id && u32_at(self.s.added, 16 * i + 12) & added::SPECIAL != 0)
    }

    // ---- trie -------------------------------------------------------------------------

    fn node(&self, i: usize) -> (usize, usize, u32) {
        let t = self.s.trie;
        (u32_at(t, 12 * i) as usize, u32_at(t, 12 * i + 4) as usize, u32_at(t, 12 * i + 8))
    }

    fn child(&self, first: usize, count: usize, b: u8) -> Option<usize> {
        // A leaf's `first` is not checked (it has no children to point at), so it may lie
        // anywhere: `get`, not indexing (found by the `blob` fuzz target).
        let labels = self.s.labels.get(first..first.checked_add(count)?)?;
        labels.binary_search(&b).ok().map(|k| first + k)
    }

    /// The unknown piece's id, for text that needs it (both modes); an error for a
    /// tokenizer without one (`unk_id` none), never an id outside the vocabulary.
    fn unk(&self) -> Result<u32, Error> {
        if self.s.unk_id == NONE {
            return Err(Error::BadTokenizer {
                field: "unk_id",
                offset: 20,
                value: NONE as u64,
                expected: "an unknown piece (a character of the text has no piece)",
            });
        }
        Ok(self.s.unk_id)
    }

    fn trie_lookup(&self, key: &[u8]) -> Option<u32> {
        let mut n = 0usize;
        for &b in key {
            let (first, count, _) = self.node(n);
            n = self.child(first, count, b)?;
        }
        let id = self.node(n).2;
        (id != NONE).then_some(id)
    }

    // ---- public entry points ----------------------------------------------------------

    /// Encodes `first` (and `second`, as a pair) into `out`; returns the number of tokens
    /// written. Errors: a workspace or output too small (with the size needed), truncation
    /// that cannot be done, an unknown character with no unknown piece.
    pub fn encode(
        &self,
        first: &str,
        second: Option<&str>,
        opts: &EncodeOptions,
        ws: &mut Workspace<'_>,
        out: &mut Encoding<'_>,
    ) -> Result<usize, Error> {
        let cap = out.ids.len();
        if out.type_ids.len() != cap || out.attention_mask.len() != cap || out.offsets.len() != cap {
            return Err(Error::OutputSize {
                what: "tokenizer outputs (all four arrays)",
                needed: cap,
                found: out.offsets.len().min(out.type_ids.len()).min(out.attention_mask.len()),
            });
        }
        let specials = if opts.add_special_tokens { if second.is_some() { 3 } else { 2 } } else { 0 };
        // Lengths to keep of each sequence (None: all).
        let (keep1, keep2) = match opts.max_length {
            None => (usize::MAX, usize::MAX),
            Some(max) => {
                let n1 = self.count(first, ws)?;
                let n2 = match second {
                    Some(t) => Some(self.count(t, ws)?),
                    None => None,
                };
                let budget = max
                    .checked_sub(specials)
                    .ok_or(Error::Truncation { detail: "max_length is smaller than the number of special tokens" })?;
                if self.s.mode == Mode::SentencePiece {
                    truncate_lengths_slow(n1, n2, budget, opts.truncation)
                } else {
                    truncate_lengths(n1, n2, budget, opts.truncation)?
                }
            }
        };
        let mut o = Out { n: 0, cap, overflow: false };
        if opts.add_special_tokens {
            o.put(out, self.s.cls_id, 0, [0, 0], 1);
        }
        for (seq, text, keep) in [(0u32, Some(first), keep1), (1, second, keep2)] {
            let Some(text) = text else { continue };
            let mut kept = 0usize;
            self.tokens(text, ws, &mut |t: Token| {
                if kept >= keep {
                    return false;
                }
                kept += 1;
                o.put(out, t.id, seq, [t.start, t.end], 1);
                true
            })?;
            if opts.add_special_tokens {
                o.put(out, self.s.sep_id, seq, [0, 0], 1);
            }
        }
        if let Some(max) = opts.max_length.filter(|_| opts.pad_to_max_length) {
            while o.n < max {
                o.put(out, self.pad_id(), 0, [0, 0], 0);
            }
        }
        if o.overflow {
            return Err(Error::OutputSize { what: "token output arrays (capacity)", needed: o.n, found: cap });
        }
        Ok(o.n)
    }

    /// [`Tokenizer::encode`] for byte input: invalid UTF-8 is an error giving its offset.
    pub fn encode_bytes(
        &self,
        first: &[u8],
        second: Option<&[u8]>,
        opts: &EncodeOptions,
        ws: &mut Workspace<'_>,
        out: &mut Encoding<'_>,
    ) -> Result<usize, Error> {
        let a = utf8(first, "first text")?;
        let b = match second {
            Some(s) => Some(utf8(s, "second text")?),
            None => None,
        };
        self.encode(a, b, opts, ws, out)
    }

    /// Number of tokens `text` gives, special tokens not counted.
    pub fn count(&self, text: &str, ws: &mut Workspace<'_>) -> Result<usize, Error> {
        let mut n = 0;
        self.tokens(text, ws, &mut |_| {
            n += 1;
            true
        })?;
        Ok(n)
    }

    /// Calls `f` on each token of `text` (no special tokens) in order, until it returns
    /// `false`. Offsets are bytes of `text`.
    pub fn for_each_token(
        &self,
        text: &str,
        ws: &mut Workspace<'_>,
        f: &mut dyn FnMut(Token) -> bool,
    ) -> Result<(), Error> {
        self.tokens(text, ws, f)
    }

    // ---- the pipeline -----------------------------------------------------------------

    fn tokens(&self, text: &str, ws: &mut Workspace<'_>, sink: Sink<'_>) -> Result<(), Error> {
        if text.len() > u32::MAX as usize / 2 {
            return Err(cap_err("text length (bytes, 32-bit offsets)", text.len(), u32::MAX as usize / 2));
        }
        if self.s.mode == Mode::SentencePiece {
            return self.tokens_sp(text, ws, sink);
        }
        let b = text.as_bytes();
        let mut cur = 0usize; // start of the text not yet emitted
        let mut search = 0usize; // where the next added-token search starts
        while let Some((mut start, end, id, flags)) = self.next_added(text, search) {
            search = end;
            if flags & added::SINGLE_WORD != 0 {
                let word = |c: char| c.is_alphanumeric() || c == '_';
                let before = start == 0 || !text[..start].chars().next_back().is_some_and(word);
                let after = end == b.len() || !text[end..].chars().next().is_some_and(word);
                if !before || !after {
                    continue;
                }
            }
            if flags & added::LSTRIP != 0 {
                let trimmed = text[..start].trim_end_matches(char::is_whitespace).len();
                start = trimmed.max(cur);
            }
            let mut stop = end;
            if flags & added::RSTRIP != 0 {
                stop += text[end..].len() - text[end..].trim_start_matches(char::is_whitespace).len();
            }
            if cur < start && !self.piece(text, cur, start, ws, sink)? {
                return Ok(());
            }
            if !sink(Token { id, start: start as u32, end: stop as u32 }) {
                return Ok(());
            }
            cur = stop;
        }
        if cur < b.len() {
            self.piece(text, cur, b.len(), ws, sink)?;
        }
        Ok(())
    }

    /// The leftmost-longest added token at or after `from`: (start, end, id, flags).
    fn next_added(&self, text: &str, from: usize) -> Option<(usize, usize, u32, u32)> {
        let a = self.s.added;
        let count = a.len() / 16;
        if count == 0 {
            return None;
        }
        let b = text.as_bytes();
        for p in from..b.len() {
            let c = b[p];
            if self.added_first[(c >> 5) as usize] & (1 << (c & 31)) == 0 || !text.is_char_boundary(p) {
                continue;
            }
            let mut best: Option<(usize, u32, u32)> = None;
            for i in 0..count {
                let Some(t) = self.s.str_ref(a, 16 * i + 4) else { continue };
                if b[p..].starts_with(t.as_bytes()) && best.is_none_or(|(l, _, _)| t.len() > l) {
                    best = Some((t.len(), u32_at(a, 16 * i), u32_at(a, 16 * i + 12)));
                }
            }
            if let Some((l, id, flags)) = best {
                return Some((p, p + l, id, flags));
            }
        }
        None
    }

    /// Normalizes, pre-tokenizes and segments `text[start..end]`; `false` if the sink
    /// stopped.
    fn piece(
        &self,
        text: &str,
        start: usize,
        end: usize,
        ws: &mut Workspace<'_>,
        sink: Sink<'_>,
    ) -> Result<bool, Error> {
        let Workspace { chars, chars2, bytes, lattice } = ws;
        let (mut cur, mut other): (&mut [NChar], &mut [NChar]) = (&mut **chars, &mut **chars2);
        let mut n = 0usize;
        for (i, c) in text[start..end].char_indices() {
            let s = (start + i) as u32;
            if n == cur.len() {
                return Err(cap_err(
                    "workspace characters (text between added tokens)",
                    text[start..end].chars().count(),
                    cur.len(),
                ));
            }
            cur[n] = NChar { c, start: s, end: s + c.len_utf8() as u32 };
            n += 1;
        }
        for k in 0..self.s.steps.len() / 24 {
            let st = &self.s.steps[24 * k..24 * k + 24];
            let kind = u32_at(st, 0);
            let flags = u32_at(st, 4);
            let pat = self.s.str_ref(self.s.steps, 24 * k + 8).unwrap_or("");
            let rep = self.s.str_ref(self.s.steps, 24 * k + 16).unwrap_or("");
            let mut w = Writer { buf: other, n: 0, overflow: 0 };
            match kind {
                step::REPLACE => replace_literal(&cur[..n], pat, rep, &mut w),
                step::REPLACE_RUN => {
                    replace_run(&cur[..n], pat.chars().next().unwrap_or(' '), flags as usize, rep, &mut w)
                }
                step::CHARMAP => self.charmap_step(&cur[..n], flags, &mut w),
                step::PRECOMPILED => self.precompiled_step(&cur[..n], bytes, &mut w)?,
                _ => {}
            }
            let m = w.finish("workspace characters (normalized text)")?;
            other = cur;
            cur = w.buf;
            n = m;
        }
        // Pre-tokenization: WhitespaceSplit (optional), then Metaspace on each part.
        let pt = self.s.pretok;
        let mut parts_from = 0usize;
        while parts_from < n {
            let (ps, pe) = if pt & pretok::WHITESPACE_SPLIT != 0 {
                let Some(s) = (parts_from..n).find(|&i| !cur[i].c.is_whitespace()) else { break };
                let e = (s..n).find(|&i| cur[i].c.is_whitespace()).unwrap_or(n);
                (s, e)
            } else {
                (0, n)
            };
            parts_from = pe;
            if !self.metaspace(&cur[ps..pe], start, other, bytes, lattice, sink)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn metaspace(
        &self,
        part: &[NChar],
        piece_start: usize,
        buf: &mut [NChar],
        bytes: &mut [u8],
        lattice: &mut [Node],
        sink: Sink<'_>,
    ) -> Result<bool, Error> {
        if part.is_empty() {
            return Ok(true);
        }
        let rep = self.s.replacement;
        let mut w = Writer { buf, n: 0, overflow: 0 };
        let scheme = self.s.pretok & pretok::PREPEND_MASK;
        let first_is_rep = part[0].c == ' ' || part[0].c == rep;
        let prepend = !first_is_rep
            && (scheme == pretok::PREPEND_ALWAYS
                || (scheme == pretok::PREPEND_FIRST && part[0].start as usize == piece_start && piece_start == 0));
        if prepend {
            w.push(NChar { c: rep, ..part[0] });
        }
        for c in part {
            w.push(if c.c == ' ' { NChar { c: rep, ..*c } } else { *c });
        }
        let n = w.finish("workspace characters (pre-tokenized text)")?;
        let chars = &buf[..n];
        if self.s.pretok & pretok::SPLIT == 0 {
            return self.viterbi(chars, bytes, lattice, sink);
        }
        let mut s = 0;
        while s < n {
            let mut e = s + 1;
            while e < n && chars[e].c != rep {
                e += 1;
            }
            if !self.viterbi(&chars[s..e], bytes, lattice, sink)? {
                return Ok(false);
            }
            s = e;
        }
        Ok(true)
    }

    /// Unigram Viterbi over one word, as `tokenizers`' `Unigram::encode_optimized`.
    fn viterbi(&self, word: &[NChar], bytes: &mut [u8], lattice: &mut [Node], sink: Sink<'_>) -> Result<bool, Error> {
        // UTF-8 of the word, and for every char start the char's index.
        let need: usize = word.iter().map(|c| c.c.len_utf8()).sum();
        if need > bytes.len() || need + 1 > lattice.len() {
            return Err(cap_err(
                "workspace bytes/lattice (longest word in UTF-8 bytes)",
                need + 1,
                bytes.len().min(lattice.len()),
            ));
        }
        let mut len = 0usize;
        for (i, c) in word.iter().enumerate() {
            lattice[len] = Node { score: 0.0, from: NONE, id: 0, ch: i as u32, next: 0 };
            len += c.c.encode_utf8(&mut bytes[len..]).len();
            for node in &mut lattice[len - c.c.len_utf8() + 1..len] {
                *node = Node { score: 0.0, from: NONE, id: 0, ch: NONE, next: 0 };
            }
        }
        lattice[len] = Node { score: 0.0, from: NONE, id: 0, ch: word.len() as u32, next: 0 };
        let w = &bytes[..len];
        let unk_score = self.s.unk_score;
        let mut p = 0usize;
        while p < len {
            let here = lattice[p].score;
            let mblen = utf8_len(w[p]);
            let mut single = false;
            let mut node = 0usize;
            let mut q = p;
            while q < len {
                let (first, count, _) = self.node(node);
                match self.child(first, count, w[q]) {
                    Some(c) => node = c,
                    None => break,
                }
                q += 1;
                let id = self.node(node).2;
                if id != NONE {
                    let cand = self.s.score(id) + here;
                    let t = &mut lattice[q];
                    if t.from == NONE || cand > t.score {
                        *t = Node { score: cand, from: p as u32, id, ..*t };
                    }
                    if q - p == mblen {
                        single = true;
                    }
                }
            }
            if !single {
                let unk = self.unk()?;
                let cand = unk_score + here;
                let t = &mut lattice[p + mblen];
                if t.from == NONE || cand > t.score {
                    *t = Node { score: cand, from: p as u32, id: unk, ..*t };
                }
            }
            p += mblen;
        }
        // Link the best path forwards.
        let mut e = len;
        while e > 0 {
            let s = lattice[e].from as usize;
            if s >= e {
                return Err(Error::BadTokenizer {
                    field: "trie",
                    offset: 0,
                    value: e as u64,
                    expected: "a lattice path",
                });
            }
            lattice[s].next = e as u32;
            e = s;
        }
        let unk = self.s.unk_id;
        let mut s = 0usize;
        while s < len {
            let mut e = lattice[s].next as usize;
            let mut id = lattice[e].id;
            if id == unk {
                // Fuse a run of unknowns; the fused string keeps its own id if it has one.
                while e < len && lattice[lattice[e].next as usize].id == unk {
                    e = lattice[e].next as usize;
                }
                id = self.trie_lookup(&w[s..e]).unwrap_or(unk);
            }
            let a = word.get(lattice[s].ch as usize).copied().unwrap_or(NChar::EMPTY);
            let b = word.get((lattice[e].ch as usize).wrapping_sub(1)).copied().unwrap_or(a);
            if !sink(Token { id, start: a.start, end: b.end }) {
                return Ok(false);
            }
            s = e;
        }
        Ok(true)
    }

    // ---- normalizer steps -------------------------------------------------------------

    fn charmap_step(&self, src: &[NChar], flags: u32, w: &mut Writer<'_>) {
        let table = self.s.charmap;
        let entries = table.len() / 12;
        for c in src {
            let cp = c.c as u32;
            if flags & step::HANGUL != 0 && (0xAC00..0xAC00 + 11172).contains(&cp) {
                let s = cp - 0xAC00;
                let (l, v, t) = (0x1100 + s / 588, 0x1161 + (s % 588) / 28, 0x11A7 + s % 28);
                for j in [l, v, t] {
                    if j != 0x11A7 {
                        w.push(NChar { c: char::from_u32(j).unwrap_or('\u{FFFD}'), ..*c });
                    }
                }
                continue;
            }
            // Binary search over the sorted code points.
            let (mut lo, mut hi) = (0usize, entries);
            let mut found = None;
            while lo < hi {
                let mid = (lo + hi) / 2;
                let k = u32_at(table, 12 * mid);
                if k < cp {
                    lo = mid + 1;
                } else if k > cp {
                    hi = mid;
                } else {
                    found = Some(mid);
                    break;
                }
            }
            match found.and_then(|m| self.s.str_ref(table, 12 * m + 4)) {
                Some(out) => {
                    for o in out.chars() {
                        w.push(NChar { c: o, ..*c });
                    }
                }
                None => w.push(*c),
            }
        }
    }

    /// `tokenizers`' `Precompiled` normalizer, alignment quirks included: each grapheme
    /// shorter than 6 bytes is looked up whole, else char by char; a replacement's extra
    /// characters count as insertions; a shorter one takes the removal out of the last
    /// transformation so far (which may belong to an earlier grapheme, or be missing).
    fn precompiled_step(&self, src: &[NChar], bytes: &mut [u8], w: &mut Writer<'_>) -> Result<(), Error> {
        let need: usize = src.iter().map(|c| c.c.len_utf8()).sum();
        if need > bytes.len() {
            return Err(cap_err("workspace bytes (normalized text in UTF-8)", need, bytes.len()));
        }
        let mut len = 0;
        for c in src {
            len += c.c.encode_utf8(&mut bytes[len..]).len();
        }
        let text = core::str::from_utf8(&bytes[..len]).unwrap_or("");
        let mut t = Transform { src, k: 0, pending: None };
        let mut ci = 0usize; // index in src of the grapheme's first char
        for g in text.graphemes(true) {
            let gchars = g.chars().count();
            let whole = if g.len() < 6 { self.charsmap.transform(g.as_bytes()) } else { None };
            if let Some(norm) = whole {
                t.replace(gchars, norm, w);
            } else {
                for (i, c) in g.char_indices() {
                    match self.charsmap.transform(&g.as_bytes()[i..i + c.len_utf8()]) {
                        Some(norm) => t.replace(1, norm, w),
                        None => t.push(c, 0, w),
                    }
                }
            }
            ci += gchars;
        }
        debug_assert_eq!(ci, src.len());
        t.flush(w);
        Ok(())
    }
}

/// Tokens written so far into an [`Encoding`]; past the capacity they are only counted.
struct Out {
    n: usize,
    cap: usize,
    overflow: bool,
}

impl Out {
    fn put(&mut self, out: &mut Encoding<'_>, id: u32, ty: u32, off: [u32; 2], mask: u32) {
        if self.n < self.cap {
            out.ids[self.n] = id;
            out.type_ids[self.n] = ty;
            out.attention_mask[self.n] = mask;
            out.offsets[self.n] = off;
        } else {
            self.overflow = true;
        }
        self.n += 1;
    }
}

/// Output of one step, into a fixed buffer; counts what did not fit.
struct Writer<'b> {
    buf: &'b mut [NChar],
    n: usize,
    overflow: usize,
}

impl Writer<'_> {
    fn push(&mut self, c: NChar) {
        if self.n < self.buf.len() {
            self.buf[self.n] = c;
            self.n += 1;
        } else {
            self.overflow += 1;
        }
    }

    fn finish(&self, what: &'static str) -> Result<usize, Error> {
        if self.overflow > 0 {
            return Err(cap_err(what, self.n + self.overflow, self.buf.len()));
        }
        Ok(self.n)
    }
}

/// `NormalizedString::transform`: (char, change) pairs consume the source positionally.
struct Transform<'s> {
    src: &'s [NChar],
    /// Source characters consumed so far.
    k: usize,
    /// The last pair, still open to `replace`'s removal adjustment.
    pending: Option<(char, isize)>,
}

impl Transform<'_> {
    fn emit(&mut self, c: char, change: isize, w: &mut Writer<'_>) {
        let (start, end) = if change > 0 {
            match self.k.checked_sub(1).and_then(|i| self.src.get(i)) {
                Some(p) => (p.start, p.end),
                None => (0, 0),
            }
        } else {
            let p = self.src.get(self.k).or(self.src.last()).copied().unwrap_or(NChar::EMPTY);
            self.k += 1 + (-change) as usize;
            (p.start, p.end)
        };
        w.push(NChar { c, start, end });
    }

    fn push(&mut self, c: char, change: isize, w: &mut Writer<'_>) {
        if let Some((pc, pch)) = self.pending.take() {
            self.emit(pc, pch, w);
        }
        self.pending = Some((c, change));
    }

    fn replace(&mut self, old: usize, new: &str, w: &mut Writer<'_>) {
        let n = new.chars().count();
        let diff = n as isize - old as isize;
        for (j, c) in new.chars().enumerate() {
            let change = if diff > 0 && j as isize >= n as isize - diff { 1 } else { 0 };
            self.push(c, change, w);
        }
        if diff < 0
            && let Some((_, ch)) = self.pending.as_mut()
        {
            *ch += diff;
        }
    }

    fn flush(&mut self, w: &mut Writer<'_>) {
        if let Some((c, ch)) = self.pending.take() {
            self.emit(c, ch, w);
        }
    }
}

fn replace_literal(src: &[NChar], pat: &str, rep: &str, w: &mut Writer<'_>) {
    let m = pat.chars().count();
    let mut i = 0;
    while i < src.len() {
        if i + m <= src.len() && src[i..i + m].iter().map(|c| c.c).eq(pat.chars()) {
            let last = src[i + m - 1];
            for c in rep.chars() {
                w.push(NChar { c, ..last });
            }
            i += m;
        } else {
            w.push(src[i]);
            i += 1;
        }
    }
}

fn replace_run(src: &[NChar], ch: char, min: usize, rep: &str, w: &mut Writer<'_>) {
    let mut i = 0;
    while i < src.len() {
        if src[i].c == ch {
            let mut e = i;
            while e < src.len() && src[e].c == ch {
                e += 1;
            }
            if e - i >= min {
                let last = src[e - 1];
                for c in rep.chars() {
                    w.push(NChar { c, ..last });
                }
            } else {
                for c in &src[i..e] {
                    w.push(*c);
                }
            }
            i = e;
        } else {
            w.push(src[i]);
            i += 1;
        }
    }
}

fn utf8<'t>(b: &'t [u8], which: &'static str) -> Result<&'t str, Error> {
    core::str::from_utf8(b).map_err(|e| Error::InvalidUtf8 { which, offset: e.valid_up_to() })
}

fn utf8_len(b: u8) -> usize {
    match b {
        0..=0x7F => 1,
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}

/// transformers' slow `truncate_sequences` (stride 0, from the right): a truncation that
/// cannot be done leaves the sequences whole (transformers logs an error and goes on).
pub fn truncate_lengths_slow(n1: usize, n2: Option<usize>, budget: usize, strategy: Truncation) -> (usize, usize) {
    let total = n1 + n2.unwrap_or(0);
    if total <= budget {
        return (n1, n2.unwrap_or(0));
    }
    let remove = total - budget;
    match (strategy, n2) {
        (Truncation::OnlyFirst, _) | (Truncation::LongestFirst, None) => {
            (if n1 > remove { n1 - remove } else { n1 }, n2.unwrap_or(0))
        }
        (Truncation::LongestFirst, Some(n2)) => {
            let first = n2.abs_diff(n1).min(remove);
            let second = remove - first;
            let (a, b) = if n1 > n2 {
                (first + second / 2, second - second / 2)
            } else {
                (second / 2, first + second - second / 2)
            };
            (n1.saturating_sub(a), n2.saturating_sub(b))
        }
        (Truncation::OnlySecond, Some(n2)) => (n1, if n2 > remove { n2 - remove } else { n2 }),
        (Truncation::OnlySecond, None) => (n1, 0),
    }
}

/// `tokenizers`' `truncate_encodings` (stride 0, from the right): how many tokens of each
/// sequence to keep within `budget`.
pub fn truncate_lengths(
    n1: usize,
    n2: Option<usize>,
    budget: usize,
    strategy: Truncation,
) -> Result<(usize, usize), Error> {
    let total = n1 + n2.unwrap_or(0);
    if total <= budget {
        return Ok((n1, n2.unwrap_or(0)));
    }
    let remove = total - budget;
    match (strategy, n2) {
        (Truncation::LongestFirst, None) => Ok((total - remove, 0)),
        (Truncation::LongestFirst, Some(n2)) => {
            let (mut a, mut b) = (n1, n2);
            let swap = a > b;
            if swap {
                core::mem::swap(&mut a, &mut b);
            }
            b = if a > budget { a } else { a.max(budget - a) };
            if a + b > budget {
                a = budget / 2;
                b = a + budget % 2;
            }
            if swap {
                core::mem::swap(&mut a, &mut b);
            }
            Ok((a.min(n1), b.min(n2)))
        }
        (Truncation::OnlyFirst, _) => {
            if n1 > remove {
                Ok((n1 - remove, n2.unwrap_or(0)))
            } else {
                Err(Error::Truncation {
                    detail: "the first sequence is too short to remove enough tokens (only_first)",
                })
            }
        }
        (Truncation::OnlySecond, None) => Err(Error::Truncation { detail: "only_second needs a pair" }),
        (Truncation::OnlySecond, Some(n2)) => {
            if n2 > remove {
                Ok((n1, n2 - remove))
            } else {
                Err(Error::Truncation {
                    detail: "the second sequence is too short to remove enough tokens (only_second)",
                })
            }
        }
    }
}
