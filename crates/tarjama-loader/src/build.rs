//! Engines and translators for a [`Target`]: the batched GGUF engine for a local chat
//! model, an encoder-decoder for a model folder, the server for a remote model.

use std::sync::Arc;

use anyhow::Context;
use tarjama_chat::{ChatEngine, SamplingParams};
use tarjama_gguf::{ChatModel, Engine, EngineStats, LoadOptions};
use tarjama_pipeline::prompts::PromptSet;
use tarjama_pipeline::{Candidates, ChatTranslator, Glossary, Seq2SeqAdapter, Translator};
use tarjama_registry::resolve::{ModelKind, Resolved};
use tarjama_remote::{RemoteEngine, RemoteStats};
use tarjama_seq2seq::{GenerateOptions, LoadOptions as Seq2SeqLoadOptions, Seq2SeqTranslator};

use crate::args::ModelArgs;
use crate::target::Target;

/// A chat engine for `target` with its prompts and name: the batched GGUF engine for a
/// local model (an encoder-decoder is refused), the server for a remote one.
pub fn chat_engine(
    target: &Target,
    args: &ModelArgs,
) -> anyhow::Result<(Arc<dyn ChatEngine>, PromptSet, String)> {
    match target {
        Target::Local(resolved) => {
            let chat = load_chat(resolved, args)?;
            let options = args.run.engine_options(&chat.model);
            let engine = Engine::new(chat.model, options)?;
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

/// What only an encoder-decoder model takes; chat models ignore it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Seq2SeqChoices {
    /// Beam size (`None`: the model's generation config).
    pub beam: Option<usize>,
    /// Quantize the linear layers to 8 bits at load.
    pub int8: bool,
}

/// What an engine has done, for a run's report.
#[derive(Debug, Clone)]
pub enum EngineReport {
    /// The local batched engine.
    Local(EngineStats),
    /// The server.
    Remote(RemoteStats),
}

/// Where the engine of a run is, for its statistics.
enum Stats {
    Local(Arc<Engine>),
    Remote(Arc<RemoteEngine>),
    None,
}

/// Where the translators of a run come from: a chat engine gives one for every input in
/// flight (they share it and its batches, or its server), an encoder-decoder model one
/// only (it batches sentences itself).
pub struct Translators {
    /// Inputs worth translating at once.
    pub parallel: usize,
    stats: Stats,
    make: Box<dyn FnMut() -> Option<Box<dyn Translator + Send>> + Send>,
}

/// Another translator, while this model gives more.
impl Iterator for Translators {
    type Item = Box<dyn Translator + Send>;

    fn next(&mut self) -> Option<Self::Item> {
        (self.make)()
    }
}

impl Translators {
    /// What the engine has done so far (none for an encoder-decoder).
    pub fn stats(&self) -> Option<EngineReport> {
        match &self.stats {
            Stats::Local(engine) => Some(EngineReport::Local(engine.stats())),
            Stats::Remote(engine) => Some(EngineReport::Remote(engine.stats())),
            Stats::None => None,
        }
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
    let resolved = match target {
        Target::Remote(engine, prompts) => {
            return Ok(Translators {
                parallel: engine.parallel(),
                stats: Stats::Remote(engine.clone()),
                make: chat_translators(
                    engine.clone(),
                    prompts.clone(),
                    target.name(),
                    params,
                    choices,
                ),
            })
        }
        Target::Local(resolved) => resolved,
    };
    match resolved.kind {
        ModelKind::Gguf => {
            let loaded = load_chat(resolved, args)?;
            let options = args.run.engine_options(&loaded.model);
            let parallel = options.parallel;
            let engine = Arc::new(Engine::new(loaded.model, options)?);
            Ok(Translators {
                parallel,
                stats: Stats::Local(engine.clone()),
                make: chat_translators(engine, loaded.prompts, loaded.name, params, choices),
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
                batch_tokens: choices.batch_tokens.max(1024),
                ..GenerateOptions::default()
            };
            let mut adapter = Seq2SeqAdapter::new(model, resolved.name.clone(), options)
                .with_candidates(choices.candidates.n)?;
            if let Some(glossary) = choices.glossary {
                adapter = adapter.with_glossary(glossary);
            }
            let mut one: Option<Box<dyn Translator + Send>> = Some(Box::new(adapter));
            Ok(Translators {
                parallel: 1,
                stats: Stats::None,
                make: Box::new(move || one.take()),
            })
        }
    }
}

/// A translator for every call, all asking `engine`.
fn chat_translators(
    engine: Arc<dyn ChatEngine>,
    prompts: PromptSet,
    name: String,
    params: SamplingParams,
    choices: ChatChoices,
) -> Box<dyn FnMut() -> Option<Box<dyn Translator + Send>> + Send> {
    Box::new(move || {
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
    })
}
