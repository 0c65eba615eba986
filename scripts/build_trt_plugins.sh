#!/usr/bin/env bash
# One command, on a GPU machine with the CUDA toolkit (nvcc) and TensorRT 10 or 11:
#   bash scripts/build_trt_plugins.sh [TensorRT_ROOT]
# builds libdcn_trt_plugins.so (plugins/trt + plugins/cuda) and installs it to
# trt_runtime/lib/, where trt_runtime.plugins.trt_library() / `dcn-plugins --trt` find it.
#
# TensorRT: TensorRT_ROOT (argument or environment; a tar/zip install with include/ and
# lib/), else the system's (Debian/Ubuntu libnvinfer-dev), else the `tensorrt` wheel's
# libraries of the Python below with kernel-lens' TensorRT 10.14 headers (same major).
# Environment: DCN_CUDA_ARCHITECTURES (default auto: sm_75..sm_120 as nvcc allows; "native"
# builds only for this machine's GPU, faster), DCN_TRT_LINK_NVINFER=OFF (no libnvinfer link: for
# version-compatible engines / the lean runtime; registered through loadLibrary only), DCN_PYTHON,
# CMAKE, JOBS, BUILD_DIR.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if [ -n "${DCN_PYTHON:-}" ]; then PY="$DCN_PYTHON";
elif [ -x "$root/.venv/bin/python" ]; then PY="$root/.venv/bin/python";
else PY="$(command -v python3)"; fi
if [ -z "${CMAKE:-}" ]; then
  if [ -x "$root/.venv/bin/cmake" ]; then CMAKE="$root/.venv/bin/cmake"; else CMAKE="$(command -v cmake)"; fi
fi
build="${BUILD_DIR:-$root/build/trt}"
args=(-DCMAKE_BUILD_TYPE=Release -DDCN_PYTHON="$PY")
trt_root="${1:-${TensorRT_ROOT:-}}"
[ -n "$trt_root" ] && args+=(-DTensorRT_ROOT="$trt_root")
[ -n "${DCN_CUDA_ARCHITECTURES:-}" ] && args+=(-DDCN_CUDA_ARCHITECTURES="$DCN_CUDA_ARCHITECTURES")
[ -n "${DCN_TRT_LINK_NVINFER:-}" ] && args+=(-DDCN_TRT_LINK_NVINFER="$DCN_TRT_LINK_NVINFER")
command -v ninja >/dev/null 2>&1 && args+=(-G Ninja)
"$CMAKE" -S plugins/trt -B "$build" "${args[@]}"
"$CMAKE" --build "$build" -j "${JOBS:-$(nproc)}"
"$CMAKE" --install "$build" --prefix "$root"
echo "$root/trt_runtime/lib/libdcn_trt_plugins.so"
