//! `tarjama translate`: Arabic text from a pipe, files or whole folders into English.
//!
//! The flags, the progress on stderr, the report and the exit code; the folder engine
//! itself (inputs, manifest, cache, atomic writes, formats, resume) is `tarjama_batch`.

use std::path::PathBuf;
use std::sync::Arc;

use tarjama_batch::folder::{self, Summary};
use tarjama_batch::inputs::{Selection, Shard};
use tarjama_batch::render::Format;
use tarjama_batch::settings::{sha256_hex, TranslationSettings};
use tarjama_batch::{lines, Sink};
use tarjama_loader::{ChatChoices, ModelArgs, Target, Translators};
use tarjama_pipeline::{Glossary, TranslateOptions};
use tarjama_text::ReadOptions;

use super::common::{self, CandidateArgs, GlossaryArgs, SamplingArgs};
use crate::exit;
use crate::progress::Files;

/// Flags of `tarjama translate`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  echo 'قال بوتين إن المحادثات كانت مثمرة.' | tarjama translate
  tarjama translate article.txt -o article.en.txt
  tarjama translate articles/ -o english/                  # mirrors the tree; rerun to resume
  tarjama translate articles/ -o english/ --format html    # bilingual pages for a browser
  tarjama translate films/ -o subs/ --include '*.srt'      # subtitles: timestamps kept
  tarjama translate corpus/ -o out/ --shard 2/4            # machine 2 of 4, same out/ folder
  tarjama translate corpus/ -o out/ --model Helsinki-NLP/opus-mt-ar-en --beam 4 --int8
  tarjama translate --lines < test.ar > hyp.en            # line N translates line N
  tarjama eval --ref test.en --hyp hyp.en

A folder run records each finished input in OUTPUT/.tarjama-manifest*.jsonl and skips it
next time unless the input, the model or the settings changed; kill it at any moment and
rerun the same command. Ctrl-C stops after the inputs in flight (exit 130).
Exit codes: 0 all done, 1 nothing done, 2 usage error, 3 some inputs failed, 130 stopped.")]
pub struct Args {
    /// Inputs: files, folders (walked recursively for .txt and .srt files), or - for
    /// stdin (the default).
    pub inputs: Vec<String>,
    /// Output: a folder (mirrors the inputs' folder tree), or a file for a single input.
    /// Default: stdout.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Txt)]
    pub format: Format,
    /// One segment per line, as marian-decoder, CTranslate2 and sacreBLEU take it: every
    /// input line gives exactly one output line, in order; empty lines stay empty, lines
    /// that are not Arabic pass through, and each Arabic line is translated alone (so
    /// --batch-sentences does not apply). Stdin or files, not folders; --format txt or
    /// jsonl (one record per line). Example: tarjama translate --lines < test.ar > hyp.en
    #[arg(long, conflicts_with_all = ["resume", "shard", "include", "exclude"])]
    pub lines: bool,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Beam size for encoder-decoder models; chat models decode greedily and ignore it.
    #[arg(long)]
    pub beam: Option<usize>,
    /// Encoder-decoder models: quantize the linear layers to 8 bits at load (about 1.6x
    /// faster on a CPU with AVX-512 VNNI, slightly different output). GGUF chat models are
    /// quantized already and ignore it.
    #[arg(long)]
    pub int8: bool,
    #[command(flatten)]
    pub candidates: CandidateArgs,
    #[command(flatten)]
    pub glossary: GlossaryArgs,
    /// Sentences per request to a chat model (1: each sentence alone).
    #[arg(long, default_value_t = 6)]
    pub batch_sentences: usize,
    /// Source tokens per request to the model.
    #[arg(long, default_value_t = 160)]
    pub batch_tokens: usize,
    /// Worked examples (Arabic sentences with their English) a chat model is shown before
    /// each request, to set the register; 0: none. They are the same for every request,
    /// so they are computed once.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub examples: usize,
    /// Normalization of the Arabic before translation: mt, search or none.
    #[arg(long, default_value = "mt")]
    pub normalize: String,
    /// Replace invalid UTF-8 instead of refusing the input.
    #[arg(long)]
    pub lossy: bool,
    /// Refuse inputs larger than this many bytes.
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    pub max_input_size: u64,
    #[command(flatten)]
    pub select: SelectArgs,
    #[command(flatten)]
    pub batch: BatchArgs,
    /// No progress or notes on stderr (errors are still printed).
    #[arg(short, long)]
    pub quiet: bool,
    /// Print a machine-readable summary at the end: on stdout when outputs go to files,
    /// else on stderr.
    #[arg(long)]
    pub json: bool,
}

