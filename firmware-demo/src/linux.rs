//! The Linux front end: a blob from a path (memory-mapped) or the bundled one, text lines
//! from stdin, fill-mask results and per-inference timing on stdout.

use albert_engine::tokenizer::{NChar, Node, Workspace};
use albert_engine::{MappedModel, Model};
use firmware_demo::{BUNDLED, Buffers, Clock, Demo};
use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::Instant;

const USAGE: &str = "usage: firmware-demo [BLOB.albq] < lines

Reads text lines with [MASK] from stdin and prints the top 5 fillers of each mask with
their scores, and the time each inference took. Without BLOB, uses the blob built in.";

/// Nanoseconds since start.
struct Wall(Instant);

impl Clock for Wall {
    fn now(&mut self) -> u64 {
        self.0.elapsed().as_nanos() as u64
    }
    fn hz(&self) -> u64 {
        1_000_000_000
    }
}

/// `fmt::Write` over a locked stdout.
struct Out<W: Write>(W);

impl<W: Write> std::fmt::Write for Out<W> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.write_all(s.as_bytes()).map_err(|_| std::fmt::Error)
    }
}

pub fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") || args.len() > 1 {
        eprintln!("{USAGE}");
        return if args.len() > 1 { ExitCode::from(2) } else { ExitCode::SUCCESS };
    }
    let mapped: Option<MappedModel> = match args.first() {
        Some(path) => match Model::open(path) {
            Ok(m) => Some(m),
            Err(e) => {
                eprintln!("error: {path}: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    let bytes: &[u8] = match &mapped {
        Some(m) => m.model().blob().bytes(),
        None => &BUNDLED.0,
    };
    let demo = match Demo::new(bytes) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {}: {e}", args.first().map_or("bundled blob", String::as_str));
            return ExitCode::FAILURE;
        }
    };
    run(&demo, args.first().map_or("bundled", String::as_str))
}

fn run(demo: &Demo<'_>, source: &str) -> ExitCode {
    let cap = demo.model.config().max_position_embeddings as usize;
    let vocab = demo.model.config().vocab_size as usize;
    let (mut ids, mut type_ids, mut mask, mut offsets) = (vec![0; cap], vec![0; cap], vec![0; cap], vec![[0; 2]; cap]);
    let mut scratch = vec![0u8; demo.model.scratch_bytes(cap, 1)];
    let mut logits = vec![0f32; vocab];
    let (mut chars, mut chars2, mut bytes, mut lattice) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut out = Out(std::io::stdout().lock());
    let mut clock = Wall(Instant::now());
    let _ =
        writeln!(out.0, "# blob: {source}; scratch {} bytes for up to {cap} tokens, no other buffers", scratch.len());
    let _ = demo.describe(&mut out);
    let mut failed = false;
    for line in std::io::stdin().lock().lines() {
        let Ok(text) = line else { break };
        if text.trim().is_empty() {
            continue;
        }
        let n = Workspace::chars_for(text.len());
        chars.resize(n, NChar::EMPTY);
        chars2.resize(n, NChar::EMPTY);
        bytes.resize(4 * n, 0);
        lattice.resize(4 * n + 1, Node::EMPTY);
        let mut bufs = Buffers {
            ids: &mut ids,
            type_ids: &mut type_ids,
            attention_mask: &mut mask,
            offsets: &mut offsets,
            workspace: Workspace { chars: &mut chars, chars2: &mut chars2, bytes: &mut bytes, lattice: &mut lattice },
            scratch: &mut scratch,
            logits: &mut logits,
        };
        match demo.fill_mask(&text, &mut bufs, &mut clock, &mut out) {
            Ok(t) => {
                let _ = writeln!(out.0, "{t}");
            }
            Err(e) => {
                let _ = writeln!(out.0, "> {text}\n! error: {e}");
                failed = true;
            }
        }
        let _ = out.0.flush();
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}
