//! `tarjama summarize`: English summaries of Arabic articles.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use anyhow::Context;
use serde::Serialize;
use tarjama_pipeline::{
    run_concurrently, summarize, Strategy, SummaryLength, SummaryOptions, SummaryReport,
};
use tarjama_text::ReadOptions;

use tarjama_loader::ModelArgs;

use super::common::{self, CandidateArgs, GlossaryArgs, SamplingArgs};
use crate::exit;

/// Flags of `tarjama summarize`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  tarjama summarize seeds/000_34bb1b6fbb72ba1f.txt
  tarjama summarize --sentences 3 --format json article.txt
  cat article.txt | tarjama summarize --words 60 --model qwen2.5-coder-0.5b-instruct")]
pub struct Args {
    /// Arabic articles: files, folders (their .txt files), or - for stdin (the default).
    pub inputs: Vec<String>,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Length of the summary in sentences.
    #[arg(long, conflicts_with = "words")]
    pub sentences: Option<usize>,
    /// Length of the summary in words (about).
    #[arg(long)]
    pub words: Option<usize>,
    /// `direct`: Arabic in, English summary out; `translate`: translate first, then
    /// summarize the English.
    #[arg(long, value_enum, default_value_t = StrategyArg::Direct)]
    pub strategy: StrategyArg,
    /// Output format: text, or json (one object per input, with the source sentences each
    /// summary sentence draws on).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Normalization of the Arabic before it reaches the model: mt, search or none.
    #[arg(long, default_value = "mt")]
    pub normalize: String,
    #[command(flatten)]
    pub candidates: CandidateArgs,
    #[command(flatten)]
    pub glossary: GlossaryArgs,
    /// Replace invalid UTF-8 instead of refusing the input.
    #[arg(long)]
    pub lossy: bool,
    /// No progress or notes on stderr.
    #[arg(short, long)]
    pub quiet: bool,
}

/// How the summary is made.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum StrategyArg {
    /// Summarize the Arabic directly into English.
    Direct,
    /// Translate, then summarize.
    Translate,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The summary as plain text, streamed as it is written.
    Text,
    /// One JSON object per input.
    Json,
}

#[derive(Serialize)]
struct JsonOut<'a> {
    input: String,
    model: &'a str,
    #[serde(flatten)]
    report: &'a SummaryReport,
}

/// Runs `tarjama summarize`.
pub fn run(args: Args) -> anyhow::Result<i32> {
    tarjama_loader::set_threads(args.model.run.threads);
    let normalizer = common::normalizer(&args.normalize)?;
    let glossary = args.glossary.load()?;
    let inputs = common::expand_inputs(&args.inputs)?;
    let read = ReadOptions {
        lossy: args.lossy,
        ..ReadOptions::default()
    };
    // Read and check every input before the model loads: a bad file is reported at once.
    let target = common::target(&args.model, args.quiet)?;
    let (engine, prompts, name) = tarjama_loader::chat_engine(&target, &args.model)?;
    let options = SummaryOptions {
        strategy: match args.strategy {
            StrategyArg::Direct => Strategy::Direct,
            StrategyArg::Translate => Strategy::Translate,
        },
        length: match (args.sentences, args.words) {
            (_, Some(w)) => SummaryLength::Words(w.max(5)),
            (Some(s), None) => SummaryLength::Sentences(s.max(1)),
            (None, None) => SummaryLength::Sentences(4),
        },
        // The length sets the token budget; --max-tokens only caps it.
        sampling: args.sampling.params(usize::MAX),
        normalizer,
        attribute: args.format == Format::Json,
        glossary,
        candidates: args.candidates.candidates(),
    };
    let many = inputs.len() > 1;
    // One input streams to a terminal, where a person watches; a pipe gets the final
    // form (after length control), written once. Several inputs are summarized together
    // (their requests share the model's batches) and printed in order.
    let stream = !many && args.format == Format::Text && std::io::stdout().is_terminal();
    let write_err: Mutex<Option<std::io::Error>> = Mutex::new(None);
    let results = run_concurrently(inputs.len(), engine.parallel(), |i| {
        let source = &inputs[i];
        // A bad input is reported and skipped; a model failure is an error.
        let text =
            tarjama_text::read_text(source, &read).map_err(|e| (true, anyhow::anyhow!("{e}")))?;
        summarize(&engine, &prompts, &text, &options, &mut |piece| {
            if stream {
                let mut err = write_err.lock().unwrap_or_else(|e| e.into_inner());
                if err.is_none() {
                    let mut out = std::io::stdout().lock();
                    if let Err(e) = out.write_all(piece.as_bytes()).and_then(|()| out.flush()) {
                        *err = Some(e);
                    }
                }
            }
        })
        .with_context(|| format!("summarizing {}", source.name()))
        .map_err(|e| (false, e))
    });
    if let Some(e) = write_err.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e.into());
    }
    let mut failed = 0;
    let mut stdout = std::io::stdout().lock();
    for (source, result) in inputs.iter().zip(results) {
        let report = match result {
            Ok(r) => r,
            Err((bad_input, e)) if bad_input || many => {
                eprintln!("error: {e:#}");
                failed += 1;
                continue;
            }
            Err((_, e)) => return Err(e),
        };
        match args.format {
            Format::Text => {
                if many {
                    writeln!(stdout, "== {} ==", source.name())?;
                }
                if !stream {
                    write!(stdout, "{}", report.summary)?;
                }
                writeln!(stdout)?;
                if !args.quiet {
                    for event in &report.events {
                        eprintln!("note: {event}");
                    }
                    if !report.glossary_absent.is_empty() {
                        eprintln!(
                            "note: glossary terms of the article the summary does not name: {}",
                            report.glossary_absent.join(", ")
                        );
                    }
                    if let Some(c) = &report.choice {
                        eprintln!(
                            "note: chosen among {} candidates: consensus {:.2}, faithfulness {:.2}{}",
                            c.compared,
                            c.consensus,
                            c.faithfulness,
                            if c.unsupported.is_empty() {
                                String::new()
                            } else {
                                format!(
                                    " (found nowhere else: {})",
                                    c.unsupported.join(", ")
                                )
                            }
                        );
                    }
                    eprintln!(
                        "({} sentences in, {:.1} s, model {})",
                        report.source_sentences,
                        report.elapsed.as_secs_f64(),
                        name
                    );
                }
            }
            Format::Json => {
                let out = JsonOut {
                    input: source.name(),
                    model: &name,
                    report: &report,
                };
                writeln!(stdout, "{}", serde_json::to_string(&out)?)?;
            }
        }
    }
    Ok(match failed {
        0 => exit::SUCCESS,
        n if n == inputs.len() => exit::FAILURE,
        _ => exit::SOME_FAILED,
    })
}
