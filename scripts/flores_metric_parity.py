#!/usr/bin/env python3
"""Score FLORES-200 devtest against a perturbed copy of itself with sacreBLEU and
rouge-score, and record only the resulting numbers (never the text: FLORES is CC BY-SA).

The perturbation is deterministic and mirrored in crates/tarjama-eval/tests/flores.rs,
which recomputes the same numbers with tarjama-eval and compares.

Usage (from the repository root):
    pip install -r scripts/requirements-metrics.txt
    python3 scripts/flores_metric_parity.py            # FLORES from tests/data/flores200
    TARJAMA_FLORES=/path/to/flores200 python3 scripts/flores_metric_parity.py
Writes crates/tarjama-eval/tests/fixtures/flores_parity.json.
"""

import json
import os
import sys
from pathlib import Path

import sacrebleu
from rouge_score import rouge_scorer
from sacrebleu.metrics import BLEU, CHRF

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "crates" / "tarjama-eval" / "tests" / "fixtures" / "flores_parity.json"
FILES = {"eng_Latn": "eng_Latn.devtest", "arb_Arab": "arb_Arab.devtest"}


def flores_dir() -> Path:
    return Path(os.environ.get("TARJAMA_FLORES", ROOT / "tests" / "data" / "flores200"))


def segments(text: str) -> list:
    """tarjama_eval::split_segments: one segment per \\n-terminated line, rstripped."""
    if not text:
        return []
    if text.endswith("\n"):
        text = text[:-1]
    return [line.rstrip() for line in text.split("\n")]


def perturb(i: int, line: str) -> str:
    """Drop, swap or replace words depending on the line number (mirrored in Rust)."""
    words = line.split(" ")
    kind = i % 4
    if kind == 1:
        words = [w for j, w in enumerate(words) if j % 5 != 4]
    elif kind == 2:
        for j in range(0, len(words) - 1, 6):
            words[j], words[j + 1] = words[j + 1], words[j]
    elif kind == 3:
        words = ["the" if j % 4 == 1 else w for j, w in enumerate(words)]
    return " ".join(words)


def main() -> int:
    folder = flores_dir()
    if not folder.is_dir():
        print(f"FLORES not found at {folder}; set TARJAMA_FLORES", file=sys.stderr)
        return 1
    out = {"sacrebleu_version": sacrebleu.__version__, "rouge_score_version": "0.1.2", "languages": {}}
    for lang, name in FILES.items():
        refs = segments((folder / name).read_text(encoding="utf-8"))
        hyps = [perturb(i, r) for i, r in enumerate(refs)]
        entry = {"file": name, "n_segments": len(refs), "bleu": {}, "chrf": {}}
        for tok in ["13a", "intl", "char"]:
            entry["bleu"][tok] = BLEU(tokenize=tok).corpus_score(hyps, [refs]).score
        entry["chrf"]["chrF2"] = CHRF().corpus_score(hyps, [refs]).score
        entry["chrf"]["chrF2++"] = CHRF(word_order=2).corpus_score(hyps, [refs]).score
        if lang == "eng_Latn":
            types = ["rouge1", "rouge2", "rougeL", "rougeLsum"]
            scorer = rouge_scorer.RougeScorer(types, use_stemmer=True)
            sums = {t: 0.0 for t in types}
            for r, h in zip(refs, hyps):
                s = scorer.score(r, h)
                for t in types:
                    sums[t] += s[t].fmeasure
            entry["rouge_f"] = {t: sums[t] / len(refs) for t in types}
        out["languages"][lang] = entry
    OUT.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
