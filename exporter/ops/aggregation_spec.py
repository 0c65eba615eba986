"""What the channels-last deformable aggregation ops (InternImage's and FlashInternImage's: the contract's
section of shared/design/ops.md states them together) share in their contract entries: one attribute set
in the contract's order, its limits, the number of points P, and the one attribute check every Python
place uses (references, torch ops). Each op's own entry is its folder's spec.py; this module imports no
torch (those spec.py files read it) and names no op: callers pass their op type for the messages.
"""
from __future__ import annotations

import math
import numbers
import operator
from typing import Any, Sequence

from dcn_base.errors import ContractError
from exporter.contract import FLOAT, INT, INTS, Attr

ATTRS = (
    Attr("kernel_shape", INTS, None, length=2, required=True, minimum=1),  # (kh, kw)
    Attr("strides", INTS, (1, 1), length=2, minimum=1),
    Attr("pads", INTS, (0, 0, 0, 0), length=4, minimum=0),  # top, left, bottom, right
    Attr("dilations", INTS, (1, 1), length=2, minimum=1),
    Attr("group", INT, 1, minimum=1),
    Attr("group_channels", INT, None, required=True, minimum=1),
    Attr("offset_scale", FLOAT, 1.0),
    Attr("remove_center", INT, 0, minimum=0),  # 0 / 1; odd square kernels only
)

# Upper limits (README "Limits"; equal to kMaxAggregateKernel / Stride / Pad / Dilation of
# plugins/common/dcn_aggregate.h, tested). kernel_shape bounds the points per output (P <= 32*32).
LIMITS: dict[str, int] = {"kernel_shape": 32, "strides": 1024, "pads": 1024, "dilations": 1024}
# the contract's minimum of each integer attribute (Attr.minimum)
MINIMUM: dict[str, int] = {a.name: a.minimum for a in ATTRS if a.minimum is not None}


def points(kernel_shape: Sequence[int], remove_center: int) -> int:
    """P = kh*kw - remove_center."""
    return int(kernel_shape[0]) * int(kernel_shape[1]) - int(remove_center)


def _ints(op: str, name: str, value: Any, length: int) -> tuple[int, ...]:
    vals = list(value) if isinstance(value, (list, tuple)) else [value]
    if len(vals) != length:
        raise ContractError(f"{op}: attribute {name} has {len(vals)} values, expected {length}")
    try:
        if any(isinstance(v, bool) for v in vals):
            raise TypeError
        vals = [operator.index(v) for v in vals]
    except TypeError:
        raise ContractError(f"{op}: attribute {name} = {vals}, expected integers") from None
    shown = f"[{', '.join(str(v) for v in vals)}]" if length > 1 or isinstance(value, (list, tuple)) else str(vals[0])
    values = "values " if length > 1 else ""
    if any(v < MINIMUM[name] for v in vals):
        raise ContractError(f"{op}: attribute {name} = {shown}, expected {values}>= {MINIMUM[name]}")
    limit = LIMITS.get(name)
    if limit is not None and any(v > limit for v in vals):
        raise ContractError(f"{op}: attribute {name} = {shown}, expected {values}<= {limit} (limit)")
    return tuple(vals)


def label(op_type: str, node: str = "") -> str:
    """``<op type> '<node>'`` (the op type alone without a node name): how messages start."""
    return f"{op_type}{f' {node!r}' if node else ''}"


def check_attrs(op_type: str, node: str, kernel_shape, strides, pads, dilations, group, group_channels,
                offset_scale, remove_center) -> dict[str, Any]:
    """The attributes, checked (ContractError in the contract's words); returns them normalised."""
    op = label(op_type, node)
    ks = _ints(op, "kernel_shape", kernel_shape, 2)
    out = dict(kernel_shape=ks, strides=_ints(op, "strides", strides, 2), pads=_ints(op, "pads", pads, 4),
               dilations=_ints(op, "dilations", dilations, 2), group=_ints(op, "group", group, 1)[0],
               group_channels=_ints(op, "group_channels", group_channels, 1)[0])
    rc = _ints(op, "remove_center", remove_center, 1)[0]
    if rc > 1:
        raise ContractError(f"{op}: attribute remove_center = {rc}, expected 0 or 1")
    if rc and (ks[0] != ks[1] or ks[0] % 2 == 0):
        raise ContractError(f"{op}: attribute remove_center = 1 with kernel_shape = [{ks[0]}, {ks[1]}], expected an "
                            f"odd square kernel")
    if isinstance(offset_scale, bool) or not isinstance(offset_scale, numbers.Real) or \
            not math.isfinite(float(offset_scale)):
        raise ContractError(f"{op}: attribute offset_scale = {offset_scale}, expected a finite FLOAT")
    out.update(offset_scale=float(offset_scale), remove_center=rc)
    return out
