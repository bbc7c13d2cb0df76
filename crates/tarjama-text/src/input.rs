//! Reading text input: a file or stdin, decoded as UTF-8 with clear errors.
//!
//! Every command that takes text goes through here, so they all refuse the same bad
//! input the same way: a UTF-16 file, a binary file (a NUL byte, or mostly control
//! characters at the start), invalid UTF-8 (with the byte offset, unless lossy
//! decoding is asked for). A UTF-8 byte-order mark is dropped.
//!
//! [`read_text`] loads a whole input; [`Blocks`] streams one in pieces cut at line
//! breaks, preferably at blank lines, so a 50 MB file is processed with flat memory.
//! Offsets ([`Block::offset`]) count bytes of the decoded text, the text that
//! [`read_text`] would return: the BOM is not counted, and with lossy decoding each
//! invalid sequence counts as the three bytes of U+FFFD.

use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;

use crate::Error;

/// Where text comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Standard input.
    Stdin,
    /// A file.
    File(PathBuf),
}

impl Source {
    /// `-` is stdin, anything else a file path.
    pub fn from_arg(arg: &str) -> Self {
        if arg == "-" {
            Source::Stdin
        } else {
            Source::File(PathBuf::from(arg))
        }
    }

    /// The name used in error messages: the path, or `<stdin>`.
    pub fn name(&self) -> String {
        match self {
            Source::Stdin => "<stdin>".to_owned(),
            Source::File(path) => path.display().to_string(),
        }
    }

    fn open(&self) -> Result<Box<dyn Read>, Error> {
        match self {
            Source::Stdin => Ok(Box::new(io::stdin().lock())),
            Source::File(path) => File::open(path)
                .map(|f| Box::new(f) as Box<dyn Read>)
                .map_err(|source| Error::Io {
                    input: self.name(),
                    source,
                }),
        }
    }
}

/// How to decode input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadOptions {
    /// Replace invalid UTF-8 with U+FFFD instead of failing.
    pub lossy: bool,
    /// Refuse inputs longer than this many bytes; `None` for no limit.
    pub max_bytes: Option<u64>,
}

impl ReadOptions {
    /// The default limit of [`read_text`], which holds the whole input in memory.
    pub const DEFAULT_MAX_BYTES: u64 = 512 * 1024 * 1024;
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self {
            lossy: false,
            max_bytes: Some(Self::DEFAULT_MAX_BYTES),
        }
    }
}

/// Reads a whole input into a string, with the checks described in the module docs.
pub fn read_text(source: &Source, options: &ReadOptions) -> Result<String, Error> {
    let mut text = String::new();
    for block in Blocks::open(source, options)? {
        text.push_str(&block?.text);
    }
    Ok(text)
}

/// Decodes bytes already in memory, with the same checks as [`read_text`].
pub fn decode(bytes: &[u8], name: &str, options: &ReadOptions) -> Result<String, Error> {
    let mut text = String::new();
    for block in Blocks::new(bytes, name, options) {
        text.push_str(&block?.text);
    }
    Ok(text)
}

/// A piece of an input, cut at a line break.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// Byte offset of `text` in the whole decoded input.
    pub offset: usize,
    /// The decoded text; it ends with a line break unless it ends the input.
    pub text: String,
    /// Whether the previous block ended at a blank line (or this is the first block),
    /// so this block starts a new paragraph. When false, the cut fell inside a
    /// paragraph, at a line break (or, for a line longer than
    /// [`Blocks::MAX_BLOCK`], inside the line).
    pub starts_paragraph: bool,
    /// Whether this block starts at the start of a line. False only when a line longer
    /// than [`Blocks::MAX_BLOCK`] had to be cut; the cut then falls at the start of a
    /// word, after whitespace.
    pub starts_line: bool,
    /// Whether this block ends at a line break or at the end of the input.
    pub ends_line: bool,
}

/// Streams an input as [`Block`]s of about [`Blocks::BLOCK`] bytes.
pub struct Blocks<R> {
    reader: R,
    name: String,
    options: ReadOptions,
    buf: Vec<u8>,
    eof: bool,
    started: bool,
    failed: bool,
    raw_offset: u64,
    text_offset: usize,
    next_starts_paragraph: bool,
    next_starts_line: bool,
}

impl Blocks<Box<dyn Read>> {
    /// Opens `source` for streaming.
    pub fn open(source: &Source, options: &ReadOptions) -> Result<Self, Error> {
        check_size(source, options)?;
        Ok(Self::new(source.open()?, &source.name(), options))
    }
}

