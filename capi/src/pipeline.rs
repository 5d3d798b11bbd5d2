//! Text pipelines in caller memory: tokenization and fill-mask, computing exactly what the
//! host CLI (`tools/src/pipelines.rs`) computes.

use albert_engine::tokenizer::{NChar, Node};
use albert_engine::{EncodeOptions, Encoding, Heads, Inputs, Model, Tokenizer, Workspace, scores};

use crate::AlbertFillMaskCandidate;
use crate::mem::{Arena, bytes_for};
use crate::state::{Fail, Loaded};
use crate::{ALBERT_ERR_BAD_INPUT, ALBERT_ERR_UNSUPPORTED};

/// Tokenizer workspace sizes for a text of `text_bytes` bytes (as `OwnedWorkspace::new`).
fn ws_counts(text_bytes: usize) -> (usize, usize, usize) {
    let n = Workspace::chars_for(text_bytes);
    (n, n.saturating_mul(4), n.saturating_mul(4).saturating_add(1))
}

/// Scratch bytes of a tokenizer workspace for a text of `text_bytes` bytes.
pub(crate) fn ws_bytes(text_bytes: usize) -> usize {
    let (chars, bytes, nodes) = ws_counts(text_bytes);
    bytes_for::<NChar>(chars)
        .saturating_mul(2)
        .saturating_add(bytes_for::<u8>(bytes))
        .saturating_add(bytes_for::<Node>(nodes))
}

/// Scratch bytes of the four token arrays for `capacity` tokens.
pub(crate) fn encoding_bytes(capacity: usize) -> usize {
    bytes_for::<u32>(capacity).saturating_mul(3).saturating_add(bytes_for::<[u32; 2]>(capacity))
}

pub(crate) fn workspace<'s>(a: &mut Arena<'s>, text_bytes: usize) -> Result<Workspace<'s>, Fail> {
    let (chars, bytes, nodes) = ws_counts(text_bytes);
    Ok(Workspace {
        chars: a.take(chars, NChar::EMPTY, "scratch (tokenizer characters)")?,
        chars2: a.take(chars, NChar::EMPTY, "scratch (tokenizer characters)")?,
        bytes: a.take(bytes, 0u8, "scratch (tokenizer bytes)")?,
        lattice: a.take(nodes, Node::EMPTY, "scratch (tokenizer lattice)")?,
    })
}

pub(crate) fn tokenizer(l: &Loaded) -> Result<&Tokenizer<'static>, Fail> {
    l.tokenizer.as_ref().ok_or(Fail::new(
        ALBERT_ERR_UNSUPPORTED,
        "this blob has no tokenizer (re-run quantize on a checkpoint with tokenizer.json or spiece.model)",
    ))
}

/// Scratch bytes `fill_mask` needs for a text of `text_bytes` bytes (an upper bound: the
/// model's part is sized for `max_position_embeddings` tokens).
pub(crate) fn fill_mask_bytes(model: &Model<'_>, text_bytes: usize) -> usize {
    let c = model.config();
    let cap = c.max_position_embeddings as usize;
    ws_bytes(text_bytes)
        .saturating_add(encoding_bytes(cap))
        .saturating_add(bytes_for::<f32>(c.vocab_size as usize))
        .saturating_add(bytes_for::<usize>(cap))
        .saturating_add(model.scratch_bytes(cap, 1))
}

/// transformers' `clean_up_tokenization`, in the CLI's order.
const CLEAN_UP: [(&str, &str); 10] = [
    (" .", "."),
    (" ?", "?"),
    (" !", "!"),
    (" ,", ","),
    (" ' ", "'"),
    (" n't", "n't"),
    (" 'm", "'m"),
    (" 's", "'s"),
    (" 've", "'ve"),
    (" 're", "'re"),
];

/// `str::replace(from, to)` on `s[..len]` in place (`to` is never longer than `from`).
fn replace_in_place(s: &mut [u8], len: usize, from: &[u8], to: &[u8]) -> usize {
    let (mut r, mut w) = (0, 0);
    while r < len {
        if s[r..len].starts_with(from) {
            s[w..w + to.len()].copy_from_slice(to);
            (r, w) = (r + from.len(), w + to.len());
        } else {
            s[w] = s[r];
            (r, w) = (r + 1, w + 1);
        }
    }
    w
}

/// transformers' `decode(ids, skip_special_tokens=skip_special)` as the CLI computes it
/// (`albert_tools::pipelines::Pipeline::decode`: the `Metaspace` decoder drops `▁` in the
/// first token and makes it a space elsewhere, then the clean-up), into `dst` with a NUL
/// after it. `Ok(len)`, or `Err(bytes)` that suffice when `dst` is short.
fn decode(
    tok: &Tokenizer<'_>,
    ids: impl Iterator<Item = u32>,
    skip_special: bool,
    dst: &mut [u8],
) -> Result<usize, usize> {
    let mut n = 0usize;
    let kept = ids.filter(|&id| !(skip_special && tok.is_special(id)));
    for (i, id) in kept.enumerate() {
        for c in tok.id_to_piece(id).unwrap_or("").chars() {
            let c = match c {
                '\u{2581}' if i == 0 => continue,
                '\u{2581}' => ' ',
                c => c,
            };
            let len = c.len_utf8();
            if let Some(d) = dst.get_mut(n..n + len) {
                c.encode_utf8(d);
            }
            n += len;
        }
    }
    if n >= dst.len() {
        return Err(n + 1);
    }
    let mut len = n;
    for (from, to) in CLEAN_UP {
        len = replace_in_place(dst, len, from.as_bytes(), to.as_bytes());
    }
    dst[len] = 0;
    Ok(len)
}

