//! One quantized decoder-only transformer for the GGUF architectures tarjama runs:
//! `llama`, `qwen2`, `qwen3` and `gemma3`.
//!
//! The four differ in a handful of switches (biases on q/k/v, per-head q/k norms,
//! rotary layout, sandwich norms, activation, embedding scale, sliding-window layers), so
//! one implementation with those switches replaces four near-copies. Unlike candle's own
//! quantized models, the KV cache here can be cut back to any length, which is what lets
//! [`crate::gguf::ChatModel`] reuse the cache of a prompt prefix shared by many requests.
//!
//! Tensor and metadata names follow llama.cpp's GGUF conventions (`blk.N.attn_q.weight`,
//! `qwen2.attention.head_count`, ...); `src/llama-model.cpp` in llama.cpp is the reference
//! for each architecture's graph.

use std::fs::File;
use std::io::{Read, Seek};
use std::path::Path;
use std::sync::Arc;

use candle_core::quantized::{gguf_file, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor};
use candle_transformers::quantized_nn::RmsNorm;

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
    fn from_metadata(ct: &gguf_file::Content, path: &Path) -> Result<Self> {
        let arch_name = meta_str(ct, "general.architecture", path)?;
        let arch = Arch::from_name(&arch_name).ok_or_else(|| Error::BadModelFile {
            path: path.to_path_buf(),
            reason: format!(
                "architecture `{arch_name}` is not supported (supported: llama, qwen2, qwen3, gemma3)"
            ),
        })?;
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

    fn is_local_layer(&self, layer: usize) -> bool {
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

fn bad(path: &Path, reason: String) -> Error {
    Error::BadModelFile {
        path: path.to_path_buf(),
        reason,
    }
}

/// Rotary tables for one frequency base, computed up to the longest position seen so far.
#[derive(Debug, Clone)]
struct Rope {
    cos: Tensor,
    sin: Tensor,
    /// llama.cpp's "normal" RoPE rotates adjacent pairs; NeoX (Qwen, Gemma) rotates halves.
    interleaved: bool,
}

impl Rope {
    fn new(
        head_dim: usize,
        base: f32,
        scale: f32,
        freq_factors: Option<&[f32]>,
        len: usize,
        interleaved: bool,
        device: &Device,
    ) -> Result<Self> {
        let inv_freq: Vec<f32> = (0..head_dim / 2)
            .map(|i| {
                let f = 1.0 / base.powf(2.0 * i as f32 / head_dim as f32);
                let factor = freq_factors
                    .and_then(|ff| ff.get(i))
                    .copied()
                    .unwrap_or(1.0);
                f / factor / scale
            })
            .collect();
        let n = inv_freq.len();
        let inv_freq = Tensor::from_vec(inv_freq, (1, n), device)?;
        let pos = Tensor::arange(0u32, len as u32, device)?
            .to_dtype(DType::F32)?
            .reshape((len, 1))?;
        let freqs = pos.matmul(&inv_freq)?;
        Ok(Rope {
            cos: freqs.cos()?,
            sin: freqs.sin()?,
            interleaved,
        })
    }

    /// Rotates `x` of shape (batch, heads, seq, head_dim) for positions `pos..pos+seq`.
    fn apply(&self, x: &Tensor, pos: usize) -> Result<Tensor> {
        let seq = x.dim(2)?;
        let cos = self.cos.narrow(0, pos, seq)?;
        let sin = self.sin.narrow(0, pos, seq)?;
        let x = x.contiguous()?;
        Ok(if self.interleaved {
            candle_nn::rotary_emb::rope_i(&x, &cos, &sin)?
        } else {
            candle_nn::rotary_emb::rope(&x, &cos, &sin)?
        })
    }
}

/// Keys and values of the positions seen so far: buffers of shape
/// (batch, kv_heads, capacity, head_dim) of which the first `len` positions are valid.
///
/// A step writes its new keys and values into the buffers in place and attention reads
/// a narrowed view, so a decode step costs O(new tokens) instead of the O(cache) copy of
/// concatenating the whole cache every step. Capacity doubles when full (amortized O(1)
/// per position) rather than reserving the whole context up front, which would cost
/// memory for contexts that are never used. Cutting the cache back only moves `len`.
/// Not `Clone`: a clone would share the buffers that `append` writes in place.
#[derive(Debug, Default)]
struct KvCache {
    buf: Option<(Tensor, Tensor)>,
    len: usize,
}

impl KvCache {
    fn len(&self) -> usize {
        self.len
    }

    fn capacity(&self) -> usize {
        self.buf
            .as_ref()
            .map(|(k, _)| k.dim(2).unwrap_or(0))
            .unwrap_or(0)
    }

    fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let seq = k.dim(2)?;
        let needed = self.len + seq;
        if needed > self.capacity() {
            let (b, heads, _, d) = k.dims4()?;
            let cap = needed.max(2 * self.capacity()).max(64);
            let nk = Tensor::zeros((b, heads, cap, d), k.dtype(), k.device())?;
            let nv = Tensor::zeros((b, heads, cap, d), v.dtype(), v.device())?;
            if let Some((pk, pv)) = &self.buf {
                if self.len > 0 {
                    nk.slice_set(&pk.narrow(2, 0, self.len)?.contiguous()?, 2, 0)?;
                    nv.slice_set(&pv.narrow(2, 0, self.len)?.contiguous()?, 2, 0)?;
                }
            }
            self.buf = Some((nk, nv));
        }
        let Some((kb, vb)) = &self.buf else {
            unreachable!("allocated above")
        };
        kb.slice_set(&k.contiguous()?, 2, self.len)?;
        vb.slice_set(&v.contiguous()?, 2, self.len)?;
        self.len = needed;
        Ok((kb.narrow(2, 0, needed)?, vb.narrow(2, 0, needed)?))
    }

    fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
}

/// A quantized weight kept both as a matmul and as the tensor it wraps, so projections
/// that read the same input can go through candle's fused kernel.
#[derive(Debug)]
struct QLinear {
    weight: Arc<QTensor>,
    mm: QMatMul,
}

impl QLinear {
    fn new(weight: QTensor) -> Result<Self> {
        let weight = Arc::new(weight);
        Ok(QLinear {
            mm: QMatMul::from_arc(weight.clone())?,
            weight,
        })
    }
}

/// Applies several projections to the same input `x`, in order. Projections whose weights
/// share a dtype go through `QTensor::gemv_fused_shared_lhs` together: one quantization of
/// `x` to Q8_K and one parallel region instead of one each (on x86 candle does this for
/// AVX512-VNNI and its repacked Q4_K/Q6_K/Q8_0 layouts); it gives the same numbers as
/// separate matmuls, as it runs the same per-tile kernel. Anything it declines runs as
/// ordinary matmuls.
fn project_all(ws: &[&QLinear], x: &Tensor) -> Result<Vec<Tensor>> {
    let x = x.contiguous()?;
    let mut out: Vec<Option<Tensor>> = vec![None; ws.len()];
    let mut done = vec![false; ws.len()];
    for i in 0..ws.len() {
        if done[i] {
            continue;
        }
        let group: Vec<usize> = (i..ws.len())
            .filter(|&j| !done[j] && ws[j].weight.dtype() == ws[i].weight.dtype())
            .collect();
        if group.len() > 1 {
            let ts: Vec<&QTensor> = group.iter().map(|&j| ws[j].weight.as_ref()).collect();
            if let Some(ys) = QTensor::gemv_fused_shared_lhs(&ts, &x)? {
                for (&j, y) in group.iter().zip(ys) {
                    out[j] = Some(y);
                    done[j] = true;
                }
                continue;
            }
        }
        out[i] = Some(ws[i].mm.forward(&x)?);
        done[i] = true;
    }
    Ok(out.into_iter().flatten().collect())
}

#[derive(Debug)]
struct Attention {
    wq: QLinear,
    wk: QLinear,
    wv: QLinear,
    wo: QMatMul,
    bq: Option<Tensor>,
    bk: Option<Tensor>,
    bv: Option<Tensor>,
    q_norm: Option<RmsNorm>,
    k_norm: Option<RmsNorm>,
    n_head: usize,
    n_kv_head: usize,
    head_dim: usize,
    scale: f64,
    rope: Rope,
    sliding_window: Option<usize>,
    cache: KvCache,
}

impl Attention {
    fn forward(&mut self, x: &Tensor, pos: usize) -> Result<Tensor> {
        let (b, seq, _) = x.dims3()?;
        let qkv = project_all(&[&self.wq, &self.wk, &self.wv], x)?;
        let shape = |y: &Tensor, bias: &Option<Tensor>, heads: usize| -> Result<Tensor> {
            let y = match bias {
                Some(bias) => y.broadcast_add(bias)?,
                None => y.clone(),
            };
            Ok(y.reshape((b, seq, heads, self.head_dim))?.transpose(1, 2)?)
        };
        let mut q = shape(&qkv[0], &self.bq, self.n_head)?;
        let mut k = shape(&qkv[1], &self.bk, self.n_kv_head)?;
        let v = shape(&qkv[2], &self.bv, self.n_kv_head)?.contiguous()?;
        if let (Some(qn), Some(kn)) = (&self.q_norm, &self.k_norm) {
            q = qn.forward(&q.contiguous()?)?;
            k = kn.forward(&k.contiguous()?)?;
        }
        let q = self.rope.apply(&q, pos)?;
        let k = self.rope.apply(&k, pos)?;
        let (k, v) = self.cache.append(&k, &v)?;
        let kv_len = k.dim(2)?;

        // Grouped-query attention without copying K/V n_rep times: fold the query heads
        // that share a KV head into the sequence axis, (b, kv, n_rep * seq, d).
        let n_rep = self.n_head / self.n_kv_head;
        let q = q.reshape((b, self.n_kv_head, n_rep * seq, self.head_dim))?;
        let att = (q.matmul(&k.t()?)? * self.scale)?;
        let att = match attention_mask(seq, pos, kv_len, self.sliding_window, x.device())? {
            Some(mask) => att
                .reshape((b, self.n_kv_head, n_rep, seq, kv_len))?
                .broadcast_add(&mask)?
                .reshape((b, self.n_kv_head, n_rep * seq, kv_len))?,
            None => att,
        };
        let att = candle_nn::ops::softmax_last_dim(&att)?;
        let y = att.matmul(&v)?; // (b, kv, n_rep * seq, d)
        let y = y
            .reshape((b, self.n_head, seq, self.head_dim))?
            .transpose(1, 2)?
            .reshape((b, seq, self.n_head * self.head_dim))?;
        Ok(self.wo.forward(&y)?)
    }
}

/// Additive mask (seq, kv_len): `-inf` where a query may not see a key. Queries sit at
/// positions `pos..pos+seq`, keys at `0..kv_len`. A key is hidden when it lies in the
/// future, or, on sliding-window layers, `window` or more positions back (llama.cpp's
/// `p1 - p0 >= n_swa`). Returns None when nothing is hidden.
fn attention_mask(
    seq: usize,
    pos: usize,
    kv_len: usize,
    window: Option<usize>,
    device: &Device,
) -> Result<Option<Tensor>> {
    let window = window.unwrap_or(usize::MAX);
    let hidden = |i: usize, j: usize| j > pos + i || (pos + i) - j.min(pos + i) >= window;
    if seq == 1 && kv_len <= window {
        return Ok(None);
    }
    let mask: Vec<f32> = (0..seq)
        .flat_map(|i| (0..kv_len).map(move |j| if hidden(i, j) { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Ok(Some(Tensor::from_vec(mask, (seq, kv_len), device)?))
}

#[derive(Debug)]
enum Activation {
    Silu,
    GeluTanh,
}

#[derive(Debug)]
struct Mlp {
    gate: QLinear,
    up: QLinear,
    down: QMatMul,
    act: Activation,
}

impl Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // project_all returns one tensor per weight, in order.
        let gate_up = project_all(&[&self.gate, &self.up], x)?;
        let (gate, up) = (&gate_up[0], &gate_up[1]);
        let gate = match self.act {
            Activation::Silu => candle_nn::ops::silu(gate)?,
            Activation::GeluTanh => gate.gelu()?,
        };
        Ok(self.down.forward(&(gate * up)?)?)
    }
}

#[derive(Debug)]
struct Block {
    attn_norm: RmsNorm,
    attn: Attention,
    post_attn_norm: Option<RmsNorm>,
    ffn_norm: RmsNorm,
    mlp: Mlp,
    post_ffn_norm: Option<RmsNorm>,
}

impl Block {
    fn forward(&mut self, x: &Tensor, pos: usize) -> Result<Tensor> {
        let mut h = self.attn.forward(&self.attn_norm.forward(x)?, pos)?;
        if let Some(norm) = &self.post_attn_norm {
            h = norm.forward(&h)?;
        }
        let x = (x + h)?;
        let mut h = self.mlp.forward(&self.ffn_norm.forward(&x)?)?;
        if let Some(norm) = &self.post_ffn_norm {
            h = norm.forward(&h)?;
        }
        Ok((x + h)?)
    }
}

/// A loaded GGUF decoder with its KV cache.
#[derive(Debug)]
pub struct Transformer {
    hparams: Hparams,
    embed: Arc<QTensor>,
    embed_scale: Option<f64>,
    blocks: Vec<Block>,
    norm: RmsNorm,
    output: QMatMul,
    device: Device,
}

/// Reads tensors from a GGUF file, naming the file and tensor in every error.
struct TensorReader<'a, R> {
    ct: &'a gguf_file::Content,
    reader: &'a mut R,
    path: &'a Path,
    device: &'a Device,
}

impl<R: Read + Seek> TensorReader<'_, R> {
    fn has(&self, name: &str) -> bool {
        self.ct.tensor_infos.contains_key(name)
    }

    fn qtensor(&mut self, name: &str) -> Result<QTensor> {
        if !self.has(name) {
            return Err(bad(self.path, format!("tensor `{name}` is missing")));
        }
        self.ct
            .tensor(self.reader, name, self.device)
            .map_err(|e| bad(self.path, format!("tensor `{name}`: {e}")))
    }

    fn qmatmul(&mut self, name: &str) -> Result<QMatMul> {
        Ok(QMatMul::from_qtensor(self.qtensor(name)?)?)
    }

    fn dense(&mut self, name: &str) -> Result<Tensor> {
        let t = self.qtensor(name)?;
        Ok(t.dequantize(self.device)?)
    }

    fn rms(&mut self, name: &str, eps: f64) -> Result<RmsNorm> {
        Ok(RmsNorm::from_qtensor(self.qtensor(name)?, eps)?)
    }

    fn opt_rms(&mut self, name: &str, eps: f64) -> Result<Option<RmsNorm>> {
        if self.has(name) {
            self.rms(name, eps).map(Some)
        } else {
            Ok(None)
        }
    }

    fn opt_dense(&mut self, name: &str) -> Result<Option<Tensor>> {
        if self.has(name) {
            self.dense(name).map(Some)
        } else {
            Ok(None)
        }
    }
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

impl Transformer {
    /// Loads the weights described by `ct` from `reader` (the same GGUF file).
    pub fn load<R: Read + Seek>(
        ct: &gguf_file::Content,
        reader: &mut R,
        path: &Path,
        device: &Device,
        max_context: usize,
    ) -> Result<Self> {
        let hp = Hparams::from_metadata(ct, path)?;
        let mut tr = TensorReader {
            ct,
            reader,
            path,
            device,
        };
        let embed = Arc::new(tr.qtensor("token_embd.weight")?);
        let output = if tr.has("output.weight") {
            tr.qmatmul("output.weight")?
        } else {
            // Tied embeddings: the output head is the embedding matrix, kept quantized.
            QMatMul::from_arc(embed.clone())?
        };
        let norm = tr.rms("output_norm.weight", hp.rms_eps)?;
        let rope_len = hp.context_length.min(max_context).max(1);
        let freq_factors = match tr.opt_dense("rope_freqs.weight")? {
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
            device,
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
                device,
            )?)
        } else {
            None
        };
        let (act, sandwich) = match hp.arch {
            Arch::Gemma3 => (Activation::GeluTanh, true),
            _ => (Activation::Silu, false),
        };
        let mut blocks = Vec::with_capacity(hp.n_layer);
        for i in 0..hp.n_layer {
            let p = format!("blk.{i}");
            let local = hp.is_local_layer(i);
            let rope = match (&local_rope, local) {
                (Some(r), true) => r.clone(),
                _ => global_rope.clone(),
            };
            let attn = Attention {
                wq: QLinear::new(tr.qtensor(&format!("{p}.attn_q.weight"))?)?,
                wk: QLinear::new(tr.qtensor(&format!("{p}.attn_k.weight"))?)?,
                wv: QLinear::new(tr.qtensor(&format!("{p}.attn_v.weight"))?)?,
                wo: tr.qmatmul(&format!("{p}.attn_output.weight"))?,
                bq: tr.opt_dense(&format!("{p}.attn_q.bias"))?,
                bk: tr.opt_dense(&format!("{p}.attn_k.bias"))?,
                bv: tr.opt_dense(&format!("{p}.attn_v.bias"))?,
                q_norm: tr.opt_rms(&format!("{p}.attn_q_norm.weight"), hp.rms_eps)?,
                k_norm: tr.opt_rms(&format!("{p}.attn_k_norm.weight"), hp.rms_eps)?,
                n_head: hp.n_head,
                n_kv_head: hp.n_kv_head,
                head_dim: hp.head_dim,
                scale: 1.0 / (hp.head_dim as f64).sqrt(),
                rope,
                sliding_window: if local { hp.sliding_window } else { None },
                cache: KvCache::default(),
            };
            let mlp = Mlp {
                gate: QLinear::new(tr.qtensor(&format!("{p}.ffn_gate.weight"))?)?,
                up: QLinear::new(tr.qtensor(&format!("{p}.ffn_up.weight"))?)?,
                down: tr.qmatmul(&format!("{p}.ffn_down.weight"))?,
                act: match act {
                    Activation::Silu => Activation::Silu,
                    Activation::GeluTanh => Activation::GeluTanh,
                },
            };
            blocks.push(Block {
                attn_norm: tr.rms(&format!("{p}.attn_norm.weight"), hp.rms_eps)?,
                attn,
                post_attn_norm: if sandwich {
                    Some(tr.rms(&format!("{p}.post_attention_norm.weight"), hp.rms_eps)?)
                } else {
                    None
                },
                ffn_norm: tr.rms(&format!("{p}.ffn_norm.weight"), hp.rms_eps)?,
                mlp,
                post_ffn_norm: if sandwich {
                    Some(tr.rms(&format!("{p}.post_ffw_norm.weight"), hp.rms_eps)?)
                } else {
                    None
                },
            });
        }
        let embed_scale = (hp.arch == Arch::Gemma3).then(|| (hp.n_embd as f64).sqrt());
        Ok(Transformer {
            hparams: hp,
            embed,
            embed_scale,
            blocks,
            norm,
            output,
            device: device.clone(),
        })
    }

    /// Loads a GGUF file from disk.
    pub fn from_path(path: &Path, device: &Device, max_context: usize) -> Result<Self> {
        let (mut file, ct) = read_header(path)?;
        Self::load(&ct, &mut file, path, device, max_context)
    }

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

    /// How many positions the KV cache holds.
    pub fn cache_len(&self) -> usize {
        self.blocks.first().map(|b| b.attn.cache.len()).unwrap_or(0)
    }

    /// Cuts the KV cache back to its first `len` positions.
    pub fn truncate_cache(&mut self, len: usize) -> Result<()> {
        for b in &mut self.blocks {
            b.attn.cache.truncate(len);
        }
        Ok(())
    }

    /// Feeds `tokens` at positions `cache_len()..` and returns the logits (vocab,) of the
    /// last one.
    pub fn forward(&mut self, tokens: &[u32]) -> Result<Tensor> {
        let pos = self.cache_len();
        if tokens.is_empty() {
            return Err(Error::Tokenizer("no tokens to feed the model".into()));
        }
        if pos + tokens.len() > self.max_context() {
            return Err(Error::ContextOverflow {
                needed: pos + tokens.len(),
                max: self.max_context(),
            });
        }
        let ids = Tensor::new(tokens, &self.device)?.unsqueeze(0)?;
        let mut x = self.embed.embedding(&ids)?;
        if let Some(scale) = self.embed_scale {
            x = (x * scale)?;
        }
        for block in &mut self.blocks {
            x = block.forward(&x, pos)?;
        }
        let last = x.narrow(1, tokens.len() - 1, 1)?;
        let last = self.norm.forward(&last)?;
        let logits = self.output.forward(&last)?;
        Ok(logits.flatten_all()?.to_dtype(DType::F32)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causal_mask_hides_the_future() {
        let m = attention_mask(2, 3, 5, None, &Device::Cpu)
            .unwrap()
            .unwrap();
        let m: Vec<Vec<f32>> = m.to_vec2().unwrap();
        assert_eq!(m[0], vec![0.0, 0.0, 0.0, 0.0, f32::NEG_INFINITY]);
        assert_eq!(m[1], vec![0.0; 5]);
    }

    #[test]
    fn sliding_window_hides_the_far_past() {
        // Query at position 4 with window 2 sees keys 3 and 4 only.
        let m = attention_mask(1, 4, 5, Some(2), &Device::Cpu)
            .unwrap()
            .unwrap();
        let m: Vec<Vec<f32>> = m.to_vec2().unwrap();
        let inf = f32::NEG_INFINITY;
        assert_eq!(m[0], vec![inf, inf, inf, 0.0, 0.0]);
        assert!(attention_mask(1, 4, 5, None, &Device::Cpu)
            .unwrap()
            .is_none());
    }
}
