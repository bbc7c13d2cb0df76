#!/usr/bin/env python3
"""Speed and memory of tarjama's encoder-decoder runner against CTranslate2, on the same
model and sentences.

The model is a random-weight Marian with the shape of Helsinki-NLP/opus-mt-ar-en
(d_model 512, 6+6 layers, 8 heads, ffn 2048, vocabulary ~62k), generated here (never
committed) with the small SentencePiece vocabulary of the test fixture padded to 62k
entries. The output length is fixed (minimum = maximum tokens) so that random weights
cannot change the amount of work. Each engine runs in its own child process; peak
memory is that process's own RSS high-water mark (VmHWM). Reported: target tokens/s and peak RSS,
median of the runs, and tarjama/CTranslate2 ratios, for float32 and int8.

Usage (from the repository root):
    pip install -r scripts/requirements-seq2seq.txt
    cargo build --release -p tarjama-seq2seq --example seq2seq_bench
    python scripts/bench_ct2.py [--sentences 500] [--runs 3] [--threads 2] [--max-tokens 64]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from tarjama_scripts import marian_config_args

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "crates/tarjama-seq2seq/tests/fixtures/seq2seq/marian"
VOCAB_SIZE = 62_000


def build_model(out: Path):
    import torch
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer

    tmp = out / "_tok"
    tmp.mkdir()
    for f in ("source.spm", "target.spm"):
        shutil.copy(FIXTURE / f, tmp / f)
    vocab = json.loads((FIXTURE / "vocab.json").read_text(encoding="utf-8"))
    vocab.pop("<pad>")
    i = 0
    while len(vocab) < VOCAB_SIZE - 1:
        vocab.setdefault(f"\u2581x{i}", len(vocab))
        i += 1
    vocab["<pad>"] = len(vocab)
    (tmp / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    # Saved afresh (not the fixture's tokenizer_config.json, whose added-token table pins
    # <pad> to the fixture's id).
    MarianTokenizer(str(tmp / "source.spm"), str(tmp / "target.spm"), str(tmp / "vocab.json")).save_pretrained(str(out))
    shutil.rmtree(tmp)
    pad = vocab["<pad>"]
    config = MarianConfig(
        **marian_config_args(len(vocab), pad, 512, d_model=512, layers=6, heads=8, ffn=2048),
        tie_word_embeddings=True,
        bad_words_ids=[[pad]],
    )
    torch.manual_seed(0)
    model = MarianMTModel(config).eval()
    model.save_pretrained(str(out))
    # transformers may write only a generation_config.json; the runner reads both.
    return pad


CT2_CHILD = r"""
import json, sys, time, resource
import ctranslate2
tokens_file, ct2_dir, compute_type, threads, beam, batch, max_tokens = sys.argv[1:8]
source = json.load(open(tokens_file, encoding="utf-8"))
t0 = time.perf_counter()
tr = ctranslate2.Translator(ct2_dir, device="cpu", compute_type=compute_type,
                            intra_threads=int(threads), inter_threads=1)
load_s = time.perf_counter() - t0
t1 = time.perf_counter()
res = tr.translate_batch(source, beam_size=int(beam), max_batch_size=int(batch),
                         max_decoding_length=int(max_tokens), min_decoding_length=int(max_tokens))
secs = time.perf_counter() - t1
n = sum(len(r.hypotheses[0]) for r in res)
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")]
peak = int(hwm[0].split()[1]) / 1024.0 if hwm else None
print(json.dumps({"sentences": len(res), "target_tokens": n, "load_s": load_s,
                  "translate_s": secs, "tokens_per_s": n / secs, "peak_rss_mib": peak}))
