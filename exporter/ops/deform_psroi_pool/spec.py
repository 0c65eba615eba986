"""dcn::DeformPSROIPool's entry in the op contract (shared/design/ops.md): deformable (position-sensitive)
RoI pooling as the original DeformablePSROIPooling; data, trans and the output share one type, rois
are always float32."""
from exporter.contract import FLOAT, INT, Attr, Input, OpSpec

SPEC = OpSpec(
    name="deform_psroi_pool",
    op_type="DeformPSROIPool",
    inputs=(Input("data"), Input("rois", dtype="float32"), Input("trans", optional=True)),
    outputs=("Y",),
    attrs=(
        Attr("spatial_scale", FLOAT, None, required=True),
        Attr("output_dim", INT, None, required=True, minimum=1),
        Attr("group_size", INT, None, required=True, minimum=1),
        Attr("pooled_size", INT, None, required=True, minimum=1),
        Attr("part_size", INT, 0, minimum=0),  # 0 = pooled_size
        Attr("sample_per_part", INT, 4, minimum=1),
        Attr("trans_std", FLOAT, 0.0),
        Attr("no_trans", INT, 0, minimum=0),
    ),
    torch_op="dcn::deform_psroi_pool",
    # upper limits (README "Limits"; kMaxPool* of deform_psroi_pool_math.h, tested equal)
    limits={"output_dim": 1 << 20, "group_size": 32, "pooled_size": 32, "part_size": 32, "sample_per_part": 16},
    doc="Deformable (position-sensitive) RoI pooling; see shared/design/ops.md.",
)
