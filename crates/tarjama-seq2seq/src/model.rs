//! The encoder-decoder transformer shared by Marian and M2M100, built from a
//! `VarBuilder` whose names mirror the Hugging Face checkpoints (`model.encoder.layers.0.
//! self_attn.q_proj`, ...). Unlike candle's own Marian it takes a padding mask, so
//! sentences of different lengths batch together, and it projects the encoder states to
//! cross-attention keys and values once per batch instead of at every decoding step.

use candle_core::{DType, Device, IndexOp, Module, Tensor};
use candle_nn::{Activation, Embedding, LayerNorm, VarBuilder};

use super::attention;
use super::config::{Architecture, Seq2SeqConfig};
use super::quant::Proj;

/// What generation needs from an encoder-decoder model.
pub trait EncoderDecoder {
    /// Encodes a right-padded batch: `ids` and `mask` (1 = token, 0 = padding) are
    /// `(batch, src_len)` u32; returns `(batch, src_len, d_model)`.
    fn encode(&self, ids: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor>;
    /// Prepares decoding over encoder states: projects cross-attention keys and values
    /// once, and starts an empty self-attention cache.
    fn start(&self, encoded: &Tensor, mask: &Tensor) -> candle_core::Result<DecoderState>;
    /// Runs the decoder on the next `(batch, t)` tokens and returns `(batch, t, vocab)`
    /// logits, extending the cache.
    fn step(&self, ids: &Tensor, state: &mut DecoderState) -> candle_core::Result<Tensor>;
}

/// Per-batch decoder state: the cached keys and values of every layer and, for each row,
/// which cached rows its attention sees.
///
/// Self-attention keys and values are appended, never moved: every row keeps the list of
/// cache slots of its history, and beam search's reordering only reorders those lists.
/// (Copying every layer's cache at every reorder, as tensors must, was a fifth of a
/// beam step.) Cross-attention keys and values are kept once per source sentence; rows
/// name their source.
#[derive(Debug, Clone)]
pub struct DecoderState {
    layers: Vec<LayerCache>,
    /// Tokens already decoded (the length of every row's history).
    past: usize,
    /// Self-attention cache slots written so far (the same in every layer).
    slots: u32,
    /// For every row, the cache slot of each of its past positions.
    paths: Vec<Vec<u32>>,
    /// For every row, the encoder row (source sentence) it translates.
    sources: Vec<u32>,
    /// For every encoder row, the cross-attention slots of its unpadded tokens.
    source_slots: Vec<Vec<u32>>,
}

#[derive(Debug, Clone)]
struct LayerCache {
    /// Self-attention keys and values, one `d_model` row per slot.
    self_k: Vec<f32>,
    self_v: Vec<f32>,
    /// Cross-attention keys and values, `(encoder rows x src_len)` rows of `d_model`.
    cross_k: Vec<f32>,
    cross_v: Vec<f32>,
}

impl DecoderState {
    /// Keeps and reorders batch rows: row `i` of the new state is row `rows[i]` of the old
    /// one. Beam search uses it to follow the surviving beams and to drop finished
    /// sentences from the batch. No cached key or value moves.
    pub fn select_rows(&mut self, rows: &[u32]) -> candle_core::Result<()> {
        let n = self.sources.len();
        if let Some(&bad) = rows.iter().find(|&&r| r as usize >= n) {
            candle_core::bail!("select_rows: row {bad} of a batch of {n}")
        }
        self.paths = rows
            .iter()
            .map(|&r| self.paths[r as usize].clone())
            .collect();
        self.sources = rows.iter().map(|&r| self.sources[r as usize]).collect();
        Ok(())
    }

    /// Number of rows.
    pub fn batch(&self) -> candle_core::Result<usize> {
        Ok(self.sources.len())
    }

