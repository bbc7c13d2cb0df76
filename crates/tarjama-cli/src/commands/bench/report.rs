//! Turning workers' raw measurements into the report: quality scores, speed medians,
//! summary statistics; printed as a terminal table, JSON, or an HTML page with a
//! quality-vs-speed plot.
//!
//! Why one file of over 700 lines: the three renderings (table, JSON, HTML with its plot)
//! draw on one set of rows, and keeping them side by side keeps their columns in step.

use std::collections::HashSet;
use std::fmt::Write as _;

use serde::Serialize;
use tarjama_eval::bleu::{corpus_bleu, BleuConfig};
use tarjama_eval::chrf::{corpus_chrf, ChrfConfig};
use tarjama_eval::rouge::{RougeScorer, RougeType};

use super::data::Article;
use super::stats::{median, percentile_interpolated, round};
use super::worker::{SentenceTiming, SummarizeRun, Throughput, TranslateRun, WorkerResult};
use crate::machine::Machine;

/// Version of the JSON layout; bumped when a field changes meaning or goes away.
pub const SCHEMA: u32 = 1;

/// The whole benchmark.
#[derive(Debug, Serialize)]
pub struct BenchReport {
    /// [`SCHEMA`].
    pub schema: u32,
    /// `translate` or `summarize`.
    pub task: String,
    /// What was measured on.
    pub dataset: Dataset,
    /// How.
    pub settings: Settings,
    /// Where.
    pub machine: Machine,
    /// One entry per model that ran.
    pub models: Vec<ModelReport>,
    /// Models that failed, with the error.
    pub failures: Vec<Failure>,
    /// What the numbers mean and do not mean.
    pub notes: Vec<String>,
}

/// The data a benchmark ran on.
#[derive(Debug, Serialize)]
pub struct Dataset {
    /// Its name or path.
    pub name: String,
    /// Sentences (translate) or articles (summarize) used.
    pub items: usize,
    /// How many were available before `--limit`.
    pub available: usize,
}

/// The settings of the run.
#[derive(Debug, Serialize)]
pub struct Settings {
    /// Repeated speed runs over the subset.
    pub runs: usize,
    /// Sentences in the speed subset.
    pub speed_subset: usize,
    /// Cap on generated tokens per request.
    pub max_tokens: usize,
    /// Decoding: greedy, and how the `--candidates` rows sample theirs.
    pub decoding: String,
}

/// A model that could not be measured.
#[derive(Debug, Serialize)]
pub struct Failure {
    /// The model spec.
    pub model: String,
    /// The error, with its causes.
    pub error: String,
}

/// One model's results.
#[derive(Debug, Serialize)]
pub struct ModelReport {
    /// Its name.
    pub model: String,
    /// Its file.
    pub path: String,
    /// File size, MiB.
    pub file_mib: f64,
    /// First load in a fresh process, seconds.
    pub load_cold_s: f64,
    /// Second load in the same process, seconds.
    pub load_warm_s: f64,
    /// Peak resident memory of the model's process, MiB.
    pub peak_rss_mib: Option<f64>,
    /// Translation quality and speed.
    pub translate: Option<TranslateReport>,
    /// Summary quality and speed, one per strategy.
    pub summarize: Vec<StrategyReport>,
}

/// Translation quality and speed of one model.
#[derive(Debug, Serialize)]
pub struct TranslateReport {
    /// Corpus BLEU (sacreBLEU defaults), 0..100.
    pub bleu: f64,
    /// sacreBLEU signature of the BLEU score.
    pub bleu_signature: String,
    /// Corpus chrF++, 0..100.
    pub chrf_pp: f64,
    /// sacreBLEU signature of the chrF++ score.
    pub chrf_signature: String,
    /// Sentences scored.
    pub sentences: usize,
    /// Sentences whose cleaned translation was empty.
    pub empty_outputs: usize,
    /// Speed.
    pub speed: Speed,
    /// Sentences per second with several requests in flight on the batched engine.
    pub throughput: Vec<Throughput>,
    /// The translations, in order.
    pub hypotheses: Vec<String>,
}

