//! `tarjama translate`: Arabic text from a pipe, files or whole folders into English.
//!
//! A folder run is built to survive the night: outputs are written atomically, every
//! finished input is recorded in a manifest in the output folder so a rerun skips it
//! (after a kill, a crash or Ctrl-C), one bad input is reported and skipped, repeated
//! sentences are translated once, and `--shard K/N` splits a corpus between machines. The
//! pieces live in `crate::batch`; this file wires them to the command line.
//!
//! Why one file of over 700 lines: a folder run (order, resume, the shared cache, the
//! manifest, files in flight) is one piece of state; the parts that stand alone live in
//! `batch/`.

use std::collections::{HashSet, VecDeque};
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tarjama_models::gguf::EngineStats;
use tarjama_pipeline::{
    sentences_to_translate, translate_document, DocumentTranslation, Glossary, TranslateOptions,
};
use tarjama_text::{ReadOptions, Source};

use super::common::{
    self, CandidateArgs, ChatChoices, GlossaryArgs, ModelArgs, SamplingArgs, Target, Translators,
};
use crate::batch::cache::Cache;
use crate::batch::formats::Prepared;
use crate::batch::inputs::{self, Input, Selection, Shard};
use crate::batch::manifest::{self, Manifest};
use crate::batch::render::{self, Format};
use crate::batch::{atomic, signal, Sink, INTERRUPTED};
use crate::exit;
use tarjama_remote::RemoteStats;

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

/// Everything that changes a translation, hashed into the cache key.
#[derive(Serialize)]
struct TranslationSettings<'a> {
    tarjama: &'a str,
    model: &'a str,
    /// The server of a remote model. Absent for a local one, so caches written before
    /// remote engines existed keep their key.
    #[serde(skip_serializing_if = "Option::is_none")]
    endpoint: Option<&'a str>,
    model_file: String,
    model_bytes: u64,
    temperature: f64,
    top_k: Option<usize>,
    top_p: Option<f64>,
    seed: u64,
    repetition_penalty: f32,
    max_tokens: Option<usize>,
    stop: &'a [String],
    beam: Option<usize>,
    batch_sentences: usize,
    batch_tokens: usize,
    /// Worked examples shown; absent when none (as below).
    #[serde(skip_serializing_if = "is_zero")]
    examples: usize,
    max_context: usize,
    normalize: &'a str,
    /// Absent when off, so caches written before the option existed keep their key.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    int8: bool,
    /// Candidates per request, with their sampling; absent when 1 (as above).
    #[serde(skip_serializing_if = "Option::is_none")]
    candidates: Option<(usize, f64, f64)>,
    /// The sha256 of the glossary's entries; absent without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    glossary: Option<String>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// (translation settings hash, output settings hash): the second adds what changes the
/// output file but not the translation.
fn settings_hashes(
    args: &Args,
    target: &Target,
    glossary: Option<&Glossary>,
) -> anyhow::Result<(String, String)> {
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
    let name = target.name();
    let s = TranslationSettings {
        tarjama: env!("CARGO_PKG_VERSION"),
        model: &name,
        endpoint: target.endpoint(),
        model_file,
        model_bytes,
        temperature: args.sampling.temperature,
        top_k: args.sampling.top_k,
        top_p: args.sampling.top_p,
        seed: args.sampling.seed,
        repetition_penalty: args.sampling.repetition_penalty,
        max_tokens: args.sampling.max_tokens,
        stop: &args.sampling.stop,
        beam: args.beam,
        batch_sentences: args.batch_sentences,
        batch_tokens: args.batch_tokens,
        examples: args.examples,
        max_context: args.model.run.max_context,
        normalize: &args.normalize,
        int8: args.int8,
        candidates: (args.candidates.candidates > 1).then_some((
            args.candidates.candidates,
            args.candidates.sampling.candidate_temperature,
            args.candidates.sampling.candidate_epsilon,
        )),
        glossary: glossary.map(|g| sha256_hex(g.fingerprint().as_bytes())),
    };
    let translation = sha256_hex(&serde_json::to_vec(&s)?);
    let output = sha256_hex(
        format!(
            "{translation}\nformat={}\nlossy={}",
            args.format.name(),
            args.lossy
        )
        .as_bytes(),
    );
    Ok((translation, output))
}

