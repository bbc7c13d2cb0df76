//! Beam search for a batch, following transformers' `_beam_search`: the top
//! `2 * num_beams` candidates per sentence, finished hypotheses scored
//! `sum_logprobs / generated_len ^ length_penalty`, and the early-stopping heuristic.

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use super::params::{EarlyStopping, Hypothesis, SearchParams};
use crate::attention::log_sum_exp;
use crate::model::{last_position, DecoderState, EncoderDecoder};
use crate::values::with_values;

/// transformers' "very low" score for beams that must not be chosen.
const NEG_BIG: f32 = -1.0e9;

/// A running beam: its sequence (start token included) and summed log-probability.
struct Running {
    seq: Vec<u32>,
    score: f32,
}

/// A finished hypothesis: its sequence, length-penalized score and summed
/// log-probability.
struct Finished {
    seq: Vec<u32>,
    score: f32,
    sum: f32,
}

/// One sentence's search: its running beams, its finished hypotheses (at most
/// `num_beams`, best first), and whether its result can still change.
struct Sentence {
    beams: Vec<Running>,
    pool: Vec<Finished>,
    done: bool,
}

impl Sentence {
    /// A sentence's `num_beams` beams before the first step.
    fn start(params: &SearchParams) -> Sentence {
        let nb = params.num_beams;
        Sentence {
            // All beams start identical; only the first may expand at the first step.
            beams: (0..nb)
                .map(|b| Running {
                    seq: vec![params.decoder_start],
                    score: if b == 0 { 0.0 } else { NEG_BIG },
                })
                .collect(),
            pool: Vec::new(),
            done: false,
        }
    }

    /// Takes this sentence's best continuations `flat` (see [`best_continuations`]):
    /// those that end go to the pool, the best `num_beams` that do not become the new
    /// beams, and the early-stopping heuristic says whether the sentence is done. Returns
    /// each new beam's parent, or None once the sentence is done.
    fn advance(
        &mut self,
        flat: &[(f32, usize)],
        vocab: usize,
        k: usize,
        params: &SearchParams,
    ) -> Option<Vec<usize>> {
        let sent = self;
        let nb = params.num_beams;
        let lp = params.length_penalty;
        let cur_len = sent.beams[0].seq.len();
        let pool_full = sent.pool.len() == nb;
        let blocked = sent.done || (params.early_stopping == EarlyStopping::True && pool_full);
        let mut candidates: Vec<(f32, usize, u32, bool)> = Vec::with_capacity(k);
        for (rank, &(score, idx)) in flat.iter().enumerate() {
            let (b, tok) = (idx / vocab, (idx % vocab) as u32);
            let hits = params.is_eos(tok) || cur_len + 1 >= params.max_length;
            if hits && rank < nb && !blocked && score > f32::NEG_INFINITY {
                let mut seq = sent.beams[b].seq.clone();
                seq.push(tok);
                let norm = score / ((cur_len + 1 - 1) as f32).powf(lp);
                sent.pool.push(Finished {
                    seq,
                    score: norm,
                    sum: score,
                });
            }
            candidates.push((if hits { score + NEG_BIG } else { score }, b, tok, hits));
        }
        sent.pool.sort_by(|a, b| b.score.total_cmp(&a.score));
        sent.pool.truncate(nb);
        // The best `nb` candidates that did not stop continue (stable: rank order).
        candidates.sort_by(|a, b| b.0.total_cmp(&a.0));
        candidates.truncate(nb);
        let parents: Vec<usize> = candidates.iter().map(|c| c.1).collect();
        let new_beams: Vec<Running> = candidates
            .iter()
            .map(|&(score, b, tok, _)| {
                let mut seq = sent.beams[b].seq.clone();
                seq.push(tok);
                Running { seq, score }
            })
            .collect();
        sent.beams = new_beams;
        // The early-stopping heuristic, checked at the new length.
        let new_len = cur_len + 1;
        sent.check_done(new_len, params);
        let full_and_early = params.early_stopping == EarlyStopping::True && sent.pool.len() == nb;
        if sent.done || full_and_early || new_len >= params.max_length {
            sent.done = true;
            return None;
        }
        Some(parents)
    }

    /// The early-stopping heuristic, checked at the new length `new_len`: the sentence is
    /// done when its best running beam cannot beat its worst finished hypothesis.
    fn check_done(&mut self, new_len: usize, params: &SearchParams) {
        let sent = self;
        let nb = params.num_beams;
        let lp = params.length_penalty;
        if !sent.done {
            let best_len = if params.early_stopping == EarlyStopping::Never && lp > 0.0 {
                params.max_length - 1
            } else {
                new_len - 1
            };
            let best_possible = sent.beams[0].score / (best_len as f32).powf(lp);
            let worst = if sent.pool.len() == nb {
                sent.pool
                    .iter()
                    .map(|f| f.score)
                    .fold(f32::INFINITY, f32::min)
            } else {
                NEG_BIG
            };
            // NaN-safe: a sentence whose best running score is not a number is done.
            if best_possible.partial_cmp(&worst) != Some(std::cmp::Ordering::Greater) {
                sent.done = true;
            }
        }
    }
}

