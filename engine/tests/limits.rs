//! Inputs past what the model or the caller's buffers allow: each is an error that says
//! which limit, never a panic or a read out of bounds. Also runs the tokenizer in both
//! modes on small texts (the tokenizer part of the Miri step in `.ci/run`).
#![allow(clippy::result_large_err)] // the engine's Error, see engine/src/lib.rs

mod common;

use albert_engine::tokenizer::{Mode, NChar, Node};
use albert_engine::{EncodeOptions, Encoding, Error, Inputs, Model, Tokenizer, Truncation, Workspace};
use common::{TOKENIZER_FAST, TOKENIZER_SP, aligned, blob};

/// The error of a call that must fail (`Encoded` has no `Debug` for `unwrap_err`).
fn err<T>(r: Result<T, Error>) -> Error {
    match r {
        Ok(_) => panic!("accepted"),
        Err(e) => e,
    }
}

fn with_model(f: impl FnOnce(&Model<'_>)) {
    let b = blob();
    let a = aligned(&b);
    let m = Model::from_bytes(&bytemuck::cast_slice(&a)[..b.len()]).expect("test blob loads");
    f(&m)
}

#[test]
#[cfg_attr(
    miri,
    ignore = "runs a forward pass: libm's sqrtf is inline assembly on x86_64, which Miri cannot run; the native run covers it"
)]
fn sequence_longer_than_max_position_embeddings() {
    with_model(|m| {
        let max = m.config().max_position_embeddings as usize;
        let ids = vec![2u32; max + 1];
        let mut scratch = vec![0u8; m.scratch_bytes(max + 1, 1)];
        let e = err(m.encode(&Inputs::single(&ids), &mut scratch));
        assert!(
            matches!(e, Error::BadInput { what, value, .. } if what.starts_with("sequence length") && value == max as u64 + 1),
            "{e}"
        );
        // The maximum itself runs.
        let mut scratch = vec![0u8; m.scratch_bytes(max, 1)];
        m.encode(&Inputs::single(&ids[..max]), &mut scratch).expect("max_position_embeddings tokens run");
    })
}

#[test]
fn batch_larger_than_the_scratch() {
    with_model(|m| {
        let ids = [2u32, 5, 6, 3, 2, 7, 8, 3];
        let mut scratch = vec![0u8; m.scratch_bytes(4, 1)];
        let inp = Inputs { batch: 2, seq_len: 4, ..Inputs::single(&ids) };
        let e = err(m.encode(&inp, &mut scratch));
        assert_eq!(e, Error::ScratchTooSmall { needed: m.scratch_bytes(4, 2), found: m.scratch_bytes(4, 1) });
        // One byte short of the size the model reports.
        let mut scratch = vec![0u8; m.scratch_bytes(4, 2) - 1];
        assert!(matches!(m.encode(&inp, &mut scratch), Err(Error::ScratchTooSmall { .. })));
    })
}

#[test]
fn ids_out_of_vocabulary_and_type_ids_out_of_range() {
    with_model(|m| {
        let (v, tv) = (m.config().vocab_size, m.config().type_vocab_size);
        let mut scratch = vec![0u8; m.scratch_bytes(4, 1)];
        for bad in [v, v + 1, u32::MAX] {
            let ids = [2, 5, bad, 3];
            let e = err(m.encode(&Inputs::single(&ids), &mut scratch));
            assert_eq!(e, Error::BadInput { what: "token id", index: 2, value: bad as u64, limit: v as u64 });
        }
        let ids = [2u32, 5, 6, 3];
        for bad in [tv, u32::MAX] {
            let types = [0, 0, 0, bad];
            let inp = Inputs { token_type_ids: Some(&types), ..Inputs::single(&ids) };
            let e = err(m.encode(&inp, &mut scratch));
            assert_eq!(e, Error::BadInput { what: "token type id", index: 3, value: bad as u64, limit: tv as u64 });
        }
        let mask = [1, 1, 2, 1];
        let inp = Inputs { attention_mask: Some(&mask), ..Inputs::single(&ids) };
        assert!(matches!(m.encode(&inp, &mut scratch), Err(Error::BadInput { what: "attention mask value", .. })));
    })
}

