//! chrF (Popović 2015) and chrF++ (Popović 2017) exactly as sacreBLEU 2.x computes them.
//!
//! Mirrors `sacrebleu/metrics/chrf.py`: character n-grams of orders 1..=6 over the segment
//! with whitespace removed (unless `whitespace`), plus word n-grams of orders 1..=2 for
//! chrF++ after sacreBLEU's punctuation split; per-order (hyp, ref, match) counts are summed
//! over the corpus and the F-beta score (beta 2) is taken over the averaged precision and
//! recall of the orders that have n-grams on both sides ("effective order"), or with
//! chrF++.py's epsilon smoothing when `eps_smoothing` is set.

use std::collections::HashMap;
use std::hash::Hash;

use crate::metric::{for_each_segment, refs_per_segment, sentence_refs, CorpusMetric, Signature};
use crate::{pytext, EvalError, Result};

/// Options of chrF, named after sacreBLEU's `CHRF(...)` arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ChrfConfig {
    /// Character n-gram order (default 6).
    pub char_order: usize,
    /// Word n-gram order: 0 for chrF, 2 for chrF++.
    pub word_order: usize,
    /// Weight of recall relative to precision (default 2).
    pub beta: u32,
    /// Lowercase both sides first.
    pub lowercase: bool,
    /// Keep whitespace inside character n-grams (sacreBLEU default: no).
    pub whitespace: bool,
    /// chrF++.py-style epsilon smoothing instead of the effective order (default: no).
    pub eps_smoothing: bool,
}

impl Default for ChrfConfig {
    fn default() -> Self {
        ChrfConfig {
            char_order: 6,
            word_order: 0,
            beta: 2,
            lowercase: false,
            whitespace: false,
            eps_smoothing: false,
        }
    }
}

impl ChrfConfig {
    /// chrF++: the defaults with word order 2.
    pub fn chrf_plus_plus() -> Self {
        ChrfConfig {
            word_order: 2,
            ..ChrfConfig::default()
        }
    }

    /// sacreBLEU's display name: `chrF2`, `chrF2++`.
    pub fn name(&self) -> String {
        format!("chrF{}{}", self.beta, "+".repeat(self.word_order))
    }

    /// sacreBLEU's signature for this configuration with `nrefs` references per segment.
    pub fn signature(&self, nrefs: usize) -> Signature {
        Signature {
            nrefs,
            bootstrap: None,
            fields: vec![
                (
                    "case",
                    if self.lowercase { "lc" } else { "mixed" }.to_string(),
                ),
                (
                    "eff",
                    if self.eps_smoothing { "no" } else { "yes" }.to_string(),
                ),
                ("nc", self.char_order.to_string()),
                ("nw", self.word_order.to_string()),
                (
                    "space",
                    if self.whitespace { "yes" } else { "no" }.to_string(),
                ),
            ],
        }
    }

    fn order(&self) -> usize {
        self.char_order + self.word_order
    }

    fn validate(&self) -> Result<()> {
        if self.order() == 0 {
            return Err(EvalError::InvalidConfig(
                "chrF needs a character or word order of at least 1",
            ));
        }
        Ok(())
    }

    /// sacreBLEU `CHRF._compute_f_score` over flattened (hyp, ref, match) triples.
    pub fn f_score(&self, stats: &[f64]) -> f64 {
        let eps = 1e-16;
        let factor = f64::from(self.beta).powi(2);
        let mut score = 0.0;
        let mut effective_order = 0usize;
        let (mut avg_prec, mut avg_rec) = (0.0, 0.0);
        for triple in stats.chunks_exact(3).take(self.order()) {
            let (n_hyp, n_ref, n_match) = (triple[0], triple[1], triple[2]);
            let prec = if n_hyp > 0.0 { n_match / n_hyp } else { eps };
            let rec = if n_ref > 0.0 { n_match / n_ref } else { eps };
            let denom = factor * prec + rec;
            score += if denom > 0.0 {
                (1.0 + factor) * prec * rec / denom
            } else {
                eps
            };
            if n_hyp > 0.0 && n_ref > 0.0 {
                avg_prec += prec;
                avg_rec += rec;
                effective_order += 1;
            }
        }
        if self.eps_smoothing {
            return 100.0 * score / self.order() as f64;
        }
        if effective_order == 0 {
            avg_prec = 0.0;
            avg_rec = 0.0;
        } else {
            avg_prec /= effective_order as f64;
            avg_rec /= effective_order as f64;
        }
        if avg_prec + avg_rec != 0.0 {
            let mut score = (1.0 + factor) * avg_prec * avg_rec;
            score /= factor * avg_prec + avg_rec;
            100.0 * score
        } else {
            0.0
        }
    }
}

