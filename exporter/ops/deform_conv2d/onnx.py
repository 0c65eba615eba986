"""dcn::DeformConv2d in ONNX: the translation of ``dcn::deform_conv2d`` and torchvision's
``torchvision::deform_conv2d`` calls into one node each (ours, or ONNX's DeformConv with
``--deform-conv onnx``), the schema's shape inference, the reference evaluator's node, and the
post-processing of exported graphs (torchvision's zero bias of DCNv1 dropped)."""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from dcn_base.errors import ContractError
from exporter import onnx_shapes as shapes
from exporter.contract import spec_of_node

from . import custom  # noqa: F401  (registers torch.ops.dcn.deform_conv2d)
from . import reference as ref
from .spec import SPEC

# torch ops of other libraries that compute this op, translated to it as well (and cast like it)
FOREIGN_TORCH_OPS = ("torchvision::deform_conv2d",)


# --------------------------------------------------------------------------- translation
def translations(em) -> dict[Any, Callable]:
    """torch op -> function emitting the node (``em``: exporter.translate.Emitter)."""
    ir, op = em.ir, em.op

    def zeros_bias(weight, like):
        m = em.static_dims(weight, [0])
        np_dtype = like.dtype.numpy()
        if m is not None:
            return op.Constant(value=ir.tensor(np.zeros(m, dtype=np_dtype)))
        return op.ConstantOfShape(op.Shape(weight, start=0, end=1), value=ir.tensor(np.zeros(1, dtype=np_dtype)))

    def conv(input, weight, offset, bias, mask, attr_values):
        attrs = em.attrs(SPEC, attr_values)
        weight, offset, bias, mask = (em.like(v, input) for v in (weight, offset, bias, mask))
        ks = em.static_dims(weight, [2, 3])
        if ks is not None:
            attrs["kernel_shape"] = ks
        if em.standard:
            return em.standard_node(SPEC)(input, weight, offset, bias, mask, **attrs)
        if mask is not None and bias is None:  # contract: with a mask and no bias, B is zeros
            bias = zeros_bias(weight, input)
        inputs = [input, weight, offset] + ([bias] if bias is not None else []) + ([mask] if mask is not None else [])
        return em.node(SPEC)(*inputs, **attrs)

    # Parameter names are the torch ops' schema argument names (FX may pass keywords).
    def dcn_deform_conv2d(input, weight, offset, bias=None, mask=None, stride=(1, 1), pads=(0, 0, 0, 0),
                          dilation=(1, 1), group=1, offset_group=1):
        return conv(input, weight, offset, bias, mask, (stride, pads, dilation, group, offset_group))

    def torchvision_deform_conv2d(input, weight, offset, mask, bias, stride_h, stride_w, pad_h, pad_w,
                                  dilation_h, dilation_w, groups, offset_groups, use_mask):
        return conv(input, weight, offset, bias, mask if use_mask else None,
                    ((stride_h, stride_w), (pad_h, pad_w, pad_h, pad_w), (dilation_h, dilation_w), groups,
                     offset_groups))

    table: dict[Any, Callable] = {torch.ops.dcn.deform_conv2d.default: dcn_deform_conv2d}
    tv = _torchvision_op()
    if tv is not None:
        table[tv] = torchvision_deform_conv2d
    return table


def _torchvision_op():
    try:
        import torchvision  # noqa: F401, PLC0415  (optional: registers torch.ops.torchvision.*)

        return torch.ops.torchvision.deform_conv2d.default
    except Exception:
        return None


