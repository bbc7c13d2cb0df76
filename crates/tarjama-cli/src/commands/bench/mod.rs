//! `tarjama bench`: the same sentences through several models; quality (BLEU, chrF++ or
//! ROUGE), speed and peak memory side by side, as a table, JSON or an HTML page.
//!
//! Each model is measured in a child process of its own (this binary re-executed with
//! the hidden `--worker JOB` flag), so its peak memory is not inflated by the models
//! measured before it, and its "cold" load is the first one in a fresh process.
//!
//! The pieces: the data a benchmark runs on (`data`), the worker that measures one model
//! in its own process (`worker`), the reports (`report`) and their statistics (`stats`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Context;

pub mod data;
pub mod report;
pub mod stats;
pub mod worker;

use self::data::Article;
use self::report::{BenchReport, Dataset, Failure, Settings};
use self::worker::{Job, TaskJob, WorkerResult};
use crate::exit;
use crate::machine::{self, Machine};

/// Flags of `tarjama bench`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  tarjama bench --model qwen2.5-coder-0.5b-instruct --model qwen2.5-coder-1.5b-instruct
  tarjama bench -m gemma-3-270m --src ar.txt --ref en.txt --limit 20 --json
  tarjama bench -m qwen2.5-coder-0.5b-instruct --task summarize --limit 5 --html report.html")]
pub struct Args {
    /// Models to compare (repeatable): registry names, .gguf files or hub repo ids.
    /// Default: the registry's default model.
    #[arg(short, long = "model")]
    pub models: Vec<String>,
    /// `translate`: sentence translation quality and speed; `summarize`: article
    /// summaries.
    #[arg(long, value_enum, default_value_t = Task::Translate)]
    pub task: Task,
    /// Arabic sources, one sentence a line (with --ref).
    #[arg(long, requires = "reference", conflicts_with = "flores")]
    pub src: Option<PathBuf>,
    /// English references, line-aligned with --src.
    #[arg(long = "ref", requires = "src")]
    pub reference: Option<PathBuf>,
    /// FLORES-200 folder (arb_Arab.devtest, eng_Latn.devtest, metadata_devtest.tsv).
    /// Default: $TARJAMA_FLORES, else tests/data/flores200 (the repository's copy, from
    /// its root).
    #[arg(long)]
    pub flores: Option<PathBuf>,
    /// Summarize: a folder of Arabic .txt articles instead of FLORES documents.
    #[arg(long, conflicts_with = "flores")]
    pub articles: Option<PathBuf>,
    /// Summarize: reference summaries, same file names as --articles.
    #[arg(long, requires = "articles")]
    pub refs: Option<PathBuf>,
    /// Summarize: `direct`, `translate`, or `both` compared.
    #[arg(long, value_enum, default_value_t = StrategyArg::Both)]
    pub strategy: StrategyArg,
    /// Summarize: summary length in sentences.
    #[arg(long, default_value_t = 3)]
    pub sentences: usize,
    /// Use the first N sentences (translate; default 100) or articles (summarize;
    /// default 10); 0 for all.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Timed repetitions over the speed subset, after the full pass.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Sentences in the speed subset (the first ones).
    #[arg(long, default_value_t = 5)]
    pub speed_subset: usize,
    /// Translate: also time the first --throughput-sentences with this many requests in
    /// flight at once on the batched engine (comma-separated levels; 0: skip).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1,4,8,16",
        value_name = "N,N,..."
    )]
    pub parallel_levels: Vec<usize>,
    /// Translate: candidates per sentence, each level measured as a model of its own
    /// (a row of the table, a point of the HTML plot): the greedy answer and N-1 samples,
    /// the minimum-Bayes-risk choice kept, as `translate --candidates` does. Levels above
    /// 1 skip the throughput runs.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1",
        value_name = "N,N,..."
    )]
    pub candidates: Vec<usize>,
    #[command(flatten)]
    pub candidate_sampling: crate::commands::common::CandidateSampling,
    /// Translate: sentences in each throughput run.
    #[arg(long, default_value_t = 32)]
    pub throughput_sentences: usize,
    /// Cap on generated tokens per sentence (per summary for --task summarize).
    #[arg(long = "max-tokens", default_value_t = 256)]
    pub max_tokens: usize,
    /// Where and how the models run: the same flags as `translate` and `summarize`
    /// (--endpoint measures a model on a server).
    #[command(flatten)]
    pub run: tarjama_loader::RunArgs,
    /// Normalization of the Arabic before it reaches the model: mt, search or none.
    #[arg(long, default_value = "mt")]
    pub normalize: String,
    /// Print the report as JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also write an HTML report with a quality-vs-speed plot to this file.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Internal: measure one model as described by this job file.
    #[arg(long, hide = true)]
    pub worker: Option<PathBuf>,
}

