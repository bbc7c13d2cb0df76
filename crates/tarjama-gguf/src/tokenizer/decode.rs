//! Decoding: token ids back into text as llama.cpp's `token_to_piece` and
//! `llama_detokenize` print them, all at once ([`GgufTokenizer::decode`]) or token by
//! token ([`TokenStream`]), and what each token prints as.

use super::{GgufTokenizer, TokenStream, TokenType, VocabKind, SPM_SPACE};
use crate::{Error, Result};

impl GgufTokenizer {
    /// The bytes token `id` prints as: its text for user-defined tokens, and for control
    /// and unknown tokens only when `special` is set; nothing for unused ones.
    pub fn token_bytes(&self, id: u32, special: bool) -> Result<&[u8]> {
        let ty = self.token_type(id).ok_or_else(|| self.out_of_vocab(id))?;
        if !special && ty.is_special() {
            return Ok(&[]);
        }
        Ok(&self.pieces[id as usize])
    }

    fn out_of_vocab(&self, id: u32) -> Error {
        Error::Tokenizer(format!(
            "token id {id} is outside the vocabulary of {} tokens",
            self.vocab_size()
        ))
    }

    /// Whether the first printed piece loses one leading space (SentencePiece files
    /// with `add_space_prefix`), given whether the leading BOS was dropped: llama.cpp's
    /// `llama_detokenize` keeps the space when it drops the BOS.
    fn strips_leading_space(&self, dropped_bos: bool) -> bool {
        matches!(
            self.kind,
            VocabKind::Spm {
                add_space_prefix: true
            }
        ) && !dropped_bos
    }

    /// Turns ids back into text like llama.cpp's `llama_detokenize(tokens,
    /// remove_special = skip_special, unparse_special = !skip_special)`. Bytes that do
    /// not form valid UTF-8 become U+FFFD.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        let mut ids = ids;
        let mut dropped_bos = false;
        if skip_special && self.add_bos && !ids.is_empty() && Some(ids[0]) == self.bos {
            ids = &ids[1..];
            dropped_bos = true;
        }
        if skip_special && self.add_eos && !ids.is_empty() && ids.last().copied() == self.eos {
            ids = &ids[..ids.len() - 1];
        }
        let mut bytes = Vec::with_capacity(ids.len() * 4);
        let mut strip = self.strips_leading_space(dropped_bos);
        for &id in ids {
            let mut piece = self.token_bytes(id, !skip_special)?;
            if strip {
                piece = piece.strip_prefix(b" ").unwrap_or(piece);
                strip = false;
            }
            bytes.extend_from_slice(piece);
        }
        if self.clean_spaces {
            bytes = clean_spaces(&bytes);
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Starts decoding a stream of generated tokens (see [`TokenStream`]).
    pub fn stream(&self, skip_special: bool) -> TokenStream<'_> {
        TokenStream {
            tokenizer: self,
            skip_special,
            pending: Vec::new(),
            first: true,
        }
    }
}

impl TokenStream<'_> {
    /// Feeds one token; returns the text that became complete, if any.
    pub fn push(&mut self, id: u32) -> Result<Option<String>> {
        let tk = self.tokenizer;
        let mut piece = tk.token_bytes(id, !self.skip_special)?;
        if self.first {
            self.first = false;
            let is_bos = self.skip_special && tk.add_bos && Some(id) == tk.bos;
            if is_bos {
                return Ok(None);
            }
            if tk.strips_leading_space(false) {
                piece = piece.strip_prefix(b" ").unwrap_or(piece);
            }
        }
        self.pending.extend_from_slice(piece);
        let text = self.take_complete(false);
        Ok((!text.is_empty()).then_some(text))
    }

    /// Ends the stream: returns what is still held back, incomplete characters as
    /// U+FFFD.
    pub fn finish(&mut self) -> Option<String> {
        let text = self.take_complete(true);
        (!text.is_empty()).then_some(text)
    }

    /// Removes from `pending` and returns its longest prefix that can be printed: valid
    /// UTF-8, and invalid bytes as U+FFFD (as `String::from_utf8_lossy` would). A
    /// trailing incomplete character stays unless `flush`.
    fn take_complete(&mut self, flush: bool) -> String {
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(&String::from_utf8_lossy(&self.pending[..valid]));
                    match e.error_len() {
                        Some(bad) => {
                            out.push('\u{FFFD}');
                            self.pending.drain(..valid + bad);
                        }
                        None => {
                            self.pending.drain(..valid);
                            if flush {
                                out.push('\u{FFFD}');
                                self.pending.clear();
                            }
                            return out;
                        }
                    }
                }
            }
        }
    }
}

