#!/usr/bin/env python3
"""Batched decoding, tarjama against llama.cpp's llama-batched-bench on the same GGUF file.

Both runners do what llama-batched-bench does, at each level N of parallel sequences:
clear the cache, prefill N prompts of `--npp` tokens each (separate prompts, not one
shared prompt: batched-bench without `-pps`), then `--ntg` decoding steps in which every
one of the N sequences takes one new token. The figures are llama-batched-bench's:

- PP tok/s (its S_PP): N * npp / time of the prefill;
- TG tok/s (its S_TG): N * ntg / time of the decoding phase, the aggregate over all N
  sequences (so at N = 8 it is 8 times the speed of each sequence).

llama-batched-bench feeds random token ids (std::rand() % n_vocab, the same unseeded
sequence every run) both as prompts and as the tokens of each decoding step; it samples
nothing. tarjama's `gguf_batched` takes `--prompt random` for the same kind of input, or
`--prompt flores` for real Arabic text (then the inputs differ from llama.cpp's).

Each runner is its own subprocess, so its peak resident memory (VmHWM, from wait4's
ru_maxrss) is its own; llama.cpp's covers all levels in one process, with the KV cache
for `--ctx` positions allocated up front. A run is one llama.cpp process, then one tarjama
process (alternating, so machine noise hits both); the medians over `--runs` are compared.
Prints a markdown table on stdout (`--json` for a machine-readable copy), with the load
average: llama.cpp's OpenMP threads spin while they wait, and on a machine whose cores are
busy with other work its speed collapses (0.5B, 1 sequence, load 9 on 2 cores: 2 tok/s
decode, 20 tok/s with `--omp-wait-policy passive`), so figures from a loaded machine
compare nothing.

Needs llama.cpp's tools built ("How to run the peers" in docs/performance.md:
llama-cpp-python 0.3.36's vendored llama.cpp, `cmake --build build --target llama
llama-batched-bench`) and the example:
    cargo build --release -p tarjama-gguf --example gguf_batched
    python3 scripts/bench_batched.py --llama-cpp LLAMA_CPP_BUILD_DIR \\
        --model qwen2.5-coder-0.5b-instruct-q4_k_m.gguf --runs 3
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from tarjama_scripts import find_model

ROOT = Path(__file__).resolve().parent.parent
BATCHED_BENCH = "llama-batched-bench"


def find_batched_bench(arg) -> Path:
    """llama-batched-bench under DIR: DIR itself, DIR/bin or DIR/build/bin (a source tree)."""
    base = arg or os.environ.get("LLAMA_CPP_DIR")
    if not base:
        sys.exit("error: say where llama.cpp's tools are built: --llama-cpp DIR or LLAMA_CPP_DIR "
                 "(a build folder holding bin/llama-batched-bench; see 'How to run the peers' in docs/performance.md)")
    base = Path(base)
    for cand in (base / BATCHED_BENCH, base / "bin" / BATCHED_BENCH, base / "build" / "bin" / BATCHED_BENCH):
        if cand.is_file():
            return cand
    sys.exit(f"error: no {BATCHED_BENCH} in {base}, {base}/bin or {base}/build/bin; build it with "
             f"`cmake --build build --target llama {BATCHED_BENCH}` (see 'How to run the peers' in docs/performance.md)")


def run_child(cmd, env, capture_stderr):
    """Runs cmd, returns (stdout, peak RSS in bytes of that process).

    llama.cpp logs a screenful to stderr; it is kept in a file and shown only on failure.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err if capture_stderr else None, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode()
        err.seek(0)
        log = err.read().decode(errors="replace")
    if code != 0:
        if log:
            sys.stderr.write("\n".join(log.splitlines()[-30:]) + "\n")
        sys.exit(f"error: {Path(cmd[0]).name} failed with exit code {code}")
    return text, usage.ru_maxrss * 1024  # Linux reports KiB


def json_lines(text, who):
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                sys.exit(f"error: {who} printed a line that is not JSON ({e}): {line[:200]}")
    return rows


def by_level(rows, levels, npp, ntg, who):
    """{level: row}, checking that every level came back with the asked-for sizes."""
    got = {r["level"]: r for r in rows if "level" in r}
    missing = [n for n in levels if n not in got]
    if missing:
        sys.exit(f"error: {who} gave no result for levels {missing} (got {sorted(got)})")
    for n in levels:
        r = got[n]
        if (r.get("npp"), r.get("ntg")) != (npp, ntg):
            sys.exit(f"error: {who} level {n} ran npp={r.get('npp')} ntg={r.get('ntg')}, not {npp}/{ntg}")
    return got


