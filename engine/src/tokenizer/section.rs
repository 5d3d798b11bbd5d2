//! The `TOKENIZER` section (kind 5): layout constants and the validated, borrowed view.
//!
//! `FORMAT.md` ("The tokenizer section") is the specification; this file checks every
//! offset, length and index once, so the tokenizer can later read without re-checking.

use crate::error::Error;

/// First 8 bytes of the section.
pub const MAGIC: [u8; 8] = *b"ALBTOK\0\x01";
/// The layout version this engine reads.
pub const LAYOUT_VERSION: u32 = 1;
/// Bytes of the fixed header (before the region table).
pub const HEADER_BYTES: usize = 64;
/// Entries of the region table.
pub const REGIONS: usize = 12;
/// Bytes of header plus region table.
pub const PREFIX_BYTES: usize = HEADER_BYTES + 8 * REGIONS;
/// Most normalizer steps.
pub const MAX_STEPS: usize = 8;
/// "No id" (e.g. no unknown piece).
pub const NONE: u32 = u32::MAX;

/// Region indices in the region table.
pub mod region {
    /// UTF-8 bytes that every other table points into.
    pub const STRINGS: usize = 0;
    /// Per piece id: u32 offset, u32 length into STRINGS.
    pub const PIECES: usize = 1;
    /// Per piece id: f64 score.
    pub const SCORES: usize = 2;
    /// Per piece id: u8 SentencePiece piece type.
    pub const TYPES: usize = 3;
    /// Trie nodes, 12 bytes each: u32 first child, u32 child count, u32 piece id or NONE.
    pub const TRIE: usize = 4;
    /// Per trie node: u8 label of the edge into it.
    pub const LABELS: usize = 5;
    /// Added tokens, 16 bytes each: u32 id, u32 offset, u32 length, u32 flags.
    pub const ADDED: usize = 6;
    /// Character map, 12 bytes per entry: u32 code point, u32 offset, u32 length.
    pub const CHARMAP: usize = 7;
    /// SentencePiece `precompiled_charsmap`, verbatim.
    pub const PRECOMPILED: usize = 8;
    /// Normalizer steps, 24 bytes each.
    pub const STEPS: usize = 9;
    /// Sentencepiece mode: the per-character lowercasing transformers applies to the raw
    /// text before splitting off added tokens (same entry layout as CHARMAP; CHARMAP then
    /// holds NFKD + dropping combining classes ≠ 0 + lowercasing, the slow preprocessing).
    pub const LOWER: usize = 10;
}

/// Normalizer step kinds.
pub mod step {
    /// Replace every non-overlapping occurrence of a literal string (tokenizers' `Replace`
    /// with a `String` pattern).
    pub const REPLACE: u32 = 1;
    /// Map each character through the CHARMAP table (NFKD, accent stripping and lowercasing
    /// fused at pack time); flag bit 0: decompose Hangul syllables algorithmically.
    pub const CHARMAP: u32 = 2;
    /// The SentencePiece `precompiled_charsmap`, applied per grapheme as tokenizers does.
    pub const PRECOMPILED: u32 = 3;
    /// Replace each run of at least `flags` copies of one character (the pattern) by the
    /// replacement (tokenizers' `Replace(Regex(" {2,}"), " ")`).
    pub const REPLACE_RUN: u32 = 4;
    /// Flag of CHARMAP: Hangul syllables decompose to jamo.
    pub const HANGUL: u32 = 1;
}

/// Added-token flags.
pub mod added {
    pub const SINGLE_WORD: u32 = 1;
    pub const LSTRIP: u32 = 2;
    pub const RSTRIP: u32 = 4;
    pub const NORMALIZED: u32 = 8;
    pub const SPECIAL: u32 = 16;
}

/// Pre-tokenizer flags (header word at byte 36).
pub mod pretok {
    /// Bits 0..2: Metaspace prepend scheme.
    pub const PREPEND_MASK: u32 = 3;
    pub const PREPEND_NEVER: u32 = 0;
    pub const PREPEND_FIRST: u32 = 1;
    pub const PREPEND_ALWAYS: u32 = 2;
    /// Metaspace splits on the replacement character (merged with the next piece).
    pub const SPLIT: u32 = 4;
    /// A `WhitespaceSplit` runs before Metaspace (tokenizer.json files converted before 2023).
    pub const WHITESPACE_SPLIT: u32 = 8;
}

