//! Greedy and beam search over an [`EncoderDecoder`], following `transformers`'
//! `generate` (v5): its logits processors in its order, its beam bookkeeping (top
//! `2 * num_beams` candidates per sentence, finished hypotheses scored
//! `sum_logprobs / generated_len ^ length_penalty`, the early-stopping heuristic for
//! `early_stopping` true / false / "never"). Sentences of a batch are independent: a
//! sentence whose result can no longer change leaves the batch, so batching never changes
//! what a sentence gets.

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use super::attention::log_sum_exp;
use super::with_values;

use super::model::{last_position, DecoderState, EncoderDecoder};

/// When beam search may stop (transformers' `early_stopping`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EarlyStopping {
    /// Stop a sentence as soon as it has `num_beams` finished hypotheses.
    True,
    /// Stop when no running beam can beat the worst finished one at its current length
    /// (transformers' default heuristic).
    #[default]
    False,
    /// Stop only when no running beam can beat the worst finished one at any length
    /// up to the maximum (canonical beam search).
    Never,
}

/// Everything a search needs, resolved from the model's configs and the caller's options.
#[derive(Debug, Clone)]
pub struct SearchParams {
    /// Beams; 1 means greedy search.
    pub num_beams: usize,
    /// Maximum decoder length, the start token included.
    pub max_length: usize,
    /// Minimum decoder length, the start token included, before EOS is allowed.
    pub min_length: usize,
    /// Exponent of the generated length dividing a finished hypothesis' log-probability.
    pub length_penalty: f32,
    /// When beam search stops.
    pub early_stopping: EarlyStopping,
    /// Ban repeating n-grams of this size (0 = off).
    pub no_repeat_ngram_size: usize,
    /// Penalty on tokens already in the sequence (1.0 = off).
    pub repetition_penalty: f32,
    /// Token sequences never to generate.
    pub bad_words: Vec<Vec<u32>>,
    /// Token forced as the first generated one.
    pub forced_bos: Option<u32>,
    /// Token forced at the last position.
    pub forced_eos: Option<u32>,
    /// End-of-sequence ids.
    pub eos: Vec<u32>,
    /// First decoder input.
    pub decoder_start: u32,
    /// Hypotheses to return per sentence (at most `num_beams`).
    pub num_return: usize,
}

/// One finished output of the search.
#[derive(Debug, Clone, PartialEq)]
pub struct Hypothesis {
    /// Generated tokens: the decoder start token excluded, the EOS included if produced.
    pub tokens: Vec<u32>,
    /// Beam search: transformers' `sequences_scores`, the summed log-probability divided
    /// by `len(tokens) ^ length_penalty`. Greedy: the mean log-probability.
    pub score: f32,
    /// Summed log-probability of the tokens (after the logits processors).
    pub sum_logprobs: f32,
}

impl Hypothesis {
    /// Mean log-probability per generated token.
    pub fn mean_logprob(&self) -> f32 {
        self.sum_logprobs / self.tokens.len().max(1) as f32
    }
}

impl SearchParams {
    /// Applies transformers' logits processors, in its order, to one row of scores
    /// given that row's decoder sequence (start token included).
    fn process(&self, seq: &[u32], scores: &mut [f32]) {
        let cur_len = seq.len();
        if self.repetition_penalty != 1.0 {
            let mut seen = seq.to_vec();
            seen.sort_unstable();
            seen.dedup();
            for &t in &seen {
                if let Some(s) = scores.get_mut(t as usize) {
                    *s = if *s < 0.0 {
                        *s * self.repetition_penalty
                    } else {
                        *s / self.repetition_penalty
                    };
                }
            }
        }
        let n = self.no_repeat_ngram_size;
        if n > 0 && cur_len >= n {
            let prefix = &seq[cur_len + 1 - n..];
            for start in 0..=(cur_len - n) {
                if seq[start..start + n - 1] == *prefix {
                    if let Some(s) = scores.get_mut(seq[start + n - 1] as usize) {
                        *s = f32::NEG_INFINITY;
                    }
                }
            }
        }
        for bad in &self.bad_words {
            let Some((&last, prefix)) = bad.split_last() else {
                continue;
            };
            if seq.ends_with(prefix) && !(bad.len() == 1 && self.eos.contains(&last)) {
                if let Some(s) = scores.get_mut(last as usize) {
                    *s = f32::NEG_INFINITY;
                }
            }
        }
        if cur_len < self.min_length {
            for &e in &self.eos {
                if let Some(s) = scores.get_mut(e as usize) {
                    *s = f32::NEG_INFINITY;
                }
            }
        }
        let force = |scores: &mut [f32], token: u32| {
            if (token as usize) < scores.len() {
                scores.fill(f32::NEG_INFINITY);
                scores[token as usize] = 0.0;
            }
        };
        if let Some(bos) = self.forced_bos {
            if cur_len == 1 {
                force(scores, bos);
            }
        }
        if let Some(eos) = self.forced_eos {
            if cur_len + 1 == self.max_length {
                force(scores, eos);
            }
        }
    }