def run_llama(binary, model, args, levels, env):
    cmd = [str(binary), "-m", str(model), "-t", str(args.threads), "-tb", str(args.threads),
           "-c", str(args.ctx), "-b", str(args.batch), "-ub", str(args.ubatch),
           "-npp", str(args.npp), "-ntg", str(args.ntg), "-npl", ",".join(map(str, levels)),
           "--output-format", "jsonl"]
    env = dict(env, LD_LIBRARY_PATH=os.pathsep.join(
        p for p in (str(binary.parent), env.get("LD_LIBRARY_PATH", "")) if p))
    if args.omp_wait_policy:
        env["OMP_WAIT_POLICY"] = args.omp_wait_policy.upper()
    out, rss = run_child(cmd, env, capture_stderr=True)
    rows = [{"level": r["pl"], "npp": r["pp"], "ntg": r["tg"], "pp_tokens_per_s": r["speed_pp"],
             "tg_tokens_per_s": r["speed_tg"], "t_pp_s": r["t_pp"], "t_tg_s": r["t_tg"],
             "n_threads": r["n_threads"], "n_kv_max": r["n_kv_max"], "flash_attn": r["flash_attn"]}
            for r in json_lines(out, BATCHED_BENCH) if "speed_tg" in r]
    return by_level(rows, levels, args.npp, args.ntg, BATCHED_BENCH), rss


def run_tarjama(binary, model, args, levels, env):
    cmd = [str(binary), "--model", str(model), "--npp", str(args.npp), "--ntg", str(args.ntg),
           "--levels", ",".join(map(str, levels)), "--threads", str(args.threads), "--prompt", args.prompt]
    out, rss = run_child(cmd, env, capture_stderr=False)
    return by_level(json_lines(out, binary.name), levels, args.npp, args.ntg, binary.name), rss