/// Speed of one model at batch 1.
#[derive(Debug, Serialize)]
pub struct Speed {
    /// Arabic source tokens translated per second (median over runs).
    pub source_tokens_per_s: f64,
    /// English tokens generated per second, prompt time included (median over runs).
    pub target_tokens_per_s: f64,
    /// Sentences per second (median over runs).
    pub sentences_per_s: f64,
    /// Median latency of one sentence, seconds.
    pub latency_p50_s: f64,
    /// 95th-percentile latency of one sentence, seconds.
    pub latency_p95_s: f64,
    /// Median time to first token, seconds.
    pub ttft_p50_s: f64,
    /// Runs the medians are over: the full pass plus the repeats.
    pub runs: usize,
    /// Sentence timings the latency percentiles are over.
    pub timed_sentences: usize,
}

/// One summary strategy's quality and speed.
#[derive(Debug, Serialize)]
pub struct StrategyReport {
    /// `direct` or `translate`.
    pub strategy: String,
    /// Articles summarized.
    pub articles: usize,
    /// ROUGE F-measures ×100 against the reference summaries (rouge-score, stemming on),
    /// when references were given.
    pub rouge: Option<Rouge>,
    /// Mean summary length, words.
    pub words_mean: f64,
    /// Mean ratio of summary words to English document words.
    pub compression_mean: f64,
    /// Share of capitalized names in the summaries found in the English document.
    pub entity_faithfulness: Option<f64>,
    /// Names checked.
    pub entities_checked: usize,
    /// What the names were checked against: `reference document` or `model translation`.
    pub entity_source: String,
    /// Median seconds per article.
    pub seconds_p50: f64,
    /// Articles per second over the whole run.
    pub articles_per_s: f64,
    /// The summaries, in article order.
    pub summaries: Vec<String>,
    /// Repairs and warnings from the pipeline.
    pub events: Vec<String>,
}

/// ROUGE F-measures ×100.
#[derive(Debug, Serialize)]
pub struct Rouge {
    /// ROUGE-1.
    pub rouge1: f64,
    /// ROUGE-2.
    pub rouge2: f64,
    /// ROUGE-L.
    #[serde(rename = "rougeL")]
    pub rouge_l: f64,
    /// ROUGE-Lsum.
    #[serde(rename = "rougeLsum")]
    pub rouge_lsum: f64,
}

fn mib(bytes: u64) -> f64 {
    round(bytes as f64 / (1024.0 * 1024.0), 1)
}

/// Builds a model's report from its worker's result and the references.
pub fn model_report(
    raw: WorkerResult,
    references: &[String],
    articles: &[Article],
) -> anyhow::Result<ModelReport> {
    let translate = match raw.translate {
        Some(t) => Some(translate_report(t, references)?),
        None => None,
    };
    let summarize = raw
        .summarize
        .into_iter()
        .map(|run| strategy_report(run, articles))
        .collect::<anyhow::Result<_>>()?;
    Ok(ModelReport {
        model: raw.model,
        path: raw.path,
        file_mib: mib(raw.file_bytes),
        load_cold_s: round(raw.load_cold_s, 3),
        load_warm_s: round(raw.load_warm_s, 3),
        peak_rss_mib: raw.peak_rss_bytes.map(mib),
        translate,
        summarize,
    })
}

fn throughput(timings: &[SentenceTiming]) -> (f64, f64, f64) {
    let secs: f64 = timings.iter().map(|t| t.latency_s).sum();
    if secs <= 0.0 {
        return (0.0, 0.0, 0.0);
    }
    let src: usize = timings.iter().map(|t| t.source_tokens).sum();
    let tgt: usize = timings.iter().map(|t| t.target_tokens).sum();
    (
        src as f64 / secs,
        tgt as f64 / secs,
        timings.len() as f64 / secs,
    )
}

