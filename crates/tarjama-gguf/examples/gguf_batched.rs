//! Aggregate prefill and decode speed of tarjama's GGUF transformer with many sequences
//! per step, measured as llama.cpp's `llama-batched-bench` measures it.
//!
//! ```text
//! cargo run --release -p tarjama-gguf --example gguf_batched -- \
//!     --model MODEL.gguf [--npp 128] [--ntg 64] [--levels 1,2,4,8,16] [--threads 2]
//! ```
//!
//! For each level N: N empty sequences read a prompt of `--npp` tokens each, all in one
//! step (as batched-bench feeds its whole batch at once), then decode `--ntg` tokens
//! each, N rows per step, greedily. Prefill speed is N * npp over the prefill's time,
//! decode speed N * ntg over the decoding's time (batched-bench's S_PP and S_TG). Prompts
//! are ordinary vocabulary ids from a fixed seed, different for every sequence. Prints
//! one JSON object per level on stdout, with the process's peak resident memory so far.

use std::path::PathBuf;
use std::time::Instant;

use candle_core::Device;
use tarjama_gguf::model::{Step, Transformer};

struct Args {
    model: PathBuf,
    npp: usize,
    ntg: usize,
    levels: Vec<usize>,
}

fn usage() -> ! {
    eprintln!(
        "usage: gguf_batched --model MODEL.gguf [--npp 128] [--ntg 64] [--levels 1,2,4,8,16] \
         [--threads N]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut it = std::env::args().skip(1);
    let (mut model, mut npp, mut ntg) = (None, 128, 64);
    let mut levels = vec![1, 2, 4, 8, 16];
    let number = |s: String| s.parse::<usize>().unwrap_or_else(|_| usage());
    while let Some(a) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--model" => model = Some(PathBuf::from(value())),
            "--npp" => npp = number(value()),
            "--ntg" => ntg = number(value()),
            "--levels" => {
                levels = value()
                    .split(',')
                    .map(|s| number(s.trim().to_string()))
                    .collect()
            }
            "--threads" => {
                // Read by candle's pool and rayon's on first use.
                let n = value();
                std::env::set_var("RAYON_NUM_THREADS", &n);
            }
            "--prompt" if value() == "random" => {}
            _ => usage(),
        }
    }
    Args {
        model: model.unwrap_or_else(|| usage()),
        npp,
        ntg,
        levels,
    }
}

/// `n` pseudo-random ordinary token ids for sequence `seq` (a fixed linear congruential
/// sequence, so every run feeds the same prompts).
fn prompt(seq: usize, n: usize, vocab: usize) -> Vec<u32> {
    let mut x = 0x9E37_79B9u64.wrapping_mul(seq as u64 + 1);
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            // Mid-vocabulary ids: ordinary text pieces, no special tokens.
            (1000 + (x >> 33) as usize % (vocab - 2000)) as u32
        })
        .collect()
}

fn argmax(logits: &candle_core::Tensor) -> u32 {
    let v = logits.to_vec1::<f32>().expect("logits");
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

fn main() {
    let args = parse_args();
    tarjama_kernels::runtime::tune();
    let model = Transformer::from_path(&args.model, &Device::Cpu, args.npp + args.ntg + 16)
        .unwrap_or_else(|e| {
            eprintln!("error: {e}");
            std::process::exit(1)
        });
    // Every model this runs has a vocabulary well over 32k.
    let vocab = 32_000;
    // Warm-up: first-use allocations and page faults.
    {
        let mut cache = model.new_cache();
        let p = prompt(99, 16, vocab);
        let mut steps = [Step {
            cache: &mut cache,
            tokens: &p,
        }];
        model.forward_batch(&mut steps).expect("warm-up");
    }
    for &n in &args.levels {
        let prompts: Vec<Vec<u32>> = (0..n).map(|s| prompt(s, args.npp, vocab)).collect();
        let mut caches: Vec<_> = (0..n).map(|_| model.new_cache()).collect();
        let start = Instant::now();
        let mut steps: Vec<Step> = caches
            .iter_mut()
            .zip(&prompts)
            .map(|(cache, p)| Step { cache, tokens: p })
            .collect();
        let logits = model.forward_batch(&mut steps).expect("prefill");
        let pp = start.elapsed().as_secs_f64();
        let mut next: Vec<[u32; 1]> = logits.iter().map(|l| [argmax(l)]).collect();
        let start = Instant::now();
        for _ in 0..args.ntg {
            let mut steps: Vec<Step> = caches
                .iter_mut()
                .zip(&next)
                .map(|(cache, t)| Step { cache, tokens: t })
                .collect();
            let logits = model.forward_batch(&mut steps).expect("decode");
            next = logits.iter().map(|l| [argmax(l)]).collect();
        }
        let tg = start.elapsed().as_secs_f64();
        println!(
            "{}",
            serde_json::json!({
                "level": n,
                "npp": args.npp,
                "ntg": args.ntg,
                "pp_tokens_per_s": (n * args.npp) as f64 / pp,
                "tg_tokens_per_s": (n * args.ntg) as f64 / tg,
                "peak_rss_mib": peak_rss_mib(),
            })
        );
    }
}
