//! `quantize`: Hugging Face ALBERT checkpoint directory → one `.albq` blob. The work is in
//! `albert_quantize::cli`.

use std::process::ExitCode;

use albert_quantize::cli::{Args, run};
use clap::Parser;

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args, &mut std::io::stdout().lock(), true) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quantize: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
