#!/usr/bin/env bash
# Create .venv/ at the repository root and install InPars Lab with pinned dependencies.
# Idempotent: a stamp records what was installed; rerunning with unchanged pins does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3.11}"
if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "setup: $PYTHON not found; InPars Lab needs Python 3.11 (set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi

# System packages (Debian): only when running as root with apt, and only what is missing.
APT_PACKAGES=(${INPARS_APT_PACKAGES:-chromium})
if [ ${#APT_PACKAGES[@]} -gt 0 ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  missing=()
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  fi
fi

stamp_value=$(cat requirements.txt constraints.txt pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
stamp=.venv/.inpars-installed
if [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$stamp_value" ]; then
  echo "setup: .venv is up to date"
  exit 0
fi

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first and alone, so nothing else can pull a CUDA build.
.venv/bin/python -m pip install -q "torch==2.13.0"
# llama-cpp-python compiles from source the first time (~10-15 min on 2 cores); pip caches it.
.venv/bin/python -m pip install -q -r requirements.txt -c constraints.txt
.venv/bin/python -m pip install -q --no-deps -e .
echo "$stamp_value" > "$stamp"
echo "setup: done (.venv ready)"
