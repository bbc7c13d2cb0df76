//! sacreBLEU's paired bootstrap (`--paired-bs`) against `fixtures/metrics/expected.json`.
//!
//! `replay`: sacreBLEU's own numpy resamples (200, seed 12345) are fed to
//! [`paired_bootstrap_with_indices`]; mean, interval and p-value must come out the same.
//! sacreBLEU sums the statistics as float32 and, under NumPy 2's promotion rules, computes
//! the resampled precisions (BLEU) and the whole resampled chrF in float32, so those agree
//! to about 1e-5, not to the last bit; the actual corpus scores are float64 on both sides.
//!
//! `default`: 1000 resamples from our own generator against sacreBLEU's from numpy. The
//! index streams differ, so only the distribution can agree: means within four standard
//! errors of the difference of two 1000-resample means (the standard deviation taken from
//! the interval as `ci / 1.96`), interval widths within 20%, p-values within 0.04 (Monte
//! Carlo error with 1000 resamples is about 0.01 near p = 0.05).

mod common;

use common::{expected, f, read_lines};
use serde_json::Value;
use tarjama_eval::bleu::BleuConfig;
use tarjama_eval::bootstrap::{paired_bootstrap, paired_bootstrap_with_indices, BootstrapConfig};
use tarjama_eval::chrf::ChrfConfig;
use tarjama_eval::CorpusMetric;

fn metric(name: &str) -> Box<dyn CorpusMetric> {
    match name {
        "BLEU" => Box::new(BleuConfig::default()),
        "chrF2" => Box::new(ChrfConfig::default()),
        "chrF2++" => Box::new(ChrfConfig::chrf_plus_plus()),
        other => panic!("unexpected metric {other}"),
    }
}

struct Case {
    stats_base: Vec<Vec<f64>>,
    stats_systems: Vec<Vec<Vec<f64>>>,
}

fn stats(exp: &Value, metric: &dyn CorpusMetric) -> Case {
    let refs = read_lines("ref.txt");
    let refs: Vec<&str> = refs.iter().map(String::as_str).collect();
    let of = |file: &str| {
        let hyps = read_lines(file);
        let hyps: Vec<&str> = hyps.iter().map(String::as_str).collect();
        metric.segment_stats(&hyps, &refs).unwrap()
    };
    Case {
        stats_base: of(exp["baseline"].as_str().unwrap()),
        stats_systems: exp["systems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| of(f.as_str().unwrap()))
            .collect(),
    }
}

/// Four standard errors of the difference between two independent bootstrap means.
fn mean_tolerance(ci: f64, n_samples: usize) -> f64 {
    4.0 * std::f64::consts::SQRT_2 * (ci / 1.96) / (n_samples as f64).sqrt() + 1e-9
}

#[test]
fn replaying_sacrebleu_resamples_reproduces_its_results() {
    let exp = expected();
    let bs = &exp["bootstrap"];
    let replay = &bs["replay"];
    let indices: Vec<Vec<usize>> = replay["indices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|i| i.as_u64().unwrap() as usize)
                .collect()
        })
        .collect();
    for m in replay["metrics"].as_array().unwrap() {
        let name = m["name"].as_str().unwrap();
        let metric = metric(name);
        let case = stats(bs, metric.as_ref());
        let views: Vec<&[Vec<f64>]> = case.stats_systems.iter().map(Vec::as_slice).collect();
        let (base, results) =
            paired_bootstrap_with_indices(metric.as_ref(), &case.stats_base, &views, &indices)
                .unwrap();
        assert!(
            (base.score - f(&m["baseline"]["score"])).abs() < 1e-11,
            "{name} baseline score"
        );
        assert!(
            (base.mean - f(&m["baseline"]["mean"])).abs() < 1e-3,
            "{name} baseline mean {base:?}"
        );
        assert!(
            (base.ci - f(&m["baseline"]["ci"])).abs() < 1e-3,
            "{name} baseline ci {base:?}"
        );
        for (got, want) in results.iter().zip(m["systems"].as_array().unwrap()) {
            assert!(
                (got.estimate.score - f(&want["score"])).abs() < 1e-11,
                "{name} score"
            );
            assert!(
                (got.estimate.mean - f(&want["mean"])).abs() < 1e-3,
                "{name} mean {got:?} {want}"
            );
            assert!(
                (got.estimate.ci - f(&want["ci"])).abs() < 1e-3,
                "{name} ci {got:?} {want}"
            );
            // p-values are multiples of 1/201: this is equality of the counts.
            assert!(
                (got.p_value - f(&want["p_value"])).abs() < 1e-12,
                "{name} p-value {got:?} {want}"
            );
        }
    }
}

#[test]
fn own_resamples_agree_with_sacrebleu_in_distribution() {
    let exp = expected();
    let bs = &exp["bootstrap"];
    let default = &bs["default"];
    let config = BootstrapConfig {
        n_samples: default["n_samples"].as_u64().unwrap() as usize,
        seed: default["seed"].as_u64().unwrap(),
    };
    for m in default["metrics"].as_array().unwrap() {
        let name = m["name"].as_str().unwrap();
        let metric = metric(name);
        let case = stats(bs, metric.as_ref());
        let views: Vec<&[Vec<f64>]> = case.stats_systems.iter().map(Vec::as_slice).collect();
        let (base, results) =
            paired_bootstrap(metric.as_ref(), &case.stats_base, &views, &config).unwrap();
        let want = &m["baseline"];
        assert!(
            (base.mean - f(&want["mean"])).abs() < mean_tolerance(f(&want["ci"]), config.n_samples),
            "{name} baseline {base:?} {want}"
        );
        assert!(
            (base.ci / f(&want["ci"]) - 1.0).abs() < 0.2,
            "{name} baseline {base:?} {want}"
        );
        for (got, want) in results.iter().zip(m["systems"].as_array().unwrap()) {
            assert!(
                (got.estimate.mean - f(&want["mean"])).abs()
                    < mean_tolerance(f(&want["ci"]), config.n_samples),
                "{name} {got:?} {want}"
            );
            let want_ci = f(&want["ci"]);
            if want_ci == 0.0 {
                assert_eq!(got.estimate.ci, 0.0, "{name} {got:?} {want}");
            } else {
                assert!(
                    (got.estimate.ci / want_ci - 1.0).abs() < 0.2,
                    "{name} {got:?} {want}"
                );
            }
            assert!(
                (got.p_value - f(&want["p_value"])).abs() < 0.04,
                "{name} {got:?} {want}"
            );
        }
    }
}
