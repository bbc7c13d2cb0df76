//! A document run: files, folders or stdin translated into files, a folder or stdout.
//!
//! A folder run is built to survive the night: outputs are written atomically, every
//! finished input is recorded in a manifest in the output folder so a rerun skips it
//! (after a kill, a crash or Ctrl-C), one bad input is reported and skipped, repeated
//! sentences are translated once, and `--shard K/N` splits a corpus between machines.
//!
//! Inputs are read and prepared on the calling thread, ahead of the model, and handed to
//! as many translating threads as the model takes inputs at once; finished inputs are
//! written in the order they finish. An input that shares a sentence with an earlier one
//! still in flight waits for it, so every output is what a run of one input after the
//! other would write.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use serde::Serialize;
use tarjama_loader::{EngineReport, EngineStats, RemoteStats, Translators};
use tarjama_pipeline::{
    plan_document, translate_planned, DocumentPlan, DocumentTranslation, TranslateOptions,
    Translator,
};
use tarjama_text::{ReadOptions, Source};

use crate::cache::Cache;
use crate::formats::Prepared;
use crate::inputs::{self, Input, Selection};
use crate::manifest::{self, Manifest};
use crate::render::{self, Format};
use crate::settings::{sha256_hex, SettingsKeys};
use crate::{atomic, signal, Events, Failure, Sink};

/// What a document run does, besides which model translates.
pub struct Job {
    /// The inputs as named: files, folders (walked), `-` for stdin; none: stdin.
    pub inputs: Vec<String>,
    /// `--output`: a folder, a file, or stdout.
    pub output: Option<PathBuf>,
    /// The outputs' format.
    pub format: Format,
    /// Which files of the input folders are taken (`skip_under` is set here, to the
    /// output folder).
    pub selection: Selection,
    /// How inputs are read (invalid UTF-8, the size limit).
    pub read: ReadOptions,
    /// How documents are translated (normalization, glossary).
    pub translate: TranslateOptions,
    /// Redo every input, ignoring the manifest.
    pub overwrite: bool,
    /// Refuse to start without a manifest to resume from.
    pub resume: bool,
    /// No translation cache on disk.
    pub no_cache: bool,
    /// No notes (errors are still reported).
    pub quiet: bool,
}

impl Plan {
    /// How many inputs were found.
    pub fn inputs(&self) -> usize {
        self.inputs.len()
    }
}

/// The model a run uses, as its outputs and manifest name it.
#[derive(Debug, Clone)]
pub struct Model {
    /// What the outputs depend on.
    pub keys: SettingsKeys,
    /// The model's name.
    pub name: String,
    /// The server of a remote model.
    pub endpoint: Option<String>,
}

/// A run's inputs, found, and where its outputs go: what can be checked before any model
/// is looked for.
pub struct Plan {
    /// Where the outputs go.
    pub sink: Sink,
    inputs: Vec<Input>,
    list_errors: Vec<inputs::ListError>,
}

/// What a document run did (`--json` prints it).
#[derive(Debug, Serialize, Default)]
pub struct Summary {
    /// Inputs found.
    pub inputs: usize,
    /// Inputs translated.
    pub done: usize,
    /// Done by an earlier run (manifest).
    pub skipped: usize,
    /// Not a format this command reads.
    pub unsupported: usize,
    /// Inputs that failed.
    pub failed: usize,
    /// Stopped by Ctrl-C.
    pub interrupted: bool,
    /// Sentences in the translated inputs.
    pub sentences: usize,
    /// Of those, translated by the model.
    pub model_sentences: usize,
    /// Of those, answered by the cache.
    pub cache_hits: usize,
    /// Wall seconds.
    pub seconds: f64,
    /// Sentences per second.
    pub sentences_per_second: f64,
    /// The model's name.
    pub model: String,
    /// The outputs' format.
    pub format: &'static str,
    /// `--output`.
    pub output: Option<String>,
    /// The inputs that failed, and why.
    pub failures: Vec<Failure>,
    /// Repairs and warnings the pipeline reported, by input.
    pub events: Vec<String>,
    /// What the chat model's engine did: requests, batches, memory for keys and values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine: Option<EngineStats>,
    /// What the remote engine did: requests, retries by cause, tarjama's own overhead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<RemoteStats>,
    /// Peak resident memory of the process, bytes (the binary fills it in).
    pub peak_rss_bytes: Option<u64>,
}

impl Summary {
    /// Inputs dealt with so far, whatever became of them.
    pub fn handled(&self) -> usize {
        self.done + self.skipped + self.failed + self.unsupported
    }
}

