//! The release binary on CPUs older than this one, emulated by qemu-user: it must start
//! on any x86-64 CPU, pick the widest kernel tier that CPU has, and give the same output
//! as on this machine (every tier computes the same bits).
//!
//! Needs `qemu-x86_64` (Debian's qemu-user; `scripts/test.sh` installs it), the release
//! build (`cargo build --release`, as the README's commands make it) and the Gemma 3 270M
//! model; `TARJAMA_REQUIRE_TOOLS=1` / `TARJAMA_REQUIRE_MODELS=1` turn a missing one into a
//! failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tarjama_testkit::{require_model, require_program, require_release_binary, workspace_root};

/// `bin ARGS` on an emulated `cpu`, with the kernel tier left to detection.
fn on_cpu(qemu: &Path, cpu: &str, bin: &Path, args: &[&str]) -> Output {
    Command::new(qemu)
        .args(["-cpu", cpu])
        .arg(bin)
        .args(args)
        .env_remove("TARJAMA_KERNELS")
        .output()
        .expect("qemu-x86_64 runs")
}

/// The kernel tier `tarjama --version --verbose` names.
fn tier(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "--version --verbose failed: {text}");
    text.lines()
        .find_map(|l| l.strip_prefix("kernels: "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no kernels line in {text}"))
        .to_string()
}

fn tools() -> Option<(PathBuf, PathBuf)> {
    Some((
        require_program("qemu-x86_64")?,
        require_release_binary("tarjama")?,
    ))
}

#[test]
#[ignore = "needs qemu-x86_64, the release binary and model gemma-3-270m (tarjama models pull)"]
fn a_cpu_without_avx512_gets_the_avx2_kernels_and_the_same_summary() {
    let Some((qemu, bin)) = tools() else { return };
    let Some(_) = require_model("gemma-3-270m") else {
        return;
    };
    let version = on_cpu(&qemu, "Haswell", &bin, &["--version", "--verbose"]);
    assert_eq!(tier(&version), "avx2");

    // The main job (summarize an article) on the smallest model. Emulation runs it about
    // a hundred times slower (the whole seed article took 13 minutes), so the article is
    // the seed's first two sentences and the summary is capped at 16 tokens: the same
    // code runs (load, prefill, decode, every kernel), only for fewer tokens.
    let seed = workspace_root().join("seeds/000_34bb1b6fbb72ba1f.txt");
    let split = Command::new(&bin)
        .args(["prep", "split", seed.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(split.status.success());
    let opening: String = String::from_utf8(split.stdout)
        .unwrap()
        .lines()
        .take(2)
        .map(|line| format!("{line}\n"))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let article = dir.path().join("opening.txt");
    std::fs::write(&article, opening).unwrap();
    let args = [
        "summarize",
        "--model",
        "gemma-3-270m",
        "--max-tokens",
        "16",
        article.to_str().unwrap(),
    ];
    let emulated = on_cpu(&qemu, "Haswell", &bin, &args);
    let stderr = String::from_utf8_lossy(&emulated.stderr);
    assert!(
        emulated.status.success(),
        "summarize on an emulated Haswell failed: {stderr}"
    );
    let native = Command::new(&bin).args(args).output().unwrap();
    assert!(native.status.success());
    assert!(!native.stdout.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&emulated.stdout),
        String::from_utf8_lossy(&native.stdout),
        "the AVX2 kernels gave another summary than this CPU's"
    );
}

#[test]
#[ignore = "needs qemu-x86_64 and the release binary"]
fn a_cpu_without_avx2_gets_the_portable_kernels() {
    let Some((qemu, bin)) = tools() else { return };
    // Nehalem (2008): SSE4.2, no AVX.
    let version = on_cpu(&qemu, "Nehalem", &bin, &["--version", "--verbose"]);
    assert_eq!(tier(&version), "scalar");
    // Text preparation runs through the same binary with no model.
    let seed = workspace_root().join("seeds/000_34bb1b6fbb72ba1f.txt");
    let split = on_cpu(
        &qemu,
        "Nehalem",
        &bin,
        &["prep", "split", seed.to_str().unwrap()],
    );
    assert!(
        split.status.success(),
        "{}",
        String::from_utf8_lossy(&split.stderr)
    );
    assert!(String::from_utf8_lossy(&split.stdout).lines().count() >= 10);
}
