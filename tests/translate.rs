//! End-to-end tests of `tarjama translate`: the real binary on temp folders.
//!
//! The mechanics tests run the tiny `gemma-3-270m` base model with `--max-tokens 8`: its
//! English is poor, but greedy decoding is deterministic, which is what resuming and
//! sharding must preserve. One test checks that a real instruct model
//! (`qwen2.5-coder-0.5b-instruct`) produces English. Models are looked up where the binary
//! finds them (`tarjama_testkit::require_model`). The tests that need a model are marked
//! `#[ignore]`, so plain `cargo test` lists them as ignored; `scripts/test.sh` runs them with
//! `--include-ignored` and `TARJAMA_REQUIRE_MODELS=1`, where a missing model fails them.
//!
//! Why one file of over 700 lines: every test here drives the same command through the
//! same helpers (the model runner, the folder builder, the manifest reader), and the
//! resume, shard and Ctrl-C tests compare against each other's outputs.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

mod common;

use assert_cmd::Command;
use common::{last_json_line as summary, stdout_of, summary_of};
use serde_json::Value;
use tarjama_testkit::require_model;
use tempfile::TempDir;

const GEMMA: &str = "gemma-3-270m";
const QWEN: &str = "qwen2.5-coder-0.5b-instruct";

const S1: &str = "قال الرئيس إن المحادثات كانت مثمرة.";
const S2: &str = "ذهب الولد إلى المدرسة صباحا.";
const S3: &str = "انتهى الاجتماع مساء الأحد.";
const S4: &str = "ارتفعت أسعار النفط اليوم.";
const S5: &str = "أعلنت الحكومة عن خطة جديدة.";

/// `tarjama translate --model gemma-3-270m --max-tokens 8 ARGS...`
fn gemma(args: &[&str]) -> Command {
    let mut cmd = common::tarjama();
    cmd.args(["translate", "--model", GEMMA, "--max-tokens", "8"])
        .args(args);
    cmd
}

/// `tarjama translate --model gemma-3-270m --max-tokens 8 INPUT -o OUT ARGS...`
fn gemma_into(input: &Path, out: &Path, args: &[&str]) -> Command {
    let mut cmd = gemma(&[]);
    cmd.arg(input).arg("-o").arg(out).args(args);
    cmd
}

/// A scratch folder for a test that runs gemma-3-270m; `None` without the model (after
/// `require_model`'s note, or its panic under `TARJAMA_REQUIRE_MODELS=1`).
fn gemma_scratch() -> Option<TempDir> {
    require_model(GEMMA)?;
    Some(tempfile::tempdir().unwrap())
}