    fn is_eos(&self, token: u32) -> bool {
        self.eos.contains(&token)
    }
}

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
        beam(model, state, encoded.device(), params)
    }
}

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

/// Appends to `out` the `k` best `(score + offset_score, offset + index)` of `row`, ties
/// going to the lower index.
fn top_k_into(
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

/// transformers' "very low" score for beams that must not be chosen.
const NEG_BIG: f32 = -1.0e9;

struct Running {
    seq: Vec<u32>,
    score: f32,
}

struct Finished {
    seq: Vec<u32>,
    score: f32,
    sum: f32,
}

struct Sentence {
    beams: Vec<Running>,
    pool: Vec<Finished>,
    done: bool,
}

fn beam<M: EncoderDecoder>(
    model: &M,
    mut state: DecoderState,
    device: &Device,
    params: &SearchParams,
) -> candle_core::Result<Vec<Vec<Hypothesis>>> {
    let nb = params.num_beams;
    let n = state.batch()?;
    let k = (1 + params.eos.len()).max(2) * nb;
    let lp = params.length_penalty;
    let mut sentences: Vec<Sentence> = (0..n)
        .map(|_| Sentence {
            // All beams start identical; only the first may expand at the first step.
            beams: (0..nb)
                .map(|b| Running {
                    seq: vec![params.decoder_start],
                    score: if b == 0 { 0.0 } else { NEG_BIG },
                })
                .collect(),
            pool: Vec::new(),
            done: false,
        })
        .collect();
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
        // Each sentence's best `k` continuations over all its beams, sentences in
        // parallel. The overall top k come from at most k per beam: a small sorted list
        // per beam row instead of beams x vocabulary candidates. Log-probabilities are
        // the logits minus their row's log-sum-exp, as `log_softmax` gives them.
        let by_score = |a: &(f32, usize), b: &(f32, usize)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
        let tops: Vec<Vec<(f32, usize)>> = with_values(&logits, |all| {
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
        })?;
        let mut keep_rows: Vec<u32> = Vec::new();
        let mut still_active = Vec::new();
        next_tokens.clear();
        for ((slot, &s), flat) in active.iter().enumerate().zip(tops) {
            let sent = &mut sentences[s];
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
            let full_and_early =
                params.early_stopping == EarlyStopping::True && sent.pool.len() == nb;
            if sent.done || full_and_early || new_len >= params.max_length {
                sent.done = true;
                continue;
            }
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

/// How far a hypothesis has come in writing the token sequences it must contain.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Progress {
    /// Constraints written in full.
    met: Vec<bool>,
    /// The constraint being written and how many of its tokens are out.
    partial: Option<(usize, usize)>,
}

impl Progress {
    fn new(n: usize) -> Self {
        Progress {
            met: vec![false; n],
            partial: None,
        }
    }

    fn all_met(&self) -> bool {
        self.met.iter().all(|&m| m)
    }

    /// Constraint tokens written so far: the bank the hypothesis competes in.
    fn tokens(&self, constraints: &[Vec<u32>]) -> usize {
        let met: usize = constraints
            .iter()
            .zip(&self.met)
            .filter(|(_, &m)| m)
            .map(|(c, _)| c.len())
            .sum();
        met + self.partial.map_or(0, |(_, done)| done)
    }

    /// The progress after writing `token`. A constraint broken off midway counts for
    /// nothing (it must be written again whole); a token may start an unmet one.
    fn after(&self, constraints: &[Vec<u32>], token: u32) -> Progress {
        let mut next = self.clone();
        if let Some((c, done)) = self.partial {
            next.partial = None;
            if constraints[c][done] == token {
                if done + 1 == constraints[c].len() {
                    next.met[c] = true;
                } else {
                    next.partial = Some((c, done + 1));
                }
                return next;
            }
        }
        let starts = (0..constraints.len()).find(|&c| !next.met[c] && constraints[c][0] == token);
        if let Some(c) = starts {
            if constraints[c].len() == 1 {
                next.met[c] = true;
            } else {
                next.partial = Some((c, 1));
            }
        }
        next
    }

    /// The tokens that move this hypothesis on: the next one of the constraint being
    /// written, else the first of each unmet constraint.
    fn wanted(&self, constraints: &[Vec<u32>]) -> Vec<u32> {
        match self.partial {
            Some((c, done)) => vec![constraints[c][done]],
            None => (0..constraints.len())
                .filter(|&c| !self.met[c])
                .map(|c| constraints[c][0])
                .collect(),
        }
    }
}

/// A running hypothesis of the constrained search.
struct ConstrainedBeam {
    seq: Vec<u32>,
    score: f32,
    progress: Progress,
}

/// Beam search for one sentence whose output must contain every token sequence of
/// `constraints` (a glossary's English terms), by dynamic beam allocation (Post and
/// Vilar, 2018; transformers' former constrained beam search works the same way).
/// Each step, every beam offers its best `num_beams` tokens plus the tokens that advance
/// its constraints; the candidates are grouped in banks by constraint tokens written,
/// and the new beams are taken from the banks in turn, most advanced first, best score
/// first within a bank, so that hypotheses still writing their terms are not crowded out
/// by unconstrained ones. A hypothesis may end only when all its constraints are written.
/// If none does before the length limit, the best hypotheses that ended are returned
/// anyway (the caller checks the output). `encoded` and `mask` hold one sentence.
pub fn constrained<M: EncoderDecoder>(
    model: &M,
    encoded: &Tensor,
    mask: &Tensor,
    params: &SearchParams,
    constraints: &[Vec<u32>],
) -> candle_core::Result<Vec<Hypothesis>> {
    let constraints: Vec<Vec<u32>> = constraints
        .iter()
        .filter(|c| !c.is_empty())
        .cloned()
        .collect();
    let nb = params.num_beams.max(constraints.len() + 1).max(2);
    let lp = params.length_penalty;
    let device = encoded.device();
    let mut state = model.start(encoded, mask)?;
    let mut beams = vec![ConstrainedBeam {
        seq: vec![params.decoder_start],
        score: 0.0,
        progress: Progress::new(constraints.len()),
    }];
    // Ended hypotheses: (sequence, normalized score, summed log-probability), those
    // with every constraint written and the others.
    let mut done: Vec<(Vec<u32>, f32, f32)> = Vec::new();
    let mut fallback: Vec<(Vec<u32>, f32, f32)> = Vec::new();
    let by_score = |a: &(Vec<u32>, f32, f32), b: &(Vec<u32>, f32, f32)| b.1.total_cmp(&a.1);
    loop {
        let last: Vec<u32> = beams.iter().map(|b| *b.seq.last().unwrap_or(&0)).collect();
        let ids = Tensor::from_vec(last, (beams.len(), 1), device)?;
        let logits = last_position(&model.step(&ids, &mut state)?)?;
        let vocab = logits.dim(1)?;
        // Every beam's candidates: (score, beam, token), each pair once.
        let mut offered: Vec<(f32, usize, u32)> = with_values(&logits, |all| {
            let mut offered = Vec::new();
            let mut scratch = Vec::with_capacity(vocab);
            for (b, beam) in beams.iter().enumerate() {
                let row = &all[b * vocab..][..vocab];
                let lse = log_sum_exp(row);
                scratch.clear();
                scratch.extend(row.iter().map(|&x| x - lse));
                params.process(&beam.seq, &mut scratch);
                let mut top = Vec::with_capacity(nb);
                top_k_into(&scratch, beam.score, 0, nb, &mut top);
                offered.extend(top.into_iter().map(|(score, t)| (score, b, t as u32)));
                for t in beam.progress.wanted(&constraints) {
                    if let Some(&x) = scratch.get(t as usize) {
                        offered.push((beam.score + x, b, t));
                    }
                }
            }
            offered
        })?;
        offered.retain(|c| c.0 > f32::NEG_INFINITY);
        offered.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        offered.dedup_by(|a, b| a.1 == b.1 && a.2 == b.2);
        let cur_len = beams[0].seq.len();
        // Banks by constraint tokens written, each best-first.
        let mut banks: Vec<std::collections::VecDeque<(usize, ConstrainedBeam)>> = (0
            ..=constraints.iter().map(Vec::len).sum::<usize>())
            .map(|_| Default::default())
            .collect();
        for (score, b, tok) in offered {
            let progress = beams[b].progress.after(&constraints, tok);
            let mut seq = beams[b].seq.clone();
            seq.push(tok);
            if params.is_eos(tok) || seq.len() >= params.max_length {
                let norm = score / ((seq.len() - 1) as f32).powf(lp);
                if progress.all_met() {
                    done.push((seq, norm, score));
                } else {
                    fallback.push((seq, norm, score));
                }
                continue;
            }
            let bank = progress.tokens(&constraints);
            let beam = ConstrainedBeam {
                seq,
                score,
                progress,
            };
            banks[bank].push_back((b, beam));
        }
        done.sort_by(by_score);
        done.truncate(nb);
        let mut next: Vec<(usize, ConstrainedBeam)> = Vec::with_capacity(nb);
        while next.len() < nb && banks.iter().any(|b| !b.is_empty()) {
            for bank in banks.iter_mut().rev() {
                if let Some(beam) = bank.pop_front() {
                    next.push(beam);
                    if next.len() == nb {
                        break;
                    }
                }
            }
        }
        if next.is_empty() {
            break;
        }
        // As transformers' heuristic: stop once `nb` hypotheses have ended with every
        // constraint and no running one can beat the worst of them at this length.
        if done.len() == nb {
            let best = next
                .iter()
                .map(|b| b.1.score)
                .fold(f32::NEG_INFINITY, f32::max);
            let worst = done.last().map_or(f32::NEG_INFINITY, |d| d.1);
            if best / (cur_len as f32).powf(lp) <= worst {
                break;
            }
        }
        let parents: Vec<u32> = next.iter().map(|(b, _)| *b as u32).collect();
        state.select_rows(&parents)?;
        beams = next.into_iter().map(|(_, beam)| beam).collect();
    }
    let mut ended = if done.is_empty() {
        fallback.sort_by(by_score);
        fallback
    } else {
        done
    };
    ended.truncate(params.num_return.max(1));
    Ok(ended
        .into_iter()
        .map(|(seq, score, sum)| Hypothesis {
            tokens: seq[1..].to_vec(),
            score,
            sum_logprobs: sum,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> SearchParams {
        SearchParams {
            num_beams: 1,
            max_length: 10,
            min_length: 0,
            length_penalty: 1.0,
            early_stopping: EarlyStopping::False,
            no_repeat_ngram_size: 0,
            repetition_penalty: 1.0,
            bad_words: vec![],
            forced_bos: None,
            forced_eos: None,
            eos: vec![0],
            decoder_start: 5,
            num_return: 1,
        }
    }

    #[test]
    fn constraint_progress_counts_whole_terms_only() {
        let c = vec![vec![7, 8, 9], vec![4]];
        let p = Progress::new(2);
        assert_eq!(p.wanted(&c), [7, 4]);
        let p = p.after(&c, 7).after(&c, 8);
        assert_eq!((p.tokens(&c), p.wanted(&c)), (2, vec![9]));
        // Broken off midway: nothing counts, but the breaking token may start another.
        let broken = p.after(&c, 4);
        assert_eq!(broken.tokens(&c), 1);
        assert!(broken.met[1] && !broken.met[0]);
        let p = p.after(&c, 9);
        assert!(p.met[0] && !p.all_met());
        assert_eq!(p.wanted(&c), [4]);
        assert!(p.after(&c, 4).all_met());
        assert_eq!(p.after(&c, 4).tokens(&c), 4);
    }

    #[test]
    fn no_repeat_ngram_bans_completions() {
        let p = SearchParams {
            no_repeat_ngram_size: 2,
            ..params()
        };
        // seq 5 1 2 1: bigram (1,2) seen, last token 1 -> 2 banned.
        let mut s = vec![0.0; 4];
        p.process(&[5, 1, 2, 1], &mut s);
        assert_eq!(s, vec![0.0, 0.0, f32::NEG_INFINITY, 0.0]);
    }

    #[test]
    fn repetition_penalty_scales_by_sign() {
        let p = SearchParams {
            repetition_penalty: 2.0,
            ..params()
        };
        let mut s = vec![1.0, -1.0, 4.0, -3.0];
        p.process(&[5, 1, 2], &mut s);
        assert_eq!(s, vec![1.0, -2.0, 2.0, -3.0]);
    }

    #[test]
    fn forced_tokens_and_min_length() {
        let p = SearchParams {
            forced_bos: Some(3),
            forced_eos: Some(0),
            min_length: 3,
            bad_words: vec![vec![1]],
            ..params()
        };
        let mut s = vec![0.5; 4];
        p.process(&[5], &mut s);
        assert_eq!(
            s,
            vec![f32::NEG_INFINITY, f32::NEG_INFINITY, f32::NEG_INFINITY, 0.0]
        );
        let mut s = vec![0.5; 4];
        p.process(&[5, 3], &mut s);
        assert_eq!(s, vec![f32::NEG_INFINITY, f32::NEG_INFINITY, 0.5, 0.5]);
        let mut s = vec![0.5; 4];
        p.process(&[5, 3, 2, 2, 2, 2, 2, 2, 2], &mut s);
        assert_eq!(
            s,
            vec![0.0, f32::NEG_INFINITY, f32::NEG_INFINITY, f32::NEG_INFINITY]
        );
    }
}
