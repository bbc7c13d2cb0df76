//! What tarjama's tests need from outside the code, found or reported.
//!
//! A test that needs a downloaded model, the FLORES-200 devtest or a CPU feature asks for
//! it here. When it is there the test gets it; when it is not, the test prints a note
//! naming what is missing and returns early, unless the matching variable asks for a
//! failure instead:
//!
//! | needs         | found in                                          | `=1` makes a miss fail      |
//! |---------------|---------------------------------------------------|-----------------------------|
//! | a model       | `$TARJAMA_HOME/models`, else `<cache>/tarjama/models`, else the hub cache | `TARJAMA_REQUIRE_MODELS` |
//! | FLORES-200    | `$TARJAMA_FLORES`, else `tests/data/flores200`    | `TARJAMA_REQUIRE_FLORES`    |
//! | a CPU feature | run-time detection (`auto`: what /proc/cpuinfo lists) | `TARJAMA_REQUIRE_CPU`   |
//! | a program     | `PATH` (qemu-user), the release build, llama-cpp-python's server | `TARJAMA_REQUIRE_TOOLS` |
//!
//! `scripts/test.sh` (CI) sets all four, so a suite that passes there ran every test that
//! its machine can run.
//!
//! Tests that need a model, FLORES, a program or a CPU feature are marked
//! `#[ignore = "needs ..."]`, so plain `cargo test` reports them as ignored rather than
//! passing them after a skip. `scripts/test.sh` runs them with `--include-ignored` and the
//! REQUIRE variables set, so there a missing thing fails instead of skipping. (Not
//! marked: tests that need only the FLORES devtest, which the repository holds, and the
//! kernel tests that loop over the tiers this CPU has (`cpu::testing::tiers` in
//! tarjama-kernels), which always test the scalar tier.)
//!
//! ```no_run
//! #[test]
//! fn uses_flores() {
//!     let Some(flores) = tarjama_testkit::require_flores() else { return };
//!     let arabic = std::fs::read_to_string(flores.join("arb_Arab.devtest")).unwrap();
//!     // ...
//! }
//! ```
#![deny(missing_docs)]

pub mod http;

use std::path::{Path, PathBuf};

/// The kinds of thing a test may need, each with its variable.
#[derive(Debug, Clone, Copy)]
enum Need {
    Model,
    Flores,
    Cpu,
    Tool,
}

impl Need {
    fn variable(self) -> &'static str {
        match self {
            Need::Model => "TARJAMA_REQUIRE_MODELS",
            Need::Flores => "TARJAMA_REQUIRE_FLORES",
            Need::Cpu => "TARJAMA_REQUIRE_CPU",
            Need::Tool => "TARJAMA_REQUIRE_TOOLS",
        }
    }

    fn required(self) -> bool {
        std::env::var(self.variable()).as_deref() == Ok("1")
    }
}

/// Returns `found`; when it is `None`, prints `missing` and a hint, or panics with them
/// when `need`'s variable is 1.
#[track_caller]
fn require<T>(need: Need, found: Option<T>, missing: &str, hint: &str) -> Option<T> {
    if found.is_none() {
        let variable = need.variable();
        if need.required() {
            panic!("{missing}; {variable}=1 requires it ({hint})");
        }
        eprintln!("note: test skipped: {missing} ({hint}; set {variable}=1 to fail instead)");
    }
    found
}

/// The repository's root folder.
pub fn workspace_root() -> PathBuf {
    let kit = Path::new(env!("CARGO_MANIFEST_DIR"));
    kit.parent()
        .and_then(Path::parent)
        .expect("the kit lives in <root>/crates/tarjama-testkit")
        .to_path_buf()
}

/// The folder downloaded model files are kept in, as `tarjama_registry::paths::models_dir`
/// finds it: `$TARJAMA_HOME/models`, else `<user cache dir>/tarjama/models`.
pub fn models_dir() -> PathBuf {
    let home = match std::env::var_os("TARJAMA_HOME").filter(|v| !v.is_empty()) {
        Some(home) => PathBuf::from(home),
        None => dirs::cache_dir()
            .unwrap_or_else(std::env::temp_dir)
            .join("tarjama"),
    };
    home.join("models")
}

/// The registry model `name` (a manifest in the repository's `models/` folder, such as
/// `gemma-3-270m`): the path of its downloaded file, where `tarjama models path NAME`
/// finds it (the model folder, else the hub cache for a model with a hub source). `None`
/// after a note when it is not downloaded; a panic under `TARJAMA_REQUIRE_MODELS=1`.
///
/// Panics when `name` is not in the registry: that is a mistake in the test.
#[track_caller]
pub fn require_model(name: &str) -> Option<PathBuf> {
    let manifest = Manifest::builtin(name);
    let found = manifest.installed();
    require(
        Need::Model,
        found,
        &format!(
            "model {name} is not downloaded (no {})",
            models_dir().join(&manifest.file).display()
        ),
        &format!("run `tarjama models pull {name}`"),
    )
}

