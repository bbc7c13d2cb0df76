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
    chat: Option<ChatParts>,
}

/// Another translator, while this model gives more.
impl Iterator for Translators {
    type Item = Box<dyn Translator + Send>;

    fn next(&mut self) -> Option<Self::Item> {
        (self.make)()
    }
}

impl Translators {
    /// The chat engine behind these translators, with its prompts (none for an
    /// encoder-decoder).
    pub fn chat(&self) -> Option<&ChatParts> {
        self.chat.as_ref()
    }

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
            let parts = ChatParts {
                engine: engine.clone(),
                prompts: prompts.clone(),
                name: target.name(),
            };
            return Ok(Translators {
                parallel: engine.parallel(),
                stats: Stats::Remote(engine.clone()),
                make: chat_translators(parts.clone(), params, choices),
                chat: Some(parts),
            });
        }
        Target::Local(resolved) => resolved,
    };
    match resolved.kind {
        ModelKind::Gguf => {
            let loaded = load_chat(resolved, args)?;
            let options = args.run.engine_options(&loaded.model);
            let parallel = options.parallel;
            let engine = Arc::new(Engine::new(loaded.model, options)?);
            let parts = ChatParts {
                engine: engine.clone(),
                prompts: loaded.prompts,
                name: loaded.name,
            };
            Ok(Translators {
                parallel,
                stats: Stats::Local(engine),
                make: chat_translators(parts.clone(), params, choices),
                chat: Some(parts),
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
                chat: None,
            })
        }
    }
}

/// A chat engine with the prompts and name its translators use: what a server keeps to
/// make a translator for each request, with that request's choices.
#[derive(Clone)]
pub struct ChatParts {
    /// The engine (batched local, or a server).
    pub engine: Arc<dyn ChatEngine>,
    /// The model's prompts.
    pub prompts: PromptSet,
    /// The model's name for reports.
    pub name: String,
}

impl ChatParts {
    /// A translator asking this engine as `choices` says.
    pub fn translator(
        &self,
        params: SamplingParams,
        choices: &ChatChoices,
    ) -> Box<dyn Translator + Send> {
        let mut translator = ChatTranslator::new(
            self.engine.clone(),
            self.name.clone(),
            self.prompts.clone(),
            params,
        )
        .with_chunking(choices.batch_tokens, choices.batch_sentences)
        .with_candidates(choices.candidates.clone())
        .with_examples(choices.examples);
        if let Some(glossary) = &choices.glossary {
            translator = translator.with_glossary(glossary.clone());
        }
        Box::new(translator)
    }
}

/// A translator for every call, all asking the same engine.
fn chat_translators(
    parts: ChatParts,
    params: SamplingParams,
    choices: ChatChoices,
) -> Box<dyn FnMut() -> Option<Box<dyn Translator + Send>> + Send> {
    Box::new(move || Some(parts.translator(params.clone(), &choices)))
}
