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

use candle_core::quantized::k_quants::{self, GgmlType};
use candle_core::quantized::{gguf_file, GgmlDType, QMatMul, QStorage, QTensor};
use candle_core::{DType, Device, Module, Tensor};
use candle_transformers::quantized_nn::RmsNorm;

use super::block32::{Block32Matrix, Kind};
use super::kv::{self, SeqCache};
use super::panel::{self, PanelMatrix, Panels, QuantizedRows, SendPtr};
use super::q4k::{self, Q4kMatrix, Q8k};
use super::q6k::{self, Q6kMatrix};
use crate::simd::Lanes;
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

    /// Rotates `x` of shape (1, heads, rows, head_dim), row `i` for position
    /// `positions[i]`.
    fn apply(&self, x: &Tensor, positions: &Tensor) -> Result<Tensor> {
        let cos = self.cos.index_select(positions, 0)?;
        let sin = self.sin.index_select(positions, 0)?;
        let x = x.contiguous()?;
        Ok(if self.interleaved {
            candle_nn::rotary_emb::rope_i(&x, &cos, &sin)?
        } else {
            candle_nn::rotary_emb::rope(&x, &cos, &sin)?
        })
    }
}

/// A quantized weight kept both as a matmul and as the tensor it wraps, so projections
/// that read the same input can go through candle's fused kernel.
#[derive(Debug)]
struct QLinear {
    weight: Arc<QTensor>,
    mm: QMatMul,
    /// Zero columns appended to the weight (see [`pad_q8_0`]); the input gets as many
    /// zeros before the product.
    pad: usize,
    /// Whether one-row products go through [`matvec`] (not for padded weights, whose
    /// input needs the zeros first).
    gemv: bool,
}

impl QLinear {
    /// `pad`: pad rows for candle's packed kernels where that pays ([`pad_q8_0`]).
    fn new(weight: QTensor, pad: bool) -> Result<Self> {
        let (weight, pad) = if pad { pad_q8_0(weight)? } else { (weight, 0) };
        Self::from_arc(Arc::new(weight), pad)
    }

    fn from_arc(weight: Arc<QTensor>, pad: usize) -> Result<Self> {
        let gemv = pad == 0;
        Ok(QLinear {
            mm: QMatMul::from_arc(weight.clone())?,
            weight,
            pad,
            gemv,
        })
    }

    /// `x` widened with the zero columns this weight expects.
    fn input(&self, x: &Tensor) -> Result<Tensor> {
        if self.pad == 0 {
            return Ok(x.clone());
        }
        Ok(x.pad_with_zeros(candle_core::D::Minus1, 0, self.pad)?)
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if self.gemv {
            if let Some(y) = matvec(&self.weight, x)? {
                return Ok(y);
            }
        }
        Ok(self.mm.forward(&self.input(x)?)?)
    }
}

/// One input row `x` times the quantized matrix `w` (`x W^T`), over the matrix's own
/// blocks, its rows spread over candle's thread pool, with candle's own `vec_dot` (the same
/// arithmetic as candle's matrix-vector product, so the same result). `None` when `x` is
/// not one row or `w` is not Q6_K or Q8_0: use candle's product then.
///
/// candle's matrix-vector product streamed Qwen2.5 1.5B's output projection (Q6_K,
/// 151936 x 1536, 191 MB) at a third of the memory bandwidth: 15.2 ms a token there,
/// 4.7 ms here, and that projection alone was close to a third of a decoding step.
/// Unpadded Q8_0 matrices (tied output heads) take the same path. Measured with
/// `cargo run --release -p tarjama-models --example kernel_bench -- --gguf FILE output.weight`.
pub fn matvec(w: &QTensor, x: &Tensor) -> Result<Option<Tensor>> {
    let Ok((_, k)) = w.shape().dims2() else {
        return Ok(None);
    };
    if x.elem_count() != k || !w.device().is_cpu() {
        return Ok(None);
    }
    match w.dtype() {
        GgmlDType::Q6K => gemv::<k_quants::BlockQ6K>(w, x).map(Some),
        GgmlDType::Q8_0 => gemv::<k_quants::BlockQ8_0>(w, x).map(Some),
        _ => Ok(None),
    }
}

