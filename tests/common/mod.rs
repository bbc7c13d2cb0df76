//! Helpers shared by the end-to-end tests of the binary.
// Each test file is its own crate and uses a different subset of these.
#![allow(dead_code)]

use assert_cmd::Command;

/// The `tarjama` binary under test.
pub fn tarjama() -> Command {
    Command::cargo_bin("tarjama").expect("the tarjama binary is built")
}
