//! End-to-end tests of `tarjama eval`: the real binary on files in temporary folders.
//!
//! Expected numbers come from sacreBLEU 2.6.0 and rouge-score 0.1.2 run on the same
//! three segments (`sacrebleu ref -i hyp -m bleu chrf`), so the table is checked against
//! the reference tool, not against itself.

use std::path::{Path, PathBuf};

mod common;

use assert_cmd::assert::Assert;
use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;
use tempfile::TempDir;

const REF: &str = "The cat sat on the mat.\nHello world, this is a test.\nA quick brown fox.\n";
const HYP1: &str = "The cat sat on a mat.\nHello world this is test.\nA fast brown fox jumps.\n";
const HYP2: &str = "The cat is on the mat.\nHello, world, this is a test.\nquick brown fox.\n";

fn write(dir: &TempDir, name: &str, text: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn setup() -> (TempDir, PathBuf, PathBuf, PathBuf) {
    let dir = TempDir::new().unwrap();
    let r = write(&dir, "ref.txt", REF.as_bytes());
    let h1 = write(&dir, "h1.txt", HYP1.as_bytes());
    let h2 = write(&dir, "h2.txt", HYP2.as_bytes());
    (dir, r, h1, h2)
}

/// `tarjama eval --ref R --hyp HYP... EXTRA...`
fn eval(r: &Path, hyps: &[&Path], extra: &[&str]) -> Command {
    eval_refs(&[r], hyps, extra)
}

/// `tarjama eval --ref REF... --hyp HYP... EXTRA...`
fn eval_refs(refs: &[&Path], hyps: &[&Path], extra: &[&str]) -> Command {
    let mut cmd = common::tarjama();
    cmd.arg("eval");
    for r in refs {
        cmd.arg("--ref").arg(r);
    }
    for h in hyps {
        cmd.arg("--hyp").arg(h);
    }
    cmd.args(extra);
    cmd
}

/// Runs `cmd`, which must succeed; its stdout, one JSON document.
fn json(mut cmd: Command) -> Value {
    common::json_of(&mut cmd)
}

/// Runs `cmd`, which must succeed; its stdout as text.
fn text_of(mut cmd: Command) -> String {
    String::from_utf8(common::stdout_of(&mut cmd)).unwrap()
}

/// `tarjama eval --ref R --hyp HYP`, which must fail with exit code 1 and print nothing on
/// stdout; the test checks what it says on stderr.
fn eval_fails(r: &Path, hyp: &Path) -> Assert {
    eval(r, &[hyp], &[]).assert().code(1).stdout("")
}

#[test]
fn table_matches_sacrebleu_lines() {
    let (_dir, r, h1, _) = setup();
    // `sacrebleu ref -i h1 -m bleu chrf -w 1` prints exactly these two lines.
    eval(&r, &[&h1], &["--width", "1"])
        .assert()
        .success()
        .stdout(
            "BLEU|nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0 = 26.9 \
             84.2/50.0/15.4/10.0 (BP = 0.949 ratio = 0.950 hyp_len = 19 ref_len = 20)\n\
             chrF2|nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.6.0 = 59.5\n",
        );
}

#[test]
fn chrf_plus_plus_and_rouge_lines() {
    let (_dir, r, h1, _) = setup();
    let stdout = text_of(eval(
        &r,
        &[&h1],
        &["--metrics", "chrf++,rouge", "--width", "1"],
    ));
    // sacreBLEU: chrF2++ = 60.7 at width 1.
    assert!(
        stdout.starts_with(
            "chrF2++|nrefs:1|case:mixed|eff:yes|nc:6|nw:2|space:no|version:2.6.0 = 60.7"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("ROUGE-1|stem:yes|tok:default|agg:mean|rouge-score:0.1.2 = "),
        "{stdout}"
    );
    assert!(stdout.contains("ROUGE-Lsum|"), "{stdout}");
    assert!(!stdout.contains("BLEU|"), "{stdout}");
}

#[test]
fn json_output_is_complete_and_stable() {
    let (_dir, r, h1, _) = setup();
    let v = json(eval(
        &r,
        &[&h1],
        &["--json", "--metrics", "bleu,chrf,rouge", "--sentence-level"],
    ));
    assert_eq!(v["format_version"], 1);
    assert_eq!(v["n_segments"], 3);
    assert_eq!(v["sacrebleu_version"], "2.6.0");
    let system = &v["systems"][0];
    assert!(system["hyp"].as_str().unwrap().ends_with("h1.txt"));
    let metrics = system["metrics"].as_array().unwrap();
    let names: Vec<&str> = metrics
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "BLEU",
            "chrF2",
            "ROUGE-1",
            "ROUGE-2",
            "ROUGE-L",
            "ROUGE-Lsum"
        ]
    );
    let bleu = &metrics[0];
    // sacrebleu.corpus_bleu(...).score on these segments.
    assert!(
        (bleu["score"].as_f64().unwrap() - 26.915233574288543).abs() < 1e-9,
        "{bleu}"
    );
    assert_eq!(bleu["bleu"]["sys_len"], 19);
    assert_eq!(bleu["bleu"]["ref_len"], 20);
    assert_eq!(bleu["bleu"]["counts"], serde_json::json!([16, 8, 2, 1]));
    assert!((metrics[1]["score"].as_f64().unwrap() - 59.497624146748805).abs() < 1e-9);
    // rouge_scorer.RougeScorer(['rouge1'], use_stemmer=True), mean over the segments.
    let r1 = &metrics[2]["rouge"];
    assert!(
        (r1["fmeasure"].as_f64().unwrap() - 0.8030303030303031).abs() < 1e-12,
        "{r1}"
    );
    let segments = system["segments"].as_array().unwrap();
    assert_eq!(segments.len(), 3);
    assert_eq!(segments[0].as_array().unwrap().len(), 6);
    // sacrebleu.sentence_bleu("The cat sat on a mat.", ["The cat sat on the mat."]).score
    assert!((segments[0][0]["score"].as_f64().unwrap() - 48.892302243490086).abs() < 1e-9);
}

