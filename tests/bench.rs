//! End-to-end tests of `tarjama bench` on the tiny `gemma-3-270m` model: the JSON report
//! a script reads, the HTML page with its plot, summary benchmarks, and the errors for
//! bad data.
//!
//! The model tests need `gemma-3-270m` downloaded (`tarjama models pull gemma-3-270m`);
//! they are marked `#[ignore]` and run by `scripts/test.sh`, where a missing model fails. Speed
//! is never asserted beyond "positive and ordered".

use std::path::{Path, PathBuf};

mod common;

use common::{json_of, tarjama};
use predicates::prelude::*;
use serde_json::Value;
use tarjama_testkit::require_model;
use tempfile::TempDir;

const MODEL: &str = "gemma-3-270m";

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Three short news sentences with their English references.
fn parallel(dir: &Path) -> (PathBuf, PathBuf) {
    let src = write(
        dir,
        "src.ar",
        "قال الرئيس إن المحادثات كانت مثمرة.\nارتفعت أسعار النفط يوم الاثنين.\nافتتحت المدرسة الجديدة في القاهرة.\n",
    );
    let reference = write(
        dir,
        "ref.en",
        "The president said the talks were fruitful.\nOil prices rose on Monday.\nThe new school opened in Cairo.\n",
    );
    (src, reference)
}

/// With gemma-3-270m: a temporary folder and [`parallel`]'s two files in it; `None`
/// without the model (after `require_model`'s note, or its panic under
/// `TARJAMA_REQUIRE_MODELS=1`).
fn parallel_for_gemma() -> Option<(TempDir, PathBuf, PathBuf)> {
    require_model(MODEL)?;
    let dir = TempDir::new().unwrap();
    let (src, reference) = parallel(dir.path());
    Some((dir, src, reference))
}

/// `tarjama bench -m gemma-3-270m --src SRC --ref REF`, to which a test adds its flags.
fn bench(src: &Path, reference: &Path) -> assert_cmd::Command {
    let mut cmd = tarjama();
    cmd.args(["bench", "-m", MODEL])
        .arg("--src")
        .arg(src)
        .arg("--ref")
        .arg(reference);
    cmd
}