/// An input read and prepared, for the model.
struct Prepped {
    /// Its place among the inputs.
    position: usize,
    name: String,
    rel_out: String,
    sha: String,
    prepared: Prepared,
    /// Its sentences, planned once: the translating thread translates this plan.
    plan: DocumentPlan,
    /// The sentences it hands the model.
    keys: Arc<HashSet<String>>,
}

/// Finds `job`'s inputs and where its outputs go (a folder when `--output` names one or
/// there are several inputs).
pub fn plan(job: &Job) -> anyhow::Result<Plan> {
    let any_dir = job.inputs.iter().any(|i| i != "-" && Path::new(i).is_dir());
    let sink = Sink::new(job.output.as_deref(), any_dir || job.inputs.len() > 1);
    let stdin_only = job.inputs.is_empty() || job.inputs.iter().all(|i| i == "-");
    if job.inputs.iter().filter(|i| *i == "-").count() > 1
        || (stdin_only && matches!(sink, Sink::Folder(_)) && job.inputs.len() > 1)
    {
        anyhow::bail!("stdin (-) can be read only once");
    }
    let selection = Selection {
        skip_under: match &sink {
            Sink::Folder(d) => Some(d.clone()),
            _ => None,
        },
        ..job.selection.clone()
    };
    let (inputs, list_errors) = inputs::collect(&job.inputs, &selection)?;
    Ok(Plan {
        sink,
        inputs,
        list_errors,
    })
}

/// Runs `job` as `plan` found it with `model`, loading the model with `load` once the
/// first input is ready for it (and not at all when every input is done already or
/// fails). Installs the Ctrl-C handler.
pub fn run(
    job: &Job,
    plan: Plan,
    model: &Model,
    load: &mut dyn FnMut() -> anyhow::Result<Translators>,
    events: &mut dyn Events,
) -> anyhow::Result<Summary> {
    signal::install();
    let Plan {
        sink,
        inputs,
        list_errors,
    } = plan;
    let tag = job.selection.shard.map(|s| s.tag());
    let manifest = match &sink {
        Sink::Folder(dir) => Some(open_manifest(job, dir, tag.as_deref(), events)?),
        _ => None,
    };
    let cache = match (&sink, job.no_cache) {
        (Sink::Folder(dir), false) => {
            Cache::persistent(dir, tag.as_deref(), &model.keys.translation)?
        }
        _ => Cache::new(),
    };
    let mut run = Run {
        job,
        model,
        summary: Summary {
            inputs: inputs.len(),
            format: job.format.name(),
            model: model.name.clone(),
            output: job.output.as_ref().map(|o| o.display().to_string()),
            ..Summary::default()
        },
        inputs,
        sink,
        manifest,
        taken: HashMap::new(),
        worked: 0,
        events,
    };
    for e in list_errors {
        run.fail(e.path, e.reason);
    }
    let start = Instant::now();
    let translators = run.translate_all(&cache, load)?;
    (run.summary.cache_hits, run.summary.model_sentences) = cache.counts();
    match translators.as_ref().and_then(Translators::stats) {
        Some(EngineReport::Local(stats)) => run.summary.engine = Some(stats),
        Some(EngineReport::Remote(stats)) => run.summary.remote = Some(stats),
        None => {}
    }
    let mut summary = run.summary;
    summary.seconds = start.elapsed().as_secs_f64();
    summary.sentences_per_second = summary.sentences as f64 / summary.seconds.max(1e-9);
    Ok(summary)
}

/// The output folder's manifest, read unless `--overwrite`.
fn open_manifest(
    job: &Job,
    dir: &Path,
    tag: Option<&str>,
    events: &mut dyn Events,
) -> anyhow::Result<Manifest> {
    let m = Manifest::open(dir, tag, !job.overwrite)?;
    if job.resume && !m.existed {
        anyhow::bail!(
            "--resume: {} has no {}*.jsonl; nothing to resume (drop --resume to start)",
            dir.display(),
            manifest::PREFIX
        );
    }
    if m.existed && !job.overwrite && !job.quiet {
        events.note(&format!(
            "note: resuming: {} has a manifest; finished inputs are skipped (--overwrite redoes them)",
            dir.display()
        ));
    }
    if m.torn > 0 && !job.quiet {
        events.note(&format!(
            "note: ignored {} unreadable manifest line(s) (a killed run); those inputs are redone",
            m.torn
        ));
    }
    Ok(m)
}

/// A document run under way.
struct Run<'a> {
    job: &'a Job,
    model: &'a Model,
    summary: Summary,
    inputs: Vec<Input>,
    sink: Sink,
    manifest: Option<Manifest>,
    /// Output paths taken so far, with the input that took each.
    taken: HashMap<String, String>,
    /// Inputs that needed the model.
    worked: usize,
    events: &'a mut dyn Events,
}

type Done = (Prepped, Result<DocumentTranslation, String>);

