#!/usr/bin/env bash
# One set-up command for a fresh machine (Python 3.11, no GPU needed):
#   creates .venv, installs the Python dependencies (torch 2.14.1 / torchvision 0.29.1
#   come from the machine's local wheel store), fetches ONNX Runtime's C/C++ headers,
#   and builds the C++ libraries through the package build (pip install -e .).
# Idempotent: a second run only checks and rebuilds what changed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
PY="${DCN_PYTHON:-python3}"
VENV="$root/.venv"
log() { printf '[setup] %s\n' "$*" >&2; }

if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  "$PY" -m venv "$VENV"
fi
pip() { "$VENV/bin/python" -m pip "$@"; }

stamp="$VENV/.dcn-deps-stamp"
want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  log "installing Python dependencies (torch is large; the first run takes minutes)"
  pip install -q --disable-pip-version-check \
    "torch==2.14.1" "torchvision==0.29.1" \
    numpy onnx onnxscript onnxruntime polygraphy "onnxconverter-common>=1.14" \
    pytest matplotlib \
    "scikit-build-core>=0.10" "cmake>=3.25" ninja \
    cuda-python kernel-lens
  echo "$want" > "$stamp"
fi

# ONNX Runtime C/C++ headers (no wheel carries them): see scripts/get_onnxruntime_headers.sh
if [ -z "${ONNXRUNTIME_INCLUDE_DIR:-}" ]; then
  ONNXRUNTIME_INCLUDE_DIR="$(bash scripts/get_onnxruntime_headers.sh)"
  export ONNXRUNTIME_INCLUDE_DIR
fi
log "ONNX Runtime headers: $ONNXRUNTIME_INCLUDE_DIR"

# The package build (scikit-build-core + CMake) is redone only when its inputs changed.
build_stamp="$VENV/.dcn-build-stamp"
build_want="$( (cat pyproject.toml; echo "$ONNXRUNTIME_INCLUDE_DIR"; find plugins -type f | LC_ALL=C sort | xargs cat) | sha256sum | cut -d' ' -f1)"
if [ ! -f "$build_stamp" ] || [ "$(cat "$build_stamp")" != "$build_want" ] \
   || ! "$VENV/bin/python" -c "import trt_runtime.plugins as p; p.ort_library()" >/dev/null 2>&1; then
  log "building the package and its C++ libraries (pip install -e .)"
  pip install -q --disable-pip-version-check --no-build-isolation --no-deps -e . \
    -Ccmake.define.ONNXRUNTIME_INCLUDE_DIR="$ONNXRUNTIME_INCLUDE_DIR"
  echo "$build_want" > "$build_stamp"
else
  log "package and C++ libraries up to date"
fi
log "done: activate with 'source .venv/bin/activate'"
