//! One model's measurements, made in a process of its own (`tarjama bench --worker JOB`):
//! load it twice (cold, then warm), translate every sentence once with greedy decoding
//! and time each one, repeat a small subset `runs` times for steadier speed figures, and
//! summarize articles when asked. The result is one JSON line on stdout.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tarjama_models::chat::{ChatEngine, Message};
use tarjama_models::gguf::{ChatModel, Engine, EngineOptions};
use tarjama_models::sampling::SamplingParams;
use tarjama_pipeline::prompts::{fill, PromptSet};
use tarjama_pipeline::translate::clean_answer;
use tarjama_pipeline::{run_concurrently, summarize, Strategy, SummaryLength, SummaryOptions};

use super::machine;
use crate::commands::common::{self, ModelArgs};

/// What the parent asks a worker to do.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    /// The model spec (registry name, file, ...).
    pub model: String,
    /// Context window cap.
    pub max_context: usize,
    /// CPU threads.
    pub threads: Option<usize>,
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
    /// The work.
    pub task: TaskJob,
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
    common::set_threads(job.threads);
    let result = measure(&job)?;
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer(&mut stdout, &result)?;
    writeln!(stdout)?;
    Ok(crate::exit::SUCCESS)
}

fn measure(job: &Job) -> anyhow::Result<WorkerResult> {
    let args = ModelArgs {
        model: Some(job.model.clone()),
        max_context: job.max_context,
        threads: job.threads,
        parallel: 1,
        kv_budget: None,
    };
    let resolved = common::resolve_model(&args, true)?;
    let start = Instant::now();
    let first = common::load_chat(&resolved, &args)?;
    let load_cold = start.elapsed();
    drop(first);
    let start = Instant::now();
    let mut chat = common::load_chat(&resolved, &args)?;
    let load_warm = start.elapsed();
    let normalizer = common::normalizer(&job.normalize)?;

    let mut result = WorkerResult {
        model: chat.name.clone(),
        path: resolved.path.display().to_string(),
        file_bytes: std::fs::metadata(&resolved.path).map_or(0, |m| m.len()),
        load_cold_s: load_cold.as_secs_f64(),
        load_warm_s: load_warm.as_secs_f64(),
        peak_rss_bytes: None,
        translate: None,
        summarize: Vec::new(),
    };
    match &job.task {
        TaskJob::Translate { sources } => {
            let sources: Vec<String> = sources
                .iter()
                .map(|s| match &normalizer {
                    Some(n) => n.normalize(s).into_owned(),
                    None => s.clone(),
                })
                .collect();
            let mut run = translate_run(&mut chat.model, &chat.prompts, &sources, job)?;
            if !job.parallel_levels.is_empty() {
                let n = job.throughput_sentences.clamp(1, sources.len().max(1));
                let options = EngineOptions {
                    parallel: job.parallel_levels.iter().copied().max().unwrap_or(1),
                    ..EngineOptions::default()
                };
                let engine = Engine::new(chat.model, options)?;
                for &parallel in &job.parallel_levels {
                    run.throughput.push(throughput(
                        &engine,
                        &chat.prompts,
                        &sources[..n.min(sources.len())],
                        parallel,
                        job.max_tokens,
                    )?);
                }
            }
            result.translate = Some(run);
        }
        TaskJob::Summarize {
            articles,
            strategies,
            sentences,
            need_translation,
        } => {
            for name in strategies {
                let strategy = match name.as_str() {
                    "direct" => Strategy::Direct,
                    _ => Strategy::Translate,
                };
                let options = SummaryOptions {
                    strategy,
                    length: SummaryLength::Sentences(*sentences),
                    sampling: SamplingParams::default(),
                    normalizer: normalizer.clone(),
                    attribute: false,
                };
                let mut run = SummarizeRun {
                    strategy: name.clone(),
                    summaries: Vec::new(),
                    translations: Vec::new(),
                    seconds: Vec::new(),
                    events: Vec::new(),
                };
                for (i, (article, text)) in articles.iter().enumerate() {
                    progress(&chat.name, &format!("{name} summary"), i, articles.len());
                    chat.model.reset()?;
                    let model = std::sync::Mutex::new(&mut chat.model);
                    let report = summarize(&model, &chat.prompts, text, &options, &mut |_| {})
                        .with_context(|| format!("summarizing {article}"))?;
                    run.summaries.push(report.summary.trim().to_string());
                    run.translations.push(report.translation.clone());
                    run.seconds.push(report.elapsed.as_secs_f64());
                    run.events
                        .extend(report.events.iter().map(|e| format!("{article}: {e}")));
                }
                result.summarize.push(run);
            }
            if *need_translation && !strategies.iter().any(|s| s == "translate") {
                // Faithfulness needs an English version of each article; without a
                // reference document the model's own full translation stands in.
                let mut translator = tarjama_pipeline::ChatTranslator::new(
                    std::sync::Mutex::new(&mut chat.model),
                    "bench".into(),
                    chat.prompts.clone(),
                    SamplingParams {
                        max_new_tokens: 512,
                        ..SamplingParams::default()
                    },
                );
                let mut translations = Vec::new();
                for (i, (_, text)) in articles.iter().enumerate() {
                    progress(&chat.name, "reference translation", i, articles.len());
                    let doc = tarjama_pipeline::translate_document(
                        &mut translator,
                        text,
                        &tarjama_pipeline::TranslateOptions {
                            normalizer: normalizer.clone(),
                        },
                    )?;
                    translations.push(Some(doc.text()));
                }
                for run in &mut result.summarize {
                    run.translations = translations.clone();
                }
            }
        }
    }
    result.peak_rss_bytes = machine::peak_rss_bytes();
    Ok(result)
}