#[test]
fn shapes_that_disagree_with_the_arrays() {
    with_model(|m| {
        let ids = [2u32, 5, 6, 3];
        let mut scratch = vec![0u8; m.scratch_bytes(4, 2)];
        // batch × seq_len larger than the arrays, type ids and mask of another length.
        let inp = Inputs { batch: 2, seq_len: 4, ..Inputs::single(&ids) };
        assert!(matches!(m.encode(&inp, &mut scratch), Err(Error::BadInput { what: "input_ids length", .. })));
        let types = [0u32; 3];
        let inp = Inputs { token_type_ids: Some(&types), ..Inputs::single(&ids) };
        assert!(matches!(m.encode(&inp, &mut scratch), Err(Error::BadInput { what: "token_type_ids length", .. })));
        let mask = [1u32; 5];
        let inp = Inputs { attention_mask: Some(&mask), ..Inputs::single(&ids) };
        assert!(matches!(m.encode(&inp, &mut scratch), Err(Error::BadInput { what: "attention_mask length", .. })));
        // batch × seq_len overflowing usize.
        let inp = Inputs { batch: usize::MAX, seq_len: 2, ..Inputs::single(&ids) };
        assert!(matches!(m.encode(&inp, &mut scratch), Err(Error::BadInput { what: "batch × seq_len", .. })));
        let inp = Inputs { batch: 0, seq_len: 4, ..Inputs::single(&ids) };
        assert!(matches!(m.encode(&inp, &mut scratch), Err(Error::BadInput { .. })));
        // The scratch size of an absurd shape saturates instead of overflowing.
        assert!(m.scratch_bytes(usize::MAX, usize::MAX) >= m.scratch_bytes(1 << 20, 1 << 20));
    })
}

#[test]
#[cfg_attr(
    miri,
    ignore = "runs a forward pass: libm's sqrtf is inline assembly on x86_64, which Miri cannot run; the native run covers it"
)]
fn head_positions_and_output_sizes() {
    with_model(|m| {
        let ids = [2u32, 5, 6, 3];
        let mut scratch = vec![0u8; m.scratch_bytes(4, 1)];
        let mut enc = m.encode(&Inputs::single(&ids), &mut scratch).unwrap();
        let mut logits = [0f32; 3];
        assert!(matches!(m.classify(&mut enc, 1, &mut logits), Err(Error::BadInput { what: "sequence index", .. })));
        assert!(matches!(m.classify(&mut enc, 0, &mut [0f32; 4]), Err(Error::OutputSize { needed: 3, found: 4, .. })));
        assert!(matches!(m.pooler_output(&mut enc, 0, &mut [0f32; 7]), Err(Error::OutputSize { .. })));
        assert!(matches!(m.qa_logits(&mut enc, 0, 9), Err(Error::NoSuchHead { .. })));
        assert!(matches!(m.classify_token(&mut enc, 0, 0, &mut logits), Err(Error::NoSuchHead { .. })));
        m.classify(&mut enc, 0, &mut logits).expect("in range");
        assert!(logits.iter().all(|x| x.is_finite()));
    })
}

/// Encodes with buffers of `chars` characters and `cap` output slots.
fn encode(
    tok: &Tokenizer<'_>,
    first: &[u8],
    second: Option<&[u8]>,
    opts: &EncodeOptions,
    chars: usize,
    cap: usize,
) -> Result<Vec<u32>, Error> {
    let (mut c1, mut c2) = (vec![NChar::EMPTY; chars], vec![NChar::EMPTY; chars]);
    let (mut bytes, mut lattice) = (vec![0u8; 4 * chars], vec![Node::EMPTY; 4 * chars + 1]);
    let mut ws = Workspace { chars: &mut c1, chars2: &mut c2, bytes: &mut bytes, lattice: &mut lattice };
    let (mut ids, mut types, mut mask, mut offsets) = (vec![0; cap], vec![0; cap], vec![0; cap], vec![[0; 2]; cap]);
    let mut out = Encoding { ids: &mut ids, type_ids: &mut types, attention_mask: &mut mask, offsets: &mut offsets };
    let n = tok.encode_bytes(first, second, opts, &mut ws, &mut out)?;
    for i in 0..n {
        let text = if types[i] == 0 { first } else { second.unwrap() };
        assert!(offsets[i][0] <= offsets[i][1] && offsets[i][1] as usize <= text.len(), "token {i}: {:?}", offsets[i]);
    }
    Ok(ids[..n].to_vec())
}

fn tokenizers() -> [Tokenizer<'static>; 2] {
    [
        Tokenizer::from_section(TOKENIZER_FAST).expect("fast section loads"),
        Tokenizer::from_section(TOKENIZER_SP).expect("sentencepiece section loads"),
    ]
}

