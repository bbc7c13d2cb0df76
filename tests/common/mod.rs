//! Helpers shared by the end-to-end tests of the binary.
// Each test file is its own crate and uses a different subset of these.
#![allow(dead_code)]

use assert_cmd::Command;

/// The `tarjama` binary under test.
pub fn tarjama() -> Command {
    Command::cargo_bin("tarjama").expect("the tarjama binary is built")
}

/// Whether registry model `name` is downloaded. Without it a test prints a note and
/// passes, unless `TARJAMA_REQUIRE_MODELS=1` (CI), where a missing model fails.
pub fn have_model(name: &str) -> bool {
    let out = tarjama().args(["models", "path", name]).output().unwrap();
    if out.status.success() {
        return true;
    }
    if std::env::var("TARJAMA_REQUIRE_MODELS").as_deref() == Ok("1") {
        panic!("model {name} is not downloaded and TARJAMA_REQUIRE_MODELS=1");
    }
    eprintln!("skipped: model {name} is not downloaded");
    false
}
