//! `tarjama serve`: the flags, the keys, the log lines; the server itself is
//! `tarjama_server`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use tarjama_loader::{ChatChoices, ModelArgs};
use tarjama_pipeline::TranslateOptions;
use tarjama_server::{Config, Defaults, Keys, Model, State};

use super::common::{self, CandidateArgs};
use crate::exit;

/// Flags of `tarjama serve`.
#[derive(Debug, clap::Args)]
#[command(
    mut_arg("api_key_env", |a| a
        .long("upstream-key-env")
        .help("With --endpoint: the environment variable that holds the upstream server's API key")),
    after_help = "Examples:
  tarjama serve                                   # the default model on http://127.0.0.1:8800
  tarjama serve --model qwen2.5-1.5b-instruct --port 9000
  TARJAMA_KEY=secret tarjama serve --api-key-env TARJAMA_KEY --host 0.0.0.0
  tarjama translate article.txt --endpoint http://127.0.0.1:8800/v1 --model NAME

Routes: / (the page), /health, /metrics, /v1/chat/completions, /v1/models, /tokenize,
/v1/translate, /v1/summarize, and LibreTranslate's /translate, /detect, /languages,
/translate_file, /download_file/NAME. SIGTERM or Ctrl-C: stop accepting, finish what is
in flight (up to --drain seconds), exit 0."
)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The address to listen on. Loopback by default: only this machine can connect.
    /// 0.0.0.0 listens on every interface (set a key with --api-key-env or --api-keys).
    #[arg(long, default_value = "127.0.0.1", help_heading = "Server")]
    pub host: IpAddr,
    /// The port (0: any free one, printed at start).
    #[arg(long, default_value_t = 8800, help_heading = "Server")]
    pub port: u16,
    /// The environment variable that holds the one API key clients must send
    /// (`Authorization: Bearer KEY`, or LibreTranslate's `api_key`).
    #[arg(long = "api-key-env", value_name = "VAR", help_heading = "Server")]
    pub server_key_env: Option<String>,
    /// A file of API keys, one per line (blank lines and lines starting with # skipped).
    #[arg(long, value_name = "FILE", help_heading = "Server")]
    pub api_keys: Option<PathBuf>,
    /// Let web pages from this origin call the API (CORS), such as
    /// https://newsroom.example; `*` for any. Default: off.
    #[arg(long, value_name = "ORIGIN", help_heading = "Server")]
    pub cors: Option<String>,
    /// The largest request body in bytes; larger ones get 413.
    #[arg(long, default_value_t = 1 << 20, value_name = "BYTES", help_heading = "Server")]
    pub max_body: usize,
    /// Requests admitted at once (answering or waiting for the engine); more get 503 with
    /// Retry-After.
    #[arg(long, default_value_t = 64, value_name = "N", help_heading = "Server")]
    pub queue: usize,
    /// Seconds the requests in flight may run on after SIGTERM.
    #[arg(
        long,
        default_value_t = 30.0,
        value_name = "SECS",
        help_heading = "Server"
    )]
    pub drain: f64,
    /// Seconds one request may take before it is answered 408.
    #[arg(
        long = "request-timeout",
        default_value_t = 600.0,
        value_name = "SECS",
        help_heading = "Server"
    )]
    pub request_timeout: f64,
    /// Sentences per request to a chat model for the translate routes.
    #[arg(long, default_value_t = 6, help_heading = "Translation")]
    pub batch_sentences: usize,
    /// Source tokens per request to the model for the translate routes.
    #[arg(long, default_value_t = 160, help_heading = "Translation")]
    pub batch_tokens: usize,
    /// Normalization of the Arabic before translation: mt, search or none.
    #[arg(long, default_value = "mt", help_heading = "Translation")]
    pub normalize: String,
    #[command(flatten)]
    pub candidates: CandidateArgs,
}

