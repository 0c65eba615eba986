"""dcn::DCNv3's entry in the op contract (shared/design/ops.md, its DCNv3 section): X
[N, H, W, group*group_channels] (NHWC), offset [N, Ho, Wo, group*P*2] ((dx, dy) pairs, point-major in
each group), mask [N, Ho, Wo, group*P] (used as given: the module's softmax is outside the op);
P = kh*kw - remove_center. Attributes and limits: the aggregation ops' set (exporter/ops/aggregation_spec.py)."""
from exporter.contract import Input, OpSpec
from exporter.ops.aggregation_spec import ATTRS, LIMITS

SPEC = OpSpec(
    name="dcnv3",
    op_type="DCNv3",
    inputs=(Input("X"), Input("offset"), Input("mask")),
    outputs=("Y",),
    attrs=ATTRS,
    torch_op="dcn::dcnv3",
    limits=LIMITS,
    doc="InternImage's DCNv3 aggregation (NHWC, x-major points); see shared/design/ops.md.",
)
