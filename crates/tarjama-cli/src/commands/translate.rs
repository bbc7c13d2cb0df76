//! `tarjama translate`: Arabic files, folders or stdin into English.
//!
//! Each input is split into paragraphs and sentences; Arabic sentences are translated,
//! anything else passes through. Outputs are written atomically (temporary file, then
//! rename), so an interrupted run never leaves a half-written file that looks done. One
//! bad input is reported and skipped; the exit code says whether some failed.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;
use tarjama_models::pipeline::{translate_document, DocumentTranslation, TranslateOptions};
use tarjama_text::{ReadOptions, Source};

use super::common::{self, ModelArgs, SamplingArgs};
use crate::exit;

/// Flags of `tarjama translate`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  echo 'قال بوتين إن المحادثات كانت مثمرة.' | tarjama translate
  tarjama translate articles/ -o english/ --format jsonl
  tarjama translate a.txt b.txt --format tsv > side-by-side.tsv")]
pub struct Args {
    /// Inputs: files, folders (their .txt files, recursively), or - for stdin (the default).
    pub inputs: Vec<String>,
    /// Output: a folder (mirrors the inputs' tree), or a file for a single input.
    /// Default: stdout.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Txt)]
    pub format: Format,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Sentences per request to a chat model (1: each sentence alone).
    #[arg(long, default_value_t = 6)]
    pub batch_sentences: usize,
    /// Source tokens per request to a chat model.
    #[arg(long, default_value_t = 160)]
    pub batch_tokens: usize,
    /// Normalization of the Arabic before translation: mt, search or none.
    #[arg(long, default_value = "mt")]
    pub normalize: String,
    /// Replace invalid UTF-8 instead of refusing the input.
    #[arg(long)]
    pub lossy: bool,
    /// Refuse inputs larger than this many bytes.
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    pub max_input_size: u64,
    /// No progress or notes on stderr.
    #[arg(short, long)]
    pub quiet: bool,
    /// Print a machine-readable summary of the run on stderr at the end.
    #[arg(long)]
    pub json: bool,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The translation, with the source's paragraphs.
    Txt,
    /// One JSON record per sentence: file, paragraph, index, span, source, translation.
    Jsonl,
    /// Source and translation side by side, one sentence per line.
    Tsv,
}

impl Format {
    fn extension(self) -> &'static str {
        match self {
            Format::Txt => "txt",
            Format::Jsonl => "jsonl",
            Format::Tsv => "tsv",
        }
    }
}

#[derive(Serialize)]
struct Record<'a> {
    file: &'a str,
    paragraph: usize,
    sentence: usize,
    span: [usize; 2],
    source: &'a str,
    translation: &'a str,
    passthrough: bool,
    score: Option<f32>,
    model: &'a str,
}

/// Renders one translated document in `format`.
pub fn render(
    doc: &DocumentTranslation,
    format: Format,
    file: &str,
    model: &str,
) -> anyhow::Result<String> {
    Ok(match format {
        Format::Txt => doc.text(),
        Format::Jsonl => {
            let mut out = String::new();
            for s in &doc.sentences {
                let record = Record {
                    file,
                    paragraph: s.paragraph,
                    sentence: s.index,
                    span: [s.span.start, s.span.end],
                    source: &s.source,
                    translation: &s.translation,
                    passthrough: s.passthrough,
                    score: s.score,
                    model,
                };
                out.push_str(&serde_json::to_string(&record)?);
                out.push('\n');
            }
            out
        }
        Format::Tsv => {
            let clean = |s: &str| s.replace(['\t', '\n', '\r'], " ");
            let mut out = String::new();
            for s in &doc.sentences {
                out.push_str(&clean(&s.source));
                out.push('\t');
                out.push_str(&clean(&s.translation));
                out.push('\n');
            }
            out
        }
    })
}

/// Writes `contents` to `path` through a temporary file in the same folder and a rename.
pub fn write_atomic(path: &Path, contents: &str) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tarjama-")
        .tempfile_in(dir)
        .with_context(|| format!("{}: cannot write", dir.display()))?;
    tmp.write_all(contents.as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(())
}

