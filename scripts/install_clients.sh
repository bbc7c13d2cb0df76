#!/usr/bin/env bash
# Installs the clients that `tarjama serve` is tested with, none of them written here:
# the `openai` Python client, the LibreTranslate client `libretranslatepy`, and Selenium
# (which drives Debian's chromium through chromium-driver for the page test), into a
# virtual environment of their own; and, on Debian, the chromium and chromium-driver
# packages.
#
#   scripts/install_clients.sh [VENV]     # default: $TARJAMA_HOME or ~/.cache/tarjama, /client-venv
#
# Prints the venv's python on stdout (tests read it from $TARJAMA_CLIENT_PYTHON).
set -euo pipefail

home="${TARJAMA_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/tarjama}"
venv="${1:-$home/client-venv}"
packages=("openai==1.109.1" "libretranslatepy==2.1.4" "selenium==4.35.0")

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  if command -v apt-get >/dev/null; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 \
      || { $sudo apt-get update -qq >/dev/null && $sudo apt-get install -y -qq chromium chromium-driver >/dev/null; } \
      || echo "note: could not install chromium and chromium-driver" >&2
  fi
fi

check="import openai, libretranslatepy, selenium; assert openai.__version__ == '${packages[0]#openai==}'"
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "$check" 2>/dev/null; then
  echo "$venv/bin/python"
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip >&2
"$venv/bin/python" -m pip install -q "${packages[@]}" >&2
echo "$venv/bin/python"
