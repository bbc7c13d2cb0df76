//! The Porter stemmer as NLTK implements it in its default `NLTK_EXTENSIONS` mode, which is
//! what rouge-score's `DefaultTokenizer(use_stemmer=True)` constructs
//! (`nltk.stem.porter.PorterStemmer()` with no mode argument).
//!
//! A port of `nltk/stem/porter.py` rule for rule, including NLTK's departures from the 1980
//! paper: the irregular-forms pool, `ies`/`ied` on four-letter words, `y -> i` only after a
//! consonant that is not the whole stem, `alli` tried first in step 2, `fulli`, `logi`, and
//! the two-letter `*o` condition. Words are handled as Unicode scalar values, as Python
//! handles `str`, so any input is safe; rouge-score only ever passes `[a-z0-9]+`.

/// NLTK's table of irregular forms (form -> stem).
const POOL: &[(&str, &str)] = &[
    ("sky", "sky"),
    ("skies", "sky"),
    ("dying", "die"),
    ("lying", "lie"),
    ("tying", "tie"),
    ("news", "news"),
    ("innings", "inning"),
    ("inning", "inning"),
    ("outings", "outing"),
    ("outing", "outing"),
    ("cannings", "canning"),
    ("canning", "canning"),
    ("howe", "howe"),
    ("proceed", "proceed"),
    ("exceed", "exceed"),
    ("succeed", "succeed"),
];

type Word = Vec<char>;

fn is_vowel(c: char) -> bool {
    matches!(c, 'a' | 'e' | 'i' | 'o' | 'u')
}

/// Consonant flags for every position: `y` is a consonant at the start of a word or after
/// a vowel, a vowel after a consonant (NLTK `_consonant_flags`).
fn consonant_flags(word: &[char]) -> Vec<bool> {
    let mut flags: Vec<bool> = Vec::with_capacity(word.len());
    for (i, &c) in word.iter().enumerate() {
        let flag = if is_vowel(c) {
            false
        } else if c == 'y' {
            i == 0 || !flags[i - 1]
        } else {
            true
        };
        flags.push(flag);
    }
    flags
}

fn is_consonant(word: &[char], i: usize) -> bool {
    consonant_flags(&word[..=i])[i]
}

/// The measure m of `[C](VC){m}[V]`: the number of vowel-to-consonant transitions.
fn measure(stem: &[char]) -> usize {
    let flags = consonant_flags(stem);
    flags.windows(2).filter(|w| !w[0] && w[1]).count()
}

fn has_positive_measure(stem: &[char]) -> bool {
    measure(stem) > 0
}

fn contains_vowel(stem: &[char]) -> bool {
    consonant_flags(stem).iter().any(|&c| !c)
}

/// Condition *d: ends with a double consonant.
fn ends_double_consonant(word: &[char]) -> bool {
    let n = word.len();
    n >= 2 && word[n - 1] == word[n - 2] && is_consonant(word, n - 1)
}

/// Condition *o: ends consonant-vowel-consonant, the last not w, x or y; NLTK also accepts
/// a two-letter vowel-consonant word.
fn ends_cvc(word: &[char]) -> bool {
    let n = word.len();
    (n >= 3
        && is_consonant(word, n - 3)
        && !is_consonant(word, n - 2)
        && is_consonant(word, n - 1)
        && !matches!(word[n - 1], 'w' | 'x' | 'y'))
        || (n == 2 && !is_consonant(word, 0) && is_consonant(word, 1))
}

fn ends_with(word: &[char], suffix: &str) -> bool {
    let n = suffix.chars().count();
    word.len() >= n && word[word.len() - n..].iter().copied().eq(suffix.chars())
}

fn strip(word: &[char], suffix: &str) -> Word {
    word[..word.len() - suffix.chars().count()].to_vec()
}

fn join(stem: &[char], tail: &str) -> Word {
    let mut out = stem.to_vec();
    out.extend(tail.chars());
    out
}

