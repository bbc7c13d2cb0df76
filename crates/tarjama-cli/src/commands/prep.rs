//! `tarjama prep`: normalize Arabic text, split it into sentences.
//!
//! Both subcommands stream their input block by block ([`tarjama_text::Blocks`]), so
//! memory stays flat however large the file; spans in `--json` output are byte offsets
//! into the whole decoded input all the same.

use std::io::{self, BufWriter, Write};

use tarjama_text::input::{Block, Blocks, ReadOptions, Source};
use tarjama_text::{split_at, Normalizer, Position, Profile, Step};

use crate::exit;

/// Subcommands of `tarjama prep`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Split text into sentences: one a line, paragraphs separated by a blank line.
    Split(SplitArgs),
    /// Normalize text (Unicode NFC, invisible characters, tatweel, whitespace, ...).
    Normalize(NormalizeArgs),
}

/// Where the text comes from and how to decode it.
#[derive(Debug, clap::Args)]
pub struct InputArgs {
    /// The text file to read; `-` (the default) reads stdin.
    #[arg(value_name = "FILE", default_value = "-")]
    input: String,
    /// Replace invalid UTF-8 with U+FFFD instead of failing.
    #[arg(long)]
    lossy: bool,
}

impl InputArgs {
    fn blocks(&self) -> anyhow::Result<Blocks<Box<dyn io::Read>>> {
        let options = ReadOptions {
            lossy: self.lossy,
            // Streamed, so no size limit is needed.
            max_bytes: None,
        };
        Ok(Blocks::open(&Source::from_arg(&self.input), &options)?)
    }
}

/// Flags of `tarjama prep split`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  tarjama prep split article.txt
  tarjama prep split --json article.txt | head
  curl -s URL | tarjama prep split --lossy")]
pub struct SplitArgs {
    #[command(flatten)]
    input: InputArgs,
    /// Print one JSON object a line per sentence: paragraph, start, end, script, text.
    #[arg(long)]
    json: bool,
}

/// Flags of `tarjama prep normalize`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  tarjama prep normalize article.txt
  tarjama prep normalize --profile search --json article.txt
  tarjama prep normalize --no-step tatweel --step digits < article.txt")]
pub struct NormalizeArgs {
    #[command(flatten)]
    input: InputArgs,
    /// Profile: `mt` (safe for translation), `search` (also folds diacritics and
    /// letter variants) or `none`.
    #[arg(long, default_value = "mt", value_parser = parse_profile)]
    profile: Profile,
    /// Add a step by name (repeatable): bom, line-endings, bidi, zero-width, tatweel,
    /// diacritics, alef, ya, ta-marbuta, digits, whitespace, nfc.
    #[arg(long = "step", value_name = "NAME", value_parser = parse_step)]
    steps: Vec<Step>,
    /// Leave out a step of the profile by name (repeatable).
    #[arg(long = "no-step", value_name = "NAME", value_parser = parse_step)]
    without: Vec<Step>,
    /// Print one JSON object: profile, steps, text, and the steps that changed something.
    #[arg(long)]
    json: bool,
}

fn parse_profile(name: &str) -> Result<Profile, String> {
    name.parse().map_err(|e: tarjama_text::Error| e.to_string())
}

fn parse_step(name: &str) -> Result<Step, String> {
    name.parse().map_err(|e: tarjama_text::Error| e.to_string())
}

/// Runs `tarjama prep`.
pub fn run(cmd: Command) -> anyhow::Result<i32> {
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    match cmd {
        Command::Split(args) => split(&args, &mut out)?,
        Command::Normalize(args) => normalize(&args, &mut out)?,
    }
    out.flush()?;
    Ok(exit::SUCCESS)
}

/// Adds a hint to the errors that a flag can fix.
fn with_hint(err: tarjama_text::Error) -> anyhow::Error {
    match err {
        // This variant has no source error, so formatting it loses nothing.
        tarjama_text::Error::InvalidUtf8 { .. } => {
            anyhow::anyhow!("{err} (pass --lossy to replace invalid bytes with U+FFFD)")
        }
        err => err.into(),
    }
}

#[derive(serde::Serialize)]
struct SentenceLine<'a> {
    paragraph: usize,
    start: usize,
    end: usize,
    script: tarjama_text::Script,
    text: &'a str,
}

fn split(args: &SplitArgs, out: &mut impl Write) -> anyhow::Result<()> {
    // Index of the paragraph printed last; None before the first one.
    let mut paragraph: Option<usize> = None;
    for block in args.input.blocks()? {
        let block: Block = block.map_err(with_hint)?;
        for (i, p) in split_at(&block.text, block.offset).into_iter().enumerate() {
            // A block cut inside a paragraph continues the last one.
            let index = match paragraph {
                Some(last) if i == 0 && !block.starts_paragraph => last,
                Some(last) => last + 1,
                None => 0,
            };
            if !args.json && paragraph.is_some_and(|last| last != index) {
                writeln!(out)?;
            }
            paragraph = Some(index);
            for sentence in &p.sentences {
                if args.json {
                    let line = SentenceLine {
                        paragraph: index,
                        start: sentence.span.start,
                        end: sentence.span.end,
                        script: sentence.script,
                        text: sentence.text,
                    };
                    serde_json::to_writer(&mut *out, &line)?;
                    writeln!(out)?;
                } else {
                    writeln!(out, "{}", sentence.text)?;
                }
            }
        }
    }
    Ok(())
}

fn normalize(args: &NormalizeArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let normalizer = args
        .steps
        .iter()
        .fold(Normalizer::new(args.profile), |n, &step| n.with_step(step));
    let normalizer = args
        .without
        .iter()
        .fold(normalizer, |n, &step| n.without_step(step));
    if args.json {
        // Streamed by hand so the text is never held whole: the JSON string is
        // written piece by piece, each piece escaped by serde_json.
        write!(
            out,
            "{{\"profile\":{},\"steps\":{},\"text\":\"",
            serde_json::to_string(&args.profile)?,
            serde_json::to_string(normalizer.steps())?
        )?;
    }
    let mut changed: Vec<Step> = Vec::new();
    let mut first = true;
    for block in args.input.blocks()? {
        let block = block.map_err(with_hint)?;
        let position = Position {
            starts_text: first,
            starts_line: block.starts_line,
            ends_line: block.ends_line,
        };
        first = false;
        let normalized = normalizer.normalize_piece_traced(&block.text, position);
        changed.extend(normalized.changed);
        if args.json {
            let quoted = serde_json::to_string(&normalized.text)?;
            out.write_all(&quoted.as_bytes()[1..quoted.len() - 1])?;
        } else {
            out.write_all(normalized.text.as_bytes())?;
        }
    }
    if args.json {
        changed.sort();
        changed.dedup();
        writeln!(out, "\",\"changed\":{}}}", serde_json::to_string(&changed)?)?;
    }
    Ok(())
}
