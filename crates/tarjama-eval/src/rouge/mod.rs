//! ROUGE-N, ROUGE-L and ROUGE-Lsum exactly as Google's `rouge-score` package computes them.
//!
//! Mirrors `rouge_score/rouge_scorer.py` and `tokenize.py`: text is lowercased, every run
//! of characters outside `[a-z0-9]` becomes a separator, tokens longer than 3 characters
//! are Porter-stemmed when the stemmer is on ([`porter`]); ROUGE-N clips n-gram counts,
//! ROUGE-L uses the longest common subsequence, ROUGE-Lsum the summary-level union LCS
//! over newline-separated sentences (with rouge-score's guard against counting a token
//! twice). The corpus figure is the mean of the segment scores.

pub mod porter;

use std::collections::HashMap;
use std::str::FromStr;

use crate::metric::{check_lengths, refs_per_segment, CorpusMetric};
use crate::{EvalError, Result};

/// A ROUGE variant, named as rouge-score names it (`rouge1`, `rouge2`, `rougeL`, `rougeLsum`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum RougeType {
    /// ROUGE-N: n-gram overlap of order n (1 or more).
    N(usize),
    /// ROUGE-L: longest common subsequence over the whole text.
    L,
    /// ROUGE-Lsum: summary-level LCS over sentences separated by newlines.
    Lsum,
}

impl RougeType {
    /// ROUGE-1, ROUGE-2, ROUGE-L and ROUGE-Lsum, the usual report.
    pub const STANDARD: [RougeType; 4] = [
        RougeType::N(1),
        RougeType::N(2),
        RougeType::L,
        RougeType::Lsum,
    ];

    /// rouge-score's key: `rouge1`, `rougeL`, `rougeLsum`.
    pub fn key(self) -> String {
        match self {
            RougeType::N(n) => format!("rouge{n}"),
            RougeType::L => "rougeL".to_string(),
            RougeType::Lsum => "rougeLsum".to_string(),
        }
    }

    /// Display name: `ROUGE-1`, `ROUGE-L`, `ROUGE-Lsum`.
    pub fn display_name(self) -> String {
        match self {
            RougeType::N(n) => format!("ROUGE-{n}"),
            RougeType::L => "ROUGE-L".to_string(),
            RougeType::Lsum => "ROUGE-Lsum".to_string(),
        }
    }
}

impl FromStr for RougeType {
    type Err = EvalError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "rougeL" => Ok(RougeType::L),
            "rougeLsum" => Ok(RougeType::Lsum),
            // rouge-score accepts exactly one digit after "rouge" (`rouge[0-9]$`), not 0.
            _ => match s
                .strip_prefix("rouge")
                .and_then(|d| d.parse::<usize>().ok())
            {
                Some(n) if (1..=9).contains(&n) && s.len() == 6 => Ok(RougeType::N(n)),
                _ => Err(EvalError::UnknownName {
                    kind: "ROUGE type",
                    name: s.to_string(),
                    expected: "rouge1..rouge9, rougeL, rougeLsum",
                }),
            },
        }
    }
}

/// Precision, recall and F-measure, each 0..1 as rouge-score reports them.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct RougeScore {
    /// Share of the prediction's units found in the target.
    pub precision: f64,
    /// Share of the target's units found in the prediction.
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub fmeasure: f64,
}

impl RougeScore {
    fn new(precision: f64, recall: f64) -> Self {
        RougeScore {
            precision,
            recall,
            fmeasure: fmeasure(precision, recall),
        }
    }
}

/// rouge-score `scoring.fmeasure`.
fn fmeasure(precision: f64, recall: f64) -> f64 {
    if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    }
}

/// rouge-score `tokenize.tokenize` with its `DefaultTokenizer`.
pub fn tokenize(text: &str, use_stemmer: bool) -> Vec<String> {
    let lowered = text.to_lowercase();
    lowered
        .split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit()))
        .filter(|t| !t.is_empty())
        .map(|t| {
            // Only words longer than 3 characters are stemmed (rouge-score's rule).
            if use_stemmer && t.len() > 3 {
                porter::stem(t)
            } else {
                t.to_string()
            }
        })
        // rouge-score's final check drops tokens that stemming left empty or invalid.
        .filter(|t| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        .collect()
}

