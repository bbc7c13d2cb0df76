#!/usr/bin/env python3
"""Generate tarjama-eval's parity fixtures with the reference metric implementations.

Writes, under crates/tarjama-eval/tests/fixtures/metrics/:
  ref.txt, hyp_*.txt   synthetic English segments (one per line) and noisy variants,
                       generated deterministically here (no third-party text);
  expected.json        sacreBLEU corpus and sentence BLEU (tokenizers 13a/none/intl/char,
                       every smoothing), chrF and chrF++ (with signatures), rouge-score
                       ROUGE-1/2/L/Lsum P/R/F per segment and mean, and NLTK Porter stems.

Usage (from the repository root):
    pip install -r scripts/requirements-metrics.txt
    python3 scripts/gen_metric_fixtures.py
Then `cargo test -p tarjama-eval --test parity` checks the Rust port against it.
"""

import json
import random
from pathlib import Path

import nltk
import rouge_score
import sacrebleu
from nltk.stem import porter
from rouge_score import rouge_scorer
from sacrebleu.metrics import BLEU, CHRF

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "crates" / "tarjama-eval" / "tests" / "fixtures" / "metrics"
SEED = 20261129

SUBJECTS = [
    "The minister", "A spokesman for the ministry", "Local residents", "The central bank",
    "Analysts", "The committee", "Several witnesses", "The government", "Protesters",
    "The company's engineers", "Farmers in the north", "The national football team",
    "Relief agencies", "The prime minister's office", "Hospital officials", "Investors",
]
VERBS = [
    "announced", "denied", "is considering", "will publish", "has rejected", "welcomed",
    "criticized", "were discussing", "reported", "confirmed", "is investigating",
    "have been negotiating", "postponed", "approved", "questioned", "celebrated",
]
OBJECTS = [
    "the new budget", "a plan to rebuild the damaged bridges", "the proposed agreement",
    "reports of renewed fighting", "the results of the elections", "higher fuel prices",
    "the generalization of the rules", "the nationalization of the railways",
    "an investigation into the accident", "the relational database of voters",
    "rising unemployment among graduates", "the hopefulness of the negotiators",
    "talks with neighbouring countries", "the running costs of hospitals",
    "emergency flights to the capital", "the happiest day of the season",
]
TAILS = [
    "on Monday", "after months of delays", "in a statement", "despite strong opposition",
    "according to officials", "late last night", "for the third time this year",
    "in the city of Mosul", "during a televised address", "before the summit in Cairo",
    "", "", "",
]
NUMBERS = ["1,000", "3.5", "2,450,000", "0.75", "1990-2000", "12:30", "50%", "$1,200.50", "7th"]
DISJOINT = [
    "zebra", "quantum", "violin", "glacier", "pumpkin", "saxophone", "nebula", "walrus",
    "origami", "tundra", "kazoo", "marzipan", "yodel", "quokka", "fjord", "xylophone",
]
# Hand-written segments that stress the tokenizers and whitespace handling.
SPECIAL = [
    "",
    "!!! ??? ... ,,, ;;; --- ((( ))) \"\" ''",
    "Café déjà vu: naïve façade, Ångström, São Paulo, Zürich.",
    "北京欢迎你。东京、大阪和京都！",
    "قال الوزير إن المفاوضات ستستمر غدا في القاهرة.",
    "We loved it 😀🎉 — really, truly 👍🏽!",
    "The figure rose from 1,234,567.89 to 2.5 million (a 12.5% increase) in 2023-2024.",
    "See https://example.com/path?a=1&b=2 or mail info@example.org for details.",
    "BREAKING NEWS: THE PARLIAMENT HAS DISSOLVED ITSELF AFTER A NO-CONFIDENCE VOTE.",
    "Tabs\tand\u00a0non-breaking\u3000ideographic\u2009thin spaces, a\u001cseparator.",
    "Entities &amp; escapes: &lt;tag&gt; &quot;quoted&quot; <skipped> text.",
    "Trailing whitespace is stripped before tokenizing.   \t",
    "«Guillemets» „low quotes“ ‘curly’ — dashes – and … ellipsis; ¿Qué? ¡Sí!",
    "x",
    "A dying man was lying near the sky-blue tying posts, his innings over.",
]


