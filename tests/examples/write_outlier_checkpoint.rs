//! Writes the outlier fixture's checkpoint (rebuilt from its generator) to a directory, so
//! it can be fed to `quantize` by hand:
//! `cargo run -p albert-tests --example write_outlier_checkpoint -- /tmp/outlier [--max-position 512]`.
//! `--max-position N` raises `max_position_embeddings` (the fixture has 128) so that
//! `albert bench --seq 384` runs at albert-base-v2's full shape.

fn main() -> anyhow::Result<()> {
    let usage = || anyhow::anyhow!("usage: write_outlier_checkpoint DIR [--max-position N]");
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (dir, positions) = match args.as_slice() {
        [dir] => (dir, None),
        [dir, flag, n] if flag == "--max-position" => (dir, Some(n.parse::<usize>().map_err(|_| usage())?)),
        _ => return Err(usage()),
    };
    std::fs::create_dir_all(dir)?;
    let fixture = albert_tests::fixtures_dir().join("outlier_base");
    let out = std::path::Path::new(dir);
    match positions {
        None => albert_tests::synth::write_outlier_checkpoint(&fixture, out)?,
        Some(p) => albert_tests::synth::write_outlier_checkpoint_positions(&fixture, out, p)?,
    }
    println!("wrote {dir}/config.json and {dir}/model.safetensors");
    Ok(())
}