/// What a token prints as under llama.cpp's `token_to_piece(special = true)`.
pub(super) fn token_piece(text: &str, ty: TokenType, kind: &VocabKind) -> Box<[u8]> {
    match ty {
        TokenType::Control | TokenType::Unknown | TokenType::UserDefined => text.as_bytes().into(),
        TokenType::Normal => match kind {
            VocabKind::Spm { .. } => text.replace(SPM_SPACE, " ").into_bytes().into(),
            VocabKind::Bpe => byte_level_decode(text).into(),
        },
        TokenType::Byte => match parse_byte_token(text) {
            Some(b) => Box::new([b]),
            None => byte_level_decode(text).into(),
        },
        TokenType::Unused | TokenType::Undefined => Box::new([]),
    }
}

/// `<0x0A>` -> 0x0A.
fn parse_byte_token(text: &str) -> Option<u8> {
    let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
    u8::from_str_radix(hex, 16).ok()
}

/// Undoes GPT-2's byte-to-character mapping. Characters outside the mapping are kept
/// as their UTF-8 (llama.cpp prints an `[UNK_BYTE_..]` marker instead).
fn byte_level_decode(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        match byte_level_char_to_byte(c) {
            Some(b) => out.push(b),
            None => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out
}

/// GPT-2's `bytes_to_unicode`, inverted: printable bytes stand for themselves, the
/// other 68 are shifted to U+0100.. in byte order.
fn byte_level_char_to_byte(c: char) -> Option<u8> {
    let printable =
        |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
    let cp = c as u32;
    if cp < 256 {
        return printable(cp).then_some(cp as u8);
    }
    let k = cp.checked_sub(256)?;
    (0u32..256)
        .filter(|&b| !printable(b))
        .nth(k as usize)
        .map(|b| b as u8)
}

/// llama.cpp's `clean_spaces` pass of `llama_detokenize`: " ?", " !", " .", " ," lose
/// their space, a lone " ' " its spaces, and " 's", " 'm", " 're", " 've" their space.
fn clean_spaces(text: &[u8]) -> Vec<u8> {
    let mut t = text.to_vec();
    // first pass: space before ?!.,
    let mut out = Vec::with_capacity(t.len());
    for (i, &x) in t.iter().enumerate() {
        if i > 0 && t[i - 1] == b' ' && matches!(x, b'?' | b'!' | b'.' | b',') {
            out.pop();
        }
        out.push(x);
    }
    t = out;
    // second pass: a single apostrophe between spaces
    let mut out = Vec::with_capacity(t.len());
    let mut i = 0;
    while i < t.len() {
        let x = t[i];
        if i > 0 && x == b'\'' && i + 1 < t.len() && t[i - 1] == b' ' && t[i + 1] == b' ' {
            out.pop();
            out.push(x);
            i += 2;
            continue;
        }
        out.push(x);
        i += 1;
    }
    t = out;
    // third pass: contractions
    let mut out = Vec::with_capacity(t.len());
    for i in 0..t.len() {
        let x = t[i];
        if i > 0 && t[i - 1] == b' ' && x == b'\'' && i + 1 < t.len() {
            let x1 = t[i + 1];
            let x2 = t.get(i + 2).copied();
            let drop = matches!(x1, b's' | b'm')
                || (i + 2 < t.len() && matches!((x1, x2), (b'r', Some(b'e')) | (b'v', Some(b'e'))));
            if drop {
                out.pop();
            }
        }
        out.push(x);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_level_map_inverts_gpt2() {
        // 'Ġ' (U+0120) is the space, 'Ċ' (U+010A) the newline of GPT-2's byte map.
        assert_eq!(byte_level_decode("Ġhello"), b" hello");
        assert_eq!(byte_level_decode("Ċ"), b"\n");
        assert_eq!(byte_level_char_to_byte('!'), Some(b'!'));
        assert_eq!(byte_level_char_to_byte('\u{100}'), Some(0));
        assert_eq!(byte_level_char_to_byte('\u{143}'), Some(0xAD));
        assert_eq!(byte_level_char_to_byte('\u{144}'), None);
    }

    #[test]
    fn byte_tokens_parse() {
        assert_eq!(parse_byte_token("<0x0A>"), Some(b'\n'));
        assert_eq!(parse_byte_token("<0xff>"), Some(0xFF));
        assert_eq!(parse_byte_token("<0x0A"), None);
    }

    #[test]
    fn clean_spaces_matches_llama_cpp() {
        assert_eq!(clean_spaces(b"Hello , world !"), b"Hello, world!");
        assert_eq!(clean_spaces(b"it 's a ' b"), b"it's a'b");
        assert_eq!(clean_spaces(b"we 're , they 'll"), b"we're, they 'll");
    }
}
