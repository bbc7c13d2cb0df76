//! `tarjama translate`.

/// Flags of `tarjama translate`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `tarjama translate`.
pub fn run(_args: Args) -> anyhow::Result<i32> {
    anyhow::bail!("`tarjama translate` is not available yet in this build")
}
