//! Flags and helpers shared by the commands that run a model.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use tarjama_models::chat::ChatEngine;
use tarjama_models::gguf::{ChatModel, Engine, EngineOptions, GgufTokenizer, LoadOptions};
use tarjama_models::registry::Registry;
use tarjama_models::resolve::{self, ModelKind, Resolved};
use tarjama_models::sampling::SamplingParams;
use tarjama_models::seq2seq::{
    GenerateOptions, LoadOptions as Seq2SeqLoadOptions, Seq2SeqTranslator,
};
use tarjama_pipeline::prompts::PromptSet;
use tarjama_pipeline::{Candidates, ChatTranslator, Glossary, Seq2SeqAdapter, Translator};
use tarjama_remote::{RemoteEngine, RemoteOptions};
use tarjama_text::{Normalizer, Profile};

use crate::progress::Reporter;

/// Which model to run and how.
#[derive(Debug, Clone, clap::Args)]
pub struct ModelArgs {
    /// A registry name (`tarjama models list`), a .gguf file, a model folder, or a hub repo
    /// id (`owner/name` or `owner/name:FILE.gguf`). Default: the registry's default model,
    /// downloaded on first use. With --endpoint: the model as the server names it.
    #[arg(short, long, env = "TARJAMA_MODEL")]
    pub model: Option<String>,
    /// Where and how it runs.
    #[command(flatten)]
    pub run: RunArgs,
}

/// How a model runs, whichever it is: shared by every command that runs one, `bench`
/// included (which names its models with a repeatable `-m`).
#[derive(Debug, Clone, clap::Args, serde::Serialize, serde::Deserialize)]
pub struct RunArgs {
    /// Context window cap in tokens (memory grows with it). With --endpoint: the server's
    /// context window (read from the server when it says it, as vLLM does).
    #[arg(long, default_value_t = 8192)]
    pub max_context: usize,
    /// Run the model on an OpenAI-compatible server instead of here: its base URL, such as
    /// http://127.0.0.1:8000/v1 (vLLM, llama.cpp's llama-server, TGI, Ollama, LM Studio).
    #[arg(
        long,
        env = "TARJAMA_ENDPOINT",
        value_name = "URL",
        help_heading = "Remote engine"
    )]
    pub endpoint: Option<String>,
    /// The environment variable that holds the server's API key (the key itself never goes
    /// on the command line).
    #[arg(
        long,
        value_name = "VAR",
        requires = "endpoint",
        help_heading = "Remote engine"
    )]
    pub api_key_env: Option<String>,
    /// Seconds one request to the server may take, answer included, before it is retried.
    #[arg(
        long,
        default_value_t = 600.0,
        value_name = "SECS",
        help_heading = "Remote engine"
    )]
    pub timeout: f64,
    /// Retries of a request that failed in a way that can pass (connection, timeout, 429,
    /// 5xx, an answer cut short), with exponential backoff.
    #[arg(
        long,
        default_value_t = 6,
        value_name = "N",
        help_heading = "Remote engine"
    )]
    pub retries: u32,
    /// CPU threads (default: all cores).
    #[arg(long, short = 't')]
    pub threads: Option<usize>,
    /// Requests a chat model works on at once, decoded together in one batch (1: one
    /// after the other). A decoding step reads every weight once whatever the batch, so
    /// on a CPU 8 sequences cost little more time per step than one. Default: 4 per
    /// thread, between 4 and 16, fewer if the KV budget cannot hold that many requests
    /// of 1024 tokens (8 on 2 cores). With --endpoint: the requests in flight to the
    /// server (default 8).
    #[arg(long, value_name = "N")]
    pub parallel: Option<usize>,
    /// Memory for the keys and values of the requests in flight, in MiB; requests wait
    /// rather than go over it. Default: a quarter of the available memory, at most 4096.
    #[arg(long, value_name = "MIB")]
    pub kv_budget: Option<usize>,
}

impl RunArgs {
    /// The engine settings these flags ask for.
    pub fn engine_options(&self) -> EngineOptions {
        let budget = match self.kv_budget {
            Some(mib) => mib.max(1) << 20,
            None => (available_memory().unwrap_or(8 << 30) / 4).clamp(256 << 20, 4 << 30),
        };
        EngineOptions {
            // 0: the engine chooses from the model, the budget and the threads.
            parallel: self.parallel.map_or(0, |n| n.max(1)),
            kv_budget: budget,
            ..EngineOptions::default()
        }
    }
}

