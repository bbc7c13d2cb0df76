//! End-to-end tests of `tarjama prep`: the real binary on real files in temp dirs.

use std::io::Write as _;
use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::*;
use tempfile::TempDir;

fn tarjama() -> Command {
    Command::cargo_bin("tarjama").expect("the tarjama binary is built")
}

fn write(dir: &TempDir, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn stdout_of(cmd: &mut Command) -> String {
    let out = cmd.assert().success().get_output().stdout.clone();
    String::from_utf8(out).expect("stdout is UTF-8")
}

fn without_whitespace(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

const ARTICLE: &str = "قال د. أحمد إن النمو بلغ ٣٫٥ في المئة. وأضاف: \"انتهى.\"\nثالث لقاء\n\n\
                       The U.S. economy grew. Really?\n";

#[test]
fn split_prints_one_sentence_a_line_and_blank_lines_between_paragraphs() {
    let dir = TempDir::new().unwrap();
    let file = write(&dir, "a.txt", ARTICLE.as_bytes());
    let out = stdout_of(tarjama().args(["prep", "split"]).arg(&file));
    assert_eq!(
        out,
        "قال د. أحمد إن النمو بلغ ٣٫٥ في المئة.\nوأضاف: \"انتهى.\"\nثالث لقاء\n\n\
         The U.S. economy grew.\nReally?\n"
    );
    assert_eq!(without_whitespace(&out), without_whitespace(ARTICLE));
}

#[test]
fn split_json_gives_spans_into_the_input_and_scripts() {
    let out = stdout_of(
        tarjama()
            .args(["prep", "split", "--json", "-"])
            .write_stdin(ARTICLE),
    );
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect();
    assert_eq!(lines.len(), 5);
    for line in &lines {
        let (start, end) = (
            line["start"].as_u64().unwrap(),
            line["end"].as_u64().unwrap(),
        );
        assert_eq!(
            &ARTICLE[start as usize..end as usize],
            line["text"].as_str().unwrap()
        );
    }
    let scripts: Vec<&str> = lines
        .iter()
        .map(|l| l["script"].as_str().unwrap())
        .collect();
    assert_eq!(scripts, ["arabic", "arabic", "arabic", "latin", "latin"]);
    let paragraphs: Vec<u64> = lines
        .iter()
        .map(|l| l["paragraph"].as_u64().unwrap())
        .collect();
    assert_eq!(paragraphs, [0, 0, 0, 1, 1]);
}

#[test]
fn normalize_applies_the_profile_and_named_steps() {
    let input = "\u{FEFF}مـــرحبا\u{200F}  بكم في ٢٠٢٥\r\nمُحَمَّد أحمد\n";
    let mt = stdout_of(
        tarjama()
            .args(["prep", "normalize", "-"])
            .write_stdin(input),
    );
    assert_eq!(mt, "مرحبا بكم في ٢٠٢٥\nمُحَمَّد أحمد\n");
    let search = stdout_of(
        tarjama()
            .args([
                "prep",
                "normalize",
                "--profile",
                "search",
                "--step",
                "digits",
            ])
            .write_stdin(input),
    );
    assert_eq!(search, "مرحبا بكم في 2025\nمحمد احمد\n");
    let no_tatweel_step = stdout_of(
        tarjama()
            .args(["prep", "normalize", "--no-step", "tatweel"])
            .write_stdin(input),
    );
    assert_eq!(no_tatweel_step, "مـــرحبا بكم في ٢٠٢٥\nمُحَمَّد أحمد\n");
}

#[test]
fn normalize_json_lists_the_steps() {
    let out = stdout_of(
        tarjama()
            .args(["prep", "normalize", "--json", "--step", "digits", "-"])
            .write_stdin("مـرحبا ٣٫٥"),
    );
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["profile"], "mt");
    assert_eq!(json["text"], "مرحبا 3.5");
    assert_eq!(
        json["steps"],
        serde_json::json!([
            "bom",
            "line-endings",
            "bidi",
            "zero-width",
            "tatweel",
            "digits",
            "whitespace",
            "nfc"
        ])
    );
    assert_eq!(json["changed"], serde_json::json!(["tatweel", "digits"]));
}

#[test]
fn unknown_step_or_profile_is_a_usage_error() {
    tarjama()
        .args(["prep", "normalize", "--step", "nope", "-"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "unknown normalization step \"nope\"",
        ));
    tarjama()
        .args(["prep", "normalize", "--profile", "fast", "-"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("expected mt, search or none"));
}

#[test]
fn empty_input_gives_empty_output() {
    let dir = TempDir::new().unwrap();
    let file = write(&dir, "empty.txt", b"");
    for sub in ["split", "normalize"] {
        tarjama()
            .args(["prep", sub])
            .arg(&file)
            .assert()
            .success()
            .stdout("");
        tarjama()
            .args(["prep", sub, "-"])
            .write_stdin("")
            .assert()
            .success()
            .stdout("");
    }
    tarjama()
        .args(["prep", "split", "--json"])
        .arg(&file)
        .assert()
        .success()
        .stdout("");
}

#[test]
fn invalid_utf8_names_the_file_and_offset_unless_lossy() {
    let dir = TempDir::new().unwrap();
    let mut bytes = "سلام عليكم.\n".as_bytes().to_vec();
    let bad_at = bytes.len();
    bytes.extend_from_slice(b"ok \xC3\x28 end.\n");
    let file = write(&dir, "bad.txt", &bytes);
    for sub in ["split", "normalize"] {
        tarjama()
            .args(["prep", sub])
            .arg(&file)
            .assert()
            .code(1)
            .stdout("")
            .stderr(predicate::str::contains(format!(
                "bad.txt: invalid UTF-8 at byte offset {}",
                bad_at + 3
            )))
            .stderr(predicate::str::contains("--lossy"));
    }
    let out = stdout_of(tarjama().args(["prep", "split", "--lossy"]).arg(&file));
    assert_eq!(out, "سلام عليكم.\nok \u{FFFD}( end.\n");
}

#[test]
fn binary_files_are_refused() {
    let dir = TempDir::new().unwrap();
    let mut bytes = b"\x7fELF".to_vec();
    bytes.extend((0u8..=255).cycle().take(4096));
    let file = write(&dir, "tool.bin", &bytes);
    tarjama()
        .args(["prep", "split"])
        .arg(&file)
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains("tool.bin").and(predicate::str::contains("binary file")));

    let nul = write(&dir, "nul.txt", b"text with a NUL\0 in it\n");
    tarjama()
        .args(["prep", "normalize"])
        .arg(&nul)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "nul.txt: NUL byte at byte offset 15",
        ));

    let utf16 = write(&dir, "utf16.txt", b"\xFF\xFEa\x00b\x00");
    tarjama()
        .args(["prep", "split"])
        .arg(&utf16)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("UTF-16"));
}

