"""dcn::DeformRoIPool (mmcv's deformable RoI pooling): spec, reference, custom (torch op), modules, swap
(mmcv), onnx. Calling the package runs the float64 reference
(``exporter.ops.deform_roi_pool(data, rois, offset, pooled_height=..., ...)``)."""
from exporter.ops._package import op_package

PUBLIC = {
    "deform_roi_pool": "reference",
    "deform_roi_pool_check": "reference",
    "ROI_POOL_MAX_GRID": "reference",
    "deform_roi_pool_op": "custom",
    "DeformRoIPool": "modules",
    "DeformRoIPoolPack": "modules",
    "ModulatedDeformRoIPoolPack": "modules",
}
REFERENCE = "deform_roi_pool"
op_package(__name__)