/// Bytes of memory available to new work (Linux: `MemAvailable`).
/// Requests in flight to a server when --parallel is not given.
const REMOTE_PARALLEL: usize = 8;

fn available_memory() -> Option<usize> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Several candidates per request, chosen among by minimum Bayes risk.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Quality")]
pub struct CandidateArgs {
    /// Candidates per request to a chat model: the greedy answer and N-1 samples, decoded
    /// together in one batch; each sentence keeps the candidate that agrees most with the
    /// others (minimum Bayes risk with sentence chrF++). Candidates still in Arabic, empty
    /// or looping are dropped first. About N times the decoding work. Encoder-decoders:
    /// the beam's N best hypotheses (at least N beams) are chosen among. Summaries: the
    /// candidate with the best agreement plus faithfulness wins (its names and numbers
    /// checked against a translation of the article, made for that).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub candidates: usize,
    #[command(flatten)]
    pub sampling: CandidateSampling,
}

impl CandidateArgs {
    /// The pipeline's candidate settings.
    pub fn candidates(&self) -> Candidates {
        self.sampling.candidates(self.candidates)
    }
}

/// How the candidates after the greedy one are sampled (`translate`, `summarize` and
/// `bench` share these flags).
#[derive(Debug, Clone, clap::Args, serde::Serialize, serde::Deserialize)]
#[command(next_help_heading = "Quality")]
pub struct CandidateSampling {
    /// Temperature of the sampled candidates.
    #[arg(long, default_value_t = Candidates::default().temperature, value_name = "T")]
    pub candidate_temperature: f64,
    /// Epsilon sampling of the candidates: tokens less likely than this are never drawn
    /// (0: no cut).
    #[arg(long, default_value_t = Candidates::default().epsilon.unwrap_or(0.0), value_name = "E")]
    pub candidate_epsilon: f64,
}

impl CandidateSampling {
    /// The pipeline's settings for `n` candidates sampled this way.
    pub fn candidates(&self, n: usize) -> Candidates {
        Candidates {
            n: n.max(1),
            temperature: self.candidate_temperature,
            epsilon: (self.candidate_epsilon > 0.0).then_some(self.candidate_epsilon),
        }
    }
}

/// A glossary file.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Quality")]
pub struct GlossaryArgs {
    /// How names and terms are written in English: a TSV or CSV file of `Arabic term,
    /// English term` lines (# comments and a header line allowed). Chat models: the
    /// entries found in a request go into its prompt, and a sentence that still misses a
    /// term is asked for once more. Encoder-decoders: a sentence with terms is decoded by
    /// constrained beam search, which writes them. A term of the source whose English
    /// the output lacks is reported.
    #[arg(long, value_name = "FILE")]
    pub glossary: Option<PathBuf>,
}

impl GlossaryArgs {
    /// The glossary, read and checked, if one was given.
    pub fn load(&self) -> anyhow::Result<Option<Arc<Glossary>>> {
        match &self.glossary {
            None => Ok(None),
            Some(path) => Ok(Some(Arc::new(Glossary::load(path)?))),
        }
    }
}

/// How a chat model is asked to translate: request sizes, candidates, glossary.
#[derive(Debug, Clone, Default)]
pub struct ChatChoices {
    /// Source tokens per request.
    pub batch_tokens: usize,
    /// Sentences per request.
    pub batch_sentences: usize,
    /// Candidates per request.
    pub candidates: Candidates,
    /// Glossary hints and preference.
    pub glossary: Option<Arc<Glossary>>,
    /// Worked examples shown before each request.
    pub examples: usize,
}

/// How tokens are chosen.
#[derive(Debug, Clone, clap::Args)]
pub struct SamplingArgs {
    /// Sampling temperature; 0 is greedy and deterministic.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f64,
    /// Sample among the k most likely tokens only.
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Sample among the most likely tokens up to this total probability.
    #[arg(long)]
    pub top_p: Option<f64>,
    /// Random seed for sampling.
    #[arg(long, default_value_t = 299_792_458)]
    pub seed: u64,
    /// Penalty on recently used tokens (1 = none).
    #[arg(long, default_value_t = 1.0)]
    pub repetition_penalty: f32,
    /// Cap on generated tokens per request.
    #[arg(long = "max-tokens")]
    pub max_tokens: Option<usize>,
    /// Stop generating at this string (repeatable).
    #[arg(long = "stop")]
    pub stop: Vec<String>,
}

