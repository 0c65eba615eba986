"""dcn::DeformRoIPool's entry in the op contract: mmcv's deformable RoI pooling (DeformRoIPool /
ModulatedDeformRoIPoolPack's pooling): RoIAlign-style sampling (aligned, unrounded RoIs, sampling_ratio
grid, 0 = adaptive) with per-bin offsets gamma * roi_size * offset; see docs/deform_roi_pool.md.
rois are always float32."""
from exporter.contract import FLOAT, INT, Attr, Input, OpSpec

SPEC = OpSpec(
    name="deform_roi_pool",
    op_type="DeformRoIPool",
    inputs=(Input("data"), Input("rois", dtype="float32"), Input("offset", optional=True)),
    outputs=("Y",),
    attrs=(
        Attr("pooled_height", INT, None, required=True),
        Attr("pooled_width", INT, None, required=True),
        Attr("spatial_scale", FLOAT, None, required=True),
        Attr("sampling_ratio", INT, 0),  # 0 = adaptive: ceil(roi size / pooled size) per RoI
        Attr("gamma", FLOAT, 0.1),
    ),
    torch_op="dcn::deform_roi_pool",
    doc="mmcv's deformable RoI pooling (RoIAlign-style sampling); see docs/deform_roi_pool.md.",
)
