"""dcn::DCNv3 (InternImage's deformable aggregation): spec, reference, custom (torch op), modules
(InternImage's DCNv3 module), swap (InternImage's DCNv3 / DCNv3_pytorch), onnx. What it shares with the
other channels-last aggregation op lives beside the folders (exporter/ops/aggregation*.py). Calling the
package runs the float64 reference (``exporter.ops.dcnv3(x, offset, mask, kernel_shape=..., ...)``)."""
from exporter.ops._package import op_package

PUBLIC = {
    "dcnv3": "reference",
    "dcnv3_op": "custom",
    "DCNv3": "modules",
}
REFERENCE = "dcnv3"
op_package(__name__)
