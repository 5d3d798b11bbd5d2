//! Sentencepiece mode: what the slow `AlbertTokenizer` (transformers 4.x) computes with the
//! SentencePiece library, and so what Google's original ALBERT code gives.
//!
//! 1. every character outside added tokens is lowercased on its own (transformers'
//!    `tokenize` does this before splitting, so `<UNK>` becomes the special `<unk>`);
//! 2. the text splits on added tokens (leftmost-longest); each other chunk is
//!    preprocessed as `AlbertTokenizer.preprocess_text`: Python's `" ".join(s.strip().split())`,
//!    ``` `` ```/`''` to `"`, NFKD, dropping characters of non-zero canonical combining
//!    class, lowercasing (the last three as one packed character map);
//! 3. SentencePiece's normalizer: user-defined pieces pass unnormalized, else the *longest*
//!    charsmap rule, leading/trailing/repeated spaces removed, a `▁` prefix, spaces to `▁`;
//! 4. SentencePiece's `EncodeOptimized` Viterbi in f32 (user-defined pieces score
//!    `len·max_score − 0.1`, unused pieces never match, unknowns cost `min_score − 10` over
//!    NORMAL pieces), adjacent unknowns merged;
//! 5. `AlbertTokenizer._tokenize`'s digit-comma re-split: a piece ending in a digit and a
//!    comma is re-encoded without its comma, which then follows as its own piece.
//!
//! Offsets are not tracked in this mode (reported as `[0, 0]`).

use super::section::{NONE, u32_at};
use super::{NChar, Node, Sink, Token, Tokenizer, Workspace, Writer, cap_err, replace_literal};
use crate::error::Error;

const TYPE_UNKNOWN: u8 = 2;
const TYPE_CONTROL: u8 = 3;
const TYPE_USER: u8 = 4;
const TYPE_UNUSED: u8 = 5;
/// Longest piece the digit-comma re-split re-encodes (bytes).
const RESPLIT_MAX: usize = 64;

/// Python's `str.isspace()`.
fn py_space(c: char) -> bool {
    matches!(c, '\t'..='\r' | '\x1c'..='\x20' | '\u{85}' | '\u{a0}' | '\u{1680}' | '\u{2000}'..='\u{200a}' | '\u{2028}' | '\u{2029}' | '\u{202f}' | '\u{205f}' | '\u{3000}')
}

impl<'a> Tokenizer<'a> {
    fn table_map(&self, table: &[u8], c: NChar, w: &mut Writer<'_>) {
        let (mut lo, mut hi) = (0usize, table.len() / 12);
        let cp = c.c as u32;
        while lo < hi {
            let mid = (lo + hi) / 2;
            let k = u32_at(table, 12 * mid);
            if k < cp {
                lo = mid + 1;
            } else if k > cp {
                hi = mid;
            } else {
                if let Some(out) = self.s.str_ref(table, 12 * mid + 4) {
                    for o in out.chars() {
                        w.push(NChar { c: o, ..c });
                    }
                    return;
                }
                break;
            }
        }
        w.push(c);
    }

    fn piece_type(&self, id: u32) -> u8 {
        self.s.types.get(id as usize).copied().unwrap_or(1)
    }

    /// SentencePiece's `PieceToId`: any piece (control ones included), else the unknown id.
    fn sp_piece_to_id(&self, piece: &[u8]) -> Result<u32, Error> {
        if let Some(id) = self.trie_lookup(piece) {
            return Ok(id);
        }
        match (0..self.s.vocab_size).find(|&i| self.s.piece(i).is_some_and(|p| p.as_bytes() == piece)) {
            Some(id) => Ok(id),
            None => self.unk(),
        }
    }

