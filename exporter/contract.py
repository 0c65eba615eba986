"""The op contract of ``../shared/design/ops.md`` in code: the single source of truth.

The exporter writes nodes from it, the ONNX Runtime op and the TensorRT plugin
creators are tested against it (field names, types, defaults, input order).
Change the contract here first, then everywhere, in the same change.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DOMAIN = "dcn"
DOMAIN_VERSION = 1
PLUGIN_VERSION = "1"
PLUGIN_NAMESPACE = ""

# Attribute kinds, as ONNX names them; the TensorRT parser passes INT/INTS as int32
# and FLOAT as float32 (PluginFieldType kINT32 / kFLOAT32).
INT = "INT"
INTS = "INTS"
FLOAT = "FLOAT"

TRT_FIELD_TYPE = {INT: "kINT32", INTS: "kINT32", FLOAT: "kFLOAT32"}


@dataclass(frozen=True)
class Attr:
    name: str
    kind: str  # INT, INTS or FLOAT
    default: Any = None  # None: required (or optional without default, see `required`)
    length: int = 1  # number of values (INTS)
    required: bool = False

    @property
    def trt_type(self) -> str:
        return TRT_FIELD_TYPE[self.kind]


@dataclass(frozen=True)
class Input:
    name: str
    optional: bool = False
    # None: the node's one element type (float32 or float16, that of input 0 and the output);
    # "float32": always float32, also in a float16 node (RoI coordinates are never half)
    dtype: str | None = None


@dataclass(frozen=True)
class OpSpec:
    op_type: str
    inputs: tuple[Input, ...]
    outputs: tuple[str, ...]
    attrs: tuple[Attr, ...]
    torch_op: str  # qualified torch.library name

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(i.name for i in self.inputs)

    @property
    def attr_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.attrs)

    def attr(self, name: str) -> Attr:
        for a in self.attrs:
            if a.name == name:
                return a
        raise KeyError(f"{self.op_type}: no attribute {name!r}; expected one of {self.attr_names}")

    def defaults(self) -> dict[str, Any]:
        return {a.name: a.default for a in self.attrs if a.default is not None}


DEFORM_CONV2D = OpSpec(
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
        Attr("strides", INTS, (1, 1), length=2),
        Attr("pads", INTS, (0, 0, 0, 0), length=4),  # top, left, bottom, right
        Attr("dilations", INTS, (1, 1), length=2),
        Attr("group", INT, 1),
        Attr("offset_group", INT, 1),
        Attr("kernel_shape", INTS, None, length=2),  # optional; must equal W's
    ),
    torch_op="dcn::deform_conv2d",
)

DEFORM_PSROI_POOL = OpSpec(
    op_type="DeformPSROIPool",
    # data, trans and the output share one type; rois always float32 (ops.md)
    inputs=(Input("data"), Input("rois", dtype="float32"), Input("trans", optional=True)),
    outputs=("Y",),
    attrs=(
        Attr("spatial_scale", FLOAT, None, required=True),
        Attr("output_dim", INT, None, required=True),
        Attr("group_size", INT, None, required=True),
        Attr("pooled_size", INT, None, required=True),
        Attr("part_size", INT, 0),  # 0 = pooled_size
        Attr("sample_per_part", INT, 4),
        Attr("trans_std", FLOAT, 0.0),
        Attr("no_trans", INT, 0),
    ),
    torch_op="dcn::deform_psroi_pool",
)

# mmcv's deformable RoI pooling (DeformRoIPool / ModulatedDeformRoIPoolPack's pooling): RoIAlign-style
# sampling (aligned, unrounded RoIs, sampling_ratio grid, 0 = adaptive) with per-bin offsets
# gamma * roi_size * offset; see the "DeformRoIPool" section of docs/deform_roi_pool.md.
DEFORM_ROI_POOL = OpSpec(
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
)

OPS: dict[str, OpSpec] = {op.op_type: op for op in (DEFORM_CONV2D, DEFORM_PSROI_POOL, DEFORM_ROI_POOL)}

# Upper limits of the attributes that alone drive work or memory (README "Limits"; equal to the
# kMax* constants of plugins/common/dcn_math.h, tested). INTS limits apply to every value.
LIMITS: dict[str, dict[str, int]] = {
    DEFORM_CONV2D.op_type: {"strides": 1024, "pads": 1024, "dilations": 1024},
    DEFORM_PSROI_POOL.op_type: {"output_dim": 1 << 20, "group_size": 32, "pooled_size": 32, "part_size": 32,
                                "sample_per_part": 16},
}
MAX_ELEMENTS = 1 << 58  # any output or workspace, in elements


def check_limits(op_type: str, node: str, attrs: dict[str, Any]) -> None:
    """Raise ContractError (the contract's message) when an attribute is above its limit."""
    from .errors import ContractError

    for name, limit in LIMITS.get(op_type, {}).items():
        value = attrs.get(name)
        if value is None:
            continue
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        if any(int(v) > limit for v in values):
            shown = f"[{', '.join(str(int(v)) for v in values)}]" if isinstance(value, (list, tuple)) else int(value)
            raise ContractError(f"{op_type} '{node}': attribute {name} = {shown}, expected "
                                f"{'values ' if isinstance(value, (list, tuple)) else ''}<= {limit} (limit)")

# ONNX's own deformable convolution (opset >= 19; ``dcn-export --deform-conv onnx``). Never name one
# of our nodes like this: TensorRT >= 10.1 imports the standard op itself.
STANDARD_DEFORM_CONV = "DeformConv"
STANDARD_DEFORM_CONV_OPSET = 19
FORBIDDEN_OP_TYPES = (STANDARD_DEFORM_CONV,)
_DEFAULT_DOMAINS = ("", "ai.onnx")


def is_dcn_node(node, standard: bool = True) -> bool:
    """Is this ONNX node a deformable one: ours (domain ``dcn``, or one of OPS' op types in the
    default domain, which TensorRT's parser also hands to our plugins by name) or, unless
    ``standard=False`` (the nodes our plugins run), ONNX's standard DeformConv."""
    if node.domain == DOMAIN or (node.domain in _DEFAULT_DOMAINS and node.op_type in OPS):
        return True
    return standard and node.domain in _DEFAULT_DOMAINS and node.op_type == STANDARD_DEFORM_CONV


def conv_out_size(size: int, pad_begin: int, pad_end: int, dilation: int, kernel: int, stride: int) -> int:
    """oH = floor((H + top + bottom - dilation*(kH-1) - 1) / stride) + 1."""
    return (size + pad_begin + pad_end - dilation * (kernel - 1) - 1) // stride + 1


INT32_MAX = 2**31 - 1


def check_node_attributes(op_type: str, node: str, attrs: dict[str, Any]) -> None:
    """An ONNX node's integer attributes before TensorRT's parser sees them: it passes INT /
    INTS as int32 (wrapping larger values silently), so every value must fit int32 and its
    LIMITS. Raises ContractError in the contract's style."""
    from .errors import ContractError

    spec = OPS.get(op_type)
    if spec is None:
        return
    for a in spec.attrs:
        value = attrs.get(a.name)
        if value is None or a.kind == FLOAT:
            continue
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        if any(not isinstance(v, int) or not -INT32_MAX - 1 <= v <= INT32_MAX for v in values):
            raise ContractError(f"{op_type} '{node}': attribute {a.name} = {value}, expected "
                                f"{'values' if a.kind == INTS else 'a value'} that fit TensorRT's int32 fields")
    check_limits(op_type, node, attrs)


# Ops whose entry lives in their own folder (exporter/ops/<op>/spec.py), imported last: it needs the classes above.
from .ops.multi_scale_deformable_attention.spec import SPEC as MULTI_SCALE_DEFORMABLE_ATTENTION  # noqa: E402

OPS[MULTI_SCALE_DEFORMABLE_ATTENTION.op_type] = MULTI_SCALE_DEFORMABLE_ATTENTION
