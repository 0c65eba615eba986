"""The op contract of ``../shared/design/ops.md`` in code: the machinery every op's entry is written
with, and the tables generic steps read.

Each op's entry is its folder's ``spec.py`` (``exporter/ops/<op>/spec.py``: ``SPEC``, an
:class:`OpSpec`): op type, inputs in order with their dtype facts, outputs, attributes with kinds,
defaults and limits, the torch.library op, ONNX's own equivalent if any. The registry
(``exporter/ops/__init__.py``) lists the ops; :func:`specs` / ``OPS`` / ``LIMITS`` read them (lazily:
this module imports no torch and no op). The exporter writes nodes from these entries, the ONNX
Runtime ops and TensorRT creators are tested against them (field names, types, defaults, input
order). Change the contract in the op's entry first, then everywhere, in the same change.
"""
from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

from dcn_base.errors import ContractError

from .ops import REGISTRY  # the registry imports no op: specs() reads each folder's spec.py when asked

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

# Input.dtype of integer index inputs (level tables): int64 or int32, one type for all of a node's
INDEX = "index"

# What the export writes: ONNX opsets (the default: the first with the standard DeformConv, one default
# for both modes; torch's ONNX function library is written at opset 18) and the op modes (plugin: our
# nodes; onnx: ONNX's own equivalent, StandardOp, where an op has one: ``dcn-export --deform-conv onnx``).
DEFAULT_OPSET = 19
MIN_OPSET = 18
DEFORM_CONV_MODES = ("plugin", "onnx")

MAX_ELEMENTS = 1 << 58  # any output or workspace, in elements (plugins/common/dcn_math.h kMaxElements)
INT32_MAX = 2**31 - 1
_DEFAULT_DOMAINS = ("", "ai.onnx")


@dataclass(frozen=True)
class Attr:
    name: str
    kind: str  # INT, INTS or FLOAT
    default: Any = None  # None: required (or optional without default, see `required`)
    length: int = 1  # number of values (INTS)
    required: bool = False
    minimum: int | None = None  # INT / INTS: the least value the contract allows (each value of an INTS)

    @property
    def trt_type(self) -> str:
        return TRT_FIELD_TYPE[self.kind]


@dataclass(frozen=True)
class Input:
    name: str
    optional: bool = False
    # None: the node's one element type (float32 or float16, that of input 0 and the output);
    # "float32": always float32, also in a float16 node (coordinates are never half: RoIs, locations);
    # INDEX ("index"): int64 or int32, one type for every index input of the node (never converted)
    dtype: str | None = None


@dataclass(frozen=True)
class StandardOp:
    """ONNX's own operator with the same inputs, attributes and semantics (``--deform-conv onnx``)."""

    op_type: str
    opset: int  # the first default-domain opset that has it


@dataclass(frozen=True)
class Rewrite:
    """An opt-in rewrite of ONNX graphs into the op's node (``dcn-export --<flag>``): the op folder's
    ``<part>.py`` ``rewrite(model) -> (model, names of the nodes written)`` (exporter.rewrites applies it
    and checks the result like any export)."""

    flag: str  # the command-line flag without its dashes
    help: str
    what: str  # what it looks for, in words (the error when it finds none)
    part: str = "fuse"


@dataclass(frozen=True)
class OpSpec:
    name: str  # the op's folder (exporter/ops/<name>, plugins/ops/<name>), snake case
    op_type: str
    inputs: tuple[Input, ...]
    outputs: tuple[str, ...]
    attrs: tuple[Attr, ...]
    torch_op: str  # qualified torch.library name, arguments: the inputs then the attributes, in order
    limits: Mapping[str, int] = field(default_factory=dict)  # attribute upper limits (C++: kMax*)
    standard: Optional[StandardOp] = None
    weight_input: Optional[str] = None  # the input holding the layer's weights (names nodes without scope)
    output_rank: int = 4  # rank of the output (checked after shape inference)
    rewrites: tuple[Rewrite, ...] = ()  # opt-in ONNX rewrites into this op's node
    doc: str = ""

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(i.name for i in self.inputs)

    @property
    def attr_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.attrs)

    @property
    def float32_inputs(self) -> tuple[int, ...]:
        """Positions of the inputs that are float32 in every node (coordinates), whatever its type."""
        return tuple(i for i, inp in enumerate(self.inputs) if inp.dtype == "float32")

    @property
    def index_inputs(self) -> tuple[int, ...]:
        """Positions of the integer index inputs (``Input(dtype=INDEX)``: int64 or int32)."""
        return tuple(i for i, inp in enumerate(self.inputs) if inp.dtype == INDEX)

    def attr(self, name: str) -> Attr:
        for a in self.attrs:
            if a.name == name:
                return a
        raise KeyError(f"{self.op_type}: no attribute {name!r}; expected one of {self.attr_names}")

    def defaults(self) -> dict[str, Any]:
        return {a.name: a.default for a in self.attrs if a.default is not None}


# What stays a coordinate, for dcn-export --fp16 (exporter.reference_runs) and dcn-build's float16 conversion
# (trt_runtime.fp16_convert), which keep coordinates float32: a value is followed through every op but those
# giving a new quantity, a learned layer or a normalisation (a query's linear map gives offsets, not
# positions). Torch's op names -> the ONNX op types torch.onnx writes them as; embedding is a Gather in ONNX,
# which also indexes coordinates (a level's shape): followed there.
NEW_QUANTITY_OPS: dict[tuple[str, ...], tuple[str, ...]] = {
    ("mm", "addmm", "bmm", "baddbmm", "matmul", "linear"): ("MatMul", "Gemm", "Einsum"),
    ("convolution", "_convolution", "conv2d"): ("Conv", "ConvTranspose"),
    ("_softmax", "softmax"): ("Softmax",),
    ("_log_softmax",): ("LogSoftmax",),
    ("native_layer_norm",): ("LayerNormalization",),
    ("native_batch_norm", "_native_batch_norm_legit_no_training"): ("BatchNormalization",),
    ("embedding",): (),
}
NEW_QUANTITY_TORCH = frozenset(name for names in NEW_QUANTITY_OPS for name in names)
NEW_QUANTITY_ONNX = frozenset(t for types in NEW_QUANTITY_OPS.values() for t in types)


