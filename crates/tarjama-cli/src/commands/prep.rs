//! `tarjama prep`.

/// Subcommands of `tarjama prep`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {}

/// Runs `tarjama prep`.
pub fn run(cmd: Command) -> anyhow::Result<i32> {
    match cmd {}
}
