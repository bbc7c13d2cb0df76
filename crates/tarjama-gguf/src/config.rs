//! What a GGUF file says about its model: the architecture and its hyper-parameters, read
//! from the metadata under llama.cpp's key names (`qwen2.attention.head_count`, ...).

use std::path::Path;

use candle_core::quantized::gguf_file;

use crate::{Error, Result};

/// The architectures this runner knows, from `general.architecture`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// Llama 2/3 and friends: interleaved RoPE, SiLU MLP.
    Llama,
    /// Qwen2 / Qwen2.5: biases on q, k, v; NeoX RoPE.
    Qwen2,
    /// Qwen3: per-head RMS norm on q and k; NeoX RoPE.
    Qwen3,
    /// Gemma 3: sandwich norms, GELU MLP, scaled embeddings, sliding-window layers.
    Gemma3,
}

impl Arch {
    /// Parses `general.architecture`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "llama" => Some(Arch::Llama),
            "qwen2" => Some(Arch::Qwen2),
            "qwen3" => Some(Arch::Qwen3),
            "gemma3" => Some(Arch::Gemma3),
            _ => None,
        }
    }

    /// The name used as metadata key prefix.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
            Arch::Qwen3 => "qwen3",
            Arch::Gemma3 => "gemma3",
        }
    }
}

/// Hyper-parameters read from the GGUF metadata.
#[derive(Debug, Clone)]
pub struct Hparams {
    /// The architecture.
    pub arch: Arch,
    /// Number of transformer blocks.
    pub n_layer: usize,
    /// Hidden size.
    pub n_embd: usize,
    /// Attention heads.
    pub n_head: usize,
    /// Key/value heads (grouped-query attention).
    pub n_kv_head: usize,
    /// Size of one attention head.
    pub head_dim: usize,
    /// Context length the model was trained for.
    pub context_length: usize,
    /// RMS norm epsilon.
    pub rms_eps: f64,
    /// RoPE base frequency (global layers for Gemma 3).
    pub rope_base: f32,
    /// Sliding-window size for Gemma 3's local layers.
    pub sliding_window: Option<usize>,
    /// Every `n`-th layer is global, the others local (Gemma 3: 6).
    pub sliding_window_pattern: usize,
    /// Linear RoPE scaling factor for global layers (Gemma 3 4B and up).
    pub rope_scale: f32,
}

impl Hparams {
    pub(super) fn from_metadata(ct: &gguf_file::Content, path: &Path) -> Result<Self> {
        let arch_name = meta_str(ct, "general.architecture", path)?;
        let arch = Arch::from_name(&arch_name).ok_or_else(|| bad(
            path,
            format!(
                "architecture `{arch_name}` is not supported (supported: llama, qwen2, qwen3, gemma3)"
            ),
        ))?;
        let p = arch.name();
        let u = |key: &str| meta_u32(ct, &format!("{p}.{key}"), path).map(|v| v as usize);
        let n_embd = u("embedding_length")?;
        let n_head = u("attention.head_count")?;
        let head_dim = match u("attention.key_length") {
            Ok(v) => v,
            Err(_) => n_embd / n_head,
        };
        let f = |key: &str| {
            ct.metadata
                .get(&format!("{p}.{key}"))
                .and_then(|v| v.to_f32().ok())
        };
        let (sliding_window, pattern) = if arch == Arch::Gemma3 {
            (
                u("attention.sliding_window").ok(),
                // llama.cpp hard-codes the 5-local-1-global pattern of Gemma 3.
                u("attention.sliding_window_pattern").unwrap_or(6),
            )
        } else {
            (None, 1)
        };
        Ok(Hparams {
            arch,
            n_layer: u("block_count")?,
            n_embd,
            n_head,
            n_kv_head: u("attention.head_count_kv").unwrap_or(n_head),
            head_dim,
            context_length: u("context_length")?,
            rms_eps: f("attention.layer_norm_rms_epsilon").unwrap_or(1e-6) as f64,
            rope_base: f("rope.freq_base").unwrap_or(10_000.0),
            sliding_window,
            sliding_window_pattern: pattern.max(1),
            rope_scale: f("rope.scaling.factor").unwrap_or(1.0),
        })
    }

    pub(super) fn is_local_layer(&self, layer: usize) -> bool {
        self.sliding_window.is_some() && !(layer + 1).is_multiple_of(self.sliding_window_pattern)
    }
}

pub(crate) fn meta_str(ct: &gguf_file::Content, key: &str, path: &Path) -> Result<String> {
    match ct.metadata.get(key) {
        Some(gguf_file::Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(bad(path, format!("metadata `{key}` is not a string"))),
        None => Err(bad(path, format!("metadata `{key}` is missing"))),
    }
}

pub(crate) fn meta_u32(ct: &gguf_file::Content, key: &str, path: &Path) -> Result<u32> {
    match ct.metadata.get(key) {
        Some(v) => v
            .to_u32()
            .or_else(|_| v.to_u64().map(|x| x as u32))
            .or_else(|_| v.to_i32().map(|x| x as u32))
            .map_err(|_| bad(path, format!("metadata `{key}` is not an integer"))),
        None => Err(bad(path, format!("metadata `{key}` is missing"))),
    }
}

pub(super) fn bad(path: &Path, reason: String) -> Error {
    Error::bad_file(path, reason)
}
