//! `tarjama eval`.

/// Flags of `tarjama eval`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `tarjama eval`.
pub fn run(_args: Args) -> anyhow::Result<i32> {
    anyhow::bail!("`tarjama eval` is not available yet in this build")
}
