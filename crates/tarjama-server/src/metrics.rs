//! `GET /metrics`: Prometheus text, named in the style of vLLM's and llama-server's
//! (`tarjama:num_requests_running`, `tarjama:prompt_tokens_total`, ...), so dashboards
//! made for those read this server with the prefix changed.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};
use tarjama_loader::EngineReport;

/// The server's metrics, on a registry of its own.
pub struct Metrics {
    registry: Registry,
    /// HTTP requests by route and status.
    pub http_requests: IntCounterVec,
    /// Seconds from request to the end of the answer, by route.
    pub latency: HistogramVec,
    /// Seconds spent in the server itself (parsing, rendering, queue bookkeeping), not in
    /// the engine, per engine request.
    pub overhead: Histogram,
    /// Seconds to the first generated text of a chat request.
    pub first_token: Histogram,
    /// Prompt tokens of answered chat requests.
    pub prompt_tokens: IntCounter,
    /// Tokens generated.
    pub generated_tokens: IntCounter,
    /// Requests refused because the queue was full.
    pub refused: IntCounter,
    /// Requests whose client went away before the answer was complete.
    pub cancelled: IntCounter,
    admitted: IntGauge,
    running: IntGauge,
    waiting: IntGauge,
    kv_bytes: IntGauge,
    kv_usage: prometheus::Gauge,
    /// The engine's totals at the last scrape, to add what came since.
    seen: std::sync::Mutex<(usize, usize)>,
}

const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0,
];
const OVERHEAD_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
];

impl Metrics {
    /// Fresh metrics.
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("a valid name");
            registry
                .register(Box::new(c.clone()))
                .expect("registered once");
            c
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("a valid name");
            registry
                .register(Box::new(g.clone()))
                .expect("registered once");
            g
        };
        let histogram = |name: &str, help: &str, buckets: &[f64]| {
            let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
                .expect("a valid name");
            registry
                .register(Box::new(h.clone()))
                .expect("registered once");
            h
        };
        let http_requests = IntCounterVec::new(
            Opts::new(
                "tarjama:http_requests_total",
                "HTTP requests by route and status",
            ),
            &["route", "status"],
        )
        .expect("a valid name");
        registry
            .register(Box::new(http_requests.clone()))
            .expect("registered once");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "tarjama:e2e_request_latency_seconds",
                "Seconds from a request to the end of its answer, by route",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route"],
        )
        .expect("a valid name");
        registry
            .register(Box::new(latency.clone()))
            .expect("registered once");
        let kv_usage = prometheus::Gauge::new(
            "tarjama:kv_cache_usage_perc",
            "Share of the KV budget held after the last step (0-1)",
        )
        .expect("a valid name");
        registry
            .register(Box::new(kv_usage.clone()))
            .expect("registered once");
        Metrics {
            http_requests,
            latency,
            overhead: histogram(
                "tarjama:server_overhead_seconds",
                "Seconds per request spent in the server, not waiting for the engine",
                OVERHEAD_BUCKETS,
            ),
            first_token: histogram(
                "tarjama:time_to_first_token_seconds",
                "Seconds from a chat request to its first generated text",
                LATENCY_BUCKETS,
            ),
            prompt_tokens: counter("tarjama:prompt_tokens_total", "Prompt tokens processed"),
            generated_tokens: counter("tarjama:generation_tokens_total", "Tokens generated"),
            refused: counter(
                "tarjama:requests_refused_total",
                "Requests refused with 503 because the queue was full",
            ),
            cancelled: counter(
                "tarjama:requests_cancelled_total",
                "Requests whose client went away before the answer was complete",
            ),
            admitted: gauge(
                "tarjama:requests_admitted",
                "Requests admitted now (answering or waiting for the engine)",
            ),
            running: gauge(
                "tarjama:num_requests_running",
                "Sequences the engine is decoding now",
            ),
            waiting: gauge(
                "tarjama:num_requests_waiting",
                "Requests queued in the engine for a slot",
            ),
            kv_bytes: gauge(
                "tarjama:kv_cache_bytes",
                "Bytes of keys and values held now",
            ),
            kv_usage,
            seen: std::sync::Mutex::new((0, 0)),
            registry,
        }
    }

    /// The text exposition, with the gauges read now. The local engine's own totals of
    /// prompt and generated tokens count every route's work (translations and summaries
    /// too); without one, the chat route counts what its answers report.
    pub fn render(&self, admitted: usize, engine: Option<EngineReport>) -> String {
        self.admitted.set(admitted as i64);
        if let Some(EngineReport::Local(stats)) = engine {
            if let Ok(mut seen) = self.seen.lock() {
                self.prompt_tokens
                    .inc_by(stats.prompt.saturating_sub(seen.0) as u64);
                self.generated_tokens
                    .inc_by(stats.generated.saturating_sub(seen.1) as u64);
                *seen = (stats.prompt.max(seen.0), stats.generated.max(seen.1));
            }
            self.running.set(stats.running as i64);
            self.waiting.set(stats.waiting as i64);
            self.kv_bytes.set(stats.kv_bytes as i64);
            self.kv_usage
                .set(stats.kv_bytes as f64 / stats.kv_budget.max(1) as f64);
        }
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