def sentence(rng: random.Random) -> str:
    parts = [rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(OBJECTS)]
    if rng.random() < 0.4:
        parts.append(f"worth {rng.choice(NUMBERS)}")
    tail = rng.choice(TAILS)
    if tail:
        parts.append(tail)
    text = " ".join(parts)
    return text + rng.choice([".", ".", ".", "!", "?", ""])


def make_refs(rng: random.Random) -> list:
    refs = [sentence(rng) for _ in range(60)]
    # One very long line: several sentences run together.
    refs.append(" ".join(sentence(rng) for _ in range(25)))
    refs.extend(SPECIAL)
    return refs


def perturb(rng: random.Random, text: str, p: float) -> str:
    words = text.split(" ")
    out = []
    for w in words:
        r = rng.random()
        if r < p / 3:
            continue  # drop
        if r < 2 * p / 3:
            out.append(rng.choice(DISJOINT))  # substitute
            continue
        if r < p and out:
            out.insert(len(out) - 1, w)  # swap with the previous word
            continue
        out.append(w)
    if rng.random() < p / 2:
        out = [w.upper() if rng.random() < 0.5 else w for w in out]
    if rng.random() < p / 2:
        out = [w.rstrip(".,!?") for w in out]
    return " ".join(out)


def make_systems(rng: random.Random, refs: list) -> dict:
    systems = {
        "hyp_identical": list(refs),
        "hyp_light": [perturb(rng, r, 0.15) for r in refs],
        # A second light system, close to the first: a difference the bootstrap should
        # not call significant.
        "hyp_light_b": [perturb(rng, r, 0.17) for r in refs],
        "hyp_heavy": [perturb(rng, r, 0.5) for r in refs],
        "hyp_disjoint": [
            " ".join(rng.choice(DISJOINT) for _ in range(rng.randint(1, 12))) for _ in refs
        ],
    }
    # Edge cases line by line: empty hypothesis, hypothesis for an empty reference, a
    # single token, whitespace only, and the reference with a different case.
    edge = []
    for i, r in enumerate(refs):
        kind = i % 6
        if kind == 0:
            edge.append("")
        elif kind == 1:
            edge.append(r.lower())
        elif kind == 2:
            edge.append(r.split(" ")[0] if r else "something for nothing")
        elif kind == 3:
            edge.append("   \t ")
        elif kind == 4:
            edge.append(perturb(rng, r, 0.3) + " " + perturb(rng, r, 0.3))
        else:
            edge.append(r)
    systems["hyp_edge"] = edge
    return systems


def write_lines(path: Path, lines: list) -> None:
    for line in lines:
        assert "\n" not in line and "\r" not in line, line
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8", newline="\n")


def read_lines(path: Path) -> list:
    # Exactly how tarjama reads a file: split on "\n" only; the metrics strip what they strip.
    with open(path, encoding="utf-8", newline="\n") as f:
        return [line[:-1] if line.endswith("\n") else line for line in f]


BLEU_TOKENIZERS = ["13a", "none", "intl", "char"]
SMOOTHINGS = [("exp", None), ("floor", None), ("add-k", None), ("none", None), ("floor", 0.2)]
CHRF_CONFIGS = [
    dict(word_order=0),
    dict(word_order=2),
    dict(word_order=0, whitespace=True),
    dict(word_order=2, eps_smoothing=True),
    dict(word_order=0, lowercase=True),
]
ROUGE_TYPES = ["rouge1", "rouge2", "rougeL", "rougeLsum"]


def bleu_entry(hyps, refs, tokenize, smooth, value, lowercase=False):
    metric = BLEU(tokenize=tokenize, smooth_method=smooth, smooth_value=value, lowercase=lowercase)
    s = metric.corpus_score(hyps, [refs])
    sent = BLEU(tokenize=tokenize, smooth_method=smooth, smooth_value=value,
                lowercase=lowercase, effective_order=True)
    sentence_scores = [sent.sentence_score(h, [r]).score for h, r in zip(hyps, refs)]
    return {
        "tokenize": tokenize,
        "smooth": smooth,
        "smooth_value": value,
        "lowercase": lowercase,
        "score": s.score,
        "counts": [int(c) for c in s.counts] if smooth != "add-k" else None,
        "totals": [int(t) for t in s.totals] if smooth != "add-k" else None,
        "precisions": s.precisions,
        "bp": s.bp,
        "sys_len": s.sys_len,
        "ref_len": s.ref_len,
        "signature": str(metric.get_signature()),
        "formatted": s.format(width=2, signature=str(metric.get_signature())),
        "sentence_signature": str(sent.get_signature()),
        "sentence": sentence_scores,
    }


