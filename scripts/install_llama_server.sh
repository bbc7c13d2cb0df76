#!/usr/bin/env bash
# Installs llama-cpp-python's OpenAI-compatible server into its own virtual environment,
# for the remote-engine tests (tests/remote.rs) and `scripts/bench_remote.py`.
#
#   scripts/install_llama_server.sh [VENV]     # default: $TARJAMA_HOME or ~/.cache/tarjama, /llama-server-venv
#
# Prints the venv's python on stdout. llama.cpp is built from source (about 8 minutes on
# 2 cores) for the instructions this CPU has, with AMX off: on Intel machines with AMX a
# native build crashes as soon as a prompt is processed as a batch.
set -euo pipefail

home="${TARJAMA_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/tarjama}"
venv="${1:-$home/llama-server-venv}"
version="0.3.36"

if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import llama_cpp.server, llama_cpp; assert llama_cpp.__version__ == '$version'" 2>/dev/null; then
  echo "$venv/bin/python"
  exit 0
fi

flags="$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)"
has() { [[ " $flags " == *" $1 "* ]]; }
on() { if has "$1"; then echo ON; else echo OFF; fi; }
cmake_args="-DGGML_NATIVE=OFF -DGGML_AVX=$(on avx) -DGGML_AVX2=$(on avx2) -DGGML_FMA=$(on fma)"
cmake_args+=" -DGGML_F16C=$(on f16c) -DGGML_BMI2=$(on bmi2) -DGGML_AVX_VNNI=$(on avx_vnni)"
cmake_args+=" -DGGML_AVX512=$(on avx512f) -DGGML_AVX512_VBMI=$(on avx512vbmi)"
cmake_args+=" -DGGML_AVX512_VNNI=$(on avx512_vnni) -DGGML_AVX512_BF16=$(on avx512_bf16)"
cmake_args+=" -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
# No multimodal library (the tests serve text models; it is imported only for images),
# which saves a fifth of the build; every core compiles.
cmake_args+=" -DLLAVA_BUILD=OFF"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"

python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip >&2
CMAKE_ARGS="$cmake_args" "$venv/bin/python" -m pip install -q --no-cache-dir \
  "llama-cpp-python[server]==$version" >&2
echo "$venv/bin/python"
