//! `tarjama man`: manual pages (roff), generated from the same definitions as `--help`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::CommandFactory;

/// Flags of `tarjama man`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  tarjama man | man -l -                  read the main page now
  tarjama man --dir ~/.local/share/man/man1   install tarjama.1 and one page per subcommand")]
pub struct Args {
    /// Write tarjama.1 and one page per subcommand (tarjama-translate.1, ...) into this
    /// folder instead of printing the main page.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// Prints the main page, or writes every page into `--dir`.
pub fn run<C: CommandFactory>(args: Args) -> anyhow::Result<i32> {
    let mut cmd = C::command();
    cmd.build();
    match args.dir {
        None => clap_mangen::Man::new(cmd).render(&mut std::io::stdout().lock())?,
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            write_pages(&cmd, &dir, cmd.get_name())?;
        }
    }
    Ok(crate::exit::SUCCESS)
}

/// Writes `name.1` for `cmd` and, recursively, `name-sub.1` for its subcommands.
fn write_pages(cmd: &clap::Command, dir: &Path, name: &str) -> anyhow::Result<()> {
    let page = cmd.clone().name(name.to_string());
    let path = dir.join(format!("{name}.1"));
    let mut buf = Vec::new();
    clap_mangen::Man::new(page).render(&mut buf)?;
    std::fs::write(&path, buf).with_context(|| format!("cannot write {}", path.display()))?;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        write_pages(sub, dir, &format!("{name}-{}", sub.get_name()))?;
    }
    Ok(())
}