    pub(super) fn tokens_sp(&self, text: &str, ws: &mut Workspace<'_>, sink: Sink<'_>) -> Result<(), Error> {
        let Workspace { chars, chars2, bytes, lattice } = ws;
        let (cur, other): (&mut [NChar], &mut [NChar]) = (&mut **chars, &mut **chars2);
        // 1. Lowercase everything outside added tokens (matched on the raw text).
        let mut w = Writer { buf: cur, n: 0, overflow: 0 };
        let b = text.as_bytes();
        let mut at = 0usize;
        loop {
            let m = self.next_added(text, at);
            let stop = m.map_or(b.len(), |m| m.0);
            for (i, c) in text[at..stop].char_indices() {
                let s = (at + i) as u32;
                self.table_map(self.s.lower, NChar { c, start: s, end: s + c.len_utf8() as u32 }, &mut w);
            }
            let Some((s, e, _, _)) = m else { break };
            for (i, c) in text[s..e].char_indices() {
                w.push(NChar { c, start: (s + i) as u32, end: (s + i + c.len_utf8()) as u32 });
            }
            at = e;
        }
        let n = w.finish("workspace characters (lowercased text)")?;
        let cur = w.buf;
        // 2. Split on added tokens in the lowercased text.
        let mut lowered_len = 0usize;
        for c in &cur[..n] {
            lowered_len += c.c.len_utf8();
        }
        if lowered_len > bytes.len() / 2 {
            return Err(cap_err("workspace bytes (lowercased text)", 2 * lowered_len, bytes.len()));
        }
        let (text_buf, rest) = bytes.split_at_mut(lowered_len);
        let mut p = 0;
        for c in &cur[..n] {
            p += c.c.encode_utf8(&mut text_buf[p..]).len();
        }
        let low = core::str::from_utf8(text_buf).unwrap_or("");
        let mut from = 0usize; // byte offset in `low`
        let mut char_from = 0usize;
        let mut search = 0usize;
        let byte_to_char = |bo: usize| low[..bo].chars().count();
        while let Some((s, e, id, _)) = self.next_added(low, search) {
            search = e;
            let (cs, ce) = (byte_to_char(s), byte_to_char(e));
            if from < s && !self.chunk_sp(&cur[char_from..cs], other, rest, lattice, sink)? {
                return Ok(());
            }
            if !sink(Token { id, start: 0, end: 0 }) {
                return Ok(());
            }
            from = e;
            char_from = ce;
        }
        if char_from < n {
            self.chunk_sp(&cur[char_from..n], other, rest, lattice, sink)?;
        }
        Ok(())
    }

    /// Steps 2–5 for one chunk between added tokens.
    fn chunk_sp(
        &self,
        chunk: &[NChar],
        buf: &mut [NChar],
        bytes: &mut [u8],
        lattice: &mut [Node],
        sink: Sink<'_>,
    ) -> Result<bool, Error> {
        // Python whitespace split/join, then the two quote replacements, into `buf`.
        let (a, b) = buf.split_at_mut(buf.len() / 2);
        let mut w = Writer { buf: a, n: 0, overflow: 0 };
        let mut pending_space = false;
        for c in chunk {
            if py_space(c.c) {
                pending_space = w.n > 0;
            } else {
                if pending_space {
                    w.push(NChar { c: ' ', ..*c });
                    pending_space = false;
                }
                w.push(*c);
            }
        }
        let n = w.finish("workspace characters (preprocessed text)")?;
        let mut w2 = Writer { buf: b, n: 0, overflow: 0 };
        replace_literal(&a[..n], "``", "\"", &mut w2);
        let n2 = w2.finish("workspace characters (preprocessed text)")?;
        let mut w3 = Writer { buf: a, n: 0, overflow: 0 };
        replace_literal(&b[..n2], "''", "\"", &mut w3);
        let n3 = w3.finish("workspace characters (preprocessed text)")?;
        // NFKD, combining classes dropped, lowercased.
        let mut w4 = Writer { buf: b, n: 0, overflow: 0 };
        for &c in &a[..n3] {
            self.table_map(self.s.charmap, c, &mut w4);
        }
        let n4 = w4.finish("workspace characters (NFKD text)")?;
        // UTF-8 of the preprocessed text into the second half of `bytes`.
        let need: usize = b[..n4].iter().map(|c| c.c.len_utf8()).sum();
        if 4 * need + 8 > bytes.len() {
            return Err(cap_err("workspace bytes (normalized text)", 4 * need + 8, bytes.len()));
        }
        let (out, inp) = bytes.split_at_mut(bytes.len() - need);
        let mut p = 0;
        for c in &b[..n4] {
            p += c.c.encode_utf8(&mut inp[p..]).len();
        }
        let len = self.sp_normalize(inp, out)?;
        let pieces = &out[..len];
        self.sp_viterbi(pieces, lattice)?;
        // Emit, merging unknowns, re-splitting digit-comma pieces.
        let mut s = 0usize;
        while s < len {
            let mut e = lattice[s].next as usize;
            let mut id = lattice[e].id;
            if self.piece_type(id) == TYPE_UNKNOWN || id == self.s.unk_id {
                while e < len && lattice[lattice[e].next as usize].id == id {
                    e = lattice[e].next as usize;
                }
                id = self.unk()?;
            }
            let piece = &pieces[s..e];
            if !self.emit_sp(piece, id, sink)? {
                return Ok(false);
            }
            s = e;
        }
        Ok(true)
    }

