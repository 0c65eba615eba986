#!/usr/bin/env bash
# GPU proof kit: the plugins' real enqueue on a CUDA device, without TensorRT, in one command.
#
#   bash scripts/gpu_check.sh OUT_DIR            on a machine with an NVIDIA GPU
#   bash scripts/gpu_check.sh --build-harness    only build the device harness, print its path
#   bash scripts/gpu_check.sh --stage-headers    copy TensorRT headers (kernel-lens) to
#                                                third_party_headers/tensorrt (to carry them along)
#
# Needs nvcc, CMake (ninja if present), a Python with torch (CUDA), numpy, pytest; torchvision
# for its deformable convolution column; TensorRT headers only (no TensorRT library): TensorRT_INCLUDE_DIR,
# else kernel-lens of that Python, else third_party_headers/tensorrt. Steps:
#   1. build, for this GPU's architecture only: the host harness (plugin sources + CUDA kernels +
#      cuBLAS, TensorRT's side played by plugins/trt/testing) and the plugin library as
#      DCN_TRT_LINK_NVINFER=OFF builds it (libdcn_trt_plugins_no_nvinfer.so), checked to need no
#      libnvinfer; nothing named libdcn_trt_plugins.so (dcn-plugins --trt must not find it);
#   2. tests/test_*_device.py (every op's device tests): every plugin lifecycle step to enqueue on torch CUDA tensors,
#      FP32 and FP16, against the float64 reference (dcn_base/tolerance.py), CUDA graph replay,
#      two execution contexts on two streams;
#   3. compute-sanitizer memcheck, racecheck and initcheck over a small subset of 2.;
#   4. benchmarks/bench_plugins_cuda.py (CUDA events): the deformable convolution plugin vs torchvision
#      vs dense cuDNN conv2d, the PS-RoI pooling plugin on the R-FCN head, the aggregation plugins vs
#      InternImage's grid_sample formulation.
# OUT_DIR gets build.log, tests.log, sanitizer-{memcheck,racecheck,initcheck}.log, report.md and
# report.json; the table is printed last. Exit 0 all passed, 1 a step failed, 2 usage or
# environment (no CUDA device, no nvcc, no TensorRT headers: one line).
# Environment: DCN_PYTHON (default: .venv/bin/python, else python3), CMAKE, GPU_CHECK_BUILD_DIR
# (default build/gpu-check), GPU_CHECK_ARCH (CMake CUDA architectures, default native),
# GPU_CHECK_SKIP_SANITIZER=1, GPU_CHECK_BENCH_ARGS (extra arguments of the benchmark).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
die2() { printf 'gpu_check: %s\n' "$*" >&2; exit 2; }

mode=run
case "${1:-}" in
  --build-harness) mode=harness ;;
  --stage-headers) mode=stage ;;
  ""|-h|--help) die2 "usage: bash scripts/gpu_check.sh OUT_DIR | --build-harness | --stage-headers" ;;
  -*) die2 "unknown option ${1}; usage: bash scripts/gpu_check.sh OUT_DIR | --build-harness | --stage-headers" ;;
esac

if [ -n "${DCN_PYTHON:-}" ]; then PY="$DCN_PYTHON";
elif [ -x "$root/.venv/bin/python" ]; then PY="$root/.venv/bin/python";
else PY="$(command -v python3 || true)"; fi
[ -n "$PY" ] || die2 "no Python found (set DCN_PYTHON)"

kl_headers() {
  "$PY" -c "import importlib.util as u, pathlib as p; s = u.find_spec('kernel_lens'); d = p.Path(s.origin).parent / 'include' / 'tensorrt'; print(d if (d / 'NvInferRuntime.h').is_file() else '')" 2>/dev/null
}

