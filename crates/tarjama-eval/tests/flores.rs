//! FLORES-200 devtest (English and Arabic) scored against a perturbed copy of itself,
//! compared with sacreBLEU and rouge-score numbers recorded by
//! `scripts/flores_metric_parity.py` in `fixtures/flores_parity.json`.
//!
//! FLORES is read from the repository's `tests/data/flores200`, or the folder in
//! `TARJAMA_FLORES` (see `tarjama_testkit::require_flores`).

use std::path::Path;

use serde_json::Value;
use tarjama_eval::bleu::{corpus_bleu, BleuConfig};
use tarjama_eval::chrf::{corpus_chrf, ChrfConfig};
use tarjama_eval::rouge::{RougeScorer, RougeType};

/// The script's `perturb`: drop, swap or replace words depending on the line number.
fn perturb(i: usize, line: &str) -> String {
    let mut words: Vec<&str> = line.split(' ').collect();
    match i % 4 {
        1 => {
            words = words
                .into_iter()
                .enumerate()
                .filter(|(j, _)| j % 5 != 4)
                .map(|(_, w)| w)
                .collect()
        }
        2 => {
            for j in (0..words.len().saturating_sub(1)).step_by(6) {
                words.swap(j, j + 1);
            }
        }
        3 => {
            for (j, w) in words.iter_mut().enumerate() {
                if j % 4 == 1 {
                    *w = "the";
                }
            }
        }
        _ => {}
    }
    words.join(" ")
}

fn close(got: f64, want: &Value, what: &str) {
    let want = want.as_f64().unwrap();
    assert!(
        (got - want).abs() <= 1e-9,
        "{what}: got {got:.12}, reference {want:.12}"
    );
}

#[test]
fn flores_devtest_matches_sacrebleu_and_rouge_score() {
    let Some(dir) = tarjama_testkit::require_flores() else {
        return;
    };
    let expected_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/flores_parity.json");
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(expected_path).unwrap()).unwrap();
    for (lang, exp) in expected["languages"].as_object().unwrap() {
        let text = std::fs::read_to_string(dir.join(exp["file"].as_str().unwrap())).unwrap();
        let refs = tarjama_eval::split_segments(&text);
        assert_eq!(
            refs.len() as u64,
            exp["n_segments"].as_u64().unwrap(),
            "{lang}: another FLORES release?"
        );
        let hyps: Vec<String> = refs
            .iter()
            .enumerate()
            .map(|(i, r)| perturb(i, r))
            .collect();
        for (tok, want) in exp["bleu"].as_object().unwrap() {
            let config = BleuConfig {
                tokenizer: tok.parse().unwrap(),
                ..BleuConfig::default()
            };
            close(
                corpus_bleu(&hyps, &refs, &config).unwrap().score,
                want,
                &format!("{lang} BLEU {tok}"),
            );
        }
        close(
            corpus_chrf(&hyps, &refs, &ChrfConfig::default())
                .unwrap()
                .score,
            &exp["chrf"]["chrF2"],
            &format!("{lang} chrF2"),
        );
        close(
            corpus_chrf(&hyps, &refs, &ChrfConfig::chrf_plus_plus())
                .unwrap()
                .score,
            &exp["chrf"]["chrF2++"],
            &format!("{lang} chrF2++"),
        );
        if let Some(rouge) = exp.get("rouge_f") {
            let corpus = RougeScorer::new(&RougeType::STANDARD, true)
                .score_corpus(&refs, &hyps)
                .unwrap();
            for (kind, mean) in corpus.types.iter().zip(&corpus.mean) {
                close(
                    mean.fmeasure,
                    &rouge[kind.key()],
                    &format!("{lang} {}", kind.display_name()),
                );
            }
        }
    }
}
