//! `tarjama summarize`.

/// Flags of `tarjama summarize`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `tarjama summarize`.
pub fn run(_args: Args) -> anyhow::Result<i32> {
    anyhow::bail!("`tarjama summarize` is not available yet in this build")
}
