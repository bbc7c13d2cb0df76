//! Reading a GGUF file's weights: the header and its completeness, each tensor (named in
//! every error), the layout each weight is kept in, and the layers made of them, which
//! [`Transformer::load_with`](crate::model::Transformer::load_with) puts together.

use std::fs::File;
use std::io::{Read, Seek};
use std::path::Path;
use std::sync::Arc;

use candle_core::quantized::{gguf_file, GgmlDType, QStorage, QTensor};
use candle_core::{Device, Tensor};
use candle_transformers::quantized_nn::RmsNorm;

use super::block32::{Block32Matrix, Kind};
use super::config::{bad, Arch, Hparams};
use super::layers::{Activation, Attention, Block, Embedding, Mlp, Rope};
use super::linear::{KQuant, Linear, QLinear};
use super::panel::Panels;
use super::q4k::{self, Q4kMatrix};
use super::q6k::{self, Q6kMatrix};
use crate::{Error, Result};

/// Reads tensors from a GGUF file, naming the file and tensor in every error.
pub(super) struct TensorReader<'a, R> {
    pub(super) ct: &'a gguf_file::Content,
    pub(super) reader: &'a mut R,
    pub(super) path: &'a Path,
    pub(super) device: &'a Device,
    pub(super) layout: WeightLayout,
}

