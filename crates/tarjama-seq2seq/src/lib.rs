//! Encoder-decoder translation models (Marian / OPUS-MT and M2M100 / NLLB) on candle:
//! loading Hugging Face checkpoints and their tokenizers, a batched encoder with padding
//! masks, a decoder with cached self- and cross-attention, and greedy and beam search
//! that follow `transformers`' `generate`.
//!
//! ```no_run
//! use tarjama_seq2seq::{GenerateOptions, Seq2SeqTranslator};
//! let t = Seq2SeqTranslator::load("Helsinki-NLP/opus-mt-ar-en", &candle_core::Device::Cpu)?;
//! let out = t.translate(&["مرحبا بالعالم"], &GenerateOptions::default())?;
//! println!("{} ({:.2})", out[0].text, out[0].score);
//! # Ok::<(), tarjama_seq2seq::Error>(())
//! ```

#![deny(missing_docs)]

pub(crate) mod attention;
pub mod config;
pub mod error;
pub mod generate;
pub mod int8;
pub mod model;
pub mod quant;
pub mod resolve;
pub mod spm;
pub mod tokenizer;
pub mod unigram;
mod values;

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

pub use config::{Architecture, GenerationConfig, Seq2SeqConfig};
pub use error::{Error, Result};
pub use generate::{EarlyStopping, Hypothesis, SearchParams};
pub use model::{DecoderState, EncoderDecoder, Seq2SeqModel};
pub use tokenizer::Seq2SeqTokenizer;

use config::{EarlyStoppingValue, OneOrMany};
use tokenizer::{existing, MarianTokenizer, NllbTokenizer};

/// How to load a model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Quantize the linear layers' weights to 8 bits (per-row int8 on AVX-512 VNNI, GGML
    /// `Q8_0` elsewhere).
    pub int8: bool,
}

/// Decoding settings of one `translate` call. `None` means: what the model's
/// `generation_config.json` (or `config.json`) says, else transformers' default.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    /// Beams (1 = greedy).
    pub beam: Option<usize>,
    /// Maximum number of generated tokens (transformers' `max_new_tokens`).
    pub max_tokens: Option<usize>,
    /// Minimum decoder length, start token included (transformers' `min_length`).
    pub min_length: Option<usize>,
    /// Length penalty exponent.
    pub length_penalty: Option<f32>,
    /// When beam search stops.
    pub early_stopping: Option<EarlyStopping>,
    /// Ban repeated n-grams of this size.
    pub no_repeat_ngram: Option<usize>,
    /// Penalty on tokens already generated.
    pub repetition_penalty: Option<f32>,
    /// Hypotheses to return per sentence (at most the beam count).
    pub nbest: usize,
    /// Source tokens per batch (sentences are sorted by length and packed up to this).
    pub batch_tokens: usize,
    /// At most this many sentences per batch, whatever their length.
    pub batch_sentences: Option<usize>,
    /// NLLB source language code (default: the tokenizer's `src_lang`, e.g. `arb_Arab`).
    pub src_lang: Option<String>,
    /// NLLB target language code, forced as the first token (default `eng_Latn`).
    pub tgt_lang: Option<String>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            beam: None,
            max_tokens: None,
            min_length: None,
            length_penalty: None,
            early_stopping: None,
            no_repeat_ngram: None,
            repetition_penalty: None,
            nbest: 1,
            batch_tokens: 4096,
            batch_sentences: None,
            src_lang: None,
            tgt_lang: None,
        }
    }
}

/// One of the n-best outputs for a sentence.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Decoded text.
    pub text: String,
    /// Generated token ids (EOS included when produced).
    pub tokens: Vec<u32>,
    /// The search's own score (beam: length-penalized log-probability, as
    /// transformers' `sequences_scores`; greedy: mean log-probability).
    pub score: f32,
}

/// The translation of one sentence.
#[derive(Debug, Clone, PartialEq)]
pub struct Translation {
    /// Decoded text of the best hypothesis, special tokens skipped.
    pub text: String,
    /// Its generated token ids.
    pub tokens: Vec<u32>,
    /// Its mean log-probability per generated token (a confidence the caller can show).
    pub score: f32,
    /// The `nbest` best hypotheses, best first (the first is the one above).
    pub nbest: Vec<Candidate>,
}

