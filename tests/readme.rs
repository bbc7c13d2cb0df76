//! Every `tarjama` command that README.md and docs/**/*.md show in a fenced shell block
//! must run as written: its subcommand and every flag must parse.
//!
//! Each fenced block marked `sh`, `bash`, `shell`, `console` or unmarked is read line by
//! line (`\` continuations joined, `# comments` dropped, `$ ` prompts of console blocks
//! stripped) and split like a shell would (quotes, escapes, `|`, `&&`, `||`, `;`,
//! redirections). Every simple command that runs `tarjama` (also `target/*/tarjama`,
//! after `VAR=value`, `time`, `/usr/bin/time -v` or `qemu-x86_64 -cpu CPU`) or
//! `cargo run --release -- ARGS` is run as the built binary with its arguments followed by
//! `--help`: clap stops with exit code 2 at an unknown subcommand or flag, or a bad value,
//! met before `--help`, and exits 0 otherwise. A few commands that need no model are also
//! run for real.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The repository's root folder (this file is registered by `crates/tarjama-cli`).
fn root() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    dir.canonicalize().unwrap_or(dir)
}

/// README.md and every Markdown file under docs/, in a stable order.
fn documents(root: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
    }
    let mut docs = Vec::new();
    walk(&root.join("docs"), &mut docs);
    docs.sort();
    let mut all = vec![root.join("README.md")];
    all.extend(docs);
    all
}

/// The logical lines of the shell blocks of a Markdown text: (first line number, text).
fn shell_lines(markdown: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    // The open fence: its marker (``` or ~~~, at least three) and whether it is shell.
    let mut fence: Option<(String, bool)> = None;
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in markdown.lines().enumerate() {
        let number = i + 1;
        let trimmed = raw.trim_start();
        match &fence {
            None => {
                let marker: String = trimmed
                    .chars()
                    .take_while(|&c| c == '`' || c == '~')
                    .collect();
                if marker.len() >= 3 && marker.chars().all(|c| c == marker.as_bytes()[0] as char) {
                    let info = trimmed[marker.len()..].trim().to_ascii_lowercase();
                    let lang = info.split_whitespace().next().unwrap_or("");
                    let shell = matches!(lang, "" | "sh" | "bash" | "shell" | "console" | "zsh");
                    fence = Some((marker, shell));
                }
            }
            Some((marker, shell)) => {
                if trimmed.starts_with(marker.as_str())
                    && trimmed
                        .trim_end()
                        .chars()
                        .all(|c| c == marker.as_bytes()[0] as char)
                {
                    if let Some(line) = pending.take() {
                        out.push(line);
                    }
                    fence = None;
                    continue;
                }
                if !shell {
                    continue;
                }
                let mut text = trimmed.trim_end().to_string();
                if pending.is_none() {
                    if let Some(rest) = text.strip_prefix("$ ") {
                        text = rest.to_string();
                    }
                }
                let continued = text.ends_with('\\') && !text.ends_with("\\\\");
                if continued {
                    text.pop();
                }
                let (start, mut joined) = pending.take().unwrap_or((number, String::new()));
                if !joined.is_empty() {
                    joined.push(' ');
                }
                joined.push_str(&text);
                if continued {
                    pending = Some((start, joined));
                } else {
                    out.push((start, joined));
                }
            }
        }
    }
    if let Some(line) = pending {
        out.push(line);
    }
    out
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    /// `|`, `||`, `&&`, `;`, `&`, `(`, `)`.
    Separator,
    /// `<`, `>`, `>>`, `<<`, `2>`, `&>` ...: the next word is its target.
    Redirect,
    /// A redirection that names no file: `2>&1`, `>&2`.
    Dup,
}