/// A chrF or chrF++ score.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ChrfScore {
    /// `chrF2` or `chrF2++`.
    pub name: String,
    /// The score, 0..100.
    pub score: f64,
    /// Flattened (hyp, ref, match) n-gram counts per order: character orders, then word.
    pub stats: Vec<u64>,
    /// sacreBLEU's reproducibility signature.
    pub signature: Signature,
}

fn count<K: Hash + Eq>(items: impl Iterator<Item = K>) -> HashMap<K, u64> {
    let mut counts = HashMap::new();
    for item in items {
        *counts.entry(item).or_insert(0) += 1;
    }
    counts
}

/// sacreBLEU `_get_match_statistics`: [hyp count, ref count, matches] for one order.
fn match_stats<K: Hash + Eq>(hyp: &HashMap<K, u64>, reference: &HashMap<K, u64>) -> [u64; 3] {
    let mut matches = 0;
    let mut hyp_count = 0;
    for (gram, &c) in hyp {
        hyp_count += c;
        if let Some(&r) = reference.get(gram) {
            matches += c.min(r);
        }
    }
    [
        // Hypothesis n-grams do not count when the reference has none of that order.
        if reference.is_empty() { 0 } else { hyp_count },
        reference.values().sum(),
        matches,
    ]
}

const PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

/// sacreBLEU `_remove_punctuation`: split off one ASCII punctuation mark at the end of a
/// word, or else at its start (so `(hi)` becomes `(hi` and `)`, sacreBLEU issue #124).
fn words(sent: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for w in pytext::split(sent) {
        let mut chars = w.chars();
        let first = chars.next();
        let last = chars.next_back();
        match (first, last) {
            (Some(_), None) => out.push(w),
            (Some(f), Some(l)) => {
                if PUNCTUATION.contains(l) {
                    let cut = w.len() - l.len_utf8();
                    out.extend([&w[..cut], &w[cut..]]);
                } else if PUNCTUATION.contains(f) {
                    let cut = f.len_utf8();
                    out.extend([&w[..cut], &w[cut..]]);
                } else {
                    out.push(w);
                }
            }
            (None, _) => {}
        }
    }
    out
}

/// The n-gram counters of one segment: one per character order, then one per word order.
struct SegmentNgrams<'a> {
    chars: Vec<HashMap<&'a [char], u64>>,
    words: Vec<HashMap<&'a [&'a str], u64>>,
}

fn segment_ngrams<'a>(
    chars: &'a [char],
    words: &'a [&'a str],
    config: &ChrfConfig,
) -> SegmentNgrams<'a> {
    SegmentNgrams {
        chars: (1..=config.char_order)
            .map(|n| count(chars.windows(n)))
            .collect(),
        words: (1..=config.word_order)
            .map(|n| count(words.windows(n)))
            .collect(),
    }
}

fn segment_chars(segment: &str, config: &ChrfConfig) -> Vec<char> {
    if config.whitespace {
        segment.chars().collect()
    } else {
        segment.chars().filter(|&c| !pytext::is_space(c)).collect()
    }
}

