//! One resolver from what the user typed after `--model` to a file on disk: a registry
//! name, a path to a `.gguf` file or a model folder, or a Hugging Face hub repo id
//! (`owner/name`, or `owner/name:file.gguf` to pick a file). Local files first, hub second.

use std::path::{Path, PathBuf};

use crate::registry::{Manifest, Registry};
use crate::source::{self, Progress};
use crate::{Error, Result};

/// What kind of model a path holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelKind {
    /// A GGUF decoder-only chat model.
    Gguf,
    /// A folder in Hugging Face layout (`config.json`): an encoder-decoder translator.
    HfFolder,
}

/// A model found on disk.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// A name for reports.
    pub name: String,
    /// The `.gguf` file or the model folder.
    pub path: PathBuf,
    /// Its kind.
    pub kind: ModelKind,
    /// The registry entry, when it came from the registry.
    pub manifest: Option<Manifest>,
    /// For an encoder-decoder model on the hub: its repo id, which its loader fetches
    /// file by file (`path` then only holds its config).
    pub hub_repo: Option<String>,
}

/// Finds (and with `pull`, downloads) the model called `spec`, or the default model.
pub fn resolve(
    registry: &Registry,
    spec: Option<&str>,
    pull: bool,
    progress: &mut dyn Progress,
) -> Result<Resolved> {
    let spec = match spec {
        Some(s) => s,
        None => &registry.default_model().name,
    };
    let as_path = Path::new(spec);
    if as_path.exists() {
        return local(as_path);
    }
    if let Some(manifest) = registry.get(spec) {
        let path = if pull {
            source::pull(manifest, source::Check::Size, progress)?
        } else {
            source::installed(manifest).ok_or_else(|| {
                Error::Unavailable(format!(
                    "model `{}` is not downloaded; run `tarjama models pull {}`",
                    manifest.name, manifest.name
                ))
            })?
        };
        return Ok(Resolved {
            name: manifest.name.clone(),
            path,
            kind: ModelKind::Gguf,
            manifest: Some(manifest.clone()),
            hub_repo: None,
        });
    }
    if looks_like_repo_id(spec) {
        return hub(spec, progress);
    }
    if spec.ends_with(".gguf") || spec.contains(std::path::MAIN_SEPARATOR) {
        return Err(Error::io(
            as_path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder"),
        ));
    }
    Err(Error::UnknownModel(spec.to_string()))
}

fn local(path: &Path) -> Result<Resolved> {
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    let kind = if path.is_dir() {
        if !path.join("config.json").is_file() {
            return Err(Error::BadModelFile {
                path: path.to_path_buf(),
                reason: "a model folder needs a config.json (Hugging Face layout)".into(),
            });
        }
        ModelKind::HfFolder
    } else {
        ModelKind::Gguf
    };
    Ok(Resolved {
        name,
        path: path.to_path_buf(),
        kind,
        manifest: None,
        hub_repo: None,
    })
}

fn looks_like_repo_id(spec: &str) -> bool {
    let repo = spec.split(':').next().unwrap_or(spec);
    let parts: Vec<&str> = repo.split('/').collect();
    parts.len() == 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
}

/// A hub repository: a GGUF file in it (`repo:file`, or its Q4_K_M file), or the whole
/// folder of an encoder-decoder model.
fn hub(spec: &str, progress: &mut dyn Progress) -> Result<Resolved> {
    let (repo, file) = match spec.split_once(':') {
        Some((r, f)) => (r, Some(f.to_string())),
        None => (spec, None),
    };
    let file = match file {
        Some(f) => f,
        None => pick_gguf(repo)?,
    };
    if file == "config.json" {
        let config = source::hub_get(repo, None, "config.json", progress)?;
        let dir = config.parent().unwrap_or(Path::new(".")).to_path_buf();
        return Ok(Resolved {
            name: repo.to_string(),
            path: dir,
            kind: ModelKind::HfFolder,
            manifest: None,
            hub_repo: Some(repo.to_string()),
        });
    }
    let path = source::hub_get(repo, None, &file, progress)?;
    Ok(Resolved {
        name: format!("{repo}:{file}"),
        path,
        kind: ModelKind::Gguf,
        manifest: None,
        hub_repo: None,
    })
}

/// Lists the repository and picks what to load: its Q4_K_M GGUF, else its only GGUF,
/// else `config.json` (an encoder-decoder folder).
fn pick_gguf(repo: &str) -> Result<String> {
    if source::hub_offline() {
        return Err(Error::Unavailable(format!(
            "HF_HUB_OFFLINE is set: name the file to use, as {repo}:FILE.gguf"
        )));
    }
    let api = hf_hub::api::sync::ApiBuilder::from_cache(source::hub_cache())
        .with_progress(false)
        .build()
        .map_err(|e| Error::Unavailable(format!("hub: {e}")))?;
    let info = api
        .model(repo.to_string())
        .info()
        .map_err(|e| Error::Unavailable(source::hub_failure(repo, &e)))?;
    let names: Vec<String> = info.siblings.into_iter().map(|s| s.rfilename).collect();
    let ggufs: Vec<&String> = names.iter().filter(|n| n.ends_with(".gguf")).collect();
    if let Some(q4) = ggufs.iter().find(|n| n.to_lowercase().contains("q4_k_m")) {
        return Ok((*q4).clone());
    }
    match ggufs.as_slice() {
        [one] => Ok((*one).clone()),
        [] if names.iter().any(|n| n == "config.json") => Ok("config.json".into()),
        [] => Err(Error::Unavailable(format!(
            "hub {repo} has neither a .gguf file nor a config.json"
        ))),
        many => Err(Error::Unavailable(format!(
            "hub {repo} has {} .gguf files; pick one as {repo}:FILE",
            many.len()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::NoProgress;

    #[test]
    fn repo_ids_are_recognized() {
        assert!(looks_like_repo_id("Qwen/Qwen2.5-1.5B-Instruct-GGUF"));
        assert!(looks_like_repo_id("a/b:file.gguf"));
        assert!(!looks_like_repo_id("qwen2.5-coder-1.5b-instruct"));
        assert!(!looks_like_repo_id("/abs/path/x.gguf"));
    }

    #[test]
    fn unknown_names_get_a_clear_error() {
        let registry = Registry::builtin().unwrap();
        let err = resolve(&registry, Some("no-such-model"), false, &mut NoProgress).unwrap_err();
        assert!(err.to_string().contains("models list"), "{err}");
        let err = resolve(&registry, Some("missing.gguf"), false, &mut NoProgress).unwrap_err();
        assert!(err.to_string().contains("missing.gguf"), "{err}");
    }

    #[test]
    fn a_folder_without_config_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::builtin().unwrap();
        let spec = dir.path().to_str().unwrap();
        let err = resolve(&registry, Some(spec), false, &mut NoProgress).unwrap_err();
        assert!(err.to_string().contains("config.json"), "{err}");
    }
}
