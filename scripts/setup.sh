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
  # numpy < 2: nvidia-pytriton 0.7 (dcn-serve) needs it; its Python backend fails under numpy 2
  pip install -q --disable-pip-version-check \
    "torch==2.14.1" "torchvision==0.29.1" \
    "numpy<2" onnx onnxscript onnxruntime polygraphy "onnxconverter-common>=1.14" \
    nvidia-pytriton \
    pytest matplotlib "transformers>=5" \
    tqdm \
    "scikit-build-core>=0.10" "cmake>=3.25" ninja \
    cuda-python kernel-lens
  echo "$want" > "$stamp"
fi

# mmcv with its C++ CPU ops (and mmdetection), for the tests against the real libraries
# (tests/test_mmcv_real.py, tests/test_mmdet_real.py):
# the prebuilt wheel in ../shared/wheels/ when present (building mmcv takes ~21 minutes), installed
# --no-deps so that pip never swaps torch; its own dependencies on a separate line. Without the
# wheel (a user's machine) the tests that need mmcv skip and name the missing wheel.
mmcv_wheel="$(ls "${DCN_WHEELS_DIR:-$root/../shared/wheels}"/mmcv-*.whl 2>/dev/null | head -n 1 || true)"
if [ -n "$mmcv_wheel" ]; then
  mmcv_stamp="$VENV/.dcn-mmcv-stamp"
  mmcv_want="$( (echo "$want $mmcv_wheel"; sha256sum "$mmcv_wheel") | sha256sum | cut -d' ' -f1)"  # this script + the wheel
  if [ ! -f "$mmcv_stamp" ] || [ "$(cat "$mmcv_stamp")" != "$mmcv_want" ]; then
    log "installing mmcv (CPU ops) from $mmcv_wheel"
    pip install -q --disable-pip-version-check \
      "numpy<2" "mmengine>=0.10,<0.11" addict yapf opencv-python-headless packaging pillow pyyaml \
      pycocotools scipy shapely six terminaltables tqdm
    pip install -q --disable-pip-version-check --no-deps "$mmcv_wheel"
    # mmdetection, for its DCN configs (tests/test_mmdet_real.py): --no-deps, since it pins mmcv < 2.2.0
    # (the tests lower mmcv's version string while importing it); its dependencies are on the line above
    pip install -q --disable-pip-version-check --no-deps "mmdet==3.3.0"
    echo "$mmcv_want" > "$mmcv_stamp"
  fi
else
  log "no mmcv wheel in ${DCN_WHEELS_DIR:-../shared/wheels/}: the tests against the real mmcv / mmdet will skip"
fi

# TensorRT's headers (kernel-lens) copied to third_party_headers/tensorrt: a lent GPU machine has no kernel-lens,
# and scripts/gpu_check.sh finds them there when that folder is carried along (README "GPU machine")
# (copied on every run: 0.8 MB, and never stale after a kernel-lens upgrade)
DCN_PYTHON="$VENV/bin/python" bash scripts/gpu_check.sh --stage-headers >/dev/null \
  || log "TensorRT headers not staged in third_party_headers/tensorrt (the GPU kit needs them on a GPU machine)"

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