/// A loaded encoder-decoder translation model with its tokenizer.
pub struct Seq2SeqTranslator {
    model: Seq2SeqModel,
    tokenizer: Seq2SeqTokenizer,
    config: Seq2SeqConfig,
    generation: GenerationConfig,
    arch: Architecture,
    dir: PathBuf,
    device: Device,
}

impl Seq2SeqTranslator {
    /// Loads a model from a local directory in Hugging Face layout or a hub repository id.
    pub fn load(dir_or_repo: &str, device: &Device) -> crate::Result<Self> {
        Self::load_with(dir_or_repo, device, LoadOptions::default())
    }

    /// [`Seq2SeqTranslator::load`] with options (int8 weights).
    pub fn load_with(dir_or_repo: &str, device: &Device, opts: LoadOptions) -> crate::Result<Self> {
        let dir = resolve::resolve_model_dir(dir_or_repo)?;
        Self::load_dir(&dir, device, opts)
    }

    fn load_dir(dir: &Path, device: &Device, opts: LoadOptions) -> Result<Self> {
        let config_path = tokenizer::require(dir, "config.json")?;
        let config = Seq2SeqConfig::from_file(&config_path)?;
        let arch = config.architecture(&config_path)?;
        config.validate(&config_path)?;
        let generation = match existing(dir, "generation_config.json") {
            Some(path) => GenerationConfig::from_file(&path)?,
            None => config.generation.clone(),
        };
        let (weights, vb) = if let Some(path) = existing(dir, "model.safetensors") {
            let tensors = read_safetensors(&path, device).map_err(|error| Error::Weights {
                path: path.clone(),
                error,
            })?;
            let backend = HandOver(std::sync::Mutex::new(tensors));
            (
                path,
                VarBuilder::from_backend(Box::new(backend), DType::F32, device.clone()),
            )
        } else if let Some(path) = existing(dir, "pytorch_model.bin") {
            let vb = VarBuilder::from_pth(&path, DType::F32, device);
            (
                path.clone(),
                vb.map_err(|error| Error::Weights { path, error })?,
            )
        } else {
            return Err(Error::MissingFile {
                dir: dir.to_path_buf(),
                file: "model.safetensors or pytorch_model.bin".into(),
            });
        };
        let model =
            Seq2SeqModel::load(&config, arch, vb, opts.int8).map_err(|error| Error::Weights {
                path: weights,
                error,
            })?;
        let tokenizer = match arch {
            Architecture::Marian => {
                Seq2SeqTokenizer::Marian(Box::new(MarianTokenizer::from_dir(dir)?))
            }
            Architecture::M2M100 => Seq2SeqTokenizer::Nllb(Box::new(NllbTokenizer::from_dir(dir)?)),
        };
        Ok(Seq2SeqTranslator {
            model,
            tokenizer,
            config,
            generation,
            arch,
            dir: dir.to_path_buf(),
            device: device.clone(),
        })
    }

    /// The architecture.
    pub fn architecture(&self) -> Architecture {
        self.arch
    }

