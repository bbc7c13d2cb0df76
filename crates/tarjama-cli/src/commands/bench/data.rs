//! The sentences and articles a benchmark runs on: a `--src`/`--ref` pair of line-aligned
//! files, FLORES-200 devtest (sentences, or documents rebuilt from its metadata), or a
//! folder of articles with optional reference summaries.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// The FLORES folders tried in turn when neither `--flores` nor `$TARJAMA_FLORES` is
/// given, relative to the working directory: the copy in the repository (for a run from
/// its root), then the shared evaluation folder next to a checkout.
pub const DEFAULT_FLORES: &str = "tests/data/flores200";

/// Source sentences with one reference translation each.
#[derive(Debug, Clone)]
pub struct ParallelSet {
    /// Where it came from, for the report.
    pub name: String,
    /// Arabic sources.
    pub sources: Vec<String>,
    /// English references, one per source.
    pub references: Vec<String>,
    /// Sentences available before `--limit`.
    pub available: usize,
}

/// An Arabic article to summarize.
#[derive(Debug, Clone)]
pub struct Article {
    /// A name for reports (file name, or `flores-doc-N`).
    pub name: String,
    /// The Arabic text.
    pub text: String,
    /// The English version of the whole document, when known (FLORES).
    pub english: Option<String>,
    /// A reference summary, when given.
    pub summary: Option<String>,
}

fn read(path: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    String::from_utf8(bytes).map_err(|e| {
        let line = e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        anyhow::anyhow!("{}: invalid UTF-8 on line {line}", path.display())
    })
}

fn lines(path: &Path) -> anyhow::Result<Vec<String>> {
    let text = read(path)?;
    Ok(tarjama_eval::split_segments(&text)
        .into_iter()
        .map(str::to_string)
        .collect())
}

/// Keeps the first `limit` items (all with `None`).
fn take<T>(mut v: Vec<T>, limit: Option<usize>) -> Vec<T> {
    if let Some(n) = limit {
        v.truncate(n);
    }
    v
}

/// Reads a line-aligned `src`/`ref` pair; the line counts must agree.
pub fn parallel_files(
    src: &Path,
    reference: &Path,
    limit: Option<usize>,
) -> anyhow::Result<ParallelSet> {
    let sources = lines(src)?;
    let references = lines(reference)?;
    if sources.len() != references.len() {
        anyhow::bail!(
            "{} has {} lines but {} has {}; sources and references must be line-aligned",
            src.display(),
            sources.len(),
            reference.display(),
            references.len()
        );
    }
    if sources.is_empty() {
        anyhow::bail!("{} is empty", src.display());
    }
    Ok(ParallelSet {
        name: src.display().to_string(),
        available: sources.len(),
        sources: take(sources, limit),
        references: take(references, limit),
    })
}

/// The FLORES folder: `--flores`, else `$TARJAMA_FLORES`, else [`DEFAULT_FLORES`] (the
/// repository's copy, from its root); it must exist.
pub fn flores_dir(flag: Option<&Path>) -> anyhow::Result<PathBuf> {
    let dir = match flag {
        Some(d) => d.to_path_buf(),
        None => match std::env::var_os("TARJAMA_FLORES").filter(|v| !v.is_empty()) {
            Some(d) => PathBuf::from(d),
            None if Path::new(DEFAULT_FLORES).is_dir() => PathBuf::from(DEFAULT_FLORES),
            None => anyhow::bail!(
                "FLORES-200 not found in {DEFAULT_FLORES} (relative to the working directory; \
                 give --flores DIR, set TARJAMA_FLORES, or use --src FILE --ref FILE)"
            ),
        },
    };
    if !dir.is_dir() {
        anyhow::bail!(
            "FLORES-200 folder {} not found (give --flores DIR, set TARJAMA_FLORES, or use \
             --src FILE --ref FILE)",
            dir.display()
        );
    }
    Ok(dir)
}