impl<R: Read + Seek> TensorReader<'_, R> {
    pub(super) fn has(&self, name: &str) -> bool {
        self.ct.tensor_infos.contains_key(name)
    }

    pub(super) fn qtensor(&mut self, name: &str) -> Result<QTensor> {
        if !self.has(name) {
            return Err(bad(self.path, format!("tensor `{name}` is missing")));
        }
        self.ct
            .tensor(self.reader, name, self.device)
            .map_err(|e| bad(self.path, format!("tensor `{name}`: {e}")))
    }

    /// A matrix that multiplies activations through candle, in the type candle multiplies
    /// fastest (Q5_0 as Q8_0 on the CPU, see [`q5_0_as_q8_0`]).
    pub(super) fn weight(&mut self, name: &str) -> Result<QTensor> {
        let t = self.qtensor(name)?;
        self.for_candle(t, name)
    }

    /// [`TensorReader::weight`] for a tensor already read.
    pub(super) fn for_candle(&self, t: QTensor, name: &str) -> Result<QTensor> {
        if self.layout != WeightLayout::AsStored
            && t.dtype() == GgmlDType::Q5_0
            && self.device.is_cpu()
        {
            return q5_0_as_q8_0(&t).map_err(|e| bad(self.path, format!("tensor `{name}`: {e}")));
        }
        Ok(t)
    }

    /// A projection weight, ready to multiply: in our kernels' layout where its type has
    /// one ([`TensorReader::panels`]), else as candle multiplies it fastest.
    pub(super) fn linear(&mut self, name: &str) -> Result<Linear> {
        if self.layout == WeightLayout::AsStored {
            return Ok(Linear::Candle(QLinear::new(self.weight(name)?, false)?));
        }
        if let Some(lin) = self.panels(name)? {
            return Ok(lin);
        }
        Ok(Linear::Candle(QLinear::new(self.weight(name)?, true)?))
    }

    /// `name` read from the file straight into one of our kernels' layouts, when its type
    /// has one and they run here ([`panel_kernels`]), a few hundred rows at a time: the
    /// file's copy of a matrix is never whole in memory next to ours.
    pub(super) fn panels(&mut self, name: &str) -> Result<Option<Linear>> {
        const CHUNK: usize = 256; // rows read at a time
        if self.layout != WeightLayout::Fastest || !self.device.is_cpu() {
            return Ok(None);
        }
        let Some(info) = self.ct.tensor_infos.get(name) else {
            return Err(bad(self.path, format!("tensor `{name}` is missing")));
        };
        let Ok((rows, cols)) = info.shape.dims2() else {
            return Ok(None);
        };
        let dtype = info.ggml_dtype;
        let layout = match dtype {
            GgmlDType::Q4K => q4k::LAYOUT,
            GgmlDType::Q6K => q6k::LAYOUT,
            GgmlDType::Q8_0 => Kind::Q8_0.layout(),
            GgmlDType::Q5_0 => Kind::Q5_0.layout(),
            _ => return Ok(None),
        };
        let Some(mut panels) = Panels::zeros(layout, rows, cols) else {
            return Ok(None);
        };
        let row_bytes = panels.row_bytes();
        let offset = self.ct.tensor_data_offset + info.offset;
        let read_error = |e: std::io::Error| bad(self.path, format!("tensor `{name}`: {e}"));
        self.reader
            .seek(std::io::SeekFrom::Start(offset))
            .map_err(read_error)?;
        let mut buf = vec![0u8; row_bytes * CHUNK.min(rows)];
        for first in (0..rows).step_by(CHUNK) {
            let chunk = &mut buf[..row_bytes * CHUNK.min(rows - first)];
            self.reader.read_exact(chunk).map_err(read_error)?;
            panels.pack_rows(first, chunk);
        }
        Ok(Some(match dtype {
            GgmlDType::Q4K => Linear::KQuant(KQuant::Q4(Q4kMatrix::from_panels(panels))),
            GgmlDType::Q6K => Linear::KQuant(KQuant::Q6(Q6kMatrix::from_panels(panels))),
            GgmlDType::Q8_0 => {
                Linear::Block32(Arc::new(Block32Matrix::from_panels(Kind::Q8_0, panels)))
            }
            _ => Linear::Block32(Arc::new(Block32Matrix::from_panels(Kind::Q5_0, panels))),
        }))
    }

    pub(super) fn dense(&mut self, name: &str) -> Result<Tensor> {
        let t = self.qtensor(name)?;
        Ok(t.dequantize(self.device)?)
    }

    pub(super) fn rms(&mut self, name: &str, eps: f64) -> Result<RmsNorm> {
        Ok(RmsNorm::from_qtensor(self.qtensor(name)?, eps)?)
    }

    pub(super) fn opt_rms(&mut self, name: &str, eps: f64) -> Result<Option<RmsNorm>> {
        if self.has(name) {
            self.rms(name, eps).map(Some)
        } else {
            Ok(None)
        }
    }

    pub(super) fn opt_dense(&mut self, name: &str) -> Result<Option<Tensor>> {
        if self.has(name) {
            self.dense(name).map(Some)
        } else {
            Ok(None)
        }
    }

    /// The token embedding and the output head. Tied embeddings (no `output.weight`) are
    /// kept quantized once, for both.
    pub(super) fn embedding_and_output(&mut self) -> Result<(Embedding, Linear)> {
        Ok(if self.has("output.weight") {
            let output = match self.panels("output.weight")? {
                Some(lin) => lin,
                // Not padded nor packed: one-row products go through `matvec`.
                None => Linear::Candle(QLinear::new(self.weight("output.weight")?, false)?),
            };
            let embed = Embedding::Candle(Arc::new(self.qtensor("token_embd.weight")?));
            (embed, output)
        } else {
            // Tied embeddings: the output head is the embedding matrix, kept quantized once
            // (in panels where we can read rows back from them: Q8_0 and Q5_0).
            let rows_readable = matches!(
                self.ct
                    .tensor_infos
                    .get("token_embd.weight")
                    .map(|i| i.ggml_dtype),
                Some(GgmlDType::Q8_0 | GgmlDType::Q5_0)
            );
            let panels = if rows_readable {
                self.panels("token_embd.weight")?
            } else {
                None
            };
            match panels {
                Some(Linear::Block32(m)) => (Embedding::Panels(m.clone()), Linear::Block32(m)),
                _ => {
                    let embed = Arc::new(self.qtensor("token_embd.weight")?);
                    let head = QLinear::from_arc(embed.clone(), 0)?;
                    (Embedding::Candle(embed), Linear::Candle(head))
                }
            }
        })
    }

    /// The rotary tables: the global one, and the local layers' one on models with
    /// sliding-window layers.
    pub(super) fn ropes(
        &mut self,
        hp: &Hparams,
        max_context: usize,
    ) -> Result<(Rope, Option<Rope>)> {
        let rope_len = hp.context_length.min(max_context).max(1);
        let freq_factors = match self.opt_dense("rope_freqs.weight")? {
            Some(t) => Some(t.flatten_all()?.to_vec1::<f32>()?),
            None => None,
        };
        let interleaved = hp.arch == Arch::Llama;
        let global_rope = Rope::new(
            hp.head_dim,
            hp.rope_base,
            hp.rope_scale,
            freq_factors.as_deref(),
            rope_len,
            interleaved,
            self.device,
        )?;
        // Gemma 3's local layers use base 10000 and no scaling (llama.cpp's
        // rope_freq_base_train_swa).
        let local_rope = if hp.sliding_window.is_some() {
            Some(Rope::new(
                hp.head_dim,
                10_000.0,
                1.0,
                None,
                rope_len,
                interleaved,
                self.device,
            )?)
        } else {
            None
        };
        Ok((global_rope, local_rope))
    }

    /// Block `i`: its attention (rotary table `rope`, a sliding window when `local`), its
    /// MLP (activation `act`), and its norms (sandwich norms with `sandwich`).
    pub(super) fn block(
        &mut self,
        hp: &Hparams,
        i: usize,
        rope: Rope,
        local: bool,
        act: &Activation,
        sandwich: bool,
    ) -> Result<Block> {
        let layout = self.layout;
        let p = format!("blk.{i}");
        let attn = Attention {
            wq: self.linear(&format!("{p}.attn_q.weight"))?,
            wk: self.linear(&format!("{p}.attn_k.weight"))?,
            wv: self.linear(&format!("{p}.attn_v.weight"))?,
            wo: self.linear(&format!("{p}.attn_output.weight"))?,
            bq: self.opt_dense(&format!("{p}.attn_q.bias"))?,
            bk: self.opt_dense(&format!("{p}.attn_k.bias"))?,
            bv: self.opt_dense(&format!("{p}.attn_v.bias"))?,
            q_norm: self.opt_rms(&format!("{p}.attn_q_norm.weight"), hp.rms_eps)?,
            k_norm: self.opt_rms(&format!("{p}.attn_k_norm.weight"), hp.rms_eps)?,
            n_head: hp.n_head,
            n_kv_head: hp.n_kv_head,
            head_dim: hp.head_dim,
            scale: 1.0 / (hp.head_dim as f64).sqrt(),
            rope,
            sliding_window: if local { hp.sliding_window } else { None },
            as_stored: layout == WeightLayout::AsStored,
        };
        let mlp = Mlp {
            gate: self.linear(&format!("{p}.ffn_gate.weight"))?,
            up: self.linear(&format!("{p}.ffn_up.weight"))?,
            down: self.linear(&format!("{p}.ffn_down.weight"))?,
            act: match act {
                Activation::Silu => Activation::Silu,
                Activation::GeluTanh => Activation::GeluTanh,
            },
            as_stored: layout == WeightLayout::AsStored,
        };
        Ok(Block {
            attn_norm: self.rms(&format!("{p}.attn_norm.weight"), hp.rms_eps)?,
            attn,
            post_attn_norm: if sandwich {
                Some(self.rms(&format!("{p}.post_attention_norm.weight"), hp.rms_eps)?)
            } else {
                None
            },
            ffn_norm: self.rms(&format!("{p}.ffn_norm.weight"), hp.rms_eps)?,
            mlp,
            post_ffn_norm: if sandwich {
                Some(self.rms(&format!("{p}.post_ffw_norm.weight"), hp.rms_eps)?)
            } else {
                None
            },
        })
    }
}

