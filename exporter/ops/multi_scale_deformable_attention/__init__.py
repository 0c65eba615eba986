"""dcn::MultiScaleDeformableAttention (Deformable DETR's core), everything of the op in one folder:
spec (contract entry and checks), reference (float64 truth), custom (torch.library op), modules (mmcv's
and Hugging Face's modules on the op), swap (third-party modules -> ours), onnx (schema, translation,
reference evaluator op).

Light on purpose: exporter/contract.py imports .spec while it is being imported itself."""
