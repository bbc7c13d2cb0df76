//! One model's measurements, made in a process of its own (`tarjama bench --worker JOB`):
//! load it twice (cold, then warm), translate every sentence once with greedy decoding
//! and time each one, repeat a small subset `runs` times for steadier speed figures, and
//! summarize articles when asked. The result is one JSON line on stdout.
//!
//! Every request goes through the pipeline (`tarjama-pipeline`), as `translate` and
//! `summarize` send it, on any chat engine: a local model, or a server with --endpoint.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tarjama_chat::{ChatEngine, Completion, Message, SamplingParams};
use tarjama_gguf::{Engine, EngineOptions, Serial};
use tarjama_loader::{ModelArgs, RunArgs, Target};
use tarjama_pipeline::prompts::PromptSet;
use tarjama_pipeline::{
    run_concurrently, summarize, translate_document, Candidates, ChatTranslator, Strategy,
    SummaryLength, SummaryOptions, TranslateOptions, Translator,
};

use tarjama_text::Normalizer;

use crate::commands::common::{self, CandidateSampling};
use crate::machine;

/// What the parent asks a worker to do.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    /// The model spec (registry name, file, ...).
    pub model: String,
    /// Where and how it runs (the flags every model command shares).
    pub run: RunArgs,
    /// Cap on generated tokens per sentence (or per summary).
    pub max_tokens: usize,
    /// Timed repetitions over the speed subset.
    pub runs: usize,
    /// Sentences in the speed subset (the first ones).
    pub speed_subset: usize,
    /// Normalization profile of the Arabic (`mt`, `search`, `none`).
    pub normalize: String,
    /// Translate: requests in flight at once for the throughput runs (none: skipped).
    #[serde(default)]
    pub parallel_levels: Vec<usize>,
    /// Translate: sentences (the first ones) in each throughput run.
    #[serde(default)]
    pub throughput_sentences: usize,
    /// Translate: answers per sentence, the MBR choice kept (1: the greedy answer alone).
    pub candidates: usize,
    /// How the answers after the greedy one are sampled.
    pub candidate_sampling: CandidateSampling,
    /// The work.
    pub task: TaskJob,
}

impl Job {
    /// The pipeline's candidate settings of this job.
    fn candidates(&self) -> Candidates {
        self.candidate_sampling.candidates(self.candidates)
    }
}

/// The work of a job.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum TaskJob {
    /// Translate these sentences, one request each.
    Translate {
        /// Arabic sentences.
        sources: Vec<String>,
    },
    /// Summarize these articles with each strategy.
    Summarize {
        /// Arabic articles (name, text).
        articles: Vec<(String, String)>,
        /// `direct` and/or `translate`.
        strategies: Vec<String>,
        /// Summary length in sentences.
        sentences: usize,
        /// Also translate each article in full (for faithfulness without a reference
        /// document) when no strategy gives a translation.
        need_translation: bool,
    },
}

/// What a worker measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerResult {
    /// The model's name.
    pub model: String,
    /// Its file.
    pub path: String,
    /// File size in bytes.
    pub file_bytes: u64,
    /// First load in this fresh process, seconds (the OS file cache may already hold the
    /// file, so this is not a cold-disk load).
    pub load_cold_s: f64,
    /// Second load in the same process, seconds.
    pub load_warm_s: f64,
    /// Peak resident memory of the worker process (VmHWM), bytes.
    pub peak_rss_bytes: Option<u64>,
    /// Translation measurements.
    pub translate: Option<TranslateRun>,
    /// Summary measurements, one per strategy.
    pub summarize: Vec<SummarizeRun>,
}

/// One sentence's translation and timings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SentenceTiming {
    /// Wall time of the request, seconds.
    pub latency_s: f64,
    /// Time to the first piece of text, seconds.
    pub ttft_s: f64,
    /// Source sentence tokens (the Arabic alone, no prompt).
    pub source_tokens: usize,
    /// Tokens generated.
    pub target_tokens: usize,
}

