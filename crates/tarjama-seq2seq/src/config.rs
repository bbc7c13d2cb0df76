//! `config.json` and `generation_config.json` of an encoder-decoder checkpoint, named
//! field-for-field after the Hugging Face files (`MarianConfig`, `M2M100Config`,
//! `GenerationConfig`), and the architecture they select.

use std::path::Path;

use serde::Deserialize;

use super::error::{Error, Result};

/// The architectures this runner implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// Marian / OPUS-MT: post-norm layers, sinusoidal positions from 0, `final_logits_bias`.
    Marian,
    /// M2M100 / NLLB: pre-norm layers with final layer norms, sinusoidal positions offset
    /// past the padding index.
    M2M100,
}

/// A token id or a list of them (`eos_token_id` may be either in Hugging Face files).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum OneOrMany {
    /// A single id.
    One(u32),
    /// Several ids.
    Many(Vec<u32>),
}

impl OneOrMany {
    /// All ids, as a list.
    pub fn to_vec(&self) -> Vec<u32> {
        match self {
            OneOrMany::One(id) => vec![*id],
            OneOrMany::Many(ids) => ids.clone(),
        }
    }
}

/// `early_stopping` of a generation config: `true`, `false` or `"never"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum EarlyStoppingValue {
    /// `true` / `false`.
    Bool(bool),
    /// `"never"`.
    Text(NeverText),
}

/// The literal string `"never"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum NeverText {
    /// `"never"`.
    #[serde(rename = "never")]
    Never,
}

/// `config.json` of a Marian or M2M100 model (the keys both share; others are ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct Seq2SeqConfig {
    /// Class names, e.g. `["MarianMTModel"]`.
    #[serde(default)]
    pub architectures: Vec<String>,
    /// `"marian"` or `"m2m_100"`.
    #[serde(default)]
    pub model_type: String,
    /// Source vocabulary size (and target size unless `decoder_vocab_size` says otherwise).
    pub vocab_size: usize,
    /// Target vocabulary size (Marian with separate vocabularies).
    #[serde(default)]
    pub decoder_vocab_size: Option<usize>,
    /// Hidden size.
    pub d_model: usize,
    /// Number of encoder layers.
    pub encoder_layers: usize,
    /// Number of decoder layers.
    pub decoder_layers: usize,
    /// Attention heads in the encoder.
    pub encoder_attention_heads: usize,
    /// Attention heads in the decoder.
    pub decoder_attention_heads: usize,
    /// Feed-forward size in the encoder.
    pub encoder_ffn_dim: usize,
    /// Feed-forward size in the decoder.
    pub decoder_ffn_dim: usize,
    /// Feed-forward activation: `swish`/`silu`, `relu`, `gelu`.
    #[serde(default = "default_activation")]
    pub activation_function: String,
    /// Length of the positional table.
    #[serde(default = "default_max_positions")]
    pub max_position_embeddings: usize,
    /// Multiply token embeddings by sqrt(d_model).
    #[serde(default)]
    pub scale_embedding: bool,
    /// Padding token id.
    pub pad_token_id: u32,
    /// End-of-sequence token id.
    pub eos_token_id: u32,
    /// Beginning-of-sequence id (M2M100).
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    /// First decoder input.
    #[serde(default)]
    pub decoder_start_token_id: Option<u32>,
    /// Marian: encoder and decoder share `model.shared`.
    #[serde(default = "default_true")]
    pub share_encoder_decoder_embeddings: bool,
    /// lm_head shares the decoder's embedding matrix.
    #[serde(default = "default_true")]
    pub tie_word_embeddings: bool,
    /// Older checkpoints carry generation settings here; used when there is no
    /// `generation_config.json`.
    #[serde(flatten)]
    pub generation: GenerationConfig,
}

fn default_activation() -> String {
    "relu".into()
}
fn default_max_positions() -> usize {
    1024
}
fn default_true() -> bool {
    true
}

/// `generation_config.json` (the keys the runner honours).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct GenerationConfig {
    /// Maximum length of the decoder sequence, start token included.
    #[serde(default)]
    pub max_length: Option<usize>,
    /// Maximum number of new tokens (wins over `max_length`).
    #[serde(default)]
    pub max_new_tokens: Option<usize>,
    /// Minimum decoder sequence length (start token included) before EOS is allowed.
    #[serde(default)]
    pub min_length: Option<usize>,
    /// Beams.
    #[serde(default)]
    pub num_beams: Option<usize>,
    /// Exponent of the hypothesis length that divides its summed log-probability.
    #[serde(default)]
    pub length_penalty: Option<f32>,
    /// When beam search stops.
    #[serde(default)]
    pub early_stopping: Option<EarlyStoppingValue>,
    /// Ban repeating any n-gram of this size.
    #[serde(default)]
    pub no_repeat_ngram_size: Option<usize>,
    /// CTRL-style penalty on tokens already generated.
    #[serde(default)]
    pub repetition_penalty: Option<f32>,
    /// Token sequences never to generate; single-token ones are the only kind used here.
    #[serde(default)]
    pub bad_words_ids: Option<Vec<Vec<u32>>>,
    /// Token forced as the first generated token.
    #[serde(default)]
    pub forced_bos_token_id: Option<u32>,
    /// Token forced when the maximum length is reached.
    #[serde(default)]
    pub forced_eos_token_id: Option<OneOrMany>,
    /// First decoder input.
    #[serde(default)]
    pub decoder_start_token_id: Option<u32>,
    /// End-of-sequence id(s).
    #[serde(default)]
    pub eos_token_id: Option<OneOrMany>,
    /// Padding id.
    #[serde(default)]
    pub pad_token_id: Option<u32>,
}

impl Seq2SeqConfig {
    /// Reads and parses `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        read_json(path)
    }

    /// The architecture, from `architectures` or else `model_type`.
    pub fn architecture(&self, path: &Path) -> Result<Architecture> {
        let named = self
            .architectures
            .first()
            .cloned()
            .unwrap_or_else(|| self.model_type.clone());
        match named.as_str() {
            "MarianMTModel" | "marian" => Ok(Architecture::Marian),
            "M2M100ForConditionalGeneration" | "m2m_100" => Ok(Architecture::M2M100),
            _ => Err(Error::UnsupportedArchitecture {
                path: path.to_path_buf(),
                arch: named,
            }),
        }
    }

    /// Target vocabulary size.
    pub fn target_vocab_size(&self) -> usize {
        self.decoder_vocab_size.unwrap_or(self.vocab_size)
    }

    /// Checks the shapes the model code relies on.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let bad = |reason: String| Error::BadConfig {
            path: path.to_path_buf(),
            reason,
        };
        for (what, heads) in [
            ("encoder_attention_heads", self.encoder_attention_heads),
            ("decoder_attention_heads", self.decoder_attention_heads),
        ] {
            if heads == 0 || !self.d_model.is_multiple_of(heads) {
                return Err(bad(format!(
                    "d_model {} is not divisible by {what} {heads}",
                    self.d_model
                )));
            }
        }
        if !self.d_model.is_multiple_of(2) {
            return Err(bad(format!(
                "d_model {} must be even for sinusoidal positions",
                self.d_model
            )));
        }
        match self.activation_function.as_str() {
            "swish" | "silu" | "relu" | "gelu" | "gelu_new" => Ok(()),
            other => Err(bad(format!("unsupported activation_function {other:?}"))),
        }
    }
}

impl GenerationConfig {
    /// Reads and parses `generation_config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        read_json(path)
    }
}

pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })
}