# --------------------------------------------------------------------------- schema: shape inference
def infer(ctx) -> None:
    spec = SPEC
    types = shapes.input_types(ctx, spec)
    x_t, w_t, off_t = types[0], types[1], types[2]
    if x_t is None:
        return
    strides = shapes.attr_ints(ctx, "strides", spec.attr("strides").default)
    pads = shapes.attr_ints(ctx, "pads", spec.attr("pads").default)
    dil = shapes.attr_ints(ctx, "dilations", spec.attr("dilations").default)
    for name, vals in (("strides", strides), ("pads", pads), ("dilations", dil)):
        shapes.check_len(ctx, spec, name, vals)
    ks = ctx.get_attribute("kernel_shape")
    kh, kw = shapes.Dim.of(w_t, 2).value, shapes.Dim.of(w_t, 3).value
    if ks is not None:
        ks = list(ks.ints)
        shapes.check_len(ctx, spec, "kernel_shape", ks)
        if kh is not None and kw is not None and ks != [kh, kw]:
            raise onnx.shape_inference.InferenceError(
                f"{spec.op_type} '{shapes.node_name(ctx)}': attribute kernel_shape is {ks}, "
                f"expected W's spatial shape [{kh}, {kw}]"
            )
        kh, kw = ks
    for r, name in ((shapes.rank(x_t), "X"), (shapes.rank(w_t), "W"), (shapes.rank(off_t), "offset")):
        if r is not None and r != 4:
            raise onnx.shape_inference.InferenceError(
                f"{spec.op_type} '{shapes.node_name(ctx)}': {name} has rank {r}, expected 4"
            )
    name = shapes.node_name(ctx)
    og = shapes.attr_int(ctx, "offset_group", spec.attr("offset_group").default)
    group = shapes.attr_int(ctx, "group", spec.attr("group").default)
    C, Cg, M = shapes.Dim.of(x_t, 1).value, shapes.Dim.of(w_t, 1).value, shapes.Dim.of(w_t, 0).value
    for ok, what in ((C is None or Cg is None or C == Cg * group, f"W has {Cg} input channels, expected X's {C} / group {group}"),
                     (M is None or M % group == 0, f"W has {M} output channels, expected a multiple of group {group}"),
                     (C is None or C % og == 0, f"X has {C} channels, expected a multiple of offset_group {og}")):
        if not ok:
            raise onnx.shape_inference.InferenceError(f"{spec.op_type} '{name}': {what}")
    mask_t = types[4] if len(types) > 4 else None
    if kh is not None and kw is not None:
        for what, tp, want in (("offset", off_t, 2 * og * kh * kw), ("mask", mask_t, og * kh * kw)):
            got = shapes.Dim.of(tp, 1).value
            if got is not None and got != want:
                factor = "2*offset_group*kH*kW" if what == "offset" else "offset_group*kH*kW"
                raise onnx.shape_inference.InferenceError(
                    f"{spec.op_type} '{name}': {what} has {got} channels, expected {factor} = {want}"
                )
    spatial = []
    for axis, k, s, p0, p1, d in ((2, kh, strides[0], pads[0], pads[2], dil[0]),
                                   (3, kw, strides[1], pads[1], pads[3], dil[1])):
        size = shapes.Dim.of(x_t, axis).value
        given = shapes.Dim.of(off_t, axis)  # offset is [N, 2*og*kH*kW, oH, oW]: its (symbolic) dims are the output's
        if size is not None and k is not None:
            out = shapes.conv_output(ctx, spec, "height" if axis == 2 else "width", size, p0, p1, d, k, s)
            if given.value is not None and given.value != out:
                raise onnx.shape_inference.InferenceError(
                    f"{spec.op_type} '{name}': offset has {'height' if axis == 2 else 'width'} {given.value}, "
                    f"expected the output's {out}"
                )
            spatial.append(shapes.Dim(value=out))
        else:
            spatial.append(given)
    shapes.set_output(ctx, x_t.tensor_type.elem_type, [shapes.Dim.of(x_t, 0), shapes.Dim.of(w_t, 0), *spatial])

# --------------------------------------------------------------------------- reference evaluator
def evaluate(node: str, inputs: Sequence[Optional[torch.Tensor]], attrs: dict) -> torch.Tensor:
    """The node on the float64 reference (onnx.reference.ReferenceEvaluator, exporter.verify)."""
    X, W, offset, B, mask = inputs
    y = ref.deform_conv2d(X, offset, W, B, stride=tuple(attrs["strides"]), padding=tuple(attrs["pads"]),
                          dilation=tuple(attrs["dilations"]), mask=mask)
    got = {"group": X.shape[1] // W.shape[1], "offset_group": offset.shape[1] // (2 * W.shape[2] * W.shape[3])}
    for key, want in got.items():
        if int(attrs[key]) != want:
            raise ContractError(f"{SPEC.op_type} '{node}': {key} is {attrs[key]}, expected {want} from the input shapes")
    return y


# --------------------------------------------------------------------------- post-processing
def postprocess(model: onnx.ModelProto) -> None:
    """torchvision passes zeros for a missing bias: a DCNv1 node (no mask) then has 3 inputs."""
    dropped = False
    for n in model.graph.node:
        if spec_of_node(n) is not SPEC or len(n.input) != 4 or not n.input[3]:
            continue
        b = _constant_value(model, n.input[3])
        if b is not None and not np.any(b):
            del n.input[3]
            dropped = True
    if dropped:
        used = {i for n in model.graph.node for i in n.input} | {o.name for o in model.graph.output}
        keep = [t for t in model.graph.initializer if t.name in used]
        del model.graph.initializer[:]
        model.graph.initializer.extend(keep)
        nodes = [n for n in model.graph.node
                 if not (n.op_type == "Constant" and len(n.output) == 1 and n.output[0] not in used)]
        del model.graph.node[:]
        model.graph.node.extend(nodes)


def _constant_value(model: onnx.ModelProto, name: str) -> Optional[np.ndarray]:
    """The value of an initializer or Constant node output ``name``, or None."""
    for t in model.graph.initializer:
        if t.name == name:
            return None if t.data_location == onnx.TensorProto.EXTERNAL else numpy_helper.to_array(t)
    for n in model.graph.node:
        if n.op_type == "Constant" and n.domain in ("", "ai.onnx") and list(n.output) == [name]:
            for a in n.attribute:
                if a.name == "value":
                    return numpy_helper.to_array(a.t)
    return None