/// Rewrites a Q5_0 tensor as Q8_0, exactly: both store 32 weights per block with one f16
/// scale, Q5_0 as 5-bit integers offset by 16, Q8_0 as 8-bit integers, so every weight
/// `d * (q - 16)` becomes `d * q'` with `q' = q - 16` and the same `d`. The point is speed:
/// candle's CPU dot product for Q5_0 is scalar, its Q8_0 one uses SIMD, and Q4_K_M files
/// store in Q5_0 every matrix whose rows are not a multiple of 256 (most of Qwen2.5
/// 0.5B's). Both dot with activations quantized to Q8_0, so the products are the same
/// integers; only the order of the float sums changes. Costs 34/22 of those tensors'
/// memory.
pub(super) fn q5_0_as_q8_0(t: &QTensor) -> candle_core::Result<QTensor> {
    const Q5_0_BYTES: usize = 22; // f16 d, u32 high bits, 16 bytes of low nibbles
    const Q8_0_BYTES: usize = 34; // f16 d, 32 x i8
    let src = t.data()?;
    if src.len() % Q5_0_BYTES != 0 {
        candle_core::bail!("Q5_0 data of {} bytes is not whole blocks", src.len());
    }
    let mut out = Vec::with_capacity(src.len() / Q5_0_BYTES * Q8_0_BYTES);
    for block in src.chunks_exact(Q5_0_BYTES) {
        let qh = u32::from_le_bytes([block[2], block[3], block[4], block[5]]);
        let qs = &block[6..];
        out.extend_from_slice(&block[..2]);
        let mut q = [0u8; 32];
        for j in 0..16 {
            let lo = (qs[j] & 0x0f) | ((((qh >> j) & 1) as u8) << 4);
            let hi = (qs[j] >> 4) | ((((qh >> (j + 16)) & 1) as u8) << 4);
            q[j] = (lo as i8 - 16) as u8;
            q[j + 16] = (hi as i8 - 16) as u8;
        }
        out.extend_from_slice(&q);
    }
    let storage = QStorage::from_data(std::borrow::Cow::Owned(out), &t.device(), GgmlDType::Q8_0)?;
    QTensor::new(storage, t.shape())
}