/// Which files of the input folders are translated.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Selecting inputs")]
pub struct SelectArgs {
    /// Only files whose path under the input folder matches this glob (repeatable).
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,
    /// Skip files whose path under the input folder matches this glob (repeatable).
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Also walk hidden files and folders (names starting with a dot).
    #[arg(long)]
    pub hidden: bool,
    /// Follow symlinked folders.
    #[arg(long)]
    pub follow: bool,
    /// Take only shard K of N (by a hash of each input's path), e.g. 2/4.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<Shard>,
}

/// How a folder run treats earlier work.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Batch runs")]
pub struct BatchArgs {
    /// Skip inputs the output folder's manifest records as done (the default when it has
    /// one; with this flag a missing manifest is an error).
    #[arg(long, conflicts_with = "overwrite")]
    pub resume: bool,
    /// Redo every input, ignoring the manifest.
    #[arg(long)]
    pub overwrite: bool,
    /// No translation cache on disk (repeated sentences are still translated once per run).
    #[arg(long)]
    pub no_cache: bool,
}

/// What the translations depend on, for the cache and manifest keys.
fn settings(args: &Args, target: &Target, glossary: Option<&Glossary>) -> TranslationSettings {
    let (model_file, model_bytes) = match target {
        Target::Local(resolved) => (
            resolved
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            std::fs::metadata(&resolved.path).map_or(0, |m| m.len()),
        ),
        Target::Remote(..) => (String::new(), 0),
    };
    TranslationSettings {
        tarjama: env!("CARGO_PKG_VERSION").into(),
        model: target.name(),
        endpoint: target.endpoint().map(str::to_string),
        model_file,
        model_bytes,
        temperature: args.sampling.temperature,
        top_k: args.sampling.top_k,
        top_p: args.sampling.top_p,
        seed: args.sampling.seed,
        repetition_penalty: args.sampling.repetition_penalty,
        max_tokens: args.sampling.max_tokens,
        stop: args.sampling.stop.clone(),
        beam: args.beam,
        batch_sentences: args.batch_sentences,
        batch_tokens: args.batch_tokens,
        examples: args.examples,
        max_context: args.model.run.max_context,
        normalize: args.normalize.clone(),
        int8: args.int8,
        candidates: (args.candidates.candidates > 1).then_some((
            args.candidates.candidates,
            args.candidates.sampling.candidate_temperature,
            args.candidates.sampling.candidate_epsilon,
        )),
        glossary: glossary.map(|g| sha256_hex(g.fingerprint().as_bytes())),
    }
}

/// Runs `tarjama translate`.
pub fn run(args: Args) -> anyhow::Result<i32> {
    tarjama_loader::set_threads(args.model.run.threads);
    if args.lines {
        return run_lines(args);
    }
    let normalizer = common::normalizer(&args.normalize)?;
    let glossary = args.glossary.load()?;
    let job = folder::Job {
        inputs: args.inputs.clone(),
        output: args.output.clone(),
        format: args.format,
        selection: Selection {
            include: args.select.include.clone(),
            exclude: args.select.exclude.clone(),
            hidden: args.select.hidden,
            follow: args.select.follow,
            shard: args.select.shard,
            skip_under: None,
        },
        read: read_options(&args),
        translate: TranslateOptions {
            normalizer,
            check_glossary: true,
        },
        overwrite: args.batch.overwrite,
        resume: args.batch.resume,
        no_cache: args.batch.no_cache,
        quiet: args.quiet,
    };
    let plan = folder::plan(&job)?;
    let target = common::target(&args.model, args.quiet)?;
    note_ignored_flags(&args, &target);
    let model = folder::Model {
        keys: settings(&args, &target, glossary.as_deref()).keys(args.format.name(), args.lossy)?,
        name: target.name(),
        endpoint: target.endpoint().map(str::to_string),
    };
    let sink = plan.sink.clone();
    let mut progress = Files::new(plan.inputs(), args.quiet);
    let mut load = || translators(&args, &target, glossary.clone(), args.batch_sentences);
    let mut summary = folder::run(&job, plan, &model, &mut load, &mut progress)?;
    progress.finish();
    summary.peak_rss_bytes = crate::machine::peak_rss_bytes();
    report(&args, &summary, &sink)?;
    Ok(if summary.interrupted {
        exit::INTERRUPTED
    } else if summary.failed == 0 {
        if summary.done + summary.skipped == 0 && summary.unsupported > 0 {
            exit::FAILURE
        } else {
            exit::SUCCESS
        }
    } else if summary.done + summary.skipped == 0 {
        exit::FAILURE
    } else {
        exit::SOME_FAILED
    })
}