/// The model file `file` (such as `gemma-3-270m-q4_k_m.gguf`) in the model folder
/// ([`models_dir`]); `None` after a note when it is not there, a panic under
/// `TARJAMA_REQUIRE_MODELS=1`.
#[track_caller]
pub fn require_model_file(file: &str) -> Option<PathBuf> {
    let path = models_dir().join(file);
    let found = path.is_file().then(|| path.clone());
    require(
        Need::Model,
        found,
        &format!("model file {} is missing", path.display()),
        "`tarjama models pull NAME` downloads it",
    )
}

/// The FLORES-200 devtest folder used when `TARJAMA_FLORES` is not set: the copy kept in
/// the repository, `tests/data/flores200`.
pub fn default_flores_dir() -> PathBuf {
    workspace_root().join("tests/data/flores200")
}

/// The FLORES-200 devtest folder (`$TARJAMA_FLORES`, else [`default_flores_dir`]) when it
/// holds the files the tests read (`arb_Arab.devtest`, `eng_Latn.devtest`,
/// `metadata_devtest.tsv`); `None` after a note otherwise, a panic under
/// `TARJAMA_REQUIRE_FLORES=1`.
#[track_caller]
pub fn require_flores() -> Option<PathBuf> {
    const FILES: [&str; 3] = [
        "arb_Arab.devtest",
        "eng_Latn.devtest",
        "metadata_devtest.tsv",
    ];
    let dir = std::env::var_os("TARJAMA_FLORES")
        .filter(|v| !v.is_empty())
        .map_or_else(default_flores_dir, PathBuf::from);
    let missing: Vec<&str> = FILES
        .into_iter()
        .filter(|f| !dir.join(f).is_file())
        .collect();
    require(
        Need::Flores,
        missing.is_empty().then(|| dir.clone()),
        &format!(
            "FLORES-200 devtest not found: {} lacks {}",
            dir.display(),
            missing.join(", ")
        ),
        "set TARJAMA_FLORES to a folder with the devtest files",
    )
}

/// Whether this CPU has the x86 feature `name` (as `is_x86_feature_detected!` spells it,
/// such as `"avx512vnni"`); `false` after a note when it does not, a panic under
/// `TARJAMA_REQUIRE_CPU=1`. Under `TARJAMA_REQUIRE_CPU=auto` (what `scripts/test.sh`
/// sets) a feature is required exactly when `/proc/cpuinfo` lists it. Always `false` off
/// x86-64.
///
/// Panics on a name the kit does not know: that is a mistake in the test.
#[track_caller]
pub fn require_cpu_feature(name: &str) -> bool {
    let found = cpu_has(name);
    // `auto`: required exactly when the kernel lists it, which checks the run-time
    // detection against a second opinion on any machine.
    if std::env::var("TARJAMA_REQUIRE_CPU").as_deref() == Ok("auto") {
        let listed = cpuinfo_lists(name);
        assert!(
            found || !listed,
            "/proc/cpuinfo lists {name} but run-time detection does not find it; \
             TARJAMA_REQUIRE_CPU=auto requires what the CPU has"
        );
        if !found {
            eprintln!("note: test skipped: this CPU has no {name} (TARJAMA_REQUIRE_CPU=auto)");
        }
        return found;
    }
    require(
        Need::Cpu,
        found.then_some(()),
        &format!("this CPU has no {name}"),
        "the code under test is not used on this CPU",
    )
    .is_some()
}

/// Whether `/proc/cpuinfo` lists the feature `name` (as `is_x86_feature_detected!` spells
/// it); `false` where there is no such file.
fn cpuinfo_lists(name: &str) -> bool {
    let flag = match name {
        "avx512vnni" => "avx512_vnni",
        "avxvnni" => "avx_vnni",
        other => other,
    };
    std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|info| {
        info.lines()
            .find(|l| l.starts_with("flags"))
            .is_some_and(|l| l.split_whitespace().any(|f| f == flag))
    })
}

/// The program `name` (such as `qemu-x86_64`) on `PATH`; `None` after a note when it is
/// not there, a panic under `TARJAMA_REQUIRE_TOOLS=1`.
#[track_caller]
pub fn require_program(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    require(
        Need::Tool,
        found,
        &format!("{name} is not on PATH"),
        "scripts/test.sh installs it where it can (Debian: apt-get install qemu-user)",
    )
}