fn translate_report(run: TranslateRun, references: &[String]) -> anyhow::Result<TranslateReport> {
    let bleu = corpus_bleu(&run.hypotheses, references, &BleuConfig::default())?;
    let chrf = corpus_chrf(&run.hypotheses, references, &ChrfConfig::chrf_plus_plus())?;
    let runs: Vec<(f64, f64, f64)> = std::iter::once(&run.pass)
        .chain(run.repeats.iter())
        .filter(|t| !t.is_empty())
        .map(|t| throughput(t))
        .collect();
    let all: Vec<&SentenceTiming> = run
        .pass
        .iter()
        .chain(run.repeats.iter().flatten())
        .collect();
    let latencies: Vec<f64> = all.iter().map(|t| t.latency_s).collect();
    let ttfts: Vec<f64> = all.iter().map(|t| t.ttft_s).collect();
    let pick =
        |f: fn(&(f64, f64, f64)) -> f64| round(median(&runs.iter().map(f).collect::<Vec<_>>()), 3);
    Ok(TranslateReport {
        bleu: round(bleu.score, 2),
        bleu_signature: bleu.signature.to_string(),
        chrf_pp: round(chrf.score, 2),
        chrf_signature: chrf.signature.to_string(),
        sentences: run.hypotheses.len(),
        empty_outputs: run
            .hypotheses
            .iter()
            .filter(|h| h.trim().is_empty())
            .count(),
        speed: Speed {
            source_tokens_per_s: pick(|r| r.0),
            target_tokens_per_s: pick(|r| r.1),
            sentences_per_s: pick(|r| r.2),
            latency_p50_s: round(percentile_interpolated(&latencies, 0.5), 3),
            latency_p95_s: round(percentile_interpolated(&latencies, 0.95), 3),
            ttft_p50_s: round(median(&ttfts), 3),
            runs: runs.len(),
            timed_sentences: latencies.len(),
        },
        throughput: run.throughput,
        hypotheses: run.hypotheses,
    })
}

/// Capitalized words that are not the first word of a sentence: a cheap stand-in for
/// named entities in English ("Putin", "Saint", "Petersburg"), with punctuation trimmed.
pub fn capitalized_names(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut sentence_start = true;
    for raw in text.split_whitespace() {
        let word = raw.trim_matches(|c: char| !c.is_alphanumeric());
        let capital = word.chars().next().is_some_and(char::is_uppercase);
        if capital && !sentence_start && word.chars().count() > 1 {
            out.push(word.to_string());
        }
        sentence_start = raw.ends_with(['.', '!', '?', ':']) || word.is_empty() && sentence_start;
    }
    out
}

fn words(text: &str) -> HashSet<String> {
    text.split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()).to_string())
        .filter(|w| !w.is_empty())
        .collect()
}

fn strategy_report(run: SummarizeRun, articles: &[Article]) -> anyhow::Result<StrategyReport> {
    let rouge = if articles.iter().all(|a| a.summary.is_some()) && !articles.is_empty() {
        let targets: Vec<&str> = articles
            .iter()
            .map(|a| a.summary.as_deref().unwrap_or(""))
            .collect();
        let scores =
            RougeScorer::new(&RougeType::STANDARD, true).score_corpus(&targets, &run.summaries)?;
        let f = |i: usize| round(scores.mean[i].fmeasure * 100.0, 2);
        Some(Rouge {
            rouge1: f(0),
            rouge2: f(1),
            rouge_l: f(2),
            rouge_lsum: f(3),
        })
    } else {
        None
    };
    let from_reference = articles.iter().all(|a| a.english.is_some());
    let (mut checked, mut found) = (0usize, 0usize);
    let mut ratios = Vec::new();
    let mut lengths = Vec::new();
    for (i, summary) in run.summaries.iter().enumerate() {
        let n_words = summary.split_whitespace().count();
        lengths.push(n_words as f64);
        let english = if from_reference {
            articles.get(i).and_then(|a| a.english.clone())
        } else {
            run.translations.get(i).cloned().flatten()
        };
        if let Some(doc) = english {
            let doc_words = doc.split_whitespace().count();
            if doc_words > 0 {
                ratios.push(n_words as f64 / doc_words as f64);
            }
            let vocabulary = words(&doc);
            for name in capitalized_names(summary) {
                checked += 1;
                found += usize::from(vocabulary.contains(&name));
            }
        }
    }
    let total: f64 = run.seconds.iter().sum();
    Ok(StrategyReport {
        strategy: run.strategy,
        articles: run.summaries.len(),
        rouge,
        words_mean: round(mean(&lengths), 1),
        compression_mean: round(mean(&ratios), 3),
        entity_faithfulness: (checked > 0).then(|| round(found as f64 / checked as f64, 3)),
        entities_checked: checked,
        entity_source: if from_reference {
            "reference document"
        } else {
            "model translation"
        }
        .into(),
        seconds_p50: round(median(&run.seconds), 3),
        articles_per_s: if total > 0.0 {
            round(run.summaries.len() as f64 / total, 4)
        } else {
            0.0
        },
        summaries: run.summaries,
        events: run.events,
    })
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".into(), |x| format!("{x:.digits$}"))
}