/// The keys from --api-key-env and --api-keys.
fn keys(args: &Args) -> anyhow::Result<Keys> {
    let mut keys = Vec::new();
    if let Some(var) = &args.server_key_env {
        let key = std::env::var(var)
            .ok()
            .filter(|k| !k.trim().is_empty())
            .with_context(|| format!("--api-key-env {var}: the variable is not set"))?;
        keys.push(key.trim().to_string());
    }
    if let Some(path) = &args.api_keys {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--api-keys {}: cannot read it", path.display()))?;
        let before = keys.len();
        keys.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string),
        );
        anyhow::ensure!(
            keys.len() > before,
            "--api-keys {}: the file holds no key",
            path.display()
        );
    }
    Ok(Keys::new(keys))
}

fn seconds(flag: &str, secs: f64) -> anyhow::Result<Duration> {
    anyhow::ensure!(
        secs.is_finite() && secs > 0.0,
        "{flag} {secs}: must be a positive number of seconds"
    );
    Ok(Duration::from_secs_f64(secs))
}

/// Runs `tarjama serve`.
pub fn run(args: Args) -> anyhow::Result<i32> {
    tarjama_loader::set_threads(args.model.run.threads);
    let keys = keys(&args)?;
    if !args.host.is_loopback() && !keys.required() {
        eprintln!(
            "warning: listening on {} without an API key: anyone who can reach this machine \
             can use the model (set --api-key-env or --api-keys)",
            args.host
        );
    }
    let config = Config {
        keys,
        cors: args.cors.clone(),
        max_body: args.max_body.max(1024),
        queue: args.queue.max(1),
        drain: seconds("--drain", args.drain)?,
        timeout: seconds("--request-timeout", args.request_timeout)?,
    };
    let normalizer = common::normalizer(&args.normalize)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("tarjama-http")
        .enable_all()
        .build()
        .context("cannot start the server's runtime")?;
    let served = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind((args.host, args.port))
            .await
            .with_context(|| {
                format!(
                    "--host {} --port {}: cannot listen there",
                    args.host, args.port
                )
            })?;
        let addr = listener.local_addr()?;
        let asked = args
            .model
            .model
            .clone()
            .unwrap_or_else(|| "the default model".into());
        eprintln!("tarjama serve: listening on http://{addr} (loading {asked})");
        let state = State::new(config);
        let load = move || load(&args, normalizer);
        tarjama_server::serve(listener, state, load).await
    });
    // Dropping the runtime would wait for its blocking threads: a model still loading when
    // the signal came (minutes for a large one), a translation whose client is gone. Every
    // answer is sent (or, past the drain, cut) by now: those threads end with the process.
    runtime.shutdown_background();
    served?;
    eprintln!("tarjama serve: stopped");
    Ok(exit::SUCCESS)
}

/// Loads the model as `tarjama translate` would, with its translation defaults.
fn load(args: &Args, normalizer: Option<tarjama_text::Normalizer>) -> anyhow::Result<Model> {
    let target = common::target(&args.model, false)?;
    let name = target.name();
    let choices = ChatChoices {
        batch_tokens: args.batch_tokens,
        batch_sentences: args.batch_sentences,
        candidates: args.candidates.candidates(),
        glossary: None,
        examples: 0,
    };
    let params = tarjama_chat::SamplingParams::greedy(512);
    let translators = tarjama_loader::load_translator(
        &target,
        &args.model,
        params.clone(),
        choices.clone(),
        tarjama_loader::Seq2SeqChoices::default(),
    )?;
    let parallel = translators.parallel;
    let defaults = Defaults {
        params,
        choices,
        translate: TranslateOptions {
            normalizer,
            check_glossary: true,
        },
    };
    let model = Model::new(translators, name, defaults);
    eprintln!(
        "tarjama serve: ready: {} ({} requests decoded together, context {} tokens)",
        model.name, parallel, model.max_context
    );
    Ok(model)
}
