//! One document in memory, translated and rendered as a folder run would write it: what a
//! server answers for a text or an uploaded file.

use tarjama_pipeline::TranslateOptions;
use tarjama_pipeline::{plan_document, translate_planned, DocumentTranslation, Translator};

use crate::formats::Prepared;
use crate::inputs::Kind;
use crate::render::{render, Format};

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
) -> anyhow::Result<Rendered> {
    let prepared = Prepared::new(kind, text).map_err(|e| anyhow::anyhow!("{file}: {e:#}"))?;
    let plan = plan_document(&prepared.text, options);
    let mut doc = translate_planned(translator, plan, options)
        .map_err(|e| anyhow::anyhow!("{file}: translation failed: {e:#}"))?;
    prepared.map_back(&mut doc);
    let output = render(&prepared, &doc, format, file, model)?;
    Ok(Rendered { output, doc })
}
