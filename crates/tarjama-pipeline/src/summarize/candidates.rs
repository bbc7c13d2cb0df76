//! Candidate summaries: the final request asked several times at once, and the winner
//! chosen by consensus (what most candidates say) plus faithfulness (names and numbers
//! that something else backs: the article's sentence translations, the glossary's
//! English, another candidate).

use serde::Serialize;
use tarjama_chat::{ChatEngine, Result, SamplingParams};
use tarjama_eval::facts::{self, Backing};

use super::{messages, translate_article, SummaryOptions};
use crate::mbr::{self, ChrfUtility};
use crate::prompts::PromptSet;
use crate::translate::guards::arabic_share;
use crate::translate::Candidates;

/// How the summary was chosen among candidates.
///
/// - *Consensus*: the candidate's mean sentence chrF++ against the other candidates,
///   0 to 1 (what most candidates say).
/// - *Faithfulness*: the share of the candidate's names and numbers
///   ([`tarjama_eval::facts`]) that the sentence translations of the article, the
///   glossary's English or another candidate have; a name or number found nowhere else
///   is likely invented or garbled.
///
/// The winner has the highest sum of the two; ties go to the greedy candidate.
#[derive(Debug, Clone, Serialize)]
pub struct SummaryChoice {
    /// Candidates compared (those in Arabic or empty are dropped first).
    pub compared: usize,
    /// The winner's consensus, 0 to 1.
    pub consensus: f64,
    /// The winner's faithfulness, 0 to 1.
    pub faithfulness: f64,
    /// The winner's names and numbers found nowhere else.
    pub unsupported: Vec<String>,
}

/// With candidates, what backs a candidate's names and numbers: the sentence
/// translations (`english`, or made here when the strategy did not make them) and the
/// glossary's English for the article. `None` without candidates.
pub(super) fn evidence(
    model: &dyn ChatEngine,
    prompts: &PromptSet,
    text: &str,
    options: &SummaryOptions,
    english: Option<&[String]>,
    events: &mut Vec<String>,
) -> Result<Option<Backing>> {
    if options.candidates.n <= 1 {
        return Ok(None);
    }
    let made;
    let english = match english {
        Some(english) => english,
        None => {
            made = translate_article(model, prompts, text, options, events)?.sentences;
            &made
        }
    };
    let mut backing = Backing::new(english.iter().map(String::as_str));
    if let Some(glossary) = &options.glossary {
        for entry in glossary.entries_in(text) {
            backing.add(&entry.english);
        }
    }
    Ok(Some(backing))
}

/// Asks for `candidates.n` answers at once (the first with `params`, the others
/// sampled) and keeps the one with the best consensus plus faithfulness
/// ([`SummaryChoice`]), its names and numbers checked against `evidence`.
pub(super) fn ask_candidates(
    model: &dyn ChatEngine,
    prompts: &PromptSet,
    lead: Option<&str>,
    user: &str,
    params: &SamplingParams,
    candidates: &Candidates,
    evidence: &Backing,
) -> Result<(String, Option<SummaryChoice>)> {
    let answers = model
        .chat_many(&messages(prompts, lead, user), &candidates.params(params))
        .into_iter()
        .map(|a| a.map(|c| c.text))
        .collect::<Result<Vec<String>>>()?;
    let mut good: Vec<String> = answers
        .iter()
        .filter(|a| !a.trim().is_empty() && arabic_share(a) <= 0.2)
        .cloned()
        .collect();
    if good.len() < 2 {
        // Nothing to compare: the greedy answer goes on to the usual repairs.
        let answer = good.pop().unwrap_or_else(|| answers[0].clone());
        return Ok((answer, None));
    }
    let scored = score_candidates(&good, evidence);
    let best = (0..good.len()).fold(0, |best, i| {
        if scored[i].0 > scored[best].0 {
            i
        } else {
            best
        }
    });
    let (_, consensus, faithfulness, unsupported) = scored[best].clone();
    Ok((
        good.swap_remove(best),
        Some(SummaryChoice {
            compared: good.len() + 1,
            consensus,
            faithfulness,
            unsupported,
        }),
    ))
}

/// (score, consensus, faithfulness, unsupported facts) of each candidate.
fn score_candidates(
    candidates: &[String],
    evidence: &Backing,
) -> Vec<(f64, f64, f64, Vec<String>)> {
    // Citations ("[2][5]") are not part of what is compared.
    let plain: Vec<String> = candidates.iter().map(|c| without_citations(c)).collect();
    let consensus = mbr::consensus(&plain, &ChrfUtility::default());
    plain
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let others = Backing::new(
                plain
                    .iter()
                    .enumerate()
                    .filter(|&(j, _)| j != i)
                    .map(|(_, t)| t.as_str()),
            );
            let all = facts::facts(text);
            let mut unsupported: Vec<String> = all
                .iter()
                .filter(|f| !evidence.backs(f) && !others.backs(f))
                .map(|f| f.text.clone())
                .collect();
            let faithfulness = if all.is_empty() {
                1.0
            } else {
                1.0 - unsupported.len() as f64 / all.len() as f64
            };
            unsupported.dedup();
            let consensus = consensus[i] / 100.0;
            (
                consensus + faithfulness,
                consensus,
                faithfulness,
                unsupported,
            )
        })
        .collect()
}

/// `text` without bracketed citation numbers.
fn without_citations(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        let close = rest[open..].find(']').map(|c| open + c);
        match close {
            Some(close)
                if rest[open + 1..close]
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == ',' || c == ' ') =>
            {
                out.push_str(&rest[..open]);
                rest = &rest[close + 1..];
            }
            _ => {
                out.push_str(&rest[..=open]);
                rest = &rest[open + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn citations_are_not_compared() {
        assert_eq!(
            without_citations("Putin met Witkoff [1][2]. Talks [3, 9] went on [a]."),
            "Putin met Witkoff . Talks  went on [a]."
        );
        assert_eq!(without_citations("No brackets."), "No brackets.");
    }

    #[test]
    fn the_candidate_with_unbacked_facts_scores_lower() {
        let evidence = Backing::new(["Putin met Witkoff in Moscow on 3 May."]);
        let candidates = [
            "Putin met Witkoff in Moscow.".to_string(),
            "Putin met Witkoff in Moscow.".to_string(),
            "Putin met Witkoff in Kazan.".to_string(),
        ];
        let scored = score_candidates(&candidates, &evidence);
        assert_eq!(scored[0].2, 1.0);
        assert!(scored[2].2 < 1.0);
        assert_eq!(scored[2].3, ["Kazan"]);
        assert!(scored[0].0 > scored[2].0);
    }
}
