//! The C API from Rust, on the bundled model: fill-mask equals the CLI's pipeline bit for
//! bit, and the tensor entry points agree with the engine. (examples/c/ does the same
//! from C, on x86_64 and on aarch64 under qemu.)

use std::ffi::CStr;
use std::ptr::{null, null_mut};

use albert::*;
use albert_engine::{Inputs, Model};

const MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/albert-pydoc.albq");

/// The blob in 8-byte aligned memory, as firmware holds it.
fn aligned_blob() -> (Vec<u64>, usize) {
    let bytes = std::fs::read(MODEL).expect("the bundled model");
    let mut words = vec![0u64; bytes.len().div_ceil(8)];
    // SAFETY: `words` has at least `bytes.len()` bytes; u64 memory may hold any bytes.
    unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), bytes.len()) }.copy_from_slice(&bytes);
    (words, bytes.len())
}

fn new_handle() -> Box<AlbertModel> {
    Box::new(AlbertModel { _opaque: [0; ALBERT_MODEL_WORDS] })
}

fn message(m: &AlbertModel) -> String {
    let mut buf = [0 as std::ffi::c_char; 512];
    // SAFETY: a valid handle and buffer.
    assert_eq!(unsafe { albert_last_error(m, buf.as_mut_ptr(), buf.len(), null_mut()) }, ALBERT_OK);
    // SAFETY: NUL-terminated by the call.
    unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned()
}

#[test]
fn fill_mask_equals_the_cli_pipeline() {
    let (words, len) = aligned_blob();
    let mut m = new_handle();
    // SAFETY: aligned bytes that outlive the handle (closed below).
    let st = unsafe { albert_model_open_bytes(&mut *m, words.as_ptr().cast(), len) };
    assert_eq!(st, ALBERT_OK, "{}", message(&m));

    let mapped = Model::open(MODEL).unwrap();
    let mut pipeline = albert_tools::pipelines::Pipeline::new(mapped.model()).unwrap();
    for (text, top_k) in [
        ("The function returns a [MASK] of integers.", 5),
        ("A [MASK] is defined inside a [MASK].", 3),
        ("Le café « spécial » est [MASK] !", 7),
        ("[MASK]", 1),
    ] {
        let want = pipeline.fill_mask(text, top_k).unwrap();
        let mut scratch_len = 0;
        // SAFETY: valid handle and out-pointer.
        assert_eq!(unsafe { albert_fill_mask_scratch_bytes(&*m, text.len(), &mut scratch_len) }, ALBERT_OK);
        let mut scratch = vec![0u8; scratch_len];
        let empty = AlbertFillMaskCandidate {
            token: 0,
            score: 0.0,
            mask_index: 0,
            position: 0,
            token_str: null(),
            token_str_len: 0,
            sequence: null(),
            sequence_len: 0,
        };
        let mut out = vec![empty; 32];
        let mut strings = vec![0 as std::ffi::c_char; 8192];
        let (mut count, mut used) = (0, 0);
        // SAFETY: every buffer is valid for the length passed.
        let st = unsafe {
            albert_fill_mask(
                &*m,
                text.as_ptr().cast(),
                text.len(),
                top_k,
                scratch.as_mut_ptr().cast(),
                scratch.len(),
                out.as_mut_ptr(),
                out.len(),
                &mut count,
                strings.as_mut_ptr(),
                strings.len(),
                &mut used,
            )
        };
        assert_eq!(st, ALBERT_OK, "{text}: {}", message(&m));
        assert_eq!(count, want.iter().map(Vec::len).sum::<usize>(), "{text}");
        let got = &out[..count];
        for (mask, cands) in want.iter().enumerate() {
            for (i, w) in cands.iter().enumerate() {
                let g = &got[mask * top_k + i];
                // SAFETY: the call wrote NUL-terminated strings into `strings`.
                let (token_str, sequence) = unsafe {
                    (CStr::from_ptr(g.token_str).to_str().unwrap(), CStr::from_ptr(g.sequence).to_str().unwrap())
                };
                assert_eq!(g.mask_index as usize, mask);
                assert_eq!(g.token, w.token, "{text}");
                assert_eq!(g.score.to_bits(), w.score.to_bits(), "{text}: {} vs {}", g.score, w.score);
                assert_eq!(token_str, w.token_str);
                assert_eq!(g.token_str_len, w.token_str.len());
                assert_eq!(sequence, w.sequence);
                assert_eq!(g.sequence_len, w.sequence.len());
            }
        }
    }
    // SAFETY: the handle is open and used by this thread only.
    assert_eq!(unsafe { albert_model_close(&mut *m) }, ALBERT_OK);
}

