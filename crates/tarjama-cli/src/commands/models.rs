//! `tarjama models`.

/// Subcommands of `tarjama models`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {}

/// Runs `tarjama models`.
pub fn run(cmd: Command) -> anyhow::Result<i32> {
    match cmd {}
}