def chrf_entry(hyps, refs, cfg):
    metric = CHRF(**cfg)
    s = metric.corpus_score(hyps, [refs])
    return {
        "word_order": cfg.get("word_order", 0),
        "whitespace": cfg.get("whitespace", False),
        "eps_smoothing": cfg.get("eps_smoothing", False),
        "lowercase": cfg.get("lowercase", False),
        "name": s.name,
        "score": s.score,
        "signature": str(metric.get_signature()),
        "sentence": [metric.sentence_score(h, [r]).score for h, r in zip(hyps, refs)],
    }


def rouge_entry(targets, predictions, use_stemmer):
    scorer = rouge_scorer.RougeScorer(ROUGE_TYPES, use_stemmer=use_stemmer)
    per_type = {t: [] for t in ROUGE_TYPES}
    for t, p in zip(targets, predictions):
        scores = scorer.score(t, p)
        for k in ROUGE_TYPES:
            per_type[k].append([scores[k].precision, scores[k].recall, scores[k].fmeasure])
    out = {}
    for k, rows in per_type.items():
        n = len(rows)
        mean = [sum(r[i] for r in rows) / n for i in range(3)]
        out[k] = {"segments": rows, "mean": mean}
    return out


def documents(lines: list) -> list:
    """Groups of three consecutive segments joined by newlines, for ROUGE-Lsum."""
    return ["\n".join(lines[i:i + 3]) for i in range(0, len(lines), 3)]


def stemmer_cases(rng: random.Random, texts: list) -> list:
    from rouge_score import tokenize as rtok
    words = set()
    for t in texts:
        words.update(rtok.tokenize(t, None))
    words.update([
        "caresses", "ponies", "ties", "flies", "dies", "spied", "died", "agreed", "feed",
        "bled", "sing", "conflated", "troubled", "sized", "hopping", "tanned", "falling",
        "hissing", "fizzed", "failing", "filing", "happy", "sky", "enjoy", "spy", "relational",
        "conditional", "rational", "valenci", "hesitanci", "digitizer", "conformabli",
        "radicalli", "differentli", "vileli", "analogousli", "vietnamization", "predication",
        "operator", "feudalism", "decisiveness", "hopefulness", "callousness", "formaliti",
        "sensitiviti", "sensibiliti", "triplicate", "formative", "formalize", "electriciti",
        "electrical", "hopeful", "goodness", "revival", "allowance", "inference", "airliner",
        "gyroscopic", "adjustable", "defensible", "irritant", "replacement", "adjustment",
        "dependent", "adoption", "homologou", "communism", "activate", "angulariti",
        "homologous", "effective", "bowdlerize", "probate", "rate", "cease", "controll",
        "roll", "geology", "archaeology", "theology", "skies", "dying", "lying", "tying",
        "news", "innings", "outings", "cannings", "howe", "proceed", "exceed", "succeed",
        "yyyy", "syzygy", "toying", "yelling", "eyed", "ayes", "fully", "carefully",
        "generalli", "electricalli", "ed", "ing", "eeds", "ieds", "bies", "1990s", "4x4s",
    ])
    alphabet = "aeiouybcdfglmnrstvz"
    for _ in range(1500):
        n = rng.randint(4, 12)
        w = "".join(rng.choice(alphabet) for _ in range(n))
        w += rng.choice(["", "s", "es", "ies", "ed", "ied", "ing", "ly", "ness", "ation",
                         "ational", "alli", "logi", "ful", "ement", "ize", "ll", "e"])
        words.add(w)
    stemmer = porter.PorterStemmer()
    return [[w, stemmer.stem(w)] for w in sorted(words)]


