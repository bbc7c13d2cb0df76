//! Linear projections, in f32 or with int8 (GGML `Q8_0`) weights: every linear layer of
//! the model goes through [`Proj`], so quantizing is a load-time switch.

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;

/// A linear layer `x W^T + b`, with f32 or Q8_0 weights.
#[derive(Debug, Clone)]
pub enum Proj {
    /// Full-precision weights.
    F32 {
        /// The layer.
        linear: candle_nn::Linear,
    },
    /// Weights quantized to 8 bits in blocks of 32 with one f16 scale each (`Q8_0`).
    Q8 {
        /// The quantized matrix.
        weight: QMatMul,
        /// The bias, kept in f32.
        bias: Option<Tensor>,
    },
}

impl Proj {
    /// Loads `weight` (`out x in`) and `bias` under `vb`.
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

    /// Loads `weight` only.
    pub fn load_no_bias(
        inp: usize,
        out: usize,
        vb: VarBuilder,
        quantize: bool,
    ) -> candle_core::Result<Self> {
        let w = vb.get((out, inp), "weight")?;
        Self::from_weights(w, None, quantize)
    }

    /// Wraps existing weights, quantizing them when asked and when the input size is a
    /// multiple of the 32-wide Q8_0 block (otherwise they stay f32).
    pub fn from_weights(
        weight: Tensor,
        bias: Option<Tensor>,
        quantize: bool,
    ) -> candle_core::Result<Self> {
        let inp = weight.dim(1)?;
        if quantize && inp % GgmlDType::Q8_0.block_size() == 0 {
            let q = QTensor::quantize(&weight, GgmlDType::Q8_0)?;
            Ok(Proj::Q8 {
                weight: QMatMul::from_qtensor(q)?,
                bias,
            })
        } else {
            Ok(Proj::F32 {
                linear: candle_nn::Linear::new(weight, bias),
            })
        }
    }
}

impl Module for Proj {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Proj::F32 { linear } => linear.forward(x),
            Proj::Q8 { weight, bias } => {
                let y = weight.forward(x)?;
                match bias {
                    Some(b) => y.broadcast_add(b),
                    None => Ok(y),
                }
            }
        }
    }
}
