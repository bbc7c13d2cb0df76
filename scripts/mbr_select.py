#!/usr/bin/env python3
"""Chooses each line among several systems' outputs by minimum Bayes risk.

Every input file holds one translation per line of the same source. For each line the
output keeps the candidate whose mean sentence chrF++ against the other files' lines is
highest (ties go to the file named first), the selection `tarjama translate --candidates`
makes among the answers of one request. Prints the chosen lines on stdout and, on stderr,
how often each file won. With --ref, also prints on stderr each file's corpus chrF++ and
that of the chosen lines, and of the oracle (the best line against the reference, an
upper bound on any selection).

Usage: scripts/mbr_select.py HYP HYP [HYP ...] [--ref REF] > chosen.txt

Needs sacrebleu (scripts/requirements-metrics.txt).
"""

import argparse
import sys

from sacrebleu.metrics import CHRF


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("hyps", nargs="+")
    parser.add_argument("--ref")
    args = parser.parse_args()
    if len(args.hyps) < 2:
        parser.error("give at least two files to choose among")
    systems = [read_lines(p) for p in args.hyps]
    n = len(systems[0])
    for path, lines in zip(args.hyps, systems):
        if len(lines) != n:
            parser.error(f"{path}: {len(lines)} lines, {args.hyps[0]} has {n}")
    chrf = CHRF(word_order=2)
    chosen, wins = [], [0] * len(systems)
    for i in range(n):
        cands = [s[i] for s in systems]
        utility = [
            sum(chrf.sentence_score(c, [o]).score for k, o in enumerate(cands) if k != j)
            for j, c in enumerate(cands)
        ]
        best = max(range(len(cands)), key=lambda j: (utility[j], -j))
        wins[best] += 1
        chosen.append(cands[best])
    sys.stdout.write("".join(line + "\n" for line in chosen))
    for path, w in zip(args.hyps, wins):
        print(f"{path}: chosen for {w} of {n} lines", file=sys.stderr)
    if args.ref:
        ref = read_lines(args.ref)
        if len(ref) != n:
            parser.error(f"{args.ref}: {len(ref)} lines, the hypotheses have {n}")
        for path, lines in zip(args.hyps, systems):
            print(f"{path}: chrF++ {chrf.corpus_score(lines, [ref]).score:.2f}", file=sys.stderr)
        print(f"chosen: chrF++ {chrf.corpus_score(chosen, [ref]).score:.2f}", file=sys.stderr)
        oracle = [
            max((s[i] for s in systems), key=lambda c: chrf.sentence_score(c, [ref[i]]).score)
            for i in range(n)
        ]
        print(f"oracle: chrF++ {chrf.corpus_score(oracle, [ref]).score:.2f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