    /// Tokens decoded so far.
    pub fn past(&self) -> usize {
        self.past
    }
}

/// Multi-head attention's projections. Self-attention projects queries, keys and values
/// with one matrix (the checkpoint's three stacked), so a step makes one matmul (and, with
/// int8 weights, quantizes its input once) instead of three; cross-attention projects its
/// keys and values together, once per batch, and its queries at every step.
struct Attention {
    /// Self-attention: `[q; k; v]`, `(3 d_model, d_model)`; cross-attention: `q`.
    input: Proj,
    /// Cross-attention: `[k; v]`, `(2 d_model, d_model)`.
    kv: Option<Proj>,
    out_proj: Proj,
    heads: usize,
    scaling: f32,
}

/// The named projections under `vb`, stacked into one (`(names x d, d)`, biases too).
fn stacked(vb: &VarBuilder, names: &[&str], d: usize, quantize: bool) -> candle_core::Result<Proj> {
    let mut weights = Vec::with_capacity(names.len());
    let mut biases = Vec::with_capacity(names.len());
    for name in names {
        weights.push(vb.pp(name).get((d, d), "weight")?);
        biases.push(vb.pp(name).get(d, "bias")?);
    }
    Proj::from_weights(
        Tensor::cat(&weights, 0)?,
        Some(Tensor::cat(&biases, 0)?),
        quantize,
    )
}

/// Whether an attention's keys and values come from its own input or from the encoder.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    Own,
    Encoder,
}

impl Attention {
    fn load(
        vb: VarBuilder,
        d: usize,
        heads: usize,
        quantize: bool,
        source: Source,
    ) -> candle_core::Result<Self> {
        let (input, kv) = match source {
            Source::Own => (
                stacked(&vb, &["q_proj", "k_proj", "v_proj"], d, quantize)?,
                None,
            ),
            Source::Encoder => (
                Proj::load(d, d, vb.pp("q_proj"), quantize)?,
                Some(stacked(&vb, &["k_proj", "v_proj"], d, quantize)?),
            ),
        };
        Ok(Attention {
            input,
            kv,
            out_proj: Proj::load(d, d, vb.pp("out_proj"), quantize)?,
            heads,
            scaling: (d as f32 / heads as f32).powf(-0.5),
        })
    }

    /// Attention of the query rows `q` over the key/value rows `slots(row)` names, through
    /// `out_proj`; `shape` is the `(b, t, d)` of the result.
    fn attend<'a>(
        &self,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        shape: (usize, usize, usize),
        slots: impl Fn(usize) -> &'a [u32] + Sync,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        let d = shape.2;
        let out = attention::attend(q, k, v, d, self.heads, self.scaling, slots);
        self.out_proj
            .forward(&Tensor::from_vec(out, shape, device)?)
    }
}

/// Splits rows of `N * d` values into `N` buffers of rows of `d` (stacked projections'
/// outputs into queries, keys and values).
fn split_columns<const N: usize>(x: &[f32], d: usize) -> [Vec<f32>; N] {
    let rows = x.len() / (d * N);
    let mut out: [Vec<f32>; N] = std::array::from_fn(|_| Vec::with_capacity(rows * d));
    for row in x.chunks_exact(d * N) {
        for (o, part) in out.iter_mut().zip(row.chunks_exact(d)) {
            o.extend_from_slice(part);
        }
    }
    out
}

/// For every row of a `(b, s)` 0/1 mask, the flat indices (`row * s + j`) of its tokens:
/// the key rows its attention may see.
fn mask_slots(mask: &Tensor) -> candle_core::Result<Vec<Vec<u32>>> {
    let mask = mask.to_dtype(DType::U32)?.to_vec2::<u32>()?;
    Ok(mask
        .iter()
        .enumerate()
        .map(|(row, m)| {
            m.iter()
                .enumerate()
                .filter(|&(_, &keep)| keep != 0)
                .map(|(j, _)| (row * m.len() + j) as u32)
                .collect()
        })
        .collect())
}

struct FeedForward {
    fc1: Proj,
    fc2: Proj,
    act: Activation,
}