fn write(path: &Path, bytes: impl AsRef<[u8]>) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// Every file under `dir` (relative path, bytes), hidden bookkeeping files excluded.
fn outputs(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            if e.file_type().unwrap().is_dir() {
                walk(root, &e.path(), out);
            } else {
                let rel = e.path().strip_prefix(root).unwrap().display().to_string();
                out.insert(rel, std::fs::read(e.path()).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out
}

fn manifest_lines(dir: &Path) -> Vec<Value> {
    let mut lines = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with(".tarjama-manifest") {
            for l in std::fs::read_to_string(&p).unwrap().lines() {
                if let Ok(v) = serde_json::from_str::<Value>(l) {
                    lines.push(v);
                }
            }
        }
    }
    lines
}

#[test]
fn help_shows_examples_and_batch_flags() {
    let out = common::tarjama()
        .args(["translate", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "Examples:",
        "--shard",
        "--resume",
        "--include",
        "--format",
        "html",
        "--beam",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
    }
}

#[test]
fn bad_shard_is_a_usage_error() {
    common::tarjama()
        .args(["translate", "--shard", "3/2", "x.txt"])
        .assert()
        .code(2);
}

#[test]
#[ignore = "needs model gemma-3-270m (tarjama models pull)"]
fn folder_with_good_bad_and_unknown_files() {
    let Some(tmp) = gemma_scratch() else { return };
    let input = tmp.path().join("in");
    let out = tmp.path().join("out");
    write(&input.join("a.txt"), format!("{S1}\n"));
    // BOM and Windows line endings, two folders down.
    write(
        &input.join("deep/er/b.txt"),
        format!("\u{feff}{S2}\r\n\r\n{S1}\r\n"),
    );
    write(&input.join("bad/latin1.txt"), b"caf\xe9 \xff\xfe ok\n");
    write(&input.join("bad/binary.txt"), b"\x7fELF\x00\x00\x01\x02");
    write(&input.join("report.pdf"), b"%PDF-1.4\n");
    write(&input.join("photo.png"), b"\x89PNG\r\n");
    write(&input.join(".hidden/c.txt"), format!("{S3}\n"));
    let srt = format!(
        "1\n00:00:01,000 --> 00:00:02,500\n{S1}\n\n2\n00:00:03,000 --> 00:00:04,000\n<i>{S2}</i>\n\n"
    );
    write(&input.join("film.srt"), &srt);

    let run = || gemma_into(&input, &out, &["--json"]).output().unwrap();
    let first = run();
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert_eq!(first.status.code(), Some(3), "{stderr}");
    let s = summary(&first.stdout);
    assert_eq!(s["done"], 3, "{s}");
    assert_eq!(s["failed"], 2, "{s}");
    assert_eq!(s["unsupported"], 2, "{s}");
    // One clear line per bad file, naming it and the problem.
    let latin1 = stderr
        .lines()
        .find(|l| l.contains("latin1.txt"))
        .expect("latin1.txt reported");
    assert!(latin1.contains("invalid UTF-8"), "{latin1}");
    assert!(stderr
        .lines()
        .any(|l| l.contains("binary.txt") && l.contains("binary")));
    assert!(stderr
        .lines()
        .any(|l| l.contains("report.pdf") && l.contains("skipped")));
    // The same sentences in the subtitles came from the cache.
    assert!(s["cache_hits"].as_u64().unwrap() >= 2, "{s}");

    let files = outputs(&out);
    let names: Vec<_> = files.keys().cloned().collect();
    assert_eq!(names, ["a.txt", "deep/er/b.txt", "film.srt"], "{names:?}");
    // Paragraphs kept: b.txt had two.
    let b = String::from_utf8(files["deep/er/b.txt"].clone()).unwrap();
    assert!(b.contains("\n\n"), "{b:?}");
    // Subtitles: numbers, timestamps and blank lines survive; text changed.
    let film = String::from_utf8(files["film.srt"].clone()).unwrap();
    let lines: Vec<_> = film.lines().collect();
    assert_eq!(lines.len(), 8, "{film}");
    assert_eq!(lines[0], "1");
    assert_eq!(lines[1], "00:00:01,000 --> 00:00:02,500");
    assert_eq!(lines[3], "");
    assert_eq!(lines[4], "2");
    assert_eq!(lines[5], "00:00:03,000 --> 00:00:04,000");
    assert_ne!(lines[2], S1);
    assert!(!lines[2].is_empty() && !lines[6].is_empty());
    assert_eq!(lines[7], "");

    // A rerun skips everything finished, without loading the model.
    let second = run();
    assert_eq!(second.status.code(), Some(3));
    let s = summary(&second.stdout);
    assert_eq!(
        (s["done"].as_u64(), s["skipped"].as_u64()),
        (Some(0), Some(3))
    );
    assert_eq!(outputs(&out), files);

    // A changed input is redone; a deleted output is redone.
    write(&input.join("a.txt"), format!("{S2}\n"));
    std::fs::remove_file(out.join("film.srt")).unwrap();
    let third = run();
    let s = summary(&third.stdout);
    assert_eq!(
        (s["done"].as_u64(), s["skipped"].as_u64()),
        (Some(2), Some(1)),
        "{s}"
    );
    assert_eq!(outputs(&out)["film.srt"], files["film.srt"]);
    // a.txt now holds b.txt's first sentence: the same translation.
    let a = String::from_utf8(outputs(&out)["a.txt"].clone()).unwrap();
    assert!(b.starts_with(a.trim_end()), "{a:?} vs {b:?}");
}

#[test]
#[ignore = "needs model gemma-3-270m (tarjama models pull)"]
fn only_bad_inputs_exit_1() {
    let Some(tmp) = gemma_scratch() else { return };
    write(&tmp.path().join("in/x.txt"), b"\xff\xfe\x00\x00 utf-16?");
    write(&tmp.path().join("in/y.txt"), b"\xc3\x28 broken");
    let out = gemma_into(&tmp.path().join("in"), &tmp.path().join("out"), &[])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(outputs(&tmp.path().join("out")).is_empty());
}

#[test]
#[ignore = "needs model gemma-3-270m (tarjama models pull)"]
fn too_large_input_is_skipped_with_its_reason() {
    let Some(tmp) = gemma_scratch() else { return };
    let f = tmp.path().join("big.txt");
    write(&f, S1.repeat(20));
    let out = gemma(&[f.to_str().unwrap(), "--max-input-size", "100"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("big.txt") && stderr.contains("--max-input-size"),
        "{stderr}"
    );
}

#[test]
#[ignore = "needs model gemma-3-270m (tarjama models pull)"]
fn globs_hidden_and_symlinks() {
    let Some(tmp) = gemma_scratch() else { return };
    let input = tmp.path().join("in");
    // One sentence everywhere: the cache makes this one model call per run.
    for f in [
        "keep.txt",
        "sub/keep2.txt",
        "sub/draft.txt",
        ".secret/h.txt",
    ] {
        write(&input.join(f), format!("{S1}\n"));
    }
    write(&tmp.path().join("elsewhere/linked.txt"), format!("{S1}\n"));
    #[cfg(unix)]
    std::os::unix::fs::symlink(tmp.path().join("elsewhere"), input.join("link")).unwrap();

    let out1 = tmp.path().join("out1");
    gemma_into(&input, &out1, &["--exclude", "**/draft*"])
        .assert()
        .code(0);
    let names: Vec<_> = outputs(&out1).into_keys().collect();
    assert_eq!(names, ["keep.txt", "sub/keep2.txt"]);

    let out2 = tmp.path().join("out2");
    gemma_into(&input, &out2, &["--hidden", "--follow"])
        .args(["--include", "*.txt", "--exclude", "sub/**"])
        .assert()
        .code(0);
    assert!(out2.join(".secret/h.txt").is_file());
    #[cfg(unix)]
    assert!(out2.join("link/linked.txt").is_file());
    assert!(!out2.join("sub").exists());
}

#[test]
#[ignore = "needs model gemma-3-270m (tarjama models pull)"]
fn every_output_format() {
    let Some(tmp) = gemma_scratch() else { return };
    let input = tmp.path().join("in");
    let out = tmp.path().join("out");
    let source = format!("{S1} {S2}\n\nقال: <نعم> & \"لا\".\n");
    write(&input.join("a.txt"), &source);
    let mut got = BTreeMap::new();
    for format in ["txt", "jsonl", "tsv", "html"] {
        // All formats into one folder: the cache on disk means one model pass in all.
        let s = summary_of(&mut gemma_into(
            &input,
            &out,
            &["--format", format, "--json"],
        ));
        assert_eq!(s["done"], 1);
        let text = std::fs::read_to_string(out.join(format!("a.{format}"))).unwrap();
        got.insert(format, text);
    }

    // jsonl: one record per sentence, spans point into the source.
    let records: Vec<Value> = got["jsonl"]
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 3);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r["sentence"], i);
        assert_eq!(r["file"], "a.txt");
        assert_eq!(r["model"], GEMMA);
        let (a, b) = (
            r["span"][0].as_u64().unwrap() as usize,
            r["span"][1].as_u64().unwrap() as usize,
        );
        assert_eq!(&source[a..b], r["source"].as_str().unwrap());
        assert!(r["translation"].is_string());
    }
    assert_eq!(records[0]["paragraph"], 0);
    assert_eq!(records[2]["paragraph"], 1);
    // tsv: a header and one row per sentence, source first.
    let rows: Vec<_> = got["tsv"].lines().collect();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0], "source\ttranslation");
    assert_eq!(rows[1].split('\t').next(), Some(S1));
    assert!(rows.iter().all(|r| r.split('\t').count() == 2));
    // html: both columns, Arabic right-to-left, markup in the text escaped.
    let html = &got["html"];
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert_eq!(html.matches("dir=\"rtl\" lang=\"ar\"").count(), 3, "{html}");
    assert_eq!(
        html.matches("<td class=\"en\" dir=\"ltr\" lang=\"en\">")
            .count(),
        2
    );
    assert!(html.contains("&lt;نعم&gt; &amp; &quot;لا&quot;"));
    assert!(!html.contains("<نعم>"));
    // txt: the same translations (from the cache, not redone), paragraphs kept.
    let t = |i: usize| records[i]["translation"].as_str().unwrap().to_string();
    assert_eq!(got["txt"], format!("{} {}\n\n{}\n", t(0), t(1), t(2)));
}