/// FLORES-200 devtest, Arabic to English.
pub fn flores_sentences(dir: &Path, limit: Option<usize>) -> anyhow::Result<ParallelSet> {
    let mut set = parallel_files(
        &dir.join("arb_Arab.devtest"),
        &dir.join("eng_Latn.devtest"),
        limit,
    )?;
    set.name = format!("FLORES-200 devtest arb_Arab-eng_Latn ({})", dir.display());
    Ok(set)
}

/// FLORES-200 devtest documents: consecutive lines that share a URL in
/// `metadata_devtest.tsv` form one article; its English side is the reference document.
pub fn flores_documents(dir: &Path, limit: Option<usize>) -> anyhow::Result<Vec<Article>> {
    let set = flores_sentences(dir, None)?;
    let meta_path = dir.join("metadata_devtest.tsv");
    let meta = read(&meta_path)?;
    let urls: Vec<&str> = meta
        .lines()
        .skip(1) // header: URL, domain, topic, ...
        .map(|l| l.split('\t').next().unwrap_or(""))
        .collect();
    if urls.len() != set.sources.len() {
        anyhow::bail!(
            "{} has {} rows but arb_Arab.devtest has {} lines",
            meta_path.display(),
            urls.len(),
            set.sources.len()
        );
    }
    let mut docs: Vec<Article> = Vec::new();
    let mut last_url = None;
    for (i, url) in urls.iter().enumerate() {
        if last_url != Some(url) {
            docs.push(Article {
                name: format!("flores-doc-{:03}", docs.len() + 1),
                text: String::new(),
                english: Some(String::new()),
                summary: None,
            });
            last_url = Some(url);
        }
        let doc = docs.last_mut().expect("pushed above");
        join_into(&mut doc.text, &set.sources[i]);
        join_into(doc.english.as_mut().expect("set above"), &set.references[i]);
    }
    Ok(take(docs, limit))
}

fn join_into(doc: &mut String, sentence: &str) {
    if !doc.is_empty() {
        doc.push(' ');
    }
    doc.push_str(sentence);
}

/// The `.txt` articles of `dir` (sorted), each with the file of the same name in `refs`
/// as its reference summary when `refs` is given (a missing one is an error).
pub fn article_folder(
    dir: &Path,
    refs: Option<&Path>,
    limit: Option<usize>,
) -> anyhow::Result<Vec<Article>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot list the articles folder", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    if files.is_empty() {
        anyhow::bail!("{}: no .txt articles", dir.display());
    }
    let files = take(files, limit);
    let mut out = Vec::with_capacity(files.len());
    for path in files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let summary = match refs {
            Some(r) => {
                let ref_path = r.join(&name);
                if !ref_path.is_file() {
                    anyhow::bail!(
                        "no reference summary {} for article {}",
                        ref_path.display(),
                        path.display()
                    );
                }
                Some(read(&ref_path)?.trim().to_string())
            }
            None => None,
        };
        out.push(Article {
            name,
            text: read(&path)?,
            english: None,
            summary,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flores_documents_follow_the_urls() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("arb_Arab.devtest"), "أ\nب\nج\n").unwrap();
        std::fs::write(dir.path().join("eng_Latn.devtest"), "A\nB\nC\n").unwrap();
        std::fs::write(
            dir.path().join("metadata_devtest.tsv"),
            "URL\tdomain\nu1\tx\nu1\tx\nu2\tx\n",
        )
        .unwrap();
        let docs = flores_documents(dir.path(), None).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].text, "أ ب");
        assert_eq!(docs[0].english.as_deref(), Some("A B"));
        assert_eq!(docs[1].english.as_deref(), Some("C"));
        assert_eq!(flores_documents(dir.path(), Some(1)).unwrap().len(), 1);
    }

    #[test]
    fn misaligned_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let (s, r) = (dir.path().join("s.txt"), dir.path().join("r.txt"));
        std::fs::write(&s, "a\nb\n").unwrap();
        std::fs::write(&r, "a\n").unwrap();
        let err = parallel_files(&s, &r, None).unwrap_err().to_string();
        assert!(
            err.contains("s.txt has 2 lines") && err.contains("r.txt has 1"),
            "{err}"
        );
    }
}
