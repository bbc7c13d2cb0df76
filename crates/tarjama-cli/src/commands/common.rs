//! Flags and helpers shared by the commands that run a model.

use std::path::{Path, PathBuf};

use anyhow::Context;
use std::sync::Arc;

use tarjama_models::gguf::{ChatModel, Engine, EngineOptions, LoadOptions};
use tarjama_models::registry::Registry;
use tarjama_models::resolve::{self, ModelKind, Resolved};
use tarjama_models::sampling::SamplingParams;
use tarjama_models::seq2seq::{
    GenerateOptions, LoadOptions as Seq2SeqLoadOptions, Seq2SeqTranslator,
};
use tarjama_pipeline::prompts::PromptSet;
use tarjama_pipeline::{ChatTranslator, Seq2SeqAdapter, Translator};
use tarjama_text::{Normalizer, Profile};

use crate::progress::Reporter;

/// Which model to run and how.
#[derive(Debug, Clone, clap::Args)]
pub struct ModelArgs {
    /// A registry name (`tarjama models list`), a .gguf file, a model folder, or a hub repo
    /// id (`owner/name` or `owner/name:FILE.gguf`). Default: the registry's default model,
    /// downloaded on first use.
    #[arg(short, long, env = "TARJAMA_MODEL")]
    pub model: Option<String>,
    /// Context window cap in tokens (memory grows with it).
    #[arg(long, default_value_t = 8192)]
    pub max_context: usize,
    /// CPU threads (default: all cores).
    #[arg(long, short = 't')]
    pub threads: Option<usize>,
    /// Requests a chat model works on at once, decoded together in one batch (1: one
    /// after the other). A decoding step reads every weight once whatever the batch, so
    /// on a CPU 8 sequences cost little more time per step than one.
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub parallel: usize,
    /// Memory for the keys and values of the requests in flight, in MiB; requests wait
    /// rather than go over it. Default: a quarter of the available memory, at most 4096.
    #[arg(long, value_name = "MIB")]
    pub kv_budget: Option<usize>,
}

impl ModelArgs {
    /// The engine settings these flags ask for.
    pub fn engine_options(&self) -> EngineOptions {
        let budget = match self.kv_budget {
            Some(mib) => mib.max(1) << 20,
            None => (available_memory().unwrap_or(8 << 30) / 4).clamp(256 << 20, 4 << 30),
        };
        EngineOptions {
            parallel: self.parallel.max(1),
            kv_budget: budget,
            ..EngineOptions::default()
        }
    }
}

/// Bytes of memory available to new work (Linux: `MemAvailable`).
fn available_memory() -> Option<usize> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
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

/// Finds the model, downloading a registry model on first use.
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
        .map_or(args.max_context, |m| m.min(args.max_context));
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

/// Where the translators of a run come from: a chat model's engine gives one for every
/// input in flight (they share it and its batches), an encoder-decoder model one only
/// (it batches sentences itself).
pub struct Translators {
    /// Inputs worth translating at once.
    pub parallel: usize,
    /// The chat model's engine, for its statistics.
    pub engine: Option<Arc<Engine>>,
    make: Box<dyn FnMut() -> Option<Box<dyn Translator + Send>> + Send>,
}

impl Translators {
    /// Another translator, if this model gives one more.
    pub fn next(&mut self) -> Option<Box<dyn Translator + Send>> {
        (self.make)()
    }
}

/// Loads any model as [`Translators`]: a GGUF chat model asked to translate, with
/// `batch_tokens`/`batch_sentences` source tokens and sentences per request, or an
/// encoder-decoder model loaded and decoding as `seq2seq` says.
pub fn load_translator(
    resolved: &Resolved,
    args: &ModelArgs,
    params: SamplingParams,
    batch_tokens: usize,
    batch_sentences: usize,
    seq2seq: Seq2SeqChoices,
) -> anyhow::Result<Translators> {
    match resolved.kind {
        ModelKind::Gguf => {
            let chat = load_chat(resolved, args)?;
            let options = args.engine_options();
            let parallel = options.parallel;
            let engine = Arc::new(Engine::new(chat.model, options)?);
            let shared = engine.clone();
            let make = move || -> Option<Box<dyn Translator + Send>> {
                Some(Box::new(
                    ChatTranslator::new(
                        shared.clone(),
                        chat.name.clone(),
                        chat.prompts.clone(),
                        params.clone(),
                    )
                    .with_chunking(batch_tokens, batch_sentences),
                ))
            };
            Ok(Translators {
                parallel,
                engine: Some(engine),
                make: Box::new(make),
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
            let mut one: Option<Box<dyn Translator + Send>> = Some(Box::new(Seq2SeqAdapter::new(
                model,
                resolved.name.clone(),
                options,
            )));
            Ok(Translators {
                parallel: 1,
                engine: None,
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
