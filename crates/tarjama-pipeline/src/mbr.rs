//! Minimum Bayes risk selection: of several candidate translations, keep the one that
//! agrees most with the others.
//!
//! Each candidate is scored by its mean utility against every other candidate, the others
//! standing in for references (Kumar and Byrne 2004; Freitag et al. 2022 with sampled
//! candidates). The utility is pluggable; the default is sentence chrF++ as sacreBLEU
//! computes it.

use tarjama_eval::chrf::{segment_stats, ChrfConfig};

/// How well a hypothesis matches a reference (higher is better).
pub trait Utility: Send + Sync {
    /// The utility of `hypothesis` against `reference`.
    fn score(&self, hypothesis: &str, reference: &str) -> f64;
    /// A name for reports.
    fn name(&self) -> String;
}

/// Sentence chrF++ (0..100).
#[derive(Debug, Clone, Copy)]
pub struct ChrfUtility(ChrfConfig);

impl Default for ChrfUtility {
    fn default() -> Self {
        ChrfUtility(ChrfConfig::chrf_plus_plus())
    }
}

impl Utility for ChrfUtility {
    fn score(&self, hypothesis: &str, reference: &str) -> f64 {
        match segment_stats(hypothesis, &[reference], &self.0) {
            Ok(stats) => {
                let stats: Vec<f64> = stats.into_iter().map(|v| v as f64).collect();
                self.0.f_score(&stats)
            }
            Err(_) => 0.0,
        }
    }

    fn name(&self) -> String {
        self.0.name()
    }
}

/// The winner of an MBR selection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Choice {
    /// Index of the winning candidate.
    pub index: usize,
    /// Its mean utility against the other candidates (`None` with one candidate).
    pub utility: Option<f64>,
}

/// Each candidate's mean utility against the others (its agreement with the rest); 0
/// for a lone candidate.
pub fn consensus<S: AsRef<str>>(candidates: &[S], utility: &dyn Utility) -> Vec<f64> {
    let n = candidates.len();
    if n < 2 {
        return vec![0.0; n];
    }
    candidates
        .iter()
        .enumerate()
        .map(|(i, hypothesis)| {
            let total: f64 = candidates
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .map(|(_, reference)| utility.score(hypothesis.as_ref(), reference.as_ref()))
                .sum();
            total / (n - 1) as f64
        })
        .collect()
}

/// Picks among `candidates` the one with the highest mean utility against the others.
/// Ties go to the earliest candidate (put the greedy one first). `None` when there is no
/// candidate.
pub fn select<S: AsRef<str>>(candidates: &[S], utility: &dyn Utility) -> Option<Choice> {
    let n = candidates.len();
    match n {
        0 => return None,
        1 => {
            return Some(Choice {
                index: 0,
                utility: None,
            })
        }
        _ => {}
    }
    let means = consensus(candidates, utility);
    let (index, &mean) = means
        .iter()
        .enumerate()
        .fold(None, |best: Option<(usize, &f64)>, (i, m)| match best {
            Some((_, b)) if b >= m => best,
            _ => Some((i, m)),
        })
        .expect("two or more candidates");
    let best = Choice {
        index,
        utility: Some(mean),
    };
    Some(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_consensus_candidate_wins() {
        let candidates = [
            "Putin met Witkoff in Saint Petersburg.",
            "Putin met with Witkoff in St. Petersburg.",
            "The weather was fine on Tuesday.",
            "Putin met Witkoff in St. Petersburg.",
        ];
        let choice = select(&candidates, &ChrfUtility::default()).unwrap();
        assert_eq!(choice.index, 3);
        let u = choice.utility.unwrap();
        assert!(u > 50.0 && u < 100.0, "{u}");
    }

    #[test]
    fn mean_utility_is_against_the_others_only() {
        // Exact-match utility: a candidate's agreement with itself must not count.
        struct Exact;
        impl Utility for Exact {
            fn score(&self, h: &str, r: &str) -> f64 {
                f64::from(u8::from(h == r))
            }
            fn name(&self) -> String {
                "exact".into()
            }
        }
        let choice = select(&["a", "b", "b", "c"], &Exact).unwrap();
        assert_eq!(choice.index, 1);
        assert_eq!(choice.utility, Some(1.0 / 3.0));
        // All different: a tie at 0, the first (greedy) candidate wins.
        assert_eq!(select(&["x", "y", "z"], &Exact).unwrap().index, 0);
        assert_eq!(
            select(&["only"], &Exact),
            Some(Choice {
                index: 0,
                utility: None
            })
        );
        assert_eq!(select::<&str>(&[], &Exact), None);
    }

    #[test]
    fn chrf_utility_matches_sentence_chrf() {
        let (h, r) = ("The cat sat on the mat.", "A cat sat on a mat.");
        let expected = tarjama_eval::chrf::sentence_chrf(h, &[r], &ChrfConfig::chrf_plus_plus())
            .unwrap()
            .score;
        assert!((ChrfUtility::default().score(h, r) - expected).abs() < 1e-9);
    }
}
