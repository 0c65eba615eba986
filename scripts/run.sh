#!/usr/bin/env bash
# The main job, set-up included:
#   bash scripts/run.sh [MODEL [dcn-export options...]]
# PyTorch model -> ONNX with dcn:: nodes (dcn-export,
# checked against PyTorch) -> ONNX Runtime with our CPU ops, proven equal to PyTorch with
# Polygraphy (dcn-compare) -> on a machine with TensorRT and a GPU: FP16 engine (dcn-build),
# inference (dcn-infer) and the same proof against the engine.
# Without MODEL it runs the built-in sample, a small ResNet-DCN (samples/resnet_dcn).
# Outputs go to $DCN_OUT (default ./out). Extra dcn-build options: $DCN_BUILD_ARGS.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
export PATH="$root/.venv/bin:$PATH"
out="${DCN_OUT:-$root/out}"
mkdir -p "$out"
say() { printf '\n[run] %s\n' "$*" >&2; }

sample=""
if [ $# -eq 0 ]; then
  say "no model given: creating the built-in sample (tiny ResNet-50-DCN c3-c5, DCNv1, random offsets)"
  python -m samples.resnet_dcn.make_model --variant dcnv1 --tiny --offset-std 0.05 -o "$out/sample/model.pt2"
  set -- "$out/sample/model.pt2"
  sample=1
fi
model="$1"
shift
name="$(basename "$model")"
name="${name%.*}"
onnx="$out/$name.onnx"
io="$out/$name.io"
if [ -n "$sample" ]; then
  # the paths make_model's "next:" line names: the sample's folder
  out="$out/sample"
  onnx="$out/model.onnx"
  io="$out/io"
fi

say "dcn-export $model -o $onnx --save-io $io --check $*"
dcn-export "$model" -o "$onnx" --save-io "$io" --check "$@"

say "dcn-compare $io $onnx   (PyTorch vs ONNX Runtime + libdcn_ort)"
dcn-compare "$io" "$onnx" --report "$out/$name.onnxruntime-report.json"

why=""
if ! python -c "import tensorrt" >/dev/null 2>&1; then
  why="TensorRT is not installed (pip install tensorrt on a machine with an NVIDIA GPU)"
elif ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  why="no NVIDIA GPU / driver on this machine"
elif ! dcn-plugins --trt >/dev/null 2>&1; then
  say "building the TensorRT plugin library (scripts/build_trt_plugins.sh)"
  bash scripts/build_trt_plugins.sh >&2 || why="the TensorRT plugin library did not build (see above)"
fi
if [ -n "$why" ]; then
  say "TensorRT steps skipped: $why. The ONNX model and $io are ready for dcn-build / dcn-compare on a GPU machine."
  exit 0
fi
engine="$out/$name.engine"
say "dcn-build $onnx -o $engine ${DCN_BUILD_ARGS:-}"
# shellcheck disable=SC2086
dcn-build "$onnx" -o "$engine" ${DCN_BUILD_ARGS:-}
say "dcn-infer $engine --load-inputs $io/inputs.json --iterations 50"
dcn-infer "$engine" --load-inputs "$io/inputs.json" -o "$out/$name.engine-outputs.npz" --iterations 50
say "dcn-compare $io $engine   (PyTorch vs TensorRT FP16)"
dcn-compare "$io" "$engine" --report "$out/$name.tensorrt-report.json"