/// Computes rouge-score's `RougeScorer(types, use_stemmer).score(target, prediction)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RougeScorer {
    types: Vec<RougeType>,
    use_stemmer: bool,
}

impl RougeScorer {
    /// A scorer for the given variants; `use_stemmer` as in rouge-score (true is the usual
    /// setting for summarization papers).
    pub fn new(types: &[RougeType], use_stemmer: bool) -> Self {
        RougeScorer {
            types: types.to_vec(),
            use_stemmer,
        }
    }

    /// The variants this scorer computes, in order.
    pub fn types(&self) -> &[RougeType] {
        &self.types
    }

    /// Whether tokens are stemmed.
    pub fn use_stemmer(&self) -> bool {
        self.use_stemmer
    }

    /// A signature in the spirit of sacreBLEU's, naming what decides the numbers:
    /// `stem:yes|tok:default|agg:mean|rouge-score:0.1.2`.
    pub fn signature(&self) -> String {
        format!(
            "stem:{}|tok:default|agg:mean|rouge-score:{}",
            if self.use_stemmer { "yes" } else { "no" },
            crate::ROUGE_SCORE_VERSION
        )
    }

    /// Scores one prediction against its target, one entry per variant in order.
    pub fn score(&self, target: &str, prediction: &str) -> Vec<(RougeType, RougeScore)> {
        let needs_tokens = self.types.iter().any(|t| *t != RougeType::Lsum);
        let (target_tokens, prediction_tokens) = if needs_tokens {
            (
                tokenize(target, self.use_stemmer),
                tokenize(prediction, self.use_stemmer),
            )
        } else {
            (Vec::new(), Vec::new())
        };
        self.types
            .iter()
            .map(|&kind| {
                let score = match kind {
                    RougeType::N(n) => score_ngrams(&target_tokens, &prediction_tokens, n),
                    RougeType::L => score_lcs(&target_tokens, &prediction_tokens),
                    RougeType::Lsum => {
                        let sents = |text: &str| -> Vec<Vec<String>> {
                            text.split('\n')
                                .filter(|s| !s.is_empty())
                                .map(|s| tokenize(s, self.use_stemmer))
                                .collect()
                        };
                        summary_level_lcs(&sents(target), &sents(prediction))
                    }
                };
                (kind, score)
            })
            .collect()
    }

    /// rouge-score `score_multi`: per variant, the score against the target with the best
    /// F-measure (the first on ties). With no target every score is 0.
    pub fn score_multi<T: AsRef<str>>(
        &self,
        targets: &[T],
        prediction: &str,
    ) -> Vec<(RougeType, RougeScore)> {
        let per_target: Vec<Vec<(RougeType, RougeScore)>> = targets
            .iter()
            .map(|t| self.score(t.as_ref(), prediction))
            .collect();
        (0..self.types.len())
            .map(|k| {
                let mut best: Option<RougeScore> = None;
                for scores in &per_target {
                    let s = scores[k].1;
                    // numpy.argmax: the first maximum wins.
                    if best.is_none_or(|b| s.fmeasure > b.fmeasure) {
                        best = Some(s);
                    }
                }
                (self.types[k], best.unwrap_or_default())
            })
            .collect()
    }

    /// Scores every segment and averages: per-segment scores and the mean per variant.
    pub fn score_corpus<T: AsRef<str>, P: AsRef<str>>(
        &self,
        targets: &[T],
        predictions: &[P],
    ) -> Result<RougeCorpus> {
        self.score_corpus_multi(&[targets], predictions)
    }

