//! Helpers shared by the end-to-end tests of the binary.
// Each test file is its own crate and uses a different subset of these.
#![allow(dead_code)]

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::Child;

use assert_cmd::assert::OutputAssertExt;
use assert_cmd::Command;
use serde_json::Value;

/// The `tarjama` binary under test.
pub fn tarjama() -> Command {
    Command::cargo_bin("tarjama").expect("the tarjama binary is built")
}

/// Every file under `dir` but the manifests and caches, as (name, bytes), sorted: what
/// two runs into two folders are compared by.
pub fn outputs(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    files.sort();
    files
}

/// Runs `cmd`, which must exit 0 (the panic shows its stderr otherwise); its stdout.
pub fn stdout_of(cmd: impl OutputAssertExt) -> Vec<u8> {
    cmd.assert().success().get_output().stdout.clone()
}

/// Runs `cmd`, which must exit 0; its stdout, one JSON document.
pub fn json_of(cmd: impl OutputAssertExt) -> Value {
    let stdout = stdout_of(cmd);
    serde_json::from_slice(&stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}): {}",
            String::from_utf8_lossy(&stdout)
        )
    })
}

/// Runs `cmd`, which must exit 0; its stdout, a JSON record a line.
pub fn json_lines_of(cmd: impl OutputAssertExt) -> Vec<Value> {
    let stdout = String::from_utf8(stdout_of(cmd)).expect("stdout is UTF-8");
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// The JSON object on the last line of `output` (a run's `--json` summary).
pub fn last_json_line(output: &[u8]) -> Value {
    let text = String::from_utf8_lossy(output);
    serde_json::from_str(text.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Runs `cmd`, which must exit 0; the JSON object it prints last on stdout (a run's
/// `--json` summary).
pub fn summary_of(cmd: impl OutputAssertExt) -> Value {
    last_json_line(&stdout_of(cmd))
}

/// A child process (a server a test started) killed and reaped when dropped, so that it
/// never outlives its test, passing or not.
pub struct KillOnDrop(pub Child);

impl Deref for KillOnDrop {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Writes the first `n` FLORES-200 devtest articles (consecutive lines of one URL) into
/// `dir`, one file each, a sentence a line, as `scripts/flores_to_articles.py` writes
/// them; their paths.
pub fn flores_articles(flores: &Path, dir: &Path, n: usize) -> Vec<PathBuf> {
    let arabic = std::fs::read_to_string(flores.join("arb_Arab.devtest")).unwrap();
    let meta = std::fs::read_to_string(flores.join("metadata_devtest.tsv")).unwrap();
    let urls = meta.lines().skip(1).map(|l| l.split('\t').next().unwrap());
    let mut articles: Vec<Vec<&str>> = Vec::new();
    let mut last = None;
    for (line, url) in arabic.lines().zip(urls) {
        if last != Some(url) {
            articles.push(Vec::new());
            last = Some(url);
        }
        articles.last_mut().unwrap().push(line);
    }
    std::fs::create_dir_all(dir).unwrap();
    articles
        .iter()
        .take(n)
        .enumerate()
        .map(|(i, lines)| {
            let path = dir.join(format!("article-{i:03}.txt"));
            std::fs::write(&path, lines.join("\n") + "\n").unwrap();
            path
        })
        .collect()
}
