#!/usr/bin/env python3
"""Writes the FLORES-200 Arabic devtest as one text file per article, for batch runs.

Consecutive devtest lines that share a URL in metadata_devtest.tsv belong to one article;
each article becomes OUTDIR/article-NNN.txt with one sentence per line.

Usage: scripts/flores_to_articles.py OUTDIR [--flores DIR]
       scripts/flores_to_articles.py OUTDIR --collect JSONL_DIR > hyp.txt

With --collect, reads the `tarjama translate OUTDIR -o JSONL_DIR --format jsonl` output
back into one line per devtest line, in devtest order (each line's sentences are found by
their source byte spans), for `tarjama eval --ref eng_Latn.devtest --hyp hyp.txt`.
The FLORES folder defaults to $TARJAMA_FLORES, else tests/data/flores200 in the
repository. No Python packages needed.
"""

import argparse
import json
import os
import sys
from pathlib import Path


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    default = os.environ.get("TARJAMA_FLORES", str(root / "tests" / "data" / "flores200"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--flores", type=Path, default=Path(default))
    parser.add_argument("--collect", type=Path, metavar="JSONL_DIR",
                        help="print the jsonl translations of OUTDIR's articles, one line per devtest line")
    args = parser.parse_args()
    if args.collect:
        return collect(args.outdir, args.collect)

    sentences = (args.flores / "arb_Arab.devtest").read_text(encoding="utf-8").splitlines()
    meta = (args.flores / "metadata_devtest.tsv").read_text(encoding="utf-8").splitlines()[1:]
    urls = [line.split("\t", 1)[0] for line in meta]
    if len(urls) != len(sentences):
        print(f"error: {len(sentences)} sentences but {len(urls)} metadata rows", file=sys.stderr)
        return 1

    articles: list[list[str]] = []
    last = None
    for url, sentence in zip(urls, sentences):
        if url != last:
            articles.append([])
            last = url
        articles[-1].append(sentence)

    args.outdir.mkdir(parents=True, exist_ok=True)
    for i, article in enumerate(articles):
        (args.outdir / f"article-{i:03}.txt").write_text("\n".join(article) + "\n", encoding="utf-8")
    print(f"{len(articles)} articles, {len(sentences)} sentences -> {args.outdir}", file=sys.stderr)
    return 0


def collect(articles: Path, jsonl_dir: Path) -> int:
    n = 0
    for src in sorted(articles.glob("article-*.txt")):
        data = src.read_bytes()
        # Byte ranges of the lines (without the line break).
        bounds, start = [], 0
        for line in data.split(b"\n")[:-1] if data.endswith(b"\n") else data.split(b"\n"):
            bounds.append((start, start + len(line)))
            start += len(line) + 1
        out = [[] for _ in bounds]
        records = jsonl_dir / (src.stem + ".jsonl")
        if not records.is_file():
            print(f"error: {records} missing (did the run finish?)", file=sys.stderr)
            return 1
        for row in records.read_text(encoding="utf-8").splitlines():
            rec = json.loads(row)
            a, b = rec["span"]
            k = next(i for i, (s, e) in enumerate(bounds) if s <= a and b <= e)
            out[k].append(rec["translation"].strip())
        for parts in out:
            print(" ".join(" ".join(parts).split()))
        n += len(out)
    print(f"{n} lines", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
