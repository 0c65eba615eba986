"""dcn::DCNv4's entry in the op contract (shared/design/ops.md, its DCNv4 section): X
[N, H, W, group*group_channels] (NHWC) and offset_mask [N, Ho, Wo, K], K >= group*P*3: group g reads
channels [g*3P, g*3P + 3P) = dx_0, dy_0, ..., dx_{P-1}, dy_{P-1}, m_0, ..., m_{P-1} (masks raw); the
rest is padding (the DCNv4 package pads K to a multiple of 8). P = kh*kw - remove_center. Attributes and
limits: the aggregation ops' set (exporter/ops/aggregation_spec.py)."""
from typing import Sequence

from exporter.contract import Input, OpSpec
from exporter.ops.aggregation_spec import ATTRS, LIMITS, points

SPEC = OpSpec(
    name="dcnv4",
    op_type="DCNv4",
    inputs=(Input("X"), Input("offset_mask")),
    outputs=("Y",),
    attrs=ATTRS,
    torch_op="dcn::dcnv4",
    limits=LIMITS,
    doc="FlashInternImage's DCNv4 (packed offset_mask, raw masks); see shared/design/ops.md.",
)

# The DCNv4 package pads offset_mask's channels to a multiple of this (its Linear's out_features).
CHANNEL_ALIGN = 8


def packed_channels(group: int, kernel_shape: Sequence[int], remove_center: int) -> int:
    """offset_mask channels the DCNv4 package's module writes: group*P*3 rounded up to a multiple of 8."""
    k = 3 * group * points(kernel_shape, remove_center)
    return -(-k // CHANNEL_ALIGN) * CHANNEL_ALIGN
