//! `tarjama translate --lines`: one segment per line, one output line per input line.
//!
//! The convention of marian-decoder, CTranslate2's command line and sacreBLEU: line N of
//! the output translates line N of the input, so `tarjama translate --lines < test.ar >
//! hyp.en` lines up with `test.en` for `tarjama eval`. Empty lines stay empty, lines that
//! are not Arabic pass through untouched, and no line is ever merged with another or split:
//! the translator is built to send each line as a request of its own, and a translation
//! with a line break in it is written on one line. The line count is checked before
//! anything is written.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;
use tarjama_loader::Translators;
use tarjama_pipeline::translate::one_line;
use tarjama_pipeline::{Glossary, Translated, Translator};
use tarjama_text::{Normalizer, ReadOptions, Script, Source};

use crate::cache::{Cache, CachedTranslator};
use crate::render::{Format, Record};
use crate::{atomic, signal, Events, Failure, Sink};

/// Splits `text` into lines the way sacreBLEU and `tarjama eval` read a file: at `\n`,
/// a last line without one counting too; the `\r` of a CRLF line is not part of it.
fn split_lines(text: &str) -> Vec<&str> {
    if text.is_empty() {
        return Vec::new();
    }
    let body = text.strip_suffix('\n').unwrap_or(text);
    body.split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect()
}

/// One line of an input and its translation.
#[derive(Debug, Clone, PartialEq)]
struct LineOut {
    source: String,
    /// The translation on one line; the source itself when passed through.
    translation: String,
    passthrough: bool,
    score: Option<f32>,
    candidates: Option<usize>,
    utility: Option<f64>,
    glossary_missing: Vec<String>,
}

/// An input's lines, with the Arabic ones normalized and waiting for the model.
struct Pending {
    lines: Vec<LineOut>,
    /// Index in `lines` of each line to translate.
    todo: Vec<usize>,
    /// What goes to the model for each of `todo`.
    requests: Vec<String>,
}

impl Pending {
    fn new(text: &str, normalizer: Option<&Normalizer>) -> Pending {
        let mut pending = Pending {
            lines: Vec::new(),
            todo: Vec::new(),
            requests: Vec::new(),
        };
        for line in split_lines(text) {
            // As translate_document decides for a sentence.
            let arabic = matches!(Script::detect(line), Script::Arabic | Script::Mixed);
            if arabic {
                pending.todo.push(pending.lines.len());
                pending.requests.push(match normalizer {
                    Some(n) => n.normalize(line.trim()).into_owned(),
                    None => line.trim().to_string(),
                });
            }
            pending.lines.push(LineOut {
                source: line.to_string(),
                translation: line.to_string(),
                passthrough: !arabic,
                score: None,
                candidates: None,
                utility: None,
                glossary_missing: Vec::new(),
            });
        }
        pending
    }

    /// The lines for the model, in input order.
    fn requests(&self) -> Vec<&str> {
        self.requests.iter().map(String::as_str).collect()
    }

    /// The 1-based input line number of request `k`.
    fn line_number(&self, k: usize) -> usize {
        self.todo[k] + 1
    }

    /// Puts the model's answers (one per request, in order) in place, each checked
    /// against the glossary.
    fn finish(
        mut self,
        translated: Vec<Translated>,
        glossary: Option<&Glossary>,
    ) -> anyhow::Result<Vec<LineOut>> {
        anyhow::ensure!(
            translated.len() == self.todo.len(),
            "the translator gave {} translations for {} lines; nothing written",
            translated.len(),
            self.todo.len()
        );
        for (i, t) in self.todo.into_iter().zip(translated) {
            let line = &mut self.lines[i];
            line.translation = one_line(&t.text).into_owned();
            line.score = t.score;
            line.candidates = t.candidates;
            line.utility = t.utility;
            if let Some(g) = glossary {
                line.glossary_missing = g.missing(&line.source, &line.translation);
            }
        }
        Ok(self.lines)
    }
}

/// Translates `text` line by line in memory, as `--lines` does a file: one output line
/// per input line, rendered in `txt` or `jsonl` (what a server answers for a request in
/// line mode), each checked against the translator's glossary. The translator must send
/// each line alone (`batch_sentences` 1).
pub fn translate_text(
    translator: &mut dyn Translator,
    text: &str,
    normalizer: Option<&Normalizer>,
    format: Format,
    model: &str,
) -> anyhow::Result<String> {
    let pending = Pending::new(text, normalizer);
    let translated = translator.translate(&pending.requests())?;
    let glossary = translator.glossary();
    let lines = pending.finish(translated, glossary.as_deref())?;
    render(&lines, format, "<request>", model, glossary.is_some())
}

/// Where a line of `--lines` is: 1-based, as editors and error messages count.
#[derive(Serialize)]
struct OnLine {
    line: usize,
}