/// Beam search for a batch whose decoder state is `state`: for each sentence, its
/// finished hypotheses, best first.
pub(super) fn beam<M: EncoderDecoder>(
    model: &M,
    mut state: DecoderState,
    device: &Device,
    params: &SearchParams,
) -> candle_core::Result<Vec<Vec<Hypothesis>>> {
    let nb = params.num_beams;
    let n = state.batch()?;
    let k = (1 + params.eos.len()).max(2) * nb;
    let mut sentences: Vec<Sentence> = (0..n).map(|_| Sentence::start(params)).collect();
    let rows: Vec<u32> = (0..n as u32)
        .flat_map(|s| std::iter::repeat_n(s, nb))
        .collect();
    state.select_rows(&rows)?;
    let mut active: Vec<usize> = (0..n).collect();
    let mut next_tokens: Vec<u32> = vec![params.decoder_start; n * nb];
    while !active.is_empty() {
        let ids = Tensor::from_vec(next_tokens.clone(), (active.len() * nb, 1), device)?;
        let logits = last_position(&model.step(&ids, &mut state)?)?;
        let vocab = logits.dim(1)?;
        let tops = best_continuations(&logits, vocab, &active, &sentences, k, params)?;
        let mut keep_rows: Vec<u32> = Vec::new();
        let mut still_active = Vec::new();
        next_tokens.clear();
        for ((slot, &s), flat) in active.iter().enumerate().zip(tops) {
            let sent = &mut sentences[s];
            let Some(parents) = sent.advance(&flat, vocab, k, params) else {
                continue;
            };
            still_active.push(s);
            for (b, beam) in parents.iter().zip(&sent.beams) {
                keep_rows.push((slot * nb + b) as u32);
                next_tokens.push(*beam.seq.last().unwrap_or(&0));
            }
        }
        active = still_active;
        if !active.is_empty() {
            state.select_rows(&keep_rows)?;
        }
    }
    Ok(sentences
        .into_iter()
        .map(|sent| {
            sent.pool
                .into_iter()
                .take(params.num_return.max(1))
                .map(|f| Hypothesis {
                    tokens: f.seq[1..].to_vec(),
                    score: f.score,
                    sum_logprobs: f.sum,
                })
                .collect()
        })
        .collect())
}

/// Each active sentence's best `k` continuations over all its beams, as (log-probability
/// so far, `beam * vocab + token`), best first; sentences in parallel.
fn best_continuations(
    logits: &Tensor,
    vocab: usize,
    active: &[usize],
    sentences: &[Sentence],
    k: usize,
    params: &SearchParams,
) -> candle_core::Result<Vec<Vec<(f32, usize)>>> {
    let nb = params.num_beams;
    // Each sentence's best `k` continuations over all its beams, sentences in
    // parallel. The overall top k come from at most k per beam: a small sorted list
    // per beam row instead of beams x vocabulary candidates. Log-probabilities are
    // the logits minus their row's log-sum-exp, as `log_softmax` gives them.
    let by_score = |a: &(f32, usize), b: &(f32, usize)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
    with_values(logits, |all| {
        active
            .par_iter()
            .enumerate()
            .map_init(Vec::new, |scratch: &mut Vec<f32>, (slot, &s)| {
                let mut flat: Vec<(f32, usize)> = Vec::with_capacity(nb * k);
                for (b, beam) in sentences[s].beams.iter().enumerate() {
                    let row = &all[(slot * nb + b) * vocab..][..vocab];
                    let lse = log_sum_exp(row);
                    scratch.clear();
                    scratch.extend(row.iter().map(|&x| x - lse));
                    params.process(&beam.seq, scratch);
                    top_k_into(scratch, beam.score, b * vocab, k, &mut flat);
                }
                flat.sort_by(by_score);
                flat.truncate(k);
                flat
            })
            .collect()
    })
}

/// Appends to `out` the `k` best `(score + offset_score, offset + index)` of `row`, ties
/// going to the lower index.
pub(super) fn top_k_into(
    row: &[f32],
    offset_score: f32,
    offset: usize,
    k: usize,
    out: &mut Vec<(f32, usize)>,
) {
    // Sorted best-first; a value enters only if it beats the current k-th. Once the list
    // is full, a block of 16 none of whose values can enter (one vectorized test) is
    // skipped whole: over a 62k vocabulary almost every block is.
    let mut best: Vec<(f32, usize)> = Vec::with_capacity(k + 1);
    let consider = |best: &mut Vec<(f32, usize)>, i: usize, x: f32| {
        if best.len() == k && x <= best[k - 1].0 {
            return;
        }
        let pos = best.partition_point(|&(y, _)| y >= x);
        best.insert(pos, (x, i));
        best.truncate(k);
    };
    const BLOCK: usize = 16;
    for (b, block) in row.chunks(BLOCK).enumerate() {
        if best.len() == k && block.len() == BLOCK {
            let kth = best[k - 1].0;
            // The scalar test negated, without early exit so that it vectorizes (a NaN
            // is not `<= kth`, so it is considered, as the scalar loop would).
            #[allow(clippy::neg_cmp_op_on_partial_ord)]
            let any_enters = block.iter().fold(false, |acc, &x| acc | !(x <= kth));
            if !any_enters {
                continue;
            }
        }
        for (j, &x) in block.iter().enumerate() {
            consider(&mut best, b * BLOCK + j, x);
        }
    }
    out.extend(
        best.into_iter()
            .map(|(x, i)| (x + offset_score, offset + i)),
    );
}
