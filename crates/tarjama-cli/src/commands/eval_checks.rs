//! `tarjama eval`'s checks beside the metrics: whether the hypotheses write a glossary's
//! terms as it says (`--glossary` with `--src`), and whether their names and numbers are
//! found in the reference (`--facts`, for summaries checked against the source's
//! translation).

use serde::Serialize;
use tarjama_eval::facts::{self, Backing};
use tarjama_pipeline::Glossary;

/// Glossary adherence of one system.
#[derive(Debug, Serialize)]
pub struct GlossaryCheck {
    /// Occurrences of glossary terms in the source lines (a term counted once per line).
    pub terms: usize,
    /// Those whose English the hypothesis line has.
    pub present: usize,
    /// `present / terms` in percent (100 when there are no terms).
    pub percent: f64,
    /// The first misses: (line, English expected), lines counted from 1.
    pub missing: Vec<(usize, String)>,
}

/// The misses kept in the report.
const MISSES_SHOWN: usize = 20;

/// How many of the glossary's terms found in each source line the hypothesis line writes
/// as the glossary says.
pub fn glossary(glossary: &Glossary, sources: &[&str], hyps: &[&str]) -> GlossaryCheck {
    let (mut terms, mut present, mut missing) = (0, 0, Vec::new());
    for (i, (src, hyp)) in sources.iter().zip(hyps).enumerate() {
        let here = glossary.entries_in(src).len();
        let absent = glossary.missing(src, hyp);
        terms += here;
        present += here - absent.len().min(here);
        missing.extend(absent.into_iter().map(|en| (i + 1, en)));
    }
    missing.truncate(MISSES_SHOWN);
    GlossaryCheck {
        terms,
        present,
        percent: percent(present, terms),
        missing,
    }
}

/// The names and numbers of one system's lines found in the reference's.
#[derive(Debug, Serialize)]
pub struct FactsCheck {
    /// Names and numbers in the hypotheses.
    pub facts: usize,
    /// Those the reference line has too.
    pub found: usize,
    /// `found / facts` in percent (100 when there are none).
    pub percent: f64,
    /// The first ones not found: (line, name or number).
    pub not_found: Vec<(usize, String)>,
}

/// How many of each hypothesis line's names and numbers ([`facts::facts`]) its reference
/// lines back.
pub fn facts(hyps: &[&str], refs_by_segment: &[Vec<&str>]) -> FactsCheck {
    let (mut all, mut found, mut not_found) = (0, 0, Vec::new());
    for (i, (hyp, refs)) in hyps.iter().zip(refs_by_segment).enumerate() {
        let backing = Backing::new(refs.iter().copied());
        for fact in facts::facts(hyp) {
            all += 1;
            if backing.backs(&fact) {
                found += 1;
            } else if not_found.len() < MISSES_SHOWN {
                not_found.push((i + 1, fact.text));
            }
        }
    }
    FactsCheck {
        facts: all,
        found,
        percent: percent(found, all),
        not_found,
    }
}

fn percent(part: usize, all: usize) -> f64 {
    if all == 0 {
        100.0
    } else {
        100.0 * part as f64 / all as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glossary_terms_are_counted_per_line() {
        let g = Glossary::parse("بوتين\tPutin\nالكرملين\tKremlin\n").unwrap();
        let sources = ["قال بوتين في الكرملين", "وصل بوتين", "لا شيء"];
        let hyps = ["Putin said in the Kremlin", "Poutine arrived", "nothing"];
        let check = glossary(&g, &sources, &hyps);
        assert_eq!((check.terms, check.present), (3, 2));
        assert_eq!(check.missing, [(2, "Putin".to_string())]);
        assert!((check.percent - 200.0 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn facts_are_checked_against_their_own_line() {
        let refs = [vec!["Putin met Witkoff."], vec!["Sales rose 5%."]];
        let check = facts(&["Putin met Witkov.", "Putin said sales rose 5%."], &refs);
        assert_eq!((check.facts, check.found), (4, 2));
        assert_eq!(
            check.not_found,
            [(1, "Witkov".to_string()), (2, "Putin".to_string())]
        );
    }
}