def summarize(runs, levels):
    """Medians per level over runs, keeping each run's figure."""
    res = {}
    for n in levels:
        pp = [r[n]["pp_tokens_per_s"] for r in runs]
        tg = [r[n]["tg_tokens_per_s"] for r in runs]
        res[n] = {"pp_tokens_per_s": statistics.median(pp), "tg_tokens_per_s": statistics.median(tg),
                  "pp_runs": pp, "tg_runs": tg}
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
                    help="GGUF file: a path, or a name in tarjama's model folder")
    ap.add_argument("--llama-cpp", help="llama.cpp build folder holding bin/llama-batched-bench "
                    "(default $LLAMA_CPP_DIR)")
    ap.add_argument("--bin", default=str(ROOT / "target" / "release" / "examples" / "gguf_batched"),
                    help="tarjama's gguf_batched example")
    ap.add_argument("--npp", type=int, default=128, help="prompt tokens per sequence")
    ap.add_argument("--ntg", type=int, default=64, help="decoding steps (new tokens per sequence)")
    ap.add_argument("--levels", default="1,2,4,8,16", help="numbers of parallel sequences")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--prompt", choices=["random", "flores"], default="random",
                    help="tarjama's prompts (llama.cpp's are always random token ids)")
    ap.add_argument("--ctx", type=int, default=8192,
                    help="llama.cpp's KV cache size (-c); raised to max level * (npp + ntg) if smaller")
    ap.add_argument("--batch", type=int, default=2048, help="llama.cpp's -b")
    ap.add_argument("--ubatch", type=int, default=512, help="llama.cpp's -ub")
    ap.add_argument("--omp-wait-policy", choices=["active", "passive"],
                    help="OMP_WAIT_POLICY for llama.cpp's OpenMP threads (default: unset, llama.cpp's own "
                    "spin-then-sleep); on a loaded machine the spinning threads collapse its speed")
    ap.add_argument("--only", choices=["llama.cpp", "tarjama"], help="run one side only")
    ap.add_argument("--json", action="store_true", help="also print the raw results as JSON")
    args = ap.parse_args()

    try:
        levels = [int(x) for x in args.levels.split(",") if x.strip()]
    except ValueError:
        sys.exit(f"error: --levels wants numbers separated by commas, not {args.levels!r}")
    if not levels or min(levels) < 1 or args.npp < 1 or args.ntg < 1 or args.runs < 1:
        sys.exit("error: --levels, --npp, --ntg and --runs must be positive")
    # batched-bench silently skips a level whose N * (npp + ntg) positions do not fit.
    need = max(levels) * (args.npp + args.ntg)
    if args.ctx < need:
        print(f"note: --ctx {args.ctx} raised to {need} to hold {max(levels)} x {args.npp + args.ntg} "
              "positions", file=sys.stderr)
        args.ctx = need

    model = find_model(args.model)
    sides = ["llama.cpp", "tarjama"] if args.only is None else [args.only]
    if "llama.cpp" in sides:
        llama_bin = find_batched_bench(args.llama_cpp)
    if "tarjama" in sides:
        ours_bin = Path(args.bin)
        if not ours_bin.is_file():
            sys.exit(f"error: {ours_bin} not found; run: cargo build --release -p tarjama-gguf "
                     "--example gguf_batched")

    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads), CANDLE_NUM_THREADS=str(args.threads),
               OMP_NUM_THREADS=str(args.threads))
    load_start = os.getloadavg()[0]
    raw = {side: [] for side in sides}
    rss = {side: [] for side in sides}
    for i in range(args.runs):
        for side in sides:
            print(f"run {i + 1}/{args.runs}: {side} ...", file=sys.stderr, flush=True)
            if side == "llama.cpp":
                rows, peak = run_llama(llama_bin, model, args, levels, env)
            else:
                rows, peak = run_tarjama(ours_bin, model, args, levels, env)
            raw[side].append(rows)
            rss[side].append(peak)
    med = {side: summarize(raw[side], levels) for side in sides}
    peak_mib = {side: max(rss[side]) / (1 << 20) for side in sides}

    fmt = lambda v: f"{v:.1f}"
    ratio = lambda a, b: f"{a / b:.2f}" if b else "-"
    base = levels[0]
    prompts = "random ids" if args.prompt == "random" else "llama.cpp random ids, tarjama FLORES text"
    print(f"model `{model.name}`, {args.npp} prompt tokens and {args.ntg} new tokens per sequence "
          f"(prompts: {prompts}), {args.threads} threads, median of {args.runs} runs; "
          f"tok/s summed over all sequences; 1-min load average {load_start:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after\n")
    if len(sides) == 2:
        print(f"| seqs | llama.cpp TG | tarjama TG | ratio | llama.cpp PP | tarjama PP | ratio "
              f"| llama.cpp TG / TG@{base} | tarjama TG / TG@{base} |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        ref, ours = med["llama.cpp"], med["tarjama"]
        for n in levels:
            lt, tt = ref[n]["tg_tokens_per_s"], ours[n]["tg_tokens_per_s"]
            lp, tp = ref[n]["pp_tokens_per_s"], ours[n]["pp_tokens_per_s"]
            print(f"| {n} | {fmt(lt)} | {fmt(tt)} | {ratio(tt, lt)} | {fmt(lp)} | {fmt(tp)} | {ratio(tp, lp)} "
                  f"| {ratio(lt, ref[base]['tg_tokens_per_s'])} | {ratio(tt, ours[base]['tg_tokens_per_s'])} |")
        a, b = peak_mib["llama.cpp"], peak_mib["tarjama"]
        print(f"\npeak RSS MiB (whole process, max over runs): llama.cpp {a:.0f}, tarjama {b:.0f} "
              f"(ratio {ratio(b, a)})")
    else:
        side = sides[0]
        print(f"| seqs | {side} TG | {side} PP | TG / TG@{base} |")
        print("|---:|---:|---:|---:|")
        m = med[side]
        for n in levels:
            print(f"| {n} | {fmt(m[n]['tg_tokens_per_s'])} | {fmt(m[n]['pp_tokens_per_s'])} "
                  f"| {ratio(m[n]['tg_tokens_per_s'], m[base]['tg_tokens_per_s'])} |")
        print(f"\npeak RSS MiB (whole process, max over runs): {side} {peak_mib[side]:.0f}")
    if 1 in levels and 8 in levels:
        for side in sides:
            print(f"{side}: 8 sequences decode {med[side][8]['tg_tokens_per_s'] / med[side][1]['tg_tokens_per_s']:.2f}x "
                  "the tokens/s of 1")
    if args.json:
        print(json.dumps({
            "model": model.name, "npp": args.npp, "ntg": args.ntg, "levels": levels, "threads": args.threads,
            "runs": args.runs, "prompt": args.prompt,
            "llama_cpp_args": {"ctx": args.ctx, "batch": args.batch, "ubatch": args.ubatch,
                               "omp_wait_policy": args.omp_wait_policy},
            "load_average_before": load_start, "load_average_after": os.getloadavg()[0],
            "results": {side: {"median": {str(n): med[side][n] for n in levels},
                               "per_run": [{str(n): r[n] for n in levels} for r in raw[side]],
                               "peak_rss_bytes": rss[side]} for side in sides},
        }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
