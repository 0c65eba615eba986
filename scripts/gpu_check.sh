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
# else kernel-lens of that Python, else third_party_headers/tensorrt (scripts/setup.sh stages them
# there, so that a lent GPU machine without kernel-lens gets them by carrying that folder). Steps:
#   1. build, for this GPU's architecture only, the host harness (plugin sources + CUDA kernels +
#      cuBLAS, TensorRT's side played by plugins/trt/testing): the later steps need it;
#      then, as a step of its own, the plugin library as DCN_TRT_LINK_NVINFER=OFF builds it
#      (libdcn_trt_plugins_no_nvinfer.so), checked to need no libnvinfer; nothing named
#      libdcn_trt_plugins.so (dcn-plugins --trt must not find it);
#   2. tests/test_*_device.py (test_trt_device.py and the ops' own): every plugin lifecycle step to
#      enqueue on torch CUDA tensors, FP32 and FP16, against the float64 reference (dcn_base/tolerance.py),
#      CUDA graph replay, two execution contexts on two streams;
#   3. benchmarks/bench_plugins_cuda.py (CUDA events): the deformable convolution plugin vs torchvision
#      vs dense cuDNN conv2d, the RoI pooling plugins, multi-scale deformable attention vs grid_sample,
#      the aggregation plugins vs InternImage's grid_sample formulation; it saves after every section;
#   4. compute-sanitizer memcheck, racecheck and initcheck over a small subset of 2.
# The whole run keeps within GPU_CHECK_BUDGET_S seconds (default 480: a lent machine's call is at most
# 600 s and its session's device time 15 minutes, start included): each step runs under `timeout -s INT`
# for at most its own cap and the time left; a step with under 15 s left is not run, and the report says so.
# OUT_DIR gets build.log, tests.log, bench.txt, sanitizer.log (the three tools one after the other) and report.md
# (rewritten after every step, so that a run cut short keeps its results; the benchmark's tables are in it)
# and report.json (at most 8 files, what a lent machine sends back); the report is printed last. Exit 0 all passed, 1 a step failed or was skipped, 2 usage or
# environment (no CUDA device, no nvcc, no TensorRT headers: one line).
# Environment: DCN_PYTHON (default: .venv/bin/python, else python3), CMAKE, GPU_CHECK_BUILD_DIR
# (default build/gpu-check), GPU_CHECK_ARCH (CMake CUDA architectures, default native),
# GPU_CHECK_BUDGET_S, GPU_CHECK_STEPS (which of "tests bench sanitizers" to run after the build, default all:
# a second call on the same machine reuses the build, e.g. GPU_CHECK_STEPS=sanitizers for what a first call's
# budget left out), GPU_CHECK_SKIP_SANITIZER=1, GPU_CHECK_BENCH_ARGS (extra arguments of the benchmark).
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

configure() {
  "$CMAKE" -S plugins/trt -B "$BD/harness" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_COMPILER="$NVCC" \
    -DDCN_CUDA_ARCHITECTURES="${GPU_CHECK_ARCH:-native}" -DDCN_TRT_CHECK_ONLY=ON -DDCN_TRT_HOST_HARNESS=ON \
    -DTensorRT_INCLUDE_DIR="$TRT_INC" -DDCN_PYTHON="$PY"
}
build_harness() {  # the host harness alone: every later step needs it, the no-libnvinfer library does not
  echo "== configure: host harness, native architecture, TensorRT headers $TRT_INC" &&
  configure && "$CMAKE" --build "$BD/harness" -j "$(nproc)" --target dcn_trt_host_harness
}

if [ "$mode" = harness ]; then
  build_harness >"$BD/build.log" 2>&1 || { tail -40 "$BD/build.log" >&2; exit 1; }
  find "$BD/harness" -name libdcn_trt_host_harness.so | head -1
  exit 0
fi

OUT="$1"
mkdir -p "$OUT" || die2 "cannot create OUT_DIR $OUT"
OUT="$(cd "$OUT" && pwd)"
status=()
fail=0
t0=$SECONDS
budget="${GPU_CHECK_BUDGET_S:-480}"
steps=" ${GPU_CHECK_STEPS:-tests bench sanitizers} "
asked() { [[ "$steps" == *" $1 "* ]]; }
gpu="$("$PY" -c "import torch; p = torch.cuda.get_device_properties(0); print(f'{p.name}, sm_{p.major}{p.minor}, {p.multi_processor_count} SMs, {p.total_memory / 2**30:.0f} GiB, torch {torch.__version__}, CUDA {torch.version.cuda}')")"
echo "gpu_check: $gpu (budget ${budget} s)"