/// Tokenization semantics (header word at byte 12).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The `tokenizers` library running the checkpoint's `tokenizer.json`.
    Fast,
    /// The slow SentencePiece-based `AlbertTokenizer`.
    SentencePiece,
}

pub(crate) fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

fn bad(field: &'static str, offset: usize, value: u64, expected: &'static str) -> Error {
    Error::BadTokenizer { field, offset: offset as u64, value, expected }
}

/// The validated section.
#[derive(Clone, Copy, Debug)]
pub struct Section<'a> {
    pub mode: Mode,
    pub vocab_size: u32,
    pub unk_id: u32,
    pub cls_id: u32,
    pub sep_id: u32,
    pub pad_id: u32,
    pub pretok: u32,
    pub replacement: char,
    pub unk_score: f64,
    /// Sentencepiece mode: min and max score over NORMAL pieces (f32, as SentencePiece).
    pub sp_min_score: f32,
    pub sp_max_score: f32,
    pub strings: &'a [u8],
    pub pieces: &'a [u8],
    pub scores: &'a [u8],
    pub types: &'a [u8],
    pub trie: &'a [u8],
    pub labels: &'a [u8],
    pub added: &'a [u8],
    pub charmap: &'a [u8],
    pub precompiled: &'a [u8],
    pub steps: &'a [u8],
    pub lower: &'a [u8],
}

impl<'a> Section<'a> {
    /// Validates `b` (the section's bytes).
    pub fn parse(b: &'a [u8]) -> Result<Self, Error> {
        if b.len() < PREFIX_BYTES {
            return Err(Error::Truncated {
                what: "tokenizer section header",
                needed: PREFIX_BYTES as u64,
                found: b.len() as u64,
            });
        }
        if b[..8] != MAGIC {
            return Err(bad(
                "tokenizer magic",
                0,
                u64::from_le_bytes(b[..8].try_into().unwrap_or([0; 8])),
                "\"ALBTOK\\0\\x01\"",
            ));
        }
        let version = u32_at(b, 8);
        if version != LAYOUT_VERSION {
            return Err(bad("tokenizer layout version", 8, version as u64, "1"));
        }
        let mode = match u32_at(b, 12) {
            0 => Mode::Fast,
            1 => Mode::SentencePiece,
            m => return Err(bad("tokenizer mode", 12, m as u64, "0 (fast) or 1 (sentencepiece)")),
        };
        let vocab_size = u32_at(b, 16);
        let ids = [(20, "unk_id"), (24, "cls_id"), (28, "sep_id"), (32, "pad_id")];
        let mut v = [0u32; 4];
        for (i, (off, field)) in ids.iter().enumerate() {
            v[i] = u32_at(b, *off);
            if v[i] != NONE && v[i] >= vocab_size {
                return Err(bad(field, *off, v[i] as u64, "an id below vocab_size"));
            }
        }
        if v[1] == NONE || v[2] == NONE {
            return Err(bad("cls_id/sep_id", 24, NONE as u64, "both present"));
        }
        let pretok = u32_at(b, 36);
        if pretok & !15 != 0 || pretok & pretok::PREPEND_MASK == 3 {
            return Err(bad("pre-tokenizer flags", 36, pretok as u64, "bits 0..4 only, prepend scheme 0..=2"));
        }
        let rep = u32_at(b, 40);
        let replacement = char::from_u32(rep).ok_or(bad("replacement", 40, rep as u64, "a Unicode scalar value"))?;
        let unk_score = f64::from_le_bytes(b[48..56].try_into().unwrap_or([0; 8]));
        if !unk_score.is_finite() {
            return Err(bad("unk_score", 48, unk_score.to_bits(), "a finite f64"));
        }
        let mut regions: [&[u8]; REGIONS] = [&[]; REGIONS];
        for (i, r) in regions.iter_mut().enumerate() {
            let at = HEADER_BYTES + 8 * i;
            let off = u32_at(b, at) as usize;
            let len = u32_at(b, at + 4) as usize;
            match off.checked_add(len) {
                Some(end) if end <= b.len() && (len == 0 || off >= PREFIX_BYTES) => *r = &b[off..end],
                _ => {
                    return Err(Error::OutOfBounds {
                        what: "tokenizer region",
                        offset: off as u64,
                        len: len as u64,
                        limit: b.len() as u64,
                    });
                }
            }
        }
        let s = Section {
            mode,
            vocab_size,
            unk_id: v[0],
            cls_id: v[1],
            sep_id: v[2],
            pad_id: v[3],
            pretok,
            replacement,
            unk_score,
            strings: regions[region::STRINGS],
            pieces: regions[region::PIECES],
            scores: regions[region::SCORES],
            types: regions[region::TYPES],
            trie: regions[region::TRIE],
            labels: regions[region::LABELS],
            added: regions[region::ADDED],
            charmap: regions[region::CHARMAP],
            precompiled: regions[region::PRECOMPILED],
            steps: regions[region::STEPS],
            lower: regions[region::LOWER],
            sp_min_score: f32::from_le_bytes(b[56..60].try_into().unwrap_or([0; 4])),
            sp_max_score: f32::from_le_bytes(b[60..64].try_into().unwrap_or([0; 4])),
        };
        s.validate(b)?;
        Ok(s)
    }

