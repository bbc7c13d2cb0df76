//! The manifest: what a batch run has finished, so a rerun (after a kill, a crash or
//! Ctrl-C) skips it.
//!
//! `OUTPUT/.tarjama-manifest.jsonl` (or `.tarjama-manifest.K-of-N.jsonl` for `--shard
//! K/N`) is append-only, one JSON line per finished input, fsynced after the output file
//! was renamed into place. An input is done when some manifest in the folder has a line
//! with its relative path, the sha256 of its bytes and the hash of the settings, and the
//! output named there exists. A line torn by a kill does not parse and is ignored: that
//! input is simply redone. Shards writing to one folder each append to their own file and
//! every run reads all of them, which is all merging takes.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::atomic;

/// Prefix of manifest file names.
pub const PREFIX: &str = ".tarjama-manifest";

/// One finished input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The input's path relative to its input folder.
    pub input: String,
    /// sha256 of the input's bytes, hex.
    pub sha256: String,
    /// Hash of the model and every setting that changes the output, hex.
    pub settings: String,
    /// The output's path relative to the output folder.
    pub output: String,
    /// The model's name, for people reading the manifest.
    pub model: String,
    /// The server that ran it, for a remote model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Sentences in the input.
    pub sentences: usize,
    /// When it finished, seconds since the Unix epoch.
    pub finished: u64,
}

/// The manifests of an output folder, read, and this run's own, open for appending.
pub struct Manifest {
    dir: PathBuf,
    done: HashSet<(String, String, String, String)>,
    /// Lines that did not parse (a torn last line after a kill).
    pub torn: usize,
    /// Whether any manifest existed before this run.
    pub existed: bool,
    own: PathBuf,
    file: Option<File>,
}

impl Manifest {
    /// Reads every manifest in `dir` (when `read` is true) and names this run's own file.
    pub fn open(dir: &Path, tag: Option<&str>, read: bool) -> anyhow::Result<Manifest> {
        let own = dir.join(match tag {
            Some(t) => format!("{PREFIX}.{t}.jsonl"),
            None => format!("{PREFIX}.jsonl"),
        });
        let mut manifest = Manifest {
            dir: dir.to_path_buf(),
            done: HashSet::new(),
            torn: 0,
            existed: false,
            own,
            file: None,
        };
        let Ok(listing) = std::fs::read_dir(dir) else {
            return Ok(manifest);
        };
        let mut files: Vec<PathBuf> = listing
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.file_name().is_some_and(|n| {
                    let n = n.to_string_lossy();
                    n.starts_with(PREFIX) && n.ends_with(".jsonl")
                })
            })
            .collect();
        files.sort();
        manifest.existed = !files.is_empty();
        if read {
            for path in files {
                let text = std::fs::read(&path)?;
                for line in String::from_utf8_lossy(&text).lines() {
                    if line.trim().is_empty() {
                        continue;
                    }
                    match serde_json::from_str::<Entry>(line) {
                        Ok(e) => {
                            manifest
                                .done
                                .insert((e.input, e.sha256, e.settings, e.output));
                        }
                        Err(_) => manifest.torn += 1,
                    }
                }
            }
        }
        Ok(manifest)
    }

    /// Whether `input` with these bytes and settings is finished and its output, at
    /// `output` relative to the folder, is still there.
    pub fn is_done(&self, input: &str, sha256: &str, settings: &str, output: &str) -> bool {
        let key = (
            input.to_string(),
            sha256.to_string(),
            settings.to_string(),
            output.to_string(),
        );
        self.done.contains(&key) && self.dir.join(output).is_file()
    }

    /// Records a finished input; returns once the line is on disk.
    pub fn append(&mut self, entry: &Entry) -> anyhow::Result<()> {
        if self.file.is_none() {
            self.file = Some(atomic::open_append(&self.own)?);
        }
        let mut line = serde_json::to_vec(entry)?;
        line.push(b'\n');
        let file = self.file.as_mut().expect("opened above");
        atomic::append_durable(file, &self.own, &line)?;
        self.done.insert((
            entry.input.clone(),
            entry.sha256.clone(),
            entry.settings.clone(),
            entry.output.clone(),
        ));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(input: &str, sha: &str) -> Entry {
        Entry {
            input: input.into(),
            sha256: sha.into(),
            settings: "s".into(),
            output: format!("{input}.out"),
            model: "m".into(),
            endpoint: None,
            sentences: 1,
            finished: 0,
        }
    }

    #[test]
    fn reads_all_shards_and_tolerates_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut one = Manifest::open(d, Some("1-of-2"), true).unwrap();
        one.append(&entry("a", "h1")).unwrap();
        let mut two = Manifest::open(d, Some("2-of-2"), true).unwrap();
        two.append(&entry("b", "h2")).unwrap();
        // A kill in the middle of a write leaves half a line.
        let path = d.join(format!("{PREFIX}.2-of-2.jsonl"));
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{\"input\":\"c\",\"sha");
        std::fs::write(&path, text).unwrap();
        std::fs::write(d.join("a.out"), "x").unwrap();
        std::fs::write(d.join("b.out"), "x").unwrap();

        let all = Manifest::open(d, None, true).unwrap();
        assert!(all.existed);
        assert_eq!(all.torn, 1);
        assert!(all.is_done("a", "h1", "s", "a.out"));
        assert!(all.is_done("b", "h2", "s", "b.out"));
        // Changed content, or output gone: not done.
        assert!(!all.is_done("a", "other", "s", "a.out"));
        std::fs::remove_file(d.join("b.out")).unwrap();
        assert!(!all.is_done("b", "h2", "s", "b.out"));
    }
}