/// The terminal table (and the HTML table's rows): a header and one row per model (and
/// strategy).
pub fn rows(report: &BenchReport) -> (Vec<&'static str>, Vec<Vec<String>>) {
    if report.task == "translate" {
        let header = vec![
            "model",
            "BLEU",
            "chrF++",
            "sent/s",
            "src tok/s",
            "tgt tok/s",
            "p50 s",
            "p95 s",
            "TTFT s",
            "load cold s",
            "load warm s",
            "peak RSS MiB",
            "sent/s by requests in flight",
        ];
        let rows = report
            .models
            .iter()
            .filter_map(|m| {
                let t = m.translate.as_ref()?;
                Some(vec![
                    m.model.clone(),
                    format!("{:.2}", t.bleu),
                    format!("{:.2}", t.chrf_pp),
                    format!("{:.3}", t.speed.sentences_per_s),
                    format!("{:.1}", t.speed.source_tokens_per_s),
                    format!("{:.1}", t.speed.target_tokens_per_s),
                    format!("{:.2}", t.speed.latency_p50_s),
                    format!("{:.2}", t.speed.latency_p95_s),
                    format!("{:.3}", t.speed.ttft_p50_s),
                    format!("{:.2}", m.load_cold_s),
                    format!("{:.2}", m.load_warm_s),
                    opt(m.peak_rss_mib, 0),
                    t.throughput
                        .iter()
                        .map(|l| format!("{}: {:.2}", l.parallel, l.sentences_per_s))
                        .collect::<Vec<_>>()
                        .join(", "),
                ])
            })
            .collect();
        (header, rows)
    } else {
        let header = vec![
            "model",
            "strategy",
            "ROUGE-1",
            "ROUGE-2",
            "ROUGE-L",
            "words",
            "compression",
            "entity faithfulness",
            "s/article p50",
            "peak RSS MiB",
        ];
        let mut rows = Vec::new();
        for m in &report.models {
            for s in &m.summarize {
                rows.push(vec![
                    m.model.clone(),
                    s.strategy.clone(),
                    opt(s.rouge.as_ref().map(|r| r.rouge1), 2),
                    opt(s.rouge.as_ref().map(|r| r.rouge2), 2),
                    opt(s.rouge.as_ref().map(|r| r.rouge_l), 2),
                    format!("{:.1}", s.words_mean),
                    format!("{:.3}", s.compression_mean),
                    opt(s.entity_faithfulness, 3),
                    format!("{:.2}", s.seconds_p50),
                    opt(m.peak_rss_mib, 0),
                ]);
            }
        }
        (header, rows)
    }
}

/// The report as an aligned text table with the machine and notes below it.
pub fn table(report: &BenchReport) -> String {
    let (header, rows) = rows(report);
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<String>, out: &mut String| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, w))| {
                if i == 0 {
                    format!("{c:<w$}")
                } else {
                    format!("{c:>w$}")
                }
            })
            .collect();
        out.push_str(padded.join("  ").trim_end());
        out.push('\n');
    };
    line(header.iter().map(|h| h.to_string()).collect(), &mut out);
    for row in rows {
        line(row, &mut out);
    }
    let m = &report.machine;
    let _ = writeln!(
        out,
        "\n{} items of {} ({} available); machine: {}, {} threads of {} logical CPUs, \
         kernels {} (CPU features [{}]), tarjama {} ({})",
        report.dataset.items,
        report.dataset.name,
        report.dataset.available,
        m.cpu,
        m.threads,
        m.logical_cpus,
        m.kernels,
        m.features.join(", "),
        m.version,
        m.profile
    );
    if let (Some(a), Some(b)) = (m.load_start, m.load_end) {
        let _ = writeln!(
            out,
            "load average at start {:.2} {:.2} {:.2}, at end {:.2} {:.2} {:.2}",
            a[0], a[1], a[2], b[0], b[1], b[2]
        );
    }
    for note in &report.notes {
        let _ = writeln!(out, "note: {note}");
    }
    for f in &report.failures {
        let _ = writeln!(out, "FAILED {}: {}", f.model, f.error);
    }
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A labelled point of the scatter plot.
struct Point {
    label: String,
    x: f64,
    y: f64,
}