impl FeedForward {
    fn load(
        vb: &VarBuilder,
        d: usize,
        ffn: usize,
        act: Activation,
        quantize: bool,
    ) -> candle_core::Result<Self> {
        Ok(FeedForward {
            fc1: Proj::load(d, ffn, vb.pp("fc1"), quantize)?,
            fc2: Proj::load(ffn, d, vb.pp("fc2"), quantize)?,
            act,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.fc2.forward(&self.fc1.forward(x)?.apply(&self.act)?)
    }
}

struct EncoderLayer {
    self_attn: Attention,
    self_attn_layer_norm: LayerNorm,
    ffn: FeedForward,
    final_layer_norm: LayerNorm,
}

struct DecoderLayer {
    self_attn: Attention,
    self_attn_layer_norm: LayerNorm,
    encoder_attn: Attention,
    encoder_attn_layer_norm: LayerNorm,
    ffn: FeedForward,
    final_layer_norm: LayerNorm,
}

/// Marian or M2M100, one implementation: the two differ in where the layer norms sit,
/// in their sinusoidal tables, and in Marian's `final_logits_bias`.
pub struct Seq2SeqModel {
    arch: Architecture,
    encoder_embed: Embedding,
    decoder_embed: Embedding,
    embed_scale: f64,
    /// Sinusoidal table; row = position id (M2M100's ids start past the padding index).
    positions: Tensor,
    pad_id: u32,
    encoder_layers: Vec<EncoderLayer>,
    decoder_layers: Vec<DecoderLayer>,
    /// M2M100's final layer norms.
    encoder_norm: Option<LayerNorm>,
    decoder_norm: Option<LayerNorm>,
    lm_head: Proj,
    final_logits_bias: Option<Tensor>,
    device: Device,
}

const LN_EPS: f64 = 1e-5;

fn activation(name: &str) -> Activation {
    match name {
        "relu" => Activation::Relu,
        "gelu" => Activation::Gelu,
        "gelu_new" => Activation::NewGelu,
        _ => Activation::Silu,
    }
}

impl Seq2SeqModel {
    /// Builds the model from checkpoint tensors. Embeddings and `lm_head` missing from
    /// the checkpoint are tied to `model.shared`, as transformers ties them.
    pub fn load(
        cfg: &Seq2SeqConfig,
        arch: Architecture,
        vb: VarBuilder,
        quantize: bool,
    ) -> candle_core::Result<Self> {
        let d = cfg.d_model;
        let device = vb.device().clone();
        let m = vb.pp("model");
        let shared_name = "model.shared.weight";
        // Loaded once and shared (tensors are reference-counted): a tied checkpoint would
        // otherwise hold three copies of the largest matrix.
        let shared = if vb.contains_tensor(shared_name) {
            Some(vb.get((cfg.vocab_size, d), shared_name)?)
        } else {
            None
        };
        let embedding = |name: &str, vocab: usize| -> candle_core::Result<Embedding> {
            let w = match &shared {
                _ if vb.contains_tensor(name) => vb.get((vocab, d), name)?,
                Some(w) if w.dim(0)? == vocab => w.clone(),
                // Absent or of another size: this names the missing/mismatched tensor.
                _ => vb.get((vocab, d), shared_name)?,
            };
            Ok(Embedding::new(w, d))
        };
        let encoder_embed = embedding("model.encoder.embed_tokens.weight", cfg.vocab_size)?;
        let target_vocab = cfg.target_vocab_size();
        let decoder_embed = embedding("model.decoder.embed_tokens.weight", target_vocab)?;
        // Without a bias either way; absent, the head is the decoder's embeddings (tied).
        let lm_head_weight = if vb.contains_tensor("lm_head.weight") {
            vb.get((target_vocab, d), "lm_head.weight")?
        } else {
            decoder_embed.embeddings().clone()
        };
        let lm_head = Proj::from_weights(lm_head_weight, None, quantize)?;
        let final_logits_bias =
            if arch == Architecture::Marian && vb.contains_tensor("final_logits_bias") {
                Some(vb.get((1, target_vocab), "final_logits_bias")?)
            } else {
                None
            };
        let act = activation(&cfg.activation_function);
        let ln = |vb: VarBuilder| candle_nn::layer_norm(d, LN_EPS, vb);
        let mut encoder_layers = Vec::with_capacity(cfg.encoder_layers);
        for i in 0..cfg.encoder_layers {
            let vb = m.pp("encoder").pp("layers").pp(i);
            encoder_layers.push(EncoderLayer {
                self_attn: Attention::load(
                    vb.pp("self_attn"),
                    d,
                    cfg.encoder_attention_heads,
                    quantize,
                    Source::Own,
                )?,
                self_attn_layer_norm: ln(vb.pp("self_attn_layer_norm"))?,
                ffn: FeedForward::load(&vb, d, cfg.encoder_ffn_dim, act, quantize)?,
                final_layer_norm: ln(vb.pp("final_layer_norm"))?,
            });
        }
        let mut decoder_layers = Vec::with_capacity(cfg.decoder_layers);
        for i in 0..cfg.decoder_layers {
            let vb = m.pp("decoder").pp("layers").pp(i);
            decoder_layers.push(DecoderLayer {
                self_attn: Attention::load(
                    vb.pp("self_attn"),
                    d,
                    cfg.decoder_attention_heads,
                    quantize,
                    Source::Own,
                )?,
                self_attn_layer_norm: ln(vb.pp("self_attn_layer_norm"))?,
                encoder_attn: Attention::load(
                    vb.pp("encoder_attn"),
                    d,
                    cfg.decoder_attention_heads,
                    quantize,
                    Source::Encoder,
                )?,
                encoder_attn_layer_norm: ln(vb.pp("encoder_attn_layer_norm"))?,
                ffn: FeedForward::load(&vb, d, cfg.decoder_ffn_dim, act, quantize)?,
                final_layer_norm: ln(vb.pp("final_layer_norm"))?,
            });
        }
        let (encoder_norm, decoder_norm) = match arch {
            Architecture::Marian => (None, None),
            Architecture::M2M100 => (
                Some(ln(m.pp("encoder").pp("layer_norm"))?),
                Some(ln(m.pp("decoder").pp("layer_norm"))?),
            ),
        };
        let positions = match arch {
            Architecture::Marian => marian_positions(cfg.max_position_embeddings, d, &device)?,
            Architecture::M2M100 => m2m100_positions(
                cfg.max_position_embeddings + 2,
                d,
                cfg.pad_token_id as usize,
                &device,
            )?,
        };
        Ok(Seq2SeqModel {
            arch,
            encoder_embed,
            decoder_embed,
            embed_scale: if cfg.scale_embedding {
                (d as f64).sqrt()
            } else {
                1.0
            },
            positions,
            pad_id: cfg.pad_token_id,
            encoder_layers,
            decoder_layers,
            encoder_norm,
            decoder_norm,
            lm_head,
            final_logits_bias,
            device,
        })
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    fn position_rows(&self, ids: Vec<u32>, shape: (usize, usize)) -> candle_core::Result<Tensor> {
        let n = self.positions.dim(0)?;
        if let Some(&too_far) = ids.iter().find(|&&p| p as usize >= n) {
            candle_core::bail!("position {too_far} is past max_position_embeddings ({n} rows)")
        }
        let ids = Tensor::from_vec(ids, shape.0 * shape.1, &self.device)?;
        self.positions
            .index_select(&ids, 0)?
            .reshape((shape.0, shape.1, ()))
    }
}

impl EncoderDecoder for Seq2SeqModel {
    fn encode(&self, ids: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let (b, s) = ids.dims2()?;
        let pos_ids: Vec<u32> = match self.arch {
            // Marian counts positions from 0 for every row, padding included; padding is on
            // the right, so real tokens get 0..len either way.
            Architecture::Marian => (0..b).flat_map(|_| 0..s as u32).collect(),
            // M2M100: (cumsum(mask) * mask) + padding_idx, so padding rows map to the zero
            // row at padding_idx and tokens start at padding_idx + 1.
            Architecture::M2M100 => {
                let m = mask.to_dtype(DType::U32)?.to_vec2::<u32>()?;
                m.iter()
                    .flat_map(|row| {
                        let mut count = 0;
                        row.iter()
                            .map(|&k| {
                                count += k;
                                count * k + self.pad_id
                            })
                            .collect::<Vec<_>>()
                    })
                    .collect()
            }
        };
        let mut x = (self.encoder_embed.forward(ids)? * self.embed_scale)?;
        x = (x + self.position_rows(pos_ids, (b, s))?)?;
        let slots = mask_slots(mask)?;
        let d = x.dim(2)?;
        // Every position, padding included (as transformers computes it), sees its
        // sentence's tokens.
        let attend = |attn: &Attention, h: &Tensor| -> candle_core::Result<Tensor> {
            let [q, k, v] = split_columns(&attn.input.forward_values(h)?, d);
            attn.attend(&q, &k, &v, (b, s, d), |row| &slots[row / s], &self.device)
        };
        let pre_norm = self.arch == Architecture::M2M100;
        for layer in &self.encoder_layers {
            if pre_norm {
                let h = layer.self_attn_layer_norm.forward(&x)?;
                x = (&x + attend(&layer.self_attn, &h)?)?;
                let h = layer.final_layer_norm.forward(&x)?;
                x = (&x + layer.ffn.forward(&h)?)?;
            } else {
                let h = (&x + attend(&layer.self_attn, &x)?)?;
                x = layer.self_attn_layer_norm.forward(&h)?;
                let h = (&x + layer.ffn.forward(&x)?)?;
                x = layer.final_layer_norm.forward(&h)?;
            }
        }
        match &self.encoder_norm {
            Some(norm) => norm.forward(&x),
            None => Ok(x),
        }
    }

    fn start(&self, encoded: &Tensor, mask: &Tensor) -> candle_core::Result<DecoderState> {
        let d = encoded.dim(2)?;
        let layers = self
            .decoder_layers
            .iter()
            .map(|layer| {
                let kv = match &layer.encoder_attn.kv {
                    Some(kv) => kv.forward_values(encoded)?,
                    None => candle_core::bail!("cross-attention without key/value projections"),
                };
                let [cross_k, cross_v] = split_columns(&kv, d);
                Ok(LayerCache {
                    self_k: Vec::new(),
                    self_v: Vec::new(),
                    cross_k,
                    cross_v,
                })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let source_slots = mask_slots(mask)?;
        let n = source_slots.len();
        Ok(DecoderState {
            layers,
            past: 0,
            slots: 0,
            paths: vec![Vec::new(); n],
            sources: (0..n as u32).collect(),
            source_slots,
        })
    }

    fn step(&self, ids: &Tensor, state: &mut DecoderState) -> candle_core::Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let past = state.past;
        let first = match self.arch {
            Architecture::Marian => 0,
            // Decoder inputs never contain padding (M2M100 starts from </s>), so the
            // cumsum rule reduces to padding_idx + 1 + position.
            Architecture::M2M100 => self.pad_id + 1,
        };
        let pos_ids: Vec<u32> = (0..b)
            .flat_map(|_| (0..t as u32).map(|i| first + (past as u32) + i))
            .collect();
        let mut x = (self.decoder_embed.forward(ids)? * self.embed_scale)?;
        x = (x + self.position_rows(pos_ids, (b, t))?)?;
        if b != state.paths.len() {
            candle_core::bail!(
                "step: {b} rows of input for a state of {}",
                state.paths.len()
            )
        }
        // Slots of the new positions, row by row as the projections lay them out.
        let first_slot = state.slots;
        for (r, path) in state.paths.iter_mut().enumerate() {
            path.extend((0..t as u32).map(|i| first_slot + (r * t) as u32 + i));
        }
        state.slots += (b * t) as u32;
        let d = x.dim(2)?;
        let (paths, sources, source_slots) = (&state.paths, &state.sources, &state.source_slots);
        // Query `i` of a row sits at position `past + i` and sees its history up to there.
        let self_slots = |row: usize| &paths[row / t][..past + row % t + 1];
        let cross_slots = |row: usize| source_slots[sources[row / t] as usize].as_slice();
        let pre_norm = self.arch == Architecture::M2M100;
        for (layer, cache) in self.decoder_layers.iter().zip(state.layers.iter_mut()) {
            let self_in = if pre_norm {
                layer.self_attn_layer_norm.forward(&x)?
            } else {
                x.clone()
            };
            let attn = &layer.self_attn;
            let [q, k, v] = split_columns(&attn.input.forward_values(&self_in)?, d);
            cache.self_k.extend(k);
            cache.self_v.extend(v);
            let h = attn.attend(
                &q,
                &cache.self_k,
                &cache.self_v,
                (b, t, d),
                self_slots,
                &self.device,
            )?;
            x = (&x + h)?;
            if !pre_norm {
                x = layer.self_attn_layer_norm.forward(&x)?;
            }
            let cross_in = if pre_norm {
                layer.encoder_attn_layer_norm.forward(&x)?
            } else {
                x.clone()
            };
            let attn = &layer.encoder_attn;
            let q = attn.input.forward_values(&cross_in)?;
            let h = attn.attend(
                &q,
                &cache.cross_k,
                &cache.cross_v,
                (b, t, d),
                cross_slots,
                &self.device,
            )?;
            x = (&x + h)?;
            if !pre_norm {
                x = layer.encoder_attn_layer_norm.forward(&x)?;
            }
            if pre_norm {
                let h = layer.final_layer_norm.forward(&x)?;
                x = (&x + layer.ffn.forward(&h)?)?;
            } else {
                let h = (&x + layer.ffn.forward(&x)?)?;
                x = layer.final_layer_norm.forward(&h)?;
            }
        }
        state.past += t;
        if let Some(norm) = &self.decoder_norm {
            x = norm.forward(&x)?;
        }
        let logits = self.lm_head.forward(&x)?;
        match &self.final_logits_bias {
            Some(bias) => logits.broadcast_add(bias),
            None => Ok(logits),
        }
    }
}

/// Marian's table: `sin(pos / 10000^(2j/d))` in the first half of each row, the matching
/// `cos` in the second (not interleaved), computed in f64 as numpy does.
fn marian_positions(n: usize, d: usize, device: &Device) -> candle_core::Result<Tensor> {
    let half = d / 2;
    let mut data = vec![0f32; n * d];
    for pos in 0..n {
        for j in 0..half {
            let angle = pos as f64 / 10000f64.powf(2.0 * j as f64 / d as f64);
            data[pos * d + j] = angle.sin() as f32;
            data[pos * d + half + j] = angle.cos() as f32;
        }
    }
    Tensor::from_vec(data, (n, d), device)
}

/// fairseq's table used by M2M100: frequencies `exp(-j * ln(10000) / (half - 1))`,
/// `[sin | cos]`, computed in f32 as torch does, with the padding row zeroed.
fn m2m100_positions(
    n: usize,
    d: usize,
    padding_idx: usize,
    device: &Device,
) -> candle_core::Result<Tensor> {
    let half = d / 2;
    let step = (10000f64.ln() / (half as f64 - 1.0)) as f32;
    let mut data = vec![0f32; n * d];
    for pos in 0..n {
        if pos == padding_idx {
            continue;
        }
        for j in 0..half {
            let freq = (j as f32 * -step).exp();
            let angle = pos as f32 * freq;
            data[pos * d + j] = angle.sin();
            data[pos * d + half + j] = angle.cos();
        }
    }
    Tensor::from_vec(data, (n, d), device)
}

/// The logits of the last position of a `(b, t, vocab)` tensor, as `(b, vocab)`.
pub fn last_position(logits: &Tensor) -> candle_core::Result<Tensor> {
    let t = logits.dim(1)?;
    logits.i((.., t - 1, ..))?.contiguous()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marian_table_matches_closed_form() {
        let t = marian_positions(4, 8, &Device::Cpu)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert_eq!(t[0][0], 0.0);
        assert_eq!(t[0][4], 1.0);
        let expect = (3.0f64 / 10000f64.powf(2.0 / 8.0)).sin() as f32;
        assert!((t[3][1] - expect).abs() < 1e-7);
    }

    #[test]
    fn m2m100_padding_row_is_zero() {
        let t = m2m100_positions(6, 8, 1, &Device::Cpu)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert!(t[1].iter().all(|&x| x == 0.0));
        assert!((t[2][0] - 2f32.sin()).abs() < 1e-6);
        assert_eq!(t[0][4], 1.0);
    }
}
