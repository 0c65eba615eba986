#!/usr/bin/env bash
# Compile checks of the CUDA kernels and TensorRT plugins, without a GPU or TensorRT's
# library (CI; tests/test_cuda_compile.py and tests/test_trt_contract.py call this).
#
#   1. plugins/cuda: every .cu for every architecture (one nvcc call per file, all archs)
#      with -Xptxas -v; scripts/ptxas_report.py writes the register / spill table and
#      FAILS on spills (or a stack frame) in the hot kernels or a missing architecture.
#   2. plugins/trt: every plugin source compiled (-Wall -Wextra -Werror) against real
#      TensorRT headers (PyPI's kernel-lens ships TensorRT 10.14's; TensorRT_INCLUDE_DIR
#      overrides), plus the host harness library for tests/test_trt_contract.py.
#   3. optionally the same plugin sources against more header sets:
#      DCN_TRT_EXTRA_INCLUDE_DIRS=/path/to/trt11/include[:...]  (e.g. TensorRT 11).
#
# Incremental: the build dir (DCN_CHECK_BUILD_DIR, default build/cuda-check) is kept and
# each object's ptxas report is kept beside it, so a second run only rebuilds what changed.
# Environment: DCN_CHECK_ARCHS (default: 75 80 86 89 90 100 103 110 120 121 where nvcc
# supports them), DCN_CHECK_JOBS (default 2), DCN_PYTHON, CMAKE, DCN_CHECK_SKIP_TRT=1 (only
# step 1, e.g. without TensorRT headers), TensorRT_INCLUDE_DIR (headers for step 2).
# Outputs in the build dir: ptxas_table.md, ptxas.json, harness_path.txt, trt_checked.txt.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
log() { printf '[check_cuda_build] %s\n' "$*" >&2; }
die() { printf '[check_cuda_build] FAIL: %s\n' "$*" >&2; exit 1; }

BD="${DCN_CHECK_BUILD_DIR:-$root/build/cuda-check}"
JOBS="${DCN_CHECK_JOBS:-2}"
if [ -n "${DCN_PYTHON:-}" ]; then PY="$DCN_PYTHON";
elif [ -x "$root/.venv/bin/python" ]; then PY="$root/.venv/bin/python";
else PY="$(command -v python3)"; fi
if [ -n "${CMAKE:-}" ]; then :;
elif [ -x "$root/.venv/bin/cmake" ]; then CMAKE="$root/.venv/bin/cmake";
else CMAKE="$(command -v cmake || true)"; fi
[ -n "$CMAKE" ] || die "cmake not found (pip install cmake, or set CMAKE)"
GEN=()
if command -v ninja >/dev/null 2>&1 || [ -x "$root/.venv/bin/ninja" ]; then
  GEN=(-G Ninja)
  [ -x "$root/.venv/bin/ninja" ] && GEN+=(-DCMAKE_MAKE_PROGRAM="$root/.venv/bin/ninja")
fi

NVCC="${CUDACXX:-$(command -v nvcc || true)}"
[ -n "$NVCC" ] || { [ -x /usr/local/cuda/bin/nvcc ] && NVCC=/usr/local/cuda/bin/nvcc; }
[ -n "$NVCC" ] || die "nvcc not found (install the CUDA toolkit or set CUDACXX)"

# Architectures: the wanted ones this nvcc supports.
supported="$("$NVCC" --list-gpu-arch 2>/dev/null | sed -n 's/^compute_\([0-9]*\)$/\1/p' | tr '\n' ' ')"
archs=()
for a in ${DCN_CHECK_ARCHS:-75 80 86 89 90 100 103 110 120 121}; do
  case " $supported " in *" $a "*) archs+=("$a") ;; *) log "nvcc does not support sm_$a: skipped" ;; esac
done
[ "${#archs[@]}" -gt 0 ] || die "nvcc supports none of the requested architectures (${DCN_CHECK_ARCHS:-default})"
cmake_archs="$(printf '%s-real;' "${archs[@]}")"
cmake_archs="${cmake_archs%;}"
expect="$(IFS=,; echo "${archs[*]}")"
mkdir -p "$BD"

