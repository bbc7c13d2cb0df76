//! Helpers shared by the end-to-end tests of the binary.
// Each test file is its own crate and uses a different subset of these.
#![allow(dead_code)]

use assert_cmd::Command;

/// The `tarjama` binary under test.
pub fn tarjama() -> Command {
    Command::cargo_bin("tarjama").expect("the tarjama binary is built")
}

/// Every file under `dir` but the manifests and caches, as (name, bytes), sorted: what
/// two runs into two folders are compared by.
pub fn outputs(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
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
