"""dcn::DeformConv2d (DCNv1 / DCNv2): spec, reference, custom (torch op), modules, swap (mmcv,
detectron2), onnx (translation, schema, evaluator node, post-processing). Calling the package
runs the float64 reference (``exporter.ops.deform_conv2d(x, offset, weight, ...)``)."""
from exporter.ops._package import op_package

PUBLIC = {
    "deform_conv2d": "reference",
    "deform_conv2d_shapes": "reference",
    "deform_conv2d_op": "custom",
    "DeformConv2d": "modules",
    "ModulatedDeformConv2d": "modules",
    "DeformConv2dPack": "modules",
    "ModulatedDeformConv2dPack": "modules",
}
REFERENCE = "deform_conv2d"
op_package(__name__)