#[test]
fn forward_and_embed_agree_with_the_engine() {
    let mut m = new_handle();
    let path = std::ffi::CString::new(MODEL).unwrap();
    // SAFETY: a NUL-terminated path and writable storage.
    assert_eq!(unsafe { albert_model_open_path(&mut *m, path.as_ptr()) }, ALBERT_OK);
    let mut info = AlbertModelInfo::default();
    // SAFETY: valid handle and out-pointer.
    assert_eq!(unsafe { albert_model_info(&*m, &mut info) }, ALBERT_OK);
    let h = info.hidden_size as usize;
    let ids = [2u32, 31, 7, 41, 3, 2, 9, 10, 3, 0];
    let mask = [1u32, 1, 1, 1, 1, 1, 1, 1, 1, 0];
    let (batch, seq) = (2, 5);
    let inputs = AlbertInputs {
        input_ids: ids.as_ptr(),
        token_type_ids: null(),
        attention_mask: mask.as_ptr(),
        batch,
        seq_len: seq,
    };
    let mut scratch_len = 0;
    // SAFETY: valid handle and out-pointer.
    assert_eq!(unsafe { albert_scratch_bytes(&*m, seq, batch, &mut scratch_len) }, ALBERT_OK);
    let mut scratch = vec![0u8; scratch_len];
    let mut hidden = vec![0f32; batch * seq * h];
    // SAFETY: buffers valid for the lengths passed.
    let st = unsafe {
        albert_forward(&*m, &inputs, scratch.as_mut_ptr().cast(), scratch.len(), hidden.as_mut_ptr(), hidden.len())
    };
    assert_eq!(st, ALBERT_OK, "{}", message(&m));

    let mapped = Model::open(MODEL).unwrap();
    let model = mapped.model();
    let inp = Inputs { input_ids: &ids, token_type_ids: None, attention_mask: Some(&mask), batch, seq_len: seq };
    let mut s = vec![0u8; model.scratch_bytes(seq, batch)];
    let mut enc = model.encode(&inp, &mut s).unwrap();
    assert_eq!(hidden, enc.last_hidden_state());

    let mut pooled = vec![0f32; batch * h];
    // SAFETY: as above.
    let st = unsafe {
        albert_embed(
            &*m,
            &inputs,
            ALBERT_EMBED_POOLER_OUTPUT,
            scratch.as_mut_ptr().cast(),
            scratch.len(),
            pooled.as_mut_ptr(),
            pooled.len(),
        )
    };
    assert_eq!(st, ALBERT_OK, "{}", message(&m));
    let mut want = vec![0f32; h];
    model.pooler_output(&mut enc, 1, &mut want).unwrap();
    assert_eq!(&pooled[h..], &want[..]);

    let mut mean = vec![0f32; batch * h];
    // SAFETY: as above.
    let st = unsafe {
        albert_embed(
            &*m,
            &inputs,
            ALBERT_EMBED_MEAN,
            scratch.as_mut_ptr().cast(),
            scratch.len(),
            mean.as_mut_ptr(),
            mean.len(),
        )
    };
    assert_eq!(st, ALBERT_OK);
    let want0: f32 = (0..4).map(|p| hidden[(seq + p) * h]).sum::<f32>() / 4.0;
    assert!((mean[h] - want0).abs() <= 1e-5 * (1.0 + want0.abs()));

    // SAFETY: the handle is open and used by this thread only.
    assert_eq!(unsafe { albert_model_close(&mut *m) }, ALBERT_OK);
    // SAFETY: closed handle storage is still readable.
    assert_eq!(unsafe { albert_model_info(&*m, &mut info) }, ALBERT_ERR_BAD_HANDLE);
}

