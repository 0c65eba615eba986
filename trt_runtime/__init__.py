"""ONNX + plugins -> TensorRT engine -> outputs -> report. Imports tensorrt lazily: importing
this package (or trt_runtime.plugins) needs neither tensorrt nor a GPU."""


# --- added by the trt_runtime build/infer/compare helper (issue 6): lazy public API ---
_LAZY = {"Engine": ".infer", "build_engine": ".build", "compare": ".compare", "TorchRunner": ".compare"}


def __getattr__(name: str):
    """``trt_runtime.Engine`` etc. without importing tensorrt / torch at package import."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'trt_runtime' has no attribute {name!r}")