/// Translation measurements of one model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TranslateRun {
    /// The cleaned translations, one per source.
    pub hypotheses: Vec<String>,
    /// Timings of the full greedy pass, one per source.
    pub pass: Vec<SentenceTiming>,
    /// Timings of the repeated runs over the subset: `runs` lists of `speed_subset`.
    pub repeats: Vec<Vec<SentenceTiming>>,
    /// Throughput with several requests in flight, one per level.
    #[serde(default)]
    pub throughput: Vec<Throughput>,
}

/// The same sentences translated with `parallel` requests in flight at once, on the
/// batched engine.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Throughput {
    /// Requests in flight.
    pub parallel: usize,
    /// Sentences translated.
    pub sentences: usize,
    /// Wall seconds for all of them.
    pub seconds: f64,
    /// Sentences per second.
    pub sentences_per_s: f64,
    /// Generated tokens per second, over all requests.
    pub tokens_per_s: f64,
    /// The KV budget of the local batched engine, MiB (`--kv-budget`, else its default);
    /// none for a server.
    #[serde(default)]
    pub kv_budget_mib: Option<f64>,
}

/// One summary strategy's output on every article.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SummarizeRun {
    /// `direct` or `translate`.
    pub strategy: String,
    /// Summaries, one per article.
    pub summaries: Vec<String>,
    /// The model's full translation of each article, when this strategy made one.
    pub translations: Vec<Option<String>>,
    /// Wall seconds per article.
    pub seconds: Vec<f64>,
    /// Repairs and warnings reported by the pipeline.
    pub events: Vec<String>,
}

/// Runs a job file and prints the result as one JSON line on stdout.
pub fn run(job_path: &Path) -> anyhow::Result<i32> {
    let text = std::fs::read_to_string(job_path)
        .with_context(|| format!("{}: cannot read the job", job_path.display()))?;
    let job: Job = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a bench job", job_path.display()))?;
    tarjama_loader::set_threads(job.run.threads);
    let result = measure(&job)?;
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer(&mut stdout, &result)?;
    writeln!(stdout)?;
    Ok(crate::exit::SUCCESS)
}

/// The model of a job, ready to measure.
enum Runner {
    /// A local GGUF model, one request at a time (the latency runs).
    Local(Box<Serial>),
    /// A server, which answers requests as it answers them.
    Remote(Arc<tarjama_remote::RemoteEngine>),
}

impl Runner {
    /// The engine for one request at a time.
    fn single(&self) -> &dyn ChatEngine {
        match self {
            Runner::Local(model) => &**model,
            Runner::Remote(engine) => &**engine,
        }
    }

    /// The engine for `parallel` requests at once (the local model moves into the
    /// batched engine, set up as `run` says), and a local engine's KV budget in bytes.
    fn batched(
        self,
        parallel: usize,
        run: &RunArgs,
    ) -> anyhow::Result<(Arc<dyn ChatEngine>, Option<usize>)> {
        Ok(match self {
            Runner::Local(model) => {
                let model = model.into_inner();
                let options = EngineOptions {
                    parallel,
                    ..run.engine_options(&model)
                };
                let budget = options.kv_budget;
                (Arc::new(Engine::new(model, options)?), Some(budget))
            }
            Runner::Remote(engine) => (engine, None),
        })
    }
}

fn measure(job: &Job) -> anyhow::Result<WorkerResult> {
    let most_parallel = job.parallel_levels.iter().copied().max().unwrap_or(1);
    let args = ModelArgs {
        model: Some(job.model.clone()),
        run: RunArgs {
            parallel: Some(most_parallel),
            ..job.run.clone()
        },
    };
    let (runner, prompts, mut result) = load(&args)?;
    let normalizer = common::normalizer(&job.normalize)?;
    let pass = Pass {
        job,
        name: result.model.clone(),
        prompts,
        normalizer,
        greedy: SamplingParams {
            max_new_tokens: job.max_tokens,
            ..SamplingParams::default()
        },
    };
    match &job.task {
        TaskJob::Translate { sources } => pass.translate(runner, sources, &mut result)?,
        TaskJob::Summarize {
            articles,
            strategies,
            sentences,
            need_translation,
        } => pass.summarize(
            runner.single(),
            articles,
            strategies,
            *sentences,
            *need_translation,
            &mut result,
        )?,
    }
    result.peak_rss_bytes = machine::peak_rss_bytes();
    Ok(result)
}