report() {  # report.md as it stands: rewritten whole (temporary file, rename) after every step
  {
    echo "# GPU proof kit: $gpu"
    echo
    echo "| step | result | detail |"
    echo "|---|---|---|"
    printf '%s\n' "${status[@]}"
    echo
    [ -f "$OUT/bench.md" ] && cat "$OUT/bench.md"
    echo
    echo "total $((SECONDS - t0)) s of the ${budget} s budget"
  } >"$OUT/.report.md.tmp" && mv -f "$OUT/.report.md.tmp" "$OUT/report.md"
}
step() { status+=("| $1 | $2 | $3 |"); [ "$2" = PASS ] || fail=1; report; }
# limited CAP CMD...: CMD under `timeout -s INT` (pytest then still prints its summary) for CAP seconds or
# the budget's rest, whichever is less; exit 124 when cut, 125 (CMD not run) with under 15 s left
limited() {
  local cap="$1" t
  shift
  t=$((budget - (SECONDS - t0)))
  [ "$t" -gt "$cap" ] && t="$cap"
  [ "$t" -ge 15 ] || return 125
  timeout -s INT -k 15 "$t" "$@"
}
ended() {  # $1 exit status of a limited command: words for the report
  case "$1" in 124|137) echo "cut at its time limit" ;; 125) echo "not run: the budget was spent" ;; *) echo "exit $1" ;; esac
}

# ---- 1. build: the harness (needed by all that follows), then the plugin library without libnvinfer
s=$SECONDS
HARNESS=""
limited 300 bash "$root/scripts/gpu_check.sh" --build-harness >/dev/null 2>&1
rc=$?
cp "$BD/build.log" "$OUT/build.log" 2>/dev/null
if [ $rc -eq 0 ]; then
  HARNESS="$(find "$BD/harness" -name libdcn_trt_host_harness.so | head -1)"
  if [ -z "$HARNESS" ]; then step build FAIL "harness missing after the build (see build.log)"
  elif grep -q "Cannot generate a safe runtime search path" "$OUT/build.log"; then
    step build FAIL "CMake: no safe runtime search path (two directories with the same CUDA libraries; see build.log)"
  else step build PASS "host harness, $((SECONDS - s)) s"; fi
else
  step build FAIL "$(ended $rc) (see build.log)"
  tail -30 "$OUT/build.log" >&2
fi
s=$SECONDS
echo "== build: plugin library without libnvinfer" >>"$OUT/build.log"
limited 120 "$CMAKE" --build "$BD/harness" -j "$(nproc)" --target dcn_trt_plugins_no_nvinfer >>"$OUT/build.log" 2>&1
rc=$?
LIB="$(find "$BD/harness" -name libdcn_trt_plugins_no_nvinfer.so | head -1)"
if [ $rc -ne 0 ] || [ -z "$LIB" ]; then step "library without libnvinfer" FAIL "$(ended $rc) (see build.log)"
elif readelf -d "$LIB" 2>/dev/null | grep -q 'NEEDED.*libnvinfer'; then step "library without libnvinfer" FAIL "$LIB needs libnvinfer"
else
  step "library without libnvinfer" PASS "needs $(readelf -d "$LIB" | sed -n 's/.*NEEDED.*\[\(.*\)\]/\1/p' | tr '\n' ' '), $((SECONDS - s)) s"
fi
export DCN_HARNESS_LIBRARY="$HARNESS"
export PYTHONUNBUFFERED=1

if [ -z "$HARNESS" ]; then
  for st in "device tests" benchmark "sanitizer memcheck" "sanitizer racecheck" "sanitizer initcheck"; do
    step "$st" SKIP "no host harness"
  done
