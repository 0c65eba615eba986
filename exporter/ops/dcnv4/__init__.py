"""dcn::DCNv4 (FlashInternImage's deformable aggregation): spec, reference, custom (torch op), modules
(the DCNv4 package's DCNv4 module), swap (that module), onnx. What it shares with the other channels-last
aggregation op lives beside the folders (exporter/ops/aggregation*.py). Calling the package runs the
float64 reference (``exporter.ops.dcnv4(x, offset_mask, kernel_shape=..., ...)``)."""
from exporter.ops._package import op_package

PUBLIC = {
    "dcnv4": "reference",
    "dcnv4_op": "custom",
    "DCNv4": "modules",
    "packed_channels": "spec",
}
REFERENCE = "dcnv4"
op_package(__name__)
