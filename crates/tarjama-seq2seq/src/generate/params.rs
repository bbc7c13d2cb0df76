//! What a search is asked for ([`SearchParams`], with transformers' logits processors)
//! and what it gives ([`Hypothesis`]).

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
    pub(super) fn process(&self, seq: &[u32], scores: &mut [f32]) {
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

    /// Whether `token` ends a sequence.
    pub(super) fn is_eos(&self, token: u32) -> bool {
        self.eos.contains(&token)
    }
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