else
  # ---- 2. device tests, within 200 s, in separate processes (a CUDA fault is sticky: it fails every later
  # test of its process): the plugins' lifecycle file on the paths a GPU has run before (the convolution and the
  # pools, issue 20's subject) first, then each other op's file, then the switches' paths no GPU has run yet
  # (pipelined, 3xTF32, nhwc); a test hung in a CUDA call shows its stack after 60 s (faulthandler)
  s=$SECONDS
  if asked tests; then
    tests_end=$((SECONDS + 200))
    : >"$OUT/tests.log"
    groups=("tests/test_trt_device.py|not pipelined and not 3xtf32 and not nhwc")
    for f in tests/test_*_device.py; do [ "$f" = tests/test_trt_device.py ] || groups+=("$f|"); done
    groups+=("tests/test_trt_device.py|pipelined or 3xtf32 or nhwc")
    summaries=()
    trc=0
    for g in "${groups[@]}"; do
      file="${g%%|*}"
      sel="${g#*|}"
      args=("$file" -q -rfEs --tb=short --durations=10 -o faulthandler_timeout=60 -p no:cacheprovider)
      [ -n "$sel" ] && args+=(-k "$sel")
      echo "==== pytest $file${sel:+ -k \"$sel\"}" >>"$OUT/tests.log"
      limited $((tests_end - SECONDS)) "$PY" -m pytest "${args[@]}" >>"$OUT/tests.log" 2>&1
      rc=$?
      if [ $rc -eq 125 ]; then last="$(ended $rc)"
      else
        last="$(tail -1 "$OUT/tests.log")"
        [[ "$last" == "==== pytest"* ]] && last="no summary"
        [ $rc -eq 0 ] || last+=" ($(ended $rc))"
      fi
      summaries+=("$(basename "$file" .py)${sel:+ [$sel]}: $last")
      { [ $rc -eq 0 ] && ! grep -q "skipped" <<<"$last"; } || trc=1
    done
    detail="$(printf '%s; ' "${summaries[@]}")"
    if [ $trc -eq 0 ]; then step "device tests" PASS "${detail%; }, $((SECONDS - s)) s"
    else step "device tests" FAIL "${detail%; } (see tests.log)"; fi
  fi

  # ---- 3. benchmark (bench.md and report.json saved after every section)
  s=$SECONDS
  if asked bench; then
    # shellcheck disable=SC2086
    limited 170 "$PY" benchmarks/bench_plugins_cuda.py --out "$OUT" ${GPU_CHECK_BENCH_ARGS:-} >"$OUT/bench.txt" 2>&1
    rc=$?
    if [ $rc -eq 0 ]; then step benchmark PASS "$((SECONDS - s)) s"
    else step benchmark FAIL "$(ended $rc), $((SECONDS - s)) s (see bench.txt; the sections measured are below)"; fi
  fi

  # ---- 4. compute-sanitizer over a small subset
  SAN="$(command -v compute-sanitizer || true)"
  [ -n "$SAN" ] || { [ -x /usr/local/cuda/bin/compute-sanitizer ] && SAN=/usr/local/cuda/bin/compute-sanitizer; }
  # small: one conv with groups / offset groups / mask / bias, one PS-RoI pool with trans, graph replays
  # (im2col conv, RoI pool), the fused FP16 conv on its partial-tile case; the aggregation ops on an asymmetric
  # case and a misaligned X (scalar and 8-byte vectors) and group_channels 32 (the 16-byte and wider vectors);
  # multi-scale deformable attention's split kernel (its partial sums in shared memory) and plain kernel;
  # the convolution switches' paths (pipelined, 3xTF32, nhwc) in those cases, in a pass of their own
  subset="sweep and (k3x2-asym or ps3-classes2-part2 or k3x5-asym-os2) and fp32 or graph and (conv or roi)"
  subset+=" or conv_fused_path and basic or misaligned_x and fp16 or split_kernel and small or sweep and g1-cg32"
  rm -f "$OUT/sanitizer.log"
  for tool in memcheck racecheck initcheck; do
    asked sanitizers || continue
    if [ "${GPU_CHECK_SKIP_SANITIZER:-0}" = 1 ]; then step "sanitizer $tool" SKIP "GPU_CHECK_SKIP_SANITIZER=1"; continue; fi
    if [ -z "$SAN" ]; then step "sanitizer $tool" FAIL "compute-sanitizer not found"; continue; fi
    s=$SECONDS
    extra=()
    # (initcheck's unused-memory tracking is off by default; CUDA 13's compute-sanitizer takes
    # --track-unused-memory as a switch, so "--track-unused-memory no" made "no" the program)
    [ "$tool" = memcheck ] && extra=(--leak-check no)
    # two processes (a CUDA fault is sticky, and -x stops at it): the paths a GPU has run first, then the
    # switches' paths no GPU has run yet, so that a fault there cannot cut the first pass's coverage
    rc=0
    notes=()
    for pass in "run before|not (pipelined or 3xtf32 or nhwc)|60" "never run|pipelined or 3xtf32 or nhwc|30"; do
      IFS='|' read -r what sel cap <<<"$pass"
      DCN_UNDER_SANITIZER=1 limited "$cap" "$SAN" --tool "$tool" "${extra[@]}" --error-exitcode 99 --print-limit 20 \
        "$PY" -m pytest tests/test_*_device.py -q -x -p no:cacheprovider -k "($subset) and ($sel)" \
        >"$OUT/.sanitizer.tmp" 2>&1
      prc=$?
      errs="$(grep -m1 -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/.sanitizer.tmp" || echo "no summary")"
      [ $prc -eq 125 ] || { echo "==== compute-sanitizer --tool $tool, paths $what (exit $prc)"
                            cat "$OUT/.sanitizer.tmp"; } >>"$OUT/sanitizer.log"
      rm -f "$OUT/.sanitizer.tmp"
      if [ $prc -eq 0 ]; then notes+=("$what: $errs"); else notes+=("$what: $errs ($(ended $prc))"); fi
      [ $rc -ne 0 ] || rc=$prc
    done
    if [ $rc -eq 0 ]; then step "sanitizer $tool" PASS "${notes[0]}; ${notes[1]}; $((SECONDS - s)) s"
    else step "sanitizer $tool" FAIL "${notes[0]}; ${notes[1]} (see sanitizer.log)"; fi
  done
fi

report
[ "$fail" = 0 ] && rm -f "$OUT/bench.txt"
rm -f "$OUT/bench.md"
cat "$OUT/report.md"
exit $fail