/// Loads the job's model (twice for a local one, timing the cold and the warm load):
/// the runner, its prompts, and the result with the load columns filled in.
fn load(args: &ModelArgs) -> anyhow::Result<(Runner, PromptSet, WorkerResult)> {
    let mut result = WorkerResult {
        model: String::new(),
        path: String::new(),
        file_bytes: 0,
        load_cold_s: 0.0,
        load_warm_s: 0.0,
        peak_rss_bytes: None,
        translate: None,
        summarize: Vec::new(),
    };
    let (runner, prompts) = match common::target(args, true)? {
        Target::Local(resolved) => {
            let start = Instant::now();
            let first = tarjama_loader::load_chat(&resolved, args)?;
            result.load_cold_s = start.elapsed().as_secs_f64();
            drop(first);
            let start = Instant::now();
            let chat = tarjama_loader::load_chat(&resolved, args)?;
            result.load_warm_s = start.elapsed().as_secs_f64();
            result.model = chat.name;
            result.path = resolved.path.display().to_string();
            result.file_bytes = std::fs::metadata(&resolved.path).map_or(0, |m| m.len());
            (
                Runner::Local(Box::new(Serial::new(chat.model))),
                chat.prompts,
            )
        }
        Target::Remote(engine, prompts) => {
            // Nothing loads here: the load columns stay at zero.
            result.model = engine.options().model.clone();
            result.path = engine.options().endpoint.clone();
            (Runner::Remote(engine), prompts)
        }
    };
    Ok((runner, prompts, result))
}

/// What both kinds of pass share: the job, the model's name and prompts.
struct Pass<'a> {
    job: &'a Job,
    name: String,
    prompts: PromptSet,
    normalizer: Option<Normalizer>,
    greedy: SamplingParams,
}

impl Pass<'_> {
    /// Translates the sources one at a time (or N candidates at once), then at each
    /// parallel level on the batched engine.
    fn translate(
        &self,
        runner: Runner,
        sources: &[String],
        result: &mut WorkerResult,
    ) -> anyhow::Result<()> {
        let Pass {
            job,
            name,
            prompts,
            normalizer,
            greedy,
        } = self;
        let (job, name) = (*job, name.as_str());
        let most_parallel = job.parallel_levels.iter().copied().max().unwrap_or(1);
        let sources: Vec<String> = sources
            .iter()
            .map(|s| match &normalizer {
                Some(n) => n.normalize(s).into_owned(),
                None => s.clone(),
            })
            .collect();
        let candidates = job.candidates().n;
        let run = if candidates > 1 {
            // A sentence's candidates are decoded together, so the pass runs on the
            // batched engine; the name carries the setting into the report.
            let (engine, _) = runner.batched(candidates, &job.run)?;
            result.model = format!("{name} --candidates {candidates}");
            translate_run(&Timed::new(&*engine), name, prompts, greedy, &sources, job)?
        } else {
            let timed = Timed::new(runner.single());
            let mut run = translate_run(&timed, name, prompts, greedy, &sources, job)?;
            drop(timed);
            if !job.parallel_levels.is_empty() {
                let n = job.throughput_sentences.clamp(1, sources.len().max(1));
                let (engine, kv_budget) = runner.batched(most_parallel, &job.run)?;
                for &parallel in &job.parallel_levels {
                    let level = throughput(
                        &*engine,
                        prompts,
                        greedy,
                        &sources[..n.min(sources.len())],
                        parallel,
                    )?;
                    run.throughput.push(Throughput {
                        kv_budget_mib: kv_budget.map(|b| b as f64 / (1024.0 * 1024.0)),
                        ..level
                    });
                }
            }
            run
        };
        result.translate = Some(run);
        Ok(())
    }

    /// Summarizes every article with each strategy, and translates them when the
    /// faithfulness check needs it.
    fn summarize(
        &self,
        engine: &dyn ChatEngine,
        articles: &[(String, String)],
        strategies: &[String],
        sentences: usize,
        need_translation: bool,
        result: &mut WorkerResult,
    ) -> anyhow::Result<()> {
        let Pass {
            name,
            prompts,
            normalizer,
            ..
        } = self;
        let name = name.as_str();
        for strategy_name in strategies {
            let strategy = match strategy_name.as_str() {
                "direct" => Strategy::Direct,
                _ => Strategy::Translate,
            };
            let options = SummaryOptions {
                strategy,
                length: SummaryLength::Sentences(sentences),
                sampling: SamplingParams {
                    max_new_tokens: usize::MAX,
                    ..SamplingParams::default()
                },
                normalizer: normalizer.clone(),
                attribute: false,
                glossary: None,
                candidates: Default::default(),
            };
            let mut run = SummarizeRun {
                strategy: strategy_name.clone(),
                summaries: Vec::new(),
                translations: Vec::new(),
                seconds: Vec::new(),
                events: Vec::new(),
            };
            for (i, (article, text)) in articles.iter().enumerate() {
                progress(name, &format!("{strategy_name} summary"), i, articles.len());
                engine.forget()?;
                let report = summarize(engine, prompts, text, &options, &mut |_| {})
                    .with_context(|| format!("summarizing {article}"))?;
                run.summaries.push(report.summary.trim().to_string());
                run.translations.push(report.translation.clone());
                run.seconds.push(report.elapsed.as_secs_f64());
                run.events
                    .extend(report.events.iter().map(|e| format!("{article}: {e}")));
            }
            result.summarize.push(run);
        }
        if need_translation && !strategies.iter().any(|s| s == "translate") {
            // Faithfulness needs an English version of each article; without a
            // reference document the model's own full translation stands in.
            let mut translator = ChatTranslator::new(
                engine,
                "bench".into(),
                prompts.clone(),
                SamplingParams {
                    max_new_tokens: 512,
                    ..SamplingParams::default()
                },
            );
            let mut translations = Vec::new();
            for (i, (_, text)) in articles.iter().enumerate() {
                progress(name, "reference translation", i, articles.len());
                let options = TranslateOptions {
                    normalizer: normalizer.clone(),
                    check_glossary: true,
                };
                let doc = translate_document(&mut translator, text, &options)?;
                translations.push(Some(doc.text()));
            }
            for run in &mut result.summarize {
                run.translations = translations.clone();
            }
        }
        Ok(())
    }
}