    /// [`RougeScorer::score_corpus`] with several target streams, each as long as
    /// `predictions`; each segment is scored with [`RougeScorer::score_multi`].
    pub fn score_corpus_multi<T: AsRef<str>, P: AsRef<str>>(
        &self,
        target_streams: &[&[T]],
        predictions: &[P],
    ) -> Result<RougeCorpus> {
        if target_streams.is_empty() {
            return Err(EvalError::InvalidConfig(
                "at least one reference stream is needed",
            ));
        }
        for stream in target_streams {
            check_lengths(predictions.len(), stream.len())?;
        }
        let segments: Vec<Vec<RougeScore>> = predictions
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let targets: Vec<&str> = target_streams.iter().map(|s| s[i].as_ref()).collect();
                let scores = if targets.len() == 1 {
                    self.score(targets[0], p.as_ref())
                } else {
                    self.score_multi(&targets, p.as_ref())
                };
                scores.into_iter().map(|(_, s)| s).collect()
            })
            .collect();
        let n = segments.len() as f64;
        let mean = (0..self.types.len())
            .map(|k| {
                if segments.is_empty() {
                    return RougeScore::default();
                }
                let sum =
                    |f: fn(&RougeScore) -> f64| segments.iter().map(|s| f(&s[k])).sum::<f64>() / n;
                RougeScore {
                    precision: sum(|s| s.precision),
                    recall: sum(|s| s.recall),
                    fmeasure: sum(|s| s.fmeasure),
                }
            })
            .collect();
        Ok(RougeCorpus {
            types: self.types.clone(),
            mean,
            segments,
        })
    }
}

/// ROUGE over a corpus.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RougeCorpus {
    /// The variants, in the order of the columns below.
    pub types: Vec<RougeType>,
    /// Mean over segments of precision, recall and F, per variant.
    pub mean: Vec<RougeScore>,
    /// Scores of each segment, per variant.
    pub segments: Vec<Vec<RougeScore>>,
}

fn count_ngrams(tokens: &[String], n: usize) -> HashMap<&[String], u64> {
    let mut counts = HashMap::new();
    if n > 0 {
        for gram in tokens.windows(n) {
            *counts.entry(gram).or_insert(0) += 1;
        }
    }
    counts
}

/// rouge-score `_score_ngrams`.
fn score_ngrams(target: &[String], prediction: &[String], n: usize) -> RougeScore {
    let target_ngrams = count_ngrams(target, n);
    let prediction_ngrams = count_ngrams(prediction, n);
    let overlap: u64 = target_ngrams
        .iter()
        .map(|(gram, &c)| c.min(prediction_ngrams.get(gram).copied().unwrap_or(0)))
        .sum();
    let target_count: u64 = target_ngrams.values().sum();
    let prediction_count: u64 = prediction_ngrams.values().sum();
    RougeScore::new(
        overlap as f64 / prediction_count.max(1) as f64,
        overlap as f64 / target_count.max(1) as f64,
    )
}

/// rouge-score `_lcs_table`: `table[i][j]` is the LCS length of `a[..i]` and `b[..j]`.
fn lcs_table(a: &[String], b: &[String]) -> Vec<Vec<u32>> {
    let mut table = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            table[i][j] = if a[i - 1] == b[j - 1] {
                table[i - 1][j - 1] + 1
            } else {
                table[i - 1][j].max(table[i][j - 1])
            };
        }
    }
    table
}

/// rouge-score `_score_lcs`.
fn score_lcs(target: &[String], prediction: &[String]) -> RougeScore {
    if target.is_empty() || prediction.is_empty() {
        return RougeScore::default();
    }
    let lcs = f64::from(lcs_table(target, prediction)[target.len()][prediction.len()]);
    RougeScore::new(lcs / prediction.len() as f64, lcs / target.len() as f64)
}

/// rouge-score `lcs_ind` / `_backtrack_norec`: indices into `reference` of one LCS, chosen
/// with the reference's tie-breaking (move left only when strictly better).
fn lcs_indices(reference: &[String], candidate: &[String]) -> Vec<usize> {
    let table = lcs_table(reference, candidate);
    let (mut i, mut j) = (reference.len(), candidate.len());
    let mut out = Vec::new();
    while i > 0 && j > 0 {
        if reference[i - 1] == candidate[j - 1] {
            out.push(i - 1);
            i -= 1;
            j -= 1;
        } else if table[i][j - 1] > table[i - 1][j] {
            j -= 1;
        } else {
            i -= 1;
        }
    }
    out.reverse();
    out
}

