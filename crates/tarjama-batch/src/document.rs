//! One document in memory, translated and rendered as a folder run would write it: what a
//! server answers for a text or an uploaded file.

use tarjama_pipeline::TranslateOptions;
use tarjama_pipeline::{plan_document, translate_planned, DocumentTranslation, Translator};

use crate::formats::Prepared;
use crate::inputs::Kind;
use crate::render::{render, Format};

/// Why a document could not be translated: the input (a caller's mistake: a server's
/// 400) or the model (the engine's failure: a 500).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The text cannot be taken apart as its kind says (a subtitle file that is not one).
    #[error("{0}")]
    Input(String),
    /// The model failed.
    #[error("{file}: translation failed: {source}")]
    Translation {
        /// The document.
        file: String,
        /// What the engine said.
        source: tarjama_chat::Error,
    },
    /// The output could not be rendered.
    #[error("{0}")]
    Render(String),
}

/// A translated document and its rendering.
#[derive(Debug)]
pub struct Rendered {
    /// The output in the format asked for (a subtitle file stays a subtitle file in
    /// `txt`).
    pub output: String,
    /// The sentences, their sources and what happened (spans refer to `text`).
    pub doc: DocumentTranslation,
}

/// Translates `text` (already decoded) of the given kind with `translator` and renders it
/// in `format`; `file` names the document in records and titles, `model` the model.
pub fn translate(
    translator: &mut dyn Translator,
    kind: Kind,
    text: String,
    options: &TranslateOptions,
    format: Format,
    file: &str,
    model: &str,
) -> Result<Rendered, Error> {
    let prepared = Prepared::new(kind, text).map_err(|e| Error::Input(format!("{file}: {e:#}")))?;
    let plan = plan_document(&prepared.text, options);
    let mut doc =
        translate_planned(translator, plan, options).map_err(|source| Error::Translation {
            file: file.to_string(),
            source,
        })?;
    prepared.map_back(&mut doc);
    let output = render(&prepared, &doc, format, file, model)
        .map_err(|e| Error::Render(format!("{file}: {e:#}")))?;
    Ok(Rendered { output, doc })
}
