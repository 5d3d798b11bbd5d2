//! The engine's tokenizer on arbitrary bytes and strings, in fast and sentencepiece mode
//! (`albert_fuzz::tokenizers`), with fuzzed options, workspace and output sizes.
//!
//! Input: byte 0 picks the tokenizer and whether the text is a pair; byte 1 the options;
//! byte 2 `max_length`; byte 3 the buffer sizes; the rest is the text, split at the first
//! 0xFF byte into first and second text.
#![no_main]

use albert_fuzz::{Bytes, encode_checked, options, tokenizers};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    let (which, flags, max, sizes) = (b.u8(), b.u8(), b.u8(), b.u8());
    let text = b.0;
    let toks = tokenizers();
    let tok = &toks[which as usize % toks.len()];
    let (first, second) = match text.iter().position(|&c| c == 0xFF) {
        Some(i) if which & 0x80 != 0 => (&text[..i], Some(&text[i + 1..])),
        _ => (text, None),
    };
    let opts = options(flags, max);
    // Mostly roomy buffers; sometimes tight ones, to reach the capacity errors.
    let (chars, out) = if sizes & 1 == 0 { (None, 4 * text.len() + 600) } else { (Some((sizes >> 1) as usize), (sizes >> 3) as usize) };
    encode_checked(tok, first, second, &opts, chars, out);
    // The same text made UTF-8, so invalid bytes do not stop the pipeline at the door.
    let a = String::from_utf8_lossy(first);
    let b2 = second.map(String::from_utf8_lossy);
    encode_checked(tok, a.as_bytes(), b2.as_ref().map(|s| s.as_bytes()), &opts, chars, out);
});