def bootstrap_cases(refs: list, systems: dict) -> dict:
    """sacreBLEU's paired bootstrap (`--paired-bs`), baseline hyp_light.

    `replay` uses 200 resamples and records numpy's resample indices, so the Rust port can
    replay them and must reproduce mean, interval and p-value; `default` is sacreBLEU's
    1000 resamples from seed 12345, which the port (with its own generator) can only match
    in distribution.
    """
    import os

    import numpy as np
    from sacrebleu.significance import Result, _bootstrap_resample, _paired_bs_test, estimate_ci

    os.environ["SACREBLEU_SEED"] = "12345"
    baseline = systems["hyp_light"]
    others = ["hyp_light_b", "hyp_heavy", "hyp_edge", "hyp_identical"]
    out = {"baseline": "hyp_light.txt", "systems": [f"{o}.txt" for o in others]}
    for label, n_samples in [("replay", 200), ("default", 1000)]:
        idxs = np.random.default_rng(12345).choice(len(refs), size=(n_samples, len(refs)), replace=True)
        case = {"n_samples": n_samples, "seed": 12345, "metrics": []}
        if label == "replay":
            case["indices"] = idxs.tolist()
        for metric_name, metric in [("BLEU", BLEU()), ("chrF2", CHRF()), ("chrF2++", CHRF(word_order=2))]:
            bl_stats = metric._extract_corpus_statistics(baseline, [refs])
            bl_score = metric._aggregate_and_compute(bl_stats)
            _, bl_scores = _bootstrap_resample(bl_stats, metric, n_samples)
            bl_mean, bl_ci = estimate_ci(np.array([x.score for x in bl_scores]))
            entry = {
                "name": metric_name,
                "baseline": {"score": bl_score.score, "mean": float(bl_mean), "ci": float(bl_ci)},
                "systems": [],
            }
            for other in others:
                _, res = _paired_bs_test(
                    {metric_name: (bl_stats, Result(bl_score.score))}, other, systems[other],
                    [refs], {metric_name: metric}, n_samples=n_samples, seed=12345)
                r = res[metric_name]
                entry["systems"].append({
                    "score": float(r.score), "mean": float(r.mean), "ci": float(r.ci),
                    "p_value": float(r.p_value),
                })
            case["metrics"].append(entry)
        out[label] = case
    return out


STRESS_POOL = (
    list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    + list("0123456789.,.,-") * 2
    + list("!\"#$%&'()*+/:;<=>?@[\\]^_`{|}~")
    + list("«»—–…¿¡、。٪،؛؟“”‘’„•·§¶†")
    + list("€£¥©°±×÷∞≈√™₹")
    + list("éßİΣσςñçøåÆŒ中文字日本語한국عربيةשלום")
    + ["😀", "👍🏽", "🎉", "\u200d", "\u0301"]
    + [" "] * 12
    + ["\t", "\u00a0", "\u2028", "\u001c", "\u001f", "\u0085", "\u3000", "\u2009", "\u200b", "\r"]
    + ["&amp;", "&lt;", "&gt;", "&quot;", "<skipped>", "-\n", "\n", "http://x.org/a?b=1&c=2", "1,000.5", "3-4"]
)


def stress_cases(rng: random.Random) -> dict:
    """Random strings over a pool of troublesome characters: tokenizer outputs and
    sentence-level scores of random pairs, straight from the reference code."""
    from rouge_score import tokenize as rtok
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a
    from sacrebleu.tokenizers.tokenizer_char import TokenizerChar
    from sacrebleu.tokenizers.tokenizer_intl import TokenizerV14International

    t13a, tintl, tchar = Tokenizer13a(), TokenizerV14International(), TokenizerChar()
    stemmer = porter.PorterStemmer()
    strings = ["".join(rng.choice(STRESS_POOL) for _ in range(rng.randint(0, 60))) for _ in range(300)]
    tokens = [
        {"text": t, "13a": t13a(t), "intl": tintl(t), "char": tchar(t),
         "rouge": rtok.tokenize(t, stemmer)}
        for t in strings
    ]
    pairs = []
    for i in range(len(strings) - 1):
        hyp = strings[i]
        # Share a random slice of the reference so that there are matches to count.
        ref = strings[i + 1]
        cut = rng.randint(0, len(hyp))
        ref = hyp[:cut] + ref if rng.random() < 0.5 else ref + hyp[cut:]
        pairs.append({
            "hyp": hyp,
            "ref": ref,
            "bleu_13a": sacrebleu.sentence_bleu(hyp, [ref]).score,
            "bleu_intl": sacrebleu.sentence_bleu(hyp, [ref], tokenize="intl").score,
            "chrf": sacrebleu.sentence_chrf(hyp, [ref]).score,
            "chrf_pp": sacrebleu.sentence_chrf(hyp, [ref], word_order=2).score,
        })
    return {"tokens": tokens, "pairs": pairs}


