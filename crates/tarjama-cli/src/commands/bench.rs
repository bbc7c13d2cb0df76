//! `tarjama bench`.

/// Flags of `tarjama bench`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `tarjama bench`.
pub fn run(_args: Args) -> anyhow::Result<i32> {
    anyhow::bail!("`tarjama bench` is not available yet in this build")
}
