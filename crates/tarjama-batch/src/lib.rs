//! tarjama's folder engine: the machinery behind `tarjama translate` on many files, for
//! the command line and any other front end. [`folder::run`] translates documents
//! (finding inputs, reading structured formats, rendering outputs, writing them
//! atomically, remembering what is done in a manifest, caching repeated sentences,
//! stopping cleanly on Ctrl-C, resuming after a kill); [`lines::run`] translates one
//! segment per line.
//!
//! Nothing here knows which model runs: translation goes through the pipeline's
//! `dyn Translator`s, which a run asks `tarjama_loader` for only once there is work.
//! Progress and notes go to an [`Events`] sink; exit codes are the binary's.
#![deny(missing_docs)]

pub mod atomic;
pub mod cache;
pub mod document;
pub mod folder;
pub mod formats;
pub mod inputs;
pub mod lines;
pub mod manifest;
pub mod render;
pub mod settings;
pub mod signal;

use std::path::{Path, PathBuf};

use serde::Serialize;

/// Exit code of a run stopped by Ctrl-C (128 + SIGINT, what shells report).
pub const INTERRUPTED: i32 = 130;

/// Where a translate run's outputs go (`--output`).
#[derive(Debug, Clone)]
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

/// One input that could not be done.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// The input, as the user named it.
    pub file: String,
    /// Why.
    pub reason: String,
}

/// Where a run reports as it goes: notes and errors, and its progress.
pub trait Events {
    /// A line for the user (an error, a skipped input, a note).
    fn note(&mut self, line: &str);
    /// After each input: the counts so far, the inputs that needed the model, and the
    /// inputs still to do.
    fn update(&mut self, _summary: &folder::Summary, _worked: usize, _remaining: usize) {}
}

/// Events that go to stderr as plain lines, without progress.
#[derive(Debug, Default)]
pub struct Stderr;

impl Events for Stderr {
    fn note(&mut self, line: &str) {
        eprintln!("{line}");
    }
}