/// Where the output of `source` goes under the output folder: its path relative to the
/// input folder it was found in, with the format's extension.
fn output_path(out_dir: &Path, source: &Source, roots: &[String], format: Format) -> PathBuf {
    let Source::File(path) = source else {
        return out_dir.join(format!("stdin.{}", format.extension()));
    };
    let relative = roots
        .iter()
        .map(Path::new)
        .filter(|r| r.is_dir())
        .find_map(|r| path.strip_prefix(r).ok())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(path.file_name().unwrap_or_default()));
    out_dir.join(relative).with_extension(format.extension())
}

#[derive(Serialize, Default)]
struct RunSummary {
    done: usize,
    failed: usize,
    sentences: usize,
    seconds: f64,
    sentences_per_second: f64,
    events: Vec<String>,
}

/// Runs `tarjama translate`.
pub fn run(args: Args) -> anyhow::Result<i32> {
    common::set_threads(args.model.threads);
    let normalizer = common::normalizer(&args.normalize)?;
    let inputs = common::expand_inputs(&args.inputs)?;
    if inputs.is_empty() {
        anyhow::bail!("no .txt inputs found in {}", args.inputs.join(", "));
    }
    let to_dir = match &args.output {
        Some(out) => {
            inputs.len() > 1 || out.is_dir() || args.inputs.iter().any(|i| Path::new(i).is_dir())
        }
        None => false,
    };
    let read = ReadOptions {
        lossy: args.lossy,
        max_bytes: Some(args.max_input_size),
    };
    let resolved = common::resolve_model(&args.model, args.quiet)?;
    let mut translator = common::load_translator(
        &resolved,
        &args.model,
        args.sampling.params(512),
        args.batch_tokens,
        args.batch_sentences,
    )?;
    let options = TranslateOptions { normalizer };
    let model_name = translator.name();

    let start = std::time::Instant::now();
    let mut summary = RunSummary::default();
    let mut stdout = std::io::stdout().lock();
    for source in &inputs {
        let name = source.name();
        let result = tarjama_text::read_text(source, &read)
            .map_err(anyhow::Error::from)
            .and_then(|text| {
                translate_document(translator.as_mut(), &text, &options)
                    .with_context(|| format!("{name}: translation failed"))
            });
        let doc = match result {
            Ok(doc) => doc,
            Err(e) => {
                eprintln!("error: {e:#}");
                summary.failed += 1;
                continue;
            }
        };
        for event in &doc.events {
            if !args.quiet {
                eprintln!("note: {name}: {event}");
            }
            summary.events.push(format!("{name}: {event}"));
        }
        let rendered = render(&doc, args.format, &name, &model_name)?;
        match &args.output {
            None => {
                stdout.write_all(rendered.as_bytes())?;
                stdout.flush()?;
            }
            Some(out) if to_dir => {
                let path = output_path(out, source, &args.inputs, args.format);
                write_atomic(&path, &rendered)?;
            }
            Some(out) => write_atomic(out, &rendered)?,
        }
        summary.done += 1;
        summary.sentences += doc.sentences.len();
        if !args.quiet && inputs.len() > 1 {
            eprintln!(
                "[{}/{}] {name}",
                summary.done + summary.failed,
                inputs.len()
            );
        }
    }
    summary.seconds = start.elapsed().as_secs_f64();
    summary.sentences_per_second = summary.sentences as f64 / summary.seconds.max(1e-9);
    if args.json {
        eprintln!("{}", serde_json::to_string(&summary)?);
    } else if !args.quiet {
        eprintln!(
            "done {}, failed {}; {} sentences in {:.1} s ({:.2} sentences/s)",
            summary.done,
            summary.failed,
            summary.sentences,
            summary.seconds,
            summary.sentences_per_second
        );
    }
    Ok(match summary.failed {
        0 => exit::SUCCESS,
        n if n == inputs.len() => exit::FAILURE,
        _ => exit::SOME_FAILED,
    })
}
