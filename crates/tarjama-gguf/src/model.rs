//! One quantized decoder-only transformer for the GGUF architectures tarjama runs:
//! `llama`, `qwen2`, `qwen3` and `gemma3`.
//!
//! The four differ in a handful of switches (biases on q/k/v, per-head q/k norms,
//! rotary layout, sandwich norms, activation, embedding scale, sliding-window layers), so
//! one implementation with those switches replaces four near-copies. Unlike candle's own
//! quantized models, the KV cache here can be cut back to any length, which is what lets
//! [`crate::ChatModel`] reuse the cache of a prompt prefix shared by many requests.
//!
//! Tensor and metadata names follow llama.cpp's GGUF conventions (`blk.N.attn_q.weight`,
//! `qwen2.attention.head_count`, ...); `src/llama-model.cpp` in llama.cpp is the reference
//! for each architecture's graph.
//!
//! The model is split by job: [`super::config`] (hyper-parameters), [`super::kv`] (the
//! cache), [`super::linear`] (projections and the choice of kernels), [`super::layers`]
//! (embedding, attention, MLP, blocks), `step` (a batched step's sequences, [`Step`]) and
//! [`super::loading`] (reading the file); this file holds the model, its loading from
//! those parts and its forward pass.

use std::io::{Read, Seek};
use std::path::Path;

use candle_core::quantized::gguf_file;
use candle_core::{DType, Device, Module, Tensor};
use candle_transformers::quantized_nn::RmsNorm;

use super::kv::SeqCache;
use super::layers::{Activation, Block, Embedding};
use super::linear::{panel_kernels, Linear};
use super::loading::TensorReader;
use super::step::Segment;
use crate::{Error, Result};

pub use super::config::{Arch, Hparams};
pub use super::linear::matvec;
pub use super::loading::{read_header, WeightLayout};
pub use super::step::Step;

/// A loaded GGUF decoder with its KV cache.
#[derive(Debug)]
pub struct Transformer {
    pub(super) hparams: Hparams,
    pub(super) embed: Embedding,
    pub(super) embed_scale: Option<f64>,
    pub(super) blocks: Vec<Block>,
    pub(super) norm: RmsNorm,
    pub(super) output: Linear,
    pub(super) device: Device,
    /// The sequence of [`Transformer::forward`].
    pub(super) cache: SeqCache,
}

impl Transformer {
    /// The model's hyper-parameters.
    pub fn hparams(&self) -> &Hparams {
        &self.hparams
    }

    /// The longest sequence the rotary tables cover.
    pub fn max_context(&self) -> usize {
        self.blocks
            .first()
            .map(|b| b.attn.rope.cos.dim(0).unwrap_or(0))
            .unwrap_or(0)
    }

    /// How many positions the KV cache of [`Transformer::forward`] holds.
    pub fn cache_len(&self) -> usize {
        self.cache.len()
    }

    /// Cuts the KV cache of [`Transformer::forward`] back to its first `len` positions.
    pub fn truncate_cache(&mut self, len: usize) -> Result<()> {
        self.cache.truncate(len);
        Ok(())
    }

    /// An empty cache for one more sequence of [`Transformer::forward_batch`].
    pub fn new_cache(&self) -> SeqCache {
        SeqCache::new(
            self.hparams.n_layer,
            self.hparams.n_kv_head,
            self.hparams.head_dim,
        )
    }

    /// Feeds `tokens` at positions `cache_len()..` and returns the logits (vocab,) of the
    /// last one.
    pub fn forward(&mut self, tokens: &[u32]) -> Result<Tensor> {
        let mut cache = std::mem::replace(&mut self.cache, SeqCache::new(0, 0, 0));
        let out = self.forward_batch(&mut [Step {
            cache: &mut cache,
            tokens,
        }]);
        self.cache = cache;
        Ok(out?.remove(0))
    }

