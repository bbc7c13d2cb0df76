//! Projections: a weight of Q4_K, Q6_K, Q8_0 or Q5_0 goes through tarjama's panel kernels
//! ([`super::q4k`], [`super::q6k`], [`super::block32`], on every CPU with the widest tier it
//! has, [`tarjama_kernels::cpu`]); any other type through candle. Projections of the same input share
//! one quantization of it and one parallel region.

use std::sync::Arc;

use candle_core::quantized::k_quants::{self, GgmlType};
use candle_core::quantized::{GgmlDType, QMatMul, QStorage, QTensor};
use candle_core::{DType, Module, Tensor};

use super::block32::Block32Matrix;
use super::panel::{self, PanelMatrix, Panels, QuantizedRows, SendPtr};
use super::q4k::{Q4kMatrix, Q8k};
use super::q6k::Q6kMatrix;
use crate::{Error, Result};
use tarjama_kernels::simd::Lanes;

/// A quantized weight kept both as a matmul and as the tensor it wraps, so projections
/// that read the same input can go through candle's fused kernel.
#[derive(Debug)]
pub(super) struct QLinear {
    pub(super) weight: Arc<QTensor>,
    pub(super) mm: QMatMul,
    /// Zero columns appended to the weight (see [`pad_q8_0`]); the input gets as many
    /// zeros before the product.
    pub(super) pad: usize,
    /// Whether one-row products go through [`matvec`] (not for padded weights, whose
    /// input needs the zeros first).
    pub(super) gemv: bool,
}

impl QLinear {
    /// `pad`: pad rows for candle's packed kernels where that pays ([`pad_q8_0`]).
    pub(super) fn new(weight: QTensor, pad: bool) -> Result<Self> {
        let (weight, pad) = if pad { pad_q8_0(weight)? } else { (weight, 0) };
        Self::from_arc(Arc::new(weight), pad)
    }

    pub(super) fn from_arc(weight: Arc<QTensor>, pad: usize) -> Result<Self> {
        let gemv = pad == 0;
        Ok(QLinear {
            mm: QMatMul::from_arc(weight.clone())?,
            weight,
            pad,
            gemv,
        })
    }

    /// `x` widened with the zero columns this weight expects.
    pub(super) fn input(&self, x: &Tensor) -> Result<Tensor> {
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
/// `cargo run --release -p tarjama-gguf --example kernel_bench -- --gguf FILE output.weight`.
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

pub(super) fn gemv<T: GgmlType + Sync>(w: &QTensor, x: &Tensor) -> Result<Tensor> {
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
    tarjama_kernels::runtime::parallel_chunks(n, 64, |rows| {
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
pub(super) fn panel_kernels() -> bool {
    std::env::var("TARJAMA_CANDLE_KERNELS").as_deref() != Ok("1")
}

/// candle's fast x86 path for Q8_0 weights (repacked tiles multiplied with VNNI dot
/// products, about 3x its plain Q8_0 kernel in prefill) needs rows of a multiple of 256
/// values: it quantizes the input in 256-value blocks. Qwen2.5 0.5B's rows are 896 long.
/// Appending zero blocks to every row (and zeros to the input) changes no product, so a
/// Q8_0 weight whose rows fall short is padded up to the next multiple of 256 where that
/// path exists (AVX512-VNNI or AVX-VNNI); elsewhere the padding would only cost time.
/// Returns the weight and the number of columns added.
pub(super) fn pad_q8_0(w: QTensor) -> Result<(QTensor, usize)> {
    const BLOCK: usize = 32; // values per Q8_0 block
    const BLOCK_BYTES: usize = 34; // f16 scale + 32 x i8
    let Ok((n, k)) = w.shape().dims2() else {
        return Ok((w, 0));
    };
    if w.dtype() != GgmlDType::Q8_0
        || !w.device().is_cpu()
        || k % 256 == 0
        || n % 16 != 0
        || !tarjama_kernels::cpu::candle_uses_vnni()
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

/// A projection weight: Q4_K, Q6_K, Q8_0 and Q5_0 through our own kernels where the CPU
/// runs them ([`q4k`], [`q6k`], [`block32`]), anything else through candle.
#[derive(Debug)]
pub(super) enum Linear {
    Candle(QLinear),
    KQuant(KQuant),
    Block32(Arc<Block32Matrix>),
}

/// A Q4_K or Q6_K matrix. Both take activations quantized as Q8_K, so projections of the
/// same input in either type share one quantization and one parallel region.
#[derive(Debug)]
pub(super) enum KQuant {
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
    pub(super) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(project_all(&[self], x)?.remove(0))
    }
}

/// `x W^T` for each matrix of `ws` (all of `x`'s width), `x` quantized once.
pub(super) fn panel_products<M: PanelMatrix>(ws: &[&M], x: &Tensor) -> Result<Vec<Tensor>> {
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
pub(super) fn run_panels<'a, M: PanelMatrix + 'a>(
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
pub(super) fn project_all(ws: &[&Linear], x: &Tensor) -> Result<Vec<Tensor>> {
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