/// Checks that every tensor the header announces lies inside the file, so a truncated
/// download is reported as such rather than as a confusing read error halfway through.
pub(crate) fn check_complete(ct: &gguf_file::Content, path: &Path, file_len: u64) -> Result<()> {
    let mut needed = ct.tensor_data_offset;
    for (name, info) in &ct.tensor_infos {
        let elems = info.shape.elem_count();
        let block = info.ggml_dtype.block_size();
        let bytes = (elems / block * info.ggml_dtype.type_size()) as u64;
        let end = ct.tensor_data_offset + info.offset + bytes;
        if end > needed {
            needed = end;
        }
        if elems % block != 0 {
            return Err(bad(path, format!("tensor `{name}` has a broken shape")));
        }
    }
    if file_len < needed {
        return Err(bad(
            path,
            format!(
                "the file is truncated: its tensors need {needed} bytes but it has {file_len} \
                 (an interrupted download? pull the model again)"
            ),
        ));
    }
    Ok(())
}

/// Opens a GGUF file and reads its header (metadata and tensor index).
pub fn read_header(path: &Path) -> Result<(File, gguf_file::Content)> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let ct = gguf_file::Content::read(&mut file).map_err(|e| {
        bad(
            path,
            format!("not a readable GGUF file ({e}); is it a GGUF model, and complete?"),
        )
    })?;
    check_complete(&ct, path, len)?;
    Ok((file, ct))
}

/// How weights are kept in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightLayout {
    /// In the layout the device multiplies fastest, each weight once: Q4_K, Q6_K, Q8_0 and
    /// Q5_0 in the panels of our kernels ([`super::q4k`], [`super::q6k`],
    /// [`super::block32`], on every CPU with the widest tier it has), other types as in
    /// [`WeightLayout::CandleFastest`]. Same weights, other rounding of the sums.
    #[default]
    Fastest,
    /// Through candle's kernels, in the layout they run fastest: Q5_0 rewritten as Q8_0,
    /// rows padded for candle's packed kernels (which keep a packed copy next to the
    /// weight: Q4_K and Q8_0 sit in memory twice). To compare with candle
    /// (`TARJAMA_CANDLE_KERNELS=1`).
    CandleFastest,
    /// Exactly as stored in the file, through candle's plain kernels (to compare with
    /// other candle-based implementations number for number).
    AsStored,
}
