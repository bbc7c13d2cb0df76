//! The command line itself: every subcommand's help has examples, manual pages and shell
//! completions are generated, and `--version --verbose` says which kernels run.

mod common;

use common::tarjama;

/// The subcommand paths (`["models", "pull"]`, ...) of every page `tarjama man --dir`
/// writes: `tarjama-models-pull.1` -> `models pull`.
fn subcommands(dir: &std::path::Path) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter_map(|name| {
            let stem = name.strip_suffix(".1")?;
            let rest = stem.strip_prefix("tarjama")?;
            Some(
                rest.split('-')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn man_pages_cover_every_subcommand_and_each_help_has_examples() {
    let dir = tempfile::tempdir().unwrap();
    tarjama()
        .args(["man", "--dir"])
        .arg(dir.path())
        .assert()
        .success();
    let commands = subcommands(dir.path());
    for expected in [
        &["translate"][..],
        &["summarize"],
        &["models", "pull"],
        &["prep", "split"],
    ] {
        assert!(
            commands.iter().any(|c| c == expected),
            "no page for {expected:?} in {commands:?}"
        );
    }
    let page = std::fs::read_to_string(dir.path().join("tarjama-translate.1")).unwrap();
    assert!(
        page.contains(".SH OPTIONS") && page.contains("resume"),
        "{page}"
    );

    for cmd in commands {
        // Parent commands (`models`, `prep`) and the top level list their subcommands.
        let out = tarjama().args(&cmd).arg("--help").output().unwrap();
        assert!(out.status.success(), "{cmd:?} --help failed");
        let help = String::from_utf8(out.stdout).unwrap();
        let is_leaf = !help.contains("Commands:");
        if is_leaf {
            assert!(
                help.contains("Example"),
                "`tarjama {} --help` shows no example:\n{help}",
                cmd.join(" ")
            );
        }
    }
}

#[test]
fn man_prints_the_main_page_to_stdout() {
    let out = tarjama().arg("man").output().unwrap();
    assert!(out.status.success());
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(
        page.starts_with(".ie") || page.contains(".TH tarjama 1"),
        "{page}"
    );
    assert!(page.contains("translate"), "{page}");
}

#[test]
fn completions_name_the_subcommands() {
    for shell in ["bash", "zsh", "fish"] {
        let out = tarjama().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(
            script.contains("summarize") && script.contains("translate"),
            "{shell}"
        );
    }
}

#[test]
fn version_verbose_names_the_kernel_tier_and_honours_a_forced_one() {
    let out = tarjama()
        .args(["--version", "--verbose"])
        .env("TARJAMA_KERNELS", "scalar")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("tarjama "), "{text}");
    assert!(text.contains("\nkernels: scalar ("), "{text}");
    assert!(text.contains("TARJAMA_KERNELS \"scalar\""), "{text}");

    // Not a tier: a warning, and the CPU's own tier.
    let out = tarjama()
        .args(["-V", "-v"])
        .env("TARJAMA_KERNELS", "sse9")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("TARJAMA_KERNELS=sse9 is not a kernel tier"),
        "{stderr}"
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let detected = text
        .lines()
        .find_map(|l| l.strip_prefix("kernels: "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap();
    assert!(
        ["avx512", "avxvnni", "avx2", "scalar"].contains(&detected),
        "{text}"
    );

    // Plain --version stays clap's one line.
    let out = tarjama().arg("--version").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
}