impl Run<'_> {
    /// Translates every input: reads ahead of the model, hands inputs to the translating
    /// threads as the model takes them, and writes each as it finishes. Returns the
    /// translators, for their engine's statistics (none when nothing needed the model).
    fn translate_all(
        &mut self,
        cache: &Cache,
        load: &mut dyn FnMut() -> anyhow::Result<Translators>,
    ) -> anyhow::Result<Option<Translators>> {
        let mut translators: Option<Translators> = None;
        let job: &Job = self.job;
        let options = &job.translate;
        std::thread::scope(|scope| -> anyhow::Result<()> {
            let (job_tx, job_rx) = mpsc::channel::<Prepped>();
            let job_rx = Arc::new(Mutex::new(job_rx));
            let (done_tx, done_rx) = mpsc::channel::<Done>();
            // Inputs read and prepared, waiting for the model, in input order.
            let mut held: VecDeque<Prepped> = VecDeque::new();
            // Inputs with the model: (position, the sentences they hand it).
            let mut inflight: Vec<(usize, Arc<HashSet<String>>)> = Vec::new();
            let (mut next, mut workers, mut files_at_once) = (0, 0, 1);
            loop {
                let stop = signal::requested();
                if stop && (next < self.inputs.len() || !held.is_empty()) {
                    self.summary.interrupted = true;
                }
                // Read and prepare inputs while there is room.
                while !stop && next < self.inputs.len() && held.len() < 2 * files_at_once {
                    next += 1;
                    if let Some(job) = self.prepare(next - 1) {
                        held.push_back(job);
                    }
                }
                if translators.is_none() && !held.is_empty() {
                    let t = load()?;
                    // Outputs to stdout come in input order: one input at a time (its
                    // requests still go to the model together).
                    files_at_once = match self.sink {
                        Sink::Stdout => 1,
                        _ => t.parallel,
                    };
                    translators = Some(t);
                }
                // Hand inputs to the model, in order, as many at once as it takes.
                while !stop && inflight.len() < files_at_once {
                    let Some(i) = ready(&held, &inflight) else {
                        break;
                    };
                    let job = held.remove(i).expect("index in range");
                    if workers <= inflight.len() {
                        if let Some(t) = translators.as_mut().expect("loaded above").next() {
                            let t = cache.wrap(t);
                            let (job_rx, done_tx) = (job_rx.clone(), done_tx.clone());
                            scope.spawn(move || work(t, &job_rx, &done_tx, options));
                            workers += 1;
                        }
                    }
                    inflight.push((job.position, job.keys.clone()));
                    job_tx
                        .send(job)
                        .context("the translation threads stopped")?;
                }
                if inflight.is_empty() {
                    if stop || (held.is_empty() && next >= self.inputs.len()) {
                        break;
                    }
                    continue;
                }
                let (job, result) = done_rx.recv().context("the translation threads stopped")?;
                inflight.retain(|(p, _)| *p != job.position);
                match result {
                    Ok(doc) => self.write(job, doc, cache)?,
                    Err(reason) => self.fail(job.name, reason),
                }
            }
            // Dropping the sender ends the translating threads once they are idle.
            drop(job_tx);
            Ok(())
        })?;
        Ok(translators)
    }

    /// Reads and checks input `position`: `None` when it is skipped (not a format read
    /// here, done by an earlier run) or failed (reported).
    fn prepare(&mut self, position: usize) -> Option<Prepped> {
        let input = &self.inputs[position];
        let name = input.name();
        let Some(kind) = input.kind else {
            if !self.job.quiet {
                let ext = Path::new(&input.relative)
                    .extension()
                    .map(|e| e.to_string_lossy().into_owned())
                    .unwrap_or_default();
                self.events.note(&format!(
                    "skipped {name}: .{ext} is not a format tarjama translates (plain text and .srt)"
                ));
            }
            self.summary.unsupported += 1;
            self.progress();
            return None;
        };
        let rel_out = output_relative(input, self.job.format);
        if let Sink::Folder(_) = self.sink {
            if let Some(first) = self.taken.insert(rel_out.clone(), name.clone()) {
                let reason = format!(
                    "{name}: its output {rel_out} is also the output of {first}; rename one"
                );
                // Reported without a progress line, as before any work.
                self.summary.failed += 1;
                self.events.note(&format!("error: {reason}; skipped"));
                self.summary.failures.push(Failure { file: name, reason });
                return None;
            }
        }
        let bytes = match tarjama_text::input::read_bytes(&input.source, &self.job.read) {
            Ok(b) => b,
            Err(e) => {
                self.fail(name, explain(&e));
                return None;
            }
        };
        let sha = sha256_hex(&bytes);
        if let Some(m) = &self.manifest {
            if m.is_done(&input.relative, &sha, &self.model.keys.output, &rel_out) {
                self.summary.skipped += 1;
                self.progress();
                return None;
            }
        }
        let prepared = tarjama_text::input::decode(&bytes, &name, &self.job.read)
            .map_err(|e| explain(&e))
            .and_then(|text| Prepared::new(kind, text).map_err(|e| format!("{name}: {e:#}")));
        match prepared {
            Ok(prepared) => {
                let plan = plan_document(&prepared.text, &self.job.translate);
                let keys = plan.to_translate().iter().cloned().collect();
                Some(Prepped {
                    position,
                    name,
                    rel_out,
                    sha,
                    prepared,
                    plan,
                    keys: Arc::new(keys),
                })
            }
            Err(reason) => {
                self.fail(name, reason);
                None
            }
        }
    }

    /// Renders a translated input and writes it where the run's outputs go; in a folder,
    /// then records it in the cache and the manifest.
    fn write(
        &mut self,
        job: Prepped,
        mut doc: DocumentTranslation,
        cache: &Cache,
    ) -> anyhow::Result<()> {
        let Prepped {
            position,
            name,
            rel_out,
            sha,
            prepared,
            ..
        } = job;
        let input = &self.inputs[position];
        prepared.map_back(&mut doc);
        for event in &doc.events {
            if !self.job.quiet {
                self.events.note(&format!("note: {name}: {event}"));
            }
            self.summary.events.push(format!("{name}: {event}"));
        }
        let display = match input.source {
            Source::Stdin => "<stdin>",
            Source::File(_) => input.relative.as_str(),
        };
        let rendered = render::render(&prepared, &doc, self.job.format, display, &self.model.name)?;
        match &self.sink {
            Sink::Stdout => {
                let mut stdout = std::io::stdout().lock();
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
                if let Some(m) = self.manifest.as_mut() {
                    m.append(&manifest::Entry {
                        input: input.relative.clone(),
                        sha256: sha,
                        settings: self.model.keys.output.clone(),
                        output: rel_out,
                        model: self.model.name.clone(),
                        endpoint: self.model.endpoint.clone(),
                        sentences: doc.sentences.len(),
                        finished: SystemTime::now()
                            .duration_since(UNIX_EPOCH)
                            .map_or(0, |d| d.as_secs()),
                    })?;
                }
            }
        }
        self.summary.done += 1;
        self.summary.sentences += doc.sentences.len();
        self.worked += 1;
        self.progress();
        Ok(())
    }

    /// Reports an input that failed and skips it.
    fn fail(&mut self, file: String, reason: String) {
        self.events.note(&format!("error: {reason}; skipped"));
        self.summary.failed += 1;
        self.summary.failures.push(Failure { file, reason });
        self.progress();
    }

    fn progress(&mut self) {
        let remaining = self.inputs.len().saturating_sub(self.summary.handled());
        self.events.update(&self.summary, self.worked, remaining);
    }
}