impl SamplingArgs {
    /// The sampling parameters, with `default_max` when `--max-tokens` is absent.
    pub fn params(&self, default_max: usize) -> SamplingParams {
        SamplingParams {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            seed: self.seed,
            repetition_penalty: self.repetition_penalty,
            max_new_tokens: self.max_tokens.unwrap_or(default_max),
            stop: self.stop.clone(),
            ..SamplingParams::default()
        }
    }
}

/// Sets the size of the thread pools the kernels run on. Must run before any model work.
pub fn set_threads(threads: Option<usize>) {
    if let Some(n) = threads {
        // Read on first use by candle's own pool (quantized and element-wise ops, and
        // tarjama's GGUF kernels) unless CANDLE_NUM_THREADS is set, and by rayon's global
        // pool (f32 matmuls through gemm, the encoder-decoder's kernels).
        std::env::set_var("RAYON_NUM_THREADS", n.max(1).to_string());
    }
}

/// `--normalize mt|search|none`.
pub fn normalizer(profile: &str) -> anyhow::Result<Option<Normalizer>> {
    let profile: Profile = profile
        .parse()
        .with_context(|| format!("--normalize {profile}"))?;
    Ok(match profile {
        Profile::None => None,
        p => Some(Normalizer::new(p)),
    })
}

/// Where the model runs: here, found by the resolver, or on a server.
pub enum Target {
    /// A model file or folder on this machine.
    Local(Box<Resolved>),
    /// A model on an OpenAI-compatible server, and the prompts to send it.
    Remote(Arc<RemoteEngine>, PromptSet),
}

impl Target {
    /// The model's name for reports.
    pub fn name(&self) -> String {
        match self {
            Target::Local(r) => r.name.clone(),
            Target::Remote(engine, _) => engine.options().model.clone(),
        }
    }

    /// Whether it is a chat model (a remote one always is).
    pub fn is_chat(&self) -> bool {
        match self {
            Target::Local(r) => r.kind == ModelKind::Gguf,
            Target::Remote(..) => true,
        }
    }

    /// The server's base URL, for a remote model.
    pub fn endpoint(&self) -> Option<&str> {
        match self {
            Target::Local(_) => None,
            Target::Remote(engine, _) => Some(&engine.options().endpoint),
        }
    }
}

/// Finds the model: connects to the server with --endpoint, else resolves a local model,
/// downloading a registry model on first use.
pub fn target(args: &ModelArgs, quiet: bool) -> anyhow::Result<Target> {
    let run = &args.run;
    let Some(endpoint) = &run.endpoint else {
        return Ok(Target::Local(Box::new(resolve_model(args, quiet)?)));
    };
    let model = args.model.clone().context(
        "--endpoint needs --model: the model as the server names it (its /v1/models list)",
    )?;
    let api_key = match &run.api_key_env {
        Some(var) => Some(
            std::env::var(var)
                .ok()
                .filter(|k| !k.is_empty())
                .with_context(|| format!("--api-key-env {var}: the variable is not set"))?,
        ),
        None => None,
    };
    if !run.timeout.is_finite() || run.timeout <= 0.0 {
        anyhow::bail!(
            "--timeout {}: must be a positive number of seconds",
            run.timeout
        );
    }
    // A registry model of the same name lends its prompts, and its tokenizer when it is
    // downloaded (for servers without a tokenizer route).
    let registry = Registry::load()?;
    let manifest = registry.get(&model);
    let prompts = manifest.map_or_else(PromptSet::default, |m| {
        PromptSet::with_overrides(&m.prompts)
    });
    let local = manifest
        .map(|m| m.local_path())
        .filter(|path| path.is_file())
        .and_then(|path| local_tokenizer(&path));
    let options = RemoteOptions {
        endpoint: endpoint.clone(),
        model,
        api_key,
        parallel: run.parallel.unwrap_or(REMOTE_PARALLEL).max(1),
        timeout: std::time::Duration::from_secs_f64(run.timeout),
        policy: tarjama_remote::retry::Policy {
            retries: run.retries,
            ..Default::default()
        },
        max_context: run.max_context,
    };
    let engine = RemoteEngine::connect(options, local)?;
    if !quiet {
        eprintln!(
            "note: {} at {}; token counts from {}",
            engine.options().model,
            engine.options().endpoint,
            engine.token_counting().describe()
        );
    }
    Ok(Target::Remote(Arc::new(engine), prompts))
}