    /// The model.
    pub fn model(&self) -> &Seq2SeqModel {
        &self.model
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Seq2SeqTokenizer {
        &self.tokenizer
    }

    /// The directory the model was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Source token ids of a sentence, as the model sees them.
    pub fn encode_source(&self, text: &str, opts: &GenerateOptions) -> Result<Vec<u32>> {
        self.tokenizer.encode(text, opts.src_lang.as_deref())
    }

    /// The search settings `opts` resolve to for this model.
    pub fn search_params(&self, opts: &GenerateOptions) -> Result<SearchParams> {
        let g = &self.generation;
        let c = &self.config;
        let num_beams = opts.beam.or(g.num_beams).unwrap_or(1).max(1);
        let max_positions = c.max_position_embeddings;
        let max_length = match opts.max_tokens.or(g.max_new_tokens) {
            Some(new) => new + 1,
            None => g.max_length.unwrap_or(20),
        };
        if max_length < 2 {
            return Err(Error::BadOptions("max_tokens must be at least 1".into()));
        }
        let max_length = max_length.min(max_positions);
        let eos = g
            .eos_token_id
            .as_ref()
            .map_or_else(|| vec![c.eos_token_id], OneOrMany::to_vec);
        let pad = g.pad_token_id.unwrap_or(c.pad_token_id);
        let mut bad_words = g.bad_words_ids.clone().unwrap_or_default();
        // Padding is never a translation: transformers bans it for Marian through
        // `bad_words_ids`; it is banned here for every model.
        if !bad_words.iter().any(|b| b == &[pad]) {
            bad_words.push(vec![pad]);
        }
        let forced_bos = match self.arch {
            Architecture::M2M100 => match (&opts.tgt_lang, g.forced_bos_token_id) {
                (Some(lang), _) => Some(self.lang_id(lang)?),
                (None, Some(id)) => Some(id),
                (None, None) => Some(self.lang_id("eng_Latn")?),
            },
            Architecture::Marian => g.forced_bos_token_id,
        };
        let early_stopping = match opts.early_stopping {
            Some(e) => e,
            None => match g.early_stopping {
                Some(EarlyStoppingValue::Bool(true)) => EarlyStopping::True,
                Some(EarlyStoppingValue::Text(_)) => EarlyStopping::Never,
                _ => EarlyStopping::False,
            },
        };
        Ok(SearchParams {
            num_beams,
            max_length,
            min_length: opts.min_length.or(g.min_length).unwrap_or(0),
            length_penalty: opts.length_penalty.or(g.length_penalty).unwrap_or(1.0),
            early_stopping,
            no_repeat_ngram_size: opts.no_repeat_ngram.or(g.no_repeat_ngram_size).unwrap_or(0),
            repetition_penalty: opts
                .repetition_penalty
                .or(g.repetition_penalty)
                .unwrap_or(1.0),
            bad_words,
            forced_bos,
            forced_eos: g
                .forced_eos_token_id
                .as_ref()
                .and_then(|e| e.to_vec().first().copied()),
            eos,
            decoder_start: g
                .decoder_start_token_id
                .or(c.decoder_start_token_id)
                .unwrap_or(c.eos_token_id),
            num_return: opts.nbest.clamp(1, num_beams),
        })
    }

    fn lang_id(&self, lang: &str) -> Result<u32> {
        self.tokenizer
            .token_to_id(lang)
            .ok_or_else(|| Error::UnknownToken {
                path: self.dir.join("tokenizer.json"),
                token: lang.into(),
            })
    }

    /// Runs the encoder on a batch of token-id sequences (right-padded here) and returns
    /// `(encoder states, mask)`.
    pub fn encode_batch(&self, batch: &[Vec<u32>]) -> Result<(Tensor, Tensor)> {
        let len = batch.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let pad = self.config.pad_token_id;
        let mut ids = Vec::with_capacity(batch.len() * len);
        let mut mask = Vec::with_capacity(batch.len() * len);
        for row in batch {
            ids.extend(
                row.iter()
                    .copied()
                    .chain(std::iter::repeat_n(pad, len - row.len())),
            );
            mask.extend((0..len).map(|i| u32::from(i < row.len())));
        }
        let ids = Tensor::from_vec(ids, (batch.len(), len), &self.device)?;
        let mask = Tensor::from_vec(mask, (batch.len(), len), &self.device)?;
        let encoded = self.model.encode(&ids, &mask)?;
        Ok((encoded, mask))
    }

    /// Generates for one batch of source token ids (no length sorting); hypotheses
    /// per sentence, best first.
    pub fn generate_ids(
        &self,
        batch: &[Vec<u32>],
        params: &SearchParams,
    ) -> Result<Vec<Vec<Hypothesis>>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        self.check_lengths(batch)?;
        let (encoded, mask) = self.encode_batch(batch)?;
        Ok(generate::search(&self.model, &encoded, &mask, params)?)
    }

    fn check_lengths(&self, batch: &[Vec<u32>]) -> Result<()> {
        let limit = self.config.max_position_embeddings;
        match batch.iter().find(|r| r.len() > limit) {
            Some(long) => Err(Error::BadOptions(format!(
                "a sentence of {} tokens is longer than the model's {limit} positions",
                long.len()
            ))),
            None => Ok(()),
        }
    }