fn number(v: &Value, pointer: &str) -> f64 {
    v.pointer(pointer)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{pointer} missing or not a number in {v:#}"))
}

#[test]
#[ignore = "needs model gemma-3-270m (tarjama models pull)"]
fn translation_json_and_html_report_everything() {
    let Some((dir, src, reference)) = parallel_for_gemma() else {
        return;
    };
    let html = dir.path().join("report.html");
    let v = json_of(
        bench(&src, &reference)
            .args(["--limit", "3", "--runs", "1", "--speed-subset", "1"])
            .args([
                "--max-tokens",
                "8",
                "--threads",
                "1",
                "--parallel-levels",
                "1,3",
            ])
            .arg("--json")
            .arg("--html")
            .arg(&html),
    );
    assert_eq!(v["schema"], 1);
    assert_eq!(v["task"], "translate");
    assert_eq!(v["dataset"]["items"], 3);
    assert_eq!(v["settings"]["runs"], 1);
    assert_eq!(v["settings"]["decoding"], "greedy");
    assert!(!v["machine"]["cpu"].as_str().unwrap().is_empty());
    assert_eq!(v["machine"]["threads"], 1);
    assert!(v["machine"]["features"].is_array());
    assert_eq!(v["machine"]["version"], env!("CARGO_PKG_VERSION"));
    if cfg!(target_os = "linux") {
        assert_eq!(v["machine"]["load_start"].as_array().unwrap().len(), 3);
        assert_eq!(v["machine"]["load_end"].as_array().unwrap().len(), 3);
    }
    assert_eq!(v["failures"].as_array().unwrap().len(), 0);
    let models = v["models"].as_array().unwrap();
    assert_eq!(models.len(), 1);
    let m = &models[0];
    assert_eq!(m["model"], MODEL);
    assert!(number(m, "/load_cold_s") > 0.0 && number(m, "/load_warm_s") > 0.0);
    let file = number(m, "/file_mib");
    assert!(file > 10.0);
    if cfg!(target_os = "linux") {
        // The worker held the whole model in memory at least once.
        assert!(number(m, "/peak_rss_mib") > file * 0.5, "{m:#}");
    }
    let t = &m["translate"];
    for metric in ["/bleu", "/chrf_pp"] {
        let x = number(t, metric);
        assert!((0.0..=100.0).contains(&x), "{metric} = {x}");
    }
    assert!(t["bleu_signature"]
        .as_str()
        .unwrap()
        .starts_with("nrefs:1|"));
    assert!(t["chrf_signature"].as_str().unwrap().contains("nw:2"));
    assert_eq!(t["sentences"], 3);
    assert_eq!(t["hypotheses"].as_array().unwrap().len(), 3);
    let s = &t["speed"];
    for field in [
        "/sentences_per_s",
        "/source_tokens_per_s",
        "/target_tokens_per_s",
        "/latency_p50_s",
        "/ttft_p50_s",
    ] {
        assert!(number(s, field) > 0.0, "{field} in {s:#}");
    }
    assert!(number(s, "/latency_p95_s") >= number(s, "/latency_p50_s"));
    // The full pass and one repeat; 3 + 1 timed sentences.
    assert_eq!(s["runs"], 2);
    assert_eq!(s["timed_sentences"], 4);
    // Throughput with 1 and 3 requests in flight, over the 3 sentences.
    let levels = t["throughput"].as_array().unwrap();
    assert_eq!(levels.len(), 2);
    for (level, want) in levels.iter().zip([1, 3]) {
        assert_eq!(level["parallel"], want);
        assert_eq!(level["sentences"], 3);
        assert!(number(level, "/sentences_per_s") > 0.0, "{level}");
    }

    let page = std::fs::read_to_string(&html).expect("the HTML report is written");
    assert!(page.contains("<svg"));
    assert!(page.contains("<circle"));
    assert!(page.contains(MODEL));
}

#[test]
#[ignore = "needs model gemma-3-270m (tarjama models pull)"]
fn kv_budget_reaches_the_batched_engine() {
    let Some((_dir, src, reference)) = parallel_for_gemma() else {
        return;
    };
    let levels = |budget: Option<&str>| -> Vec<f64> {
        let mut cmd = bench(&src, &reference);
        cmd.args([
            "--limit",
            "2",
            "--runs",
            "0",
            "--max-tokens",
            "4",
            "--threads",
            "1",
        ])
        .args(["--json", "--parallel-levels", "2"]);
        if let Some(mib) = budget {
            cmd.args(["--kv-budget", mib]);
        }
        json_of(&mut cmd)["models"][0]["translate"]["throughput"]
            .as_array()
            .unwrap()
            .iter()
            .map(|level| number(level, "/kv_budget_mib"))
            .collect()
    };
    assert_eq!(levels(Some("48")), [48.0]);
    // Without the flag: a quarter of the available memory, 256 MiB at least.
    let default = levels(None);
    assert_eq!(default.len(), 1);
    assert!(default[0] >= 256.0, "{default:?}");
}

#[test]
#[ignore = "needs model gemma-3-270m (tarjama models pull)"]
fn candidate_levels_are_rows_of_their_own() {
    let Some((dir, src, reference)) = parallel_for_gemma() else {
        return;
    };
    let html = dir.path().join("report.html");
    let v = json_of(
        bench(&src, &reference)
            .args([
                "--limit",
                "2",
                "--runs",
                "0",
                "--max-tokens",
                "6",
                "--threads",
                "1",
            ])
            .args(["--json", "--candidates", "1,3,1", "--parallel-levels", "2"])
            .arg("--html")
            .arg(&html),
    );
    assert!(v["settings"]["decoding"]
        .as_str()
        .unwrap()
        .contains("temperature 0.7"));
    let models = v["models"].as_array().unwrap();
    let names: Vec<&str> = models
        .iter()
        .map(|m| m["model"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [MODEL, &format!("{MODEL} --candidates 3")],
        "each level once"
    );
    let (one, three) = (&models[0]["translate"], &models[1]["translate"]);
    assert_eq!(three["hypotheses"].as_array().unwrap().len(), 2);
    assert!(number(three, "/chrf_pp") >= 0.0);
    // Throughput belongs to the engine, measured once, on the greedy row.
    assert_eq!(one["throughput"].as_array().unwrap().len(), 1);
    assert!(three["throughput"].as_array().unwrap().is_empty());
    // Its speed is measured like any row's (every candidate's tokens count).
    assert!(
        number(three, "/speed/target_tokens_per_s") > 0.0,
        "{three:#}"
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains(&format!("{MODEL} --candidates 3")));

    bench(&src, &reference)
        .args(["--candidates", "0"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("--candidates: 0"));
}

#[test]
#[ignore = "needs model gemma-3-270m (tarjama models pull)"]
fn table_names_the_model_and_the_load() {
    let Some((_dir, src, reference)) = parallel_for_gemma() else {
        return;
    };
    bench(&src, &reference)
        .args(["--limit", "1", "--runs", "0", "--max-tokens", "4"])
        .args(["--parallel-levels", "2"])
        .assert()
        .success()
        .stdout(predicate::str::contains("chrF++").and(predicate::str::contains(MODEL)))
        .stdout(predicate::str::contains("load average at start"))
        .stdout(predicate::str::contains("sent/s by requests in flight"));
}

#[test]
#[ignore = "needs model gemma-3-270m (tarjama models pull)"]
fn summaries_are_scored_for_both_strategies() {
    if require_model(MODEL).is_none() {
        return;
    }
    let dir = TempDir::new().unwrap();
    let articles = dir.path().join("articles");
    let refs = dir.path().join("refs");
    std::fs::create_dir_all(&articles).unwrap();
    std::fs::create_dir_all(&refs).unwrap();
    write(
        &articles,
        "a.txt",
        "قال الرئيس إن المحادثات في القاهرة كانت مثمرة. وأضاف أن الوفدين سيلتقيان مرة أخرى.",
    );
    write(
        &refs,
        "a.txt",
        "The president said the talks in Cairo were fruitful.",
    );
    let v = json_of(
        tarjama()
            .args([
                "bench",
                "-m",
                MODEL,
                "--task",
                "summarize",
                "--strategy",
                "both",
            ])
            .args(["--sentences", "1", "--json"])
            .arg("--articles")
            .arg(&articles)
            .arg("--refs")
            .arg(&refs),
    );
    assert_eq!(v["task"], "summarize");
    let runs = v["models"][0]["summarize"].as_array().unwrap();
    let strategies: Vec<&str> = runs
        .iter()
        .map(|r| r["strategy"].as_str().unwrap())
        .collect();
    assert_eq!(strategies, ["direct", "translate"]);
    for r in runs {
        assert_eq!(r["articles"], 1);
        for k in ["rouge1", "rouge2", "rougeL", "rougeLsum"] {
            let x = number(&r["rouge"], &format!("/{k}"));
            assert!((0.0..=100.0).contains(&x), "{k} = {x}");
        }
        assert!(number(r, "/seconds_p50") > 0.0);
        // No English document was given: names are checked against the model's own
        // translation.
        assert_eq!(r["entity_source"], "model translation");
        let faithful = &r["entity_faithfulness"];
        assert!(faithful.is_null() || (0.0..=1.0).contains(&faithful.as_f64().unwrap()));
    }
}

#[test]
fn missing_flores_folder_is_named() {
    let dir = TempDir::new().unwrap();
    let missing = dir.path().join("no-flores-here");
    tarjama()
        .args(["bench", "-m", MODEL])
        .arg("--flores")
        .arg(&missing)
        .assert()
        .failure()
        .stderr(predicate::str::contains("no-flores-here").and(predicate::str::contains("FLORES")));
    tarjama()
        .args(["bench", "-m", MODEL])
        .env("TARJAMA_FLORES", &missing)
        .assert()
        .failure()
        .stderr(predicate::str::contains("no-flores-here"));
}

#[test]
fn flores_folder_without_its_files_is_named() {
    let dir = TempDir::new().unwrap();
    tarjama()
        .args(["bench", "-m", MODEL])
        .arg("--flores")
        .arg(dir.path())
        .assert()
        .failure()
        .stderr(predicate::str::contains("arb_Arab.devtest"));
}

#[test]
fn mismatched_source_and_reference_name_both_files() {
    let dir = TempDir::new().unwrap();
    let src = write(dir.path(), "sources.ar", "أ\nب\nج\n");
    let reference = write(dir.path(), "refs.en", "a\nb\n");
    bench(&src, &reference).assert().failure().stderr(
        predicate::str::contains("sources.ar has 3 lines")
            .and(predicate::str::contains("refs.en has 2")),
    );
}

#[test]
fn src_without_ref_is_a_usage_error() {
    tarjama()
        .args(["bench", "-m", MODEL, "--src", "x.ar"])
        .assert()
        .code(2);
}
