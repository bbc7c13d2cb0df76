//! Finding the inputs: stdin, files, folders walked recursively with include/exclude
//! globs, hidden entries and symlinked folders skipped unless asked, and `--shard K/N`
//! to split a corpus between machines with no coordination.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::Context;
use globset::{Glob, GlobSet, GlobSetBuilder};
use sha2::{Digest, Sha256};
use tarjama_text::Source;

/// Input formats that are translated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Plain UTF-8 text (`.txt`, `.text`, no extension, stdin).
    Text,
    /// SubRip subtitles: cue numbers and timestamps are kept, the text is translated.
    Srt,
}

impl Kind {
    /// The kind of a file by its extension; `None` for formats this command does not
    /// read (they are skipped with a note rather than mangled).
    pub fn of(path: &Path) -> Option<Kind> {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        match ext.as_deref() {
            None | Some("txt") | Some("text") => Some(Kind::Text),
            Some("srt") => Some(Kind::Srt),
            _ => None,
        }
    }
}

/// One input with the path its output mirrors.
#[derive(Debug, Clone)]
pub struct Input {
    /// Where to read it.
    pub source: Source,
    /// Its path relative to the folder it was found in (its file name for a file given
    /// by name), with `/` separators: the key in the manifest and the output's path.
    pub relative: String,
    /// Its format; `None`: not a format this command reads.
    pub kind: Option<Kind>,
}

impl Input {
    /// A name for messages: the path as the user would type it.
    pub fn name(&self) -> String {
        self.source.name()
    }
}

/// `--shard K/N`: this machine takes the inputs whose path hash is `K-1` modulo `N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 1-based shard number.
    pub k: u64,
    /// Number of shards.
    pub n: u64,
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || format!("{s:?}: expected K/N with 1 <= K <= N, e.g. 2/4");
        let (k, n) = s.split_once('/').ok_or_else(err)?;
        let k: u64 = k.trim().parse().map_err(|_| err())?;
        let n: u64 = n.trim().parse().map_err(|_| err())?;
        if k == 0 || n == 0 || k > n {
            return Err(err());
        }
        Ok(Shard { k, n })
    }
}

impl Shard {
    /// Whether the input at `relative` belongs to this shard. The hash is of the path, not
    /// the position in a listing, so machines with different file sets still agree.
    pub fn contains(&self, relative: &str) -> bool {
        let digest = Sha256::digest(relative.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_be_bytes(first) % self.n == self.k - 1
    }

    /// The suffix of this shard's manifest and cache files.
    pub fn tag(&self) -> String {
        format!("{}-of-{}", self.k, self.n)
    }
}

/// Which files of a folder are taken.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Globs a file's relative path must match (any of them); empty: all.
    pub include: Vec<String>,
    /// Globs that drop a file.
    pub exclude: Vec<String>,
    /// Walk into hidden files and folders.
    pub hidden: bool,
    /// Follow symlinked folders.
    pub follow: bool,
    /// Keep only this shard's inputs.
    pub shard: Option<Shard>,
    /// Never take files under this folder (the output folder, when it is inside an input).
    pub skip_under: Option<PathBuf>,
}

/// A file or folder that could not be listed.
#[derive(Debug)]
pub struct ListError {
    /// The path.
    pub path: String,
    /// What went wrong.
    pub reason: String,
}

fn globset(globs: &[String], flag: &str) -> anyhow::Result<GlobSet> {
    let mut builder = GlobSetBuilder::new();
    for g in globs {
        builder.add(Glob::new(g).with_context(|| format!("{flag} {g:?}: not a valid glob"))?);
    }
    Ok(builder.build()?)
}

/// Expands the command line's inputs in order: `-` or nothing is stdin; folders are walked
/// (sorted by name). Listing errors are returned beside the inputs, not fatal.
pub fn collect(args: &[String], sel: &Selection) -> anyhow::Result<(Vec<Input>, Vec<ListError>)> {
    let include = globset(&sel.include, "--include")?;
    let exclude = globset(&sel.exclude, "--exclude")?;
    let skip_under = sel.skip_under.as_ref().and_then(|p| p.canonicalize().ok());
    let mut inputs = Vec::new();
    let mut errors = Vec::new();
    let stdin = [String::from("-")];
    let args = if args.is_empty() { &stdin[..] } else { args };
    for arg in args {
        let path = Path::new(arg);
        if arg == "-" {
            inputs.push(Input {
                source: Source::Stdin,
                relative: "stdin".into(),
                kind: Some(Kind::Text),
            });
        } else if path.is_dir() {
            walk(
                path,
                sel,
                &include,
                &exclude,
                skip_under.as_deref(),
                &mut inputs,
                &mut errors,
            );
        } else {
            let relative = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| arg.clone());
            inputs.push(Input {
                source: Source::File(path.to_path_buf()),
                kind: Kind::of(path),
                relative,
            });
        }
    }
    if let Some(shard) = sel.shard {
        inputs.retain(|i| shard.contains(&i.relative));
    }
    Ok((inputs, errors))
}

