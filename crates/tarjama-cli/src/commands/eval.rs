//! `tarjama eval`: score hypothesis files against a reference file with sacreBLEU-exact
//! BLEU, chrF and chrF++ and rouge-score-exact ROUGE, optionally with sacreBLEU's paired
//! bootstrap test. One segment per line; the output mirrors `sacrebleu`'s text output, or
//! is JSON with `--json`.
//!
//! The JSON document (`format_version` 1; keys are only ever added):
//!
//! ```text
//! { "format_version": 1, "references": [PATH, ...], "n_segments": N,
//!   "sacrebleu_version": "2.6.0", "rouge_score_version": "0.1.2",
//!   "bootstrap": { "n_samples": 1000, "seed": 12345 }            // with --paired-bs
//!   "systems": [ { "hyp": PATH, "baseline": BOOL,
//!     "metrics": [ { "name": "BLEU" | "chrF2" | "chrF2++" | "ROUGE-1" | ...,
//!                    "score": F64,   // 0..100 for BLEU/chrF, mean F-measure 0..1 for ROUGE
//!                    "signature": STR,
//!                    "bleu": { counts, totals, precisions, bp, ratio, sys_len, ref_len, verbose },
//!                    "rouge": { precision, recall, fmeasure },            // means
//!                    "bootstrap": { mean, ci, p_value } } ],  // p_value null for the baseline
//!     "segments": [ [ { "name", "score", "rouge"? } ] ],          // with --sentence-level
//!     "glossary": { terms, present, percent, missing: [[LINE, EN]] },  // with --glossary
//!     "facts": { facts, found, percent, not_found: [[LINE, FACT]] } } ] }  // with --facts
//! ```
//!
//! Why one file of over 700 lines: its text and JSON outputs mirror sacreBLEU's own, line
//! for line, beside the argument handling they depend on; splitting them would scatter
//! that correspondence.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Serialize;
use tarjama_eval::bleu::{self, BleuConfig, BleuScore, Smoothing};
use tarjama_eval::bootstrap::{self, BootstrapConfig, Estimate};
use tarjama_eval::chrf::{self, ChrfConfig};
use tarjama_eval::rouge::{RougeMetric, RougeScore, RougeScorer, RougeType};
use tarjama_eval::tokenize::Tokenizer;
use tarjama_eval::{CorpusMetric, Signature};

use super::eval_checks;
use crate::exit;

/// Flags of `tarjama eval`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  tarjama eval --ref en.txt --hyp out.txt                       BLEU and chrF, as sacreBLEU prints them
  tarjama eval --ref en.txt --hyp a.txt --hyp b.txt --paired-bs  is b better than a? (paired bootstrap)
  tarjama eval --ref summary.txt --hyp ours.txt --metrics rouge --json
  tarjama eval --ref en.txt --hyp out.txt --glossary names.tsv --src ar.txt   are the names as the glossary says?
  tarjama eval --ref translation.txt --hyp summaries.txt --facts   names and numbers the source lacks")]
pub struct Args {
    /// Reference file, one segment per line (UTF-8). Repeat for several references per
    /// segment (sacreBLEU's multi-reference BLEU and chrF, rouge-score's score_multi).
    #[arg(long = "ref", value_name = "REF", required = true)]
    references: Vec<PathBuf>,

    /// Hypothesis file, one segment per line, aligned with the reference; `-` reads standard
    /// input. Repeat for several systems; with --paired-bs the first is the baseline.
    #[arg(long = "hyp", value_name = "HYP", required = true)]
    hyps: Vec<PathBuf>,

    /// Metrics to compute, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "bleu,chrf")]
    metrics: Vec<MetricName>,

    #[command(flatten)]
    bleu: BleuFlags,

    #[command(flatten)]
    bootstrap: BootstrapFlags,

    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,

    /// Also score every segment (sentence BLEU uses the effective order, as sacreBLEU's).
    #[arg(long)]
    sentence_level: bool,

    /// Decimals printed for BLEU and chrF (ROUGE gets two more). sacreBLEU prints 1.
    #[arg(long, default_value_t = 2, value_name = "N")]
    width: usize,

    /// Lowercase hypotheses and references before scoring (sacreBLEU's -lc).
    #[arg(long)]
    lowercase: bool,

