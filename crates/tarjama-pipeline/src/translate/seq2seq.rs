//! An encoder-decoder model (Marian, NLLB) as a [`Translator`], and [`select`], the
//! choice among candidate translations that the chat translator makes too.

use std::sync::Arc;

use tarjama_chat::Result;
use tarjama_seq2seq::{GenerateOptions, Seq2SeqTranslator};

use super::guards::problem_free;
use super::{Translated, Translator};
use crate::glossary::Glossary;
use crate::mbr::{self, ChrfUtility, Utility};

/// An encoder-decoder model (Marian, NLLB) used as a translator: sentences go to it in
/// length-sorted batches, with its beam search settings. With a glossary, a sentence
/// that holds some of its terms is decoded by constrained beam search, which writes
/// their English; with candidates, the beam's n-best list is chosen among as chat
/// candidates are (guards, glossary, minimum Bayes risk).
pub struct Seq2SeqAdapter {
    model: Seq2SeqTranslator,
    options: GenerateOptions,
    name: String,
    glossary: Option<Arc<Glossary>>,
    candidates: usize,
    utility: Arc<dyn Utility>,
}

impl std::fmt::Debug for Seq2SeqAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Seq2SeqAdapter")
            .field("name", &self.name)
            .field("candidates", &self.candidates)
            .finish_non_exhaustive()
    }
}

impl Seq2SeqAdapter {
    /// Wraps a loaded encoder-decoder model.
    pub fn new(model: Seq2SeqTranslator, name: String, options: GenerateOptions) -> Self {
        Seq2SeqAdapter {
            model,
            options,
            name,
            glossary: None,
            candidates: 1,
            utility: Arc::new(ChrfUtility::default()),
        }
    }

    /// Makes every sentence's output contain the English of the glossary terms found in
    /// it (constrained beam search).
    pub fn with_glossary(mut self, glossary: Arc<Glossary>) -> Self {
        self.glossary = Some(glossary);
        self
    }

    /// Chooses among the `n` best hypotheses of the beam (widened to `n` beams if it is
    /// narrower) instead of taking the first.
    pub fn with_candidates(mut self, n: usize) -> Result<Self> {
        self.candidates = n.max(1);
        if self.candidates > 1 {
            let beams = self
                .model
                .search_params(&self.options)
                .map_err(tarjama_chat::Error::engine)?
                .num_beams;
            self.options.beam = Some(beams.max(self.candidates));
            self.options.nbest = self.candidates;
        }
        Ok(self)
    }
}

impl Translator for Seq2SeqAdapter {
    fn glossary(&self) -> Option<Arc<Glossary>> {
        self.glossary.clone()
    }

    fn name(&self) -> String {
        self.name.clone()
    }

    fn translate(&mut self, sentences: &[&str]) -> Result<Vec<Translated>> {
        let terms: Vec<Vec<String>> = match &self.glossary {
            Some(g) => sentences
                .iter()
                .map(|s| g.entries_in(s).iter().map(|e| e.english.clone()).collect())
                .collect(),
            None => Vec::new(),
        };
        let out = if terms.iter().any(|t| !t.is_empty()) {
            self.model
                .translate_constrained(sentences, &self.options, &terms)
                .map_err(tarjama_chat::Error::engine)?
        } else {
            self.model
                .translate(sentences, &self.options)
                .map_err(tarjama_chat::Error::engine)?
        };
        Ok(out
            .into_iter()
            .zip(sentences)
            .map(|(t, source)| {
                let good: Vec<String> = t
                    .nbest
                    .iter()
                    .map(|c| c.text.clone())
                    .filter(|c| problem_free(c, source))
                    .collect();
                if self.candidates > 1 && !good.is_empty() {
                    select(source, good, self.glossary.as_deref(), &*self.utility)
                } else {
                    Translated {
                        score: Some(t.score),
                        ..Translated::new(t.text)
                    }
                }
            })
            .collect())
    }
}

/// The candidate kept among `good` (non-empty, every one past the guards): of those
/// that miss the fewest glossary terms of `source`, the minimum-Bayes-risk choice.
pub(super) fn select(
    source: &str,
    mut good: Vec<String>,
    glossary: Option<&Glossary>,
    utility: &dyn Utility,
) -> Translated {
    let compared = good.len();
    if let Some(glossary) = glossary {
        let misses: Vec<usize> = good
            .iter()
            .map(|t| glossary.missing(source, t).len())
            .collect();
        let fewest = misses.iter().copied().min().unwrap_or(0);
        good = good
            .into_iter()
            .zip(misses)
            .filter(|&(_, m)| m == fewest)
            .map(|(t, _)| t)
            .collect();
    }
    let choice = mbr::select(&good, utility).expect("at least one candidate");
    Translated {
        text: good.swap_remove(choice.index),
        score: None,
        candidates: Some(compared),
        utility: choice.utility,
    }
}