/// The tokenizer stored in a GGUF file, without its weights.
fn local_tokenizer(path: &Path) -> Option<GgufTokenizer> {
    let mut file = std::fs::File::open(path).ok()?;
    let content = candle_core::quantized::gguf_file::Content::read(&mut file).ok()?;
    GgufTokenizer::from_gguf(&content, path).ok()
}

/// Finds a local model, downloading a registry model on first use.
pub fn resolve_model(args: &ModelArgs, quiet: bool) -> anyhow::Result<Resolved> {
    let registry = Registry::load()?;
    let mut progress = Reporter::new(quiet);
    Ok(resolve::resolve(
        &registry,
        args.model.as_deref(),
        true,
        &mut progress,
    )?)
}

/// A chat engine for `target` with its prompts and name: the batched GGUF engine for a
/// local model (an encoder-decoder is refused), the server for a remote one.
pub fn chat_engine(
    target: &Target,
    args: &ModelArgs,
) -> anyhow::Result<(Arc<dyn ChatEngine>, PromptSet, String)> {
    match target {
        Target::Local(resolved) => {
            let chat = load_chat(resolved, args)?;
            let engine = Engine::new(chat.model, args.run.engine_options())?;
            Ok((Arc::new(engine), chat.prompts, chat.name))
        }
        Target::Remote(engine, prompts) => Ok((
            engine.clone(),
            prompts.clone(),
            engine.options().model.clone(),
        )),
    }
}

/// A loaded chat model with its prompts.
pub struct LoadedChat {
    /// The model.
    pub model: ChatModel,
    /// Its prompts (manifest overrides applied).
    pub prompts: PromptSet,
    /// Its name for reports.
    pub name: String,
}

/// Loads a GGUF chat model.
pub fn load_chat(resolved: &Resolved, args: &ModelArgs) -> anyhow::Result<LoadedChat> {
    if resolved.kind != ModelKind::Gguf {
        anyhow::bail!(
            "{} is an encoder-decoder model folder; this command needs a GGUF chat model",
            resolved.path.display()
        );
    }
    let manifest = resolved.manifest.as_ref();
    let max_context = manifest
        .and_then(|m| m.generation.max_context)
        .map_or(args.run.max_context, |m| m.min(args.run.max_context));
    let options = LoadOptions {
        max_context,
        chat_template: manifest.and_then(|m| m.chat_template.clone()),
    };
    let model = ChatModel::load(&resolved.path, &options)
        .with_context(|| format!("loading {}", resolved.path.display()))?;
    let prompts = manifest
        .map(|m| PromptSet::with_overrides(&m.prompts))
        .unwrap_or_default();
    Ok(LoadedChat {
        model,
        prompts,
        name: resolved.name.clone(),
    })
}

/// What only an encoder-decoder model takes; chat models ignore it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Seq2SeqChoices {
    /// Beam size (`None`: the model's generation config).
    pub beam: Option<usize>,
    /// Quantize the linear layers to 8 bits at load.
    pub int8: bool,
}

/// Where the translators of a run come from: a chat engine gives one for every input in
/// flight (they share it and its batches, or its server), an encoder-decoder model one
/// only (it batches sentences itself).
pub struct Translators {
    /// Inputs worth translating at once.
    pub parallel: usize,
    /// The local chat model's engine, for its statistics.
    pub engine: Option<Arc<Engine>>,
    /// The server, for its statistics.
    pub remote: Option<Arc<RemoteEngine>>,
    make: Box<dyn FnMut() -> Option<Box<dyn Translator + Send>> + Send>,
}

impl Translators {
    /// Another translator, if this model gives one more.
    pub fn next(&mut self) -> Option<Box<dyn Translator + Send>> {
        (self.make)()
    }
}

