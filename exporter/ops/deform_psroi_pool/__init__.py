"""dcn::DeformPSROIPool (deformable / position-sensitive RoI pooling): spec, reference, custom (torch op),
modules, swap, onnx. Calling the package runs the float64 reference
(``exporter.ops.deform_psroi_pool(data, rois, trans, spatial_scale=..., ...)``)."""
from exporter.ops._package import op_package

PUBLIC = {
    "deform_psroi_pool": "reference",
    "deform_psroi_pool_check": "reference",
    "deform_psroi_pool_op": "custom",
    "DeformPSROIPool": "modules",
    "DeformPSROIPoolPack": "modules",
}
REFERENCE = "deform_psroi_pool"
op_package(__name__)