# ---- 1. CUDA kernels, all architectures, ptxas report
log "CUDA kernels for sm_${archs[*]} ($("$NVCC" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'))"
"$CMAKE" -S plugins/cuda -B "$BD/cuda" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CUDA_COMPILER="$NVCC" -DDCN_CUDA_ARCHITECTURES="$cmake_archs" \
  -DDCN_PTXAS_VERBOSE=ON -DDCN_PTXAS_LOG_DIR="$BD/ptxas" >"$BD/cuda-configure.log" 2>&1 \
  || { cat "$BD/cuda-configure.log" >&2; die "configuring plugins/cuda"; }
"$CMAKE" --build "$BD/cuda" -j "$JOBS" >"$BD/cuda-build.log" 2>&1 \
  || { tail -50 "$BD/cuda-build.log" >&2; die "compiling plugins/cuda"; }
"$PY" scripts/ptxas_report.py "$BD/ptxas" --expect-archs "$expect" --json "$BD/ptxas.json" >"$BD/ptxas_table.md" \
  || { cat "$BD/ptxas_table.md"; die "ptxas report: spills or missing architectures (see above)"; }
cat "$BD/ptxas_table.md"

if [ "${DCN_CHECK_SKIP_TRT:-0}" = "1" ]; then
  log "OK: kernels for sm_${archs[*]} without spills (TensorRT steps skipped: DCN_CHECK_SKIP_TRT=1)"
  exit 0
fi

# ---- 2. TensorRT plugins against TensorRT headers + the host harness
trt_args=(-DDCN_TRT_CHECK_ONLY=ON -DDCN_TRT_HOST_HARNESS=ON -DDCN_PYTHON="$PY")
[ -n "${TensorRT_INCLUDE_DIR:-}" ] && trt_args+=(-DTensorRT_INCLUDE_DIR="$TensorRT_INCLUDE_DIR")
log "TensorRT plugin sources + host harness"
"$CMAKE" -S plugins/trt -B "$BD/trt" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_COMPILER="$NVCC" \
  -DDCN_CUDA_ARCHITECTURES="${archs[0]}-real" "${trt_args[@]}" >"$BD/trt-configure.log" 2>&1 \
  || { cat "$BD/trt-configure.log" >&2; die "configuring plugins/trt (TensorRT headers: see above)"; }
"$CMAKE" --build "$BD/trt" -j "$JOBS" >"$BD/trt-build.log" 2>&1 \
  || { grep -E "error|Error" "$BD/trt-build.log" | head -40 >&2; die "compiling plugins/trt against TensorRT headers"; }
sed -n 's/^-- dcn: \(TensorRT .* headers: .*\)$/\1/p' "$BD/trt-configure.log" | tee "$BD/trt_checked.txt" >&2
harness="$(find "$BD/trt" -name 'libdcn_trt_host_harness.so' | head -1)"
[ -n "$harness" ] || die "host harness library not built"
echo "$harness" >"$BD/harness_path.txt"

# ---- 3. more TensorRT header sets (e.g. TensorRT 11), plugin sources only
if [ -n "${DCN_TRT_EXTRA_INCLUDE_DIRS:-}" ]; then
  i=0
  IFS=: read -r -a extra <<<"$DCN_TRT_EXTRA_INCLUDE_DIRS"
  for inc in "${extra[@]}"; do
    i=$((i + 1))
    log "TensorRT plugin sources against $inc"
    "$CMAKE" -S plugins/trt -B "$BD/trt-extra-$i" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release -DDCN_TRT_CHECK_ONLY=ON \
      -DDCN_PYTHON="$PY" -DTensorRT_INCLUDE_DIR="$inc" >"$BD/trt-extra-$i-configure.log" 2>&1 \
      || { cat "$BD/trt-extra-$i-configure.log" >&2; die "configuring plugins/trt with $inc"; }
    "$CMAKE" --build "$BD/trt-extra-$i" -j "$JOBS" >"$BD/trt-extra-$i-build.log" 2>&1 \
      || { grep -E "error|Error" "$BD/trt-extra-$i-build.log" | head -40 >&2; die "compiling plugins/trt against $inc"; }
    sed -n 's/^-- dcn: \(TensorRT .* headers: .*\)$/\1/p' "$BD/trt-extra-$i-configure.log" | tee -a "$BD/trt_checked.txt" >&2
  done
fi
log "OK: kernels for sm_${archs[*]} without spills; plugin sources compile against $(cut -d' ' -f2 "$BD/trt_checked.txt" | tr '\n' ' ')"