/// Renders translated lines: `txt` one translation a line, `jsonl` one record a line.
/// Fails rather than return text whose line count is not the input's.
/// `glossary`: whether a glossary was given (each record then lists its missing terms,
/// even none).
fn render(
    lines: &[LineOut],
    format: Format,
    file: &str,
    model: &str,
    glossary: bool,
) -> anyhow::Result<String> {
    let mut out = String::new();
    for (k, l) in lines.iter().enumerate() {
        match format {
            Format::Txt => out.push_str(&l.translation),
            Format::Jsonl => out.push_str(&serde_json::to_string(&Record {
                file,
                at: OnLine { line: k + 1 },
                source: &l.source,
                translation: &l.translation,
                passthrough: l.passthrough,
                score: l.score,
                candidates: l.candidates,
                utility: l.utility,
                glossary_missing: glossary.then_some(l.glossary_missing.as_slice()),
                model,
            })?),
            Format::Tsv | Format::Html => unsupported(format)?,
        }
        out.push('\n');
    }
    // The promise of line mode, checked on the bytes about to be written: a mismatch
    // is a bug, and a shifted file would silently ruin every score computed from it.
    let written = out.matches('\n').count();
    anyhow::ensure!(
        written == lines.len(),
        "{file}: {written} output lines for {} input lines (a bug in tarjama); nothing written",
        lines.len()
    );
    Ok(out)
}

fn unsupported(format: Format) -> anyhow::Result<()> {
    anyhow::bail!(
        "--lines writes txt or jsonl, not {}: a {} output has no line per input line \
         (drop --lines to translate documents)",
        format.name(),
        format.name()
    )
}

/// The output file's name in an output folder: the input's file name, its `.txt`
/// extension replaced by the format's, any other extension kept and the format's
/// appended (`test.ar` -> `test.ar.txt`).
fn output_name(source: &Source, format: Format) -> String {
    let name = match source {
        Source::Stdin => "stdin".to_string(),
        Source::File(p) => p
            .file_name()
            .map_or_else(|| "input".into(), |n| n.to_string_lossy().into_owned()),
    };
    let path = Path::new(&name);
    let is_txt = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("txt") || e.eq_ignore_ascii_case("text"));
    match path.file_stem() {
        Some(stem) if is_txt => format!("{}.{}", stem.to_string_lossy(), format.extension()),
        _ => format!("{name}.{}", format.extension()),
    }
}

/// What a line run does, besides which model translates.
pub struct Job {
    /// The input files as named, `-` for stdin; none: stdin.
    pub inputs: Vec<String>,
    /// `--output`: a folder, a file, or stdout.
    pub output: Option<PathBuf>,
    /// `txt` or `jsonl`.
    pub format: Format,
    /// How inputs are read (invalid UTF-8, the size limit).
    pub read: ReadOptions,
    /// Normalization of the Arabic lines before translation.
    pub normalizer: Option<Normalizer>,
    /// No notes (errors and warnings are still reported).
    pub quiet: bool,
}

/// A line run's inputs and the file each is written to (`None`: stdout), checked before
/// any model is looked for.
pub struct Plan {
    /// Where the outputs go.
    pub sink: Sink,
    sources: Vec<Source>,
    targets: Vec<Option<PathBuf>>,
}

/// What a line run did (`--json` prints it).
#[derive(Debug, Serialize, Default)]
pub struct Summary {
    /// Input files.
    pub inputs: usize,
    /// Inputs translated.
    pub done: usize,
    /// Inputs that failed.
    pub failed: usize,
    /// Stopped by Ctrl-C.
    pub interrupted: bool,
    /// Lines read.
    pub lines: usize,
    /// Lines that went to the translator (Arabic).
    pub translated: usize,
    /// Of those, answered from the cache (a line seen before in this run).
    pub cache_hits: usize,
    /// Wall seconds.
    pub seconds: f64,
    /// Lines per second.
    pub lines_per_second: f64,
    /// The model's name.
    pub model: String,
    /// The outputs' format.
    pub format: &'static str,
    /// `--output`.
    pub output: Option<String>,
    /// The inputs that failed, and why.
    pub failures: Vec<Failure>,
    /// Repairs and warnings, by input.
    pub events: Vec<String>,
}