/// Refuses a file over `options.max_bytes` by its size, before reading any of it.
fn check_size(source: &Source, options: &ReadOptions) -> Result<(), Error> {
    if let (Source::File(path), Some(limit)) = (source, options.max_bytes) {
        let len = std::fs::metadata(path)
            .map_err(|source_err| Error::Io {
                input: source.name(),
                source: source_err,
            })?
            .len();
        if len > limit {
            return Err(Error::TooLarge {
                input: source.name(),
                limit,
            });
        }
    }
    Ok(())
}

/// Reads an input's bytes as they are (to hash them before [`decode`]), refusing one over
/// `options.max_bytes` as [`read_text`] does: a file by its size, before reading it; stdin
/// once it has sent one byte too many.
pub fn read_bytes(source: &Source, options: &ReadOptions) -> Result<Vec<u8>, Error> {
    check_size(source, options)?;
    let mut reader = source.open()?;
    let mut bytes = Vec::new();
    let read = match options.max_bytes {
        Some(limit) => reader.take(limit.saturating_add(1)).read_to_end(&mut bytes),
        None => reader.read_to_end(&mut bytes),
    };
    read.map_err(|e| Error::Io {
        input: source.name(),
        source: e,
    })?;
    match options.max_bytes {
        Some(limit) if bytes.len() as u64 > limit => Err(Error::TooLarge {
            input: source.name(),
            limit,
        }),
        _ => Ok(bytes),
    }
}

/// Share of control bytes in the first [`SNIFF`] bytes above which input is binary.
const CONTROL_PERCENT: u32 = 10;
/// How many leading bytes are looked at to tell text from binary.
const SNIFF: usize = 8192;

impl<R: Read> Blocks<R> {
    /// Size from which a block is cut: at the last paragraph break in it, else at the
    /// last line break.
    pub const BLOCK: usize = 256 * 1024;
    /// Size at which a line with no line break in it is cut inside the line.
    pub const MAX_BLOCK: usize = 4 * 1024 * 1024;

    /// Streams from any reader; `name` is used in error messages.
    pub fn new(reader: R, name: &str, options: &ReadOptions) -> Self {
        Self {
            reader,
            name: name.to_owned(),
            options: options.clone(),
            buf: Vec::new(),
            eof: false,
            started: false,
            failed: false,
            raw_offset: 0,
            text_offset: 0,
            next_starts_paragraph: true,
            next_starts_line: true,
        }
    }

    /// Reads until the buffer holds `want` bytes or the input ends.
    fn fill(&mut self, want: usize) -> Result<(), Error> {
        let mut chunk = [0u8; 64 * 1024];
        while !self.eof && self.buf.len() < want {
            match self.reader.read(&mut chunk) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    if let Some(limit) = self.options.max_bytes {
                        if self.raw_offset + self.buf.len() as u64 > limit {
                            return Err(Error::TooLarge {
                                input: self.name.clone(),
                                limit,
                            });
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(Error::Io {
                        input: self.name.clone(),
                        source,
                    })
                }
            }
        }
        Ok(())
    }