/// Statistics of one hypothesis against its references: the flattened triples of the
/// reference with the best F score (the first on ties), as sacreBLEU picks them.
pub fn segment_stats(hyp: &str, refs: &[&str], config: &ChrfConfig) -> Result<Vec<u64>> {
    config.validate()?;
    let lower = |s: &str| {
        if config.lowercase {
            s.to_lowercase()
        } else {
            s.to_string()
        }
    };
    let hyp = lower(hyp);
    let hyp_chars = segment_chars(&hyp, config);
    let hyp_words = if config.word_order > 0 {
        words(&hyp)
    } else {
        Vec::new()
    };
    let hyp_ngrams = segment_ngrams(&hyp_chars, &hyp_words, config);

    let mut best: Option<(f64, Vec<u64>)> = None;
    for reference in refs {
        let reference = lower(reference);
        let ref_chars = segment_chars(&reference, config);
        let ref_words = if config.word_order > 0 {
            words(&reference)
        } else {
            Vec::new()
        };
        let ref_ngrams = segment_ngrams(&ref_chars, &ref_words, config);
        let mut stats = Vec::with_capacity(3 * config.order());
        for (h, r) in hyp_ngrams.chars.iter().zip(&ref_ngrams.chars) {
            stats.extend(match_stats(h, r));
        }
        for (h, r) in hyp_ngrams.words.iter().zip(&ref_ngrams.words) {
            stats.extend(match_stats(h, r));
        }
        let as_f64: Vec<f64> = stats.iter().map(|&v| v as f64).collect();
        let f = config.f_score(&as_f64);
        if best.as_ref().is_none_or(|(best_f, _)| f > *best_f) {
            best = Some((f, stats));
        }
    }
    Ok(best.map(|(_, stats)| stats).unwrap_or_default())
}

fn score_from_stats(stats: Vec<u64>, nrefs: usize, config: &ChrfConfig) -> ChrfScore {
    let as_f64: Vec<f64> = stats.iter().map(|&v| v as f64).collect();
    ChrfScore {
        name: config.name(),
        score: config.f_score(&as_f64),
        stats,
        signature: config.signature(nrefs),
    }
}

/// Corpus chrF of `hyps` against one reference per segment (sacreBLEU `corpus_chrf`).
pub fn corpus_chrf<H: AsRef<str>, R: AsRef<str>>(
    hyps: &[H],
    refs: &[R],
    config: &ChrfConfig,
) -> Result<ChrfScore> {
    corpus_chrf_multi(hyps, &[refs], config)
}

/// Corpus chrF against several reference streams, each as long as `hyps`.
pub fn corpus_chrf_multi<H: AsRef<str>, R: AsRef<str>>(
    hyps: &[H],
    ref_streams: &[&[R]],
    config: &ChrfConfig,
) -> Result<ChrfScore> {
    config.validate()?;
    let mut total = vec![0u64; 3 * config.order()];
    for_each_segment(hyps, ref_streams, |hyp, refs| {
        for (t, v) in total.iter_mut().zip(segment_stats(hyp, refs, config)?) {
            *t += v;
        }
        Ok(())
    })?;
    Ok(score_from_stats(total, ref_streams.len(), config))
}

/// chrF of one sentence (sacreBLEU `sentence_chrf`).
pub fn sentence_chrf<R: AsRef<str>>(
    hyp: &str,
    refs: &[R],
    config: &ChrfConfig,
) -> Result<ChrfScore> {
    let refs = sentence_refs(refs)?;
    let stats = segment_stats(hyp, &refs, config)?;
    Ok(score_from_stats(stats, refs.len(), config))
}

impl CorpusMetric for ChrfConfig {
    fn name(&self) -> String {
        ChrfConfig::name(self)
    }

    fn segment_stats_multi(&self, hyps: &[&str], ref_streams: &[&[&str]]) -> Result<Vec<Vec<f64>>> {
        let refs = refs_per_segment(hyps.len(), ref_streams)?;
        hyps.iter()
            .zip(&refs)
            .map(|(h, r)| {
                segment_stats(h, r, self).map(|s| s.into_iter().map(|v| v as f64).collect())
            })
            .collect()
    }

    fn score_from_stats(&self, stats: &[f64]) -> f64 {
        self.f_score(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn punctuation_split_follows_sacrebleu() {
        assert_eq!(words("(hi) a, .b x"), ["(hi", ")", "a", ",", ".", "b", "x"]);
    }

    #[test]
    fn names_and_signatures() {
        assert_eq!(ChrfConfig::default().name(), "chrF2");
        assert_eq!(ChrfConfig::chrf_plus_plus().name(), "chrF2++");
        assert!(ChrfConfig::default()
            .signature(1)
            .to_string()
            .starts_with("nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:"));
    }

    #[test]
    fn identical_is_100() {
        let s = corpus_chrf(
            &["Hello there!"],
            &["Hello there!"],
            &ChrfConfig::chrf_plus_plus(),
        )
        .unwrap();
        assert!((s.score - 100.0).abs() < 1e-12);
    }
}
