//! `quantize`'s `spiece.model` reader on arbitrary bytes, in both tokenizer modes and
//! every lowercase/accent setting; what reads is packed, loaded by the engine and run.
#![no_main]

use albert_fuzz::exercise_spec;
use albert_quantize::tokenizer as tk;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if tk::parse_spiece(data).is_err() {
        return;
    }
    for (lower, keep_accents) in [(true, false), (false, true)] {
        if let Ok(spec) = tk::from_spiece(data, lower, keep_accents) {
            exercise_spec(spec);
        }
        if let Ok(spec) = tk::from_spiece_slow(data, lower, keep_accents) {
            exercise_spec(spec);
        }
    }
});
