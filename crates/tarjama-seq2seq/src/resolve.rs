//! Where a model comes from: a local directory in Hugging Face layout first, else a hub
//! repository id fetched into (or, offline, found in) the Hugging Face cache.

use std::path::{Path, PathBuf};

use super::error::{Error, Result};
use tarjama_registry::source;

/// Files a translation checkpoint may need; those missing from a repository are skipped.
const WANTED: &[&str] = &[
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "pytorch_model.bin",
    "source.spm",
    "target.spm",
    "vocab.json",
    "target_vocab.json",
    "tokenizer.json",
    "tokenizer_config.json",
];

/// The local directory holding the model `spec` names: `spec` itself when it is a
/// directory, else the hub repository `spec` (downloaded unless `HF_HUB_OFFLINE` is set,
/// in which case only the local Hugging Face cache is consulted).
pub fn resolve_model_dir(spec: &str) -> Result<PathBuf> {
    let path = Path::new(spec);
    if path.is_dir() {
        return Ok(path.to_path_buf());
    }
    let looks_like_path =
        spec.starts_with('.') || spec.starts_with('/') || spec.matches('/').count() > 1;
    if looks_like_path || spec.is_empty() {
        return Err(Error::MissingFile {
            dir: path.to_path_buf(),
            file: "model directory".into(),
        });
    }
    // The hub rules of every model tarjama loads (`tarjama_registry::source`): one idea of offline,
    // one cache (HF_HUB_CACHE, HF_HOME), one short line when the hub cannot be reached.
    if source::hub_offline() {
        let config = source::hub_cached(spec, None, "config.json")
            .ok_or_else(|| Error::Offline(spec.to_string()))?;
        return parent_dir(&config, spec);
    }
    let fetch = |file: &str| {
        source::hub_get(spec, None, file, &mut source::NoProgress).map_err(|e| Error::Hub {
            repo: spec.to_string(),
            file: file.to_string(),
            reason: e.to_string(),
        })
    };
    // config.json decides whether the repository is reachable at all: its error is the
    // one reported. The others are optional, and which are needed depends on the model.
    let config = fetch("config.json")?;
    let mut have_weights = false;
    for file in WANTED.iter().skip(1) {
        if have_weights && *file == "pytorch_model.bin" {
            continue;
        }
        if fetch(file).is_ok() && *file == "model.safetensors" {
            have_weights = true;
        }
    }
    parent_dir(&config, spec)
}

fn parent_dir(config: &Path, spec: &str) -> Result<PathBuf> {
    config
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| Error::Offline(spec.to_string()))
}
