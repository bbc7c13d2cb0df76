//! Paired bootstrap resampling, with sacreBLEU's `--paired-bs` semantics (Koehn 2004; the
//! Moses script `bootstrap-hypothesis-difference-significance.pl`).
//!
//! Method, as in `sacrebleu/significance.py`: draw `n_samples` resamples of the segment
//! indices with replacement, once, and use the same resamples for every system and metric.
//! For each resample the corpus score is recomputed from the summed per-segment statistics.
//! A system's estimate is the mean of its resampled scores and the 95% interval is half the
//! distance between the order statistics at `n/40` and `n - n/40 - 1`. The p-value of a
//! difference to the baseline is `(c + 1) / (n + 1)`, where `c` counts resamples whose
//! centred absolute difference `|sys - base| - mean(|sys - base|)` exceeds the actual
//! absolute difference.
//!
//! The resamples come from this module's own generator (xoshiro256** seeded through
//! SplitMix64, unbiased bounded integers by Lemire's method), so results are identical on
//! every platform and release. They cannot be numpy's `default_rng(12345)` stream bit for
//! bit, so means, intervals and p-values match sacreBLEU's in distribution, not digit for
//! digit; the actual scores are unaffected.

use crate::metric::{check_lengths, sum_rows, CorpusMetric};
use crate::{EvalError, Result};

/// sacreBLEU's default number of resamples for the paired bootstrap test.
pub const DEFAULT_SAMPLES: usize = 1000;
/// sacreBLEU's default seed (`SACREBLEU_SEED`).
pub const DEFAULT_SEED: u64 = 12345;

/// How many resamples to draw and from which seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct BootstrapConfig {
    /// Number of resamples (default 1000).
    pub n_samples: usize,
    /// Seed of the generator (default 12345, like sacreBLEU).
    pub seed: u64,
}

impl Default for BootstrapConfig {
    fn default() -> Self {
        BootstrapConfig {
            n_samples: DEFAULT_SAMPLES,
            seed: DEFAULT_SEED,
        }
    }
}

/// A bootstrap estimate of a score.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Estimate {
    /// The score on the actual corpus.
    pub score: f64,
    /// Mean of the resampled scores.
    pub mean: f64,
    /// Half-width of the 95% confidence interval around the mean.
    pub ci: f64,
}

/// One system compared with the baseline.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct PairedResult {
    /// The system's score and bootstrap estimate.
    pub estimate: Estimate,
    /// Probability of an absolute difference at least this large by chance (sacreBLEU's
    /// definition); below 0.05 the systems are significantly different.
    pub p_value: f64,
}

/// xoshiro256** (Blackman and Vigna), seeded through SplitMix64.
struct Rng([u64; 4]);

impl Rng {
    fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        Rng([next(), next(), next(), next()])
    }

    fn next_u64(&mut self) -> u64 {
        let s = &mut self.0;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `0..bound` without modulo bias (Lemire 2019).
    fn below(&mut self, bound: u64) -> u64 {
        let threshold = bound.wrapping_neg() % bound;
        loop {
            let product = u128::from(self.next_u64()) * u128::from(bound);
            if (product as u64) >= threshold {
                return (product >> 64) as u64;
            }
        }
    }
}

/// The resampled index sets: `n_samples` rows of `n_segments` indices drawn with replacement.
pub fn resample_indices(n_segments: usize, config: &BootstrapConfig) -> Vec<Vec<usize>> {
    let mut rng = Rng::new(config.seed);
    (0..config.n_samples)
        .map(|_| {
            (0..n_segments)
                .map(|_| rng.below(n_segments as u64) as usize)
                .collect()
        })
        .collect()
}

fn resampled_scores<M: CorpusMetric + ?Sized>(
    metric: &M,
    stats: &[Vec<f64>],
    indices: &[Vec<usize>],
) -> Vec<f64> {
    let width = stats.first().map_or(0, Vec::len);
    indices
        .iter()
        .map(|sample| {
            let mut total = vec![0.0; width];
            for &i in sample {
                for (t, v) in total.iter_mut().zip(&stats[i]) {
                    *t += v;
                }
            }
            metric.score_from_stats(&total)
        })
        .collect()
}

/// sacreBLEU `estimate_ci`: mean and half-width of the 95% interval of resampled scores.
fn estimate(score: f64, mut samples: Vec<f64>) -> Estimate {
    samples.sort_by(f64::total_cmp);
    let n = samples.len();
    let lower = n / 40;
    let upper = n - lower - 1;
    Estimate {
        score,
        mean: samples.iter().sum::<f64>() / n as f64,
        ci: 0.5 * (samples[upper] - samples[lower]),
    }
}

fn validate(config: &BootstrapConfig, n_segments: usize) -> Result<()> {
    if config.n_samples == 0 {
        return Err(EvalError::InvalidConfig(
            "bootstrap needs at least one resample",
        ));
    }
    if n_segments == 0 {
        return Err(EvalError::InvalidConfig(
            "bootstrap needs at least one segment",
        ));
    }
    Ok(())
}