fn progress(model: &str, what: &str, i: usize, n: usize) {
    if i == 0 || (i + 1).is_multiple_of(10) || i + 1 == n {
        eprintln!("[{model}] {what} {}/{n}", i + 1);
    }
}

/// Translates one sentence in its own request (batch 1), timing it.
fn translate_one(
    model: &mut ChatModel,
    prompts: &PromptSet,
    sentence: &str,
    max_tokens: usize,
) -> anyhow::Result<(String, SentenceTiming)> {
    let source_tokens = model.count_tokens(sentence)?;
    let (messages, params) = {
        let engine = std::sync::Mutex::new(&mut *model);
        translate_request(&engine, prompts, sentence, max_tokens)?
    };
    let start = Instant::now();
    let mut first: Option<Duration> = None;
    let completion = model.chat(&messages, &params, &mut |_| {
        first.get_or_insert_with(|| start.elapsed());
    })?;
    let latency = start.elapsed();
    let timing = SentenceTiming {
        latency_s: latency.as_secs_f64(),
        // A completion with no text at all has its first token at the end.
        ttft_s: first.unwrap_or(completion.prefill).as_secs_f64(),
        source_tokens,
        target_tokens: completion.generated_tokens,
    };
    Ok((clean_answer(&completion.text), timing))
}

fn translate_run(
    model: &mut ChatModel,
    prompts: &PromptSet,
    sources: &[String],
    job: &Job,
) -> anyhow::Result<TranslateRun> {
    let name = model
        .path()
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Warm-up: the first request pays for allocations and cold caches.
    if let Some(first) = sources.first() {
        translate_one(model, prompts, first, job.max_tokens.min(16))?;
    }
    let mut hypotheses = Vec::with_capacity(sources.len());
    let mut pass = Vec::with_capacity(sources.len());
    let mut last: Option<&str> = None;
    for (i, s) in sources.iter().enumerate() {
        progress(&name, "translate", i, sources.len());
        // Every request may reuse the cached system prompt, as in real use, but never
        // a whole identical prompt (the warm-up translated the first sentence).
        if last == Some(s.as_str()) || i == 0 {
            model.reset()?;
        }
        let (text, timing) = translate_one(model, prompts, s, job.max_tokens)?;
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
                model.reset()?;
            }
            timings.push(translate_one(model, prompts, s, job.max_tokens)?.1);
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

/// Translates `sources` with `parallel` requests in flight, each as [`translate_one`]
/// asks it, and times the whole.
fn throughput(
    engine: &Engine,
    prompts: &PromptSet,
    sources: &[String],
    parallel: usize,
    max_tokens: usize,
) -> anyhow::Result<Throughput> {
    eprintln!(
        "[throughput] {} sentences, {parallel} in flight",
        sources.len()
    );
    let start = Instant::now();
    let generated = run_concurrently(sources.len(), parallel.max(1), |i| {
        let (messages, params) = translate_request(engine, prompts, &sources[i], max_tokens)?;
        Ok::<_, anyhow::Error>(
            engine
                .chat(&messages, &params, &mut |_| {})?
                .generated_tokens,
        )
    })
    .into_iter()
    .sum::<anyhow::Result<usize>>()?;
    let seconds = start.elapsed().as_secs_f64();
    Ok(Throughput {
        parallel,
        sentences: sources.len(),
        seconds,
        sentences_per_s: sources.len() as f64 / seconds,
        tokens_per_s: generated as f64 / seconds,
    })
}

/// The messages and settings of one sentence's request, as the translation pipeline
/// sends a sentence alone.
fn translate_request(
    model: &dyn ChatEngine,
    prompts: &PromptSet,
    sentence: &str,
    max_tokens: usize,
) -> anyhow::Result<(Vec<Message>, SamplingParams)> {
    let source_tokens = model.count_tokens(sentence)?;
    // The same output budget the translation pipeline gives a single sentence.
    let budget = (source_tokens * 2 + 24).min(max_tokens);
    let user = fill(&prompts.translate, &[("text", sentence)]);
    let messages = vec![
        Message::new("system", &prompts.system),
        Message::new("user", &user),
    ];
    let params = SamplingParams {
        max_new_tokens: budget,
        ..SamplingParams::default()
    };
    Ok((messages, params))
}