    /// One step over many sequences: each feeds its tokens after what its cache holds, and
    /// gets the logits (vocab,) of its last token. All rows go through each projection
    /// together; each attends over its own sequence only. A sequence's results do not
    /// depend on the others in the step (on our kernels, bit for bit: every row's sums
    /// are computed alone and in the same order).
    pub fn forward_batch(&self, steps: &mut [Step<'_>]) -> Result<Vec<Tensor>> {
        let mut segs = Vec::with_capacity(steps.len());
        let mut all = Vec::new();
        let mut positions = Vec::new();
        for step in steps.iter() {
            let pos = step.cache.len();
            if step.tokens.is_empty() {
                return Err(Error::Tokenizer("no tokens to feed the model".into()));
            }
            if pos + step.tokens.len() > self.max_context() {
                return Err(Error::ContextOverflow {
                    needed: pos + step.tokens.len(),
                    max: self.max_context(),
                });
            }
            segs.push(Segment {
                start: all.len(),
                rows: step.tokens.len(),
                pos,
            });
            all.extend_from_slice(step.tokens);
            positions.extend((pos..pos + step.tokens.len()).map(|p| p as u32));
        }
        if steps.is_empty() {
            return Ok(Vec::new());
        }
        let positions = Tensor::from_vec(positions, all.len(), &self.device)?;
        let mut x = self.embed.lookup(&all, &self.device)?;
        if let Some(scale) = self.embed_scale {
            x = (x * scale)?;
        }
        for (layer, block) in self.blocks.iter().enumerate() {
            x = block.forward(&x, layer, steps, &segs, &positions)?;
        }
        for (step, seg) in steps.iter_mut().zip(&segs) {
            step.cache.commit(seg.rows);
        }
        let last: Vec<u32> = segs.iter().map(|s| (s.start + s.rows - 1) as u32).collect();
        let last = x.index_select(&Tensor::new(last.as_slice(), &self.device)?, 1)?;
        let last = self.norm.forward(&last)?;
        let logits = self.output.forward(&last)?.to_dtype(DType::F32)?;
        (0..segs.len())
            .map(|i| Ok(logits.get(0)?.get(i)?))
            .collect()
    }
}

impl Transformer {
    /// Loads the weights described by `ct` from `reader` (the same GGUF file).
    pub fn load<R: Read + Seek>(
        ct: &gguf_file::Content,
        reader: &mut R,
        path: &Path,
        device: &Device,
        max_context: usize,
    ) -> Result<Self> {
        Self::load_with(ct, reader, path, device, max_context, WeightLayout::Fastest)
    }

    /// [`Transformer::load`] with a choice of [`WeightLayout`].
    pub fn load_with<R: Read + Seek>(
        ct: &gguf_file::Content,
        reader: &mut R,
        path: &Path,
        device: &Device,
        max_context: usize,
        layout: WeightLayout,
    ) -> Result<Self> {
        let hp = Hparams::from_metadata(ct, path)?;
        let layout = match layout {
            WeightLayout::Fastest if !panel_kernels() => WeightLayout::CandleFastest,
            layout => layout,
        };
        let mut tr = TensorReader {
            ct,
            reader,
            path,
            device,
            layout,
        };
        let (embed, output) = tr.embedding_and_output()?;
        let norm = tr.rms("output_norm.weight", hp.rms_eps)?;
        let (global_rope, local_rope) = tr.ropes(&hp, max_context)?;
        let (act, sandwich) = match hp.arch {
            Arch::Gemma3 => (Activation::GeluTanh, true),
            _ => (Activation::Silu, false),
        };
        let mut blocks = Vec::with_capacity(hp.n_layer);
        for i in 0..hp.n_layer {
            let local = hp.is_local_layer(i);
            let rope = match (&local_rope, local) {
                (Some(r), true) => r.clone(),
                _ => global_rope.clone(),
            };
            blocks.push(tr.block(&hp, i, rope, local, &act, sandwich)?);
        }
        let embed_scale = (hp.arch == Arch::Gemma3).then(|| (hp.n_embd as f64).sqrt());
        let (hp_layers, hp_kv_heads, hp_head_dim) = (hp.n_layer, hp.n_kv_head, hp.head_dim);
        Ok(Transformer {
            hparams: hp,
            embed,
            embed_scale,
            blocks,
            norm,
            output,
            device: device.clone(),
            cache: SeqCache::new(hp_layers, hp_kv_heads, hp_head_dim),
        })
    }

    /// Loads a GGUF file from disk.
    pub fn from_path(path: &Path, device: &Device, max_context: usize) -> Result<Self> {
        Self::from_path_with(path, device, max_context, WeightLayout::Fastest)
    }

    /// [`Transformer::from_path`] with a choice of [`WeightLayout`].
    pub fn from_path_with(
        path: &Path,
        device: &Device,
        max_context: usize,
        layout: WeightLayout,
    ) -> Result<Self> {
        let (mut file, ct) = read_header(path)?;
        Self::load_with(&ct, &mut file, path, device, max_context, layout)
    }
}
