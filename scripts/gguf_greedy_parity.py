#!/usr/bin/env python3
"""Greedy-decoding reference from llama.cpp for tarjama's GGUF transformer.

For each GGUF model, builds 10 prompts from FLORES-200 devtest Arabic lines (0, 100, ...,
900), tokenizes them with llama.cpp (special tokens parsed, BOS as the model's metadata
says), and decodes greedily with llama.cpp: argmax of the last logits at every step, no
sampler, no repeat penalty, 2 threads. Decoding stops after 32 tokens or at an
end-of-generation token (which is recorded). The prompt ids and output ids go to one JSON
fixture per model under crates/tarjama-gguf/tests/fixtures/gguf_greedy/; no FLORES text
is written. crates/tarjama-gguf/tests/generate.rs replays the prompts through
tarjama's Transformer and compares.

Needs: pip install -r scripts/requirements-llamacpp.txt

    python scripts/gguf_greedy_parity.py                   # all models found
    python scripts/gguf_greedy_parity.py --models gemma-3-270m-q4_k_m.gguf
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import llama_cpp
from llama_cpp import Llama

from tarjama_scripts import flores_dir, models_dir

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "crates" / "tarjama-gguf" / "tests" / "fixtures" / "gguf_greedy"
SYSTEM = "You are a professional translator."

# (file name, prompt style)
MODELS = [
    ("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", "chatml"),
    ("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", "chatml"),
    ("gemma-3-270m-q4_k_m.gguf", "raw"),
]


def prompt_text(style: str, line: str) -> str:
    if style == "chatml":
        return (
            f"<|im_start|>system\n{SYSTEM}<|im_end|>\n"
            f"<|im_start|>user\nTranslate into English:\n{line}<|im_end|>\n"
            "<|im_start|>assistant\n"
        )
    # Gemma 3 270M is a base model: a plain completion prompt.
    return f"Arabic: {line}\nEnglish:"


def logits_now(llm: Llama) -> np.ndarray:
    ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
    return np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),)).copy()


def greedy(llm: Llama, prompt: list, n: int, top: int) -> tuple:
    """Greedy ids, and at every step the `top` best [id, logit] pairs."""
    vocab = llama_cpp.llama_model_get_vocab(llm._model.model)
    llm.reset()
    llm.eval(prompt)
    out, tops = [], []
    for _ in range(n):
        logits = logits_now(llm)
        best = np.argsort(-logits, kind="stable")[:top]
        tops.append([[int(i), round(float(logits[i]), 4)] for i in best])
        tok = int(best[0])
        out.append(tok)
        if llama_cpp.llama_vocab_is_eog(vocab, tok):
            break
        llm.eval([tok])
    return out, tops


def forced_gaps(llm: Llama, prompt: list, forced: list) -> list:
    """Teacher-forced along `forced`: at each step, best logit minus the forced token's."""
    llm.reset()
    llm.eval(prompt)
    gaps = []
    for i, tok in enumerate(forced):
        logits = logits_now(llm)
        gaps.append(float(logits.max() - logits[tok]))
        if i + 1 < len(forced):
            llm.eval([tok])
    return gaps


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", help="GGUF file names in the model folder")
    ap.add_argument("--flores", help="FLORES-200 folder (default $TARJAMA_FLORES, else tests/data/flores200 in the repository)")
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--top", type=int, default=8, help="best logits recorded per step")
    ap.add_argument("--kv-f16", action="store_true", help="llama.cpp's default f16 KV cache")
    args = ap.parse_args()

    src = flores_dir(args.flores) / "arb_Arab.devtest"
    if not src.is_file():
        print(f"error: {src} not found (set --flores or TARJAMA_FLORES)", file=sys.stderr)
        return 2
    lines = src.read_text(encoding="utf-8").splitlines()
    picks = list(range(0, 1000, 100))

    FIXTURES.mkdir(parents=True, exist_ok=True)
    wanted = set(args.models) if args.models else None
    for name, style in MODELS:
        if wanted is not None and name not in wanted:
            continue
        path = models_dir() / name
        if not path.is_file():
            print(f"skipped {name}: {path} not found", file=sys.stderr)
            continue
        # llama.cpp keeps its KV cache in f16 by default and rounds keys, values and the
        # query dot products to f16; tarjama keeps them in f32. With the default cache the
        # two disagree on near-ties within a few tokens (2/10 prompts matched), with an f32
        # cache they compute the same thing, so the reference uses an f32 cache
        # (--kv-f16 restores llama.cpp's default).
        kv = 1 if args.kv_f16 else 0  # GGML_TYPE_F16 = 1, GGML_TYPE_F32 = 0

        def load(n_batch: int) -> Llama:
            return Llama(model_path=str(path), n_ctx=1024, n_batch=n_batch, n_ubatch=n_batch,
                         n_threads=args.threads, n_threads_batch=args.threads, verbose=False,
                         type_k=kv, type_v=kv)

        # The reference: the whole prompt in one batch, as tarjama's prefill does.
        llm = load(512)
        add_bos = llm._model.add_bos_token()
        cases = []
        for i in picks:
            ids = llm.tokenize(prompt_text(style, lines[i]).encode("utf-8"), add_bos=add_bos, special=True)
            out, tops = greedy(llm, ids, args.tokens, args.top)
            cases.append({"flores_line": i, "prompt_ids": ids, "output_ids": out, "top_logits": tops})
            print(f"{name} line {i}: {len(ids)} prompt tokens -> "
                  f"{llm.detokenize(out).decode('utf-8', 'replace')!r}", file=sys.stderr)
        del llm

        # llama.cpp against itself: the same file and prompts fed one token at a time (its
        # matrix-vector kernels instead of the batched, repacked ones). How often its own
        # greedy output survives that change, and how far from the argmax its own logits put
        # the reference tokens, is the yardstick for any other runner.
        llm = load(1)
        same, worst = 0, 0.0
        for case in cases:
            out, _ = greedy(llm, case["prompt_ids"], args.tokens, 1)
            same += out == case["output_ids"]
            worst = max(worst, max(forced_gaps(llm, case["prompt_ids"], case["output_ids"])))
        del llm
        print(f"{name}: llama.cpp batch 1 vs batch 512: {same}/{len(cases)} greedy outputs equal, "
              f"largest gap to a reference token {worst:.3f}", file=sys.stderr)
        fixture = {
            "model": name,
            "reference": f"llama-cpp-python {llama_cpp.__version__}, greedy argmax, {args.threads} threads, "
                         f"KV cache {'f16' if args.kv_f16 else 'f32'}, prompt in one batch",
            "prompt_style": style,
            "add_bos": bool(add_bos),
            "max_new_tokens": args.tokens,
            "llama_cpp_batch1": {"greedy_equal": same, "max_forced_gap": round(worst, 4)},
            "cases": cases,
        }
        out_path = FIXTURES / (name.removesuffix(".gguf") + ".json")
        # One case per line keeps the file small and its diffs readable.
        head = {k: v for k, v in fixture.items() if k != "cases"}
        body = ",\n".join("  " + json.dumps(case, separators=(",", ":")) for case in cases)
        text = json.dumps(head, indent=1)[:-2] + ',\n "cases": [\n' + body + "\n ]\n}\n"
        json.loads(text)
        out_path.write_text(text)
        print(f"wrote {out_path.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