/// Splits a shell line into words and operators, as a POSIX shell would (without
/// expanding anything). `None` when quotes are left open.
fn tokenize(line: &str) -> Option<Vec<Token>> {
    let chars: Vec<char> = line.chars().collect();
    let mut tokens = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut i = 0;
    let flush = |word: &mut String, in_word: &mut bool, tokens: &mut Vec<Token>| {
        if *in_word {
            tokens.push(Token::Word(std::mem::take(word)));
            *in_word = false;
        }
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' => flush(&mut word, &mut in_word, &mut tokens),
            '#' if !in_word => break,
            '\'' => {
                in_word = true;
                i += 1;
                while i < chars.len() && chars[i] != '\'' {
                    word.push(chars[i]);
                    i += 1;
                }
                if i == chars.len() {
                    return None;
                }
            }
            '"' => {
                in_word = true;
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' && i + 1 < chars.len() && "\"\\$`".contains(chars[i + 1]) {
                        i += 1;
                    }
                    word.push(chars[i]);
                    i += 1;
                }
                if i == chars.len() {
                    return None;
                }
            }
            '\\' => {
                in_word = true;
                if i + 1 < chars.len() {
                    i += 1;
                    word.push(chars[i]);
                }
            }
            '|' | ';' | '(' | ')' => {
                flush(&mut word, &mut in_word, &mut tokens);
                if c == '|' && chars.get(i + 1) == Some(&'|') {
                    i += 1;
                }
                tokens.push(Token::Separator);
            }
            '&' => {
                flush(&mut word, &mut in_word, &mut tokens);
                match chars.get(i + 1) {
                    Some('&') => {
                        i += 1;
                        tokens.push(Token::Separator);
                    }
                    Some('>') => {
                        i += 1;
                        if chars.get(i + 1) == Some(&'>') {
                            i += 1;
                        }
                        tokens.push(Token::Redirect);
                    }
                    _ => tokens.push(Token::Separator),
                }
            }
            '<' | '>' => {
                // A word of digits right before it is the descriptor (`2>`), not a word.
                if in_word && !word.is_empty() && word.chars().all(|d| d.is_ascii_digit()) {
                    word.clear();
                    in_word = false;
                }
                flush(&mut word, &mut in_word, &mut tokens);
                while matches!(chars.get(i + 1), Some('<' | '>')) {
                    i += 1;
                }
                if chars.get(i + 1) == Some(&'&') {
                    // `>&2`, `2>&1`: a duplicated descriptor, no file.
                    i += 1;
                    while matches!(chars.get(i + 1), Some(d) if d.is_ascii_digit() || *d == '-') {
                        i += 1;
                    }
                    tokens.push(Token::Dup);
                } else {
                    tokens.push(Token::Redirect);
                }
            }
            _ => {
                in_word = true;
                word.push(c);
            }
        }
        i += 1;
    }
    flush(&mut word, &mut in_word, &mut tokens);
    Some(tokens)
}

/// The simple commands of a token list, redirections and their targets removed.
fn simple_commands(tokens: &[Token]) -> Vec<Vec<String>> {
    let mut commands = vec![Vec::new()];
    let mut skip_target = false;
    for token in tokens {
        match token {
            Token::Separator => {
                skip_target = false;
                commands.push(Vec::new());
            }
            Token::Redirect => skip_target = true,
            Token::Dup => {}
            Token::Word(w) => {
                if skip_target {
                    skip_target = false;
                } else {
                    commands.last_mut().expect("one at least").push(w.clone());
                }
            }
        }
    }
    commands.retain(|c| !c.is_empty());
    commands
}

/// The arguments `tarjama` gets in a simple command, if the command runs tarjama.
fn tarjama_args(words: &[String]) -> Option<Vec<String>> {
    let is_assignment = |w: &str| {
        w.split_once('=').is_some_and(|(name, _)| {
            !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit())
        })
    };
    let mut i = 0;
    loop {
        let word = words.get(i)?.as_str();
        if is_assignment(word) {
            i += 1;
        } else if word == "time" || word == "/usr/bin/time" || word == "env" || word == "exec" {
            i += 1;
            while words.get(i).is_some_and(|w| w.starts_with('-')) {
                i += 1;
            }
        } else if word == "qemu-x86_64" {
            i += 1;
            while let Some(w) = words.get(i) {
                if w == "-cpu" {
                    i += 2;
                } else if w.starts_with('-') {
                    i += 1;
                } else {
                    break;
                }
            }
        } else {
            break;
        }
    }
    let program = words[i].as_str();
    if program == "tarjama" || program.ends_with("/tarjama") {
        return Some(words[i + 1..].to_vec());
    }
    if program == "cargo" && words.get(i + 1).map(String::as_str) == Some("run") {
        let dashes = words.iter().position(|w| w == "--")?;
        let cargo_flags = &words[i + 2..dashes];
        let mut k = 0;
        while k < cargo_flags.len() {
            match cargo_flags[k].as_str() {
                "--release" | "-q" | "--quiet" | "--locked" | "--frozen" | "--offline" => k += 1,
                "-p" | "--package"
                    if cargo_flags.get(k + 1).map(String::as_str) == Some("tarjama-cli") =>
                {
                    k += 2
                }
                "--bin" if cargo_flags.get(k + 1).map(String::as_str) == Some("tarjama") => k += 2,
                _ => return None, // an example, another package: not the tarjama binary
            }
        }
        return Some(words[dashes + 1..].to_vec());
    }
    None
}

/// One documented command line.
#[derive(Debug)]
struct Documented {
    place: String,
    line: String,
    args: Vec<String>,
}

fn documented_commands(root: &Path) -> (Vec<Documented>, Vec<String>) {
    let mut found = Vec::new();
    let mut problems = Vec::new();
    for doc in documents(root) {
        let text =
            std::fs::read_to_string(&doc).unwrap_or_else(|e| panic!("{}: {e}", doc.display()));
        let name = doc.strip_prefix(root).unwrap_or(&doc).display().to_string();
        for (number, line) in shell_lines(&text) {
            let place = format!("{name}:{number}");
            let Some(tokens) = tokenize(&line) else {
                if line.contains("tarjama") {
                    problems.push(format!("{place}: unbalanced quotes: {line}"));
                }
                continue;
            };
            for words in simple_commands(&tokens) {
                if let Some(args) = tarjama_args(&words) {
                    found.push(Documented {
                        place: place.clone(),
                        line: line.clone(),
                        args,
                    });
                }
            }
        }
    }
    (found, problems)
}

