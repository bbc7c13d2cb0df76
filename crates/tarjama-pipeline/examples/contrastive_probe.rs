//! Source-contrastive decoding (Sennrich, Vamvas and Mohammadshahi, EACL 2024) as a probe:
//! does it lift a chat model's one-sentence translations?
//!
//! ```text
//! cargo run --release -p tarjama-pipeline --example contrastive_probe -- \
//!     MODEL.gguf SRC.ar OUT_PREFIX LAMBDA[:ALPHA] ...
//! ```
//!
//! Each line of `SRC.ar` is translated with tarjama's one-piece prompt (the system prompt
//! and `Translate this Arabic text into English. ...`), greedily, once per setting. A
//! setting `LAMBDA[:ALPHA]` picks each next token by
//! `log p(y | x) - LAMBDA * log p(y | x')`, where `x'` is another line of the file (the one
//! `n / 2` lines further on), among the tokens with `p(y | x) >= ALPHA * max p` (the
//! plausibility constraint of contrastive decoding; `ALPHA` 0 allows every token). `0` is
//! plain greedy decoding. All settings decode together in one batch, each with its own two
//! sequences (one for `0`). Writes `OUT_PREFIX.LAMBDA[:ALPHA].en`, one line per input line.

use std::io::Write;
use std::path::PathBuf;

use tarjama_chat::Message;
use tarjama_gguf::model::Step;
use tarjama_gguf::{ChatModel, LoadOptions};
use tarjama_pipeline::prompts::{SYSTEM, TRANSLATE};

#[derive(Clone, Copy)]
struct Setting {
    lambda: f32,
    alpha: f32,
}

impl Setting {
    /// `LAMBDA[:ALPHA]`.
    fn parse(s: &str) -> Setting {
        let (l, a) = s.split_once(':').unwrap_or((s, "0"));
        Setting {
            lambda: l.parse().expect("LAMBDA"),
            alpha: a.parse().expect("ALPHA"),
        }
    }

    /// The next token: the best `main - lambda * contrast` log-probability among the
    /// tokens at least `alpha` times as likely as the likeliest (`main` alone without a
    /// contrast sequence).
    fn pick(self, main: &[f32], contrast: Option<&[f32]>) -> u32 {
        let floor = if self.alpha > 0.0 {
            main.iter().copied().fold(f32::NEG_INFINITY, f32::max) + self.alpha.ln()
        } else {
            f32::NEG_INFINITY
        };
        let mut best = (0u32, f32::NEG_INFINITY);
        for (id, &v) in main.iter().enumerate() {
            if v < floor {
                continue;
            }
            let score = match contrast {
                Some(o) => v - self.lambda * o[id],
                None => v,
            };
            if score > best.1 {
                best = (id as u32, score);
            }
        }
        best.0
    }
}

fn log_softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = logits.iter().map(|&l| (l - max).exp()).sum();
    let lse = max + sum.ln();
    logits.iter().map(|&l| l - lse).collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        eprintln!("usage: contrastive_probe MODEL.gguf SRC.ar OUT_PREFIX LAMBDA[:ALPHA] ...");
        std::process::exit(2);
    }
    let names: Vec<String> = args[3..].to_vec();
    let settings: Vec<Setting> = names.iter().map(|s| Setting::parse(s)).collect();
    let mut model = ChatModel::load(&PathBuf::from(&args[0]), &LoadOptions::default())?;
    let lines: Vec<String> = std::fs::read_to_string(&args[1])?
        .lines()
        .map(str::to_string)
        .collect();
    let prompt = |text: &str, model: &ChatModel| {
        model.prompt_tokens(&[
            Message::new("system", SYSTEM),
            Message::new("user", TRANSLATE.replace("{text}", text)),
        ])
    };
    let mut outs: Vec<std::io::BufWriter<std::fs::File>> = names
        .iter()
        .map(|n| std::fs::File::create(format!("{}.{n}.en", args[2])).map(std::io::BufWriter::new))
        .collect::<Result<_, _>>()?;
    // The tokens that end the answer (taken out: the loop holds the model mutably).
    let stops: Vec<u32> = {
        let tok = model.tokenizer();
        tok.end_of_turn.iter().copied().chain(tok.eos).collect()
    };
    let n = lines.len();
    let start = std::time::Instant::now();
    for (i, line) in lines.iter().enumerate() {
        let other = &lines[(i + n / 2) % n];
        let (main_ids, other_ids) = (prompt(line, &model)?, prompt(other, &model)?);
        let src_tokens = model.count_tokens(line)?;
        let max_new = src_tokens * 2 + 24;
        let t = model.transformer_mut();
        // Prefill both prompts (but their last token) once, then copy per setting.
        let (mut main0, mut other0) = (t.new_cache(), t.new_cache());
        let (mlast, olast) = (main_ids.len() - 1, other_ids.len() - 1);
        t.forward_batch(&mut [
            Step {
                cache: &mut main0,
                tokens: &main_ids[..mlast],
            },
            Step {
                cache: &mut other0,
                tokens: &other_ids[..olast],
            },
        ])?;
        let k = settings.len();
        let mut mains: Vec<_> = (0..k).map(|_| main0.clone()).collect();
        let mut others: Vec<_> = (0..k).map(|_| other0.clone()).collect();
        let mut done = vec![false; k];
        let mut generated: Vec<Vec<u32>> = vec![Vec::new(); k];
        while done.iter().any(|d| !d) {
            // One step: each running setting's main sequence, and its contrast sequence
            // when it has one.
            let mut steps = Vec::new();
            let mut owners = Vec::new();
            let (mut mi, mut oi) = (mains.iter_mut(), others.iter_mut());
            for s in 0..k {
                let (m, o) = (mi.next().unwrap(), oi.next().unwrap());
                if done[s] {
                    continue;
                }
                // The prompts' last tokens first, then the token chosen last.
                let (main_next, other_next) = match generated[s].last() {
                    Some(id) => (std::slice::from_ref(id), std::slice::from_ref(id)),
                    None => (&main_ids[mlast..], &other_ids[olast..]),
                };
                steps.push(Step {
                    cache: m,
                    tokens: main_next,
                });
                owners.push((s, false));
                if settings[s].lambda != 0.0 {
                    steps.push(Step {
                        cache: o,
                        tokens: other_next,
                    });
                    owners.push((s, true));
                }
            }
            let logits = t.forward_batch(&mut steps)?;
            drop(steps);
            let mut main_lp: Vec<Option<Vec<f32>>> = vec![None; k];
            let mut other_lp: Vec<Option<Vec<f32>>> = vec![None; k];
            for ((s, contrast), l) in owners.into_iter().zip(logits) {
                let lp = log_softmax(&l.to_vec1::<f32>()?);
                if contrast {
                    other_lp[s] = Some(lp);
                } else {
                    main_lp[s] = Some(lp);
                }
            }
            for s in 0..k {
                let Some(lp) = &main_lp[s] else { continue };
                let id = settings[s].pick(lp, other_lp[s].as_deref());
                if stops.contains(&id) {
                    done[s] = true;
                    continue;
                }
                generated[s].push(id);
                if generated[s].len() >= max_new {
                    done[s] = true;
                }
            }
        }
        for (s, out) in outs.iter_mut().enumerate() {
            let text = model.tokenizer().decode(&generated[s], true)?;
            let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
            writeln!(out, "{text}")?;
            out.flush()?;
        }
        eprintln!("{}/{n} {:.0} s", i + 1, start.elapsed().as_secs_f64());
    }
    Ok(())
}