# --------------------------------------------------------------------------- the registered ops
@functools.lru_cache(maxsize=None)
def specs() -> tuple[OpSpec, ...]:
    """Every registered op's entry, in the registry's order (exporter/ops/__init__.py)."""
    return tuple(importlib.import_module(f"{__package__}.ops.{name}.spec").SPEC for name in REGISTRY)


def ops() -> dict[str, OpSpec]:
    """{op type: entry} of every registered op."""
    return {s.op_type: s for s in specs()}


def standard_ops() -> dict[str, OpSpec]:
    """{ONNX op type: our entry} for the ops ONNX has an equivalent of (never a name for our nodes)."""
    return {s.standard.op_type: s for s in specs() if s.standard is not None}


def spec_of_node(node) -> Optional[OpSpec]:
    """The entry of an ONNX node of ours (``dcn`` domain or default domain by name) or of ONNX's
    equivalent of one of ours (``DeformConv``); None otherwise."""
    if node.domain == DOMAIN or node.domain in _DEFAULT_DOMAINS:
        found = ops().get(node.op_type)
        if found is not None:
            return found
    return standard_ops().get(node.op_type) if node.domain in _DEFAULT_DOMAINS else None


def __getattr__(name: str):
    """``OPS``, ``LIMITS`` and ``FORBIDDEN_OP_TYPES``, read from the registered ops' entries."""
    if name == "OPS":
        return ops()
    if name == "LIMITS":
        return {s.op_type: dict(s.limits) for s in specs() if s.limits}
    if name == "FORBIDDEN_OP_TYPES":  # ONNX's own ops: a node of ours never takes their names
        return tuple(standard_ops())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------- checks every step shares
def check_limits(op_type: str, node: str, attrs: dict[str, Any]) -> None:
    """Raise ContractError (the contract's message) when an attribute is above its limit."""
    spec = ops().get(op_type)
    for name, limit in (spec.limits if spec is not None else {}).items():
        value = attrs.get(name)
        if value is None:
            continue
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        if any(int(v) > limit for v in values):
            shown = f"[{', '.join(str(int(v)) for v in values)}]" if isinstance(value, (list, tuple)) else int(value)
            where = f"{op_type} '{node}'" if node else op_type  # no node name in a PyTorch run: the module says
            raise ContractError(f"{where}: attribute {name} = {shown}, expected "
                                f"{'values ' if isinstance(value, (list, tuple)) else ''}<= {limit} (limit)")


def is_dcn_node(node, standard: bool = True) -> bool:
    """Is this ONNX node a deformable one: ours (domain ``dcn``, or one of OPS' op types in the
    default domain, which TensorRT's parser also hands to our plugins by name) or, unless
    ``standard=False`` (the nodes our plugins run), ONNX's equivalent of one of ours (DeformConv)."""
    if node.domain == DOMAIN or (node.domain in _DEFAULT_DOMAINS and node.op_type in ops()):
        return True
    return standard and node.domain in _DEFAULT_DOMAINS and node.op_type in standard_ops()


def conv_out_size(size: int, pad_begin: int, pad_end: int, dilation: int, kernel: int, stride: int) -> int:
    """oH = floor((H + top + bottom - dilation*(kH-1) - 1) / stride) + 1."""
    return (size + pad_begin + pad_end - dilation * (kernel - 1) - 1) // stride + 1


def below_minimum(op_type: str, node: str, attr: Attr, values: Sequence[int]) -> Optional[str]:
    """The contract's message for an integer attribute with a value under its minimum (Attr.minimum), or None."""
    if attr.minimum is None or all(v >= attr.minimum for v in values):
        return None
    shown = list(values) if attr.kind == INTS else values[0]
    return (f"{op_type} '{node}': attribute {attr.name} = {shown}, expected {'values ' if attr.kind == INTS else ''}"
            f">= {attr.minimum}")


def check_node_attributes(op_type: str, node: str, attrs: dict[str, Any]) -> None:
    """An ONNX node's integer attributes before TensorRT's parser sees them: it passes INT /
    INTS as int32 (wrapping larger values silently), so every value must fit int32 and its
    limits. Raises ContractError in the contract's style."""
    spec = ops().get(op_type)
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
        low = below_minimum(op_type, node, a, values)
        if low:
            raise ContractError(low)
    check_limits(op_type, node, attrs)


def check_graph_attributes(model) -> None:
    """:func:`check_node_attributes` for every node of ours in an ONNX model (domain ``dcn``, or one of our
    op types in the default domain, which TensorRT's parser also hands to our plugins): dcn-export before
    it writes, dcn-build before TensorRT's parser."""
    from onnx import helper  # noqa: PLC0415  (this module imports no onnx at import time)

    for n in model.graph.node:
        if n.op_type in ops() and n.domain in (DOMAIN, *_DEFAULT_DOMAINS):
            check_node_attributes(n.op_type, n.name, {a.name: helper.get_attribute_value(a) for a in n.attribute})
