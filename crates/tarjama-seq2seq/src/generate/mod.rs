//! Greedy and beam search over an [`EncoderDecoder`], following `transformers`'
//! `generate` (v5): its logits processors in its order, its beam bookkeeping (top
//! `2 * num_beams` candidates per sentence, finished hypotheses scored
//! `sum_logprobs / generated_len ^ length_penalty`, the early-stopping heuristic for
//! `early_stopping` true / false / "never"). Sentences of a batch are independent: a
//! sentence whose result can no longer change leaves the batch, so batching never changes
//! what a sentence gets.
//!
//! Split by job: [`SearchParams`] and the logits processors live in `params.rs`, beam
//! search in `beam.rs`, constrained beam search in `constrained.rs`; this file holds the
//! entry point and greedy search.

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use super::attention::log_sum_exp;
use super::model::{last_position, DecoderState, EncoderDecoder};
use super::values::with_values;

mod beam;
mod constrained;
mod params;

pub use constrained::constrained;
pub use params::{EarlyStopping, Hypothesis, SearchParams};

/// Runs the search for a batch whose encoder states and mask are given, returning for
/// each sentence its hypotheses, best first.
pub fn search<M: EncoderDecoder>(
    model: &M,
    encoded: &Tensor,
    mask: &Tensor,
    params: &SearchParams,
) -> candle_core::Result<Vec<Vec<Hypothesis>>> {
    let state = model.start(encoded, mask)?;
    if params.num_beams <= 1 {
        greedy(model, state, encoded.device(), params)
    } else {
        beam::beam(model, state, encoded.device(), params)
    }
}

/// Greedy search for a batch whose decoder state is `state`: each sentence's one
/// hypothesis, scored by its mean log-probability.
fn greedy<M: EncoderDecoder>(
    model: &M,
    mut state: DecoderState,
    device: &Device,
    params: &SearchParams,
) -> candle_core::Result<Vec<Vec<Hypothesis>>> {
    let n = state.batch()?;
    let mut seqs: Vec<Vec<u32>> = vec![vec![params.decoder_start]; n];
    let mut sums = vec![0f32; n];
    // Sentence index of each row still in the batch.
    let mut active: Vec<usize> = (0..n).collect();
    while !active.is_empty() {
        let last: Vec<u32> = active
            .iter()
            .map(|&s| *seqs[s].last().unwrap_or(&0))
            .collect();
        let ids = Tensor::from_vec(last, (active.len(), 1), device)?;
        let logits = last_position(&model.step(&ids, &mut state)?)?;
        let vocab = logits.dim(1)?;
        // Rows in parallel, on the logits in place: the best token and its log-probability.
        let picks: Vec<(usize, f32)> = with_values(&logits, |all| {
            active
                .par_iter()
                .enumerate()
                .map_init(Vec::new, |scores: &mut Vec<f32>, (row, &s)| {
                    scores.clear();
                    scores.extend_from_slice(&all[row * vocab..][..vocab]);
                    // As in transformers' greedy search, processors act on raw logits.
                    params.process(&seqs[s], scores);
                    let (tok, best) = scores.iter().enumerate().fold(
                        (0usize, f32::NEG_INFINITY),
                        |best, (i, &v)| if v > best.1 { (i, v) } else { best },
                    );
                    let lse = log_sum_exp(scores);
                    // Everything banned: no finite log-probability to add.
                    let logprob = if lse == f32::NEG_INFINITY {
                        best
                    } else {
                        best - lse
                    };
                    (tok, logprob)
                })
                .collect()
        })?;
        let mut keep = Vec::with_capacity(active.len());
        for (row, (&s, &(tok, logprob))) in active.iter().zip(&picks).enumerate() {
            sums[s] += logprob;
            seqs[s].push(tok as u32);
            let done = params.is_eos(tok as u32) || seqs[s].len() >= params.max_length;
            if !done {
                keep.push(row as u32);
            }
        }
        if keep.len() < active.len() {
            active = keep.iter().map(|&r| active[r as usize]).collect();
            if !active.is_empty() {
                state.select_rows(&keep)?;
            }
        }
    }
    Ok(seqs
        .into_iter()
        .zip(sums)
        .map(|(seq, sum)| {
            let tokens = seq[1..].to_vec();
            let score = sum / tokens.len().max(1) as f32;
            vec![Hypothesis {
                tokens,
                score,
                sum_logprobs: sum,
            }]
        })
        .collect())
}
