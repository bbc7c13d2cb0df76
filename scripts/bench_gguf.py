#!/usr/bin/env python3
"""tarjama's GGUF transformer against llama.cpp (llama-cpp-python) on the same file.

Both runners get the same prompt token ids (FLORES-200 devtest Arabic lines in a ChatML
translation prompt, tokenized once by llama.cpp, about 500 tokens), the same number of
greedy decode tokens (128) and the same thread count (2). Each runner is its own
subprocess, so its peak resident memory (VmHWM, from wait4's ru_maxrss) is its own. Each
does one warm-up, then `--runs` timed runs (cache cleared, prefill of the whole prompt,
then one-token greedy decode steps); the medians are compared. Prints a markdown table
with the ratios tarjama / llama.cpp on stdout (and `--json` for a machine-readable copy).

Needs: pip install -r scripts/requirements-llamacpp.txt, and the example built:
    cargo build --release -p tarjama-gguf --example gguf_speed
    python scripts/bench_gguf.py --model qwen2.5-coder-0.5b-instruct-q4_k_m.gguf

The issue's targets: decode >= 0.9x llama.cpp, prefill >= 0.5x, peak memory <= 1.2x.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tarjama_scripts import find_model, flores_dir

ROOT = Path(__file__).resolve().parent.parent
SYSTEM = "You are a professional translator."

# Child process for llama.cpp: same protocol as examples/gguf_speed.rs.
LLAMA_CHILD = r"""
import json, sys, time
import numpy as np
import llama_cpp
from llama_cpp import Llama

model, ids_path, n_decode, runs, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
prompt = json.load(open(ids_path))
n_ctx = len(prompt) + n_decode + 16
t = time.perf_counter()
# One batch holds the whole prompt, as tarjama's prefill does.
n_batch = max(512, len(prompt))
llm = Llama(model_path=model, n_ctx=n_ctx, n_batch=n_batch, n_ubatch=n_batch, n_threads=threads,
            n_threads_batch=threads, verbose=False)
load_s = time.perf_counter() - t
n_vocab = llm.n_vocab()

def next_token():
    ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
    return int(np.argmax(np.ctypeslib.as_array(ptr, shape=(n_vocab,))))

def run(prompt, n_decode):
    llm.reset()
    t = time.perf_counter()
    llm.eval(prompt)
    tok = next_token()
    prefill = len(prompt) / (time.perf_counter() - t)
    t = time.perf_counter()
    for _ in range(n_decode):
        llm.eval([tok])
        tok = next_token()
    decode = n_decode / (time.perf_counter() - t) if n_decode else 0.0
    return prefill, decode

run(prompt[:32], 4)  # warm-up
pre, dec = [], []
for _ in range(runs):
    p, d = run(prompt, n_decode)
    pre.append(p)
    dec.append(d)
med = lambda v: sorted(v)[len(v) // 2] if len(v) % 2 else sum(sorted(v)[len(v)//2-1:len(v)//2+1]) / 2
print(json.dumps({"runner": "llama.cpp", "version": llama_cpp.__version__, "prompt_tokens": len(prompt),
                  "decode_tokens": n_decode, "runs": runs, "load_s": load_s,
                  "prefill_tok_s": med(pre), "decode_tok_s": med(dec),
                  "prefill_runs": pre, "decode_runs": dec}))
"""

TOKENIZE_CHILD = r"""
import json, sys
from llama_cpp import Llama
llm = Llama(model_path=sys.argv[1], n_ctx=64, vocab_only=True, verbose=False)
template = open(sys.argv[2], encoding="utf-8").read()
lines = open(sys.argv[3], encoding="utf-8").read().splitlines()
target = int(sys.argv[4])
# Grow the text line by line while the prompt stays within the target length.
ids = None
for n in range(1, len(lines) + 1):
    text = template.replace("{text}", "\n".join(lines[:n]))
    cand = llm.tokenize(text.encode("utf-8"), add_bos=llm._model.add_bos_token(), special=True)
    if len(cand) > target and ids is not None:
        break
    ids = cand
print(json.dumps(ids))
"""


def chatml(text: str) -> str:
    return (f"<|im_start|>system\n{SYSTEM}<|im_end|>\n"
            f"<|im_start|>user\nTranslate into English:\n{text}<|im_end|>\n<|im_start|>assistant\n")


def run_child(cmd, env):
    """Runs cmd, returns (stdout, peak RSS in bytes of that process)."""
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(cmd, stdout=out, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode()
    if proc.returncode != 0:
        sys.exit(f"error: {cmd[0]} failed with exit code {proc.returncode}")
    return text, usage.ru_maxrss * 1024  # Linux reports KiB


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
                    help="GGUF file: a path, or a name in tarjama's model folder")
    ap.add_argument("--flores", help="FLORES-200 folder (default $TARJAMA_FLORES, else tests/data/flores200 in the repository)")
    ap.add_argument("--prompt-tokens", type=int, default=512, help="prompt length to aim for (at most)")
    ap.add_argument("--decode", type=int, default=128)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bin", default=str(ROOT / "target" / "release" / "examples" / "gguf_speed"))
    ap.add_argument("--json", action="store_true", help="also print the raw results as JSON")
    args = ap.parse_args()

    model = find_model(args.model)
    if not Path(args.bin).is_file():
        sys.exit(f"error: {args.bin} not found; run: cargo build --release -p tarjama-gguf --example gguf_speed")
    src = flores_dir(args.flores) / "arb_Arab.devtest"
    if not src.is_file():
        sys.exit(f"error: {src} not found (set --flores or TARJAMA_FLORES)")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        template = tmp / "template.txt"
        template.write_text(chatml("{text}"), encoding="utf-8")
        out, _ = run_child([sys.executable, "-c", TOKENIZE_CHILD, str(model), str(template), str(src),
                            str(args.prompt_tokens)], os.environ)
        ids = json.loads(out)
        ids_path = tmp / "ids.json"
        ids_path.write_text(json.dumps(ids))

        env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads), CANDLE_NUM_THREADS=str(args.threads),
                   OMP_NUM_THREADS=str(args.threads))
        out, rss_t = run_child([args.bin, str(model), "--prompt-ids", str(ids_path), "--decode", str(args.decode),
                                "--runs", str(args.runs)], env)
        ours = json.loads(out)
        out, rss_l = run_child([sys.executable, "-c", LLAMA_CHILD, str(model), str(ids_path), str(args.decode),
                                str(args.runs), str(args.threads)], env)
        ref = json.loads(out)
    ours["peak_rss_bytes"] = rss_t
    ref["peak_rss_bytes"] = rss_l

    mib = lambda b: b / (1 << 20)
    print(f"model `{model.name}`, prompt {len(ids)} tokens, {args.decode} decode tokens, "
          f"{args.threads} threads, median of {args.runs} runs\n")
    print("| | tarjama | llama.cpp | ratio | target |")
    print("|---|---:|---:|---:|---|")
    rows = [
        ("prefill tok/s", ours["prefill_tok_s"], ref["prefill_tok_s"], ">= 0.5"),
        ("decode tok/s", ours["decode_tok_s"], ref["decode_tok_s"], ">= 0.9"),
        ("peak RSS MiB", mib(rss_t), mib(rss_l), "<= 1.2"),
    ]
    for name, a, b, target in rows:
        print(f"| {name} | {a:.1f} | {b:.1f} | {a / b:.2f} | {target} |")
    if args.json:
        print(json.dumps({"tarjama": ours, "llama.cpp": ref}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