#[test]
fn classify_agrees_with_the_engine_and_missing_parts_are_unsupported() {
    use albert_engine::config::DType;
    use albert_quantize::{checkpoint, pack};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/seq_cls_relu");
    let (bytes, _) = pack::pack(&checkpoint::load(&dir, None).unwrap(), DType::I8).unwrap();
    let blob = pack::AlignedBlob::new(&bytes);
    let bytes = blob.as_bytes();
    let mut m = new_handle();
    // SAFETY: aligned bytes that outlive the handle.
    assert_eq!(unsafe { albert_model_open_bytes(&mut *m, bytes.as_ptr(), bytes.len()) }, ALBERT_OK, "{}", message(&m));
    let mut info = AlbertModelInfo::default();
    // SAFETY: valid handle and out-pointer.
    assert_eq!(unsafe { albert_model_info(&*m, &mut info) }, ALBERT_OK);
    assert_ne!(info.heads & ALBERT_HEAD_SEQUENCE_CLASSIFICATION, 0);
    let n = info.num_labels as usize;
    let ids = [2u32, 11, 12, 13, 3, 2, 14, 3];
    let types = [0u32, 0, 0, 0, 0, 0, 0, 1];
    let inputs = AlbertInputs {
        input_ids: ids.as_ptr(),
        token_type_ids: types.as_ptr(),
        attention_mask: null(),
        batch: 2,
        seq_len: 4,
    };
    let mut scratch_len = 0;
    // SAFETY: valid handle and out-pointer.
    assert_eq!(unsafe { albert_scratch_bytes(&*m, 4, 2, &mut scratch_len) }, ALBERT_OK);
    let mut scratch = vec![0u8; scratch_len];
    let mut logits = vec![0f32; 2 * n];
    // SAFETY: buffers valid for the lengths passed.
    let st = unsafe {
        albert_classify(&*m, &inputs, scratch.as_mut_ptr().cast(), scratch.len(), logits.as_mut_ptr(), logits.len())
    };
    assert_eq!(st, ALBERT_OK, "{}", message(&m));

    let model = Model::from_bytes(bytes).unwrap();
    let inp = Inputs { input_ids: &ids, token_type_ids: Some(&types), attention_mask: None, batch: 2, seq_len: 4 };
    let mut s = vec![0u8; model.scratch_bytes(4, 2)];
    let mut enc = model.encode(&inp, &mut s).unwrap();
    let mut want = vec![0f32; n];
    for b in 0..2 {
        model.classify(&mut enc, b, &mut want).unwrap();
        assert_eq!(&logits[b * n..(b + 1) * n], &want[..]);
    }
    let mut label = [0 as std::ffi::c_char; 64];
    let mut len = 0;
    // SAFETY: valid buffers.
    let st = unsafe { albert_label(&*m, 0, label.as_mut_ptr(), label.len(), &mut len) };
    match model.label(0) {
        // SAFETY: NUL-terminated by the call.
        Some(l) => assert_eq!((st, unsafe { CStr::from_ptr(label.as_ptr()) }.to_str().unwrap()), (ALBERT_OK, l)),
        None => assert_eq!(st, ALBERT_ERR_BAD_INPUT),
    }

    // No masked-LM head: fill-mask is unsupported, with a message saying why.
    let mut count = 0;
    let text = "a [MASK]";
    // SAFETY: valid handle; the call fails before touching the empty buffers.
    let st = unsafe {
        albert_fill_mask(
            &*m,
            text.as_ptr().cast(),
            text.len(),
            5,
            scratch.as_mut_ptr().cast(),
            scratch.len(),
            null_mut(),
            0,
            &mut count,
            null_mut(),
            0,
            null_mut(),
        )
    };
    assert_eq!(st, ALBERT_ERR_UNSUPPORTED);
    assert!(message(&m).contains("masked-LM") || message(&m).contains("tokenizer"), "{}", message(&m));
    // SAFETY: the handle is open and used by this thread only.
    assert_eq!(unsafe { albert_model_close(&mut *m) }, ALBERT_OK);
}