/// Checks `job` and names every output: the format writes a line per line, stdin is read
/// once, no input is a folder, no two inputs share an output, no output overwrites an
/// input.
pub fn plan(job: &Job) -> anyhow::Result<Plan> {
    if matches!(job.format, Format::Tsv | Format::Html) {
        unsupported(job.format)?;
    }
    let sources: Vec<Source> = if job.inputs.is_empty() {
        vec![Source::Stdin]
    } else {
        job.inputs.iter().map(|a| Source::from_arg(a)).collect()
    };
    if sources.iter().filter(|s| **s == Source::Stdin).count() > 1 {
        anyhow::bail!("stdin (-) can be read only once");
    }
    for s in &sources {
        if let Source::File(p) = s {
            if p.is_dir() {
                anyhow::bail!(
                    "{}: a folder; --lines translates files line by line: name them \
                     (e.g. {}/*.txt), or drop --lines to translate the folder's documents",
                    p.display(),
                    p.display()
                );
            }
        }
    }
    let sink = Sink::new(job.output.as_deref(), sources.len() > 1);
    let targets: Vec<Option<PathBuf>> = sources
        .iter()
        .map(|s| match &sink {
            Sink::Stdout => None,
            Sink::File(p) => Some(p.clone()),
            Sink::Folder(d) => Some(d.join(output_name(s, job.format))),
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    for (s, t) in sources.iter().zip(&targets) {
        let Some(t) = t else { continue };
        if !seen.insert(t.clone()) {
            anyhow::bail!(
                "{}: two inputs would be written to {}; rename one",
                s.name(),
                t.display()
            );
        }
        let same = |a: &Path, b: &Path| matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b);
        if sources
            .iter()
            .any(|i| matches!(i, Source::File(p) if same(p, t)))
        {
            anyhow::bail!(
                "{}: the output would overwrite an input; choose another -o",
                t.display()
            );
        }
    }
    Ok(Plan {
        sink,
        sources,
        targets,
    })
}

/// Runs `job` as `plan` found it, with the model named `model`, loading it with `load`
/// once an input has an Arabic line. Installs the Ctrl-C handler.
pub fn run(
    job: &Job,
    plan: &Plan,
    model: &str,
    load: &mut dyn FnMut() -> anyhow::Result<Translators>,
    events: &mut dyn Events,
) -> anyhow::Result<Summary> {
    signal::install();
    let mut translator: Option<CachedTranslator> = None;
    let cache = Cache::new();
    let mut summary = Summary {
        inputs: plan.sources.len(),
        model: model.to_string(),
        format: job.format.name(),
        output: job.output.as_ref().map(|o| o.display().to_string()),
        ..Summary::default()
    };
    let start = Instant::now();
    for (source, target) in plan.sources.iter().zip(&plan.targets) {
        if signal::requested() {
            summary.interrupted = true;
            break;
        }
        let name = source.name();
        let text = match tarjama_text::read_text(source, &job.read) {
            Ok(t) => t,
            Err(e) => {
                let reason = crate::folder::explain(&e);
                events.note(&format!("error: {reason}; skipped"));
                summary.failed += 1;
                summary.failures.push(Failure { file: name, reason });
                continue;
            }
        };
        let pending = Pending::new(&text, job.normalizer.as_ref());
        let requests = pending.requests();
        let translated = if requests.is_empty() {
            Vec::new()
        } else {
            if translator.is_none() {
                let inner = load()?.next().context("the model gave no translator")?;
                translator = Some(cache.wrap(inner));
            }
            let t = translator.as_mut().expect("loaded above");
            let out = translate_lines(
                t,
                &requests,
                &pending,
                &name,
                job.quiet,
                &mut summary,
                events,
            );
            for event in t.take_events() {
                if !job.quiet {
                    events.note(&format!("note: {name}: {event}"));
                }
                summary.events.push(format!("{name}: {event}"));
            }
            out
        };
        let n_requests = requests.len();
        // The translator's glossary: the one it was asked to follow (none loaded yet: no
        // line needed the model, and no line can miss a term).
        let glossary = translator.as_ref().and_then(|t| t.glossary());
        let lines = pending.finish(translated, glossary.as_deref())?;
        let display = match source {
            Source::Stdin => "<stdin>".to_string(),
            Source::File(_) => name.clone(),
        };
        let rendered = render(
            &lines,
            job.format,
            &display,
            &summary.model,
            glossary.is_some(),
        )?;
        match target {
            None => {
                let mut stdout = std::io::stdout().lock();
                stdout.write_all(rendered.as_bytes())?;
                stdout.flush()?;
            }
            Some(path) => atomic::write_atomic(path, rendered.as_bytes())
                .with_context(|| format!("{name}: writing the translation"))?,
        }
        summary.done += 1;
        summary.lines += lines.len();
        summary.translated += n_requests;
    }
    summary.cache_hits = cache.counts().0;
    summary.seconds = start.elapsed().as_secs_f64();
    summary.lines_per_second = summary.lines as f64 / summary.seconds.max(1e-9);
    Ok(summary)
}

/// The translations of an input's Arabic lines, in one call so the translator can batch
/// or run them concurrently. One line the model cannot take (longer than its positions)
/// must not cost the others: then each line goes alone, and one that still fails is left
/// empty, with a warning, so the output keeps its lines.
fn translate_lines(
    t: &mut CachedTranslator,
    requests: &[&str],
    pending: &Pending,
    name: &str,
    quiet: bool,
    summary: &mut Summary,
    events: &mut dyn Events,
) -> Vec<Translated> {
    let e = match t.translate(requests) {
        Ok(out) => return out,
        Err(e) => e,
    };
    if !quiet {
        events.note(&format!("note: {name}: {e:#}; translating line by line"));
    }
    let mut out = Vec::with_capacity(requests.len());
    for (k, r) in requests.iter().enumerate() {
        match t.translate(&[r]) {
            Ok(mut one) if one.len() == 1 => out.push(one.remove(0)),
            answer => {
                let why = match answer {
                    Err(e) => format!("{e:#}"),
                    Ok(one) => format!("{} answers for one line", one.len()),
                };
                let event = format!(
                    "line {} not translated ({why}); left empty",
                    pending.line_number(k)
                );
                events.note(&format!("warning: {name}: {event}"));
                summary.events.push(format!("{name}: {event}"));
                out.push(Translated::default());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers each request with its length, and "\n\n" inside, as a chat model that
    /// writes a lead-in would; records what it was asked.
    struct Chatty(Vec<String>);

    impl Translator for Chatty {
        fn name(&self) -> String {
            "chatty".into()
        }
        fn translate(&mut self, s: &[&str]) -> tarjama_chat::Result<Vec<Translated>> {
            self.0.extend(s.iter().map(|s| s.to_string()));
            Ok(s.iter()
                .map(|t| Translated {
                    score: Some(-0.5),
                    ..Translated::new(format!("As follows:\n\n<{}>\r\n", t.chars().count()))
                })
                .collect())
        }
    }

    fn translate(text: &str, normalizer: Option<&Normalizer>) -> (Vec<LineOut>, Vec<String>) {
        let mut t = Chatty(Vec::new());
        let pending = Pending::new(text, normalizer);
        let out = t.translate(&pending.requests()).unwrap();
        (pending.finish(out, None).unwrap(), t.0)
    }

    #[test]
    fn lines_split_as_eval_reads_them() {
        for text in ["", "\n", "a", "a\n", "a\r\nb", "a\n\n\nb\n", "\n\na\n\n"] {
            assert_eq!(
                split_lines(text).len(),
                tarjama_eval::split_segments(text).len(),
                "{text:?}"
            );
        }
        assert_eq!(split_lines("a\r\n\r\nb\n"), ["a", "", "b"]);
    }

    #[test]
    fn one_output_line_per_input_line() {
        let text = "قال بوتين.\n\n  \nHello there.\r\nوأضاف ليفيت.\nقال بوتين.";
        let (lines, asked) = translate(text, None);
        let txt = render(&lines, Format::Txt, "f", "m", false).unwrap();
        assert_eq!(
            txt,
            "As follows: <10>\n\n  \nHello there.\nAs follows: <12>\nAs follows: <10>\n"
        );
        assert_eq!(asked, ["قال بوتين.", "وأضاف ليفيت.", "قال بوتين."]);
        let jsonl = render(&lines, Format::Jsonl, "f", "m", false).unwrap();
        let recs: Vec<serde_json::Value> = jsonl
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(recs.len(), 6);
        assert_eq!(recs[3]["line"], 4);
        assert_eq!(recs[3]["passthrough"], true);
        assert_eq!(recs[3]["translation"], "Hello there.");
        assert_eq!(recs[4]["translation"], "As follows: <12>");
        assert_eq!(recs[4]["score"], -0.5);
        assert!(render(&lines, Format::Tsv, "f", "m", false).is_err());
    }

    #[test]
    fn arabic_lines_are_normalized_before_translation() {
        let n = Normalizer::new(tarjama_text::Profile::Mt);
        // A tatweel, which the `mt` profile removes.
        let (lines, asked) = translate("قــال\n", Some(&n));
        assert_eq!(asked, ["قال"]);
        assert_eq!(lines[0].source, "قــال");
    }

    #[test]
    fn a_missing_translation_is_an_error_not_a_shifted_file() {
        let pending = Pending::new("قال\nقال\n", None);
        assert!(pending.finish(Vec::new(), None).is_err());
    }

    #[test]
    fn output_names() {
        let f = |p: &str, format| output_name(&Source::File(PathBuf::from(p)), format);
        assert_eq!(f("d/a.txt", Format::Txt), "a.txt");
        assert_eq!(f("d/a.txt", Format::Jsonl), "a.jsonl");
        assert_eq!(f("test.ar", Format::Txt), "test.ar.txt");
        assert_eq!(f("README", Format::Jsonl), "README.jsonl");
        assert_eq!(output_name(&Source::Stdin, Format::Txt), "stdin.txt");
    }
}
