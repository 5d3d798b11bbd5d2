//! `Model::encode_pooled` (the last layer for the first token of each sequence only) gives
//! that token's hidden state, and every head that reads it, bit for bit as `Model::encode`
//! does: every fixture (one layer, groups with two layers each, uneven groups; padded
//! batches), int8 (the default scheme) and f32 blobs, one thread and a pool of three.
//! The other positions are refused. `Model::encode_positions` (the last layer for a list
//! of positions) likewise, for the per-token heads too, at several position lists per case;
//! lists that are empty, unordered, repeated or out of range are refused.

use std::sync::Arc;

use albert_engine::config::{DType, Heads};
use albert_engine::threads::Pool;
use albert_engine::{Encoded, Error, Inputs, Model};
use albert_quantize::pack::PackOptions;
use albert_tests::{Case, Fixture, fixture_names};

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// The pooled heads of sequence `b`, each by name (those the model has).
fn heads(model: &Model<'_>, enc: &mut Encoded<'_>, b: usize) -> Vec<(&'static str, Vec<u32>)> {
    let c = *model.config();
    let mut out = Vec::new();
    if c.heads.has(Heads::POOLER) {
        let mut p = vec![0f32; c.hidden_size as usize];
        model.pooler_output(enc, b, &mut p).expect("pooler runs");
        out.push(("pooler_output", bits(&p)));
    }
    if c.heads.has(Heads::SOP) {
        let mut p = vec![0f32; 2];
        model.sop_logits(enc, b, &mut p).expect("sop runs");
        out.push(("sop_logits", bits(&p)));
    }
    if c.heads.has(Heads::SEQ_CLS) {
        let mut p = vec![0f32; c.num_labels as usize];
        model.classify(enc, b, &mut p).expect("classifier runs");
        out.push(("logits", bits(&p)));
    }
    if c.heads.has(Heads::MULTIPLE_CHOICE) {
        out.push(("choice", bits(&[model.choice_logit(enc, b).expect("choice runs")])));
    }
    out
}

/// The per-token heads of token `pos` of sequence `b`, each by name (those the model has).
fn token_heads(model: &Model<'_>, enc: &mut Encoded<'_>, b: usize, pos: usize) -> Vec<(&'static str, Vec<u32>)> {
    let c = *model.config();
    let mut out = Vec::new();
    if c.heads.has(Heads::MLM) {
        let mut p = vec![0f32; c.vocab_size as usize];
        model.mlm_logits(enc, b, pos, &mut p).expect("mlm runs");
        out.push(("prediction_logits", bits(&p)));
    }
    if c.heads.has(Heads::TOKEN_CLS) {
        let mut p = vec![0f32; c.num_labels as usize];
        model.classify_token(enc, b, pos, &mut p).expect("token classifier runs");
        out.push(("token logits", bits(&p)));
    }
    if c.heads.has(Heads::QA) {
        let (start, end) = model.qa_logits(enc, b, pos).expect("qa runs");
        out.push(("qa logits", bits(&[start, end])));
    }
    out
}

/// Position lists for a sequence of `seq` tokens: the last, a spread of three, every
/// other one, and all of them (strictly increasing, deduplicated for short sequences).
fn position_lists(seq: usize) -> Vec<Vec<usize>> {
    let mut spread = vec![1.min(seq - 1), seq / 2, seq - 1];
    spread.dedup();
    vec![vec![seq - 1], spread, (0..seq).step_by(2).collect(), (0..seq).collect()]
}