"""


def run_child(cmd, env):
    """Runs a child process; returns (its JSON output, its peak RSS in MiB).

    The peak is the child's own VmHWM, which it reports: `ru_maxrss` would include this
    (large, torch-importing) parent's peak, which Linux carries across fork and exec."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    out = proc.stdout.read().decode()
    err = proc.stderr.read().decode()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"{cmd[0]} failed ({proc.returncode}):\n{err[-3000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    peak = result.get("peak_rss_mib") or usage.ru_maxrss / 1024.0
    return result, peak


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_flores = os.environ.get("TARJAMA_FLORES", str(REPO / "tests" / "data" / "flores200"))
    ap.add_argument("--flores", default=default_flores)
    ap.add_argument("--sentences", type=int, default=500)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--beam", type=int, default=4)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--precisions", default="float32,int8")
    ap.add_argument("--bench-bin", default=str(REPO / "target/release/examples/seq2seq_bench"))
    args = ap.parse_args()

    flores = Path(args.flores) / "arb_Arab.devtest"
    if not flores.exists():
        sys.exit(f"FLORES not found: {flores}")
    if not Path(args.bench_bin).exists():
        sys.exit(f"{args.bench_bin} missing: cargo build --release -p tarjama-seq2seq --example seq2seq_bench")

    work = Path(tempfile.mkdtemp(prefix="tarjama-bench-"))
    try:
        model_dir = work / "marian-big-random"
        model_dir.mkdir()
        print(f"building the random opus-mt-ar-en-shaped model in {model_dir}", file=sys.stderr)
        build_model(model_dir)
        lines = flores.read_text(encoding="utf-8").splitlines()[: args.sentences]
        input_file = work / "input.txt"
        input_file.write_text("\n".join(lines) + "\n", encoding="utf-8")

        # CTranslate2 takes token strings: MarianTokenizer's, made here so that the timed
        # child imports nothing but ctranslate2 (its peak RSS is then comparable).
        from transformers import MarianTokenizer

        tok = MarianTokenizer.from_pretrained(str(model_dir))
        tokens_file = work / "source_tokens.json"
        tokens_file.write_text(
            json.dumps([tok.convert_ids_to_tokens(tok(line)["input_ids"]) for line in lines], ensure_ascii=False),
            encoding="utf-8",
        )

        env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads))
        ct2_dirs = {}
        for prec in args.precisions.split(","):
            ct2_dir = work / f"ct2-{prec}"
            quant = [] if prec == "float32" else ["--quantization", prec]
            subprocess.run(
                ["ct2-transformers-converter", "--model", str(model_dir), "--output_dir", str(ct2_dir)] + quant,
                check=True,
                stdout=subprocess.DEVNULL,
            )
            ct2_dirs[prec] = ct2_dir

        rows = []
        for prec in args.precisions.split(","):
            results = {"tarjama": [], "ctranslate2": []}
            for run in range(args.runs):
                cmd = [args.bench_bin, str(model_dir), str(input_file), "--beam", str(args.beam),
                       "--batch", str(args.batch), "--max-tokens", str(args.max_tokens), "--fixed-length"]
                if prec == "int8":
                    cmd.append("--int8")
                results["tarjama"].append(run_child(cmd, env))
                cmd = [sys.executable, "-c", CT2_CHILD, str(tokens_file), str(ct2_dirs[prec]),
                       prec, str(args.threads), str(args.beam), str(args.batch), str(args.max_tokens)]
                results["ctranslate2"].append(run_child(cmd, env))
                print(f"{prec} run {run + 1}: " + ", ".join(
                    f"{k} {v[-1][0]['tokens_per_s']:.1f} tok/s {v[-1][1]:.0f} MiB" for k, v in results.items()),
                    file=sys.stderr)
            med = {}
            for engine, rs in results.items():
                med[engine] = {
                    "tokens_per_s": statistics.median(r[0]["tokens_per_s"] for r in rs),
                    "peak_rss_mib": statistics.median(r[1] for r in rs),
                    "target_tokens": rs[0][0]["target_tokens"],
                }
            rows.append((prec, med))

        print(f"\n{args.sentences} FLORES sentences, beam {args.beam}, batch {args.batch}, {args.threads} threads, "
              f"{args.max_tokens} tokens per sentence, median of {args.runs} run(s)\n")
        print("| precision | engine | target tok/s | peak RSS MiB | tok/s ratio (tarjama/ct2) | RSS ratio |")
        print("|---|---|---|---|---|---|")
        for prec, med in rows:
            t, c = med["tarjama"], med["ctranslate2"]
            for name, m in (("tarjama", t), ("ctranslate2", c)):
                ratio = (f"{t['tokens_per_s'] / c['tokens_per_s']:.2f}", f"{t['peak_rss_mib'] / c['peak_rss_mib']:.2f}") \
                    if name == "tarjama" else ("", "")
                print(f"| {prec} | {name} | {m['tokens_per_s']:.1f} | {m['peak_rss_mib']:.0f} | {ratio[0]} | {ratio[1]} |")
        print(json.dumps({"settings": vars(args), "results": dict(rows)}), file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