    fn emit_sp(&self, piece: &[u8], id: u32, sink: Sink<'_>) -> Result<bool, Error> {
        let text = core::str::from_utf8(piece).unwrap_or("");
        let mut it = text.chars().rev();
        let (last, prev) = (it.next(), it.next());
        let resplit = text.chars().count() > 1 && last == Some(',') && prev.is_some_and(|c| c.is_numeric());
        if !resplit {
            return Ok(sink(Token { id, start: 0, end: 0 }));
        }
        // sp_model.EncodeAsPieces(piece[:-1].replace("▁", "")), on small stack buffers.
        let body = &text[..text.len() - 1];
        let mut inp = [0u8; RESPLIT_MAX];
        let mut n = 0;
        for c in body.chars().filter(|&c| c != '\u{2581}') {
            if n + c.len_utf8() > RESPLIT_MAX {
                return Err(cap_err("digit-comma piece (bytes)", body.len(), RESPLIT_MAX));
            }
            n += c.encode_utf8(&mut inp[n..]).len();
        }
        let mut out = [0u8; 4 * RESPLIT_MAX + 8];
        let len = self.sp_normalize(&inp[..n], &mut out)?;
        let mut lat = [Node::EMPTY; 4 * RESPLIT_MAX + 9];
        self.sp_viterbi(&out[..len], &mut lat)?;
        let starts_with_space = text.starts_with('\u{2581}');
        let mut s = 0usize;
        let mut first = true;
        while s < len {
            let mut e = lat[s].next as usize;
            let mut id = lat[e].id;
            if self.piece_type(id) == TYPE_UNKNOWN || id == self.s.unk_id {
                while e < len && lat[lat[e].next as usize].id == id {
                    e = lat[e].next as usize;
                }
                id = self.unk()?;
            }
            let mut p = &out[s..e];
            if first && !starts_with_space && p.starts_with("\u{2581}".as_bytes()) {
                p = &p[3..];
                id = if p.is_empty() { NONE } else { self.sp_piece_to_id(p)? };
            }
            first = false;
            if id != NONE && !sink(Token { id, start: 0, end: 0 }) {
                return Ok(false);
            }
            s = e;
        }
        Ok(sink(Token { id: self.sp_piece_to_id(b",")?, start: 0, end: 0 }))
    }

    /// SentencePiece's `Normalizer::Normalize` (dummy prefix, whitespace removal, escape).
    fn sp_normalize(&self, input: &[u8], out: &mut [u8]) -> Result<usize, Error> {
        let mut o = 0usize;
        let mut put = |bytes: &[u8], o: &mut usize| -> Result<(), Error> {
            let end = *o + bytes.len();
            if end > out.len() {
                return Err(cap_err("workspace bytes (normalized text)", end, out.len()));
            }
            out[*o..end].copy_from_slice(bytes);
            *o = end;
            Ok(())
        };
        let mut i = 0usize;
        // Leading chunks that normalize to exactly " " are skipped.
        while i < input.len() {
            let (rep, used) = self.sp_prefix(&input[i..]);
            if rep != b" " {
                break;
            }
            i += used;
        }
        if i >= input.len() {
            return Ok(0);
        }
        const SPACE: &[u8] = "\u{2581}".as_bytes();
        put(SPACE, &mut o)?;
        let mut prev_space = true;
        while i < input.len() {
            let (rep, used) = self.sp_prefix(&input[i..]);
            let mut sp = rep;
            while prev_space && sp.first() == Some(&b' ') {
                sp = &sp[1..];
            }
            if !sp.is_empty() {
                for &c in sp {
                    if c == b' ' {
                        put(SPACE, &mut o)?;
                    } else {
                        put(&[c], &mut o)?;
                    }
                }
                prev_space = sp.last() == Some(&b' ');
            }
            i += used;
        }
        let mut end = o;
        while end >= 3 && out[end - 3..end] == *SPACE {
            end -= 3;
        }
        Ok(end)
    }

