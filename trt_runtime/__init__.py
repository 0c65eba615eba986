"""ONNX + plugins -> TensorRT engine -> outputs -> report. Imports tensorrt lazily: importing
this package (or trt_runtime.plugins) needs neither tensorrt nor a GPU."""

import importlib


# Lazy public API: importing trt_runtime needs neither tensorrt nor torch.
_LAZY = {"Engine": ".infer", "build_engine": ".build", "compare": ".compare", "TorchRunner": ".compare"}


def __getattr__(name: str):
    """``trt_runtime.Engine`` etc. without importing tensorrt / torch at package import."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'trt_runtime' has no attribute {name!r}")
