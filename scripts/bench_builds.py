#!/usr/bin/env python3
"""Portable build against a native one, per kernel tier, on one GGUF model.

Builds `examples/gguf_speed` twice: the default (portable: the target's baseline, kernels
chosen at run time) into `target/`, and with `-C target-cpu=native` into `target-native/`.
Then, round after round, runs both builds on every kernel tier this CPU has
(`TARJAMA_KERNELS`), alternating, so that a noisy neighbour slows both alike. Prints the
median prefill and decode tokens/s of each (build, tier) and their ratio to the native
build's AVX-512 tier (or its widest tier), as a Markdown table, and the raw numbers as
JSON on request.

    scripts/bench_builds.py --model ~/.cache/tarjama/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf

Run it on a quiet machine; each round takes about a minute with a 1.5B model (more for
the scalar tier).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TIERS = ["avx512", "avxvnni", "avx2", "scalar"]


def build(target_dir: str, rustflags: str) -> Path:
    env = dict(os.environ, CARGO_TARGET_DIR=str(ROOT / target_dir), RUSTFLAGS=rustflags)
    subprocess.run(
        ["cargo", "build", "--release", "--locked", "-p", "tarjama-gguf", "--example", "gguf_speed"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    return ROOT / target_dir / "release" / "examples" / "gguf_speed"


def available_tiers(binary: Path, model: str) -> list:
    """The tiers this CPU runs: a forced tier it lacks makes tarjama warn and fall back."""
    tiers = []
    for tier in TIERS:
        out = subprocess.run(
            [str(binary), model, "--prompt-len", "16", "--decode", "2", "--runs", "1"],
            env=dict(os.environ, TARJAMA_KERNELS=tier),
            capture_output=True,
            text=True,
        )
        if out.returncode == 0 and "lacks what" not in out.stderr:
            tiers.append(tier)
    return tiers


def run(binary: Path, model: str, tier: str, prompt: int, decode: int) -> dict:
    out = subprocess.run(
        [str(binary), model, "--prompt-len", str(prompt), "--decode", str(decode), "--runs", "1"],
        env=dict(os.environ, TARJAMA_KERNELS=tier),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a GGUF file")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--prompt-len", type=int, default=256)
    ap.add_argument("--decode", type=int, default=64)
    ap.add_argument("--tiers", help="comma-separated tiers (default: all this CPU has)")
    ap.add_argument("--json", help="also write the raw numbers here")
    args = ap.parse_args()

    builds = {
        "portable": build("target", ""),
        "native": build("target-native", "-C target-cpu=native"),
    }
    tiers = args.tiers.split(",") if args.tiers else available_tiers(builds["portable"], args.model)
    results = {(b, t): {"prefill": [], "decode": []} for b in builds for t in tiers}
    for r in range(args.rounds):
        for tier in tiers:
            for name, binary in builds.items():
                got = run(binary, args.model, tier, args.prompt_len, args.decode)
                results[(name, tier)]["prefill"].append(got["prefill_tok_s"])
                results[(name, tier)]["decode"].append(got["decode_tok_s"])
                print(
                    f"round {r + 1}: {name} {tier}: prefill {got['prefill_tok_s']:.1f}, "
                    f"decode {got['decode_tok_s']:.1f} tok/s",
                    file=sys.stderr,
                )

    med = {k: {m: statistics.median(v[m]) for m in v} for k, v in results.items()}
    base = med[("native", tiers[0])]
    print(f"\n{Path(args.model).name}, prompt {args.prompt_len} tokens, {args.decode} decoded, "
          f"median of {args.rounds} rounds; ratios against native {tiers[0]}\n")
    print("| build | tier | prefill tok/s | decode tok/s | prefill ratio | decode ratio |")
    print("|---|---|---|---|---|---|")
    for tier in tiers:
        for name in builds:
            m = med[(name, tier)]
            print(
                f"| {name} | {tier} | {m['prefill']:.1f} | {m['decode']:.1f} | "
                f"{m['prefill'] / base['prefill']:.2f} | {m['decode'] / base['decode']:.2f} |"
            )
    if args.json:
        raw = [
            {"build": b, "tier": t, **v} for (b, t), v in results.items()
        ]
        Path(args.json).write_text(json.dumps(raw, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