#[test]
fn tokenizer_and_smoothing_flags_reach_the_signature() {
    let (_dir, r, h1, _) = setup();
    let v = json(eval(
        &r,
        &[&h1],
        &[
            "--json",
            "--metrics",
            "bleu",
            "--tokenize",
            "intl",
            "--smooth",
            "floor",
        ],
    ));
    let sig = v["systems"][0]["metrics"][0]["signature"].as_str().unwrap();
    assert_eq!(
        sig,
        "nrefs:1|case:mixed|eff:no|tok:intl|smooth:floor[0.10]|version:2.6.0"
    );
}

#[test]
fn mismatched_line_counts_name_both_files() {
    let (dir, r, _, _) = setup();
    let short = write(&dir, "short.txt", b"only one line\n");
    eval_fails(&r, &short).stderr(
        predicate::str::contains("short.txt has 1 lines")
            .and(predicate::str::contains("ref.txt has 3")),
    );
}

#[test]
fn missing_file_is_named() {
    let (dir, r, _, _) = setup();
    let missing = dir.path().join("nope.txt");
    eval_fails(&r, &missing)
        .stderr(predicate::str::contains("cannot read").and(predicate::str::contains("nope.txt")));
}

#[test]
fn invalid_utf8_is_named_with_its_line() {
    let (dir, r, _, _) = setup();
    let bad = write(&dir, "bad.txt", b"fine\nbro\xffken\nfine\n");
    eval_fails(&r, &bad).stderr(predicate::str::contains(
        "bad.txt is not valid UTF-8 (line 2",
    ));
}

#[test]
fn unknown_metric_is_a_usage_error() {
    let (_dir, r, h1, _) = setup();
    eval(&r, &[&h1], &["--metrics", "meteor"])
        .assert()
        .failure()
        .code(2);
}

#[test]
fn crlf_files_score_like_lf_files() {
    let (dir, r, h1, _) = setup();
    let crlf = write(&dir, "crlf.txt", HYP1.replace('\n', "\r\n").as_bytes());
    let a = json(eval(&r, &[&h1], &["--json", "--metrics", "bleu,chrf++"]));
    let b = json(eval(&r, &[&crlf], &["--json", "--metrics", "bleu,chrf++"]));
    assert_eq!(a["systems"][0]["metrics"], b["systems"][0]["metrics"]);
}

#[test]
fn paired_bootstrap_runs_and_is_deterministic() {
    let (_dir, r, h1, h2) = setup();
    let args = [
        "--json",
        "--paired-bs",
        "--metrics",
        "bleu,chrf,rouge",
        "--seed",
        "7",
    ];
    let a = json(eval(&r, &[&h1, &h2], &args));
    let b = json(eval(&r, &[&h1, &h2], &args));
    assert_eq!(a, b, "same seed, same output");
    assert_eq!(a["bootstrap"]["n_samples"], 1000);
    assert_eq!(a["systems"][0]["baseline"], true);
    assert_eq!(a["systems"][1]["baseline"], false);
    let base = &a["systems"][0]["metrics"][0];
    assert!(base["bootstrap"]["p_value"].is_null());
    assert_eq!(
        base["signature"],
        "nrefs:1|bs:1000|seed:7|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0"
    );
    for m in a["systems"][1]["metrics"].as_array().unwrap() {
        let p = m["bootstrap"]["p_value"].as_f64().unwrap();
        assert!(p > 0.0 && p <= 1.0, "{m}");
        assert!(m["bootstrap"]["ci"].as_f64().unwrap() >= 0.0);
    }
    let other_seed = json(eval(
        &r,
        &[&h1, &h2],
        &["--json", "--paired-bs", "--seed", "8"],
    ));
    assert_ne!(
        a["systems"][1]["metrics"][0]["bootstrap"],
        other_seed["systems"][1]["metrics"][0]["bootstrap"],
        "the seed changes the resamples"
    );
    // The actual scores do not depend on the bootstrap.
    assert_eq!(
        a["systems"][1]["metrics"][0]["score"],
        other_seed["systems"][1]["metrics"][0]["score"]
    );
}

