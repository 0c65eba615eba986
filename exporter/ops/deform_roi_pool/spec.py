"""dcn::DeformRoIPool's entry in the op contract: mmcv's deformable RoI pooling (DeformRoIPool /
ModulatedDeformRoIPoolPack's pooling): RoIAlign-style sampling (aligned, unrounded RoIs, sampling_ratio
grid, 0 = adaptive) with per-bin offsets gamma * roi_size * offset; see docs/deform_roi_pool.md.
rois are always float32."""
from exporter.contract import FLOAT, INT, Attr, Input, OpSpec

# Samples per bin and axis of the adaptive grid (sampling_ratio 0): ceil(roi size / pooled size), clamped to
# MAX_GRID (README "Limits"; kRoIPoolMaxGrid of deform_roi_pool_math.h, tested equal). The grid depends on the
# RoIs, data the runtimes cannot refuse ahead, so it is clamped, not refused: it bounds the work of one output
# value (<= 2^20 samples) and binds only for RoIs larger than MAX_GRID * pooled size feature-map pixels.
MAX_GRID = 1024

SPEC = OpSpec(
    name="deform_roi_pool",
    op_type="DeformRoIPool",
    inputs=(Input("data"), Input("rois", dtype="float32"), Input("offset", optional=True)),
    outputs=("Y",),
    attrs=(
        Attr("pooled_height", INT, None, required=True, minimum=1),
        Attr("pooled_width", INT, None, required=True, minimum=1),
        Attr("spatial_scale", FLOAT, None, required=True),
        Attr("sampling_ratio", INT, 0, minimum=0),  # 0 = adaptive: ceil(roi size / pooled size) per RoI
        Attr("gamma", FLOAT, 0.1),
    ),
    torch_op="dcn::deform_roi_pool",
    # upper limits (README "Limits"; kMaxRoIPool* of deform_roi_pool_math.h, tested equal): RoI heads pool
    # 7x7 or 14x14 bins (mask heads 28x28); models sample 0 (adaptive), 2 or 4 points per bin and axis, and
    # 64^2 samples per output value still sum in float32 within the float32 tolerance
    limits={"pooled_height": 256, "pooled_width": 256, "sampling_ratio": 64},
    doc="mmcv's deformable RoI pooling (RoIAlign-style sampling); see docs/deform_roi_pool.md.",
)