    /// Turn off ROUGE's Porter stemmer (on by default, as in most summarization papers).
    #[arg(long)]
    no_stemmer: bool,

    /// Marker that separates sentences inside a segment for ROUGE-Lsum (e.g. `<n>`, as in
    /// CNN/DailyMail files); rouge-score splits Lsum on newlines, which a one-segment-per-line
    /// file cannot hold, so without a marker ROUGE-Lsum equals ROUGE-L.
    #[arg(long, value_name = "MARKER")]
    rouge_sentence_sep: Option<String>,

    /// Glossary adherence: of the glossary's terms found in each --src line, the share
    /// whose English the hypothesis line has (a glossary as `translate --glossary` takes).
    #[arg(long, value_name = "FILE", requires = "src")]
    glossary: Option<PathBuf>,

    /// The source (Arabic) file, one segment per line, for --glossary.
    #[arg(long, value_name = "SRC", requires = "glossary")]
    src: Option<PathBuf>,

    /// Facts check, for summaries: the share of the hypotheses' names and numbers that the
    /// reference line has (give the source's translation as --ref).
    #[arg(long)]
    facts: bool,
}

/// BLEU options, named as sacreBLEU names them.
#[derive(Debug, clap::Args)]
struct BleuFlags {
    /// BLEU tokenizer.
    #[arg(long, value_enum, default_value = "13a")]
    tokenize: TokenizerName,

    /// BLEU smoothing method.
    #[arg(long, value_enum, default_value = "exp")]
    smooth: SmoothName,

    /// Value for floor (default 0.1) or add-k (default 1) smoothing.
    #[arg(long, value_name = "X")]
    smooth_value: Option<f64>,
}

/// Bootstrap options.
#[derive(Debug, clap::Args)]
struct BootstrapFlags {
    /// sacreBLEU's paired bootstrap resampling: mean and 95% CI for each system, and with
    /// two or more hypothesis files the p-value of each one's difference to the first.
    #[arg(long)]
    paired_bs: bool,

