//! Times `Seq2SeqTranslator::translate` on a file of sentences; used by
//! `scripts/bench_ct2.py`. Prints one JSON object on stdout.
//!
//! Usage: seq2seq_bench MODEL_DIR INPUT_FILE [--beam N] [--batch N] [--max-tokens N]
//!        [--fixed-length] [--int8]

use std::time::Instant;

use tarjama_seq2seq::{GenerateOptions, LoadOptions, Seq2SeqTranslator};

/// This process's resident-set high-water mark (`VmHWM`, Linux). Unlike `ru_maxrss`, it
/// does not carry over the parent's peak across fork and exec.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // As the tarjama binary does.
    tarjama_kernels::runtime::tune();
    let mut args = std::env::args().skip(1);
    let model = args
        .next()
        .ok_or("usage: seq2seq_bench MODEL_DIR INPUT_FILE [options]")?;
    let input = args
        .next()
        .ok_or("usage: seq2seq_bench MODEL_DIR INPUT_FILE [options]")?;
    let (mut beam, mut batch, mut max_tokens, mut fixed, mut int8) =
        (4usize, 32usize, 64usize, false, false);
    while let Some(flag) = args.next() {
        let mut value = || -> Result<usize, Box<dyn std::error::Error>> {
            Ok(args
                .next()
                .ok_or(format!("{flag} needs a value"))?
                .parse()?)
        };
        match flag.as_str() {
            "--beam" => beam = value()?,
            "--batch" => batch = value()?,
            "--max-tokens" => max_tokens = value()?,
            "--fixed-length" => fixed = true,
            "--int8" => int8 = true,
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    let text = std::fs::read_to_string(&input)?;
    let sentences: Vec<&str> = text.lines().collect();
    let t0 = Instant::now();
    let translator =
        Seq2SeqTranslator::load_with(&model, &candle_core::Device::Cpu, LoadOptions { int8 })?;
    let load_s = t0.elapsed().as_secs_f64();
    let opts = GenerateOptions {
        beam: Some(beam),
        max_tokens: Some(max_tokens),
        // With the minimum at the maximum, EOS is banned until the end: every sentence
        // produces exactly max_tokens tokens, whatever the (random) weights.
        min_length: fixed.then_some(max_tokens + 1),
        batch_sentences: Some(batch),
        batch_tokens: usize::MAX,
        ..GenerateOptions::default()
    };
    let t1 = Instant::now();
    let out = translator.translate(&sentences, &opts)?;
    let secs = t1.elapsed().as_secs_f64();
    let tokens: usize = out.iter().map(|t| t.tokens.len()).sum();
    println!(
        "{{\"sentences\":{},\"target_tokens\":{},\"load_s\":{:.3},\"translate_s\":{:.3},\"tokens_per_s\":{:.2},\"peak_rss_mib\":{}}}",
        out.len(),
        tokens,
        load_s,
        secs,
        tokens as f64 / secs,
        peak_rss_mib().map_or("null".to_string(), |m| format!("{m:.1}"))
    );
    Ok(())
}
