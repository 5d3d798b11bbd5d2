//! The blob parser and validator (`Model::from_bytes`) on arbitrary bytes: as they come,
//! and re-sealed (file size and checksum made consistent) so that mutations reach the
//! checks behind the checksum. A model that loads is walked, tokenized with and run.
#![no_main]

use albert_fuzz::{exercise_blob, reseal};
use albert_quantize::pack::AlignedBlob;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    exercise_blob(AlignedBlob::new(data).as_bytes());
    let mut sealed = data.to_vec();
    reseal(&mut sealed);
    exercise_blob(AlignedBlob::new(&sealed).as_bytes());
});