/// Runs `tarjama translate --lines`: one segment per line, one output line per input
/// line (`tarjama_batch::lines`).
fn run_lines(args: Args) -> anyhow::Result<i32> {
    let job = lines::Job {
        inputs: args.inputs.clone(),
        output: args.output.clone(),
        format: args.format,
        read: read_options(&args),
        normalizer: common::normalizer(&args.normalize)?,
        quiet: args.quiet,
    };
    let glossary = args.glossary.load()?;
    let plan = lines::plan(&job)?;
    let target = common::target(&args.model, args.quiet)?;
    // Each line a request of its own (1 sentence per chunk): a chat model given several
    // numbered lines can merge or split them.
    let mut load = || translators(&args, &target, glossary.clone(), 1);
    let mut events = tarjama_batch::Stderr;
    let summary = lines::run(&job, &plan, &target.name(), &mut load, &mut events)?;
    if summary.interrupted {
        eprintln!(
            "interrupted after {} of {} inputs",
            summary.done + summary.failed,
            summary.inputs
        );
    }
    if args.json {
        plan.sink.print_json(&summary)?;
    } else if !args.quiet {
        eprintln!(
            "{} lines ({} translated, {} from the cache) in {:.1} s ({:.2} lines/s)",
            summary.lines,
            summary.translated,
            summary.cache_hits,
            summary.seconds,
            summary.lines_per_second
        );
    }
    Ok(if summary.interrupted {
        exit::INTERRUPTED
    } else if summary.failed == 0 {
        exit::SUCCESS
    } else if summary.done == 0 {
        exit::FAILURE
    } else {
        exit::SOME_FAILED
    })
}

fn read_options(args: &Args) -> ReadOptions {
    ReadOptions {
        lossy: args.lossy,
        max_bytes: Some(args.max_input_size),
    }
}

/// Says which flags the model ignores.
fn note_ignored_flags(args: &Args, target: &Target) {
    if args.quiet || !target.is_chat() {
        return;
    }
    let name = target.name();
    if args.beam.is_some() {
        eprintln!(
            "note: --beam is ignored: {name} is a chat model, which decodes greedily or samples"
        );
    }
    if args.int8 {
        eprintln!("note: --int8 is ignored: {name} is a chat model, quantized already or remote");
    }
}

/// The translators the flags ask for, `batch_sentences` to a request.
fn translators(
    args: &Args,
    target: &Target,
    glossary: Option<Arc<Glossary>>,
    batch_sentences: usize,
) -> anyhow::Result<Translators> {
    tarjama_loader::load_translator(
        target,
        &args.model,
        args.sampling.params(512),
        ChatChoices {
            batch_tokens: args.batch_tokens,
            batch_sentences,
            candidates: args.candidates.candidates(),
            glossary,
            examples: args.examples,
        },
        tarjama_loader::Seq2SeqChoices {
            beam: args.beam,
            int8: args.int8,
        },
    )
}

fn report(args: &Args, s: &Summary, sink: &Sink) -> anyhow::Result<()> {
    if s.interrupted {
        let resume = match sink {
            Sink::Folder(_) => "; run the same command again to resume (finished outputs are kept)",
            _ => "",
        };
        eprintln!(
            "interrupted after {} of {} inputs{resume}",
            s.done + s.skipped + s.failed + s.unsupported,
            s.inputs
        );
    }
    if args.json {
        sink.print_json(s)?;
    } else if !args.quiet && (s.inputs > 1 || s.failed > 0) {
        eprintln!();
        eprintln!("  done         {:>6}", s.done);
        eprintln!(
            "  skipped      {:>6}   (finished by an earlier run)",
            s.skipped
        );
        eprintln!(
            "  unsupported  {:>6}   (not plain text or .srt)",
            s.unsupported
        );
        eprintln!("  failed       {:>6}", s.failed);
        eprintln!(
            "  {} sentences in {:.1} s ({:.2} sentences/s; {} from the cache)",
            s.sentences, s.seconds, s.sentences_per_second, s.cache_hits
        );
    } else if !args.quiet {
        eprintln!(
            "{} sentences in {:.1} s ({:.2} sentences/s)",
            s.sentences, s.seconds, s.sentences_per_second
        );
    }
    Ok(())
}
