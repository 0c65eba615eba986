"""dcn::DCNv3 (InternImage): spec.py (contract entry, limits), reference.py (float64 truth; the sampling
core dcn::DCNv4 shares), custom.py (torch.library op), modules.py (InternImage's DCNv3 module),
swap.py (InternImage's modules -> ours), onnx.py (translation, schema, reference-evaluator op).

Importing this package imports nothing (exporter/contract.py reads spec.py early); the op registers
with ``from exporter.ops.dcnv3 import custom`` (exporter/ops/__init__.py does)."""
