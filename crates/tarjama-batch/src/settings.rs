//! What a folder run's outputs depend on, hashed: the translation cache and the manifest
//! keep an entry only while these settings are the same.

use serde::Serialize;
use sha2::{Digest, Sha256};

/// Everything that changes a translation, hashed into the cache key.
///
/// The field order and the rules for leaving a field out are part of the key: a change
/// here makes every existing cache and manifest miss, so new fields are left out when
/// they have their old meaning.
#[derive(Debug, Clone, Serialize)]
pub struct TranslationSettings {
    /// tarjama's version.
    pub tarjama: String,
    /// The model's name.
    pub model: String,
    /// The server of a remote model. Absent for a local one, so caches written before
    /// remote engines existed keep their key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The model file's name (empty for a remote model).
    pub model_file: String,
    /// Its size in bytes (0 for a remote model).
    pub model_bytes: u64,
    /// Sampling temperature.
    pub temperature: f64,
    /// Top-k sampling.
    pub top_k: Option<usize>,
    /// Top-p sampling.
    pub top_p: Option<f64>,
    /// Sampling seed.
    pub seed: u64,
    /// Repetition penalty.
    pub repetition_penalty: f32,
    /// Cap on generated tokens per request.
    pub max_tokens: Option<usize>,
    /// Stop strings.
    pub stop: Vec<String>,
    /// Beam size of an encoder-decoder.
    pub beam: Option<usize>,
    /// Sentences per request.
    pub batch_sentences: usize,
    /// Source tokens per request.
    pub batch_tokens: usize,
    /// Worked examples shown; absent when none (as below).
    #[serde(skip_serializing_if = "is_zero")]
    pub examples: usize,
    /// The context window cap.
    pub max_context: usize,
    /// The normalization profile.
    pub normalize: String,
    /// Absent when off, so caches written before the option existed keep their key.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub int8: bool,
    /// Candidates per request, with their sampling; absent when 1 (as above).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidates: Option<(usize, f64, f64)>,
    /// The sha256 of the glossary's entries; absent without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub glossary: Option<String>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The two keys of a folder run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsKeys {
    /// What the translations depend on (the cache's key).
    pub translation: String,
    /// That, and what changes the output file but not the translation (the manifest's
    /// key): the format and whether invalid UTF-8 was replaced.
    pub output: String,
}

impl TranslationSettings {
    /// The keys of these settings with outputs in `format` (its name), `lossy` or not.
    pub fn keys(&self, format: &str, lossy: bool) -> anyhow::Result<SettingsKeys> {
        let translation = sha256_hex(&serde_json::to_vec(self)?);
        let output =
            sha256_hex(format!("{translation}\nformat={format}\nlossy={lossy}").as_bytes());
        Ok(SettingsKeys {
            translation,
            output,
        })
    }
}

/// The sha256 of `bytes` in lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