    /// Checks done once, on the first bytes: UTF-16, BOM, binary.
    fn start(&mut self) -> Result<(), Error> {
        self.fill(SNIFF)?;
        if self.buf.starts_with(&[0xFF, 0xFE]) || self.buf.starts_with(&[0xFE, 0xFF]) {
            return Err(Error::Utf16 {
                input: self.name.clone(),
            });
        }
        if self.buf.starts_with(&[0xEF, 0xBB, 0xBF]) {
            self.buf.drain(..3);
            self.raw_offset = 3;
        }
        let sample = &self.buf[..self.buf.len().min(SNIFF)];
        let control = sample
            .iter()
            .filter(|&&b| (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0C)) || b == 0x7F)
            .count();
        if !sample.is_empty() && control * 100 > sample.len() * CONTROL_PERCENT as usize {
            return Err(Error::ControlBytes {
                input: self.name.clone(),
                percent: (control * 100 / sample.len()) as u32,
                sampled: sample.len(),
            });
        }
        Ok(())
    }

    /// Where to cut the buffer, and what the cut falls on; 0 when more input is needed
    /// to decide.
    fn cut(&self) -> (usize, Cut) {
        let buf = &self.buf;
        if self.eof {
            return (buf.len(), Cut::Paragraph);
        }
        // The last line start with a word on it (see `starts_with_word`) right after a
        // blank line; else the last line start with a word on it.
        let mut line_cut = None;
        let mut end = buf.len();
        while let Some(nl) = memchr::memrchr(b'\n', &buf[..end]) {
            let start = nl + 1;
            if start < buf.len() && starts_with_word(&buf[start..]) {
                let previous = memchr::memrchr(b'\n', &buf[..nl]).map_or(0, |p| p + 1);
                if is_blank(&buf[previous..nl]) {
                    return (start, Cut::Paragraph);
                }
                line_cut.get_or_insert(start);
            }
            end = nl;
        }
        if let Some(cut) = line_cut {
            return (cut, Cut::Line);
        }
        if buf.len() < Self::MAX_BLOCK {
            return (0, Cut::Line);
        }
        // One line longer than MAX_BLOCK: cut after a space or tab, before a word (see
        // `starts_with_word`), so that neither side's whitespace or composition
        // changes; failing that
        // (4 MiB without an ASCII space), right before a UTF-8 lead byte.
        let word_start = (1..buf.len())
            .rev()
            .find(|&p| matches!(buf[p - 1], b' ' | b'\t') && starts_with_word(&buf[p..]));
        if let Some(cut) = word_start {
            return (cut, Cut::Inside);
        }
        let mut cut = buf.len() - 1;
        while cut > 0 && (buf[cut] & 0xC0) == 0x80 {
            cut -= 1;
        }
        (if cut == 0 { buf.len() } else { cut }, Cut::Inside)
    }

    fn next_block(&mut self) -> Result<Option<Block>, Error> {
        if !self.started {
            self.started = true;
            self.start()?;
        }
        let mut want = Self::BLOCK;
        let (cut, kind) = loop {
            self.fill(want)?;
            if self.buf.is_empty() {
                return Ok(None);
            }
            let (cut, kind) = self.cut();
            if cut > 0 {
                break (cut, kind);
            }
            want = (self.buf.len() * 2)
                .min(Self::MAX_BLOCK)
                .max(self.buf.len() + 1);
        };
        let bytes: Vec<u8> = self.buf.drain(..cut).collect();
        if let Some(nul) = memchr::memchr(0, &bytes) {
            return Err(Error::Binary {
                input: self.name.clone(),
                offset: self.raw_offset + nul as u64,
            });
        }
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) if self.options.lossy => String::from_utf8_lossy(e.as_bytes()).into_owned(),
            Err(e) => {
                return Err(Error::InvalidUtf8 {
                    input: self.name.clone(),
                    offset: self.raw_offset + e.utf8_error().valid_up_to() as u64,
                })
            }
        };
        let block = Block {
            offset: self.text_offset,
            starts_paragraph: self.next_starts_paragraph,
            starts_line: self.next_starts_line,
            ends_line: kind != Cut::Inside,
            text,
        };
        self.raw_offset += cut as u64;
        self.text_offset += block.text.len();
        self.next_starts_paragraph = kind == Cut::Paragraph;
        self.next_starts_line = kind != Cut::Inside;
        Ok(Some(block))
    }
}

impl<R: Read> Iterator for Blocks<R> {
    type Item = Result<Block, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let next = self.next_block().transpose();
        if matches!(next, Some(Err(_))) {
            self.failed = true;
        }
        next
    }
}

/// What a block boundary falls on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// After a blank line (or at the end of the input).
    Paragraph,
    /// After a line break inside a paragraph.
    Line,
    /// Inside a line.
    Inside,
}

/// Whether a line (without its `\n`) holds only whitespace.
fn is_blank(line: &[u8]) -> bool {
    match std::str::from_utf8(line) {
        Ok(s) => s.trim().is_empty(),
        Err(_) => false,
    }
}

