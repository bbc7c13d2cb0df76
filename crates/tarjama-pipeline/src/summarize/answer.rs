//! The model's answer made into the summary's sentences: citations parsed off (the
//! `direct` strategy asks for them), repeated sentences dropped, the length enforced at
//! sentence ends, and each sentence tied to the article sentences it draws on.

use std::collections::HashSet;

use super::{Article, SourceRef, SummaryLength, SummarySentence};

/// The answer as sentences, each with the (zero-based) article sentences it cites when
/// `cited` (the answer carries `[3][5]`-style citations to `n` sentences), or `None`.
pub(super) fn parts(answer: &str, cited: bool, n: usize) -> Vec<(String, Option<Vec<usize>>)> {
    if cited {
        strip_citations(answer, n)
            .into_iter()
            .map(|(t, c)| (t, Some(c)))
            .collect()
    } else {
        sentences_of(answer)
            .into_iter()
            .map(|t| (t, None))
            .collect()
    }
}

/// Splits `[3][5]`-style citations off each sentence. Returns each clean sentence with
/// the cited (zero-based) sentence indices below `n`.
pub(super) fn strip_citations(answer: &str, n: usize) -> Vec<(String, Vec<usize>)> {
    let mut out: Vec<(String, Vec<usize>)> = Vec::new();
    for paragraph in tarjama_text::split(answer.trim()) {
        for s in paragraph.sentences {
            let mut text = String::new();
            let mut nums = Vec::new();
            let mut rest = s.text;
            while let Some(open) = rest.find('[') {
                let Some(close) = rest[open..].find(']') else {
                    break;
                };
                let inside = &rest[open + 1..open + close];
                let parsed: Vec<usize> = inside
                    .split([',', ' ', '-'])
                    .filter(|x| !x.is_empty())
                    .filter_map(|x| x.trim().parse::<usize>().ok())
                    .collect();
                text.push_str(&rest[..open]);
                if parsed.is_empty() {
                    text.push_str(&rest[open..open + close + 1]);
                }
                nums.extend(
                    parsed
                        .into_iter()
                        .filter(|&k| k >= 1 && k <= n)
                        .map(|k| k - 1),
                );
                rest = &rest[open + close + 1..];
            }
            text.push_str(rest);
            let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
            let text = text.replace(" .", ".").replace(" ,", ",");
            if text.is_empty() || text.chars().all(|c| !c.is_alphanumeric()) {
                // A citation on a line of its own belongs to the sentence before.
                if let Some((_, last)) = out.last_mut() {
                    last.extend(nums);
                    last.sort_unstable();
                    last.dedup();
                }
                continue;
            }
            nums.sort_unstable();
            nums.dedup();
            out.push((text, nums));
        }
    }
    out
}

/// The sentences of an English text.
pub(super) fn sentences_of(text: &str) -> Vec<String> {
    tarjama_text::split(text.trim())
        .into_iter()
        .flat_map(|p| p.sentences.into_iter().map(|s| s.text.to_string()))
        .collect()
}

/// Removes sentences that repeat an earlier one (most of their content words already
/// said): small models loop. Returns how many were removed.
pub(super) fn drop_repeats<T>(parts: &mut Vec<(String, T)>) -> usize {
    let before = parts.len();
    let mut seen: Vec<HashSet<String>> = Vec::new();
    parts.retain(|(text, _)| {
        let words = content_words(text);
        let repeat = !words.is_empty()
            && seen
                .iter()
                .any(|s| words.intersection(s).count() as f32 >= 0.8 * words.len() as f32);
        if !repeat {
            seen.push(words);
        }
        !repeat
    });
    before - parts.len()
}

/// Cuts the summary to the requested length at a sentence end; says whether it cut.
pub(super) fn cut_to_length<T>(parts: &mut Vec<(String, T)>, length: SummaryLength) -> bool {
    let keep = match length {
        SummaryLength::Sentences(n) => n.max(1),
        SummaryLength::Words(n) => {
            // Allow 20% slack before cutting: a summary that is a little long is better
            // than one cut mid-thought.
            let limit = n + n / 5;
            let mut words = 0;
            let mut keep = 0;
            for (s, _) in parts.iter() {
                words += s.split_whitespace().count();
                if words > limit && keep > 0 {
                    break;
                }
                keep += 1;
            }
            keep
        }
    };
    let cut = keep < parts.len();
    parts.truncate(keep);
    cut
}

