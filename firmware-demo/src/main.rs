//! `firmware-demo`: fill-mask on aarch64 / armv7 Linux (a std program reading stdin), or
//! on bare metal (`aarch64-unknown-none`: `no_std`, `no_main`, no allocator; see `bare/`).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod bare;

#[cfg(not(target_os = "none"))]
mod linux;

#[cfg(not(target_os = "none"))]
fn main() -> std::process::ExitCode {
    linux::main()
}