    /// [`Seq2SeqTranslator::translate`] where some sentences must contain given English
    /// terms (`terms[i]` for sentence `i`: the glossary entries found in it). Those are
    /// decoded one at a time by constrained beam search ([`generate::constrained`]), at
    /// least as many beams as terms plus one; the others as `translate` does. A term the
    /// target vocabulary cannot write (a piece it lacks) is not enforced.
    pub fn translate_constrained(
        &self,
        sentences: &[&str],
        opts: &GenerateOptions,
        terms: &[Vec<String>],
    ) -> crate::Result<Vec<Translation>> {
        let constrained: Vec<usize> = (0..sentences.len())
            .filter(|&i| terms.get(i).is_some_and(|t| !t.is_empty()))
            .collect();
        let free: Vec<usize> = (0..sentences.len())
            .filter(|i| !constrained.contains(i))
            .collect();
        let free_text: Vec<&str> = free.iter().map(|&i| sentences[i]).collect();
        let mut out: Vec<Option<Translation>> = vec![None; sentences.len()];
        for (i, t) in free.iter().zip(self.translate(&free_text, opts)?) {
            out[*i] = Some(t);
        }
        let params = self.search_params(opts)?;
        for i in constrained {
            let targets: Vec<Vec<u32>> = terms[i]
                .iter()
                .filter_map(|term| self.tokenizer.encode_target(term).ok())
                .collect();
            let ids = vec![self.encode_source(sentences[i], opts)?];
            self.check_lengths(&ids)?;
            let (encoded, mask) = self.encode_batch(&ids)?;
            let hyps = generate::constrained(&self.model, &encoded, &mask, &params, &targets)
                .map_err(Error::from)?;
            out[i] = Some(self.to_translation(hyps)?);
        }
        Ok(out.into_iter().flatten().collect())
    }

    /// Translates sentences: tokenizes, sorts them by length, packs batches of at most
    /// `opts.batch_tokens` source tokens, searches, decodes, and returns the results in
    /// input order.
    pub fn translate(
        &self,
        sentences: &[&str],
        opts: &GenerateOptions,
    ) -> crate::Result<Vec<Translation>> {
        let params = self.search_params(opts)?;
        let ids = sentences
            .iter()
            .map(|s| self.encode_source(s, opts))
            .collect::<Result<Vec<_>>>()?;
        let mut results: Vec<Option<Translation>> = vec![None; sentences.len()];
        for batch in pack_batches(
            &ids,
            opts.batch_tokens,
            opts.batch_sentences.unwrap_or(usize::MAX),
        ) {
            let rows: Vec<Vec<u32>> = batch.iter().map(|&i| ids[i].clone()).collect();
            let hyps = self.generate_ids(&rows, &params)?;
            for (&i, hyps) in batch.iter().zip(hyps) {
                results[i] = Some(self.to_translation(hyps)?);
            }
        }
        Ok(results.into_iter().flatten().collect())
    }