    /// Bootstrap resamples.
    #[arg(
        long,
        default_value_t = bootstrap::DEFAULT_SAMPLES,
        value_name = "N",
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
    )]
    bootstrap_samples: usize,

    /// Seed of the resampling (results are identical for the same seed on every machine).
    #[arg(long, default_value_t = bootstrap::DEFAULT_SEED)]
    seed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum MetricName {
    Bleu,
    Chrf,
    #[value(name = "chrf++")]
    ChrfPlusPlus,
    Rouge,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum TokenizerName {
    #[value(name = "13a")]
    Mteval13a,
    None,
    Intl,
    Char,
}

impl From<TokenizerName> for Tokenizer {
    fn from(name: TokenizerName) -> Self {
        match name {
            TokenizerName::Mteval13a => Tokenizer::Mteval13a,
            TokenizerName::None => Tokenizer::None,
            TokenizerName::Intl => Tokenizer::Intl,
            TokenizerName::Char => Tokenizer::Char,
        }
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum SmoothName {
    Exp,
    Floor,
    #[value(name = "add-k")]
    AddK,
    None,
}

impl SmoothName {
    fn name(self) -> &'static str {
        match self {
            SmoothName::Exp => "exp",
            SmoothName::Floor => "floor",
            SmoothName::AddK => "add-k",
            SmoothName::None => "none",
        }
    }
}

/// Reads a file of segments (`-`: standard input), naming the file in every error.
fn read_segments(path: &Path) -> anyhow::Result<Vec<String>> {
    let bytes = if path == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("cannot read standard input")?;
        bytes
    } else {
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?
    };
    let text = String::from_utf8(bytes).map_err(|err| {
        let at = err.utf8_error().valid_up_to();
        let line = err.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        anyhow::anyhow!(
            "{} is not valid UTF-8 (line {line}, byte offset {at})",
            path.display()
        )
    })?;
    Ok(tarjama_eval::split_segments(&text)
        .into_iter()
        .map(str::to_string)
        .collect())
}

/// Everything computed for one metric of one system.
#[derive(Debug, Serialize)]
struct MetricResult {
    /// Display name: BLEU, chrF2, chrF2++, ROUGE-1, ...
    name: String,
    /// Headline number: 0..100 for BLEU and chrF, F-measure 0..1 for ROUGE.
    score: f64,
    signature: String,
    /// sacreBLEU's signature, kept typed so the bootstrap can add `bs:` and `seed:`.
    #[serde(skip)]
    sacrebleu_signature: Option<Signature>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bleu: Option<BleuDetails>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rouge: Option<RougeScore>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bootstrap: Option<BootstrapResult>,
}

#[derive(Debug, Serialize)]
struct BleuDetails {
    counts: Vec<u64>,
    totals: Vec<u64>,
    precisions: Vec<f64>,
    bp: f64,
    ratio: f64,
    sys_len: u64,
    ref_len: u64,
    verbose: String,
}

#[derive(Debug, Serialize)]
struct BootstrapResult {
    mean: f64,
    ci: f64,
    /// Against the baseline; absent for the baseline itself.
    p_value: Option<f64>,
}

#[derive(Debug, Serialize)]
struct SystemResult {
    hyp: String,
    baseline: bool,
    metrics: Vec<MetricResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    segments: Option<Vec<Vec<SegmentScore>>>,
    /// With --glossary.
    #[serde(skip_serializing_if = "Option::is_none")]
    glossary: Option<eval_checks::GlossaryCheck>,
    /// With --facts.
    #[serde(skip_serializing_if = "Option::is_none")]
    facts: Option<eval_checks::FactsCheck>,
}

#[derive(Debug, Serialize)]
struct SegmentScore {
    name: String,
    score: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    rouge: Option<RougeScore>,
}

#[derive(Debug, Serialize)]
struct Report {
    format_version: u32,
    references: Vec<String>,
    n_segments: usize,
    sacrebleu_version: &'static str,
    rouge_score_version: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    bootstrap: Option<BootstrapConfig>,
    systems: Vec<SystemResult>,
}

/// The metrics asked for, configured once.
struct Plan {
    bleu: Option<BleuConfig>,
    chrf: Vec<ChrfConfig>,
    rouge: Option<RougeScorer>,
    rouge_sentence_sep: Option<String>,
}

impl Plan {
    fn new(args: &Args) -> anyhow::Result<Self> {
        let smoothing = Smoothing::from_name(args.bleu.smooth.name(), args.bleu.smooth_value)?;
        let wants = |m| args.metrics.contains(&m);
        Ok(Plan {
            bleu: wants(MetricName::Bleu).then(|| BleuConfig {
                tokenizer: args.bleu.tokenize.into(),
                smoothing,
                lowercase: args.lowercase,
                ..BleuConfig::default()
            }),
            chrf: [(MetricName::Chrf, 0), (MetricName::ChrfPlusPlus, 2)]
                .into_iter()
                .filter(|&(m, _)| wants(m))
                .map(|(_, word_order)| ChrfConfig {
                    word_order,
                    lowercase: args.lowercase,
                    ..ChrfConfig::default()
                })
                .collect(),
            rouge: wants(MetricName::Rouge)
                .then(|| RougeScorer::new(&RougeType::STANDARD, !args.no_stemmer)),
            rouge_sentence_sep: args.rouge_sentence_sep.clone().filter(|s| !s.is_empty()),
        })
    }

    /// ROUGE's view of the segments: the sentence marker turned into the newline that
    /// rouge-score's Lsum splits on (a newline is a plain separator for the other types).
    fn rouge_text<'a>(&self, segments: &[&'a str]) -> Vec<Cow<'a, str>> {
        segments
            .iter()
            .map(|s| match &self.rouge_sentence_sep {
                Some(sep) if s.contains(sep.as_str()) => Cow::Owned(s.replace(sep.as_str(), "\n")),
                _ => Cow::Borrowed(*s),
            })
            .collect()
    }

    /// The metrics as bootstrappable corpus metrics, in report order, each with whether it
    /// reads ROUGE's view of the text ([`Plan::rouge_text`]).
    fn corpus_metrics(&self) -> Vec<(Box<dyn CorpusMetric>, bool)> {
        let mut out: Vec<(Box<dyn CorpusMetric>, bool)> = Vec::new();
        if let Some(bleu) = &self.bleu {
            out.push((Box::new(bleu.clone()), false));
        }
        for chrf in &self.chrf {
            out.push((Box::new(*chrf), false));
        }
        if let Some(rouge) = &self.rouge {
            for &kind in rouge.types() {
                let metric = RougeMetric {
                    kind,
                    use_stemmer: rouge.use_stemmer(),
                };
                out.push((Box::new(metric), true));
            }
        }
        out
    }

    fn score(&self, hyps: &[&str], refs: &[&[&str]]) -> anyhow::Result<Vec<MetricResult>> {
        let mut out = Vec::new();
        if let Some(config) = &self.bleu {
            let s: BleuScore = bleu::corpus_bleu_multi(hyps, refs, config)?;
            out.push(MetricResult {
                name: "BLEU".to_string(),
                score: s.score,
                signature: s.signature.to_string(),
                sacrebleu_signature: Some(s.signature.clone()),
                bleu: Some(BleuDetails {
                    verbose: s.verbose(),
                    counts: s.counts,
                    totals: s.totals,
                    precisions: s.precisions,
                    bp: s.bp,
                    ratio: s.ratio,
                    sys_len: s.sys_len,
                    ref_len: s.ref_len,
                }),
                rouge: None,
                bootstrap: None,
            });
        }
        for config in &self.chrf {
            let s = chrf::corpus_chrf_multi(hyps, refs, config)?;
            out.push(MetricResult {
                name: s.name,
                score: s.score,
                signature: s.signature.to_string(),
                sacrebleu_signature: Some(s.signature),
                bleu: None,
                rouge: None,
                bootstrap: None,
            });
        }
        if let Some(scorer) = &self.rouge {
            let rouge_refs: Vec<Vec<Cow<str>>> = refs.iter().map(|r| self.rouge_text(r)).collect();
            let rouge_refs: Vec<&[Cow<str>]> = rouge_refs.iter().map(Vec::as_slice).collect();
            let corpus = scorer.score_corpus_multi(&rouge_refs, &self.rouge_text(hyps))?;
            let signature = match &self.rouge_sentence_sep {
                Some(sep) => scorer.signature().replacen(
                    "|rouge-score:",
                    &format!("|sent-sep:{sep}|rouge-score:"),
                    1,
                ),
                None => scorer.signature(),
            };
            for (kind, mean) in corpus.types.iter().zip(corpus.mean) {
                out.push(MetricResult {
                    name: kind.display_name(),
                    score: mean.fmeasure,
                    signature: signature.clone(),
                    sacrebleu_signature: None,
                    bleu: None,
                    rouge: Some(mean),
                    bootstrap: None,
                });
            }
        }
        Ok(out)
    }

    /// Per-segment scores; `refs[i]` holds the references of segment `i`.
    fn score_segments(
        &self,
        hyps: &[&str],
        refs: &[Vec<&str>],
    ) -> anyhow::Result<Vec<Vec<SegmentScore>>> {
        let sentence_bleu = self.bleu.as_ref().map(|c| BleuConfig {
            effective_order: true,
            ..c.clone()
        });
        hyps.iter()
            .zip(refs)
            .map(|(hyp, references)| {
                let mut row = Vec::new();
                if let Some(config) = &sentence_bleu {
                    let s = bleu::sentence_bleu(hyp, references, config)?;
                    row.push(SegmentScore {
                        name: "BLEU".to_string(),
                        score: s.score,
                        rouge: None,
                    });
                }
                for config in &self.chrf {
                    let s = chrf::sentence_chrf(hyp, references, config)?;
                    row.push(SegmentScore {
                        name: s.name,
                        score: s.score,
                        rouge: None,
                    });
                }
                if let Some(scorer) = &self.rouge {
                    let targets = self.rouge_text(references);
                    let prediction = &self.rouge_text(&[hyp])[0];
                    for (kind, s) in scorer.score_multi(&targets, prediction) {
                        row.push(SegmentScore {
                            name: kind.display_name(),
                            score: s.fmeasure,
                            rouge: Some(s),
                        });
                    }
                }
                Ok(row)
            })
            .collect()
    }
}

