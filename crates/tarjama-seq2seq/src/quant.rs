//! Linear projections, in f32 or with int8 weights: every linear layer of the model goes
//! through [`Proj`], so quantizing is a load-time switch. Int8 runs on our VNNI kernel
//! ([`super::int8`]) where the CPU has AVX-512 VNNI, and on candle's `Q8_0` otherwise.

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;

use super::int8::{self, Int8Matrix};
use super::values::with_values;

/// A linear layer `x W^T + b`, with f32, int8 or Q8_0 weights.
#[derive(Debug, Clone)]
pub enum Proj {
    /// Full-precision weights, stored transposed (`in x out`, contiguous): `gemm` then
    /// streams the matrix as it lies instead of repacking a transposed view at every call,
    /// which made each projection about 1.4x slower (the vocabulary projection of a beam
    /// step: 31 -> 22 ms at batch 128; `examples/kernel_bench.rs`).
    F32 {
        /// `W^T`, `(in, out)`.
        weight_t: Tensor,
        /// The bias.
        bias: Option<Tensor>,
    },
    /// Weights quantized to i8 per output row, activations per input row, products in
    /// i32 on AVX-512 VNNI: a beam step of an opus-mt-shaped model spent 60% of its time
    /// in candle's `Q8_0` matmuls (which also requantize every input into 256-wide
    /// blocks); this kernel is 1.2-2.8x faster (vocabulary projection at 128 x 512 x 62k:
    /// 16.1 -> 5.9 ms; `examples/kernel_bench.rs`).
    I8 {
        /// The packed matrix.
        weight: Int8Matrix,
        /// The bias.
        bias: Option<Vec<f32>>,
    },
    /// Weights quantized to 8 bits in blocks of 32 with one f16 scale each (`Q8_0`), for
    /// CPUs without AVX-512 VNNI.
    Q8 {
        /// The quantized matrix.
        weight: QMatMul,
        /// The bias, kept in f32.
        bias: Option<Tensor>,
    },
}

impl Proj {
    /// Loads `weight` (`out x in`) and `bias` under `vb` (a layer without a bias:
    /// [`Proj::from_weights`] with `None`).
    pub fn load(
        inp: usize,
        out: usize,
        vb: VarBuilder,
        quantize: bool,
    ) -> candle_core::Result<Self> {
        let w = vb.get((out, inp), "weight")?;
        let b = vb.get(out, "bias")?;
        Self::from_weights(w, Some(b), quantize)
    }

    /// Wraps existing weights, quantizing them when asked: to int8 where that is fastest
    /// ([`int8::pays`]: a CPU with AVX-512 VNNI or AVX-VNNI), otherwise to Q8_0 when the input size is a multiple of its 32-wide
    /// block (else they stay f32).
    pub fn from_weights(
        weight: Tensor,
        bias: Option<Tensor>,
        quantize: bool,
    ) -> candle_core::Result<Self> {
        let (out, inp) = weight.dims2()?;
        if quantize && int8::pays() {
            let w = weight.flatten_all()?.to_vec1::<f32>()?;
            let bias = match bias {
                Some(b) => Some(b.to_vec1::<f32>()?),
                None => None,
            };
            Ok(Proj::I8 {
                weight: Int8Matrix::new(&w, out, inp),
                bias,
            })
        } else if quantize && inp % GgmlDType::Q8_0.block_size() == 0 {
            let q = QTensor::quantize(&weight, GgmlDType::Q8_0)?;
            Ok(Proj::Q8 {
                weight: QMatMul::from_qtensor(q)?,
                bias,
            })
        } else {
            Ok(Proj::F32 {
                weight_t: weight.t()?.contiguous()?,
                bias,
            })
        }
    }
}

impl Proj {
    /// The product's values, row-major, for callers that work on plain buffers (the
    /// attention kernels): int8 hands its output over without a round trip through a
    /// tensor.
    pub fn forward_values(&self, x: &Tensor) -> candle_core::Result<Vec<f32>> {
        match self {
            Proj::I8 { weight, bias } => Ok(int8_product(weight, bias.as_deref(), x)?.0),
            _ => self.forward(x)?.flatten_all()?.to_vec1::<f32>(),
        }
    }
}

/// `x W^T (+ bias)` on the int8 kernel, reading `x` in place; the values and their shape.
fn int8_product(
    weight: &Int8Matrix,
    bias: Option<&[f32]>,
    x: &Tensor,
) -> candle_core::Result<(Vec<f32>, Vec<usize>)> {
    let (&inp, lead) = x.dims().split_last().expect("Proj input has no dims");
    if inp != weight.in_dim() {
        candle_core::bail!("int8 projection of {} inputs given {inp}", weight.in_dim())
    }
    let rows = lead.iter().product::<usize>();
    let y = with_values(x, |values| weight.matmul(values, rows, bias))?;
    let mut shape = lead.to_vec();
    shape.push(weight.out_dim());
    Ok((y, shape))
}

impl Module for Proj {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (y, bias) = match self {
            Proj::F32 { weight_t, bias } => {
                // Rows of any leading shape, as one `(rows, in) x (in, out)` product.
                let (&inp, lead) = x.dims().split_last().expect("Proj input has no dims");
                let out = weight_t.dim(1)?;
                let rows = x
                    .contiguous()?
                    .reshape((lead.iter().product::<usize>(), inp))?;
                let mut shape = lead.to_vec();
                shape.push(out);
                (rows.matmul(weight_t)?.reshape(shape)?, bias)
            }
            Proj::I8 { weight, bias } => {
                let (y, shape) = int8_product(weight, bias.as_deref(), x)?;
                return Tensor::from_vec(y, shape, x.device());
            }
            Proj::Q8 { weight, bias } => (weight.forward(x)?, bias),
        };
        match bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}