/// rouge-score `_summary_level_lcs` (ROUGE paper section 3.2, ROUGE-1.5.5 behaviour).
fn summary_level_lcs(reference: &[Vec<String>], candidate: &[Vec<String>]) -> RougeScore {
    if reference.is_empty() || candidate.is_empty() {
        return RougeScore::default();
    }
    let m: usize = reference.iter().map(Vec::len).sum();
    let n: usize = candidate.iter().map(Vec::len).sum();
    if m == 0 || n == 0 {
        return RougeScore::default();
    }
    let mut counts_r: HashMap<&str, i64> = HashMap::new();
    let mut counts_c: HashMap<&str, i64> = HashMap::new();
    for token in reference.iter().flatten() {
        *counts_r.entry(token).or_insert(0) += 1;
    }
    for token in candidate.iter().flatten() {
        *counts_c.entry(token).or_insert(0) += 1;
    }
    let mut hits = 0usize;
    for sentence in reference {
        let mut union: Vec<usize> = candidate
            .iter()
            .flat_map(|c| lcs_indices(sentence, c))
            .collect();
        union.sort_unstable();
        union.dedup();
        for i in union {
            let token = sentence[i].as_str();
            let (c, r) = (
                counts_c.entry(token).or_insert(0),
                counts_r.get(token).copied(),
            );
            // Prevent double counting, as ROUGE-1.5.5 does.
            if *c > 0 && r.is_some_and(|r| r > 0) {
                hits += 1;
                *c -= 1;
                if let Some(r) = counts_r.get_mut(token) {
                    *r -= 1;
                }
            }
        }
    }
    RougeScore::new(hits as f64 / n as f64, hits as f64 / m as f64)
}

/// One ROUGE variant as a [`CorpusMetric`]: the F-measure averaged over segments, on
/// rouge-score's 0..1 scale, so that it can be bootstrapped like BLEU and chrF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RougeMetric {
    /// The variant.
    pub kind: RougeType,
    /// Whether tokens are stemmed.
    pub use_stemmer: bool,
}

impl CorpusMetric for RougeMetric {
    fn name(&self) -> String {
        self.kind.display_name()
    }

    fn segment_stats_multi(&self, hyps: &[&str], ref_streams: &[&[&str]]) -> Result<Vec<Vec<f64>>> {
        let refs = refs_per_segment(hyps.len(), ref_streams)?;
        let scorer = RougeScorer::new(&[self.kind], self.use_stemmer);
        Ok(hyps
            .iter()
            .zip(&refs)
            .map(|(h, r)| vec![scorer.score_multi(r, h)[0].1.fmeasure, 1.0])
            .collect())
    }

    fn score_from_stats(&self, stats: &[f64]) -> f64 {
        match stats {
            [sum, n, ..] if *n > 0.0 => sum / n,
            _ => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_drops_non_alphanumerics_and_stems_long_words() {
        assert_eq!(
            tokenize("The Cats, running!  élan 42", true),
            ["the", "cat", "run", "lan", "42"]
        );
        assert_eq!(tokenize("The Cats", false), ["the", "cats"]);
    }

    #[test]
    fn rouge_type_names() {
        assert_eq!("rouge2".parse::<RougeType>().unwrap(), RougeType::N(2));
        assert_eq!("rougeLsum".parse::<RougeType>().unwrap(), RougeType::Lsum);
        assert!("rouge0".parse::<RougeType>().is_err());
        assert!("rouge".parse::<RougeType>().is_err());
    }

    #[test]
    fn doc_example_of_rouge_score() {
        // From rouge-score's README.
        let scorer = RougeScorer::new(&[RougeType::N(1), RougeType::L], true);
        let s = scorer.score(
            "The quick brown fox jumps over the lazy dog",
            "The quick brown dog jumps on the log.",
        );
        assert!((s[0].1.precision - 0.75).abs() < 1e-12);
        assert!((s[0].1.recall - 0.6666666666666666).abs() < 1e-12);
        assert!((s[1].1.fmeasure - 0.5882352941176471).abs() < 1e-12);
    }
}
