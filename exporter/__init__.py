"""dcn-deploy exporter: PyTorch deformable models to ONNX. Never imports tensorrt.

``exporter.ops`` is the op registry, one folder per op (contract entry, reference, torch op, modules,
swap rules, ONNX translation); ``exporter.export`` (lazy) writes ONNX; ``exporter.contract`` is the
machinery of the op contract in code.
"""
from __future__ import annotations


def __getattr__(name: str):
    if name == "export":
        from .export import export  # noqa: PLC0415  (torch: heavy; `import exporter` stays light)

        return export
    raise AttributeError(f"module 'exporter' has no attribute {name!r}")