#[test]
fn both_tokenizer_modes_encode_text_and_pairs() {
    let [fast, sp] = tokenizers();
    assert_eq!((fast.mode(), sp.mode()), (Mode::Fast, Mode::SentencePiece));
    let opts = EncodeOptions::default();
    // One vocabulary (sentencepiece mode's trie has only the matchable pieces).
    let cls = fast.piece_to_id("[CLS]").expect("[CLS] piece");
    let sep = fast.piece_to_id("[SEP]").expect("[SEP] piece");
    let mask = fast.piece_to_id("[MASK]").expect("[MASK] piece");
    for tok in [&fast, &sp] {
        let ids = encode(tok, "The quick [MASK] fox, naïve café.".as_bytes(), None, &opts, 256, 64).unwrap();
        assert_eq!((ids[0], *ids.last().unwrap()), (cls, sep), "{:?}: {ids:?}", tok.mode());
        assert!(ids.contains(&mask) && ids.len() > 6, "{:?}: {ids:?}", tok.mode());
        assert!(ids.iter().all(|&i| i < tok.vocab_size()));
        let pair = encode(tok, b"the value", Some(b"of the function"), &opts, 256, 64).unwrap();
        assert_eq!(pair.iter().filter(|&&i| i == sep).count(), 2, "{pair:?}");
        // Unknown characters map to <unk> rather than failing.
        let unk = encode(tok, "漢字 ☃".as_bytes(), None, &opts, 256, 64).unwrap();
        assert!(unk.len() >= 3, "{unk:?}");
    }
}

#[test]
fn tokenizer_buffers_too_small_and_bad_text() {
    let [fast, sp] = tokenizers();
    let opts = EncodeOptions::default();
    let text = b"the quick brown fox jumps over the lazy dog";
    for tok in [&fast, &sp] {
        let n = encode(tok, text, None, &opts, 256, 64).unwrap().len();
        let e = encode(tok, text, None, &opts, 256, n - 1).unwrap_err();
        assert_eq!(e, Error::OutputSize { what: "token output arrays (capacity)", needed: n, found: n - 1 });
        let e = encode(tok, text, None, &opts, 4, 64).unwrap_err();
        assert!(matches!(e, Error::TokenizerCapacity { .. }), "{:?}: {e}", tok.mode());
        let e = encode(tok, b"ok \xff\xfe", None, &opts, 256, 64).unwrap_err();
        assert_eq!(e, Error::InvalidUtf8 { which: "first text", offset: 3 });
        let e = encode(tok, b"ok", Some(b"\xc3"), &opts, 256, 64).unwrap_err();
        assert_eq!(e, Error::InvalidUtf8 { which: "second text", offset: 0 });
        let short = EncodeOptions { max_length: Some(1), ..opts };
        assert!(matches!(encode(tok, text, None, &short, 256, 64), Err(Error::Truncation { .. })));
        // Output arrays of different lengths.
        let (mut c1, mut c2, mut b, mut l) =
            (vec![NChar::EMPTY; 64], vec![NChar::EMPTY; 64], vec![0u8; 256], vec![Node::EMPTY; 257]);
        let mut ws = Workspace { chars: &mut c1, chars2: &mut c2, bytes: &mut b, lattice: &mut l };
        let (mut ids, mut types, mut mask, mut offsets) = (vec![0; 8], vec![0; 8], vec![0; 7], vec![[0; 2]; 8]);
        let mut out =
            Encoding { ids: &mut ids, type_ids: &mut types, attention_mask: &mut mask, offsets: &mut offsets };
        assert!(matches!(tok.encode("a", None, &opts, &mut ws, &mut out), Err(Error::OutputSize { .. })));
    }
    // Fast mode refuses truncation it cannot do, as `tokenizers` does.
    let only_second = EncodeOptions { max_length: Some(5), truncation: Truncation::OnlySecond, ..opts };
    let e = encode(&fast, text, Some(b"x"), &only_second, 256, 64).unwrap_err();
    assert!(matches!(e, Error::Truncation { .. }), "{e}");
}

#[test]
fn truncation_and_padding_stay_within_max_length() {
    let [fast, sp] = tokenizers();
    let text = b"the quick brown fox jumps over the lazy dog again and again";
    for tok in [&fast, &sp] {
        for max in [3usize, 5, 8, 30] {
            let opts = EncodeOptions { max_length: Some(max), pad_to_max_length: true, ..EncodeOptions::default() };
            let ids = encode(tok, text, Some(b"and a second text"), &opts, 256, 64).unwrap();
            assert_eq!(ids.len(), max, "{:?} max_length {max}: {ids:?}", tok.mode());
        }
    }
}