#[test]
#[ignore = "needs model gemma-3-270m (tarjama models pull)"]
fn stdin_to_stdout() {
    if require_model(GEMMA).is_none() {
        return;
    }
    let o = gemma(&["--json"])
        .write_stdin(format!("{S4}\n"))
        .output()
        .unwrap();
    assert!(o.status.success());
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.ends_with('\n') && text.trim().len() > 1, "{text:?}");
    assert_ne!(text.trim(), S4);
    // With outputs on stdout, the summary goes to stderr.
    let s = summary(&o.stderr);
    assert_eq!(s["done"], 1);

    let record = common::json_of(gemma(&["-", "--format", "jsonl"]).write_stdin(S4));
    assert_eq!(record["source"], S4);
    assert_eq!(
        record["translation"].as_str().unwrap().trim_end(),
        text.trim_end()
    );
}

/// Five inputs with distinct sentences, so a run takes long enough to be killed in the
/// middle.
fn corpus(dir: &Path) {
    for (i, s) in [S1, S2, S3, S4, S5].iter().enumerate() {
        write(
            &dir.join(format!("d{}/f{i}.txt", i % 2)),
            format!("{s}\n\n{S1}\n"),
        );
    }
}

/// Starts `tarjama translate --model gemma-3-270m --max-tokens 8 INPUT -o OUT EXTRA...`
/// and SIGKILLs it as soon as the manifest records a first finished input.
fn kill_after_first_output(input: &Path, out: &Path, extra: &[&str]) {
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("tarjama"))
        .args([
            "translate",
            "--model",
            GEMMA,
            "--max-tokens",
            "8",
            "--quiet",
        ])
        .args(extra)
        .arg(input)
        .arg("-o")
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(600);
    let manifest = out.join(".tarjama-manifest.jsonl");
    while !std::fs::read(&manifest).is_ok_and(|b| b.ends_with(b"\n")) {
        assert!(Instant::now() < deadline, "no output appeared");
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before any output?"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

#[test]
#[ignore = "needs model gemma-3-270m (tarjama models pull)"]
fn resume_after_sigkill_gives_identical_bytes() {
    let Some(tmp) = gemma_scratch() else { return };
    let input = tmp.path().join("in");
    corpus(&input);
    let clean = tmp.path().join("clean");
    gemma_into(&input, &clean, &[]).assert().code(0);
    let expected = outputs(&clean);
    assert_eq!(expected.len(), 5);

    let killed = tmp.path().join("killed");
    // Kill once the first input is recorded as done, so the rerun has something to skip
    // and something to redo.
    kill_after_first_output(&input, &killed, &[]);
    let manifest = killed.join(".tarjama-manifest.jsonl");
    let partial = outputs(&killed);
    assert!(partial.len() < 5, "the kill came too late to test anything");
    // Simulate the worst moment: a manifest line torn in the middle of its write.
    let mut bytes = std::fs::read(&manifest).unwrap_or_default();
    bytes.extend_from_slice(b"{\"input\":\"d0/f4.txt\",\"sha2");
    std::fs::write(&manifest, bytes).unwrap();

    let s = summary_of(&mut gemma_into(&input, &killed, &["--json"]));
    assert_eq!(
        s["done"].as_u64().unwrap() + s["skipped"].as_u64().unwrap(),
        5,
        "{s}"
    );
    assert_eq!(outputs(&killed), expected);
    assert!(s["skipped"].as_u64().unwrap() >= 1, "{s}");
    let mut done: Vec<_> = manifest_lines(&killed)
        .iter()
        .map(|l| l["input"].as_str().unwrap().to_string())
        .collect();
    done.sort();
    done.dedup();
    assert_eq!(done.len(), 5);
    // No temporary file left behind by the killed run is taken for an output.
    assert!(outputs(&killed).keys().all(|k| k.ends_with(".txt")));
}

/// 12 files: 9 of sentences of their own (numbered variants), 3 sharing sentences with
/// earlier ones, so that with `--parallel 8` many are translated at once and some must wait
/// for the one they share a sentence with.
fn parallel_corpus(dir: &Path) {
    let base = [S1, S2, S3, S4, S5];
    for i in 0..12 {
        let text = if i < 9 {
            let s = base[i % 5].trim_end_matches('.');
            format!("{s} {}.\n\n{S5} {i}\n", ["واحد", "اثنان", "ثلاثة"][i % 3])
        } else {
            format!("{}\n", base[i - 9])
        };
        write(&dir.join(format!("p{}/f{i:02}.txt", i % 3)), text);
    }
}

#[test]
#[ignore = "needs model gemma-3-270m (tarjama models pull)"]
fn parallel_runs_resume_after_sigkill_to_the_same_bytes() {
    let Some(tmp) = gemma_scratch() else { return };
    let input = tmp.path().join("in");
    parallel_corpus(&input);
    let run = |out: &Path, parallel: &str| {
        summary_of(&mut gemma_into(
            &input,
            out,
            &["--parallel", parallel, "--json"],
        ))
    };
    let one = tmp.path().join("one");
    run(&one, "1");
    let eight = tmp.path().join("eight");
    let s = run(&eight, "8");
    let expected = outputs(&one);
    assert_eq!(expected.len(), 12);
    assert_eq!(outputs(&eight), expected, "--parallel 8 vs one at a time");
    let engine = &s["engine"];
    assert!(engine["peak_running"].as_u64().unwrap() > 1, "{engine}");

    let killed = tmp.path().join("killed");
    kill_after_first_output(&input, &killed, &["--parallel", "8"]);
    assert!(
        outputs(&killed).len() < 12,
        "the kill came too late to test anything"
    );
    assert!(run(&killed, "8")["skipped"].as_u64().unwrap() >= 1);
    assert_eq!(
        outputs(&killed),
        expected,
        "killed at --parallel 8 and resumed"
    );
}

#[test]
#[ignore = "needs model gemma-3-270m (tarjama models pull)"]
fn ctrl_c_stops_after_the_current_input() {
    let Some(tmp) = gemma_scratch() else { return };
    let input = tmp.path().join("in");
    corpus(&input);
    let out = tmp.path().join("out");
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("tarjama"))
        .args(["translate", "--model", GEMMA, "--max-tokens", "8"])
        .arg(&input)
        .arg("-o")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    while outputs(&out).is_empty() {
        std::thread::sleep(Duration::from_millis(10));
    }
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let o = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("run the same command again"), "{stderr}");
    let n = outputs(&out).len();
    assert!((1..5).contains(&n), "{n} outputs");
    assert_eq!(manifest_lines(&out).len(), n);
}