/// What to benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Task {
    /// Sentence translation.
    Translate,
    /// Article summaries.
    Summarize,
}

/// Summary strategies to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StrategyArg {
    /// Arabic in, English summary out.
    Direct,
    /// Translate, then summarize.
    Translate,
    /// Both, compared.
    Both,
}

/// Runs `tarjama bench`.
pub fn run(args: Args) -> anyhow::Result<i32> {
    if let Some(job) = &args.worker {
        return worker::run(job);
    }
    crate::commands::common::normalizer(&args.normalize)?;
    let limit = match (args.limit, args.task) {
        (Some(0), _) => None,
        (Some(n), _) => Some(n),
        (None, Task::Translate) => Some(100),
        (None, Task::Summarize) => Some(10),
    };
    let mut machine = Machine::detect(args.run.threads);
    let (dataset, references, articles, task) = prepare(&args, limit)?;
    let models: Vec<String> = if args.models.is_empty() && args.run.endpoint.is_some() {
        anyhow::bail!("--endpoint needs --model: the model(s) as the server names them");
    } else if args.models.is_empty() {
        // The registry's default model, found the same way the other commands find it.
        let resolved = tarjama_loader::resolve_model(
            &tarjama_loader::ModelArgs {
                model: None,
                run: args.run.clone(),
            },
            &mut crate::progress::Reporter::new(false),
        )?;
        vec![resolved.path.display().to_string()]
    } else {
        args.models.clone()
    };

    let dir = tempfile::tempdir().context("creating a temporary folder for the workers")?;
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    let levels = candidate_levels(&args)?;
    let jobs: Vec<(&String, usize)> = models
        .iter()
        .flat_map(|m| levels.iter().map(move |&n| (m, n)))
        .collect();
    for (i, &(model, candidates)) in jobs.iter().enumerate() {
        let what = if candidates > 1 {
            format!("{model} --candidates {candidates}")
        } else {
            model.clone()
        };
        eprintln!("bench: run {}/{}: {what}", i + 1, jobs.len());
        let job = Job {
            model: model.clone(),
            run: args.run.clone(),
            max_tokens: args.max_tokens,
            runs: args.runs,
            speed_subset: args.speed_subset.max(1),
            normalize: args.normalize.clone(),
            parallel_levels: args
                .parallel_levels
                .iter()
                .copied()
                .filter(|&n| n > 0 && candidates == 1)
                .collect(),
            throughput_sentences: args.throughput_sentences,
            candidates,
            candidate_sampling: args.candidate_sampling.clone(),
            task: task.clone(),
        };
        let outcome = run_worker(&job, &dir.path().join(format!("job-{i}.json")))
            .and_then(|raw| report::model_report(raw, &references, &articles));
        match outcome {
            Ok(r) => reports.push(r),
            Err(e) => {
                eprintln!("error: {what}: {e:#}");
                failures.push(Failure {
                    model: what,
                    error: format!("{e:#}"),
                });
            }
        }
    }
    machine.load_end = machine::load_average();

    let report = BenchReport {
        schema: report::SCHEMA,
        task: match args.task {
            Task::Translate => "translate",
            Task::Summarize => "summarize",
        }
        .into(),
        settings: Settings {
            runs: args.runs,
            speed_subset: args.speed_subset.max(1).min(dataset.items),
            max_tokens: args.max_tokens,
            decoding: decoding(&args),
        },
        dataset,
        machine,
        models: reports,
        failures,
        notes: notes(&args),
    };
    let mut stdout = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut stdout, &report)?;
        writeln!(stdout)?;
    } else {
        write!(stdout, "{}", report::table(&report))?;
    }
    if let Some(path) = &args.html {
        std::fs::write(path, report::html(&report))
            .with_context(|| format!("{}: cannot write the HTML report", path.display()))?;
        eprintln!("bench: wrote {}", path.display());
    }
    Ok(
        match (report.models.is_empty(), report.failures.is_empty()) {
            (true, _) => exit::FAILURE,
            (false, false) => exit::SOME_FAILED,
            (false, true) => exit::SUCCESS,
        },
    )
}

/// How the runs decode: greedy, and for `--candidates` rows the sampling of the others.
fn decoding(args: &Args) -> String {
    if args.candidates.iter().all(|&n| n <= 1) {
        return "greedy".into();
    }
    let c = args.candidate_sampling.candidates(2);
    format!(
        "greedy; --candidates rows: the greedy answer and samples at temperature {}{}, \
         minimum Bayes risk with sentence chrF++",
        c.temperature,
        c.epsilon
            .map(|e| format!(", epsilon {e}"))
            .unwrap_or_default()
    )
}