fn walk(
    root: &Path,
    sel: &Selection,
    include: &GlobSet,
    exclude: &GlobSet,
    skip_under: Option<&Path>,
    inputs: &mut Vec<Input>,
    errors: &mut Vec<ListError>,
) {
    let walker = walkdir::WalkDir::new(root)
        .follow_links(sel.follow)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            let hidden = e.depth() > 0 && e.file_name().to_string_lossy().starts_with('.');
            sel.hidden || !hidden
        });
    for entry in walker {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                let path = e
                    .path()
                    .map_or_else(|| root.display().to_string(), |p| p.display().to_string());
                let reason = match e.io_error() {
                    Some(io) => format!("cannot list: {io}"),
                    None => format!("{e}"),
                };
                errors.push(ListError { path, reason });
                continue;
            }
        };
        let path = entry.path();
        let is_file = if entry.path_is_symlink() && !sel.follow {
            // A symlink to a file is taken; a symlinked folder only with --follow.
            path.metadata().is_ok_and(|m| m.is_file())
        } else {
            entry.file_type().is_file()
        };
        if !is_file {
            continue;
        }
        if let Some(out) = skip_under {
            if path.canonicalize().is_ok_and(|p| p.starts_with(out)) {
                continue;
            }
        }
        let Ok(rel) = path.strip_prefix(root) else {
            continue;
        };
        let relative = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        if (!include.is_empty() && !include.is_match(&relative)) || exclude.is_match(&relative) {
            continue;
        }
        inputs.push(Input {
            source: Source::File(path.to_path_buf()),
            kind: Kind::of(path),
            relative,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_the_inputs() {
        let paths: Vec<String> = (0..200).map(|i| format!("dir/{i}.txt")).collect();
        let shards: Vec<Shard> = (1..=3).map(|k| Shard { k, n: 3 }).collect();
        for p in &paths {
            let owners = shards.iter().filter(|s| s.contains(p)).count();
            assert_eq!(owners, 1, "{p}");
        }
        // Not everything lands in one shard.
        assert!(paths.iter().filter(|p| shards[0].contains(p)).count() > 30);
    }

    #[test]
    fn shard_parsing() {
        assert_eq!("2/4".parse::<Shard>(), Ok(Shard { k: 2, n: 4 }));
        assert!("0/4".parse::<Shard>().is_err());
        assert!("5/4".parse::<Shard>().is_err());
        assert!("2".parse::<Shard>().is_err());
    }

    #[test]
    fn kinds_by_extension() {
        assert_eq!(Kind::of(Path::new("a/b.TXT")), Some(Kind::Text));
        assert_eq!(Kind::of(Path::new("a/README")), Some(Kind::Text));
        assert_eq!(Kind::of(Path::new("x.srt")), Some(Kind::Srt));
        assert_eq!(Kind::of(Path::new("x.pdf")), None);
        assert_eq!(Kind::of(Path::new("x.png")), None);
    }

    #[test]
    fn walk_skips_hidden_and_applies_globs() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        for f in [
            "a/1.txt",
            "a/b/2.txt",
            "a/b/3.srt",
            ".git/x.txt",
            "a/.h.txt",
            "a/drop.txt",
        ] {
            std::fs::write(root.join(f), "x").unwrap();
        }
        let sel = Selection {
            exclude: vec!["**/drop.txt".into()],
            ..Selection::default()
        };
        let (inputs, errors) = collect(&[root.display().to_string()], &sel).unwrap();
        assert!(errors.is_empty());
        let rel: Vec<_> = inputs.iter().map(|i| i.relative.as_str()).collect();
        assert_eq!(rel, ["a/1.txt", "a/b/2.txt", "a/b/3.srt"]);
        let sel = Selection {
            include: vec!["*.srt".into()],
            hidden: true,
            ..Selection::default()
        };
        let (inputs, _) = collect(&[root.display().to_string()], &sel).unwrap();
        let rel: Vec<_> = inputs.iter().map(|i| i.relative.as_str()).collect();
        assert_eq!(rel, ["a/b/3.srt"]);
    }
}
