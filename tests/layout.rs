//! The shape of the sources, as `scripts/check_layout.py` checks it: no import circle
//! between a crate's modules, no function over 150 lines, no file over 700 lines whose
//! first comment does not say why.

use std::process::Command;

use tarjama_testkit::{require_program, workspace_root};

#[test]
#[ignore = "needs python3"]
fn no_import_circle_long_function_or_unexplained_long_file() {
    let Some(python) = require_program("python3") else {
        return;
    };
    let out = Command::new(python)
        .arg(workspace_root().join("scripts/check_layout.py"))
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "scripts/check_layout.py found:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