fn progress(model: &str, what: &str, i: usize, n: usize) {
    if i == 0 || (i + 1).is_multiple_of(10) || i + 1 == n {
        eprintln!("[{model}] {what} {}/{n}", i + 1);
    }
}

/// One chat request as the bench saw it.
#[derive(Debug, Clone, Copy)]
struct Call {
    /// From the request to its first text.
    ttft: Duration,
    generated: usize,
}

/// A chat engine that notes the timings of every request it passes on.
struct Timed<E> {
    inner: E,
    calls: Mutex<Vec<Call>>,
}

impl<E: ChatEngine> Timed<E> {
    fn new(inner: E) -> Self {
        Timed {
            inner,
            calls: Mutex::new(Vec::new()),
        }
    }

    /// The requests since the last call, in order.
    fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl<E: ChatEngine> ChatEngine for Timed<E> {
    fn chat(
        &self,
        messages: &[Message],
        params: &SamplingParams,
        on_text: &mut dyn FnMut(&str),
    ) -> tarjama_chat::Result<Completion> {
        let start = Instant::now();
        let completion = self.inner.chat(messages, params, on_text)?;
        // Every engine's `decode` is the time after the first text (a remote engine
        // passes its text on only at the end, so a callback could not tell).
        let ttft = start.elapsed().saturating_sub(completion.decode);
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Call {
                ttft,
                generated: completion.generated_tokens,
            });
        Ok(completion)
    }

    fn count_tokens(&self, text: &str) -> tarjama_chat::Result<usize> {
        self.inner.count_tokens(text)
    }

    fn max_context(&self) -> usize {
        self.inner.max_context()
    }

    fn parallel(&self) -> usize {
        self.inner.parallel()
    }

    fn forget(&self) -> tarjama_chat::Result<()> {
        self.inner.forget()
    }
}