fn gemv<T: GgmlType + Sync>(w: &QTensor, x: &Tensor) -> Result<Tensor> {
    let (n, k) = w.shape().dims2()?;
    let data = w.data()?;
    let per_row = k / T::BLCK_SIZE;
    if k % T::BLCK_SIZE != 0
        || data.len() != n * per_row * std::mem::size_of::<T>()
        || data.as_ptr().align_offset(std::mem::align_of::<T>()) != 0
    {
        return Err(Error::Candle(candle_core::Error::Msg(format!(
            "{:?} matrix of {n} x {k} in {} bytes",
            w.dtype(),
            data.len()
        ))));
    }
    // SAFETY: size and alignment were just checked, and these are the bytes candle
    // stores its blocks of type `T` in (plain-old-data structs).
    let blocks: &[T] = unsafe { std::slice::from_raw_parts(data.as_ptr().cast(), n * per_row) };
    let xs = x.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
    let mut q = vec![T::VecDotType::zeros(); k / T::VecDotType::BLCK_SIZE];
    T::VecDotType::from_float(&xs, &mut q);
    let mut y = vec![0f32; n];
    let out = SendPtr(y.as_mut_ptr());
    crate::runtime::parallel_chunks(n, 64, |rows| {
        let out = &out;
        for r in rows {
            let v = T::vec_dot(k, &blocks[r * per_row..][..per_row], &q);
            // SAFETY: each row is written once, inside `y`, which outlives the loop.
            unsafe { *out.0.add(r) = v };
        }
    });
    let mut shape = x.dims().to_vec();
    if let Some(last) = shape.last_mut() {
        *last = n;
    }
    Ok(Tensor::from_vec(y, shape, x.device())?)
}

/// Whether Q4_K, Q6_K, Q8_0 and Q5_0 weights can go through our kernels ([`q4k`], [`q6k`],
/// [`block32`]):
/// where the CPU runs them, unless `TARJAMA_CANDLE_KERNELS=1` asks for candle's (to
/// compare the two; the same as [`WeightLayout::CandleFastest`]).
fn panel_kernels() -> bool {
    std::env::var("TARJAMA_CANDLE_KERNELS").as_deref() != Ok("1")
}

/// candle's fast x86 path for Q8_0 weights (repacked tiles multiplied with VNNI dot
/// products, about 3x its plain Q8_0 kernel in prefill) needs rows of a multiple of 256
/// values: it quantizes the input in 256-value blocks. Qwen2.5 0.5B's rows are 896 long.
/// Appending zero blocks to every row (and zeros to the input) changes no product, so a
/// Q8_0 weight whose rows fall short is padded up to the next multiple of 256 where that
/// path exists (AVX512-VNNI or AVX-VNNI); elsewhere the padding would only cost time.
/// Returns the weight and the number of columns added.
fn pad_q8_0(w: QTensor) -> Result<(QTensor, usize)> {
    const BLOCK: usize = 32; // values per Q8_0 block
    const BLOCK_BYTES: usize = 34; // f16 scale + 32 x i8
    let Ok((n, k)) = w.shape().dims2() else {
        return Ok((w, 0));
    };
    if w.dtype() != GgmlDType::Q8_0
        || !w.device().is_cpu()
        || k % 256 == 0
        || n % 16 != 0
        || !has_vnni()
    {
        return Ok((w, 0));
    }
    let k_pad = k.next_multiple_of(256);
    let data = w.data()?;
    let (row, row_pad) = (k / BLOCK * BLOCK_BYTES, k_pad / BLOCK * BLOCK_BYTES);
    let mut out = vec![0u8; n * row_pad];
    for (src, dst) in data.chunks_exact(row).zip(out.chunks_exact_mut(row_pad)) {
        dst[..row].copy_from_slice(src);
    }
    let storage = QStorage::from_data(std::borrow::Cow::Owned(out), &w.device(), GgmlDType::Q8_0)?;
    Ok((QTensor::new(storage, (n, k_pad))?, k_pad - k))
}

