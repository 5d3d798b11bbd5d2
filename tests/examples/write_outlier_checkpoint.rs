//! Writes the outlier fixture's checkpoint (rebuilt from its generator) to a directory, so
//! it can be fed to `quantize` by hand:
//! `cargo run -p albert-tests --example write_outlier_checkpoint -- /tmp/outlier`.

fn main() -> anyhow::Result<()> {
    let dir = std::env::args().nth(1).ok_or_else(|| anyhow::anyhow!("usage: write_outlier_checkpoint DIR"))?;
    std::fs::create_dir_all(&dir)?;
    let fixture = albert_tests::fixtures_dir().join("outlier_base");
    albert_tests::synth::write_outlier_checkpoint(&fixture, std::path::Path::new(&dir))?;
    println!("wrote {dir}/config.json and {dir}/model.safetensors");
    Ok(())
}