#[test]
#[ignore = "needs model gemma-3-270m (tarjama models pull)"]
fn shards_cover_every_input_once_and_merge() {
    let Some(tmp) = gemma_scratch() else { return };
    let input = tmp.path().join("in");
    // One sentence in every file: each shard makes a single model call.
    // Ten names of which the path hash puts eight in shard 1 and two in shard 2.
    for i in 0..10 {
        write(&input.join(format!("n{i}.txt")), format!("{S5}\n"));
    }
    let out = tmp.path().join("out");
    let mut per_shard = Vec::new();
    for shard in ["1/2", "2/2"] {
        let s = summary_of(&mut gemma_into(&input, &out, &["--shard", shard, "--json"]));
        per_shard.push(s["done"].as_u64().unwrap());
    }
    assert_eq!(per_shard, [8, 2]);
    assert!(out.join(".tarjama-manifest.1-of-2.jsonl").is_file());
    assert!(out.join(".tarjama-manifest.2-of-2.jsonl").is_file());
    let mut inputs: Vec<_> = manifest_lines(&out)
        .iter()
        .map(|l| l["input"].as_str().unwrap().to_string())
        .collect();
    inputs.sort();
    assert_eq!(inputs.len(), 10, "each input done exactly once: {inputs:?}");
    inputs.dedup();
    assert_eq!(inputs.len(), 10);
    assert_eq!(outputs(&out).len(), 10);

    // An unsharded run over the same folder reads both manifests: nothing left to do.
    let o = gemma_into(&input, &out, &["--json"]).output().unwrap();
    let s = summary(&o.stdout);
    assert_eq!(
        (s["done"].as_u64(), s["skipped"].as_u64()),
        (Some(0), Some(10))
    );
}

#[test]
#[ignore = "needs model qwen2.5-coder-0.5b-instruct (tarjama models pull)"]
fn real_model_writes_english() {
    if require_model(QWEN).is_none() {
        return;
    }
    let text = String::from_utf8(stdout_of(
        common::tarjama()
            .args(["translate", "--model", QWEN, "--max-tokens", "48"])
            .write_stdin(format!("{S1} {S4}\n")),
    ))
    .unwrap();
    let letters: Vec<char> = text.chars().filter(|c| c.is_alphabetic()).collect();
    let latin = letters.iter().filter(|c| c.is_ascii_alphabetic()).count();
    assert!(letters.len() > 20, "{text:?}");
    assert!(
        latin as f64 / letters.len() as f64 > 0.9,
        "not English: {text:?}"
    );
}