/// Whether the line starting `rest` starts with a letter or digit that no normalization
/// step removes (not a tatweel, not a diacritic, which Unicode counts as alphabetic).
/// Blocks are only cut before such a line: a line that starts with whitespace may be
/// blank, and one that starts with an invisible character or a mark may turn blank
/// once normalized; cutting before either could split a run of blank lines, which
/// normalization collapses, in two.
fn starts_with_word(rest: &[u8]) -> bool {
    let head = &rest[..rest.len().min(4)];
    let valid = match std::str::from_utf8(head) {
        Ok(s) => s,
        Err(e) => std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or(""),
    };
    valid
        .chars()
        .next()
        .is_some_and(|c| c.is_alphanumeric() && !crate::normalize::may_vanish(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8], lossy: bool) -> Result<String, Error> {
        let options = ReadOptions {
            lossy,
            ..ReadOptions::default()
        };
        decode(bytes, "test.txt", &options)
    }

    #[test]
    fn raw_bytes_are_held_to_the_same_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        std::fs::write(&path, "سلام\n").unwrap();
        let source = Source::File(path);
        let limit = |max_bytes| ReadOptions {
            max_bytes,
            ..ReadOptions::default()
        };
        assert_eq!(
            read_bytes(&source, &limit(Some(9))).unwrap(),
            "سلام\n".as_bytes()
        );
        assert_eq!(read_bytes(&source, &limit(None)).unwrap().len(), 9);
        let err = read_bytes(&source, &limit(Some(8))).unwrap_err();
        assert!(matches!(err, Error::TooLarge { limit: 8, .. }), "{err}");
        assert!(matches!(
            read_text(&source, &limit(Some(8))),
            Err(Error::TooLarge { limit: 8, .. })
        ));
    }

    #[test]
    fn a_bom_is_dropped() {
        assert_eq!(read("\u{FEFF}سلام".as_bytes(), false).unwrap(), "سلام");
    }

    #[test]
    fn invalid_utf8_names_the_offset_or_is_replaced() {
        let mut bytes = "سلام ".as_bytes().to_vec();
        bytes.push(0xFF);
        bytes.extend_from_slice(b" ok");
        let err = read(&bytes, false).unwrap_err();
        assert!(matches!(err, Error::InvalidUtf8 { offset: 9, .. }), "{err}");
        assert_eq!(err.to_string(), "test.txt: invalid UTF-8 at byte offset 9");
        assert_eq!(read(&bytes, true).unwrap(), "سلام \u{FFFD} ok");
    }

    #[test]
    fn binary_is_refused() {
        assert!(matches!(
            read(b"plain text, then a NUL\0 and more", false),
            Err(Error::Binary { offset: 22, .. })
        ));
        let control: Vec<u8> = (0..200).map(|i| (i % 8) as u8 + 1).collect();
        assert!(matches!(
            read(&control, false),
            Err(Error::ControlBytes { .. })
        ));
        assert!(matches!(
            read(b"\xFF\xFEa\0", false),
            Err(Error::Utf16 { .. })
        ));
    }

    #[test]
    fn empty_input_is_empty_text() {
        assert_eq!(read(b"", false).unwrap(), "");
    }

    #[test]
    fn too_large_is_refused() {
        let options = ReadOptions {
            lossy: false,
            max_bytes: Some(4),
        };
        assert!(matches!(
            decode(b"hello", "x", &options),
            Err(Error::TooLarge { .. })
        ));
    }

    #[test]
    fn blocks_cut_at_blank_lines_and_cover_the_input() {
        let paragraph = "جملة أولى. جملة ثانية.\nسطر آخر.\n";
        let mut text = String::new();
        for i in 0..40_000 {
            text.push_str(paragraph);
            if i % 3 == 2 {
                text.push_str("\n \n");
            }
        }
        let blocks: Vec<Block> = Blocks::new(text.as_bytes(), "x", &ReadOptions::default())
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(blocks.len() > 3, "{} blocks", blocks.len());
        let mut offset = 0;
        for (i, block) in blocks.iter().enumerate() {
            assert_eq!(block.offset, offset);
            assert_eq!(&text[offset..offset + block.text.len()], block.text);
            assert!(block.starts_paragraph, "block {i} should start a paragraph");
            assert!(block.text.len() <= Blocks::<&[u8]>::MAX_BLOCK);
            offset += block.text.len();
        }
        assert_eq!(offset, text.len());
    }

    #[test]
    fn without_blank_lines_blocks_cut_at_line_breaks() {
        let text = "سطر واحد طويل نسبياً.\n".repeat(300_000);
        let blocks: Vec<Block> = Blocks::new(text.as_bytes(), "x", &ReadOptions::default())
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(blocks.len() > 1);
        assert!(blocks[0].starts_paragraph);
        assert!(blocks[1..]
            .iter()
            .all(|b| !b.starts_paragraph && b.text.ends_with('\n')));
        assert_eq!(
            blocks.iter().map(|b| b.text.as_str()).collect::<String>(),
            text
        );
    }

    #[test]
    fn a_line_longer_than_a_block_is_cut_at_a_word_start() {
        let text = "كلمة ".repeat(1_000_000);
        let blocks: Vec<Block> = Blocks::new(text.as_bytes(), "x", &ReadOptions::default())
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(blocks.len() > 1);
        assert!(blocks[1..]
            .iter()
            .all(|b| !b.starts_line && b.text.starts_with('ك')));
        assert!(blocks[..blocks.len() - 1].iter().all(|b| !b.ends_line));
        let joined: String = blocks.iter().map(|b| b.text.as_str()).collect();
        assert_eq!(joined, text);
    }
}
