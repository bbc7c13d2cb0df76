//! The flags that say which model runs and how.

use tarjama_gguf::{auto_parallel, ChatModel, EngineOptions};

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

/// Requests in flight to a server when --parallel is not given.
pub(crate) const REMOTE_PARALLEL: usize = 8;

impl RunArgs {
    /// The engine settings these flags ask for, for `model`: the KV budget, and the
    /// sequences at once (--parallel, else as many as the threads use and the budget
    /// holds, [`auto_parallel`]).
    pub fn engine_options(&self, model: &ChatModel) -> EngineOptions {
        let kv_budget = self.kv_budget_bytes();
        let parallel = match self.parallel {
            Some(n) => n.max(1),
            None => auto_parallel(
                model.kv_bytes_per_position(),
                kv_budget,
                candle_core::utils::get_num_threads(),
            ),
        };
        EngineOptions {
            parallel,
            kv_budget,
            ..EngineOptions::default()
        }
    }

    /// `--kv-budget` in bytes, else a quarter of the available memory (between 256 MiB
    /// and 4 GiB).
    pub fn kv_budget_bytes(&self) -> usize {
        match self.kv_budget {
            Some(mib) => mib.max(1) << 20,
            None => (available_memory().unwrap_or(8 << 30) / 4).clamp(256 << 20, 4 << 30),
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

/// Sets the size of the thread pools the kernels run on. Must run before any model work.
pub fn set_threads(threads: Option<usize>) {
    if let Some(n) = threads {
        // Read on first use by candle's own pool (quantized and element-wise ops, and
        // tarjama's GGUF kernels) unless CANDLE_NUM_THREADS is set, and by rayon's global
        // pool (f32 matmuls through gemm, the encoder-decoder's kernels).
        std::env::set_var("RAYON_NUM_THREADS", n.max(1).to_string());
    }
}