/// One input that could not be done (also `--lines`' report).
#[derive(Serialize)]
pub(crate) struct Failure {
    pub(crate) file: String,
    pub(crate) reason: String,
}

#[derive(Serialize, Default)]
struct Summary {
    inputs: usize,
    done: usize,
    /// Done by an earlier run (manifest).
    skipped: usize,
    /// Not a format this command reads.
    unsupported: usize,
    failed: usize,
    interrupted: bool,
    sentences: usize,
    model_sentences: usize,
    cache_hits: usize,
    seconds: f64,
    sentences_per_second: f64,
    model: String,
    format: &'static str,
    output: Option<String>,
    failures: Vec<Failure>,
    events: Vec<String>,
    /// What the chat model's engine did: requests, batches, memory for keys and values.
    #[serde(skip_serializing_if = "Option::is_none")]
    engine: Option<EngineStats>,
    /// What the remote engine did: requests, retries by cause, tarjama's own overhead.
    #[serde(skip_serializing_if = "Option::is_none")]
    remote: Option<RemoteStats>,
    /// Peak resident memory of the process, bytes (where the OS tells).
    peak_rss_bytes: Option<u64>,
}

/// An input read and prepared, for the model.
struct Job {
    /// Its place among the inputs.
    position: usize,
    name: String,
    rel_out: String,
    sha: String,
    prepared: Prepared,
    /// The sentences it hands the model.
    keys: Arc<HashSet<String>>,
}

/// Files, sentences, rate and ETA: a bar on a terminal, a line every few seconds
/// otherwise.
struct Progress {
    bar: Option<ProgressBar>,
    quiet: bool,
    total: usize,
    start: Instant,
    last_line: Instant,
}

impl Progress {
    fn new(total: usize, quiet: bool) -> Self {
        let bar = (!quiet && total > 1 && std::io::stderr().is_terminal()).then(|| {
            let bar =
                ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:30.cyan/blue} {pos}/{len} files  {msg}  ETA {eta}",
                )
                .expect("valid template"),
            );
            bar.enable_steady_tick(Duration::from_millis(500));
            bar
        });
        Progress {
            bar,
            quiet,
            total,
            start: Instant::now(),
            last_line: Instant::now(),
        }
    }

    fn note(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }

    /// Called after each input; `worked` counts the inputs that needed the model.
    fn update(&mut self, s: &Summary, worked: usize, remaining: usize) {
        let secs = self.start.elapsed().as_secs_f64().max(1e-9);
        let rate = s.sentences as f64 / secs;
        let msg = format!("{} sentences  {rate:.2} sentences/s", s.sentences);
        let handled = s.done + s.skipped + s.failed + s.unsupported;
        if let Some(bar) = &self.bar {
            bar.set_position(handled as u64);
            bar.set_message(msg);
            return;
        }
        if self.quiet || self.total <= 1 {
            return;
        }
        if self.last_line.elapsed() >= Duration::from_secs(5) || remaining == 0 {
            let eta = if worked > 0 {
                let per = secs / worked as f64;
                format!(", ETA {}", human(per * remaining as f64))
            } else {
                String::new()
            };
            eprintln!("[{handled}/{}] {msg}{eta}", self.total);
            self.last_line = Instant::now();
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn human(secs: f64) -> String {
    let s = secs.round() as u64;
    match s {
        0..=99 => format!("{s}s"),
        100..=5999 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s / 60) % 60),
    }
}