/// Result of [`fill_mask`]: candidates written, string bytes used (or needed).
pub(crate) struct Filled {
    pub count: usize,
    pub strings: usize,
}

/// The CLI's `fill-mask`: top `top_k` fillers for every `[MASK]` in `text`, masks in
/// order. On a short `out` or `strings`, `Err` with `filled` set to the sizes needed.
pub(crate) fn fill_mask(
    l: &Loaded,
    text: &[u8],
    top_k: usize,
    scratch: &mut [u8],
    out: &mut [AlbertFillMaskCandidate],
    strings: &mut [u8],
    filled: &mut Filled,
) -> Result<(), Fail> {
    let model = &l.model;
    let c = *model.config();
    if !c.heads.has(Heads::MLM) {
        return Err(Fail::new(
            ALBERT_ERR_UNSUPPORTED,
            "this blob has no masked-LM head (pack an AlbertForMaskedLM or AlbertForPreTraining checkpoint)",
        ));
    }
    let tok = tokenizer(l)?;
    let mask_id =
        tok.piece_to_id("[MASK]").ok_or(Fail::new(ALBERT_ERR_UNSUPPORTED, "the tokenizer has no [MASK] token"))?;
    let cap = c.max_position_embeddings as usize;
    let mut a = Arena::new(scratch);
    let mut ws = workspace(&mut a, text.len())?;
    let ids = a.take(cap, 0u32, "scratch (token ids)")?;
    let type_ids = a.take(cap, 0u32, "scratch (token type ids)")?;
    let attention_mask = a.take(cap, 0u32, "scratch (attention mask)")?;
    let offsets = a.take(cap, [0u32; 2], "scratch (offsets)")?;
    let opts = EncodeOptions { max_length: Some(cap), ..EncodeOptions::default() };
    let mut e = Encoding { ids, type_ids, attention_mask, offsets };
    let n = tok.encode_bytes(text, None, &opts, &mut ws, &mut e)?;
    let (ids, type_ids) = (&e.ids[..n], &e.type_ids[..n]);
    let masks = ids.iter().filter(|&&id| id == mask_id).count();
    if masks == 0 {
        return Err(Fail::new(ALBERT_ERR_BAD_INPUT, "no [MASK] in the input text"));
    }
    let k = top_k.min(c.vocab_size as usize);
    let needed = masks.saturating_mul(k);
    filled.count = needed;
    if out.len() < needed {
        return Err(Fail::size("fill-mask candidates (out_capacity)", needed, out.len()));
    }
    let logits = a.take(c.vocab_size as usize, 0f32, "scratch (logits)")?;
    let at = a.take(masks, 0usize, "scratch (mask positions)")?;
    let positions = ids.iter().enumerate().filter(|&(_, &id)| id == mask_id).map(|(p, _)| p);
    at.iter_mut().zip(positions.clone()).for_each(|(a, p)| *a = p);
    let taken = a.taken;
    let rest = a.rest();
    let want = model.scratch_bytes(n, 1);
    if rest.len() < want {
        return Err(Fail::size("scratch bytes (see albert_fill_mask_scratch_bytes)", taken + want, taken + rest.len()));
    }
    let inputs = Inputs { token_type_ids: Some(type_ids), ..Inputs::single(ids) };
    // The last layer for the masked tokens only: mask m is position m of the encoding.
    let mut enc = model.encode_positions(&inputs, at, rest)?;
    for (m, p) in positions.clone().enumerate() {
        model.mlm_logits(&mut enc, 0, m, logits)?;
        scores::softmax(logits);
        let best = &mut out[m * k..(m + 1) * k];
        scores::top_k(logits, best, |b, id, p| (b.token, b.score) = (id, p), |b| b.score);
        for b in best.iter_mut() {
            (b.mask_index, b.position) = (m as u32, p as u32);
        }
    }
    let mut used = 0usize;
    let mut short = false;
    for (m, p) in positions.enumerate() {
        for b in &mut out[m * k..(m + 1) * k] {
            let id = b.token;
            let at = used.min(strings.len());
            match decode(tok, [id].into_iter(), false, &mut strings[at..]) {
                Ok(len) if !short => {
                    (b.token_str, b.token_str_len) = (strings[at..].as_ptr().cast(), len);
                    used += len + 1;
                }
                Ok(len) => used += len + 1,
                Err(need) => {
                    short = true;
                    used += need;
                }
            }
            let at = used.min(strings.len());
            let filled_ids = ids.iter().enumerate().map(|(i, &t)| if i == p { id } else { t });
            // transformers keeps special tokens in `sequence` when there are several
            // masks, so that the other [MASK]s stay visible.
            match decode(tok, filled_ids, masks == 1, &mut strings[at..]) {
                Ok(len) if !short => {
                    (b.sequence, b.sequence_len) = (strings[at..].as_ptr().cast(), len);
                    used += len + 1;
                }
                Ok(len) => used += len + 1,
                Err(need) => {
                    short = true;
                    used += need;
                }
            }
        }
    }
    filled.strings = used;
    if short {
        return Err(Fail::size("fill-mask strings buffer (bytes, an amount that suffices)", used, strings.len()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_in_place_matches_str_replace() {
        for (s, from, to) in [("a . b .. c", " .", "."), ("x ' y ' ' z", " ' ", "'"), ("don 't", " n't", "n't")] {
            let mut b = std::vec::Vec::from(s.as_bytes());
            let n = replace_in_place(&mut b, s.len(), from.as_bytes(), to.as_bytes());
            assert_eq!(core::str::from_utf8(&b[..n]).unwrap(), s.replace(from, to));
        }
    }
}
