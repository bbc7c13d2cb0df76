//! End-to-end tests of `tarjama models`, and of the GGUF chat models behind `summarize`
//! and `translate` on real weights.
//!
//! The real-model tests need the model files (`scripts/test.sh` pulls them through
//! `tarjama models pull`) and are marked `#[ignore]`: plain `cargo test` lists them as
//! ignored, and `scripts/test.sh` runs them with `TARJAMA_REQUIRE_MODELS=1`, where a
//! missing model fails.

use std::path::{Path, PathBuf};

mod common;

use common::{json_lines_of, json_of, tarjama};
use predicates::prelude::*;
use tarjama_testkit::require_model;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Share of letters that are ASCII Latin: English output is near 1, Arabic near 0.
fn latin_share(text: &str) -> f64 {
    let letters: Vec<char> = text.chars().filter(|c| c.is_alphabetic()).collect();
    let latin = letters.iter().filter(|c| c.is_ascii_alphabetic()).count();
    latin as f64 / letters.len().max(1) as f64
}

#[test]
fn list_shows_the_registry_with_the_default_marked() {
    tarjama()
        .args(["models", "list"])
        .assert()
        .success()
        .stdout(predicate::str::contains("qwen2.5-coder-1.5b-instruct *"))
        .stdout(predicate::str::contains("gemma-3-270m"));
    let out = tarjama()
        .args(["models", "list", "--json"])
        .output()
        .unwrap();
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(rows.iter().any(|r| r["default"] == true));
    assert!(rows
        .iter()
        .all(|r| r["name"].is_string() && r["sources"].is_array()));
}

#[test]
fn unknown_models_are_clear_errors() {
    tarjama()
        .args(["models", "info", "no-such-model"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("no-such-model"));
    tarjama()
        .args(["summarize", "--model", "no-such-model"])
        .write_stdin("نص")
        .assert()
        .failure()
        .stderr(predicate::str::contains("unknown model `no-such-model`"));
}

#[test]
fn offline_hub_models_fail_fast_with_a_reason() {
    let home = tempfile::tempdir().unwrap();
    tarjama()
        .env("TARJAMA_HOME", home.path())
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_HUB_CACHE", home.path().join("hub"))
        .args(["models", "pull", "qwen2.5-3b-instruct"])
        .timeout(std::time::Duration::from_secs(60))
        .assert()
        .failure()
        .stderr(predicate::str::contains("HF_HUB_OFFLINE"));
}

#[test]
fn a_truncated_model_file_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.gguf");
    std::fs::write(&bad, b"GGUF\x03\x00\x00\x00garbage").unwrap();
    tarjama()
        .args(["translate", "--model"])
        .arg(&bad)
        .write_stdin("قال بوتين.")
        .assert()
        .failure()
        .stderr(predicate::str::contains("broken.gguf"));
}

#[test]
#[ignore = "needs model qwen2.5-coder-0.5b-instruct (tarjama models pull)"]
fn summarize_the_seed_article_in_english_with_the_small_qwen() {
    if require_model("qwen2.5-coder-0.5b-instruct").is_none() {
        return;
    }
    let seed = repo_root().join("seeds/000_34bb1b6fbb72ba1f.txt");
    let report = json_of(
        tarjama()
            .args(["summarize", "--model", "qwen2.5-coder-0.5b-instruct"])
            .args(["--sentences", "3", "--format", "json", "-q"])
            .arg(&seed),
    );
    let summary = report["summary"].as_str().unwrap();
    assert!(!summary.is_empty());
    assert!(latin_share(summary) > 0.9, "not English: {summary}");
    assert!(
        // The 0.5B model garbles most names (see the README); the country it gets.
        summary.contains("Russia"),
        "the summary misses Russia: {summary}"
    );
    let sentences = report["sentences"].as_array().unwrap();
    assert!(!sentences.is_empty() && sentences.len() <= 3, "{report}");
    assert_eq!(report["source_sentences"], 19);
}

#[test]
#[ignore = "needs model qwen2.5-coder-0.5b-instruct (tarjama models pull)"]
fn translate_flores_sentences_into_english_with_the_small_qwen() {
    if require_model("qwen2.5-coder-0.5b-instruct").is_none() {
        return;
    }
    let Some(flores) = tarjama_testkit::require_flores() else {
        return;
    };
    let arabic = std::fs::read_to_string(flores.join("arb_Arab.devtest")).unwrap();
    let input: String = arabic.lines().take(3).map(|l| format!("{l}\n\n")).collect();
    let records = json_lines_of(
        tarjama()
            .args(["translate", "--model", "qwen2.5-coder-0.5b-instruct"])
            .args(["--format", "jsonl", "-q"])
            .write_stdin(input),
    );
    assert!(records.len() >= 3, "{records:?}");
    for r in &records {
        let t = r["translation"].as_str().unwrap();
        assert!(latin_share(t) > 0.9, "not English: {t}");
    }
}