/// The words of `text` that carry content: longer than two letters, not a stop word.
fn content_words(text: &str) -> HashSet<String> {
    const STOP: &[&str] = &[
        "the", "and", "that", "this", "with", "from", "for", "was", "were", "are", "has", "have",
        "had", "his", "her", "its", "their", "they", "which", "who", "said", "says", "will",
        "would", "been", "between", "about", "also", "into", "after", "over", "not", "but", "than",
        "there", "what", "when", "where", "while", "during",
    ];
    text.split(|c: char| !c.is_alphanumeric())
        .map(|w| w.to_lowercase())
        .filter(|w| w.chars().count() > 2 && !STOP.contains(&w.as_str()))
        .collect()
}

/// Each summary sentence with its sources, when `wanted`: those it cites, or else the
/// sentence translations (`english`) that share a quarter or more of its content words,
/// the best three in article order.
pub(super) fn attribute(
    parts: Vec<(String, Option<Vec<usize>>)>,
    article: &Article,
    english: Option<&[String]>,
    wanted: bool,
) -> Vec<SummarySentence> {
    let english_words: Option<Vec<HashSet<String>>> =
        english.map(|en| en.iter().map(|s| content_words(s)).collect());
    parts
        .into_iter()
        .map(|(text, cited)| {
            let mut indices: Vec<usize> = Vec::new();
            if wanted {
                if let Some(c) = cited {
                    indices = c;
                } else if let Some(ew) = &english_words {
                    let words = content_words(&text);
                    let mut scored: Vec<(f32, usize)> = ew
                        .iter()
                        .enumerate()
                        .map(|(j, w)| {
                            let overlap = words.intersection(w).count() as f32;
                            (overlap / words.len().max(1) as f32, j)
                        })
                        .filter(|(s, _)| *s >= 0.25)
                        .collect();
                    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
                    indices = scored.into_iter().take(3).map(|(_, j)| j).collect();
                    indices.sort_unstable();
                }
            }
            SummarySentence {
                text,
                sources: indices
                    .into_iter()
                    .filter_map(|j| {
                        article.sentences.get(j).map(|(span, _)| SourceRef {
                            index: j,
                            span: span.clone(),
                        })
                    })
                    .collect(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn citations_are_parsed_and_removed() {
        let parts = strip_citations("Putin met Witkoff [1][2]. Talks were fruitful [3, 9].", 5);
        assert_eq!(
            parts,
            vec![
                ("Putin met Witkoff.".to_string(), vec![0, 1]),
                ("Talks were fruitful.".to_string(), vec![2]),
            ]
        );
    }

    #[test]
    fn length_is_enforced_at_sentence_ends() {
        let parts = |s: &str| -> Vec<(String, ())> {
            sentences_of(s).into_iter().map(|t| (t, ())).collect()
        };
        let s = "One two. Three four. Five six.";
        let mut p = parts(s);
        assert!(cut_to_length(&mut p, SummaryLength::Sentences(2)));
        assert_eq!(p.len(), 2);
        let mut p = parts(s);
        assert!(!cut_to_length(&mut p, SummaryLength::Sentences(5)));
        let mut p = parts(s);
        assert!(cut_to_length(&mut p, SummaryLength::Words(4)));
        assert_eq!(
            p.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>(),
            ["One two.", "Three four."]
        );
    }

    #[test]
    fn repeated_sentences_are_dropped() {
        let mut p: Vec<(String, ())> = sentences_of(
            "The meeting took place in Saint Petersburg and lasted four hours. Dmitriev called the talks productive. The meeting took place in Saint Petersburg, and lasted four hours.",
        )
        .into_iter()
        .map(|t| (t, ()))
        .collect();
        assert_eq!(drop_repeats(&mut p), 1);
        assert_eq!(p.len(), 2);
    }
}
