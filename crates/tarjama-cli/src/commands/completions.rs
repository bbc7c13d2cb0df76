//! `tarjama completions SHELL`: shell completion scripts.

use clap::CommandFactory;
use clap_complete::Shell;

/// Flags of `tarjama completions`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  tarjama completions bash > ~/.local/share/bash-completion/completions/tarjama
  tarjama completions zsh > ~/.zfunc/_tarjama
  tarjama completions fish > ~/.config/fish/completions/tarjama.fish")]
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