#[test]
fn a_truncated_safetensors_file_is_named_in_the_error() {
    let src = repo_root().join("crates/tarjama-seq2seq/tests/fixtures/seq2seq/marian");
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    let weights = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    tarjama()
        .args(["translate", "--model"])
        .arg(dir.path())
        .write_stdin("قال بوتين.")
        .assert()
        .failure()
        .stderr(predicate::str::contains("model.safetensors"))
        .stderr(predicate::str::contains("truncated"));
}

/// The fixture's inputs and transformers' greedy outputs (24 = 1 start + 23 new tokens).
fn marian_fixture() -> (PathBuf, Vec<String>, Vec<String>) {
    let dir = repo_root().join("crates/tarjama-seq2seq/tests/fixtures/seq2seq/marian");
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
            .unwrap();
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    let inputs = strings(&reference["inputs"]);
    let greedy = reference["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "greedy")
        .expect("a greedy case");
    let expected = greedy["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["texts"][0].as_str().unwrap().to_string())
        .collect();
    (dir, inputs, expected)
}

/// `tarjama translate --model DIR --normalize none --beam 1 --max-tokens 23` plus `extra`,
/// one paragraph per input; the translations.
fn translate_marian(dir: &Path, inputs: &[String], extra: &[&str]) -> Vec<String> {
    json_lines_of(marian(dir, inputs).args(["--beam", "1", "-q"]).args(extra))
        .iter()
        .map(|r| r["translation"].as_str().unwrap().to_string())
        .collect()
}

/// `tarjama translate --model DIR --normalize none --max-tokens 23 --format jsonl`, one
/// paragraph per input on stdin.
fn marian(dir: &Path, inputs: &[String]) -> assert_cmd::Command {
    let stdin: String = inputs.iter().map(|l| format!("{l}\n\n")).collect();
    let mut cmd = tarjama();
    cmd.args(["translate", "--model"])
        .arg(dir)
        .args([
            "--normalize",
            "none",
            "--max-tokens",
            "23",
            "--format",
            "jsonl",
        ])
        .write_stdin(stdin);
    cmd
}

/// The encoder-decoder path through the CLI prints exactly what Hugging Face transformers'
/// `generate` + `batch_decode(skip_special_tokens=True)` gave for the tiny random Marian
/// fixture (`scripts/gen_seq2seq_fixtures.py`), greedy.
#[test]
fn translate_with_a_marian_folder_prints_what_transformers_decodes() {
    let (dir, inputs, expected) = marian_fixture();
    assert_eq!(translate_marian(&dir, &inputs, &[]), expected);
}

/// An encoder-decoder with a glossary: the sentences that hold a term are decoded by
/// constrained beam search and write its English; the others decode exactly as without
/// it. `--candidates` picks among the beam's n-best and says so per sentence.
#[test]
fn marian_glossary_terms_are_written_and_candidates_recorded() {
    let (dir, inputs, expected) = marian_fixture();
    let tmp = tempfile::TempDir::new().unwrap();
    let glossary = tmp.path().join("g.tsv");
    // "the minister" (first input) and "prices" (second) with English the tiny random
    // model never writes unasked.
    std::fs::write(&glossary, "الوزير\tBush\nالأسعار\tnuclear\n").unwrap();
    assert!(!expected[0].contains("Bush") && !expected[1].contains("nuclear"));
    let g = glossary.to_str().unwrap();
    let got = translate_marian(&dir, &inputs, &["--glossary", g]);
    assert_eq!(got.len(), expected.len());
    assert!(got[0].contains("Bush"), "{:?}", got[0]);
    assert!(got[1].contains("nuclear"), "{:?}", got[1]);
    assert_eq!(
        got[2..],
        expected[2..],
        "sentences without a term are untouched"
    );

    let records = json_lines_of(marian(&dir, &inputs).args(["--candidates", "3", "-q"]));
    assert_eq!(records.len(), inputs.len());
    let compared: Vec<u64> = records
        .iter()
        .filter_map(|r| r["candidates"].as_u64())
        .collect();
    // The random model's answers are mostly Arabic-looking, which the guards drop; a
    // sentence with no candidate left keeps the beam's best and records none.
    assert!(!compared.is_empty(), "{records:?}");
    assert!(
        compared.iter().all(|&n| (1..=3).contains(&n)),
        "{compared:?}"
    );
}

/// `--int8` loads the same model with 8-bit linear layers: every input still gets a
/// translation, most of them the f32 one (the library's tests measure the agreement).
#[test]
fn translate_int8_quantizes_an_encoder_decoder() {
    let (dir, inputs, expected) = marian_fixture();
    let got = translate_marian(&dir, &inputs, &["--int8"]);
    assert_eq!(got.len(), expected.len());
    assert!(got.iter().all(|t| !t.is_empty()));
    let same = got.iter().zip(&expected).filter(|(a, b)| a == b).count();
    assert!(
        2 * same >= expected.len(),
        "int8 agrees with f32 on {same}/{} inputs",
        expected.len()
    );
}
