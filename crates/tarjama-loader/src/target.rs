//! Where the model runs: a server named by `--endpoint`, or a local model found by the
//! registry's resolver.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use tarjama_chat::TokenCounter;
use tarjama_gguf::GgufTokenizer;
use tarjama_pipeline::prompts::PromptSet;
use tarjama_registry::resolve::{self, ModelKind, Resolved};
use tarjama_registry::source::Progress;
use tarjama_registry::Registry;
use tarjama_remote::{RemoteEngine, RemoteOptions};

use crate::args::{ModelArgs, REMOTE_PARALLEL};

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
/// downloading a registry model on first use (its progress told to `progress`). Unless
/// `quiet`, says on stderr how a server's tokens are counted.
pub fn target(
    args: &ModelArgs,
    quiet: bool,
    progress: &mut dyn Progress,
) -> anyhow::Result<Target> {
    let run = &args.run;
    let Some(endpoint) = &run.endpoint else {
        return Ok(Target::Local(Box::new(resolve_model(args, progress)?)));
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
fn local_tokenizer(path: &Path) -> Option<Box<dyn TokenCounter>> {
    let mut file = std::fs::File::open(path).ok()?;
    let content = candle_core::quantized::gguf_file::Content::read(&mut file).ok()?;
    let tokenizer = GgufTokenizer::from_gguf(&content, path).ok()?;
    Some(Box::new(tokenizer))
}

/// Finds a local model, downloading a registry model on first use.
pub fn resolve_model(args: &ModelArgs, progress: &mut dyn Progress) -> anyhow::Result<Resolved> {
    let registry = Registry::load()?;
    Ok(resolve::resolve(
        &registry,
        args.model.as_deref(),
        true,
        progress,
    )?)
}
