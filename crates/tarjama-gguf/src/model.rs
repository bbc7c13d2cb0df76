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
//! (attention, MLP, blocks) and [`super::loading`] (reading the file); this file holds
//! the model and its forward pass.

use std::sync::Arc;

use candle_core::quantized::QTensor;
use candle_core::{DType, Device, Module, Tensor};
use candle_transformers::quantized_nn::RmsNorm;

use super::block32::Block32Matrix;
use super::kv::SeqCache;
use super::layers::Block;
use super::linear::Linear;
use super::panel::PanelMatrix;
use crate::{Error, Result};

pub use super::config::{Arch, Hparams};
pub use super::linear::matvec;
pub use super::loading::{read_header, WeightLayout};

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

/// One sequence's part of a batched step ([`Transformer::forward_batch`]): its cache and
/// the tokens that follow what the cache holds.
#[derive(Debug)]
pub struct Step<'a> {
    /// The sequence's keys and values; it gains those of `tokens`.
    pub cache: &'a mut SeqCache,
    /// The tokens to feed, at positions `cache.len()..`.
    pub tokens: &'a [u32],
}

/// Where a sequence's rows lie in a batch.
#[derive(Debug, Clone, Copy)]
pub(super) struct Segment {
    /// Its first row.
    pub(super) start: usize,
    pub(super) rows: usize,
    /// The position of its first row.
    pub(super) pos: usize,
}

/// The token embedding matrix, kept quantized: as candle's tensor, or as the output
/// head's panels when the two are tied and in one of our kernels' layouts (one copy for
/// both).
#[derive(Debug)]
pub(super) enum Embedding {
    Candle(Arc<QTensor>),
    Panels(Arc<Block32Matrix>),
}

impl Embedding {
    /// The embeddings of `tokens`, `(1, tokens, hidden)`.
    pub(super) fn lookup(&self, tokens: &[u32], device: &Device) -> Result<Tensor> {
        match self {
            Embedding::Candle(t) => {
                let ids = Tensor::new(tokens, device)?.unsqueeze(0)?;
                Ok(t.embedding(&ids)?)
            }
            Embedding::Panels(m) => {
                let mut xs = Vec::with_capacity(tokens.len() * m.cols());
                for &t in tokens {
                    if t as usize >= m.rows() {
                        return Err(Error::Tokenizer(format!(
                            "token id {t} is out of range for {} embeddings",
                            m.rows()
                        )));
                    }
                    xs.extend(m.row(t as usize));
                }
                Ok(Tensor::from_vec(xs, (1, tokens.len(), m.cols()), device)?)
            }
        }
    }
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