/// Whether candle will use its VNNI kernels here. It honours `MISTRALRS_FORCE_AVX2=1`
/// (its switch to test the AVX2 path), so this does too.
#[cfg(target_arch = "x86_64")]
fn has_vnni() -> bool {
    if std::env::var("MISTRALRS_FORCE_AVX2").as_deref() == Ok("1") {
        return false;
    }
    std::arch::is_x86_feature_detected!("avx512vnni")
        && std::arch::is_x86_feature_detected!("avx512f")
        || std::arch::is_x86_feature_detected!("avxvnni")
}

#[cfg(not(target_arch = "x86_64"))]
fn has_vnni() -> bool {
    false
}

/// A projection weight: Q4_K, Q6_K, Q8_0 and Q5_0 through our own kernels where the CPU
/// runs them ([`q4k`], [`q6k`], [`block32`]), anything else through candle.
#[derive(Debug)]
enum Linear {
    Candle(QLinear),
    KQuant(KQuant),
    Block32(Arc<Block32Matrix>),
}

/// A Q4_K or Q6_K matrix. Both take activations quantized as Q8_K, so projections of the
/// same input in either type share one quantization and one parallel region.
#[derive(Debug)]
enum KQuant {
    Q4(Q4kMatrix),
    Q6(Q6kMatrix),
}

impl PanelMatrix for KQuant {
    type Input = Q8k;

    fn panels(&self) -> &Panels {
        match self {
            KQuant::Q4(m) => m.panels(),
            KQuant::Q6(m) => m.panels(),
        }
    }

    #[inline(always)]
    unsafe fn kernel<L: Lanes, const R: usize>(
        &self,
        l: L,
        p: usize,
        x: &Q8k,
        m0: usize,
        out: *mut f32,
        stride: usize,
        valid: usize,
    ) {
        // SAFETY: the caller's guarantees are the ones the matrices need.
        unsafe {
            match self {
                KQuant::Q4(m) => m.kernel::<L, R>(l, p, x, m0, out, stride, valid),
                KQuant::Q6(m) => m.kernel::<L, R>(l, p, x, m0, out, stride, valid),
            }
        }
    }
}

impl Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(project_all(&[self], x)?.remove(0))
    }
}

/// `x W^T` for each matrix of `ws` (all of `x`'s width), `x` quantized once.
fn panel_products<M: PanelMatrix>(ws: &[&M], x: &Tensor) -> Result<Vec<Tensor>> {
    let dims = x.dims().to_vec();
    let cols = dims.last().copied().unwrap_or(0);
    let rows = x.elem_count() / cols.max(1);
    let xs = x.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
    let q = M::Input::quantize(&xs, rows, cols);
    panel::matmul_many(ws, &q)
        .into_iter()
        .zip(ws)
        .map(|(y, w)| {
            let mut shape = dims.clone();
            if let Some(last) = shape.last_mut() {
                *last = w.rows();
            }
            Ok(Tensor::from_vec(y, shape, x.device())?)
        })
        .collect()
}

