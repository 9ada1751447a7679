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
# llama-cpp-python compiles from source (~10 min on 2 cores). Not with -march=native: on CPUs that
# report AMX (Intel Sapphire Rapids) but run where its tiles are unusable (some VMs), a native
# build dies with SIGILL in ggml's AMX kernels. We build for x86-64-v3, plus AVX-512 when the CPU
# has it, no AMX, once per (version, flags), into our own wheel cache; pip's own wheel cache does
# not key on CMAKE_ARGS, so it could hand back a native build.
llama_version=$(grep -i '^llama[-_]cpp[-_]python==' constraints.txt | head -1 | cut -d= -f3)
cmake_args="-DGGML_NATIVE=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
if [ "$(uname -m)" = x86_64 ] && [ -r /proc/cpuinfo ]; then
  flags=$(grep -m1 '^flags' /proc/cpuinfo)
  for pair in avx512f:GGML_AVX512 avx512vbmi:GGML_AVX512_VBMI avx512_vnni:GGML_AVX512_VNNI \
              avx512_bf16:GGML_AVX512_BF16; do
    case " $flags " in *" ${pair%%:*} "*) cmake_args="$cmake_args -D${pair#*:}=ON" ;; esac
  done
fi
wheel_dir="${INPARS_WHEEL_CACHE:-$HOME/.cache/inpars-lab/wheels}/llama-cpp-python-$llama_version-$(echo "$cmake_args" | sha256sum | cut -c1-12)"
if ! ls "$wheel_dir"/llama_cpp_python-*.whl >/dev/null 2>&1; then
  echo "setup: compiling llama-cpp-python $llama_version ($cmake_args), about 10 minutes"
  rm -rf "$wheel_dir.tmp"
  CMAKE_ARGS="$cmake_args" .venv/bin/python -m pip wheel -q --no-deps --no-cache-dir \
    --no-binary llama-cpp-python "llama-cpp-python==$llama_version" -w "$wheel_dir.tmp"
  rm -rf "$wheel_dir" && mv "$wheel_dir.tmp" "$wheel_dir"
fi
.venv/bin/python -m pip install -q --force-reinstall --no-deps --no-index \
  --find-links "$wheel_dir" "llama-cpp-python==$llama_version"
.venv/bin/python -m pip install -q -r requirements.txt -c constraints.txt
.venv/bin/python -m pip install -q --no-deps -e .
echo "$stamp_value" > "$stamp"
echo "setup: done (.venv ready)"
