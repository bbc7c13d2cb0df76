//! BLEU (Papineni et al., 2002) exactly as sacreBLEU 2.x computes it.
//!
//! Mirrors `sacrebleu/metrics/bleu.py`: segments are right-stripped, optionally lowercased
//! and tokenized; n-grams up to order 4 are clipped against the reference (the maximum count
//! over references when there are several); the reference length is the one closest to the
//! hypothesis length (the shorter on ties); statistics are summed over the corpus before
//! precisions, smoothing and the brevity penalty are applied.

use std::collections::HashMap;
use std::str::FromStr;

use crate::metric::{for_each_segment, refs_per_segment, sentence_refs, CorpusMetric, Signature};
use crate::tokenize::Tokenizer;
use crate::{pytext, EvalError, Result};

/// sacreBLEU's default maximum n-gram order.
pub const MAX_NGRAM_ORDER: usize = 4;

/// How zero n-gram matches are smoothed (Chen and Cherry, WMT 2014).
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
#[serde(tag = "method", content = "value", rename_all = "kebab-case")]
pub enum Smoothing {
    /// No smoothing: one order without a match makes the score 0.
    None,
    /// Method 1: a zero match count becomes this value (sacreBLEU default 0.1).
    Floor(f64),
    /// Method 2: add this value to counts and totals of orders 2 and up (default 1).
    AddK(f64),
    /// Method 3, NIST's (mteval-v13a): each successive zero-match order gets 1/2^k.
    /// sacreBLEU's default.
    #[default]
    Exp,
}

impl Smoothing {
    /// sacreBLEU's default value for `floor`.
    pub const FLOOR_DEFAULT: f64 = 0.1;
    /// sacreBLEU's default value for `add-k`.
    pub const ADD_K_DEFAULT: f64 = 1.0;

    /// Builds a method from its sacreBLEU name and optional value (`None` takes the default).
    pub fn from_name(name: &str, value: Option<f64>) -> Result<Self> {
        match name {
            "none" => Ok(Smoothing::None),
            "exp" => Ok(Smoothing::Exp),
            "floor" => Ok(Smoothing::Floor(value.unwrap_or(Self::FLOOR_DEFAULT))),
            "add-k" => Ok(Smoothing::AddK(value.unwrap_or(Self::ADD_K_DEFAULT))),
            _ => Err(EvalError::UnknownName {
                kind: "smoothing method",
                name: name.to_string(),
                expected: "exp, floor, add-k, none",
            }),
        }
    }

    /// The name in sacreBLEU's signature, with the value for methods that take one
    /// (`exp`, `floor[0.10]`, `add-k[1.00]`).
    pub fn signature(self) -> String {
        match self {
            Smoothing::None => "none".to_string(),
            Smoothing::Exp => "exp".to_string(),
            Smoothing::Floor(v) => format!("floor[{v:.2}]"),
            Smoothing::AddK(v) => format!("add-k[{v:.2}]"),
        }
    }
}

impl FromStr for Smoothing {
    type Err = EvalError;

    fn from_str(s: &str) -> Result<Self> {
        Smoothing::from_name(s, None)
    }
}

/// Options of BLEU, named after sacreBLEU's `BLEU(...)` arguments.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BleuConfig {
    /// Tokenizer applied to hypotheses and references (default `13a`).
    pub tokenizer: Tokenizer,
    /// Smoothing method (default `exp`).
    pub smoothing: Smoothing,
    /// Lowercase both sides first (`case:lc` in the signature).
    pub lowercase: bool,
    /// Average only over orders that have n-grams at all; sacreBLEU's `sentence_bleu`
    /// turns this on, `corpus_bleu` leaves it off.
    pub effective_order: bool,
    /// Highest n-gram order (default 4).
    pub max_ngram_order: usize,
}

impl Default for BleuConfig {
    fn default() -> Self {
        BleuConfig {
            tokenizer: Tokenizer::default(),
            smoothing: Smoothing::default(),
            lowercase: false,
            effective_order: false,
            max_ngram_order: MAX_NGRAM_ORDER,
        }
    }
}

