//! Prefill and decode speed of tarjama's GGUF transformer on one model file.
//!
//! ```text
//! cargo run --release -p tarjama-gguf --example gguf_speed -- \
//!     MODEL.gguf (--prompt-len N | --prompt-ids FILE) [--decode 128] [--runs 3]
//! ```
//!
//! `--prompt-ids` reads whitespace- or comma-separated token ids (as written by
//! `scripts/bench_gguf.py`, which tokenizes with llama.cpp so both runners see the same
//! ids); `--prompt-len N` repeats a fixed id pattern instead. After one short warm-up
//! (which also triggers candle's one-time weight repacking), every run clears the cache,
//! times the prefill of the whole prompt, then times `--decode` greedy steps of one token
//! each. Prints one JSON object on stdout: per-run and median tokens/s, and the process's
//! peak resident memory. Threads follow `RAYON_NUM_THREADS` / `CANDLE_NUM_THREADS`.

use std::path::PathBuf;
use std::time::Instant;

use candle_core::Device;
use tarjama_gguf::model::Transformer;

#[path = "../tests/support/mod.rs"]
mod support;
use support::argmax;

struct Args {
    model: PathBuf,
    prompt: Vec<u32>,
    decode: usize,
    runs: usize,
}

fn usage() -> ! {
    eprintln!(
        "usage: gguf_speed MODEL.gguf (--prompt-len N | --prompt-ids FILE) [--decode N] [--runs N]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut it = std::env::args().skip(1);
    let mut model = None;
    let mut prompt = None;
    let mut decode = 128;
    let mut runs = 3;
    while let Some(a) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--prompt-len" => {
                let n: usize = value().parse().unwrap_or_else(|_| usage());
                // Ordinary mid-vocabulary ids; the content does not change the work done.
                prompt = Some((0..n as u32).map(|i| 1000 + (i * 7919) % 20000).collect());
            }
            "--prompt-ids" => {
                let path = value();
                let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
                    eprintln!("error: cannot read {path}: {e}");
                    std::process::exit(2)
                });
                let ids: Result<Vec<u32>, _> = text
                    .split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']')
                    .filter(|s| !s.is_empty())
                    .map(str::parse)
                    .collect();
                prompt = Some(ids.unwrap_or_else(|e| {
                    eprintln!("error: {path}: not a list of token ids ({e})");
                    std::process::exit(2)
                }));
            }
            "--decode" => decode = value().parse().unwrap_or_else(|_| usage()),
            "--runs" => runs = value().parse().unwrap_or_else(|_| usage()),
            "-h" | "--help" => usage(),
            _ if model.is_none() && !a.starts_with('-') => model = Some(PathBuf::from(a)),
            _ => usage(),
        }
    }
    let (Some(model), Some(prompt)) = (model, prompt) else {
        usage()
    };
    if prompt.is_empty() || runs == 0 {
        usage()
    }
    Args {
        model,
        prompt,
        decode,
        runs,
    }
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Peak resident set size of this process in bytes (Linux `VmHWM`), if known.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // As the tarjama binary does.
    tarjama_kernels::runtime::tune();
    let args = parse_args();
    let t = Instant::now();
    // Room for the runs and for the warm-up (up to 32 prompt tokens and 4 steps).
    let max_context = (args.prompt.len() + args.decode).max(args.prompt.len().min(32) + 4) + 1;
    let mut model = Transformer::from_path(&args.model, &Device::Cpu, max_context)?;
    let load_s = t.elapsed().as_secs_f64();

    // Warm-up: a small prefill and a few decode steps, so that one-time costs (weight
    // repacking on first use, page faults, thread pool start) stay out of the runs.
    let warm = &args.prompt[..args.prompt.len().min(32)];
    let mut logits = model.forward(warm)?;
    for _ in 0..4 {
        let next = argmax(&logits.to_vec1::<f32>()?);
        logits = model.forward(&[next])?;
    }

    let mut prefill = Vec::new();
    let mut decode = Vec::new();
    for _ in 0..args.runs {
        model.truncate_cache(0)?;
        let t = Instant::now();
        let mut logits = model.forward(&args.prompt)?;
        let mut next = argmax(&logits.to_vec1::<f32>()?);
        prefill.push(args.prompt.len() as f64 / t.elapsed().as_secs_f64());
        let t = Instant::now();
        for _ in 0..args.decode {
            logits = model.forward(&[next])?;
            next = argmax(&logits.to_vec1::<f32>()?);
        }
        if args.decode > 0 {
            decode.push(args.decode as f64 / t.elapsed().as_secs_f64());
        }
    }
    let list = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "{{\"runner\": \"tarjama\", \"model\": {:?}, \"prompt_tokens\": {}, \"decode_tokens\": {}, \
         \"runs\": {}, \"load_s\": {:.3}, \"prefill_tok_s\": {:.2}, \"decode_tok_s\": {:.2}, \
         \"prefill_runs\": [{}], \"decode_runs\": [{}], \"peak_rss_bytes\": {}}}",
        args.model.display().to_string(),
        args.prompt.len(),
        args.decode,
        args.runs,
        load_s,
        median(&prefill),
        if decode.is_empty() { 0.0 } else { median(&decode) },
        list(&prefill),
        list(&decode),
        peak_rss_bytes().map_or("null".to_string(), |b| b.to_string()),
    );
    Ok(())
}
