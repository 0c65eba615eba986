"""dcn::DCNv4 (FlashInternImage): reference.py (DCNv3's core with the packed offset_mask), custom.py
(torch.library op), modules.py (the DCNv4 package's module). Its contract entry, swap rule and ONNX
translation live beside DCNv3's (exporter/ops/dcnv3/spec.py, swap.py, onnx.py): one attribute set."""