fn points(report: &BenchReport) -> (Vec<Point>, &'static str, &'static str) {
    if report.task == "translate" {
        let pts = report
            .models
            .iter()
            .filter_map(|m| {
                let t = m.translate.as_ref()?;
                Some(Point {
                    label: m.model.clone(),
                    x: t.speed.sentences_per_s,
                    y: t.chrf_pp,
                })
            })
            .collect();
        (pts, "sentences per second (batch 1)", "chrF++")
    } else {
        let mut pts = Vec::new();
        for m in &report.models {
            for s in &m.summarize {
                let y = match &s.rouge {
                    Some(r) => r.rouge_l,
                    None => s.entity_faithfulness.unwrap_or(0.0) * 100.0,
                };
                pts.push(Point {
                    label: format!("{} ({})", m.model, s.strategy),
                    x: s.articles_per_s,
                    y,
                });
            }
        }
        let with_rouge = report
            .models
            .iter()
            .flat_map(|m| &m.summarize)
            .any(|s| s.rouge.is_some());
        let y = if with_rouge {
            "ROUGE-L"
        } else {
            "entity faithfulness (%)"
        };
        (pts, "articles per second", y)
    }
}

/// An inline SVG scatter plot: quality (y) against speed (x), one labelled point each.
pub fn scatter_svg(report: &BenchReport) -> String {
    let (pts, x_label, y_label) = points(report);
    let (w, h, left, right, top, bottom) = (640.0, 420.0, 70.0, 40.0, 20.0, 60.0);
    let max = |f: fn(&Point) -> f64| {
        let m = pts.iter().map(f).fold(0.0f64, f64::max);
        if m > 0.0 {
            m * 1.15
        } else {
            1.0
        }
    };
    let (x_max, y_max) = (max(|p| p.x), max(|p| p.y));
    let sx = |x: f64| left + x / x_max * (w - left - right);
    let sy = |y: f64| h - bottom - y / y_max * (h - top - bottom);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{} against {}\">\n",
        escape(y_label),
        escape(x_label)
    );
    let _ = writeln!(
        svg,
        "<line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#333\"/>\
         <line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{}\" stroke=\"#333\"/>",
        h - bottom,
        w - right,
        h - bottom,
        h - bottom
    );
    for i in 0..=4 {
        let (xv, yv) = (x_max * f64::from(i) / 4.0, y_max * f64::from(i) / 4.0);
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\">{xv:.2}</text>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{yv:.1}</text>",
            sx(xv),
            h - bottom + 16.0,
            left - 6.0,
            sy(yv) + 4.0
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"13\" text-anchor=\"middle\">{}</text>\
         <text x=\"16\" y=\"{:.1}\" font-size=\"13\" text-anchor=\"middle\" \
         transform=\"rotate(-90 16 {:.1})\">{}</text>",
        (left + w - right) / 2.0,
        h - 16.0,
        escape(x_label),
        (top + h - bottom) / 2.0,
        (top + h - bottom) / 2.0,
        escape(y_label)
    );
    for p in &pts {
        let _ = writeln!(
            svg,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"6\" fill=\"#1f77b4\"><title>{}: {:.2}, {:.3}</title></circle>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\">{}</text>",
            sx(p.x),
            sy(p.y),
            escape(&p.label),
            p.y,
            p.x,
            sx(p.x) + 9.0,
            sy(p.y) - 8.0,
            escape(&p.label)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// A self-contained HTML page: the plot, the table, the machine and the notes.
pub fn html(report: &BenchReport) -> String {
    let (header, rows) = rows(report);
    let mut page = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>tarjama bench</title>\n<style>body{font-family:sans-serif;margin:2em;max-width:70em}\
         table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}\
         td:first-child,th:first-child{text-align:left}</style>\n</head>\n<body>\n",
    );
    let _ = writeln!(
        page,
        "<h1>tarjama bench: {}</h1>\n<p>{} items of {}</p>",
        escape(&report.task),
        report.dataset.items,
        escape(&report.dataset.name)
    );
    page.push_str(&scatter_svg(report));
    page.push_str("<table>\n<tr>");
    for h in header {
        let _ = write!(page, "<th>{}</th>", escape(h));
    }
    page.push_str("</tr>\n");
    for row in rows {
        page.push_str("<tr>");
        for cell in row {
            let _ = write!(page, "<td>{}</td>", escape(&cell));
        }
        page.push_str("</tr>\n");
    }
    page.push_str("</table>\n<h2>Machine and notes</h2>\n<pre>");
    let text = table(report);
    let tail = text.split_once("\n\n").map_or("", |(_, t)| t);
    page.push_str(&escape(tail));
    page.push_str("</pre>\n</body>\n</html>\n");
    page
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