#[test]
fn paired_bootstrap_table_marks_the_baseline() {
    let (_dir, r, h1, h2) = setup();
    let stdout = text_of(eval(&r, &[&h1, &h2], &["--paired-bs"]));
    assert!(stdout.contains("BLEU (μ ± 95% CI)"), "{stdout}");
    assert!(stdout.contains("Baseline: "), "{stdout}");
    assert!(stdout.contains("(p = "), "{stdout}");
    assert!(
        stdout.contains(" - BLEU   nrefs:1|bs:1000|seed:12345|"),
        "{stdout}"
    );
}

#[test]
fn rouge_lsum_splits_on_the_sentence_marker() {
    let dir = TempDir::new().unwrap();
    let r = write(
        &dir,
        "ref.txt",
        "The cat sat on the mat.<n>It was happy there.\nPolice arrested two men.<n>They were released later.\n"
            .as_bytes(),
    );
    let h = write(
        &dir,
        "hyp.txt",
        "It was happy.<n>The cat sat on a mat.\nTwo men were arrested.<n>Police released them later.\n"
            .as_bytes(),
    );
    let v = json(eval(
        &r,
        &[&h],
        &[
            "--json",
            "--metrics",
            "rouge",
            "--rouge-sentence-sep",
            "<n>",
        ],
    ));
    let metrics = &v["systems"][0]["metrics"];
    // rouge-score with the markers replaced by newlines: rougeL 0.575657894736842,
    // rougeLsum 0.7960526315789473 (mean F over the two segments).
    assert_eq!(metrics[2]["name"], "ROUGE-L");
    assert!((metrics[2]["score"].as_f64().unwrap() - 0.575657894736842).abs() < 1e-12);
    assert_eq!(metrics[3]["name"], "ROUGE-Lsum");
    assert!((metrics[3]["score"].as_f64().unwrap() - 0.7960526315789473).abs() < 1e-12);
    assert!(metrics[3]["signature"]
        .as_str()
        .unwrap()
        .contains("|sent-sep:<n>|"));
    // Without the marker, the marker's letter is a token and Lsum is just L.
    let plain = json(eval(&r, &[&h], &["--json", "--metrics", "rouge"]));
    let m = &plain["systems"][0]["metrics"];
    assert_eq!(m[2]["score"], m[3]["score"]);
}

#[test]
fn several_references_match_sacrebleu_multi_reference() {
    let (dir, r, h1, h2) = setup();
    let r2 = write(
        &dir,
        "ref2.txt",
        b"The cat was sitting on the mat.\nHello world, this is just a test.\nA fast brown fox.\n",
    );
    // `sacrebleu ref ref2 -i h1 -m bleu chrf -w 4`
    eval_refs(&[&r, &r2], &[&h1], &["--width", "4"])
        .assert()
        .success()
        .stdout(
            "BLEU|nrefs:2|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0 = 40.8623 \
             89.5/62.5/30.8/20.0 (BP = 0.949 ratio = 0.950 hyp_len = 19 ref_len = 20)\n\
             chrF2|nrefs:2|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.6.0 = 70.4800\n",
        );
    // Every metric, per segment and with the bootstrap, accepts two references.
    let v = json(eval_refs(
        &[&r, &r2],
        &[&h1, &h2],
        &[
            "--json",
            "--paired-bs",
            "--sentence-level",
            "--metrics",
            "bleu,chrf++,rouge",
        ],
    ));
    assert_eq!(v["references"].as_array().unwrap().len(), 2);
    assert_eq!(v["systems"][1]["segments"].as_array().unwrap().len(), 3);

    let short = write(&dir, "short_ref.txt", b"one\ntwo\n");
    eval_refs(&[&r, &short], &[&h1], &[])
        .assert()
        .failure()
        .stderr(
            predicate::str::contains("short_ref.txt has 2 lines")
                .and(predicate::str::contains("ref.txt has 3")),
        );
}

