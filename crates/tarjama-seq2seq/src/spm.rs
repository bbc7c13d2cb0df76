//! A small reader for SentencePiece model files (`.spm`, `.model`): the `ModelProto`
//! protobuf, of which the runner needs the pieces (text, score, type), the model type
//! and the normalizer spec. Hand-written so no protobuf compiler or build script is
//! needed; field numbers follow `sentencepiece_model.proto`.

use std::path::Path;

use super::error::{Error, Result};

/// The kind of a piece (`SentencePiece.Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceType {
    /// An ordinary piece.
    Normal,
    /// The unknown piece.
    Unknown,
    /// A control symbol (`<s>`, `</s>`): never produced from text.
    Control,
    /// A user-defined symbol, matched verbatim.
    UserDefined,
    /// A byte-fallback piece `<0xAB>`.
    Byte,
    /// An unused piece.
    Unused,
}

/// One vocabulary entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    /// Its text, with `▁` for a space.
    pub piece: String,
    /// Its log-probability (unigram) or merge rank (BPE).
    pub score: f32,
    /// Its kind.
    pub kind: PieceType,
}

/// The algorithm the model was trained with (`TrainerSpec.model_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelType {
    /// Unigram language model (the default).
    Unigram,
    /// Byte-pair encoding.
    Bpe,
    /// Whole words.
    Word,
    /// Characters.
    Char,
}

/// The parts of a SentencePiece `ModelProto` the runner uses.
#[derive(Debug, Clone)]
pub struct SentencePieceModel {
    /// The vocabulary, in id order.
    pub pieces: Vec<Piece>,
    /// The training algorithm.
    pub model_type: ModelType,
    /// Whether unknown bytes fall back to `<0x..>` pieces.
    pub byte_fallback: bool,
    /// Name of the normalization rule (`nmt_nfkc`, `identity`, ...).
    pub normalizer_name: String,
    /// The compiled normalization map, empty for `identity`.
    pub precompiled_charsmap: Vec<u8>,
    /// Prepend a `▁` to the input.
    pub add_dummy_prefix: bool,
    /// Drop leading, trailing and repeated spaces.
    pub remove_extra_whitespaces: bool,
    /// Replace spaces by `▁`.
    pub escape_whitespaces: bool,
}

impl SentencePieceModel {
    /// Reads and parses a model file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(&bytes).map_err(|reason| Error::BadSentencePiece {
            path: path.to_path_buf(),
            reason,
        })
    }

    /// Parses a serialized `ModelProto`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let mut model = SentencePieceModel {
            pieces: Vec::new(),
            model_type: ModelType::Unigram,
            byte_fallback: false,
            normalizer_name: String::new(),
            precompiled_charsmap: Vec::new(),
            add_dummy_prefix: true,
            remove_extra_whitespaces: true,
            escape_whitespaces: true,
        };
        let mut r = Reader::new(bytes);
        while let Some((field, value)) = r.next_field()? {
            match (field, value) {
                (1, Value::Bytes(b)) => model.pieces.push(parse_piece(b)?),
                (2, Value::Bytes(b)) => parse_trainer(b, &mut model)?,
                (3, Value::Bytes(b)) => parse_normalizer(b, &mut model)?,
                _ => {}
            }
        }
        if model.pieces.is_empty() {
            return Err("no pieces".into());
        }
        Ok(model)
    }

    /// Id of the unknown piece.
    pub fn unk_id(&self) -> Option<usize> {
        self.pieces
            .iter()
            .position(|p| p.kind == PieceType::Unknown)
    }
}

fn parse_piece(bytes: &[u8]) -> Result<Piece, String> {
    let mut piece = Piece {
        piece: String::new(),
        score: 0.0,
        kind: PieceType::Normal,
    };
    let mut r = Reader::new(bytes);
    while let Some((field, value)) = r.next_field()? {
        match (field, value) {
            (1, Value::Bytes(b)) => {
                piece.piece = String::from_utf8(b.to_vec()).map_err(|_| "piece is not UTF-8")?
            }
            (2, Value::Fixed32(v)) => piece.score = f32::from_bits(v),
            (3, Value::Varint(v)) => {
                piece.kind = match v {
                    1 => PieceType::Normal,
                    2 => PieceType::Unknown,
                    3 => PieceType::Control,
                    4 => PieceType::UserDefined,
                    5 => PieceType::Unused,
                    6 => PieceType::Byte,
                    other => return Err(format!("unknown piece type {other}")),
                }
            }
            _ => {}
        }
    }
    Ok(piece)
}