/// One rule of a list: suffix, replacement, condition on the stem.
type Rule<'a> = (&'a str, &'a str, &'a dyn Fn(&[char]) -> bool);

/// NLTK `_apply_rule_list`: the first rule whose suffix matches decides; if its condition
/// fails, the word is returned unchanged and later rules are not tried.
fn apply_rules(word: &[char], rules: &[Rule]) -> Word {
    for &(suffix, replacement, condition) in rules {
        if ends_with(word, suffix) {
            let stem = strip(word, suffix);
            return if condition(&stem) {
                join(&stem, replacement)
            } else {
                word.to_vec()
            };
        }
    }
    word.to_vec()
}

fn always(_: &[char]) -> bool {
    true
}

fn step1a(word: &[char]) -> Word {
    if ends_with(word, "ies") && word.len() == 4 {
        return join(&strip(word, "ies"), "ie");
    }
    apply_rules(
        word,
        &[
            ("sses", "ss", &always),
            ("ies", "i", &always),
            ("ss", "ss", &always),
            ("s", "", &always),
        ],
    )
}

fn step1b(word: &[char]) -> Word {
    if ends_with(word, "ied") {
        let tail = if word.len() == 4 { "ie" } else { "i" };
        return join(&strip(word, "ied"), tail);
    }
    if ends_with(word, "eed") {
        let stem = strip(word, "eed");
        return if measure(&stem) > 0 {
            join(&stem, "ee")
        } else {
            word.to_vec()
        };
    }
    let mut intermediate = None;
    for suffix in ["ed", "ing"] {
        if ends_with(word, suffix) {
            let stem = strip(word, suffix);
            if contains_vowel(&stem) {
                intermediate = Some(stem);
                break;
            }
        }
    }
    let Some(stem) = intermediate else {
        return word.to_vec();
    };
    for (suffix, replacement) in [("at", "ate"), ("bl", "ble"), ("iz", "ize")] {
        if ends_with(&stem, suffix) {
            return join(&strip(&stem, suffix), replacement);
        }
    }
    // (*d and not (*L or *S or *Z)) -> single letter. A double consonant ends the rule list
    // whether or not its condition holds (NLTK's "*d" pseudo-suffix).
    if ends_double_consonant(&stem) {
        let last = stem[stem.len() - 1];
        return if matches!(last, 'l' | 's' | 'z') {
            stem
        } else {
            stem[..stem.len() - 1].to_vec()
        };
    }
    // (m=1 and *o) -> E
    if measure(&stem) == 1 && ends_cvc(&stem) {
        join(&stem, "e")
    } else {
        stem
    }
}

fn step1c(word: &[char]) -> Word {
    let condition = |stem: &[char]| stem.len() > 1 && is_consonant(stem, stem.len() - 1);
    apply_rules(word, &[("y", "i", &condition)])
}

fn step2(word: &[char]) -> Word {
    // NLTK applies `alli -> al` first and, if it fires, runs step 2 again on the result.
    if ends_with(word, "alli") && has_positive_measure(&strip(word, "alli")) {
        return step2(&join(&strip(word, "alli"), "al"));
    }
    let pm: &dyn Fn(&[char]) -> bool = &has_positive_measure;
    // `logi -> log` keeps the `l` with the stem when measuring, so `geo-logi` works like
    // `archaeo-logi`: the condition looks at the word minus `ogi`.
    let logi = |_: &[char]| word.len() >= 3 && has_positive_measure(&word[..word.len() - 3]);
    apply_rules(
        word,
        &[
            ("ational", "ate", pm),
            ("tional", "tion", pm),
            ("enci", "ence", pm),
            ("anci", "ance", pm),
            ("izer", "ize", pm),
            ("bli", "ble", pm),
            ("alli", "al", pm),
            ("entli", "ent", pm),
            ("eli", "e", pm),
            ("ousli", "ous", pm),
            ("ization", "ize", pm),
            ("ation", "ate", pm),
            ("ator", "ate", pm),
            ("alism", "al", pm),
            ("iveness", "ive", pm),
            ("fulness", "ful", pm),
            ("ousness", "ous", pm),
            ("aliti", "al", pm),
            ("iviti", "ive", pm),
            ("biliti", "ble", pm),
            ("fulli", "ful", pm),
            ("logi", "log", &logi),
        ],
    )
}