/// The parity fixture of tarjama-eval (generated by `scripts/gen_metric_fixtures.py`).
fn metric_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tarjama-eval/tests/fixtures/metrics")
}

#[test]
fn printed_lines_match_sacrebleu_for_every_tokenizer_and_smoothing() {
    let dir = metric_fixtures();
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let reference = dir.join("ref.txt");
    let mut runs = 0;
    for system in expected["systems"].as_object().unwrap().values() {
        let hyp = dir.join(system["file"].as_str().unwrap());
        let chrf = |word_order: u64| {
            system["chrf"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| {
                    c["word_order"] == word_order
                        && c["whitespace"] == false
                        && c["eps_smoothing"] == false
                        && c["lowercase"] == false
                })
                .unwrap()
        };
        for case in system["bleu"].as_array().unwrap() {
            if case["lowercase"] == true {
                continue;
            }
            let mut cmd = eval(
                &reference,
                &[&hyp],
                &["--metrics", "bleu,chrf,chrf++", "--width", "2"],
            );
            cmd.args(["--tokenize", case["tokenize"].as_str().unwrap()]);
            cmd.args(["--smooth", case["smooth"].as_str().unwrap()]);
            if let Some(v) = case["smooth_value"].as_f64() {
                cmd.args(["--smooth-value", &v.to_string()]);
            }
            let mut want = format!("{}\n", case["formatted"].as_str().unwrap());
            for c in [chrf(0), chrf(2)] {
                // sacreBLEU's Score.format(width=2): `name|signature = score`.
                let line = format!(
                    "{}|{} = {:.2}\n",
                    c["name"].as_str().unwrap(),
                    c["signature"].as_str().unwrap(),
                    c["score"].as_f64().unwrap()
                );
                want.push_str(&line);
            }
            cmd.assert().success().stdout(want);
            runs += 1;
        }
    }
    assert!(runs >= 100, "{runs} runs");
}

#[test]
fn hypotheses_can_come_from_standard_input() {
    let (_dir, r, h1, _) = setup();
    let from_file = json(eval(&r, &[&h1], &["--json"]));
    let mut cmd = eval(&r, &[Path::new("-")], &["--json"]);
    cmd.write_stdin(HYP1);
    let from_stdin = json(cmd);
    assert_eq!(
        from_file["systems"][0]["metrics"],
        from_stdin["systems"][0]["metrics"]
    );
}

#[test]
fn tokenized_output_is_warned_about_on_stderr() {
    let dir = TempDir::new().unwrap();
    let lines: String = (0..120)
        .map(|i| format!("sentence number {i} .\n"))
        .collect();
    let r = write(&dir, "ref.txt", lines.replace(" .", ".").as_bytes());
    let h = write(&dir, "hyp.txt", lines.as_bytes());
    eval(&r, &[&h], &["--metrics", "bleu"])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "120 lines that end in a tokenized period",
        ));
}

#[test]
fn glossary_adherence_and_facts_are_counted_per_line() {
    let dir = TempDir::new().unwrap();
    let src = write(
        &dir,
        "src.txt",
        "قال بوتين في الكرملين\nوصل بوتين\nلا شيء\n".as_bytes(),
    );
    let glossary = write(
        &dir,
        "names.tsv",
        "arabic\tenglish\nبوتين\tPutin\nالكرملين\tKremlin\n".as_bytes(),
    );
    let r = write(
        &dir,
        "ref.txt",
        b"Putin spoke in the Kremlin.\nPutin arrived.\nNothing.\n",
    );
    let h = write(
        &dir,
        "hyp.txt",
        b"Putin said in the Kremlin on 3 May.\nPoutine arrived.\nnothing\n",
    );
    let with_glossary = [
        "--glossary",
        glossary.to_str().unwrap(),
        "--src",
        src.to_str().unwrap(),
    ];
    let report = json(eval(
        &r,
        &[&h],
        &[&with_glossary[..], &["--facts", "--json"]].concat(),
    ));
    let system = &report["systems"][0];
    assert_eq!(system["glossary"]["terms"], 3);
    assert_eq!(system["glossary"]["present"], 2);
    assert_eq!(
        system["glossary"]["missing"],
        serde_json::json!([[2, "Putin"]])
    );
    // Putin, Kremlin (found), 3, May, Poutine (not).
    assert_eq!(system["facts"]["facts"], 5);
    assert_eq!(system["facts"]["found"], 2);
    // Text output names the misses; --glossary without --src is a usage error.
    eval(&r, &[&h], &with_glossary).assert().success().stdout(
        predicate::str::contains("Glossary terms in").and(predicate::str::contains("2 of 3")),
    );
    eval(&r, &[&h], &["--glossary", glossary.to_str().unwrap()])
        .assert()
        .code(2);
}
