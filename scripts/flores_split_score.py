#!/usr/bin/env python3
"""Sentence-boundary F1 of `tarjama prep split` on FLORES-200 devtest (Arabic).

Consecutive lines of arb_Arab.devtest that share a URL in metadata_devtest.tsv are
joined with a space into one document; the documents, separated by blank lines, go
through the real binary (`tarjama prep split --json`) in one run, and the sentence
starts it finds inside each document are compared with the line starts.

- true positive: a predicted sentence start that is a line start;
- false negative: a line start that no sentence starts at;
- false positive: a predicted start inside a line, counted only when the English
  reference line (eng_Latn.devtest) is a single sentence, since some FLORES lines
  hold two. Rule for "more than one sentence" (same as the Rust test
  crates/tarjama-text/tests/flores.rs): a `.`, `!` or `?`, then closing quotes or
  brackets, then whitespace, then at most one opening quote or bracket, then an
  uppercase ASCII letter or a digit (or a lowercase letter when the word before has at
  least four letters); for a `.`, the word before must not be a single letter, a title
  (Mr, Dr, St, ...) or a dotted acronym (U.S., p.m.).

Usage (from the repository root; standard library only):
    cargo build -p tarjama-cli && python3 scripts/flores_split_score.py
    python3 scripts/flores_split_score.py --tarjama target/release/tarjama \
        --flores tests/data/flores200 --min-f1 0.993 --show-errors
The FLORES folder defaults to $TARJAMA_FLORES, else tests/data/flores200 in the repository.
"""

import argparse
import bisect
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TITLES = {"Mr", "Mrs", "Ms", "Dr", "St", "Jr", "Sr", "Prof", "Gen", "Lt", "Col", "Sgt",
          "Capt", "Gov", "Sen", "Rep", "Rev", "Mt", "No", "vs"}
CLOSERS = "\"'”’)]"
OPENERS = "\"“'‘("


def english_is_multi_sentence(line: str) -> bool:
    """The rule in the module docstring."""
    n = len(line)
    for i, c in enumerate(line):
        if c not in ".!?":
            continue
        j = i + 1
        while j < n and line[j] in CLOSERS:
            j += 1
        if j >= n or not line[j].isspace():
            continue
        while j < n and line[j].isspace():
            j += 1
        if j < n and line[j] in OPENERS:
            j += 1
        if j >= n:
            continue
        nxt = line[j]
        parts = line[:i].split()
        word = parts[-1].lstrip(OPENERS) if parts else ""
        letters = sum(ch.isalpha() for ch in word)
        starts = (nxt.isascii() and (nxt.isupper() or nxt.isdigit())) or (
            nxt.islower() and letters >= 4)
        if not starts:
            continue
        single_letter = len(word) == 1 and letters == 1
        if c == "." and (single_letter or word in TITLES or "." in word):
            continue
        return True
    return False


def find_tarjama(explicit):
    if explicit:
        return [explicit]
    for profile in ("release", "debug"):
        exe = REPO / "target" / profile / "tarjama"
        if exe.is_file():
            return [str(exe)]
    return ["cargo", "run", "--quiet", "-p", "tarjama-cli", "--bin", "tarjama", "--"]


def read_lines(path: Path):
    with open(path, encoding="utf-8") as f:
        return f.read().split("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--flores", type=Path,
                    default=Path(os.environ.get("TARJAMA_FLORES",
                                                REPO / "tests/data/flores200")))
    ap.add_argument("--tarjama", help="path of the tarjama binary (default: target/*/tarjama)")
    ap.add_argument("--min-f1", type=float, help="exit 1 when F1 is below this")
    ap.add_argument("--show-errors", action="store_true")
    args = ap.parse_args()

    arabic = read_lines(args.flores / "arb_Arab.devtest")
    english = read_lines(args.flores / "eng_Latn.devtest")
    urls = [row.split("\t")[0] for row in read_lines(args.flores / "metadata_devtest.tsv")[1:]]
    n = len(urls) - (1 if urls and urls[-1] == "" else 0)
    arabic, english, urls = arabic[:n], english[:n], urls[:n]
    assert len(arabic) == len(english) == n, "files of different lengths"

    # Documents, their byte offsets in the input, and the byte offset of each line start.
    docs = []  # (doc_start, [line indices], [line start offsets])
    text = bytearray()
    i = 0
    while i < n:
        j = i + 1
        while j < n and urls[j] == urls[i]:
            j += 1
        if text:
            text += b"\n\n"
        doc_start = len(text)
        starts = []
        for k in range(i, j):
            if k > i:
                text += b" "
            line = arabic[k].encode("utf-8")
            starts.append(len(text) + len(line) - len(line.lstrip()))
            text += line
        docs.append((doc_start, list(range(i, j)), starts))
        i = j

    with tempfile.NamedTemporaryFile(suffix=".txt", delete=False) as f:
        f.write(bytes(text))
        path = f.name
    try:
        cmd = find_tarjama(args.tarjama) + ["prep", "split", "--json", path]
        out = subprocess.run(cmd, check=True, capture_output=True).stdout.decode("utf-8")
    finally:
        os.unlink(path)
    sentence_starts = [json.loads(line)["start"] for line in out.splitlines()]

    doc_starts = [d[0] for d in docs]
    predicted = [[] for _ in docs]
    for start in sentence_starts:
        predicted[bisect.bisect_right(doc_starts, start) - 1].append(start)

    tp = fp = fn = 0
    for (doc_start, line_ids, starts), found in zip(docs, predicted):
        gold = set(starts[1:])
        found = sorted(found)[1:]  # the document's first sentence start is no boundary
        for s in found:
            if s in gold:
                tp += 1
                continue
            k = bisect.bisect_right(starts, s) - 1
            if not english_is_multi_sentence(english[line_ids[k]]):
                fp += 1
                if args.show_errors:
                    print(f"false split in line {line_ids[k] + 1}: "
                          f"{bytes(text[s:s + 80]).decode('utf-8', 'ignore')}", file=sys.stderr)
        for g in sorted(gold - set(found)):
            fn += 1
            if args.show_errors:
                print(f"missed line start: {bytes(text[g:g + 80]).decode('utf-8', 'ignore')}",
                      file=sys.stderr)

    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    print(f"documents {len(docs)}  lines {n}  boundaries {tp + fn}")
    print(f"TP {tp}  FP {fp}  FN {fn}  precision {precision:.4f}  recall {recall:.4f}  F1 {f1:.4f}")
    if args.min_f1 is not None and f1 < args.min_f1:
        print(f"F1 {f1:.4f} is below {args.min_f1}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