/// Reads an input's bytes, refusing it early when it is over the limit.
fn read_bytes(source: &Source, limit: u64) -> anyhow::Result<Vec<u8>> {
    let too_large = |n: u64| {
        anyhow::anyhow!(
            "{}: {n} bytes, over the limit of {limit} bytes (raise --max-input-size)",
            source.name()
        )
    };
    let mut bytes = Vec::new();
    match source {
        Source::Stdin => {
            std::io::stdin()
                .lock()
                .take(limit + 1)
                .read_to_end(&mut bytes)
                .context("<stdin>: cannot read")?;
        }
        Source::File(path) => {
            let meta = std::fs::metadata(path)
                .with_context(|| format!("{}: cannot read", path.display()))?;
            if meta.len() > limit {
                return Err(too_large(meta.len()));
            }
            bytes =
                std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
        }
    }
    if bytes.len() as u64 > limit {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// The output's path relative to the output folder: the input's relative path with the
/// format's extension (`.txt` inputs: replaced; others: appended, so `a.txt` and `a.srt`
/// never collide), and a subtitle file in `txt` format stays `.srt`.
fn output_relative(input: &Input, format: Format) -> String {
    let is_srt = input.kind == Some(inputs::Kind::Srt);
    if is_srt && format == Format::Txt {
        return input.relative.clone();
    }
    let path = Path::new(&input.relative);
    let replace = path
        .extension()
        .is_none_or(|e| e.eq_ignore_ascii_case("txt") || e.eq_ignore_ascii_case("text"));
    if replace {
        let stem = match input.relative.rfind('.') {
            Some(dot) if path.extension().is_some() => &input.relative[..dot],
            _ => &input.relative[..],
        };
        format!("{stem}.{}", format.extension())
    } else {
        format!("{}.{}", input.relative, format.extension())
    }
}

/// Runs `tarjama translate`.
pub fn run(args: Args) -> anyhow::Result<i32> {
    if args.lines {
        return crate::batch::lines::run(args);
    }
    common::set_threads(args.model.run.threads);
    signal::install();
    let normalizer = common::normalizer(&args.normalize)?;
    let glossary = args.glossary.load()?;
    let stdin_only = args.inputs.is_empty() || args.inputs.iter().all(|i| i == "-");
    let any_dir = args
        .inputs
        .iter()
        .any(|i| i != "-" && Path::new(i).is_dir());
    let sink = Sink::new(args.output.as_deref(), any_dir || args.inputs.len() > 1);
    if args.inputs.iter().filter(|i| *i == "-").count() > 1 {
        anyhow::bail!("stdin (-) can be read only once");
    }
    if stdin_only && matches!(sink, Sink::Folder(_)) && args.inputs.len() > 1 {
        anyhow::bail!("stdin (-) can be read only once");
    }

    let selection = Selection {
        include: args.select.include.clone(),
        exclude: args.select.exclude.clone(),
        hidden: args.select.hidden,
        follow: args.select.follow,
        shard: args.select.shard,
        skip_under: match &sink {
            Sink::Folder(d) => Some(d.clone()),
            _ => None,
        },
    };
    let (inputs, list_errors) = inputs::collect(&args.inputs, &selection)?;

    let target = common::target(&args.model, args.quiet)?;
    let model_name = target.name();
    if args.beam.is_some() && target.is_chat() && !args.quiet {
        eprintln!(
            "note: --beam is ignored: {model_name} is a chat model, which decodes greedily or samples"
        );
    }
    if args.int8 && target.is_chat() && !args.quiet {
        eprintln!(
            "note: --int8 is ignored: {model_name} is a chat model, quantized already or remote"
        );
    }
    let (translation_settings, settings) = settings_hashes(&args, &target, glossary.as_deref())?;
    let tag = args.select.shard.map(|s| s.tag());

    let mut manifest = match &sink {
        Sink::Folder(dir) => {
            let m = Manifest::open(dir, tag.as_deref(), !args.batch.overwrite)?;
            if args.batch.resume && !m.existed {
                anyhow::bail!(
                    "--resume: {} has no {}*.jsonl; nothing to resume (drop --resume to start)",
                    dir.display(),
                    manifest::PREFIX
                );
            }
            if m.existed && !args.batch.overwrite && !args.quiet {
                eprintln!(
                    "note: resuming: {} has a manifest; finished inputs are skipped (--overwrite redoes them)",
                    dir.display()
                );
            }
            if m.torn > 0 && !args.quiet {
                eprintln!(
                    "note: ignored {} unreadable manifest line(s) (a killed run); those inputs are redone",
                    m.torn
                );
            }
            Some(m)
        }
        _ => None,
    };

    let read = ReadOptions {
        lossy: args.lossy,
        max_bytes: Some(args.max_input_size),
    };
    let options = TranslateOptions {
        normalizer,
        glossary: glossary.clone(),
    };
    let cache = match (&sink, args.batch.no_cache) {
        (Sink::Folder(dir), false) => {
            Cache::persistent(dir, tag.as_deref(), &translation_settings)?
        }
        _ => Cache::new(),
    };
    let mut translators: Option<Translators> = None;
    let mut summary = Summary {
        inputs: inputs.len(),
        format: args.format.name(),
        model: model_name.clone(),
        output: args.output.as_ref().map(|o| o.display().to_string()),
        ..Summary::default()
    };
    let start = Instant::now();
    let mut progress = Progress::new(inputs.len(), args.quiet);
    for e in list_errors {
        progress.note(&format!("error: {}: {}; skipped", e.path, e.reason));
        summary.failed += 1;
        summary.failures.push(Failure {
            file: e.path,
            reason: e.reason,
        });
    }
    let mut taken: std::collections::HashMap<String, String> = Default::default();
    let mut stdout = std::io::stdout().lock();
    let mut worked = 0;
    let handled = |s: &Summary| s.done + s.skipped + s.failed + s.unsupported;

    std::thread::scope(|scope| -> anyhow::Result<()> {
        let (job_tx, job_rx) = mpsc::channel::<Job>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let (done_tx, done_rx) = mpsc::channel::<(Job, Result<DocumentTranslation, String>)>();
        // Inputs read and prepared, waiting for the model, in input order.
        let mut held: VecDeque<Job> = VecDeque::new();
        // Inputs with the model: (position, the sentences they hand it).
        let mut inflight: Vec<(usize, Arc<HashSet<String>>)> = Vec::new();
        let (mut next, mut workers, mut files_at_once) = (0, 0, 1);
        loop {
            let stop = signal::requested();
            if stop && (next < inputs.len() || !held.is_empty()) {
                summary.interrupted = true;
            }
            // Read and prepare inputs while there is room.
            while !stop && next < inputs.len() && held.len() < 2 * files_at_once {
                let (position, input) = (next, &inputs[next]);
                next += 1;
                let remaining = inputs.len() - handled(&summary) - 1;
                let name = input.name();
                let fail = |summary: &mut Summary, progress: &Progress, reason: String| {
                    progress.note(&format!("error: {reason}; skipped"));
                    summary.failed += 1;
                    summary.failures.push(Failure {
                        file: name.clone(),
                        reason,
                    });
                };
                let Some(kind) = input.kind else {
                    if !args.quiet {
                        let ext = Path::new(&input.relative)
                            .extension()
                            .map(|e| e.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        progress.note(&format!(
                            "skipped {name}: .{ext} is not a format tarjama translates (plain text and .srt)"
                        ));
                    }
                    summary.unsupported += 1;
                    progress.update(&summary, worked, remaining);
                    continue;
                };
                let rel_out = output_relative(input, args.format);
                if let Sink::Folder(_) = sink {
                    if let Some(first) = taken.insert(rel_out.clone(), name.clone()) {
                        fail(
                            &mut summary,
                            &progress,
                            format!(
                                "{name}: its output {rel_out} is also the output of {first}; rename one"
                            ),
                        );
                        continue;
                    }
                }
                let bytes = match read_bytes(&input.source, args.max_input_size) {
                    Ok(b) => b,
                    Err(e) => {
                        fail(&mut summary, &progress, format!("{e:#}"));
                        progress.update(&summary, worked, remaining);
                        continue;
                    }
                };
                let sha = sha256_hex(&bytes);
                if let Some(m) = &manifest {
                    if m.is_done(&input.relative, &sha, &settings, &rel_out) {
                        summary.skipped += 1;
                        progress.update(&summary, worked, remaining);
                        continue;
                    }
                }
                let prepared = tarjama_text::input::decode(&bytes, &name, &read)
                    .map_err(|e| {
                        let hint = match e {
                            tarjama_text::Error::InvalidUtf8 { .. } => {
                                " (convert it to UTF-8, or pass --lossy)"
                            }
                            _ => "",
                        };
                        format!("{e}{hint}")
                    })
                    .and_then(|text| {
                        Prepared::new(kind, text).map_err(|e| format!("{name}: {e:#}"))
                    });
                match prepared {
                    Ok(prepared) => {
                        let keys = sentences_to_translate(&prepared.text, &options);
                        held.push_back(Job {
                            position,
                            name,
                            rel_out,
                            sha,
                            keys: Arc::new(keys.into_iter().collect()),
                            prepared,
                        });
                    }
                    Err(reason) => {
                        fail(&mut summary, &progress, reason);
                        progress.update(&summary, worked, remaining);
                    }
                }
            }
            if translators.is_none() && !held.is_empty() {
                let t = common::load_translator(
                    &target,
                    &args.model,
                    args.sampling.params(512),
                    ChatChoices {
                        batch_tokens: args.batch_tokens,
                        batch_sentences: args.batch_sentences,
                        candidates: args.candidates.candidates(),
                        glossary: glossary.clone(),
                        examples: args.examples,
                    },
                    common::Seq2SeqChoices {
                        beam: args.beam,
                        int8: args.int8,
                    },
                )?;
                // Outputs to stdout come in input order: one input at a time (its
                // requests still go to the model together).
                files_at_once = if matches!(sink, Sink::Stdout) {
                    1
                } else {
                    t.parallel
                };
                translators = Some(t);
            }
            // Hand inputs to the model, in order, as many at once as it takes. An input
            // that shares a sentence with an earlier one not yet written waits for it:
            // the cache then gives it that sentence, exactly as a run of one input after
            // the other would, so outputs never depend on timing.
            let mut i = 0;
            while !stop && i < held.len() && inflight.len() < files_at_once {
                let earlier = inflight
                    .iter()
                    .filter(|(p, _)| *p < held[i].position)
                    .map(|(_, keys)| keys)
                    .chain(held.iter().take(i).map(|j| &j.keys));
                let keys = &held[i].keys;
                if earlier.into_iter().any(|other| !other.is_disjoint(keys)) {
                    i += 1;
                    continue;
                }
                let job = held.remove(i).expect("index in range");
                if workers <= inflight.len() {
                    let t = translators.as_mut().expect("loaded above").next();
                    if let Some(t) = t {
                        let mut t = cache.wrap(t);
                        let (job_rx, done_tx, options) =
                            (job_rx.clone(), done_tx.clone(), &options);
                        scope.spawn(move || loop {
                            let job = job_rx.lock().map(|rx| rx.recv());
                            let Ok(Ok(job)) = job else {
                                break;
                            };
                            let doc = translate_document(&mut t, &job.prepared.text, options)
                                .map_err(|e| format!("{}: translation failed: {e:#}", job.name));
                            if done_tx.send((job, doc)).is_err() {
                                break;
                            }
                        });
                        workers += 1;
                    }
                }
                inflight.push((job.position, job.keys.clone()));
                job_tx
                    .send(job)
                    .context("the translation threads stopped")?;
            }
            if inflight.is_empty() {
                if stop || (held.is_empty() && next >= inputs.len()) {
                    break;
                }
                continue;
            }
            let (job, result) = done_rx.recv().context("the translation threads stopped")?;
            inflight.retain(|(p, _)| *p != job.position);
            let remaining = inputs.len() - handled(&summary) - 1;
            let mut doc = match result {
                Ok(d) => d,
                Err(reason) => {
                    progress.note(&format!("error: {reason}; skipped"));
                    summary.failed += 1;
                    summary.failures.push(Failure {
                        file: job.name.clone(),
                        reason,
                    });
                    progress.update(&summary, worked, remaining);
                    continue;
                }
            };
            let Job {
                position,
                name,
                rel_out,
                sha,
                prepared,
                ..
            } = job;
            let input = &inputs[position];
            prepared.map_back(&mut doc);
            for event in &doc.events {
                if !args.quiet {
                    progress.note(&format!("note: {name}: {event}"));
                }
                summary.events.push(format!("{name}: {event}"));
            }
            let display = match input.source {
                Source::Stdin => "<stdin>",
                Source::File(_) => input.relative.as_str(),
            };
            let rendered = render::render(&prepared, &doc, args.format, display, &model_name)?;
            match &sink {
                Sink::Stdout => {
                    stdout.write_all(rendered.as_bytes())?;
                    stdout.flush()?;
                }
                Sink::File(path) => atomic::write_atomic(path, rendered.as_bytes())?,
                Sink::Folder(dir) => {
                    atomic::write_atomic(&dir.join(&rel_out), rendered.as_bytes())?;
                    // Order matters: output renamed into place, then cache lines, then the
                    // manifest line. A kill between any two steps makes the rerun redo this
                    // input from the same cache, to the same bytes.
                    cache.persist()?;
                    if let Some(m) = manifest.as_mut() {
                        m.append(&manifest::Entry {
                            input: input.relative.clone(),
                            sha256: sha,
                            settings: settings.clone(),
                            output: rel_out,
                            model: model_name.clone(),
                            endpoint: target.endpoint().map(str::to_string),
                            sentences: doc.sentences.len(),
                            finished: SystemTime::now()
                                .duration_since(UNIX_EPOCH)
                                .map_or(0, |d| d.as_secs()),
                        })?;
                    }
                }
            }
            summary.done += 1;
            summary.sentences += doc.sentences.len();
            worked += 1;
            progress.update(&summary, worked, remaining);
        }
        Ok(())
    })?;
    progress.finish();
    (summary.cache_hits, summary.model_sentences) = cache.counts();
    if let Some(engine) = translators.as_ref().and_then(|t| t.engine.as_ref()) {
        summary.engine = Some(engine.stats());
    }
    if let Some(remote) = translators.as_ref().and_then(|t| t.remote.as_ref()) {
        summary.remote = Some(remote.stats());
    }
    summary.seconds = start.elapsed().as_secs_f64();
    summary.peak_rss_bytes = crate::benchmark::machine::peak_rss_bytes();
    summary.sentences_per_second = summary.sentences as f64 / summary.seconds.max(1e-9);
    report(&args, &summary, &sink)?;

    if summary.interrupted {
        return Ok(INTERRUPTED);
    }
    Ok(if summary.failed == 0 {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::inputs::Kind;

    fn input(rel: &str) -> Input {
        Input {
            source: Source::File(PathBuf::from(rel)),
            relative: rel.into(),
            kind: Kind::of(Path::new(rel)),
        }
    }

    #[test]
    fn output_names() {
        assert_eq!(output_relative(&input("a/b.txt"), Format::Txt), "a/b.txt");
        assert_eq!(
            output_relative(&input("a/b.txt"), Format::Jsonl),
            "a/b.jsonl"
        );
        assert_eq!(output_relative(&input("a/b.srt"), Format::Txt), "a/b.srt");
        assert_eq!(
            output_relative(&input("a/b.srt"), Format::Html),
            "a/b.srt.html"
        );
        assert_eq!(
            output_relative(&input("a/README"), Format::Tsv),
            "a/README.tsv"
        );
        assert_eq!(output_relative(&input("a.b/c"), Format::Tsv), "a.b/c.tsv");
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human(42.0), "42s");
        assert_eq!(human(125.0), "2m05s");
        assert_eq!(human(7300.0), "2h01m");
    }
}