if [ "$mode" = stage ]; then
  src="${TensorRT_INCLUDE_DIR:-$(kl_headers)}"
  [ -n "$src" ] && [ -f "$src/NvInferRuntime.h" ] || die2 "no TensorRT headers to stage (pip install kernel-lens, or set TensorRT_INCLUDE_DIR)"
  mkdir -p third_party_headers/tensorrt
  cp "$src"/*.h third_party_headers/tensorrt/
  echo "$root/third_party_headers/tensorrt ($(du -sh third_party_headers/tensorrt | cut -f1))"
  exit 0
fi

# ---- environment: one line each, exit 2
"$PY" -c "import torch" 2>/dev/null || die2 "torch not importable by $PY (set DCN_PYTHON to a Python with torch)"
why="$("$PY" -c "import torch; print('' if torch.cuda.is_available() else f'torch {torch.__version__}: torch.cuda.is_available() is False')" 2>&1 | tail -1)"
[ -z "$why" ] || die2 "no CUDA device ($why)"
NVCC="${CUDACXX:-$(command -v nvcc || true)}"
[ -n "$NVCC" ] || { [ -x /usr/local/cuda/bin/nvcc ] && NVCC=/usr/local/cuda/bin/nvcc; }
[ -n "$NVCC" ] || die2 "nvcc not found (install the CUDA toolkit or set CUDACXX)"
CMAKE="${CMAKE:-$(command -v cmake || true)}"
[ -n "$CMAKE" ] || { [ -x "$root/.venv/bin/cmake" ] && CMAKE="$root/.venv/bin/cmake"; }
[ -n "$CMAKE" ] || die2 "cmake not found (set CMAKE)"
TRT_INC="${TensorRT_INCLUDE_DIR:-}"
[ -n "$TRT_INC" ] || TRT_INC="$(kl_headers)"
[ -n "$TRT_INC" ] || { [ -f "$root/third_party_headers/tensorrt/NvInferRuntime.h" ] && TRT_INC="$root/third_party_headers/tensorrt"; }
[ -n "$TRT_INC" ] && [ -f "$TRT_INC/NvInferRuntime.h" ] || die2 "TensorRT headers not found (TensorRT_INCLUDE_DIR, kernel-lens in $PY, or third_party_headers/tensorrt: bash scripts/gpu_check.sh --stage-headers where kernel-lens is installed)"
GEN=()
command -v ninja >/dev/null 2>&1 && GEN=(-G Ninja)
BD="${GPU_CHECK_BUILD_DIR:-$root/build/gpu-check}"
mkdir -p "$BD"

build() {  # $1 log file
  local log="$1"
  {
    echo "== configure: host harness, native architecture, TensorRT headers $TRT_INC"
    "$CMAKE" -S plugins/trt -B "$BD/harness" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_COMPILER="$NVCC" \
      -DDCN_CUDA_ARCHITECTURES="${GPU_CHECK_ARCH:-native}" -DDCN_TRT_CHECK_ONLY=ON -DDCN_TRT_HOST_HARNESS=ON \
      -DTensorRT_INCLUDE_DIR="$TRT_INC" -DDCN_PYTHON="$PY" &&
    "$CMAKE" --build "$BD/harness" -j "$(nproc)" --target dcn_trt_host_harness dcn_trt_plugins_no_nvinfer
  } >"$log" 2>&1
}

if [ "$mode" = harness ]; then
  build "$BD/build.log" || { tail -40 "$BD/build.log" >&2; exit 1; }
  find "$BD/harness" -name libdcn_trt_host_harness.so | head -1
  exit 0
fi

OUT="$1"
mkdir -p "$OUT" || die2 "cannot create OUT_DIR $OUT"
OUT="$(cd "$OUT" && pwd)"
status=()
fail=0
step() { status+=("| $1 | $2 | $3 |"); [ "$2" = PASS ] || fail=1; }
t0=$SECONDS
gpu="$("$PY" -c "import torch; p = torch.cuda.get_device_properties(0); print(f'{p.name}, sm_{p.major}{p.minor}, torch {torch.__version__}, CUDA {torch.version.cuda}')")"
echo "gpu_check: $gpu"

# ---- 1. build
s=$SECONDS
if build "$OUT/build.log"; then
  HARNESS="$(find "$BD/harness" -name libdcn_trt_host_harness.so | head -1)"
  LIB="$(find "$BD/harness" -name libdcn_trt_plugins_no_nvinfer.so | head -1)"
  if [ -z "$LIB" ] || [ -z "$HARNESS" ]; then
    step build FAIL "harness or plugin library missing after the build (see build.log)"
  elif readelf -d "$LIB" 2>/dev/null | grep -q 'NEEDED.*libnvinfer'; then
    step build FAIL "$LIB needs libnvinfer"
  elif grep -q "Cannot generate a safe runtime search path" "$OUT/build.log"; then
    step build FAIL "CMake: no safe runtime search path (two directories with the same CUDA libraries; see build.log)"
  else
    step build PASS "harness + plugin library without libnvinfer (needs $(readelf -d "$LIB" | sed -n 's/.*NEEDED.*\[\(.*\)\]/\1/p' | tr '\n' ' ')), $((SECONDS - s)) s"
  fi
else
  step build FAIL "see build.log"
  tail -30 "$OUT/build.log" >&2
  HARNESS=""
fi
export DCN_HARNESS_LIBRARY="$HARNESS"
export PYTHONUNBUFFERED=1

# ---- 2. device tests
if [ -n "$HARNESS" ]; then
  s=$SECONDS
  "$PY" -m pytest tests/test_*_device.py -q -rs -p no:cacheprovider >"$OUT/tests.log" 2>&1
  rc=$?
  summary="$(tail -1 "$OUT/tests.log")"
  if [ $rc -eq 0 ] && ! grep -q "skipped" <<<"$summary"; then step "device tests" PASS "$summary, $((SECONDS - s)) s"
  else step "device tests" FAIL "$summary (exit $rc; see tests.log)"; fi

  # ---- 3. compute-sanitizer over a small subset
  SAN="$(command -v compute-sanitizer || true)"
  [ -n "$SAN" ] || { [ -x /usr/local/cuda/bin/compute-sanitizer ] && SAN=/usr/local/cuda/bin/compute-sanitizer; }
  # small: one conv with groups / offset groups / mask / bias, one PS-RoI pool with trans, graph replays
  # (im2col conv, RoI pool), the fused FP16 conv on its partial-tile case; the aggregation ops on an asymmetric
  # case (vector path) and their scalar path
  subset="sweep and (k3x2-asym or ps3-classes2-part2 or k3x5-asym-os2) and fp32 or graph and (conv or roi)"
  subset+=" or conv_fused_path and basic or misaligned_x and fp16"
  for tool in memcheck racecheck initcheck; do
    if [ "${GPU_CHECK_SKIP_SANITIZER:-0}" = 1 ]; then step "sanitizer $tool" SKIP "GPU_CHECK_SKIP_SANITIZER=1"; fail=1; continue; fi
    if [ -z "$SAN" ]; then step "sanitizer $tool" FAIL "compute-sanitizer not found"; continue; fi
    s=$SECONDS
    extra=()
    # (initcheck's unused-memory tracking is off by default; CUDA 13's compute-sanitizer takes
    # --track-unused-memory as a switch, so "--track-unused-memory no" made "no" the program)
    [ "$tool" = memcheck ] && extra=(--leak-check no)
    DCN_UNDER_SANITIZER=1 timeout 120 "$SAN" --tool "$tool" "${extra[@]}" --error-exitcode 99 --print-limit 20 \
      "$PY" -m pytest tests/test_*_device.py -q -x -p no:cacheprovider -k "$subset" >"$OUT/sanitizer-$tool.log" 2>&1
    rc=$?
    errs="$(grep -m1 -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/sanitizer-$tool.log" || echo "no summary")"
    if [ $rc -eq 0 ]; then step "sanitizer $tool" PASS "$errs, $((SECONDS - s)) s"
    else step "sanitizer $tool" FAIL "$errs (exit $rc; see sanitizer-$tool.log)"; fi
  done
fi

# ---- 4. benchmark
s=$SECONDS
# shellcheck disable=SC2086
if [ -n "$HARNESS" ] && "$PY" benchmarks/bench_plugins_cuda.py --out "$OUT" ${GPU_CHECK_BENCH_ARGS:-} >"$OUT/bench.txt" 2>&1; then
  step benchmark PASS "$((SECONDS - s)) s"
else
  step benchmark FAIL "see bench output"
  [ -f "$OUT/bench.txt" ] && tail -20 "$OUT/bench.txt" >&2
fi

{
  echo "# GPU proof kit: $gpu"
  echo
  echo "| step | result | detail |"
  echo "|---|---|---|"
  printf '%s\n' "${status[@]}"
  echo
  [ -f "$OUT/bench.md" ] && cat "$OUT/bench.md"
  echo
  echo "total $((SECONDS - t0)) s"
} >"$OUT/report.md"
rm -f "$OUT/bench.md"
[ "$fail" = 0 ] && rm -f "$OUT/bench.txt"
cat "$OUT/report.md"
exit $fail