fn step3(word: &[char]) -> Word {
    let pm: &dyn Fn(&[char]) -> bool = &has_positive_measure;
    apply_rules(
        word,
        &[
            ("icate", "ic", pm),
            ("ative", "", pm),
            ("alize", "al", pm),
            ("iciti", "ic", pm),
            ("ical", "ic", pm),
            ("ful", "", pm),
            ("ness", "", pm),
        ],
    )
}

fn step4(word: &[char]) -> Word {
    let gt1: &dyn Fn(&[char]) -> bool = &|stem: &[char]| measure(stem) > 1;
    let ion = |stem: &[char]| measure(stem) > 1 && matches!(stem.last(), Some('s' | 't'));
    apply_rules(
        word,
        &[
            ("al", "", gt1),
            ("ance", "", gt1),
            ("ence", "", gt1),
            ("er", "", gt1),
            ("ic", "", gt1),
            ("able", "", gt1),
            ("ible", "", gt1),
            ("ant", "", gt1),
            ("ement", "", gt1),
            ("ment", "", gt1),
            ("ent", "", gt1),
            ("ion", "", &ion),
            ("ou", "", gt1),
            ("ism", "", gt1),
            ("ate", "", gt1),
            ("iti", "", gt1),
            ("ous", "", gt1),
            ("ive", "", gt1),
            ("ize", "", gt1),
        ],
    )
}

fn step5a(word: &[char]) -> Word {
    // Both rules share the suffix, so both conditions are tried (not `apply_rules`).
    if ends_with(word, "e") {
        let stem = strip(word, "e");
        let m = measure(&stem);
        if m > 1 || (m == 1 && !ends_cvc(&stem)) {
            return stem;
        }
    }
    word.to_vec()
}

fn step5b(word: &[char]) -> Word {
    let condition = |_: &[char]| measure(&word[..word.len() - 1]) > 1;
    apply_rules(word, &[("ll", "l", &condition)])
}

/// Stems one word as `nltk.stem.porter.PorterStemmer().stem(word)` does (lowercasing it
/// first).
pub fn stem(word: &str) -> String {
    let lowered = word.to_lowercase();
    if let Some(&(_, stem)) = POOL.iter().find(|(form, _)| *form == lowered) {
        return stem.to_string();
    }
    // NLTK measures this on the word as given, not the lowercased one.
    if word.chars().count() <= 2 {
        return lowered;
    }
    let mut w: Word = lowered.chars().collect();
    for step in [step1a, step1b, step1c, step2, step3, step4, step5a, step5b] {
        w = step(&w);
    }
    w.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::stem;

    #[test]
    fn examples_from_the_paper_and_nltk() {
        for (word, expected) in [
            ("caresses", "caress"),
            ("ponies", "poni"),
            ("ties", "tie"),
            ("cats", "cat"),
            ("feed", "feed"),
            ("agreed", "agre"),
            ("plastered", "plaster"),
            ("motoring", "motor"),
            ("hopping", "hop"),
            ("falling", "fall"),
            ("filing", "file"),
            ("happy", "happi"),
            ("enjoy", "enjoy"),
            ("relational", "relat"),
            ("generalization", "gener"),
            ("dying", "die"),
            ("controlling", "control"),
            ("geology", "geolog"),
            ("running", "run"),
        ] {
            assert_eq!(stem(word), expected, "stem({word})");
        }
    }
}