#[test]
fn a_missing_file_is_named() {
    tarjama()
        .args(["prep", "split", "no/such/file.txt"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no/such/file.txt: cannot read"));
}

#[test]
fn text_without_arabic_passes_through() {
    let english = "The talks were productive. Dr. Smith agreed!\nSee https://example.com/a.b for 3.5% more.\n";
    let normalized = stdout_of(tarjama().args(["prep", "normalize"]).write_stdin(english));
    assert_eq!(normalized, english);
    let spaced = "The  talks\twere productive.   \n";
    let normalized = stdout_of(tarjama().args(["prep", "normalize"]).write_stdin(spaced));
    assert_eq!(normalized, "The talks were productive.\n");
    let split = stdout_of(tarjama().args(["prep", "split"]).write_stdin(english));
    assert_eq!(
        split,
        "The talks were productive.\nDr. Smith agreed!\nSee https://example.com/a.b for 3.5% more.\n"
    );
}

#[test]
fn stdin_is_read_with_dash_or_no_argument() {
    let with_dash = stdout_of(tarjama().args(["prep", "split", "-"]).write_stdin(ARTICLE));
    let without = stdout_of(tarjama().args(["prep", "split"]).write_stdin(ARTICLE));
    assert_eq!(with_dash, without);
    assert_eq!(with_dash.lines().count(), 6);
}

#[test]
fn a_bom_is_dropped_and_offsets_count_the_decoded_text() {
    let text = "\u{FEFF}جملة. أخرى.";
    let out = stdout_of(
        tarjama()
            .args(["prep", "split", "--json"])
            .write_stdin(text),
    );
    let first: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(first["start"], 0);
    assert_eq!(first["text"], "جملة.");
}

/// Builds a ~50 MB article-like file: paragraphs of Arabic and some English.
fn write_large(path: &Path) -> (usize, String) {
    let paragraph =
        "قال كيريل ديمترييف، المستشار المقرب من الرئيس الروسي، إن المباحثات كانت \"مثمرة\". \
                     وأضاف د. أحمد أن النمو بلغ ٣٫٥ في المئة عند الساعة ١٠:٠٨ صباحاً.\n\
                     ثالث لقاء مع بوتين\nThe U.S. envoy met him. Talks lasted 4.5 hours!\n\n";
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut written = 0;
    let mut count = 0;
    while written < 50 * 1024 * 1024 {
        file.write_all(paragraph.as_bytes()).unwrap();
        written += paragraph.len();
        count += 1;
    }
    file.flush().unwrap();
    (count, paragraph.to_owned())
}

/// Runs the binary, polling the child's peak resident memory (VmHWM) until it exits.
#[cfg(target_os = "linux")]
fn run_measuring_peak(args: &[&std::ffi::OsStr], stdout: &Path) -> u64 {
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("tarjama"))
        .args(args)
        .stdout(std::fs::File::create(stdout).unwrap())
        .spawn()
        .unwrap();
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0;
    loop {
        if let Ok(status) = std::fs::read_to_string(&status_path) {
            if let Some(kb) = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                peak_kb = peak_kb.max(kb);
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success());
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    peak_kb
}

/// The file is 50 MB: read whole, the peak would be above that. Streamed in blocks of
/// a few hundred KiB (4 MiB at most), it stays near 5 MB; the limit leaves room for
/// allocator and platform differences while still failing a whole-file read.
#[cfg(target_os = "linux")]
const PEAK_LIMIT_KB: u64 = 40 * 1024;

#[cfg(target_os = "linux")]
#[test]
fn a_50_mb_input_streams_with_flat_memory() {
    let dir = TempDir::new().unwrap();
    let input = dir.path().join("large.txt");
    let (count, paragraph) = write_large(&input);

    let out_path = dir.path().join("split.txt");
    let peak_split = run_measuring_peak(
        &["prep".as_ref(), "split".as_ref(), input.as_os_str()],
        &out_path,
    );
    let out = std::fs::read_to_string(&out_path).unwrap();
    // Every paragraph gives the same five sentences, paragraphs separated by one blank line.
    let one =
        "قال كيريل ديمترييف، المستشار المقرب من الرئيس الروسي، إن المباحثات كانت \"مثمرة\".\n\
               وأضاف د. أحمد أن النمو بلغ ٣٫٥ في المئة عند الساعة ١٠:٠٨ صباحاً.\n\
               ثالث لقاء مع بوتين\nThe U.S. envoy met him.\nTalks lasted 4.5 hours!\n";
    assert_eq!(out.len(), one.len() * count + (count - 1));
    assert!(out.starts_with(&format!("{one}\n{one}")));
    assert!(out.split("\n\n").all(|p| p.trim_end() == one.trim_end()));
    drop(out);

    let json_path = dir.path().join("split.jsonl");
    let peak_json = run_measuring_peak(
        &[
            "prep".as_ref(),
            "split".as_ref(),
            "--json".as_ref(),
            input.as_os_str(),
        ],
        &json_path,
    );
    // Spans refer to the whole input: the last sentence's span ends at the last
    // paragraph's last visible byte.
    let json = std::fs::read_to_string(&json_path).unwrap();
    let last: serde_json::Value = serde_json::from_str(json.lines().last().unwrap()).unwrap();
    let total = paragraph.len() * count;
    assert_eq!(last["end"].as_u64().unwrap() as usize, total - 2);
    assert_eq!(last["paragraph"].as_u64().unwrap() as usize, count - 1);
    assert_eq!(json.lines().count(), 5 * count);
    drop(json);

    let norm_path = dir.path().join("normalized.txt");
    let peak_norm = run_measuring_peak(
        &["prep".as_ref(), "normalize".as_ref(), input.as_os_str()],
        &norm_path,
    );
    assert_eq!(std::fs::metadata(&norm_path).unwrap().len() as usize, total);

    eprintln!(
        "peak RSS: split {peak_split} kB, split --json {peak_json} kB, normalize {peak_norm} kB"
    );
    for peak in [peak_split, peak_json, peak_norm] {
        assert!(
            peak < PEAK_LIMIT_KB,
            "peak RSS {peak} kB: the input was not streamed"
        );
    }
}