def multi_ref_entry(hyps, ref_streams):
    """Two reference streams: sacreBLEU's multi-reference BLEU/chrF and rouge-score's
    score_multi (best F-measure target per type)."""
    entry = {"bleu": {}, "chrf": {}}
    for tok in ["13a", "intl"]:
        metric = BLEU(tokenize=tok)
        s = metric.corpus_score(hyps, ref_streams)
        entry["bleu"][tok] = {"score": s.score, "ref_len": s.ref_len, "signature": str(metric.get_signature())}
    for word_order in [0, 2]:
        metric = CHRF(word_order=word_order)
        s = metric.corpus_score(hyps, ref_streams)
        entry["chrf"][s.name] = {"score": s.score, "signature": str(metric.get_signature())}
    scorer = rouge_scorer.RougeScorer(ROUGE_TYPES, use_stemmer=True)
    rows = {t: [] for t in ROUGE_TYPES}
    for i, h in enumerate(hyps):
        scores = scorer.score_multi([stream[i] for stream in ref_streams], h)
        for t in ROUGE_TYPES:
            rows[t].append([scores[t].precision, scores[t].recall, scores[t].fmeasure])
    entry["rouge"] = {
        t: {"segments": r, "mean": [sum(x[i] for x in r) / len(r) for i in range(3)]}
        for t, r in rows.items()
    }
    return entry


def main() -> None:
    rng = random.Random(SEED)
    OUT.mkdir(parents=True, exist_ok=True)
    refs = make_refs(rng)
    systems = make_systems(rng, refs)
    write_lines(OUT / "ref.txt", refs)
    # A second reference stream for multi-reference scoring: another noisy rendering.
    write_lines(OUT / "ref2.txt", [perturb(random.Random(SEED + 2 + i), r, 0.2) for i, r in enumerate(refs)])
    for name, hyps in systems.items():
        write_lines(OUT / f"{name}.txt", hyps)

    refs = read_lines(OUT / "ref.txt")
    refs2 = read_lines(OUT / "ref2.txt")
    expected = {
        "generator": "scripts/gen_metric_fixtures.py",
        "ref2": "ref2.txt",
        "sacrebleu_version": sacrebleu.__version__,
        "rouge_score_version": "0.1.2",
        "nltk_version": nltk.__version__,
        "ref": "ref.txt",
        "systems": {},
    }
    for name in systems:
        hyps = read_lines(OUT / f"{name}.txt")
        entry = {"file": f"{name}.txt", "bleu": [], "chrf": []}
        for tok in BLEU_TOKENIZERS:
            for smooth, value in SMOOTHINGS:
                entry["bleu"].append(bleu_entry(hyps, refs, tok, smooth, value))
        entry["bleu"].append(bleu_entry(hyps, refs, "13a", "exp", None, lowercase=True))
        for cfg in CHRF_CONFIGS:
            entry["chrf"].append(chrf_entry(hyps, refs, cfg))
        entry["rouge"] = rouge_entry(refs, hyps, use_stemmer=True)
        entry["rouge_nostem"] = rouge_entry(refs, hyps, use_stemmer=False)
        entry["rouge_documents"] = rouge_entry(documents(refs), documents(hyps), use_stemmer=True)
        entry["multi_ref"] = multi_ref_entry(hyps, [refs, refs2])
        expected["systems"][name] = entry
    expected["bootstrap"] = bootstrap_cases(
        refs, {name: read_lines(OUT / f"{name}.txt") for name in systems})
    expected["stress"] = stress_cases(random.Random(SEED + 1))
    all_text = refs + [h for hyps in systems.values() for h in hyps]
    expected["stemmer"] = stemmer_cases(rng, all_text)
    (OUT / "expected.json").write_text(
        json.dumps(expected, ensure_ascii=False, indent=0, sort_keys=False) + "\n",
        encoding="utf-8",
    )
    print(f"wrote {OUT}/expected.json and {len(systems) + 1} text files")


if __name__ == "__main__":
    main()