impl BleuConfig {
    /// The defaults of sacreBLEU's `sentence_bleu`: like [`Default`] but with effective order.
    pub fn sentence() -> Self {
        BleuConfig {
            effective_order: true,
            ..BleuConfig::default()
        }
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
                    if self.effective_order { "yes" } else { "no" }.to_string(),
                ),
                ("tok", self.tokenizer.signature().to_string()),
                ("smooth", self.smoothing.signature()),
            ],
        }
    }

    fn validate(&self) -> Result<()> {
        if self.max_ngram_order == 0 {
            return Err(EvalError::InvalidConfig(
                "BLEU max n-gram order must be at least 1",
            ));
        }
        Ok(())
    }

    fn preprocess(&self, segment: &str) -> String {
        let segment = pytext::rstrip(segment);
        if self.lowercase {
            self.tokenizer
                .tokenize(&segment.to_lowercase())
                .into_owned()
        } else {
            self.tokenizer.tokenize(segment).into_owned()
        }
    }
}

/// BLEU's sufficient statistics, for one segment or summed over a corpus.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct BleuStats {
    /// Hypothesis length in tokens.
    pub sys_len: u64,
    /// Closest reference length in tokens.
    pub ref_len: u64,
    /// Clipped n-gram matches, orders 1..=max.
    pub counts: Vec<u64>,
    /// Hypothesis n-grams, orders 1..=max.
    pub totals: Vec<u64>,
}

impl BleuStats {
    /// Adds another segment's statistics to these.
    pub fn add(&mut self, other: &BleuStats) {
        self.sys_len += other.sys_len;
        self.ref_len += other.ref_len;
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), 0);
            self.totals.resize(other.totals.len(), 0);
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        for (a, b) in self.totals.iter_mut().zip(&other.totals) {
            *a += b;
        }
    }

    fn to_row(&self) -> Vec<f64> {
        let mut row = vec![self.sys_len as f64, self.ref_len as f64];
        row.extend(self.counts.iter().map(|&c| c as f64));
        row.extend(self.totals.iter().map(|&t| t as f64));
        row
    }
}

/// A BLEU score with everything sacreBLEU prints about it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BleuScore {
    /// BLEU, 0..100.
    pub score: f64,
    /// Clipped n-gram matches per order (before `add-k` smoothing is added).
    pub counts: Vec<u64>,
    /// Hypothesis n-grams per order (before `add-k` smoothing is added).
    pub totals: Vec<u64>,
    /// Smoothed n-gram precisions per order, 0..100.
    pub precisions: Vec<f64>,
    /// Brevity penalty.
    pub bp: f64,
    /// Hypothesis length in tokens.
    pub sys_len: u64,
    /// Reference length in tokens.
    pub ref_len: u64,
    /// `sys_len / ref_len` (0 when there is no reference token).
    pub ratio: f64,
    /// sacreBLEU's reproducibility signature.
    pub signature: Signature,
}

impl BleuScore {
    /// sacreBLEU's verbose part:
    /// `84.2/50.0/15.4/10.0 (BP = 0.949 ratio = 0.950 hyp_len = 19 ref_len = 20)`.
    pub fn verbose(&self) -> String {
        let precisions: Vec<String> = self.precisions.iter().map(|p| format!("{p:.1}")).collect();
        format!(
            "{} (BP = {:.3} ratio = {:.3} hyp_len = {} ref_len = {})",
            precisions.join("/"),
            self.bp,
            self.ratio,
            self.sys_len,
            self.ref_len
        )
    }
}