/// The reference streams and hypothesis files, checked to line up.
struct Inputs {
    /// One vector of segments per reference file.
    refs: Vec<Vec<String>>,
    /// One vector of segments per hypothesis file.
    systems: Vec<Vec<String>>,
}

fn read_inputs(args: &Args) -> anyhow::Result<Inputs> {
    let first_ref = &args.references[0];
    let refs = args
        .references
        .iter()
        .map(|path| read_segments(path))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let n = refs[0].len();
    if n == 0 {
        bail!("reference {} has no lines", first_ref.display());
    }
    let same_length = |kind: &str, path: &Path, len: usize| -> anyhow::Result<()> {
        if len != n {
            bail!(
                "line counts differ: {kind} {} has {len} lines, reference {} has {n}",
                path.display(),
                first_ref.display()
            );
        }
        Ok(())
    };
    for (path, r) in args.references.iter().zip(&refs).skip(1) {
        same_length("reference", path, r.len())?;
    }
    let systems = args
        .hyps
        .iter()
        .map(|path| {
            let hyps = read_segments(path)?;
            same_length("hypothesis", path, hyps.len())?;
            warn_if_tokenized(path, &hyps);
            Ok(hyps)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Inputs { refs, systems })
}

/// sacreBLEU's warning: 100 or more lines ending in a separated period suggest tokenized
/// output, which BLEU's own tokenizer then splits again and scores unfairly.
fn warn_if_tokenized(path: &Path, hyps: &[String]) {
    let tokenized = hyps.iter().filter(|h| h.ends_with(" .")).count();
    if tokenized >= 100 {
        tracing::warn!(
            "{} has {tokenized} lines that end in a tokenized period (' .'); \
             detokenize system output before scoring it",
            path.display()
        );
    }
}

fn as_strs(lines: &[String]) -> Vec<&str> {
    lines.iter().map(String::as_str).collect()
}

/// Runs `tarjama eval`.
pub fn run(args: Args) -> anyhow::Result<i32> {
    if args.metrics.is_empty() {
        bail!("--metrics is empty; choose from bleu, chrf, chrf++, rouge");
    }
    let plan = Plan::new(&args)?;
    let inputs = read_inputs(&args)?;
    let n = inputs.refs[0].len();
    let ref_streams: Vec<Vec<&str>> = inputs.refs.iter().map(|r| as_strs(r)).collect();
    let ref_view: Vec<&[&str]> = ref_streams.iter().map(Vec::as_slice).collect();
    let refs_by_segment: Vec<Vec<&str>> = (0..n)
        .map(|i| ref_streams.iter().map(|s| s[i]).collect())
        .collect();
    let views: Vec<Vec<&str>> = inputs.systems.iter().map(|s| as_strs(s)).collect();
    let bootstrap_config = args.bootstrap.paired_bs.then_some(BootstrapConfig {
        n_samples: args.bootstrap.bootstrap_samples,
        seed: args.bootstrap.seed,
    });

    let checks = match (&args.glossary, &args.src) {
        (Some(glossary), Some(src)) => {
            let glossary = tarjama_pipeline::Glossary::load(glossary)?;
            let sources = read_segments(src)?;
            if sources.len() != n {
                bail!(
                    "line counts differ: source {} has {} lines, reference {} has {n}",
                    src.display(),
                    sources.len(),
                    args.references[0].display()
                );
            }
            Some((glossary, sources))
        }
        _ => None,
    };

    let mut results = Vec::new();
    for (i, (path, hyps)) in args.hyps.iter().zip(&views).enumerate() {
        results.push(SystemResult {
            hyp: path.display().to_string(),
            baseline: bootstrap_config.is_some() && i == 0 && args.hyps.len() > 1,
            metrics: plan.score(hyps, &ref_view)?,
            segments: if args.sentence_level {
                Some(plan.score_segments(hyps, &refs_by_segment)?)
            } else {
                None
            },
            glossary: checks
                .as_ref()
                .map(|(g, sources)| eval_checks::glossary(g, &as_strs(sources), hyps)),
            facts: args
                .facts
                .then(|| eval_checks::facts(hyps, &refs_by_segment)),
        });
    }
    if let Some(config) = &bootstrap_config {
        attach_bootstrap(&plan, &views, &ref_view, config, &mut results)?;
    }

    let report = Report {
        format_version: 1,
        references: args
            .references
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        n_segments: n,
        sacrebleu_version: tarjama_eval::SACREBLEU_VERSION,
        rouge_score_version: tarjama_eval::ROUGE_SCORE_VERSION,
        bootstrap: bootstrap_config,
        systems: results,
    };
    let text = if args.json {
        serde_json::to_string_pretty(&report)? + "\n"
    } else {
        render_text(&report, args.width)
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(exit::SUCCESS)
}

/// Runs sacreBLEU's paired bootstrap for every metric (the first system is the baseline)
/// and records mean, interval and p-value in `results`.
fn attach_bootstrap(
    plan: &Plan,
    systems: &[Vec<&str>],
    refs: &[&[&str]],
    config: &BootstrapConfig,
    results: &mut [SystemResult],
) -> anyhow::Result<()> {
    let rouge_refs: Vec<Vec<Cow<str>>> = refs.iter().map(|r| plan.rouge_text(r)).collect();
    let rouge_refs: Vec<Vec<&str>> = rouge_refs
        .iter()
        .map(|r| r.iter().map(AsRef::as_ref).collect())
        .collect();
    let rouge_refs: Vec<&[&str]> = rouge_refs.iter().map(Vec::as_slice).collect();
    let rouge_systems: Vec<Vec<Cow<str>>> = systems.iter().map(|h| plan.rouge_text(h)).collect();
    let rouge_systems: Vec<Vec<&str>> = rouge_systems
        .iter()
        .map(|h| h.iter().map(AsRef::as_ref).collect())
        .collect();
    for (m, (metric, reads_rouge_text)) in plan.corpus_metrics().iter().enumerate() {
        let (hyps, refs) = if *reads_rouge_text {
            (&rouge_systems[..], &rouge_refs[..])
        } else {
            (systems, refs)
        };
        let stats = hyps
            .iter()
            .map(|h| metric.segment_stats_multi(h, refs))
            .collect::<Result<Vec<_>, _>>()?;
        let others: Vec<&[Vec<f64>]> = stats[1..].iter().map(Vec::as_slice).collect();
        let (base, paired) =
            bootstrap::paired_bootstrap(metric.as_ref(), &stats[0], &others, config)?;
        let fill = |result: &mut MetricResult, e: Estimate, p_value: Option<f64>| {
            result.bootstrap = Some(BootstrapResult {
                mean: e.mean,
                ci: e.ci,
                p_value,
            });
            // sacreBLEU adds `bs:` and `seed:` to its signatures; ROUGE's has no such fields.
            if let Some(sig) = &result.sacrebleu_signature {
                result.signature = sig
                    .clone()
                    .with_bootstrap(config.n_samples, config.seed)
                    .to_string();
            }
        };
        fill(&mut results[0].metrics[m], base, None);
        for (system, r) in results[1..].iter_mut().zip(paired) {
            fill(&mut system.metrics[m], r.estimate, Some(r.p_value));
        }
    }
    Ok(())
}

fn is_rouge(m: &MetricResult) -> bool {
    m.rouge.is_some()
}

fn fmt_score(m: &MetricResult, width: usize) -> String {
    let w = if is_rouge(m) { width + 2 } else { width };
    format!("{:.w$}", m.score)
}

/// sacreBLEU-style text: one line per metric for a single system; a table for several
/// systems or with the bootstrap, followed by the signatures.
fn render_text(report: &Report, width: usize) -> String {
    let mut out = String::new();
    if report.systems.len() == 1 && report.bootstrap.is_none() {
        for m in &report.systems[0].metrics {
            let _ = write!(out, "{}|{} = {}", m.name, m.signature, fmt_score(m, width));
            if let Some(b) = &m.bleu {
                let _ = write!(out, " {}", b.verbose);
            }
            if let Some(r) = &m.rouge {
                let w = width + 2;
                let _ = write!(
                    out,
                    " (P = {:.w$} R = {:.w$} F = {:.w$})",
                    r.precision, r.recall, r.fmeasure
                );
            }
            out.push('\n');
        }
    } else {
        out.push_str(&render_table(report, width));
    }
    for system in &report.systems {
        if let Some(g) = &system.glossary {
            let _ = writeln!(
                out,
                "Glossary terms in {}: {} of {} ({:.1}%)",
                system.hyp, g.present, g.terms, g.percent
            );
            for (line, english) in &g.missing {
                let _ = writeln!(out, "  line {line}: no \"{english}\"");
            }
        }
        if let Some(f) = &system.facts {
            let _ = writeln!(
                out,
                "Names and numbers of {} found in the reference: {} of {} ({:.1}%)",
                system.hyp, f.found, f.facts, f.percent
            );
            for (line, fact) in &f.not_found {
                let _ = writeln!(out, "  line {line}: {fact}");
            }
        }
        if let Some(segments) = &system.segments {
            render_segments(&mut out, &system.hyp, segments, width);
        }
    }
    out
}

fn render_table(report: &Report, width: usize) -> String {
    let Some(first) = report.systems.first() else {
        return String::new();
    };
    let with_ci = report.bootstrap.is_some();
    let mut header = vec!["System".to_string()];
    header.extend(first.metrics.iter().map(|m| {
        if with_ci {
            format!("{} (μ ± 95% CI)", m.name)
        } else {
            m.name.clone()
        }
    }));
    let mut rows: Vec<Vec<String>> = vec![header];
    for system in &report.systems {
        let name = if system.baseline {
            format!("Baseline: {}", system.hyp)
        } else {
            system.hyp.clone()
        };
        let mut row = vec![name];
        let mut p_row = vec![String::new()];
        for m in &system.metrics {
            let w = if is_rouge(m) { width + 2 } else { width };
            match &m.bootstrap {
                Some(b) => {
                    row.push(format!(
                        "{} ({:.w$} ± {:.w$})",
                        fmt_score(m, width),
                        b.mean,
                        b.ci
                    ));
                    p_row.push(match b.p_value {
                        Some(p) => format!("(p = {p:.4}){}", if p < 0.05 { "*" } else { "" }),
                        None => String::new(),
                    });
                }
                None => row.push(fmt_score(m, width)),
            }
        }
        rows.push(row);
        if p_row.iter().any(|c| !c.is_empty()) {
            rows.push(p_row);
        }
    }
    let columns = rows[0].len();
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (cell, &w))| {
                let pad = w - cell.chars().count();
                if c == 0 {
                    format!("{cell}{}", " ".repeat(pad))
                } else {
                    format!("{}{cell}", " ".repeat(pad))
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
        if i == 0 {
            let total: usize = widths.iter().sum::<usize>() + 2 * (columns - 1);
            out.push_str(&"-".repeat(total));
            out.push('\n');
        }
    }
    if let Some(config) = &report.bootstrap {
        let _ = writeln!(
            out,
            "\nPaired bootstrap resampling with {} resamples (seed {}); p < 0.05 is marked with *.",
            config.n_samples, config.seed
        );
        if report.systems.len() > 1 {
            let _ = writeln!(
                out,
                "Each system is compared with the baseline; the p-value is the chance of a difference \
                 this large if both came from the same process."
            );
        }
    }
    out.push_str("\nMetric signatures:\n");
    let name_width = first
        .metrics
        .iter()
        .map(|m| m.name.len())
        .max()
        .unwrap_or(0);
    for m in &first.metrics {
        let _ = writeln!(out, " - {:<name_width$}  {}", m.name, m.signature);
    }
    out
}

fn render_segments(out: &mut String, hyp: &str, segments: &[Vec<SegmentScore>], width: usize) {
    // sacreBLEU's `-sl` turns on the effective order for sentence BLEU; so do we.
    let _ = writeln!(
        out,
        "\nSegment scores for {hyp} (sentence BLEU with eff:yes):"
    );
    if let Some(first) = segments.first() {
        let names: Vec<&str> = first.iter().map(|s| s.name.as_str()).collect();
        let _ = writeln!(out, "segment\t{}", names.join("\t"));
    }
    for (i, row) in segments.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .map(|s| {
                let w = if s.rouge.is_some() { width + 2 } else { width };
                format!("{:.w$}", s.score)
            })
            .collect();
        let _ = writeln!(out, "{}\t{}", i + 1, cells.join("\t"));
    }
}
