#!/usr/bin/env bash
# CUDA compiler launcher (CMake CUDA_COMPILER_LAUNCHER, see plugins/cuda/CMakeLists.txt):
#   ptxas_log.sh LOG_DIR COMPILER ARGS...
# Runs the compiler unchanged, passes its stderr through, and keeps that stderr (the
# `-Xptxas -v` report) as LOG_DIR/<object file name>.ptxas.log, so that a cached build
# still holds the report of every object. scripts/ptxas_report.py reads these logs.
set -u
logdir="$1"
shift
out=""
prev=""
for a in "$@"; do
  if [ "$prev" = "-o" ]; then out="$a"; fi
  case "$a" in -o?*) out="${a#-o}" ;; esac
  prev="$a"
done
mkdir -p "$logdir"
tmp="$(mktemp "$logdir/.ptxas.XXXXXX")"
"$@" 2>"$tmp"
rc=$?
cat "$tmp" >&2
if [ "$rc" -eq 0 ] && [ -n "$out" ]; then
  mv -f "$tmp" "$logdir/$(basename "$out").ptxas.log"
else
  rm -f "$tmp"
fi
exit "$rc"
