//! Sizes the firmware's static buffers from the blob it bundles and, for bare metal,
//! writes the linker script.
//!
//! The blob is `../models/albert-pydoc.albq` unless `FIRMWARE_DEMO_BLOB` names another.
//! It is validated here with the engine itself, and `Model::scratch_bytes` for
//! `MAX_TOKENS` tokens becomes the size of the static scratch in `.bss`: a later, bigger
//! model changes the sizes with no edit.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;

/// Longest token sequence the firmware runs (special tokens included).
const MAX_TOKENS: usize = 64;
/// Longest demo sentence in bytes (tokenizer workspace).
const MAX_TEXT: usize = 256;
/// Bare-metal stack.
const STACK_BYTES: usize = 512 * 1024;

fn main() {
    let dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    println!("cargo:rerun-if-env-changed=FIRMWARE_DEMO_BLOB");
    println!("cargo:rerun-if-changed=build.rs");
    let blob = env::var_os("FIRMWARE_DEMO_BLOB").map_or_else(|| dir.join("../models/albert-pydoc.albq"), PathBuf::from);
    let blob = blob.canonicalize().unwrap_or_else(|e| panic!("{}: {e}", blob.display()));
    println!("cargo:rerun-if-changed={}", blob.display());
    println!("cargo:rustc-env=FIRMWARE_DEMO_BLOB={}", blob.display());

    let mapped = albert_engine::Model::open(&blob).unwrap_or_else(|e| panic!("{}: {e}", blob.display()));
    let model = mapped.model();
    let c = model.config();
    let max_tokens = MAX_TOKENS.min(c.max_position_embeddings as usize);
    let mut consts = String::new();
    let mut put =
        |name: &str, v: usize, doc: &str| writeln!(consts, "/// {doc}\npub const {name}: usize = {v};").unwrap();
    put("MAX_TOKENS", max_tokens, "Longest token sequence the firmware runs (special tokens included).");
    put("MAX_TEXT", MAX_TEXT, "Longest input text in bytes.");
    put(
        "SCRATCH_BYTES",
        model.scratch_bytes(max_tokens, 1),
        "`Model::scratch_bytes(MAX_TOKENS, 1)` of the bundled blob.",
    );
    put("VOCAB_SIZE", c.vocab_size as usize, "Vocabulary size of the bundled blob (MLM logits).");
    put("BLOB_BYTES", fs::metadata(&blob).unwrap().len() as usize, "Size of the bundled blob.");
    put("STACK_BYTES", STACK_BYTES, "Bare-metal stack size.");
    fs::write(out.join("consts.rs"), consts).unwrap();

    if env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        let raspi = env::var_os("CARGO_FEATURE_RASPI3B").is_some();
        // virt: RAM from 0x4000_0000 (QEMU puts the DTB at its start); the image goes
        // where Linux's would, and everything must end below the blob override window
        // at 0x4400_0000 (src/bare/mod.rs). raspi3b: the firmware loads kernel8.img at
        // 0x8_0000; RAM runs to the peripherals at 0x3F00_0000 (less the GPU's share).
        let (base, limit) = if raspi { (0x8_0000u64, 0x3000_0000u64) } else { (0x4008_0000, 0x4400_0000) };
        let script = format!(
            r#"/* Written by build.rs. */
ENTRY(_start)
SECTIONS
{{
    . = {base:#x};
    __image_start = .;
    .text : {{ KEEP(*(.text.boot)) *(.text .text.*) }}
    .rodata : ALIGN(64) {{ *(.rodata .rodata.*) }}
    .data : ALIGN(16) {{ *(.data .data.*) }}
    . = ALIGN(16);
    __image_end = .;
    .bss (NOLOAD) : ALIGN(16) {{
        __bss_start = .;
        *(.bss .bss.*) *(COMMON)
        . = ALIGN(16);
        __bss_end = .;
    }}
    .stack (NOLOAD) : ALIGN(16) {{
        __stack_bottom = .;
        . += {STACK_BYTES:#x};
        __stack_top = .;
    }}
    /DISCARD/ : {{ *(.comment) *(.note .note.*) }}
}}
ASSERT(__stack_top <= {limit:#x}, "image + .bss + stack do not fit below the limit")
"#
        );
        fs::write(out.join("link.x"), script).unwrap();
        println!("cargo:rustc-link-arg-bins=-T{}", out.join("link.x").display());
    }
}