type NgramCounts<'a> = HashMap<&'a [&'a str], u64>;

/// All n-grams of orders 1..=max of the tokens, as slices of the token vector.
fn ngrams<'a>(tokens: &'a [&'a str], max_order: usize) -> NgramCounts<'a> {
    let mut counts = HashMap::new();
    for n in 1..=max_order {
        for gram in tokens.windows(n) {
            *counts.entry(gram).or_insert(0) += 1;
        }
    }
    counts
}

/// sacreBLEU `_get_closest_ref_len`: the closest reference length, the shorter on ties.
fn closest_ref_len(hyp_len: usize, ref_lens: &[usize]) -> usize {
    let mut best: Option<(usize, usize)> = None;
    for &len in ref_lens {
        let diff = hyp_len.abs_diff(len);
        best = match best {
            None => Some((diff, len)),
            Some((d, l)) if diff < d || (diff == d && len < l) => Some((diff, len)),
            keep => keep,
        };
    }
    best.map_or(0, |(_, len)| len)
}

/// Statistics of one hypothesis against one or more references.
pub fn segment_stats(hyp: &str, refs: &[&str], config: &BleuConfig) -> Result<BleuStats> {
    config.validate()?;
    let max = config.max_ngram_order;
    let ref_texts: Vec<String> = refs.iter().map(|r| config.preprocess(r)).collect();
    let ref_tokens: Vec<Vec<&str>> = ref_texts
        .iter()
        .map(|r| pytext::split(r).collect())
        .collect();
    let mut ref_ngrams: NgramCounts = HashMap::new();
    for tokens in &ref_tokens {
        for (gram, count) in ngrams(tokens, max) {
            let slot = ref_ngrams.entry(gram).or_insert(0);
            *slot = (*slot).max(count);
        }
    }
    let ref_lens: Vec<usize> = ref_tokens.iter().map(Vec::len).collect();

    let hyp_text = config.preprocess(hyp);
    let hyp_tokens: Vec<&str> = pytext::split(&hyp_text).collect();
    let mut counts = vec![0u64; max];
    let mut totals = vec![0u64; max];
    for (gram, count) in ngrams(&hyp_tokens, max) {
        let n = gram.len() - 1;
        totals[n] += count;
        if let Some(&ref_count) = ref_ngrams.get(gram) {
            counts[n] += count.min(ref_count);
        }
    }
    Ok(BleuStats {
        sys_len: hyp_tokens.len() as u64,
        ref_len: closest_ref_len(hyp_tokens.len(), &ref_lens) as u64,
        counts,
        totals,
    })
}

/// sacreBLEU `BLEU.compute_bleu`: the score from (summed) statistics.
///
/// Statistics are taken as floats, as sacreBLEU does during bootstrap resampling; with
/// integer inputs the arithmetic is the reference's, operation for operation.
fn compute(
    sys_len: f64,
    ref_len: f64,
    correct: &[f64],
    total: &[f64],
    config: &BleuConfig,
) -> (f64, Vec<f64>, f64) {
    let max = config.max_ngram_order;
    let mut bp = 1.0;
    if sys_len < ref_len {
        bp = if sys_len > 0.0 {
            (1.0 - ref_len / sys_len).exp()
        } else {
            0.0
        };
    }
    let mut precisions = vec![0.0; max];
    // Early stop when nothing matches (sacreBLEU #141), before add-k touches the counts.
    if correct.iter().all(|&c| c == 0.0) {
        return (0.0, precisions, bp);
    }
    let mut correct = correct.to_vec();
    let mut total = total.to_vec();
    let mut smooth_mteval = 1.0;
    let mut eff_order = max;
    for n in 1..=max {
        if let Smoothing::AddK(k) = config.smoothing {
            if n > 1 {
                correct[n - 1] += k;
                total[n - 1] += k;
            }
        }
        if total[n - 1] == 0.0 {
            break;
        }
        if config.effective_order {
            eff_order = n;
        }
        if correct[n - 1] == 0.0 {
            match config.smoothing {
                Smoothing::Exp => {
                    smooth_mteval *= 2.0;
                    precisions[n - 1] = 100.0 / (smooth_mteval * total[n - 1]);
                }
                Smoothing::Floor(v) => precisions[n - 1] = 100.0 * v / total[n - 1],
                Smoothing::None | Smoothing::AddK(_) => {}
            }
        } else {
            precisions[n - 1] = 100.0 * correct[n - 1] / total[n - 1];
        }
    }
    let log_sum: f64 = precisions[..eff_order].iter().map(|&p| my_log(p)).sum();
    let score = bp * (log_sum / eff_order as f64).exp();
    (score, precisions, bp)
}

/// sacreBLEU `my_log`: log with 0 floored to a very low number instead of -inf.
fn my_log(x: f64) -> f64 {
    if x == 0.0 {
        -9_999_999_999.0
    } else {
        x.ln()
    }
}

/// BLEU of already-summed statistics with `nrefs` references per segment. The n-gram order
/// is the length of `stats.counts`.
pub fn score_from_stats(stats: &BleuStats, nrefs: usize, config: &BleuConfig) -> BleuScore {
    let order = stats.counts.len().min(stats.totals.len());
    let config = BleuConfig {
        max_ngram_order: order.max(1),
        ..config.clone()
    };
    let correct: Vec<f64> = stats.counts[..order].iter().map(|&c| c as f64).collect();
    let total: Vec<f64> = stats.totals[..order].iter().map(|&t| t as f64).collect();
    let (score, precisions, bp) = if order == 0 {
        (0.0, vec![0.0], 0.0)
    } else {
        compute(
            stats.sys_len as f64,
            stats.ref_len as f64,
            &correct,
            &total,
            &config,
        )
    };
    BleuScore {
        score,
        counts: stats.counts.clone(),
        totals: stats.totals.clone(),
        precisions,
        bp,
        sys_len: stats.sys_len,
        ref_len: stats.ref_len,
        ratio: if stats.ref_len > 0 {
            stats.sys_len as f64 / stats.ref_len as f64
        } else {
            0.0
        },
        signature: config.signature(nrefs),
    }
}

/// Corpus BLEU of `hyps` against one reference per segment (sacreBLEU `corpus_bleu`).
pub fn corpus_bleu<H: AsRef<str>, R: AsRef<str>>(
    hyps: &[H],
    refs: &[R],
    config: &BleuConfig,
) -> Result<BleuScore> {
    corpus_bleu_multi(hyps, &[refs], config)
}

/// Corpus BLEU against several reference streams, each as long as `hyps`.
pub fn corpus_bleu_multi<H: AsRef<str>, R: AsRef<str>>(
    hyps: &[H],
    ref_streams: &[&[R]],
    config: &BleuConfig,
) -> Result<BleuScore> {
    config.validate()?;
    let mut total = BleuStats {
        counts: vec![0; config.max_ngram_order],
        totals: vec![0; config.max_ngram_order],
        ..BleuStats::default()
    };
    for_each_segment(hyps, ref_streams, |hyp, refs| {
        total.add(&segment_stats(hyp, refs, config)?);
        Ok(())
    })?;
    Ok(score_from_stats(&total, ref_streams.len(), config))
}

/// BLEU of one sentence (sacreBLEU `sentence_bleu`; pass [`BleuConfig::sentence`] for its
/// defaults, which use the effective order).
pub fn sentence_bleu<R: AsRef<str>>(
    hyp: &str,
    refs: &[R],
    config: &BleuConfig,
) -> Result<BleuScore> {
    let refs = sentence_refs(refs)?;
    let stats = segment_stats(hyp, &refs, config)?;
    Ok(score_from_stats(&stats, refs.len(), config))
}

impl CorpusMetric for BleuConfig {
    fn name(&self) -> String {
        "BLEU".to_string()
    }

    fn segment_stats_multi(&self, hyps: &[&str], ref_streams: &[&[&str]]) -> Result<Vec<Vec<f64>>> {
        let refs = refs_per_segment(hyps.len(), ref_streams)?;
        hyps.iter()
            .zip(&refs)
            .map(|(h, r)| segment_stats(h, r, self).map(|s| s.to_row()))
            .collect()
    }

    fn score_from_stats(&self, stats: &[f64]) -> f64 {
        let max = self.max_ngram_order;
        if stats.len() < 2 + 2 * max {
            return 0.0;
        }
        compute(
            stats[0],
            stats[1],
            &stats[2..2 + max],
            &stats[2 + max..2 + 2 * max],
            self,
        )
        .0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_is_100_and_disjoint_is_0() {
        let c = BleuConfig::default();
        let s = corpus_bleu(&["the cat sat on the mat"], &["the cat sat on the mat"], &c).unwrap();
        assert!((s.score - 100.0).abs() < 1e-12);
        let s = corpus_bleu(&["a b c d"], &["w x y z"], &c).unwrap();
        assert_eq!(s.score, 0.0);
    }

    #[test]
    fn signature_matches_sacrebleu_format() {
        let c = BleuConfig::default();
        assert_eq!(
            c.signature(1).to_string(),
            format!(
                "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:{}",
                crate::SACREBLEU_VERSION
            )
        );
        let c = BleuConfig {
            smoothing: Smoothing::Floor(0.1),
            ..BleuConfig::sentence()
        };
        assert!(c
            .signature(1)
            .with_bootstrap(1000, 12345)
            .to_string()
            .starts_with(
                "nrefs:1|bs:1000|seed:12345|case:mixed|eff:yes|tok:13a|smooth:floor[0.10]|"
            ));
    }

    #[test]
    fn mismatched_lengths_are_an_error() {
        let err = corpus_bleu(&["a", "b"], &["a"], &BleuConfig::default()).unwrap_err();
        assert!(matches!(
            err,
            EvalError::LengthMismatch { hyps: 2, refs: 1 }
        ));
    }

    #[test]
    fn closest_reference_prefers_shorter_on_ties() {
        assert_eq!(closest_ref_len(5, &[7, 3]), 3);
        assert_eq!(closest_ref_len(5, &[6, 3]), 6);
    }
}