/// The Python of llama-cpp-python's server (`python -m llama_cpp.server`), as
/// `scripts/install_llama_server.sh` installs it: `$TARJAMA_LLAMA_PYTHON`, else the venv
/// the script makes under the tarjama home. `None` after a note when it is not installed,
/// a panic under `TARJAMA_REQUIRE_TOOLS=1`.
#[track_caller]
pub fn require_llama_server() -> Option<PathBuf> {
    let python = std::env::var_os("TARJAMA_LLAMA_PYTHON")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            models_dir()
                .parent()
                .expect("the models folder has a parent")
                .join("llama-server-venv/bin/python")
        });
    let found = std::process::Command::new(&python)
        .args(["-c", "import llama_cpp.server"])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    require(
        Need::Tool,
        found.then_some(python.clone()),
        &format!(
            "llama-cpp-python's server is not installed ({})",
            python.display()
        ),
        "scripts/install_llama_server.sh installs it",
    )
}

/// The release build of the workspace's binary `name` (`target/release/NAME`, or under
/// `CARGO_TARGET_DIR`): what `cargo build --release` and the README's commands make.
/// `None` after a note when it is not built, a panic under `TARJAMA_REQUIRE_TOOLS=1`.
#[track_caller]
pub fn require_release_binary(name: &str) -> Option<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .filter(|v| !v.is_empty())
        .map_or_else(|| workspace_root().join("target"), PathBuf::from);
    let path = target.join("release").join(name);
    require(
        Need::Tool,
        path.is_file().then(|| path.clone()),
        &format!("{} is not built", path.display()),
        "`cargo build --release` builds it; scripts/test.sh does",
    )
}

#[cfg(target_arch = "x86_64")]
fn cpu_has(name: &str) -> bool {
    use std::is_x86_feature_detected as has;
    // The macro takes a literal, hence one arm per feature the tests use.
    match name {
        "avx2" => has!("avx2"),
        "fma" => has!("fma"),
        "f16c" => has!("f16c"),
        "avx512f" => has!("avx512f"),
        "avx512bw" => has!("avx512bw"),
        "avx512vnni" => has!("avx512vnni"),
        "avxvnni" => has!("avxvnni"),
        other => panic!("tarjama-testkit does not know the CPU feature {other:?}"),
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn cpu_has(_name: &str) -> bool {
    false
}

/// What the kit reads of a registry manifest: the file name and any hub sources.
struct Manifest {
    file: String,
    /// `(repo, revision, file)` of each hub source, in order.
    hub: Vec<(String, Option<String>, String)>,
}

impl Manifest {
    /// The manifest `<root>/models/<name>.toml`, the one compiled into the binary.
    fn builtin(name: &str) -> Self {
        let path = workspace_root().join("models").join(format!("{name}.toml"));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("no registry model {name:?}: {}: {e}", path.display()));
        let table: toml::Table = text
            .parse()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let string =
            |t: &toml::Table, key: &str| t.get(key).and_then(|v| v.as_str()).map(str::to_owned);
        let file =
            string(&table, "file").unwrap_or_else(|| panic!("{}: no `file`", path.display()));
        let hub = table
            .get("sources")
            .and_then(|s| s.as_array())
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_table())
            .filter(|s| s.get("kind").and_then(|k| k.as_str()) == Some("hub"))
            .filter_map(|s| {
                Some((
                    string(s, "repo")?,
                    string(s, "revision"),
                    string(s, "file")?,
                ))
            })
            .collect();
        Manifest { file, hub }
    }

    /// As `tarjama_registry::source::installed`: the model folder first, then each hub
    /// source's file in the hub cache.
    fn installed(&self) -> Option<PathBuf> {
        let local = models_dir().join(&self.file);
        if local.is_file() {
            return Some(local);
        }
        self.hub
            .iter()
            .find_map(|(repo, revision, file)| hub_cached(repo, revision.as_deref(), file))
    }
}

/// The hub cache folder, as `tarjama_registry::source::hub_cache` finds it: `HF_HUB_CACHE`,
/// else `HF_HOME/hub`, else `~/.cache/huggingface/hub`.
fn hub_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("HF_HUB_CACHE").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    let home = match std::env::var_os("HF_HOME") {
        Some(home) => PathBuf::from(home),
        None => dirs::home_dir()?.join(".cache/huggingface"),
    };
    Some(home.join("hub"))
}

/// A hub repository's file in the cache, laid out as `hf-hub` lays it out:
/// `models--ORG--NAME/refs/REVISION` holds a commit, the file is under
/// `snapshots/COMMIT/`.
fn hub_cached(repo: &str, revision: Option<&str>, file: &str) -> Option<PathBuf> {
    let folder = hub_cache_dir()?.join(format!("models--{}", repo.replace('/', "--")));
    let commit =
        std::fs::read_to_string(folder.join("refs").join(revision.unwrap_or("main"))).ok()?;
    let path = folder.join("snapshots").join(commit).join(file);
    path.exists().then_some(path)
}
