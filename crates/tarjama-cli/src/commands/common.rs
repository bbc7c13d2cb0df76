//! Flags and helpers shared by the commands that run a model; the model flags
//! themselves, and building the engine from them, are `tarjama_loader`'s.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use tarjama_chat::SamplingParams;
use tarjama_loader::{ModelArgs, Target};
use tarjama_pipeline::{Candidates, Glossary};
use tarjama_text::{Normalizer, Profile};

use crate::progress::Reporter;

/// Several candidates per request, chosen among by minimum Bayes risk.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Quality")]
pub struct CandidateArgs {
    /// Candidates per request to a chat model: the greedy answer and N-1 samples, decoded
    /// together in one batch; each sentence keeps the candidate that agrees most with the
    /// others (minimum Bayes risk with sentence chrF++). Candidates still in Arabic, empty
    /// or looping are dropped first. About N times the decoding work. Encoder-decoders:
    /// the beam's N best hypotheses (at least N beams) are chosen among. Summaries: the
    /// candidate with the best agreement plus faithfulness wins (its names and numbers
    /// checked against a translation of the article, made for that).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub candidates: usize,
    #[command(flatten)]
    pub sampling: CandidateSampling,
}

impl CandidateArgs {
    /// The pipeline's candidate settings.
    pub fn candidates(&self) -> Candidates {
        self.sampling.candidates(self.candidates)
    }
}

/// How the candidates after the greedy one are sampled (`translate`, `summarize` and
/// `bench` share these flags).
#[derive(Debug, Clone, clap::Args, serde::Serialize, serde::Deserialize)]
#[command(next_help_heading = "Quality")]
pub struct CandidateSampling {
    /// Temperature of the sampled candidates.
    #[arg(long, default_value_t = Candidates::default().temperature, value_name = "T")]
    pub candidate_temperature: f64,
    /// Epsilon sampling of the candidates: tokens less likely than this are never drawn
    /// (0: no cut).
    #[arg(long, default_value_t = Candidates::default().epsilon.unwrap_or(0.0), value_name = "E")]
    pub candidate_epsilon: f64,
}

impl CandidateSampling {
    /// The pipeline's settings for `n` candidates sampled this way.
    pub fn candidates(&self, n: usize) -> Candidates {
        Candidates {
            n: n.max(1),
            temperature: self.candidate_temperature,
            epsilon: (self.candidate_epsilon > 0.0).then_some(self.candidate_epsilon),
        }
    }
}

/// A glossary file.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Quality")]
pub struct GlossaryArgs {
    /// How names and terms are written in English: a TSV or CSV file of `Arabic term,
    /// English term` lines (# comments and a header line allowed). Chat models: the
    /// entries found in a request go into its prompt, and a sentence that still misses a
    /// term is asked for once more. Encoder-decoders: a sentence with terms is decoded by
    /// constrained beam search, which writes them. A term of the source whose English
    /// the output lacks is reported.
    #[arg(long, value_name = "FILE")]
    pub glossary: Option<PathBuf>,
}

impl GlossaryArgs {
    /// The glossary, read and checked, if one was given.
    pub fn load(&self) -> anyhow::Result<Option<Arc<Glossary>>> {
        match &self.glossary {
            None => Ok(None),
            Some(path) => Ok(Some(Arc::new(Glossary::load(path)?))),
        }
    }
}

/// How tokens are chosen.
#[derive(Debug, Clone, clap::Args)]
pub struct SamplingArgs {
    /// Sampling temperature; 0 is greedy and deterministic.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f64,
    /// Sample among the k most likely tokens only.
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Sample among the most likely tokens up to this total probability.
    #[arg(long)]
    pub top_p: Option<f64>,
    /// Random seed for sampling.
    #[arg(long, default_value_t = 299_792_458)]
    pub seed: u64,
    /// Penalty on recently used tokens (1 = none).
    #[arg(long, default_value_t = 1.0)]
    pub repetition_penalty: f32,
    /// Cap on generated tokens per request.
    #[arg(long = "max-tokens")]
    pub max_tokens: Option<usize>,
    /// Stop generating at this string (repeatable).
    #[arg(long = "stop")]
    pub stop: Vec<String>,
}

impl SamplingArgs {
    /// The sampling parameters, with `default_max` when `--max-tokens` is absent.
    pub fn params(&self, default_max: usize) -> SamplingParams {
        SamplingParams {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            seed: self.seed,
            repetition_penalty: self.repetition_penalty,
            max_new_tokens: self.max_tokens.unwrap_or(default_max),
            stop: self.stop.clone(),
            ..SamplingParams::default()
        }
    }
}

/// `--normalize mt|search|none`.
pub fn normalizer(profile: &str) -> anyhow::Result<Option<Normalizer>> {
    let profile: Profile = profile
        .parse()
        .with_context(|| format!("--normalize {profile}"))?;
    Ok(match profile {
        Profile::None => None,
        p => Some(Normalizer::new(p)),
    })
}

/// Finds the model (`tarjama_loader::target`), a download's progress on stderr unless
/// `quiet`.
pub fn target(args: &ModelArgs, quiet: bool) -> anyhow::Result<Target> {
    tarjama_loader::target(args, quiet, &mut Reporter::new(quiet))
}

/// Expands the command line's inputs: `-` or nothing is stdin; folders are walked as
/// `translate` walks them (sorted, hidden entries skipped), for plain-text files.
pub fn expand_inputs(inputs: &[String]) -> anyhow::Result<Vec<tarjama_text::Source>> {
    use tarjama_batch::inputs::{self, Kind, Selection};
    if inputs.is_empty() {
        return Ok(vec![tarjama_text::Source::Stdin]);
    }
    let mut out = Vec::new();
    for arg in inputs {
        if arg != "-" && Path::new(arg).is_dir() {
            let (found, errors) =
                inputs::collect(std::slice::from_ref(arg), &Selection::default())?;
            if let Some(e) = errors.first() {
                anyhow::bail!("{}: {}", e.path, e.reason);
            }
            out.extend(
                found
                    .into_iter()
                    .filter(|i| i.kind == Some(Kind::Text))
                    .map(|i| i.source),
            );
        } else {
            out.push(tarjama_text::Source::from_arg(arg));
        }
    }
    Ok(out)
}
