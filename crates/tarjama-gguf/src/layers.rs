//! The layers of the decoder: the token embedding, rotary position embeddings,
//! attention (over each sequence's own cache, [`super::kv`]), the gated MLP, and the
//! block that chains them.

use std::sync::Arc;

use candle_core::quantized::QTensor;
use candle_core::{DType, Device, Module, Tensor};
use candle_transformers::quantized_nn::RmsNorm;

use super::attend::{attend, Query};
use super::block32::Block32Matrix;
use super::kv::SeqCache;
use super::linear::{project_all, Linear};
use super::panel::PanelMatrix;
use super::step::{Segment, Step};
use crate::{Error, Result};

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

/// Rotary tables for one frequency base, computed up to the longest position seen so far.
#[derive(Debug, Clone)]
pub(super) struct Rope {
    pub(super) cos: Tensor,
    pub(super) sin: Tensor,
    /// llama.cpp's "normal" RoPE rotates adjacent pairs; NeoX (Qwen, Gemma) rotates halves.
    pub(super) interleaved: bool,
}

impl Rope {
    pub(super) fn new(
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
    pub(super) fn apply(&self, x: &Tensor, positions: &Tensor) -> Result<Tensor> {
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

#[derive(Debug)]
pub(super) struct Attention {
    pub(super) wq: Linear,
    pub(super) wk: Linear,
    pub(super) wv: Linear,
    pub(super) wo: Linear,
    pub(super) bq: Option<Tensor>,
    pub(super) bk: Option<Tensor>,
    pub(super) bv: Option<Tensor>,
    pub(super) q_norm: Option<RmsNorm>,
    pub(super) k_norm: Option<RmsNorm>,
    pub(super) n_head: usize,
    pub(super) n_kv_head: usize,
    pub(super) head_dim: usize,
    pub(super) scale: f64,
    pub(super) rope: Rope,
    pub(super) sliding_window: Option<usize>,
    /// [`WeightLayout::AsStored`]: attention through tensor ops, as candle's models do it,
    /// to compare with them number for number (quantized activations amplify the last
    /// bits of a different summation order: 1e-5 relative on a decoding step's attention
    /// moves Qwen2.5 0.5B's logits by 0.3).
    pub(super) as_stored: bool,
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
                queries.push(Query {
                    q: &qr[(seg.start + r) * qw..][..qw],
                    cache: &*step.cache,
                    from,
                    to: pos + 1,
                });
            }
        }
        let y = attend(&queries, layer, heads, kv_heads, d, self.scale as f32);
        self.wo
            .forward(&Tensor::from_vec(y, (1, rows, qw), x.device())?)
    }

    /// Attention through tensor ops, as candle's models compute it (one sequence; `q`:
    /// (1, heads, seq, d) at positions `pos..`).
    pub(super) fn tensor_attention(
        &self,
        q: &Tensor,
        cache: &SeqCache,
        layer: usize,
        pos: usize,
        device: &Device,
    ) -> Result<Tensor> {
        let (b, _, seq, _) = q.dims4()?;
        let (k, v) = cache.tensors(layer, device)?;
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
pub(super) fn attention_mask(
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
pub(super) enum Activation {
    Silu,
    GeluTanh,
}

#[derive(Debug)]
pub(super) struct Mlp {
    pub(super) gate: Linear,
    pub(super) up: Linear,
    pub(super) down: Linear,
    pub(super) act: Activation,
    /// [`WeightLayout::AsStored`]: the activation through candle's ops (see
    /// `Attention::as_stored`).
    pub(super) as_stored: bool,
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

/// The fused pass of [`gated`].
struct Gated<'a> {
    gate: &'a [f32],
    up: &'a [f32],
    act: &'a Activation,
}

impl tarjama_kernels::simd::WithLanes for Gated<'_> {
    type Output = Vec<f32>;

    #[inline(always)]
    fn run<L: tarjama_kernels::simd::Lanes>(self, _: L) -> Vec<f32> {
        use tarjama_kernels::numerics::exp_fast;
        // Plain loops, not `collect`: that would be a call, compiled without the tier.
        let n = self.gate.len().min(self.up.len());
        let (gate, up) = (&self.gate[..n], &self.up[..n]);
        let mut out = vec![0f32; n];
        match self.act {
            // x * sigmoid(x)
            Activation::Silu => {
                for i in 0..n {
                    let x = gate[i];
                    out[i] = x / (1.0 + exp_fast(-x)) * up[i];
                }
            }
            // 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))), with
            // tanh(y) = 1 - 2 / (exp(2y) + 1)
            Activation::GeluTanh => {
                for i in 0..n {
                    let x = gate[i];
                    let y = 0.797_884_6 * x * (1.0 + 0.044_715 * x * x);
                    let tanh = 1.0 - 2.0 / (exp_fast(2.0 * y) + 1.0);
                    out[i] = 0.5 * x * (1.0 + tanh) * up[i];
                }
            }
        }
        out
    }
}

/// `act(gate) * up`. With `fuse`, on contiguous f32 CPU tensors, in one pass that
/// vectorizes (candle's SiLU calls libm's `expf` per value, a twentieth of Qwen2.5 1.5B's
/// prefill, then multiplies in a second pass; its GELU cost Gemma 3 a third of its
/// prefill); otherwise through candle's ops.
pub(super) fn gated(gate: &Tensor, up: &Tensor, act: &Activation, fuse: bool) -> Result<Tensor> {
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
                let work = Gated {
                    gate: &g[g0..g1],
                    up: &u[u0..u1],
                    act,
                };
                // Compiled for the kernel tier: the loop vectorizes as wide as it allows.
                Some(tarjama_kernels::simd::dispatch(
                    tarjama_kernels::cpu::Tier::active(),
                    work,
                ))
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
pub(super) struct Block {
    pub(super) attn_norm: RmsNorm,
    pub(super) attn: Attention,
    pub(super) post_attn_norm: Option<RmsNorm>,
    pub(super) ffn_norm: RmsNorm,
    pub(super) mlp: Mlp,
    pub(super) post_ffn_norm: Option<RmsNorm>,
}

impl Block {
    pub(super) fn forward(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn gated_activations_match_candle() {
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
    pub(super) fn causal_mask_hides_the_future() {
        let m = attention_mask(2, 3, 5, None, &Device::Cpu)
            .unwrap()
            .unwrap();
        let m: Vec<Vec<f32>> = m.to_vec2().unwrap();
        assert_eq!(m[0], vec![0.0, 0.0, 0.0, 0.0, f32::NEG_INFINITY]);
        assert_eq!(m[1], vec![0.0; 5]);
    }

    #[test]
    pub(super) fn sliding_window_hides_the_far_past() {
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