    /// `NormalizePrefix`: (replacement bytes, input bytes consumed).
    fn sp_prefix<'x>(&self, input: &'x [u8]) -> (&'x [u8], usize)
    where
        'a: 'x,
    {
        // User-defined pieces pass through unnormalized (longest match).
        let mut node = 0usize;
        let mut best = 0usize;
        for (k, &c) in input.iter().enumerate() {
            let (first, count, _) = self.node(node);
            match self.child(first, count, c) {
                Some(n) => node = n,
                None => break,
            }
            let id = self.node(node).2;
            if id != NONE && self.piece_type(id) == TYPE_USER {
                best = k + 1;
            }
        }
        if best > 0 {
            return (&input[..best], best);
        }
        if let Some((used, rep)) = self.charsmap.longest(input) {
            return (rep.as_bytes(), used);
        }
        let l = super::utf8_len(input[0]).min(input.len());
        match core::str::from_utf8(&input[..l]) {
            Ok(_) => (&input[..l], l),
            Err(_) => ("\u{FFFD}".as_bytes(), 1),
        }
    }

    /// SentencePiece's `EncodeOptimized` over `w`; links the best path through `next`.
    fn sp_viterbi(&self, w: &[u8], lattice: &mut [Node]) -> Result<(), Error> {
        let len = w.len();
        if len + 1 > lattice.len() {
            return Err(cap_err("workspace lattice (normalized text in bytes)", len + 1, lattice.len()));
        }
        for node in &mut lattice[..=len] {
            *node = Node { score: 0.0, from: NONE, id: 0, ch: 0, next: 0 };
        }
        let unk_score = self.s.sp_min_score - 10.0;
        let max_score = self.s.sp_max_score;
        let mut p = 0usize;
        while p < len {
            let here = lattice[p].score as f32;
            let mblen = super::utf8_len(w[p]).min(len - p);
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
                if id == NONE {
                    continue;
                }
                let ty = self.piece_type(id);
                if ty == TYPE_UNUSED || ty == TYPE_CONTROL || ty == TYPE_UNKNOWN {
                    continue;
                }
                let length = q - p;
                // `cond ? (length * max_score_ - 0.1) : GetScoreInlined(ret)` has type
                // double (the conditional's common type), so every candidate is a double
                // sum, compared with the stored float and rounded to float when kept.
                let score: f64 = if ty == TYPE_USER {
                    (length as f32 * max_score) as f64 - 0.1
                } else {
                    self.s.score(id) as f32 as f64
                };
                let cand = score + here as f64;
                let t = &mut lattice[q];
                if t.from == NONE || cand > t.score {
                    *t = Node { score: cand as f32 as f64, from: p as u32, id, ..*t };
                }
                if length == mblen {
                    single = true;
                }
            }
            if !single {
                let unk = self.unk()?;
                let cand = (unk_score + here) as f64;
                let t = &mut lattice[p + mblen];
                if t.from == NONE || cand > t.score {
                    *t = Node { score: cand, from: p as u32, id: unk, ..*t };
                }
            }
            p += mblen;
        }
        let mut e = len;
        while e > 0 {
            let s = lattice[e].from as usize;
            if s >= e {
                return Err(cap_err("lattice path", e, s));
            }
            lattice[s].next = e as u32;
            e = s;
        }
        Ok(())
    }
}