/// A translator that sends each sentence alone, as `translate` does with
/// `--batch-sentences 1`: the pipeline's prompt, budget, checks and retries.
fn sentence_translator<E: ChatEngine>(
    engine: E,
    prompts: &PromptSet,
    params: &SamplingParams,
    candidates: Candidates,
) -> ChatTranslator<E> {
    ChatTranslator::new(engine, "bench".into(), prompts.clone(), params.clone())
        .with_chunking(usize::MAX, 1)
        .with_candidates(candidates)
}

/// Translates one sentence in its own request, timing it (retries of a bad answer
/// included, as a user waits for them).
fn translate_one<E: ChatEngine>(
    translator: &mut ChatTranslator<&Timed<E>>,
    timed: &Timed<E>,
    sentence: &str,
) -> anyhow::Result<(String, SentenceTiming)> {
    let source_tokens = timed.count_tokens(sentence)?;
    timed.take();
    let start = Instant::now();
    let mut out = translator.translate(&[sentence])?;
    let latency = start.elapsed();
    translator.take_events();
    let calls = timed.take();
    let timing = SentenceTiming {
        latency_s: latency.as_secs_f64(),
        ttft_s: calls.first().map_or(latency, |c| c.ttft).as_secs_f64(),
        source_tokens,
        target_tokens: calls.iter().map(|c| c.generated).sum(),
    };
    let text = out.pop().map(|t| t.text).unwrap_or_default();
    Ok((text, timing))
}

fn translate_run<E: ChatEngine>(
    timed: &Timed<E>,
    name: &str,
    prompts: &PromptSet,
    params: &SamplingParams,
    sources: &[String],
    job: &Job,
) -> anyhow::Result<TranslateRun> {
    let mut translator = sentence_translator(timed, prompts, params, job.candidates());
    // Warm-up: the first request pays for allocations and cold caches.
    if let Some(first) = sources.first() {
        translate_one(&mut translator, timed, first)?;
    }
    let mut hypotheses = Vec::with_capacity(sources.len());
    let mut pass = Vec::with_capacity(sources.len());
    let mut last: Option<&str> = None;
    for (i, s) in sources.iter().enumerate() {
        progress(name, "translate", i, sources.len());
        // Every request may reuse the cached system prompt, as in real use, but never
        // a whole identical prompt (the warm-up translated the first sentence).
        if last == Some(s.as_str()) || i == 0 {
            timed.forget()?;
        }
        let (text, timing) = translate_one(&mut translator, timed, s)?;
        hypotheses.push(text);
        pass.push(timing);
        last = Some(s);
    }
    let subset = &sources[..job.speed_subset.min(sources.len())];
    let mut repeats = Vec::with_capacity(job.runs);
    for r in 0..job.runs {
        eprintln!(
            "[{name}] speed run {}/{} over {} sentences",
            r + 1,
            job.runs,
            subset.len()
        );
        let mut timings = Vec::with_capacity(subset.len());
        for s in subset {
            if last == Some(s.as_str()) {
                timed.forget()?;
            }
            timings.push(translate_one(&mut translator, timed, s)?.1);
            last = Some(s);
        }
        repeats.push(timings);
    }
    Ok(TranslateRun {
        hypotheses,
        pass,
        repeats,
        throughput: Vec::new(),
    })
}

/// Translates `sources` with `parallel` requests in flight, each sentence alone as
/// [`translate_one`] sends it, and times the whole.
fn throughput(
    engine: &dyn ChatEngine,
    prompts: &PromptSet,
    params: &SamplingParams,
    sources: &[String],
    parallel: usize,
) -> anyhow::Result<Throughput> {
    eprintln!(
        "[throughput] {} sentences, {parallel} in flight",
        sources.len()
    );
    let timed = Timed::new(engine);
    let start = Instant::now();
    run_concurrently(sources.len(), parallel.max(1), |i| {
        sentence_translator(&timed, prompts, params, Candidates::default())
            .translate(&[sources[i].as_str()])
    })
    .into_iter()
    .collect::<tarjama_chat::Result<Vec<_>>>()?;
    let seconds = start.elapsed().as_secs_f64();
    let generated: usize = timed.take().iter().map(|c| c.generated).sum();
    Ok(Throughput {
        parallel,
        sentences: sources.len(),
        seconds,
        sentences_per_s: sources.len() as f64 / seconds,
        tokens_per_s: generated as f64 / seconds,
        kv_budget_mib: None,
    })
}