/// Bootstrap estimate (mean and 95% interval) of one system's corpus score, from its
/// per-segment statistics ([`CorpusMetric::segment_stats`]).
pub fn bootstrap_ci<M: CorpusMetric + ?Sized>(
    metric: &M,
    stats: &[Vec<f64>],
    config: &BootstrapConfig,
) -> Result<Estimate> {
    validate(config, stats.len())?;
    let indices = resample_indices(stats.len(), config);
    let score = metric.score_from_stats(&sum_rows(stats));
    Ok(estimate(score, resampled_scores(metric, stats, &indices)))
}

/// Paired bootstrap test of `systems` against `baseline` on one metric, from per-segment
/// statistics. Returns the baseline's estimate and one result per system, in order.
pub fn paired_bootstrap<M: CorpusMetric + ?Sized>(
    metric: &M,
    baseline: &[Vec<f64>],
    systems: &[&[Vec<f64>]],
    config: &BootstrapConfig,
) -> Result<(Estimate, Vec<PairedResult>)> {
    validate(config, baseline.len())?;
    // One set of resamples for everyone: sacreBLEU seeds each comparison (and the baseline's
    // own interval) with the same seed and shape, so they all see the same index sets.
    let indices = resample_indices(baseline.len(), config);
    paired_bootstrap_with_indices(metric, baseline, systems, &indices)
}

/// [`paired_bootstrap`] on given resamples (rows of segment indices), for replaying another
/// tool's resamples, such as numpy's in sacreBLEU.
pub fn paired_bootstrap_with_indices<M: CorpusMetric + ?Sized>(
    metric: &M,
    baseline: &[Vec<f64>],
    systems: &[&[Vec<f64>]],
    indices: &[Vec<usize>],
) -> Result<(Estimate, Vec<PairedResult>)> {
    if indices.is_empty() {
        return Err(EvalError::InvalidConfig(
            "bootstrap needs at least one resample",
        ));
    }
    if indices.iter().flatten().any(|&i| i >= baseline.len()) {
        return Err(EvalError::InvalidConfig(
            "a resample index is past the last segment",
        ));
    }
    for system in systems {
        check_lengths(system.len(), baseline.len())?;
    }
    let base_score = metric.score_from_stats(&sum_rows(baseline));
    let base_samples = resampled_scores(metric, baseline, indices);
    let base_estimate = estimate(base_score, base_samples.clone());
    let results = systems
        .iter()
        .map(|system| {
            let score = metric.score_from_stats(&sum_rows(system));
            let samples = resampled_scores(metric, system, indices);
            let diffs: Vec<f64> = samples
                .iter()
                .zip(&base_samples)
                .map(|(s, b)| (s - b).abs())
                .collect();
            let mean_diff = diffs.iter().sum::<f64>() / diffs.len() as f64;
            let actual = (base_score - score).abs();
            let exceed = diffs.iter().filter(|&&d| d - mean_diff > actual).count();
            PairedResult {
                estimate: estimate(score, samples),
                p_value: (exceed + 1) as f64 / (diffs.len() + 1) as f64,
            }
        })
        .collect();
    Ok((base_estimate, results))
}

/// Convenience: paired bootstrap from the texts (references, baseline hypotheses, other
/// systems' hypotheses).
pub fn paired_bootstrap_texts<M: CorpusMetric + ?Sized>(
    metric: &M,
    refs: &[&str],
    baseline: &[&str],
    systems: &[&[&str]],
    config: &BootstrapConfig,
) -> Result<(Estimate, Vec<PairedResult>)> {
    let base_stats = metric.segment_stats(baseline, refs)?;
    let system_stats = systems
        .iter()
        .map(|hyps| metric.segment_stats(hyps, refs))
        .collect::<Result<Vec<_>>>()?;
    let views: Vec<&[Vec<f64>]> = system_stats.iter().map(Vec::as_slice).collect();
    paired_bootstrap(metric, &base_stats, &views, config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bleu::BleuConfig;

    #[test]
    fn generator_is_stable_and_unbiased_enough() {
        // Pinned so that a change of generator (and of every reported interval) is noticed.
        let a = resample_indices(
            10,
            &BootstrapConfig {
                n_samples: 2,
                seed: 12345,
            },
        );
        let b = resample_indices(
            10,
            &BootstrapConfig {
                n_samples: 2,
                seed: 12345,
            },
        );
        assert_eq!(a, b);
        let mut counts = [0usize; 10];
        for row in resample_indices(
            10,
            &BootstrapConfig {
                n_samples: 1000,
                seed: 1,
            },
        ) {
            for i in row {
                counts[i] += 1;
            }
        }
        assert!(
            counts.iter().all(|&c| (850..1150).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn a_system_against_itself_is_not_significant() {
        let refs = [
            "the cat sat on the mat",
            "a dog barked loudly",
            "it rained all day",
        ];
        let hyps = [
            "the cat sat on a mat",
            "the dog barked",
            "it rained all day long",
        ];
        let (base, results) = paired_bootstrap_texts(
            &BleuConfig::default(),
            &refs,
            &hyps,
            &[&hyps],
            &BootstrapConfig::default(),
        )
        .unwrap();
        assert_eq!(results[0].estimate, base);
        // Every centred difference is 0 - 0 = 0, never above the actual difference 0.
        assert!((results[0].p_value - 1.0 / 1001.0).abs() < 1e-15);
    }
}
