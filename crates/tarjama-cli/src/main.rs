//! `tarjama`: Arabic news to English on your laptop.
//!
//! One file per subcommand under `commands/`; this file only parses the command line,
//! sets up logging and maps errors to exit codes.

mod commands;
mod exit;
mod machine;
mod progress;

use std::io::ErrorKind;

use clap::{Parser, Subcommand};

/// Arabic news to English on your laptop: summarize, translate, evaluate, benchmark.
#[derive(Debug, Parser)]
#[command(name = "tarjama", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// More log detail on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Summarize Arabic articles in English.
    Summarize(commands::summarize::Args),
    /// Translate Arabic text, files or folders into English.
    Translate(commands::translate::Args),
    /// Prepare Arabic text: normalize it, split it into sentences.
    #[command(subcommand)]
    Prep(commands::prep::Command),
    /// List, download and inspect models.
    #[command(subcommand)]
    Models(commands::models::Command),
    /// Score hypotheses against references (BLEU, chrF, chrF++, ROUGE).
    Eval(commands::eval::Args),
    /// Serve the model over HTTP: OpenAI- and LibreTranslate-compatible APIs and a web page.
    Serve(commands::serve::Args),
    /// Measure models' quality, speed and memory on the same sentences.
    Bench(commands::bench::Args),
    /// Print shell completions.
    Completions(commands::completions::Args),
    /// Print the manual page, or write all of them to a folder.
    Man(commands::man::Args),
}

fn main() {
    tarjama_kernels::runtime::tune();
    if let Some(text) = verbose_version(std::env::args().skip(1)) {
        print!("{text}");
        std::process::exit(exit::SUCCESS);
    }
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::Summarize(args) => commands::summarize::run(args),
        Command::Translate(args) => commands::translate::run(args),
        Command::Prep(cmd) => commands::prep::run(cmd),
        Command::Models(cmd) => commands::models::run(cmd),
        Command::Eval(args) => commands::eval::run(args),
        Command::Bench(args) => commands::bench::run(args),
        Command::Serve(args) => commands::serve::run(args),
        Command::Completions(args) => commands::completions::run::<Cli>(args),
        Command::Man(args) => commands::man::run::<Cli>(args),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(err) => {
            if is_broken_pipe(&err) {
                std::process::exit(exit::SUCCESS);
            }
            eprintln!("error: {err:#}");
            std::process::exit(exit::FAILURE);
        }
    }
}

/// `tarjama --version --verbose` (or `-V -v`): the version, and what this binary runs
/// with on this CPU. None for any other command line (plain `--version` is clap's).
fn verbose_version(args: impl Iterator<Item = String>) -> Option<String> {
    use tarjama_kernels::cpu::{self, Tier, KERNELS_VAR};
    let args: Vec<String> = args.collect();
    let version = args.iter().any(|a| a == "--version" || a == "-V");
    let verbose = args.iter().any(|a| {
        a == "--verbose" || (a.len() > 1 && a.starts_with('-') && a[1..].chars().all(|c| c == 'v'))
    });
    if !(version && verbose) {
        return None;
    }
    let forced = std::env::var(KERNELS_VAR).map_or("unset".into(), |v| format!("{v:?}"));
    let tiers: Vec<&str> = Tier::ALL
        .iter()
        .filter(|t| t.available())
        .map(|t| t.name())
        .collect();
    Some(format!(
        "tarjama {}\nkernels: {} (this CPU runs: {}; {KERNELS_VAR} {forced})\n\
         cpu: {} [{}]\nbuilt for: {} {}\n",
        env!("CARGO_PKG_VERSION"),
        Tier::active(),
        tiers.join(", "),
        machine::cpu_model().unwrap_or_else(|| "unknown".into()),
        cpu::features().join(" "),
        std::env::consts::ARCH,
        if cfg!(target_feature = "avx2") {
            "(with AVX2 at compile time: runs only on AVX2 CPUs)"
        } else {
            "(baseline: runs on any CPU of this architecture)"
        },
    ))
}

/// A reader that closed the pipe (`tarjama ... | head`) is not an error.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == ErrorKind::BrokenPipe)
    })
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
