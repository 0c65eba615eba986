"""dcn::DeformConv2d's entry in the op contract (shared/design/ops.md): deformable convolution v1 / v2
with ONNX DeformConv's inputs and attributes (opset 19), so ``--deform-conv onnx`` can write that."""
from exporter.contract import INT, INTS, Attr, Input, OpSpec, StandardOp

SPEC = OpSpec(
    name="deform_conv2d",
    op_type="DeformConv2d",
    inputs=(
        Input("X"),
        Input("W"),
        Input("offset"),
        Input("B", optional=True),
        Input("mask", optional=True),
    ),
    outputs=("Y",),
    attrs=(
        Attr("strides", INTS, (1, 1), length=2, minimum=1),
        Attr("pads", INTS, (0, 0, 0, 0), length=4, minimum=0),  # top, left, bottom, right
        Attr("dilations", INTS, (1, 1), length=2, minimum=1),
        Attr("group", INT, 1, minimum=1),
        Attr("offset_group", INT, 1, minimum=1),
        Attr("kernel_shape", INTS, None, length=2, minimum=1),  # optional; must equal W's
    ),
    torch_op="dcn::deform_conv2d",
    # upper limits (README "Limits"; kMaxConv* of deform_conv2d_math.h, tested equal); every value of the INTS
    limits={"strides": 1024, "pads": 1024, "dilations": 1024},
    standard=StandardOp("DeformConv", 19),
    weight_input="W",
    doc="Deformable convolution v1 (3-4 inputs) and v2 (mask given); see shared/design/ops.md.",
)
