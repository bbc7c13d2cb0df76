#!/usr/bin/env bash
# tarjama against an OpenAI-compatible server: a folder translated at --parallel 1, 4 and
# 8, with sentences/s and tarjama's own time per request (what `--json` reports as
# remote.client_overhead_us: the time spent building requests and reading and checking
# streams, the wait for the server excluded).
#
#   scripts/bench_remote.sh ENDPOINT MODEL FOLDER [TARJAMA]
#
# What the server does with concurrency is the server's (llama-cpp-python answers one
# request at a time; llama-server -np N and vLLM batch them).
set -euo pipefail
endpoint="${1:?usage: bench_remote.sh ENDPOINT MODEL FOLDER [TARJAMA]}"
model="${2:?model}"
input="${3:?folder}"
bin="${4:-target/release/tarjama}"
for p in 1 4 8; do
  out="$(mktemp -d)"
  "$bin" translate --endpoint "$endpoint" --model "$model" --max-context 4096 \
    --parallel "$p" --quiet --no-cache --json "$input" -o "$out" |
    tail -n 1 |
    python3 -c "
import json, sys
s = json.load(sys.stdin)
r = s['remote']
print(f\"parallel $p: {s['sentences']} sentences in {s['seconds']:.1f} s = \"
      f\"{s['sentences_per_second']:.3f} sentences/s, {r['requests']} requests, \"
      f\"{r['retries']['connection'] + r['retries']['timeout']} retries, \"
      f\"tarjama's own time {r['client_overhead_us']:.0f} us/request\")"
  rm -rf "$out"
done
