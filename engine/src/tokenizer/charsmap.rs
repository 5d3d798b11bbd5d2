//! SentencePiece's `precompiled_charsmap`: a Darts double-array trie over UTF-8 byte
//! strings whose leaves point into a blob of NUL-terminated replacement strings.
//!
//! Layout: u32 trie size in bytes, the trie's u32 units, then the replacement blob.
//! [`Charsmap::transform`] is `spm_precompiled::Precompiled::transform`: the *shortest*
//! key that prefixes the input wins (that is what `common_prefix_search(..)[0]` gives), every
//! access is bounds-checked (a corrupt map yields "no match", never a panic).

/// A borrowed, validated charsmap.
#[derive(Clone, Copy, Debug)]
pub struct Charsmap<'a> {
    trie: &'a [u8],
    normalized: &'a [u8],
}

/// The map's bytes are not in SentencePiece's layout.
#[derive(Debug)]
pub struct BadCharsmap;

impl<'a> Charsmap<'a> {
    /// An empty map parses (it never matches).
    pub fn parse(b: &'a [u8]) -> Result<Self, BadCharsmap> {
        if b.is_empty() {
            return Ok(Charsmap { trie: &[], normalized: &[] });
        }
        if b.len() < 4 {
            return Err(BadCharsmap);
        }
        let size = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
        if !size.is_multiple_of(4) || size == 0 || size > b.len() - 4 {
            return Err(BadCharsmap);
        }
        let normalized = &b[4 + size..];
        if core::str::from_utf8(normalized).is_err() {
            return Err(BadCharsmap);
        }
        Ok(Charsmap { trie: &b[4..4 + size], normalized })
    }

    fn unit(&self, i: usize) -> Option<u32> {
        let at = i.checked_mul(4)?;
        let s = self.trie.get(at..at + 4)?;
        Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }

    /// SentencePiece's own rule (`Normalizer::NormalizePrefix`): the *longest* key that
    /// prefixes `input`, as (key length in bytes, replacement).
    pub fn longest(&self, input: &[u8]) -> Option<(usize, &'a str)> {
        let has_leaf = |u: u32| (u >> 8) & 1 == 1;
        let value = |u: u32| (u & ((1u32 << 31) - 1)) as usize;
        let label = |u: u32| u & ((1u32 << 31) | 0xFF);
        let offset = |u: u32| ((u >> 10) << ((u & (1u32 << 9)) >> 6)) as usize;
        let mut pos = 0usize;
        let mut unit = self.unit(pos)?;
        pos ^= offset(unit);
        let mut best = None;
        for (i, &c) in input.iter().enumerate() {
            pos ^= c as usize;
            let Some(u) = self.unit(pos) else { break };
            unit = u;
            if label(unit) != c as u32 {
                break;
            }
            pos ^= offset(unit);
            if has_leaf(unit) {
                let Some(v) = self.unit(pos) else { break };
                best = Some((i + 1, value(v)));
            }
        }
        let (len, start) = best?;
        let rest = self.normalized.get(start..)?;
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        Some((len, core::str::from_utf8(&rest[..end]).ok()?))
    }

    /// The replacement of the shortest key that prefixes `chunk`, if any.
    pub fn transform(&self, chunk: &[u8]) -> Option<&'a str> {
        let has_leaf = |u: u32| (u >> 8) & 1 == 1;
        let value = |u: u32| (u & ((1u32 << 31) - 1)) as usize;
        let label = |u: u32| u & ((1u32 << 31) | 0xFF);
        let offset = |u: u32| ((u >> 10) << ((u & (1u32 << 9)) >> 6)) as usize;
        let mut pos = 0usize;
        let mut unit = self.unit(pos)?;
        pos ^= offset(unit);
        for &c in chunk {
            if c == 0 {
                break;
            }
            pos ^= c as usize;
            unit = self.unit(pos)?;
            if label(unit) != c as u32 {
                return None;
            }
            pos ^= offset(unit);
            if has_leaf(unit) {
                let start = value(self.unit(pos)?);
                let rest = self.normalized.get(start..)?;
                let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
                return core::str::from_utf8(&rest[..end]).ok();
            }
        }
        None
    }
}
