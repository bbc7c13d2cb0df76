//! A translation cache in front of any [`Translator`]: a sentence seen before with the
//! same model and settings (bylines, datelines, boilerplate) is translated once.
//!
//! With an output folder the cache is also kept on disk (`.tarjama-cache.jsonl`,
//! append-only, one line per sentence, written before the manifest line of the input that
//! produced it). This matters for resuming, not only speed: a chat model translates
//! sentences in batches, and which sentences still need the model depends on what is
//! cached, so a rerun after a kill must start from the same cache as the uninterrupted run
//! had at that point to give byte-identical outputs.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tarjama_models::pipeline::{Translated, Translator};

use super::atomic;

/// Prefix of cache file names.
pub const PREFIX: &str = ".tarjama-cache";

#[derive(Serialize, Deserialize)]
struct Line {
    settings: String,
    source: String,
    text: String,
    score: Option<f32>,
}

/// Where the cache lives on disk, and under which settings.
struct Store {
    path: PathBuf,
    settings: String,
    file: Option<File>,
}

/// A [`Translator`] that asks its inner translator only for sentences it has not seen.
pub struct CachedTranslator {
    inner: Box<dyn Translator>,
    map: HashMap<String, Translated>,
    fresh: Vec<String>,
    store: Option<Store>,
    /// Sentences answered from the cache.
    pub hits: usize,
    /// Sentences sent to the model.
    pub misses: usize,
}

impl CachedTranslator {
    /// An in-memory cache.
    pub fn new(inner: Box<dyn Translator>) -> Self {
        CachedTranslator {
            inner,
            map: HashMap::new(),
            fresh: Vec::new(),
            store: None,
            hits: 0,
            misses: 0,
        }
    }

    /// Also keeps the cache in `dir` (file name tagged like the manifest), loading the
    /// lines written under the same `settings`. Unparsable lines (torn by a kill) are
    /// ignored.
    pub fn persistent(
        inner: Box<dyn Translator>,
        dir: &Path,
        tag: Option<&str>,
        settings: &str,
    ) -> anyhow::Result<Self> {
        let path = dir.join(match tag {
            Some(t) => format!("{PREFIX}.{t}.jsonl"),
            None => format!("{PREFIX}.jsonl"),
        });
        let mut cache = Self::new(inner);
        if let Ok(bytes) = std::fs::read(&path) {
            for line in String::from_utf8_lossy(&bytes).lines() {
                if let Ok(l) = serde_json::from_str::<Line>(line) {
                    if l.settings == settings {
                        let t = Translated {
                            text: l.text,
                            score: l.score,
                        };
                        cache.map.insert(l.source, t);
                    }
                }
            }
        }
        cache.store = Some(Store {
            path,
            settings: settings.to_string(),
            file: None,
        });
        Ok(cache)
    }

    /// Writes the sentences translated since the last call to disk (no-op in memory).
    pub fn persist(&mut self) -> anyhow::Result<()> {
        let fresh = std::mem::take(&mut self.fresh);
        let Some(store) = self.store.as_mut() else {
            return Ok(());
        };
        if fresh.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        for source in fresh {
            let t = &self.map[&source];
            let line = Line {
                settings: store.settings.clone(),
                source,
                text: t.text.clone(),
                score: t.score,
            };
            serde_json::to_writer(&mut buf, &line)?;
            buf.push(b'\n');
        }
        if store.file.is_none() {
            store.file = Some(atomic::open_append(&store.path)?);
        }
        let file = store.file.as_mut().expect("opened above");
        atomic::append_durable(file, &store.path, &buf)
    }
}

impl Translator for CachedTranslator {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn translate(&mut self, sentences: &[&str]) -> tarjama_models::Result<Vec<Translated>> {
        let mut todo: Vec<&str> = Vec::new();
        for s in sentences {
            if self.map.contains_key(*s) || todo.contains(s) {
                self.hits += 1;
            } else {
                todo.push(s);
            }
        }
        if !todo.is_empty() {
            self.misses += todo.len();
            let out = self.inner.translate(&todo)?;
            for (s, t) in todo.iter().zip(out) {
                self.map.insert(s.to_string(), t);
                self.fresh.push(s.to_string());
            }
        }
        Ok(sentences
            .iter()
            .map(|s| {
                self.map.get(*s).cloned().unwrap_or(Translated {
                    // Only reachable if the inner translator broke its one-output-per-input
                    // contract; keep the source rather than panic.
                    text: s.to_string(),
                    score: None,
                })
            })
            .collect())
    }

    fn take_events(&mut self) -> Vec<String> {
        self.inner.take_events()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts what reaches the model; translates by upper-casing.
    struct Upper(std::rc::Rc<std::cell::Cell<usize>>);

    impl Translator for Upper {
        fn name(&self) -> String {
            "upper".into()
        }
        fn translate(&mut self, s: &[&str]) -> tarjama_models::Result<Vec<Translated>> {
            self.0.set(self.0.get() + s.len());
            Ok(s.iter()
                .map(|s| Translated {
                    text: s.to_uppercase(),
                    score: None,
                })
                .collect())
        }
    }

    #[test]
    fn repeated_sentences_reach_the_model_once_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let calls = std::rc::Rc::new(std::cell::Cell::new(0));
        let mut c =
            CachedTranslator::persistent(Box::new(Upper(calls.clone())), dir.path(), None, "s1")
                .unwrap();
        let out = c.translate(&["a", "b", "a"]).unwrap();
        assert_eq!(
            out.iter().map(|t| t.text.as_str()).collect::<Vec<_>>(),
            ["A", "B", "A"]
        );
        c.translate(&["b", "c"]).unwrap();
        assert_eq!(calls.get(), 3);
        assert_eq!((c.hits, c.misses), (2, 3));
        c.persist().unwrap();

        let calls2 = std::rc::Rc::new(std::cell::Cell::new(0));
        let mut again =
            CachedTranslator::persistent(Box::new(Upper(calls2.clone())), dir.path(), None, "s1")
                .unwrap();
        again.translate(&["a", "b", "c"]).unwrap();
        assert_eq!(calls2.get(), 0);
        // Other settings do not see those entries.
        let mut other =
            CachedTranslator::persistent(Box::new(Upper(calls2.clone())), dir.path(), None, "s2")
                .unwrap();
        other.translate(&["a"]).unwrap();
        assert_eq!(calls2.get(), 1);
    }
}