/// The products of the weights of `ws` that `pick` takes (one kernel's), together, into
/// their places in `out`.
fn run_panels<'a, M: PanelMatrix + 'a>(
    ws: &[&'a Linear],
    x: &Tensor,
    out: &mut [Option<Tensor>],
    pick: impl Fn(&'a Linear) -> Option<&'a M>,
) -> Result<()> {
    let (places, mats): (Vec<usize>, Vec<&M>) = ws
        .iter()
        .enumerate()
        .filter_map(|(i, w)| pick(w).map(|m| (i, m)))
        .unzip();
    if !mats.is_empty() {
        for (i, y) in places.into_iter().zip(panel_products(&mats, x)?) {
            out[i] = Some(y);
        }
    }
    Ok(())
}

/// Applies several projections to the same input `x`, in order. Matrices of one of our
/// kernels share one quantization of `x` and one parallel region. Of the others, those
/// whose weights share a dtype go through `QTensor::gemv_fused_shared_lhs` together: one
/// quantization of `x` to Q8_K and one parallel region instead of one each (on x86 candle
/// does this for AVX512-VNNI and its repacked Q4_K/Q6_K/Q8_0 layouts); it gives the same
/// numbers as separate matmuls, as it runs the same per-tile kernel. Anything it declines
/// runs as ordinary matmuls.
fn project_all(ws: &[&Linear], x: &Tensor) -> Result<Vec<Tensor>> {
    let x = x.contiguous()?;
    let mut out: Vec<Option<Tensor>> = vec![None; ws.len()];
    run_panels(ws, &x, &mut out, |w| match w {
        Linear::KQuant(m) => Some(m),
        _ => None,
    })?;
    run_panels(ws, &x, &mut out, |w| match w {
        Linear::Block32(m) => Some(m.as_ref()),
        _ => None,
    })?;
    let candle = |i: usize| match ws[i] {
        Linear::Candle(lin) => Some(lin),
        _ => None,
    };
    for i in 0..ws.len() {
        let Some(first) = candle(i).filter(|_| out[i].is_none()) else {
            continue;
        };
        let group: Vec<(usize, &QLinear)> = (i..ws.len())
            .filter_map(|j| candle(j).filter(|_| out[j].is_none()).map(|lin| (j, lin)))
            .filter(|(_, lin)| lin.weight.dtype() == first.weight.dtype() && lin.pad == first.pad)
            .collect();
        if group.len() > 1 {
            let ts: Vec<&QTensor> = group.iter().map(|(_, lin)| lin.weight.as_ref()).collect();
            if let Some(ys) = QTensor::gemv_fused_shared_lhs(&ts, &first.input(&x)?)? {
                for (&(j, _), y) in group.iter().zip(ys) {
                    out[j] = Some(y);
                }
                continue;
            }
        }
        out[i] = Some(first.forward(&x)?);
    }
    Ok(out.into_iter().flatten().collect())
}

#[derive(Debug)]
struct Attention {
    wq: Linear,
    wk: Linear,
    wv: Linear,
    wo: Linear,
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
    /// [`WeightLayout::AsStored`]: attention through tensor ops, as candle's models do it,
    /// to compare with them number for number (quantized activations amplify the last
    /// bits of a different summation order: 1e-5 relative on a decoding step's attention
    /// moves Qwen2.5 0.5B's logits by 0.3).
    as_stored: bool,
}

impl Attention {
    /// Attention of a batch's rows (`x`: (1, rows, hidden)), each sequence's rows over
    /// its own cache, which gains their keys and values in `layer`.
    fn forward(
        &self,
        x: &Tensor,
        layer: usize,
        steps: &mut [Step<'_>],
        segs: &[Segment],
        positions: &Tensor,
    ) -> Result<Tensor> {
        let rows = x.dim(1)?;
        let (heads, kv_heads, d) = (self.n_head, self.n_kv_head, self.head_dim);
        let qkv = project_all(&[&self.wq, &self.wk, &self.wv], x)?;
        let shape = |y: &Tensor, bias: &Option<Tensor>, heads: usize| -> Result<Tensor> {
            let y = match bias {
                Some(bias) => y.broadcast_add(bias)?,
                None => y.clone(),
            };
            Ok(y.reshape((1, rows, heads, d))?)
        };
        let mut q = shape(&qkv[0], &self.bq, heads)?;
        let mut k = shape(&qkv[1], &self.bk, kv_heads)?;
        let v = shape(&qkv[2], &self.bv, kv_heads)?.contiguous()?;
        if let (Some(qn), Some(kn)) = (&self.q_norm, &self.k_norm) {
            q = qn.forward(&q.contiguous()?)?;
            k = kn.forward(&k.contiguous()?)?;
        }
        // Rotary embedding per row, at that row's own position: (1, heads, rows, d).
        let q = self.rope.apply(&q.transpose(1, 2)?, positions)?;
        let k = self.rope.apply(&k.transpose(1, 2)?, positions)?;
        let as_rows = |t: &Tensor| -> Result<Vec<f32>> {
            Ok(t.transpose(1, 2)?.flatten_all()?.to_vec1::<f32>()?)
        };
        let (kr, vr) = (as_rows(&k)?, v.flatten_all()?.to_vec1::<f32>()?);
        let kw = kv_heads * d;
        for (step, seg) in steps.iter_mut().zip(segs) {
            let span = seg.start * kw..(seg.start + seg.rows) * kw;
            step.cache.append(layer, &kr[span.clone()], &vr[span]);
        }
        if self.as_stored {
            let [step] = steps else {
                return Err(Error::Unsupported(
                    "the as-stored layout runs one sequence at a time".into(),
                ));
            };
            return self.tensor_attention(&q, step.cache, layer, segs[0].pos, x.device());
        }
        let qr = as_rows(&q)?;
        let qw = heads * d;
        let mut queries = Vec::with_capacity(rows);
        for (step, seg) in steps.iter().zip(segs) {
            for r in 0..seg.rows {
                let pos = seg.pos + r;
                // Every earlier position, or on sliding-window layers the last `window`
                // (see `attention_mask`).
                let from = match self.sliding_window {
                    Some(window) => (pos + 1).saturating_sub(window),
                    None => 0,
                };
                queries.push(kv::Query {
                    q: &qr[(seg.start + r) * qw..][..qw],
                    cache: &*step.cache,
                    from,
                    to: pos + 1,
                });
            }
        }
        let y = kv::attend(&queries, layer, heads, kv_heads, d, self.scale as f32);
        self.wo
            .forward(&Tensor::from_vec(y, (1, rows, qw), x.device())?)
    }

    /// Attention through tensor ops, as candle's models compute it (one sequence; `q`:
    /// (1, heads, seq, d) at positions `pos..`).
    fn tensor_attention(
        &self,
        q: &Tensor,
        cache: &SeqCache,
        layer: usize,
        pos: usize,
        device: &Device,
    ) -> Result<Tensor> {
        let (b, _, seq, _) = q.dims4()?;
        let (k, v) = cache.tensors(layer, self.n_kv_head, self.head_dim, device)?;
        let kv_len = k.dim(2)?;
        // Grouped-query attention without copying K/V n_rep times: fold the query heads
        // that share a KV head into the sequence axis, (b, kv, n_rep * seq, d).
        let n_rep = self.n_head / self.n_kv_head;
        let q = q
            .contiguous()?
            .reshape((b, self.n_kv_head, n_rep * seq, self.head_dim))?;
        let att = (q.matmul(&k.t()?)? * self.scale)?;
        let att = match attention_mask(seq, pos, kv_len, self.sliding_window, device)? {
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
        self.wo.forward(&y)
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
    gate: Linear,
    up: Linear,
    down: Linear,
    act: Activation,
    /// [`WeightLayout::AsStored`]: the activation through candle's ops (see
    /// `Attention::as_stored`).
    as_stored: bool,
}

impl Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // project_all returns one tensor per weight, in order.
        let gate_up = project_all(&[&self.gate, &self.up], x)?;
        let fuse = !self.as_stored;
        self.down
            .forward(&gated(&gate_up[0], &gate_up[1], &self.act, fuse)?)
    }
}

/// `act(gate) * up`. With `fuse`, on contiguous f32 CPU tensors, in one pass that
/// vectorizes (candle's SiLU calls libm's `expf` per value, a twentieth of Qwen2.5 1.5B's
/// prefill, then multiplies in a second pass; its GELU cost Gemma 3 a third of its
/// prefill); otherwise through candle's ops.
fn gated(gate: &Tensor, up: &Tensor, act: &Activation, fuse: bool) -> Result<Tensor> {
    use crate::numerics::exp_fast;
    use candle_core::{CpuStorage, Storage};
    let fused = if !fuse {
        None
    } else {
        let ((gs, gl), (us, ul)) = (gate.storage_and_layout(), up.storage_and_layout());
        match (&*gs, &*us, gl.contiguous_offsets(), ul.contiguous_offsets()) {
            (
                Storage::Cpu(CpuStorage::F32(g)),
                Storage::Cpu(CpuStorage::F32(u)),
                Some((g0, g1)),
                Some((u0, u1)),
            ) if gate.shape() == up.shape() => {
                let pairs = g[g0..g1].iter().zip(&u[u0..u1]);
                Some(match act {
                    // x * sigmoid(x)
                    Activation::Silu => {
                        pairs.map(|(&x, &u)| x / (1.0 + exp_fast(-x)) * u).collect()
                    }
                    // 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))), with
                    // tanh(y) = 1 - 2 / (exp(2y) + 1)
                    Activation::GeluTanh => pairs
                        .map(|(&x, &u)| {
                            let y = 0.797_884_6 * x * (1.0 + 0.044_715 * x * x);
                            let tanh = 1.0 - 2.0 / (exp_fast(2.0 * y) + 1.0);
                            0.5 * x * (1.0 + tanh) * u
                        })
                        .collect::<Vec<f32>>(),
                })
            }
            _ => None,
        }
    };
    Ok(match fused {
        Some(out) => Tensor::from_vec(out, gate.shape(), gate.device())?,
        None => {
            let gate = match act {
                Activation::Silu => candle_nn::ops::silu(gate)?,
                Activation::GeluTanh => gate.gelu()?,
            };
            (gate * up)?
        }
    })
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
    fn forward(
        &self,
        x: &Tensor,
        layer: usize,
        steps: &mut [Step<'_>],
        segs: &[Segment],
        positions: &Tensor,
    ) -> Result<Tensor> {
        let h = self.attn_norm.forward(x)?;
        let mut h = self.attn.forward(&h, layer, steps, segs, positions)?;
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
    embed: Embedding,
    embed_scale: Option<f64>,
    blocks: Vec<Block>,
    norm: RmsNorm,
    output: Linear,
    device: Device,
    /// The sequence of [`Transformer::forward`].
    cache: SeqCache,
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
struct Segment {
    /// Its first row.
    start: usize,
    rows: usize,
    /// The position of its first row.
    pos: usize,
}

/// The token embedding matrix, kept quantized: as candle's tensor, or as the output
/// head's panels when the two are tied and in one of our kernels' layouts (one copy for
/// both).
#[derive(Debug)]
enum Embedding {
    Candle(Arc<QTensor>),
    Panels(Arc<Block32Matrix>),
}

impl Embedding {
    /// The embeddings of `tokens`, `(1, tokens, hidden)`.
    fn lookup(&self, tokens: &[u32], device: &Device) -> Result<Tensor> {
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

/// Reads tensors from a GGUF file, naming the file and tensor in every error.
struct TensorReader<'a, R> {
    ct: &'a gguf_file::Content,
    reader: &'a mut R,
    path: &'a Path,
    device: &'a Device,
    layout: WeightLayout,
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

    /// A matrix that multiplies activations through candle, in the type candle multiplies
    /// fastest (Q5_0 as Q8_0 on the CPU, see [`q5_0_as_q8_0`]).
    fn weight(&mut self, name: &str) -> Result<QTensor> {
        let t = self.qtensor(name)?;
        self.for_candle(t, name)
    }

    /// [`TensorReader::weight`] for a tensor already read.
    fn for_candle(&self, t: QTensor, name: &str) -> Result<QTensor> {
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
    fn linear(&mut self, name: &str) -> Result<Linear> {
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
    fn panels(&mut self, name: &str) -> Result<Option<Linear>> {
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

/// Rewrites a Q5_0 tensor as Q8_0, exactly: both store 32 weights per block with one f16
/// scale, Q5_0 as 5-bit integers offset by 16, Q8_0 as 8-bit integers, so every weight
/// `d * (q - 16)` becomes `d * q'` with `q' = q - 16` and the same `d`. The point is speed:
/// candle's CPU dot product for Q5_0 is scalar, its Q8_0 one uses SIMD, and Q4_K_M files
/// store in Q5_0 every matrix whose rows are not a multiple of 256 (most of Qwen2.5
/// 0.5B's). Both dot with activations quantized to Q8_0, so the products are the same
/// integers; only the order of the float sums changes. Costs 34/22 of those tensors'
/// memory.
fn q5_0_as_q8_0(t: &QTensor) -> candle_core::Result<QTensor> {
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
        let (embed, output) = if tr.has("output.weight") {
            let output = match tr.panels("output.weight")? {
                Some(lin) => lin,
                // Not padded nor packed: one-row products go through `matvec`.
                None => Linear::Candle(QLinear::new(tr.weight("output.weight")?, false)?),
            };
            let embed = Embedding::Candle(Arc::new(tr.qtensor("token_embd.weight")?));
            (embed, output)
        } else {
            // Tied embeddings: the output head is the embedding matrix, kept quantized once
            // (in panels where we can read rows back from them: Q8_0 and Q5_0).
            let rows_readable = matches!(
                tr.ct
                    .tensor_infos
                    .get("token_embd.weight")
                    .map(|i| i.ggml_dtype),
                Some(GgmlDType::Q8_0 | GgmlDType::Q5_0)
            );
            let panels = if rows_readable {
                tr.panels("token_embd.weight")?
            } else {
                None
            };
            match panels {
                Some(Linear::Block32(m)) => (Embedding::Panels(m.clone()), Linear::Block32(m)),
                _ => {
                    let embed = Arc::new(tr.qtensor("token_embd.weight")?);
                    let head = QLinear::from_arc(embed.clone(), 0)?;
                    (Embedding::Candle(embed), Linear::Candle(head))
                }
            }
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
                wq: tr.linear(&format!("{p}.attn_q.weight"))?,
                wk: tr.linear(&format!("{p}.attn_k.weight"))?,
                wv: tr.linear(&format!("{p}.attn_v.weight"))?,
                wo: tr.linear(&format!("{p}.attn_output.weight"))?,
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
                as_stored: layout == WeightLayout::AsStored,
            };
            let mlp = Mlp {
                gate: tr.linear(&format!("{p}.ffn_gate.weight"))?,
                up: tr.linear(&format!("{p}.ffn_up.weight"))?,
                down: tr.linear(&format!("{p}.ffn_down.weight"))?,
                act: match act {
                    Activation::Silu => Activation::Silu,
                    Activation::GeluTanh => Activation::GeluTanh,
                },
                as_stored: layout == WeightLayout::AsStored,
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
        let (hp_layers, hp_width) = (hp.n_layer, hp.n_kv_head * hp.head_dim);
        Ok(Transformer {
            hparams: hp,
            embed,
            embed_scale,
            blocks,
            norm,
            output,
            device: device.clone(),
            cache: SeqCache::new(hp_layers, hp_width),
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
            self.hparams.n_kv_head * self.hparams.head_dim,
        )
    }

    /// Feeds `tokens` at positions `cache_len()..` and returns the logits (vocab,) of the
    /// last one.
    pub fn forward(&mut self, tokens: &[u32]) -> Result<Tensor> {
        let mut cache = std::mem::replace(&mut self.cache, SeqCache::new(0, 0));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gated_activations_match_candle() {
        let dev = Device::Cpu;
        let xs: Vec<f32> = (0..4000).map(|i| (i as f32 - 2000.0) / 97.0).collect();
        let us: Vec<f32> = (0..4000).map(|i| (i as f32 * 0.37).sin()).collect();
        let (g, u) = (
            Tensor::from_vec(xs, (2, 2000), &dev).unwrap(),
            Tensor::from_vec(us, (2, 2000), &dev).unwrap(),
        );
        for act in [Activation::Silu, Activation::GeluTanh] {
            let want = match act {
                Activation::Silu => candle_nn::ops::silu(&g).unwrap(),
                Activation::GeluTanh => g.gelu().unwrap(),
            };
            let want: Vec<f32> = (want * &u)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let got: Vec<f32> = gated(&g, &u, &act, true)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            for (a, b) in got.iter().zip(&want) {
                assert!(
                    (a - b).abs() <= 2e-6 * b.abs().max(1.0),
                    "{act:?}: {a} vs {b}"
                );
            }
        }
        // Not contiguous: candle's ops.
        let t = g.t().unwrap();
        let a = gated(&t, &t, &Activation::Silu, true).unwrap();
        let b = (candle_nn::ops::silu(&t).unwrap() * &t).unwrap();
        assert_eq!(a.to_vec2::<f32>().unwrap(), b.to_vec2::<f32>().unwrap());
    }

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