/// The `--candidates` levels, in order and each once; above 1 only for translation.
fn candidate_levels(args: &Args) -> anyhow::Result<Vec<usize>> {
    let mut levels: Vec<usize> = Vec::new();
    for &n in &args.candidates {
        if n == 0 {
            anyhow::bail!(
                "--candidates: 0 is not a number of candidates (1 is the greedy answer alone)"
            );
        }
        if !levels.contains(&n) {
            levels.push(n);
        }
    }
    if args.task == Task::Summarize && levels.iter().any(|&n| n > 1) {
        anyhow::bail!("--candidates above 1 is measured for --task translate only");
    }
    Ok(levels)
}

/// Reads the data: the dataset description, the reference translations (translate),
/// the articles (summarize) and the workers' task.
fn prepare(
    args: &Args,
    limit: Option<usize>,
) -> anyhow::Result<(Dataset, Vec<String>, Vec<Article>, TaskJob)> {
    match args.task {
        Task::Translate => {
            let set = match (&args.src, &args.reference) {
                (Some(src), Some(reference)) => data::parallel_files(src, reference, limit)?,
                _ => data::flores_sentences(&data::flores_dir(args.flores.as_deref())?, limit)?,
            };
            let dataset = Dataset {
                name: set.name.clone(),
                items: set.sources.len(),
                available: set.available,
            };
            let task = TaskJob::Translate {
                sources: set.sources,
            };
            Ok((dataset, set.references, Vec::new(), task))
        }
        Task::Summarize => {
            let (name, articles, available) = match &args.articles {
                Some(dir) => {
                    let all = data::article_folder(dir, args.refs.as_deref(), None)?;
                    let n = all.len();
                    (dir.display().to_string(), truncate(all, limit), n)
                }
                None => {
                    let dir = data::flores_dir(args.flores.as_deref())?;
                    let all = data::flores_documents(&dir, None)?;
                    let n = all.len();
                    (
                        format!("FLORES-200 devtest documents ({})", dir.display()),
                        truncate(all, limit),
                        n,
                    )
                }
            };
            let strategies: Vec<String> = match args.strategy {
                StrategyArg::Direct => vec!["direct".into()],
                StrategyArg::Translate => vec!["translate".into()],
                StrategyArg::Both => vec!["direct".into(), "translate".into()],
            };
            let task = TaskJob::Summarize {
                articles: articles
                    .iter()
                    .map(|a| (a.name.clone(), a.text.clone()))
                    .collect(),
                strategies,
                sentences: args.sentences.max(1),
                need_translation: articles.iter().any(|a| a.english.is_none()),
            };
            let dataset = Dataset {
                name,
                items: articles.len(),
                available,
            };
            Ok((dataset, Vec::new(), articles, task))
        }
    }
}

fn truncate<T>(mut v: Vec<T>, limit: Option<usize>) -> Vec<T> {
    if let Some(n) = limit {
        v.truncate(n);
    }
    v
}

/// Runs one model's job in a child process and reads its JSON line.
fn run_worker(job: &Job, job_path: &Path) -> anyhow::Result<WorkerResult> {
    std::fs::write(job_path, serde_json::to_vec(job)?)
        .with_context(|| format!("{}: cannot write the job", job_path.display()))?;
    let exe = std::env::current_exe().context("finding this program to run the worker")?;
    let output = Command::new(&exe)
        .arg("bench")
        .arg("--worker")
        .arg(job_path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("starting {}", exe.display()))?;
    if !output.status.success() {
        anyhow::bail!(
            "the worker measuring {} failed ({})",
            job.model,
            output.status
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .context("the worker printed no result")?;
    serde_json::from_str(line).context("the worker's result is not valid JSON")
}

fn notes(args: &Args) -> Vec<String> {
    let mut notes = vec![
        "one sentence per request, greedy, with translate's prompt and checks (an answer \
         still in Arabic, empty or looping is asked for once more); `--candidates N` rows \
         decode N answers per sentence together and keep the MBR choice"
            .to_string(),
        format!(
            "quality is over every sentence of one pass; speed figures are medians over that \
             pass and {} repeated run(s) over the first {} sentence(s); latency percentiles \
             pool all timed sentences",
            args.runs,
            args.speed_subset.max(1)
        ),
        "cold load = first load in a fresh process (the OS file cache may already hold the \
         file, so it is not a cold-disk load); warm load = second load in the same process"
            .to_string(),
        "peak RSS is the worker process's VmHWM: both loads plus the run".to_string(),
        "speed depends on everything else running on the machine: see the load averages"
            .to_string(),
    ];
    if args.task == Task::Summarize {
        notes.push(
            "entity faithfulness = share of capitalized, not sentence-initial words of the \
             summaries found in the English document (FLORES reference, else the model's \
             own translation)"
                .into(),
        );
    }
    notes
}