/// `encode_positions` against the full encoding `full` of `inputs` (`scratch` for its own).
fn check_positions(model: &Model<'_>, inputs: &Inputs<'_>, full: &mut Encoded<'_>, scratch: &mut [u8], what: &str) {
    let (batch, seq) = (inputs.batch, inputs.seq_len);
    let h = model.config().hidden_size as usize;
    for at in position_lists(seq) {
        let mut part = model.encode_positions(inputs, &at, scratch).expect("encode_positions runs");
        let n = at.len();
        assert_eq!((part.batch(), part.seq_len(), part.hidden_size()), (batch, n, h), "{what} at {at:?}");
        for b in 0..batch {
            for (r, &p) in at.iter().enumerate() {
                assert!(bits(part.token(b, r)) == bits(full.token(b, p)), "{what}: token {p} of sequence {b} differs");
                let (want, got) = (token_heads(model, full, b, p), token_heads(model, &mut part, b, r));
                for ((name, w), (_, g)) in want.iter().zip(&got) {
                    assert!(w == g, "{what}: {name} at token {p} of sequence {b} differs");
                }
            }
            if at[0] == 0 {
                let (want, got) = (heads(model, full, b), heads(model, &mut part, b));
                for ((name, w), (_, g)) in want.iter().zip(&got) {
                    assert!(w == g, "{what}: {name} of sequence {b} differs (positions {at:?})");
                }
            } else if model.config().heads.has(Heads::POOLER) {
                // Row 0 is not [CLS]: the pooled heads refuse rather than read it.
                let mut p = vec![0f32; h];
                let r = model.pooler_output(&mut part, b, &mut p);
                assert!(
                    matches!(r, Err(Error::BadInput { value, .. }) if value == at[0] as u64),
                    "{what}: pooler on positions {at:?}: {r:?}"
                );
            }
        }
        // Only `n` positions were computed.
        if model.config().heads.has(Heads::QA) {
            assert!(
                matches!(model.qa_logits(&mut part, 0, n), Err(Error::BadInput { what: "token position", .. })),
                "{what}"
            );
        }
    }
    let mut refused = |at: &[usize], want: (usize, usize)| match model.encode_positions(inputs, at, scratch) {
        Err(Error::BadPositions { index, value, seq_len, .. }) => (index, value) == want && seq_len == seq,
        _ => false,
    };
    assert!(refused(&[], (0, 0)), "{what}: no positions");
    assert!(refused(&[0, seq], (1, seq)), "{what}: a position past the sequence");
    if seq > 1 {
        assert!(refused(&[1, 0], (1, 0)), "{what}: unordered positions");
        assert!(refused(&[0, 1, 1], (2, 1)), "{what}: a repeated position");
    }
}

/// `encode_pooled` against the full encoding `full` of `inputs` (`scratch` for its own).
fn check_pooled(model: &Model<'_>, inputs: &Inputs<'_>, full: &mut Encoded<'_>, scratch: &mut [u8], what: &str) {
    let (batch, seq) = (inputs.batch, inputs.seq_len);
    let h = model.config().hidden_size as usize;
    let mut pooled = model.encode_pooled(inputs, scratch).expect("encode_pooled runs");
    assert_eq!((pooled.batch(), pooled.seq_len(), pooled.hidden_size()), (batch, 1, h), "{what}");
    assert_eq!(pooled.last_hidden_state().len(), batch * h, "{what}");
    for b in 0..batch {
        assert!(bits(pooled.token(b, 0)) == bits(full.token(b, 0)), "{what}: first token of sequence {b} differs");
        let (want, got) = (heads(model, full, b), heads(model, &mut pooled, b));
        for ((name, w), (_, g)) in want.iter().zip(&got) {
            assert!(w == g, "{what}: {name} of sequence {b} differs");
        }
    }
    // Positions past the first are not computed, so the per-token heads refuse them.
    if seq > 1 && model.config().heads.has(Heads::QA) {
        assert!(matches!(pooled.seq_len(), 1));
        assert!(
            matches!(model.qa_logits(&mut pooled, 0, 1), Err(Error::BadInput { what: "token position", .. })),
            "{what}"
        );
    }
}

/// One case: the full encoding once, then the pooled and the positions encodings against it.
fn check_case(model: &Model<'_>, case: &Case, what: &str) {
    let inputs = case.inputs().expect("a sequence axis");
    let mut s1 = vec![0u8; model.scratch_bytes(inputs.seq_len, inputs.batch)];
    let mut s2 = vec![0u8; model.scratch_bytes(inputs.seq_len, inputs.batch)];
    let mut full = model.encode(&inputs, &mut s1).expect("encode runs");
    check_pooled(model, &inputs, &mut full, &mut s2, what);
    check_positions(model, &inputs, &mut full, &mut s2, what);
}

fn check(dtype: DType) {
    let names = fixture_names().expect("fixture index");
    assert!(names.len() >= 10, "the fixture index lists {} fixtures", names.len());
    for name in names {
        let f = Fixture::load(&name).expect("fixture loads");
        // The default scheme without GPTQ rounding (slow to pack in a debug build).
        let blob = f.pack_with(&PackOptions { gptq: false, ..PackOptions::new(dtype) }).expect("fixture packs");
        let mut model = Model::from_bytes(blob.as_bytes()).expect("blob loads");
        assert!(!f.cases.is_empty(), "{name} has cases");
        for threads in [1, 3] {
            model.set_pool((threads > 1).then(|| Arc::new(Pool::new(threads).expect("threads start"))));
            for case in &f.cases {
                let what = format!("{name} {} {} ({threads} threads)", dtype.name(), case.name);
                check_case(&model, case, &what);
            }
        }
    }
}

#[test]
fn int8_pooled_encoding_matches_the_full_one_bit_for_bit() {
    check(DType::I8);
}

#[test]
fn f32_pooled_encoding_matches_the_full_one_bit_for_bit() {
    check(DType::F32);
}