/// A scratch folder for tarjama's own files, so no run reads or writes the user's.
fn scratch_home() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tarjama-readme-test-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("hub")).unwrap();
    dir
}

/// The built binary, run from the repository root with a scratch home and no network.
fn tarjama(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tarjama"));
    cmd.current_dir(root())
        .env("TARJAMA_HOME", home)
        .env("HF_HUB_CACHE", home.join("hub"))
        .env("HF_HUB_OFFLINE", "1")
        .env_remove("TARJAMA_MODEL")
        .env_remove("TARJAMA_ENDPOINT")
        .env_remove("TARJAMA_KERNELS")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    cmd
}

fn describe(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let text = if stderr.trim().is_empty() {
        stdout
    } else {
        stderr
    };
    let first: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(3)
        .collect();
    format!("exit {:?}: {}", output.status.code(), first.join(" / "))
}

#[test]
fn every_documented_command_parses() {
    let root = root();
    let (commands, mut failures) = documented_commands(&root);
    assert!(
        commands.len() >= 40,
        "only {} tarjama commands found in README.md and docs/: is the extraction broken?",
        commands.len()
    );
    let home = scratch_home();
    for doc in &commands {
        let output = tarjama(&home)
            .args(&doc.args)
            .arg("--help")
            .output()
            .expect("the tarjama binary runs");
        if !output.status.success() {
            failures.push(format!(
                "{}: `{}` (tarjama {} --help): {}",
                doc.place,
                doc.line,
                doc.args.join(" "),
                describe(&output)
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&home);
    assert!(
        failures.is_empty(),
        "{} of {} documented commands do not parse:\n{}",
        failures.len(),
        commands.len(),
        failures.join("\n")
    );
}

#[test]
fn the_readme_keeps_its_two_commands() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    for block in [
        "```sh\ncargo run --release -- summarize seeds/000_34bb1b6fbb72ba1f.txt\n```",
        "```sh\nscripts/test.sh\n```",
    ] {
        assert!(readme.contains(block), "README.md lost the block {block:?}");
    }
}

#[test]
fn commands_that_need_no_model_run() {
    let home = scratch_home();
    let seed = "seeds/000_34bb1b6fbb72ba1f.txt";
    let runs: [(&[&str], &str); 5] = [
        (&["--version"], "tarjama"),
        (&["--version", "--verbose"], "kernels:"),
        (&["models", "list"], "qwen2.5-coder-1.5b-instruct"),
        (&["prep", "split", seed], ""),
        (&["prep", "normalize", "--profile", "search", seed], ""),
    ];
    let mut failures = Vec::new();
    for (args, expect) in runs {
        let output = tarjama(&home)
            .args(args)
            .output()
            .expect("the tarjama binary runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() || stdout.trim().is_empty() || !stdout.contains(expect) {
            failures.push(format!("tarjama {}: {}", args.join(" "), describe(&output)));
        }
    }
    let _ = std::fs::remove_dir_all(&home);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_shell_splitting_finds_the_tarjama_part() {
    let args = |line: &str| -> Vec<Vec<String>> {
        simple_commands(&tokenize(line).unwrap())
            .iter()
            .filter_map(|c| tarjama_args(c))
            .collect()
    };
    let v = |words: &[&str]| words.iter().map(|w| w.to_string()).collect::<Vec<_>>();
    assert_eq!(
        args("tarjama translate --lines < test.ar > hyp.en && tarjama eval --ref 'a b.en' --hyp hyp.en"),
        vec![
            v(&["translate", "--lines"]),
            v(&["eval", "--ref", "a b.en", "--hyp", "hyp.en"])
        ]
    );
    assert_eq!(
        args("echo 'قال' | tarjama translate   # a comment"),
        vec![v(&["translate"])]
    );
    assert_eq!(
        args("TARJAMA_KERNELS=avx2 /usr/bin/time -v target/release/tarjama prep split x.txt 2>&1 | head"),
        vec![v(&["prep", "split", "x.txt"])]
    );
    assert_eq!(
        args("cargo run --release -- summarize seeds/a.txt"),
        vec![v(&["summarize", "seeds/a.txt"])]
    );
    assert!(args("cargo run --release -p tarjama-pipeline --example probe -- x").is_empty());
    assert!(args("qemu-x86_64 -cpu Haswell target/release/tarjama --version").len() == 1);
    let lines = shell_lines(
        "text\n```sh\ntarjama translate a \\\n  -o b\n```\n```toml\ntarjama = 1\n```\n",
    );
    assert_eq!(lines, vec![(3, "tarjama translate a  -o b".to_string())]);
}