/// Loads any model as [`Translators`]: a chat model (local GGUF or remote) asked to
/// translate as `choices` says, or an encoder-decoder model loaded and decoding as
/// `seq2seq` says.
pub fn load_translator(
    target: &Target,
    args: &ModelArgs,
    params: SamplingParams,
    choices: ChatChoices,
    seq2seq: Seq2SeqChoices,
) -> anyhow::Result<Translators> {
    let chat_params = params.clone();
    let batch_tokens = choices.batch_tokens;
    let candidates = choices.candidates.n;
    let glossary = choices.glossary.clone();
    let chat = |engine: Arc<dyn ChatEngine>, prompts: PromptSet, name: String| {
        let params = chat_params;
        move || -> Option<Box<dyn Translator + Send>> {
            let mut translator = ChatTranslator::new(
                engine.clone(),
                name.clone(),
                prompts.clone(),
                params.clone(),
            )
            .with_chunking(choices.batch_tokens, choices.batch_sentences)
            .with_candidates(choices.candidates.clone())
            .with_examples(choices.examples);
            if let Some(glossary) = &choices.glossary {
                translator = translator.with_glossary(glossary.clone());
            }
            Some(Box::new(translator))
        }
    };
    let resolved = match target {
        Target::Remote(engine, prompts) => {
            return Ok(Translators {
                parallel: engine.parallel(),
                engine: None,
                remote: Some(engine.clone()),
                make: Box::new(chat(engine.clone(), prompts.clone(), target.name())),
            })
        }
        Target::Local(resolved) => resolved,
    };
    match resolved.kind {
        ModelKind::Gguf => {
            let loaded = load_chat(resolved, args)?;
            let engine = Arc::new(Engine::new(loaded.model, args.run.engine_options())?);
            let parallel = engine.options().parallel;
            Ok(Translators {
                parallel,
                engine: Some(engine.clone()),
                remote: None,
                make: Box::new(chat(engine, loaded.prompts, loaded.name)),
            })
        }
        ModelKind::HfFolder => {
            let spec = match &resolved.hub_repo {
                Some(repo) => repo.clone(),
                None => resolved.path.to_string_lossy().into_owned(),
            };
            let load = Seq2SeqLoadOptions { int8: seq2seq.int8 };
            let model = Seq2SeqTranslator::load_with(&spec, &candle_core::Device::Cpu, load)
                .with_context(|| format!("loading {spec}"))?;
            // An encoder-decoder batches whole sentences; its token budget is larger than
            // a chat model's request size.
            let options = GenerateOptions {
                beam: seq2seq.beam,
                max_tokens: Some(params.max_new_tokens),
                repetition_penalty: (params.repetition_penalty != 1.0)
                    .then_some(params.repetition_penalty),
                batch_tokens: batch_tokens.max(1024),
                ..GenerateOptions::default()
            };
            let mut adapter = Seq2SeqAdapter::new(model, resolved.name.clone(), options)
                .with_candidates(candidates)?;
            if let Some(glossary) = glossary {
                adapter = adapter.with_glossary(glossary);
            }
            let mut one: Option<Box<dyn Translator + Send>> = Some(Box::new(adapter));
            Ok(Translators {
                parallel: 1,
                engine: None,
                remote: None,
                make: Box::new(move || one.take()),
            })
        }
    }
}

/// Expands the command line's inputs: `-` or nothing is stdin; folders are walked for
/// `.txt` files (sorted, hidden entries skipped).
pub fn expand_inputs(inputs: &[String]) -> anyhow::Result<Vec<tarjama_text::Source>> {
    if inputs.is_empty() {
        return Ok(vec![tarjama_text::Source::Stdin]);
    }
    let mut out = Vec::new();
    for arg in inputs {
        let path = Path::new(arg);
        if arg != "-" && path.is_dir() {
            let mut files = Vec::new();
            walk(path, &mut files).with_context(|| format!("{}: cannot list", path.display()))?;
            files.sort();
            out.extend(files.into_iter().map(tarjama_text::Source::File));
        } else {
            out.push(tarjama_text::Source::from_arg(arg));
        }
    }
    Ok(out)
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if hidden {
            continue;
        }
        let ty = entry.file_type()?;
        if ty.is_dir() {
            walk(&path, files)?;
        } else if ty.is_file() && path.extension().is_some_and(|e| e == "txt") {
            files.push(path);
        }
    }
    Ok(())
}
