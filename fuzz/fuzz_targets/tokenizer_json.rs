//! `quantize`'s `tokenizer.json` reader on arbitrary bytes; what reads is packed, loaded
//! by the engine and run.
#![no_main]

use albert_fuzz::exercise_spec;
use albert_quantize::tokenizer as tk;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(spec) = tk::from_tokenizer_json_bytes(data) {
        exercise_spec(spec);
    }
});
