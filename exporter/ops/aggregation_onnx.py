"""What the channels-last deformable aggregation ops' ONNX shape inference shares (their onnx.py ``infer``):
ranks, X's channels against group*group_channels, the output's spatial size from the attributes (or the
offsets' symbolic dims), and each offset / mask input's channels against the count the op asks. Names no
op: each op passes its entry and its channel rule."""
from __future__ import annotations

from typing import Callable

import onnx

from exporter import onnx_shapes as shapes
from exporter.contract import INTS, OpSpec

from .aggregation_spec import ATTRS, points

# (group, P) -> [(input position, channels wanted, formula, at least (True) or exactly)]
ChannelRule = Callable[[int, int], list[tuple[int, int, str, bool]]]


def _fail(spec: OpSpec, ctx, what: str) -> None:
    raise onnx.shape_inference.InferenceError(f"{spec.op_type} '{shapes.node_name(ctx)}': {what}")


def infer(spec: OpSpec, ctx, channels: ChannelRule) -> None:
    """Output [N, Ho, Wo, C] in X's type; InferenceError in the contract's words where the node is wrong."""
    types = shapes.input_types(ctx, spec)
    x_t = types[0]
    if x_t is None:
        return
    ks = ctx.get_attribute("kernel_shape")
    if ks is None:
        _fail(spec, ctx, "attribute kernel_shape is missing, expected an INTS (kh, kw)")
    a = {x.name: shapes.attr_ints(ctx, x.name, x.default) for x in ATTRS if x.kind == INTS and x.default}
    ks = list(ks.ints)
    for name, vals in (("kernel_shape", ks), *a.items()):
        shapes.check_len(ctx, spec, name, vals)
    # (each attribute's minimum: onnx_shapes.check_minimums, before this)
    group = shapes.attr_int(ctx, "group", 1)
    gc = ctx.get_attribute("group_channels")
    P = points(ks, shapes.attr_int(ctx, "remove_center", 0))
    for r, name in ((shapes.rank(t), i.name) for t, i in zip(types, spec.inputs)):
        if r is not None and r != 4:
            _fail(spec, ctx, f"{name} has rank {r}, expected 4 (NHWC)")
    c = shapes.Dim.of(x_t, 3)
    if gc is not None and c.value is not None and c.value != group * gc.i:
        _fail(spec, ctx, f"X has {c.value} channels, expected group*group_channels = {group * gc.i}")
    for i, want, formula, at_least in channels(group, P):
        got = shapes.Dim.of(types[i], 3).value
        if got is not None and (got < want if at_least else got != want):
            _fail(spec, ctx, f"{spec.inputs[i].name} has {got} channels, expected {'at least ' if at_least else ''}"
                             f"{formula} = {want}")
    spatial = []
    pads, strides, dil = a["pads"], a["strides"], a["dilations"]
    for axis, k, s, p0, p1, d in ((1, ks[0], strides[0], pads[0], pads[2], dil[0]),
                                   (2, ks[1], strides[1], pads[1], pads[3], dil[1])):
        size, given = shapes.Dim.of(x_t, axis).value, shapes.Dim.of(types[1], axis)
        if size is None:
            spatial.append(given)  # the offsets' (symbolic) dims are the output's
            continue
        out = shapes.conv_output(ctx, spec, "height" if axis == 1 else "width", size, p0, p1, d, k, s)
        if given.value is not None and given.value != out:
            _fail(spec, ctx, f"{spec.inputs[1].name} has {'height' if axis == 1 else 'width'} {given.value}, "
                             f"expected the output's {out}")
        spatial.append(shapes.Dim(value=out))
    shapes.set_output(ctx, x_t.tensor_type.elem_type, [shapes.Dim.of(x_t, 0), *spatial, c])
