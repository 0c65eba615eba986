"""dcn-deploy exporter: PyTorch deformable models to ONNX. Never imports tensorrt.

``exporter.ops`` holds the reference ops, custom ops and modules; ``exporter.export``
(lazy) writes ONNX; ``exporter.contract`` is the op contract in code.
"""
from __future__ import annotations


def __getattr__(name: str):
    if name == "export":
        from .export import export

        return export
    raise AttributeError(f"module 'exporter' has no attribute {name!r}")