    fn to_translation(&self, hyps: Vec<Hypothesis>) -> Result<Translation> {
        let nbest = hyps
            .iter()
            .map(|h| {
                Ok(Candidate {
                    text: self.tokenizer.decode(&h.tokens)?,
                    tokens: h.tokens.clone(),
                    score: h.score,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let best = hyps.first();
        Ok(Translation {
            text: nbest.first().map(|c| c.text.clone()).unwrap_or_default(),
            tokens: best.map(|h| h.tokens.clone()).unwrap_or_default(),
            score: best.map_or(0.0, Hypothesis::mean_logprob),
            nbest,
        })
    }
}

/// Groups sentence indices into batches: longest first, each batch holding as many
/// sentences as fit in `budget` padded source tokens (at least one) and at most
/// `max_sentences`.
pub fn pack_batches(ids: &[Vec<u32>], budget: usize, max_sentences: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(ids[i].len()));
    let mut batches: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut width = 0;
    for i in order {
        let w = width.max(ids[i].len());
        let over = w.saturating_mul(current.len() + 1) > budget || current.len() >= max_sentences;
        if !current.is_empty() && over {
            batches.push(std::mem::take(&mut current));
            width = 0;
        }
        width = width.max(ids[i].len());
        current.push(i);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

/// Checkpoint tensors that are handed over, not lent: a tensor leaves the map when the
/// model takes it, so once the model has made what it keeps (a transposed copy, int8
/// panels) the checkpoint's tensor is freed, and loading never holds the whole
/// checkpoint and the whole model at once (Marian at opus-mt-ar-en's size, `seq2seq_bench`
/// on 64 sentences at f32: peak 941 -> 880 MiB). Each tensor can be taken once; the model
/// takes each once.
struct HandOver(std::sync::Mutex<HashMap<String, Tensor>>);

impl HandOver {
    fn take(&self, name: &str) -> candle_core::Result<Tensor> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(name)
            .ok_or_else(|| candle_core::Error::CannotFindTensor {
                path: name.to_string(),
            })
    }
}

impl candle_nn::var_builder::SimpleBackend for HandOver {
    fn get(
        &self,
        shape: candle_core::Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let tensor = self.take(name)?;
        if tensor.shape() != &shape {
            return Err(candle_core::Error::UnexpectedShape {
                msg: format!("shape mismatch for {name}"),
                expected: shape,
                got: tensor.shape().clone(),
            });
        }
        tensor.to_device(dev)?.to_dtype(dtype)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.take(name)?.to_device(dev)?.to_dtype(dtype)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.contains_key(name)
    }
}

/// Reads a `.safetensors` file one tensor at a time into owned tensors (floating-point
/// ones; integer buffers are skipped, the models read none).
///
/// Not memory-mapped on purpose: copying out of a mapping keeps both the mapped pages and
/// the copies resident until the mapping goes, so loading peaked at twice the weights
/// (Marian at opus-mt-ar-en's size: 587 MiB for 304 MB of weights); read like this, the
/// peak is the weights and one tensor's buffer.
fn read_safetensors(path: &Path, device: &Device) -> candle_core::Result<HashMap<String, Tensor>> {
    #[derive(serde::Deserialize)]
    struct Entry {
        dtype: String,
        shape: Vec<usize>,
        data_offsets: (u64, u64),
    }
    let bad =
        |what: String| candle_core::Error::Msg(format!("not a valid safetensors file: {what}"));
    let mut file = std::fs::File::open(path)?;
    let file_len = file.metadata()?.len();
    let mut len = [0u8; 8];
    file.read_exact(&mut len)?;
    let header_len = u64::from_le_bytes(len);
    if header_len > file_len.saturating_sub(8) || header_len > 100 << 20 {
        return Err(bad(format!(
            "header of {header_len} bytes in a {file_len}-byte file"
        )));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header)?;
    let mut entries: HashMap<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|e| bad(format!("header: {e}")))?;
    entries.remove("__metadata__");
    let mut entries: Vec<(String, Entry)> = entries
        .into_iter()
        .map(|(name, v)| {
            serde_json::from_value(v)
                .map(|e| (name.clone(), e))
                .map_err(|e| bad(format!("tensor `{name}`: {e}")))
        })
        .collect::<candle_core::Result<_>>()?;
    // In file order, so the reads are sequential.
    entries.sort_by_key(|(_, e)| e.data_offsets.0);
    let data_start = 8 + header_len;
    let mut out = HashMap::with_capacity(entries.len());
    let mut buf = Vec::new();
    for (name, e) in entries {
        let dtype = match e.dtype.as_str() {
            "F32" => DType::F32,
            "F16" => DType::F16,
            "BF16" => DType::BF16,
            "F64" => DType::F64,
            _ => continue,
        };
        let (begin, end) = e.data_offsets;
        let expected = e.shape.iter().product::<usize>() * dtype.size_in_bytes();
        if end < begin || (end - begin) as usize != expected || data_start + end > file_len {
            return Err(bad(format!(
                "tensor `{name}` ({:?} {}) has data offsets {begin}..{end} (truncated file?)",
                e.shape, e.dtype
            )));
        }
        buf.resize(expected, 0);
        file.seek(SeekFrom::Start(data_start + begin))?;
        file.read_exact(&mut buf)?;
        let t = Tensor::from_raw_buffer(&buf, dtype, &e.shape, device)?;
        out.insert(name, t);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_respect_the_budget_and_cover_everything() {
        let ids: Vec<Vec<u32>> = [3, 10, 1, 7, 7, 2].iter().map(|&n| vec![0; n]).collect();
        let batches = pack_batches(&ids, 14, usize::MAX);
        assert_eq!(batches, vec![vec![1], vec![3, 4], vec![0, 5, 2]]);
        assert_eq!(pack_batches(&ids, 1, usize::MAX).len(), 6);
        assert_eq!(
            pack_batches(&ids, 1000, 4),
            vec![vec![1, 3, 4, 0], vec![5, 2]]
        );
    }
}
