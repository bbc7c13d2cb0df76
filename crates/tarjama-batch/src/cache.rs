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
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tarjama_pipeline::{Translated, Translator};

use super::atomic;

/// Prefix of cache file names.
pub const PREFIX: &str = ".tarjama-cache";

#[derive(Serialize, Deserialize)]
struct Line {
    settings: String,
    source: String,
    text: String,
    score: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    candidates: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    utility: Option<f64>,
}

/// Where the cache lives on disk, and under which settings.
struct Store {
    path: PathBuf,
    settings: String,
    file: Option<File>,
}

/// The sentences translated so far (loaded from disk, and this run's), shared by the
/// translators of the files in flight.
#[derive(Default)]
struct Entries {
    map: HashMap<String, Translated>,
    /// Sources added since the last [`Cache::persist`], in order.
    fresh: Vec<String>,
    hits: usize,
    misses: usize,
}

/// A translation cache shared by any number of [`CachedTranslator`]s, on disk with an
/// output folder.
#[derive(Clone)]
pub struct Cache {
    entries: Arc<Mutex<Entries>>,
    store: Option<Arc<Mutex<Store>>>,
}

impl Cache {
    /// A cache in memory only.
    pub fn new() -> Self {
        Cache {
            entries: Arc::default(),
            store: None,
        }
    }

    /// A cache kept in `dir` (`.tarjama-cache[.TAG].jsonl`); entries written under other
    /// `settings` are ignored.
    pub fn persistent(dir: &Path, tag: Option<&str>, settings: &str) -> anyhow::Result<Self> {
        let path = dir.join(match tag {
            Some(t) => format!("{PREFIX}.{t}.jsonl"),
            None => format!("{PREFIX}.jsonl"),
        });
        let mut entries = Entries::default();
        if let Ok(bytes) = std::fs::read(&path) {
            // Lines from a killed run may be torn: those are skipped (and redone).
            for line in String::from_utf8_lossy(&bytes).lines() {
                if let Ok(l) = serde_json::from_str::<Line>(line) {
                    if l.settings == settings {
                        let t = Translated {
                            text: l.text,
                            score: l.score,
                            candidates: l.candidates,
                            utility: l.utility,
                        };
                        entries.map.insert(l.source, t);
                    }
                }
            }
        }
        Ok(Cache {
            entries: Arc::new(Mutex::new(entries)),
            store: Some(Arc::new(Mutex::new(Store {
                path,
                settings: settings.to_string(),
                file: None,
            }))),
        })
    }

    /// A translator that asks `inner` only for sentences this cache does not hold.
    pub fn wrap(&self, inner: Box<dyn Translator + Send>) -> CachedTranslator {
        CachedTranslator {
            inner,
            cache: self.clone(),
        }
    }

    /// (hits, misses) so far.
    pub fn counts(&self) -> (usize, usize) {
        let e = self.lock();
        (e.hits, e.misses)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends the sentences translated since the last call to the file on disk (if
    /// any), durably.
    pub fn persist(&self) -> anyhow::Result<()> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let mut store = store.lock().unwrap_or_else(|e| e.into_inner());
        let mut buf = Vec::new();
        {
            let mut e = self.lock();
            let fresh = std::mem::take(&mut e.fresh);
            for source in fresh {
                let t = &e.map[&source];
                let line = Line {
                    settings: store.settings.clone(),
                    source,
                    text: t.text.clone(),
                    score: t.score,
                    candidates: t.candidates,
                    utility: t.utility,
                };
                serde_json::to_writer(&mut buf, &line)?;
                buf.push(b'\n');
            }
        }
        if buf.is_empty() {
            return Ok(());
        }
        if store.file.is_none() {
            store.file = Some(atomic::open_append(&store.path)?);
        }
        let Store { file, path, .. } = &mut *store;
        let file = file.as_mut().expect("opened above");
        atomic::append_durable(file, path, &buf)
    }
}

impl Default for Cache {
    fn default() -> Self {
        Self::new()
    }
}

/// A [`Translator`] that asks its inner translator only for sentences its [`Cache`] has
/// not seen.
pub struct CachedTranslator {
    inner: Box<dyn Translator + Send>,
    cache: Cache,
}

impl Translator for CachedTranslator {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn glossary(&self) -> Option<std::sync::Arc<tarjama_pipeline::Glossary>> {
        self.inner.glossary()
    }

    fn translate(&mut self, sentences: &[&str]) -> tarjama_chat::Result<Vec<Translated>> {
        let mut todo: Vec<&str> = Vec::new();
        {
            let mut e = self.cache.lock();
            for s in sentences {
                if e.map.contains_key(*s) || todo.contains(s) {
                    e.hits += 1;
                } else {
                    todo.push(s);
                }
            }
            e.misses += todo.len();
        }
        // The lock is not held while the model works: other files go on meanwhile.
        let out = if todo.is_empty() {
            Vec::new()
        } else {
            self.inner.translate(&todo)?
        };
        let mut e = self.cache.lock();
        for (s, t) in todo.iter().zip(out) {
            e.map.insert(s.to_string(), t);
            e.fresh.push(s.to_string());
        }
        Ok(sentences
            .iter()
            .map(|s| {
                e.map
                    .get(*s)
                    .cloned()
                    .unwrap_or_else(|| Translated::new(s.to_string()))
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
    struct Upper(Arc<std::sync::atomic::AtomicUsize>);

    impl Translator for Upper {
        fn name(&self) -> String {
            "upper".into()
        }
        fn translate(&mut self, s: &[&str]) -> tarjama_chat::Result<Vec<Translated>> {
            self.0
                .fetch_add(s.len(), std::sync::atomic::Ordering::Relaxed);
            Ok(s.iter()
                .map(|s| Translated::new(s.to_uppercase()))
                .collect())
        }
    }

    #[test]
    fn repeated_sentences_reach_the_model_once_and_survive_a_restart() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let cache = Cache::persistent(dir.path(), None, "s1").unwrap();
        let mut c = cache.wrap(Box::new(Upper(calls.clone())));
        let out = c.translate(&["a", "b", "a"]).unwrap();
        assert_eq!(
            out.iter().map(|t| t.text.as_str()).collect::<Vec<_>>(),
            ["A", "B", "A"]
        );
        // A second translator on the same cache (another file in flight) sees them.
        let mut d = cache.wrap(Box::new(Upper(calls.clone())));
        d.translate(&["b", "c"]).unwrap();
        assert_eq!(calls.load(Ordering::Relaxed), 3);
        assert_eq!(cache.counts(), (2, 3));
        cache.persist().unwrap();

        let calls2 = Arc::new(AtomicUsize::new(0));
        let again = Cache::persistent(dir.path(), None, "s1").unwrap();
        again
            .wrap(Box::new(Upper(calls2.clone())))
            .translate(&["a", "b", "c"])
            .unwrap();
        assert_eq!(calls2.load(Ordering::Relaxed), 0);
        // Other settings do not see those entries.
        let other = Cache::persistent(dir.path(), None, "s2").unwrap();
        other
            .wrap(Box::new(Upper(calls2.clone())))
            .translate(&["a"])
            .unwrap();
        assert_eq!(calls2.load(Ordering::Relaxed), 1);
    }
}
