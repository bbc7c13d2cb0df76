//! What corpus-level metrics share: per-segment sufficient statistics that add up, and a
//! score computed from their sum. Bootstrap resampling only needs this much.

/// A metric whose corpus score is a function of the sum of per-segment statistics.
///
/// This is the shape of sacreBLEU's `Metric` (`_extract_corpus_statistics` and
/// `_compute_score_from_stats`); ROUGE fits it too, with (F-measure, 1) per segment so the
/// sum gives the mean.
pub trait CorpusMetric {
    /// Short display name (`BLEU`, `chrF2++`, `ROUGE-L`).
    fn name(&self) -> String;

    /// The statistics of each segment against one or more reference streams (each as long
    /// as `hyps`), one row per hypothesis; rows all have the same length.
    fn segment_stats_multi(
        &self,
        hyps: &[&str],
        ref_streams: &[&[&str]],
    ) -> crate::Result<Vec<Vec<f64>>>;

    /// The statistics of each segment against a single reference.
    fn segment_stats(&self, hyps: &[&str], refs: &[&str]) -> crate::Result<Vec<Vec<f64>>> {
        self.segment_stats_multi(hyps, &[refs])
    }

    /// The corpus score from statistics summed over segments, on the metric's own scale
    /// (0..100 for BLEU and chrF, 0..1 for ROUGE as rouge-score reports it).
    fn score_from_stats(&self, stats: &[f64]) -> f64;

    /// The corpus score of the given segments.
    fn corpus_score(&self, hyps: &[&str], refs: &[&str]) -> crate::Result<f64> {
        let rows = self.segment_stats(hyps, refs)?;
        Ok(self.score_from_stats(&sum_rows(&rows)))
    }
}

/// Element-wise sum of statistics rows (an empty slice sums to an empty row).
pub fn sum_rows(rows: &[Vec<f64>]) -> Vec<f64> {
    let mut total = vec![0.0; rows.first().map_or(0, Vec::len)];
    for row in rows {
        for (t, v) in total.iter_mut().zip(row) {
            *t += v;
        }
    }
    total
}

/// Checks that there is at least one reference stream and that each is as long as `hyps`,
/// and returns the references of segment `i` for every `i`.
pub(crate) fn refs_per_segment<'a>(
    n_hyps: usize,
    ref_streams: &[&[&'a str]],
) -> crate::Result<Vec<Vec<&'a str>>> {
    check_streams(n_hyps, ref_streams)?;
    Ok((0..n_hyps)
        .map(|i| ref_streams.iter().map(|s| s[i]).collect())
        .collect())
}

/// Checks the reference streams against `hyps` (see [`check_streams`]), then calls `each`
/// with every hypothesis and its references (one from each stream), stopping at the first
/// error.
pub(crate) fn for_each_segment<H: AsRef<str>, R: AsRef<str>>(
    hyps: &[H],
    ref_streams: &[&[R]],
    mut each: impl FnMut(&str, &[&str]) -> crate::Result<()>,
) -> crate::Result<()> {
    check_streams(hyps.len(), ref_streams)?;
    for (i, hyp) in hyps.iter().enumerate() {
        let refs: Vec<&str> = ref_streams.iter().map(|s| s[i].as_ref()).collect();
        each(hyp.as_ref(), &refs)?;
    }
    Ok(())
}

/// The references of one sentence as `&str`s, or an error when there are none.
pub(crate) fn sentence_refs<R: AsRef<str>>(refs: &[R]) -> crate::Result<Vec<&str>> {
    if refs.is_empty() {
        return Err(crate::EvalError::InvalidConfig(
            "at least one reference is needed",
        ));
    }
    Ok(refs.iter().map(AsRef::as_ref).collect())
}

/// Checks that there is at least one reference stream and that each is `n_hyps` long.
pub(crate) fn check_streams<R>(n_hyps: usize, ref_streams: &[&[R]]) -> crate::Result<()> {
    if ref_streams.is_empty() {
        return Err(crate::EvalError::InvalidConfig(
            "at least one reference stream is needed",
        ));
    }
    for stream in ref_streams {
        check_lengths(n_hyps, stream.len())?;
    }
    Ok(())
}

pub(crate) fn check_lengths(hyps: usize, refs: usize) -> crate::Result<()> {
    if hyps == refs {
        Ok(())
    } else {
        Err(crate::EvalError::LengthMismatch { hyps, refs })
    }
}

/// A sacreBLEU reproducibility signature, such as
/// `nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0`.
///
/// Fields appear in sacreBLEU's order: `nrefs`, then `bs` and `seed` when bootstrap
/// resampling was used, then the metric's own fields, and `version` last.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Signature {
    /// Number of references per segment.
    pub nrefs: usize,
    /// Bootstrap resamples and seed, when the score comes with a confidence interval.
    pub bootstrap: Option<(usize, u64)>,
    /// The metric's own `key:value` fields, in order.
    pub fields: Vec<(&'static str, String)>,
}

impl Signature {
    /// The same signature, marked as computed with `samples` bootstrap resamples from `seed`.
    pub fn with_bootstrap(mut self, samples: usize, seed: u64) -> Self {
        self.bootstrap = Some((samples, seed));
        self
    }
}

impl std::fmt::Display for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "nrefs:{}", self.nrefs)?;
        if let Some((samples, seed)) = self.bootstrap {
            write!(f, "|bs:{samples}|seed:{seed}")?;
        }
        for (key, value) in &self.fields {
            write!(f, "|{key}:{value}")?;
        }
        write!(f, "|version:{}", crate::SACREBLEU_VERSION)
    }
}
