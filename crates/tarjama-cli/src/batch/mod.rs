//! The machinery behind `tarjama translate` on many files: finding inputs, reading
//! structured formats, rendering outputs, writing them atomically, remembering what is
//! done (the manifest), caching repeated sentences, and stopping cleanly on Ctrl-C.
//!
//! Nothing here knows which model runs: translation goes through `dyn Translator`.

pub mod atomic;
pub mod cache;
pub mod formats;
pub mod inputs;
pub mod lines;
pub mod manifest;
pub mod render;
pub mod signal;

use std::path::{Path, PathBuf};

/// Exit code of a run stopped by Ctrl-C (128 + SIGINT, what shells report).
pub const INTERRUPTED: i32 = 130;

/// Where a translate run's outputs go (`--output`).
pub enum Sink {
    /// Standard output (no `--output`, or `-`).
    Stdout,
    /// One file.
    File(PathBuf),
    /// A folder, one output per input.
    Folder(PathBuf),
}

impl Sink {
    /// The sink `--output` names: a folder when `many` outputs must go there, when it is
    /// a folder already, or when it ends with a path separator; else one file.
    pub fn new(output: Option<&Path>, many: bool) -> Sink {
        match output {
            None => Sink::Stdout,
            Some(out) if out.as_os_str() == "-" => Sink::Stdout,
            Some(out) => {
                let says_dir = out
                    .to_string_lossy()
                    .ends_with(['/', std::path::MAIN_SEPARATOR]);
                if many || out.is_dir() || says_dir {
                    Sink::Folder(out.to_path_buf())
                } else {
                    Sink::File(out.to_path_buf())
                }
            }
        }
    }

    /// Prints the `--json` summary as one line: on stderr when stdout carries the
    /// translations, else on stdout.
    pub fn print_json(&self, summary: &impl serde::Serialize) -> anyhow::Result<()> {
        let line = serde_json::to_string(summary)?;
        if matches!(self, Sink::Stdout) {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
        Ok(())
    }
}
