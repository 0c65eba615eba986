"""The runtime's console scripts (pyproject ``[project.scripts]``): each command's ``main`` under the
Ctrl-C shim of :mod:`dcn_base.entry` (imported first, before TensorRT, ONNX or torch)."""
from dcn_base.entry import entry

build_main = entry("trt_runtime.cli", "build_main")
infer_main = entry("trt_runtime.cli", "infer_main")
compare_main = entry("trt_runtime.cli", "compare_main")
plugins_main = entry("trt_runtime.plugins", "main")
serve_main = entry("trt_runtime.serve", "main")
triton_repo_main = entry("trt_runtime.triton_repo", "main")