    fn region_off(&self, b: &[u8], i: usize) -> usize {
        u32_at(b, HEADER_BYTES + 8 * i) as usize
    }

    fn validate(&self, b: &[u8]) -> Result<(), Error> {
        let n = self.vocab_size as usize;
        // Compared by division: `n * 8` can overflow a 32-bit usize for a corrupt vocab_size.
        let len_is = |r: &[u8], entry: usize, i: usize, field: &'static str| {
            if r.len().is_multiple_of(entry) && r.len() / entry == n {
                Ok(())
            } else {
                Err(bad(field, self.region_off(b, i), r.len() as u64, "vocab_size entries"))
            }
        };
        len_is(self.pieces, 8, region::PIECES, "pieces length")?;
        len_is(self.scores, 8, region::SCORES, "scores length")?;
        len_is(self.types, 1, region::TYPES, "piece types length")?;
        for i in 0..n {
            if self.str_ref(self.pieces, i * 8).is_none() {
                return Err(bad(
                    "piece string",
                    self.region_off(b, region::PIECES) + 8 * i,
                    i as u64,
                    "UTF-8 inside STRINGS",
                ));
            }
            let s = self.score(i as u32);
            if !s.is_finite() {
                return Err(bad("piece score", self.region_off(b, region::SCORES) + 8 * i, s.to_bits(), "finite"));
            }
        }
        // Trie: node 0 is the root; children lie after their parent, so walks terminate.
        if !self.trie.len().is_multiple_of(12) || self.trie.is_empty() || self.labels.len() != self.trie.len() / 12 {
            return Err(bad(
                "trie length",
                self.region_off(b, region::TRIE),
                self.trie.len() as u64,
                "12 bytes per node, one label each, a root",
            ));
        }
        let nodes = self.trie.len() / 12;
        for i in 0..nodes {
            let first = u32_at(self.trie, 12 * i) as usize;
            let count = u32_at(self.trie, 12 * i + 4) as usize;
            let id = u32_at(self.trie, 12 * i + 8);
            let ok_children = count == 0 || (first > i && first.checked_add(count).is_some_and(|e| e <= nodes));
            let ok_id = id == NONE || id < self.vocab_size;
            let sorted = ok_children && (1..count).all(|k| self.labels[first + k - 1] < self.labels[first + k]);
            if !ok_children || !ok_id || !sorted {
                return Err(bad(
                    "trie node",
                    self.region_off(b, region::TRIE) + 12 * i,
                    i as u64,
                    "children after the node, sorted, ids below vocab_size",
                ));
            }
        }
        if !self.added.len().is_multiple_of(16) {
            return Err(bad(
                "added tokens length",
                self.region_off(b, region::ADDED),
                self.added.len() as u64,
                "16 bytes each",
            ));
        }
        for i in 0..self.added.len() / 16 {
            let id = u32_at(self.added, 16 * i);
            let flags = u32_at(self.added, 16 * i + 12);
            let ok = id < self.vocab_size
                && self.str_ref(self.added, 16 * i + 4).is_some_and(|s| !s.is_empty())
                && flags & !31 == 0
                && flags & added::NORMALIZED == 0;
            if !ok {
                return Err(bad(
                    "added token",
                    self.region_off(b, region::ADDED) + 16 * i,
                    i as u64,
                    "id below vocab_size, non-empty UTF-8, not `normalized` (unsupported)",
                ));
            }
        }
        if !self.charmap.len().is_multiple_of(12) {
            return Err(bad(
                "charmap length",
                self.region_off(b, region::CHARMAP),
                self.charmap.len() as u64,
                "12 bytes each",
            ));
        }
        let mut prev = None;
        for i in 0..self.charmap.len() / 12 {
            let cp = u32_at(self.charmap, 12 * i);
            if prev.is_some_and(|p| p >= cp) || self.str_ref(self.charmap, 12 * i + 4).is_none() {
                return Err(bad(
                    "charmap entry",
                    self.region_off(b, region::CHARMAP) + 12 * i,
                    cp as u64,
                    "sorted code points, UTF-8 inside STRINGS",
                ));
            }
            prev = Some(cp);
        }
        if !self.lower.len().is_multiple_of(12) {
            return Err(bad(
                "lower table length",
                self.region_off(b, region::LOWER),
                self.lower.len() as u64,
                "12 bytes each",
            ));
        }
        let mut prev = None;
        for i in 0..self.lower.len() / 12 {
            let cp = u32_at(self.lower, 12 * i);
            if prev.is_some_and(|p| p >= cp) || self.str_ref(self.lower, 12 * i + 4).is_none() {
                return Err(bad(
                    "lower table entry",
                    self.region_off(b, region::LOWER) + 12 * i,
                    cp as u64,
                    "sorted code points, UTF-8 inside STRINGS",
                ));
            }
            prev = Some(cp);
        }
        if !self.sp_min_score.is_finite() || !self.sp_max_score.is_finite() {
            return Err(bad("sentencepiece scores", 56, 0, "finite f32 min and max"));
        }
        if self.types.iter().any(|&t| !(1..=6).contains(&t)) {
            return Err(bad("piece type", self.region_off(b, region::TYPES), 0, "1..=6"));
        }
        super::charsmap::Charsmap::parse(self.precompiled).map_err(|_| {
            bad(
                "precompiled_charsmap",
                self.region_off(b, region::PRECOMPILED),
                self.precompiled.len() as u64,
                "SentencePiece's layout",
            )
        })?;
        if !self.steps.len().is_multiple_of(24) || self.steps.len() / 24 > MAX_STEPS {
            return Err(bad(
                "normalizer steps length",
                self.region_off(b, region::STEPS),
                self.steps.len() as u64,
                "at most 8 steps of 24 bytes",
            ));
        }
        for i in 0..self.steps.len() / 24 {
            let at = 24 * i;
            let kind = u32_at(self.steps, at);
            let ok = match kind {
                step::REPLACE => {
                    self.str_ref(self.steps, at + 8).is_some_and(|p| !p.is_empty())
                        && self.str_ref(self.steps, at + 16).is_some()
                }
                step::REPLACE_RUN => {
                    self.str_ref(self.steps, at + 8).is_some_and(|p| p.chars().count() == 1)
                        && self.str_ref(self.steps, at + 16).is_some()
                        && u32_at(self.steps, at + 4) >= 1
                }
                step::CHARMAP => u32_at(self.steps, at + 4) & !step::HANGUL == 0,
                step::PRECOMPILED => !self.precompiled.is_empty(),
                _ => false,
            };
            if !ok {
                return Err(bad(
                    "normalizer step",
                    self.region_off(b, region::STEPS) + at,
                    kind as u64,
                    "a known kind with valid strings",
                ));
            }
        }
        Ok(())
    }

    /// The string an (offset, length) pair at `at` in `table` points to.
    pub(crate) fn str_ref(&self, table: &[u8], at: usize) -> Option<&'a str> {
        let off = u32_at(table, at) as usize;
        let len = u32_at(table, at + 4) as usize;
        core::str::from_utf8(self.strings.get(off..off.checked_add(len)?)?).ok()
    }

    /// Piece `id`'s string (validated).
    pub fn piece(&self, id: u32) -> Option<&'a str> {
        if id >= self.vocab_size {
            return None;
        }
        self.str_ref(self.pieces, id as usize * 8)
    }

    /// Piece `id`'s score.
    pub fn score(&self, id: u32) -> f64 {
        let at = id as usize * 8;
        match self.scores.get(at..at + 8) {
            Some(s) => f64::from_le_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]]),
            None => f64::NEG_INFINITY,
        }
    }
}
