//! Packing fixture blobs for the `albert` tests: `quantize` run in-process through the
//! albert-quantize library (a dev-dependency), not as a binary of this package. Its own
//! errors and exit codes are tested in tools/quantize/tests/.

use std::ffi::OsString;
use std::path::Path;

use albert_quantize::cli::{Args, run};
use clap::Parser;

/// `quantize DIR -o OUT EXTRA...`; returns what the binary would print on stdout, and
/// panics with the error (as the binary prints it) when quantize fails.
pub fn quantize(dir: &Path, out: &Path, extra: &[&str]) -> String {
    let mut argv: Vec<OsString> = vec!["quantize".into(), dir.into(), "-o".into(), out.into()];
    argv.extend(extra.iter().map(OsString::from));
    let args = Args::try_parse_from(argv).unwrap_or_else(|e| panic!("quantize: {e}"));
    let mut stdout = Vec::new();
    run(&args, &mut stdout, false).unwrap_or_else(|e| panic!("quantize: error: {e:#}"));
    String::from_utf8(stdout).expect("quantize prints UTF-8")
}