fn parse_trainer(bytes: &[u8], model: &mut SentencePieceModel) -> Result<(), String> {
    let mut r = Reader::new(bytes);
    while let Some((field, value)) = r.next_field()? {
        match (field, value) {
            (3, Value::Varint(v)) => {
                model.model_type = match v {
                    1 => ModelType::Unigram,
                    2 => ModelType::Bpe,
                    3 => ModelType::Word,
                    4 => ModelType::Char,
                    other => return Err(format!("unknown model type {other}")),
                }
            }
            (35, Value::Varint(v)) => model.byte_fallback = v != 0,
            _ => {}
        }
    }
    Ok(())
}

fn parse_normalizer(bytes: &[u8], model: &mut SentencePieceModel) -> Result<(), String> {
    let mut r = Reader::new(bytes);
    while let Some((field, value)) = r.next_field()? {
        match (field, value) {
            (1, Value::Bytes(b)) => model.normalizer_name = String::from_utf8_lossy(b).into_owned(),
            (2, Value::Bytes(b)) => model.precompiled_charsmap = b.to_vec(),
            (3, Value::Varint(v)) => model.add_dummy_prefix = v != 0,
            (4, Value::Varint(v)) => model.remove_extra_whitespaces = v != 0,
            (5, Value::Varint(v)) => model.escape_whitespaces = v != 0,
            _ => {}
        }
    }
    Ok(())
}

/// A protobuf field value, by wire type.
enum Value<'a> {
    Varint(u64),
    Fixed64,
    Bytes(&'a [u8]),
    Fixed32(u32),
}

/// A cursor over protobuf wire format.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.buf.get(self.pos).ok_or("truncated varint")?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint longer than 10 bytes".into())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or("truncated field")?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn next_field(&mut self) -> Result<Option<(u64, Value<'a>)>, String> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = key >> 3;
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Value::Fixed64
            }
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| "length overflow")?;
                Value::Bytes(self.take(len)?)
            }
            5 => {
                let b = self.take(4)?;
                Value::Fixed32(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            }
            other => return Err(format!("unsupported wire type {other} (field {field})")),
        };
        Ok(Some((field, value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_hand_built_model() {
        // pieces: "<unk>" (type 2, score 0), "▁a" (score -1.5); trainer: unigram;
        // normalizer: name "identity", add_dummy_prefix false.
        let mut piece1 = vec![0x0a, 5];
        piece1.extend_from_slice(b"<unk>");
        piece1.extend_from_slice(&[0x15, 0, 0, 0, 0, 0x18, 2]);
        let mut piece2 = vec![0x0a, 4];
        piece2.extend_from_slice("▁a".as_bytes());
        piece2.push(0x15);
        piece2.extend_from_slice(&(-1.5f32).to_le_bytes());
        let mut buf = vec![0x0a, piece1.len() as u8];
        buf.extend_from_slice(&piece1);
        buf.extend_from_slice(&[0x0a, piece2.len() as u8]);
        buf.extend_from_slice(&piece2);
        buf.extend_from_slice(&[0x12, 2, 0x18, 1]);
        let mut norm = vec![0x0a, 8];
        norm.extend_from_slice(b"identity");
        norm.extend_from_slice(&[0x18, 0]);
        buf.extend_from_slice(&[0x1a, norm.len() as u8]);
        buf.extend_from_slice(&norm);
        let m = SentencePieceModel::from_bytes(&buf).unwrap();
        assert_eq!(m.pieces.len(), 2);
        assert_eq!(m.pieces[0].kind, PieceType::Unknown);
        assert_eq!(m.pieces[1].piece, "▁a");
        assert_eq!(m.pieces[1].score, -1.5);
        assert_eq!(m.unk_id(), Some(0));
        assert_eq!(m.normalizer_name, "identity");
        assert!(!m.add_dummy_prefix);
        assert!(m.remove_extra_whitespaces);
    }

    #[test]
    fn rejects_truncated_input() {
        assert!(SentencePieceModel::from_bytes(&[0x0a, 10, 1, 2]).is_err());
        assert!(SentencePieceModel::from_bytes(&[]).is_err());
    }
}