/// An input's read error, with what the user can do about it.
pub(crate) fn explain(e: &tarjama_text::Error) -> String {
    let hint = match e {
        tarjama_text::Error::InvalidUtf8 { .. } => " (convert it to UTF-8, or pass --lossy)",
        tarjama_text::Error::TooLarge { .. } => " (raise --max-input-size)",
        _ => "",
    };
    format!("{e}{hint}")
}

/// The first held input that shares no sentence with an earlier one still in flight or
/// held: the cache then gives it that sentence, exactly as a run of one input after the
/// other would, so outputs never depend on timing.
fn ready(held: &VecDeque<Prepped>, inflight: &[(usize, Arc<HashSet<String>>)]) -> Option<usize> {
    (0..held.len()).find(|&i| {
        let keys = &held[i].keys;
        let mut earlier = inflight
            .iter()
            .filter(|(p, _)| *p < held[i].position)
            .map(|(_, keys)| keys)
            .chain(held.iter().take(i).map(|j| &j.keys));
        !earlier.any(|other| !other.is_disjoint(keys))
    })
}

/// A translating thread: takes inputs until the run ends.
fn work(
    mut translator: impl Translator,
    jobs: &Mutex<mpsc::Receiver<Prepped>>,
    done: &mpsc::Sender<Done>,
    options: &TranslateOptions,
) {
    loop {
        let job = jobs.lock().map(|rx| rx.recv());
        let Ok(Ok(mut job)) = job else {
            break;
        };
        let plan = std::mem::take(&mut job.plan);
        let doc = translate_planned(&mut translator, plan, options)
            .map_err(|e| format!("{}: translation failed: {e:#}", job.name));
        if done.send((job, doc)).is_err() {
            break;
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inputs::Kind;

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
}
