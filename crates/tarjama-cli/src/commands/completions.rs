//! `tarjama completions SHELL`: shell completion scripts.

use clap::CommandFactory;
use clap_complete::Shell;

/// Flags of `tarjama completions`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell to write completions for.
    shell: Shell,
}

/// Writes the completion script for the chosen shell to stdout.
pub fn run<C: CommandFactory>(args: Args) -> anyhow::Result<i32> {
    let mut cmd = C::command();
    let name = cmd.get_name().to_string();
    clap_complete::generate(args.shell, &mut cmd, name, &mut std::io::stdout());
    Ok(crate::exit::SUCCESS)
}
