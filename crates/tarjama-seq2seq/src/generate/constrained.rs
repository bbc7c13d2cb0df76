//! Constrained beam search: one sentence's output must contain given token sequences
//! (a glossary's English terms), by dynamic beam allocation.

use std::collections::VecDeque;

use candle_core::Tensor;

use super::beam::top_k_into;
use super::params::{Hypothesis, SearchParams};
use crate::attention::log_sum_exp;
use crate::model::{last_position, EncoderDecoder};
use crate::values::with_values;

/// An ended hypothesis: (sequence, normalized score, summed log-probability).
type Ended = (Vec<u32>, f32, f32);

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
    let mut done: Vec<Ended> = Vec::new();
    let mut fallback: Vec<Ended> = Vec::new();
    let by_score = |a: &Ended, b: &Ended| b.1.total_cmp(&a.1);
    loop {
        let last: Vec<u32> = beams.iter().map(|b| *b.seq.last().unwrap_or(&0)).collect();
        let ids = Tensor::from_vec(last, (beams.len(), 1), device)?;
        let logits = last_position(&model.step(&ids, &mut state)?)?;
        let vocab = logits.dim(1)?;
        let offered = offer(&logits, vocab, &beams, &constraints, nb, params)?;
        let cur_len = beams[0].seq.len();
        let mut banks = bank(
            offered,
            &beams,
            &constraints,
            params,
            &mut done,
            &mut fallback,
        );
        done.sort_by(by_score);
        done.truncate(nb);
        let next = take_from_banks(&mut banks, nb);
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

/// Every beam's candidates, (score, beam, token), each pair once, best first: its best
/// `nb` tokens and the tokens that advance its constraints.
fn offer(
    logits: &Tensor,
    vocab: usize,
    beams: &[ConstrainedBeam],
    constraints: &[Vec<u32>],
    nb: usize,
    params: &SearchParams,
) -> candle_core::Result<Vec<(f32, usize, u32)>> {
    // Every beam's candidates: (score, beam, token), each pair once.
    let mut offered: Vec<(f32, usize, u32)> = with_values(logits, |all| {
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
            for t in beam.progress.wanted(constraints) {
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
    Ok(offered)
}

/// Sorts the candidates `offered` into banks by constraint tokens written, each
/// best-first; those that end go to `done` when they wrote every constraint, to
/// `fallback` otherwise.
fn bank(
    offered: Vec<(f32, usize, u32)>,
    beams: &[ConstrainedBeam],
    constraints: &[Vec<u32>],
    params: &SearchParams,
    done: &mut Vec<Ended>,
    fallback: &mut Vec<Ended>,
) -> Vec<VecDeque<(usize, ConstrainedBeam)>> {
    let lp = params.length_penalty;
    // Banks by constraint tokens written, each best-first.
    let mut banks: Vec<VecDeque<(usize, ConstrainedBeam)>> =
        (0..=constraints.iter().map(Vec::len).sum::<usize>())
            .map(|_| Default::default())
            .collect();
    for (score, b, tok) in offered {
        let progress = beams[b].progress.after(constraints, tok);
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
        let bank = progress.tokens(constraints);
        let beam = ConstrainedBeam {
            seq,
            score,
            progress,
        };
        banks[bank].push_back((b, beam));
    }
    banks
}

/// Takes up to `nb` new beams from the banks in turn, most advanced bank first, each
/// bank's best first.
fn take_from_banks(
    banks: &mut [VecDeque<(usize, ConstrainedBeam)>],
    nb: usize,
) -> Vec<(usize, ConstrainedBeam)> {
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
    next
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
