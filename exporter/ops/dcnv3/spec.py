"""Contract entries of ``dcn::DCNv3`` and ``dcn::DCNv4`` (shared/design/ops.md, section "DCNv3 and DCNv4"):
inputs, attributes in the contract's order, limits; and the one attribute check every Python place
uses (reference, torch op, exporter).

Both ops share their attributes. DCNv3: X [N, H, W, group*group_channels] (NHWC), offset
[N, Ho, Wo, group*P*2] ((dx, dy) pairs, point-major in each group), mask [N, Ho, Wo, group*P].
DCNv4: X and offset_mask [N, Ho, Wo, K], K >= group*P*3 (group g reads [g*3P, g*3P + 3P): dx_0,
dy_0, ..., m_0, ...; the rest is padding). P = kh*kw - remove_center.

This module imports nothing of exporter.ops (exporter/contract.py registers these specs).
"""
from __future__ import annotations

import math
import numbers
import operator
from typing import Any, Sequence

from ...contract import FLOAT, INT, INTS, Attr, Input, OpSpec
from ...errors import ContractError

ATTRS = (
    Attr("kernel_shape", INTS, None, length=2, required=True),  # (kh, kw)
    Attr("strides", INTS, (1, 1), length=2),
    Attr("pads", INTS, (0, 0, 0, 0), length=4),  # top, left, bottom, right
    Attr("dilations", INTS, (1, 1), length=2),
    Attr("group", INT, 1),
    Attr("group_channels", INT, None, required=True),
    Attr("offset_scale", FLOAT, 1.0),
    Attr("remove_center", INT, 0),  # 0 / 1; odd square kernels only
)

DCNV3 = OpSpec(op_type="DCNv3", inputs=(Input("X"), Input("offset"), Input("mask")), outputs=("Y",), attrs=ATTRS,
               torch_op="dcn::dcnv3")
DCNV4 = OpSpec(op_type="DCNv4", inputs=(Input("X"), Input("offset_mask")), outputs=("Y",), attrs=ATTRS,
               torch_op="dcn::dcnv4")

# Upper limits (README "Limits"; equal to kMaxDcnKernel / kMaxConv* of plugins/ops/dcnv3/dcnv3_math.h,
# tested). kernel_shape bounds the points per output (P <= 32*32).
LIMITS: dict[str, int] = {"kernel_shape": 32, "strides": 1024, "pads": 1024, "dilations": 1024}
OP_LIMITS = {DCNV3.op_type: LIMITS, DCNV4.op_type: LIMITS}
# DCNv4 pads offset_mask's channels to a multiple of this (DCNv4 package: the Linear's out_features).
DCNV4_CHANNEL_ALIGN = 8


def points(kernel_shape: Sequence[int], remove_center: int) -> int:
    """P = kh*kw - remove_center."""
    return int(kernel_shape[0]) * int(kernel_shape[1]) - int(remove_center)


def dcnv4_channels(group: int, kernel_shape: Sequence[int], remove_center: int) -> int:
    """offset_mask channels DCNv4's module writes: group*P*3 rounded up to a multiple of 8."""
    k = 3 * group * points(kernel_shape, remove_center)
    return -(-k // DCNV4_CHANNEL_ALIGN) * DCNV4_CHANNEL_ALIGN


def _ints(op: str, name: str, value: Any, length: int, low: int) -> tuple[int, ...]:
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
    if any(v < low for v in vals):
        raise ContractError(f"{op}: attribute {name} = {shown}, expected {'values ' if length > 1 else ''}>= {low}")
    limit = LIMITS.get(name)
    if limit is not None and any(v > limit for v in vals):
        raise ContractError(f"{op}: attribute {name} = {shown}, expected {'values ' if length > 1 else ''}"
                            f"<= {limit} (limit)")
    return tuple(vals)


def check_attrs(op_type: str, node: str, kernel_shape, strides, pads, dilations, group, group_channels,
                offset_scale, remove_center) -> dict[str, Any]:
    """The attributes, checked (ContractError in the contract's words); returns them normalised."""
    op = f"{op_type}{f' {node!r}' if node else ''}"
    ks = _ints(op, "kernel_shape", kernel_shape, 2, 1)
    out = dict(kernel_shape=ks, strides=_ints(op, "strides", strides, 2, 1), pads=_ints(op, "pads", pads, 4, 0),
               dilations=_ints(op, "dilations", dilations, 2, 1), group=_ints(op, "group", group, 1, 1)[0],
               group_channels=_ints(op, "group_channels", group_channels, 1, 1)[0])
    rc = _ints(op, "remove_center", remove_center, 1, 0)[0]
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


def out_size(size: int, pad_begin: int, pad_end: int, dilation: int, kernel: int, stride: int):
    """Ho = floor((H + top + bottom - (dh*(kh-1) + 1)) / sh) + 1 (works on SymInts)."""
    return (size + pad_begin + pad_end - (dilation * (kernel - 1) + 1)) // stride + 1
