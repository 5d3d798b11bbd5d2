//! `quantize`: Hugging Face ALBERT checkpoint directory → one `.albq` blob.

use std::path::PathBuf;
use std::process::ExitCode;

use albert_engine::config::DType;
use albert_tools::checkpoint::{self, Task};
use albert_tools::{pack, write};
use clap::{Parser, ValueEnum};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum WeightDtype {
    F32,
    F16,
    Int8,
}

/// Pack a Hugging Face ALBERT checkpoint (config.json + model.safetensors) into an .albq blob.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Checkpoint directory, as `save_pretrained` or `huggingface-cli download` leaves it.
    checkpoint: PathBuf,
    /// Output blob.
    #[arg(short, long, default_value = "model.albq")]
    output: PathBuf,
    /// Precision of the matrix weights (biases and LayerNorms stay f32).
    #[arg(long, value_enum, default_value = "int8")]
    dtype: WeightDtype,
    /// Which head `classifier` is, when config.json's `architectures` does not say.
    #[arg(long, value_enum)]
    task: Option<Task>,
    /// Print only the summary line, not every tensor.
    #[arg(short, long)]
    quiet: bool,
}

fn run(args: &Args) -> anyhow::Result<()> {
    let ck = checkpoint::load(&args.checkpoint, args.task)?;
    let dtype = match args.dtype {
        WeightDtype::F32 => DType::F32,
        WeightDtype::F16 => DType::F16,
        WeightDtype::Int8 => DType::I8,
    };
    let (bytes, summary) = pack::pack(&ck, dtype)?;
    write::write_atomic(&args.output, &bytes)?;
    if !args.quiet {
        println!("{:<70} {:>5} {:>16} {:>12}", "tensor", "dtype", "shape", "bytes");
        for p in &summary {
            let shape = p.shape.iter().map(u32::to_string).collect::<Vec<_>>().join("x");
            println!("{:<70} {:>5} {:>16} {:>12}", p.name, p.dtype.name(), shape, p.bytes);
        }
    }
    let c = &ck.config;
    println!(
        "wrote {}: {:?} (hidden {}, {} iterations over {} group(s)), {} tensors, {} weights, {} bytes",
        args.output.display(),
        ck.task,
        c.hidden_size,
        c.num_hidden_layers,
        c.num_hidden_groups,
        summary.len(),
        dtype.name(),
        bytes.len()
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quantize: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
