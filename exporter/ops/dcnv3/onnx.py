"""ONNX side of ``dcn::DCNv3`` and ``dcn::DCNv4``: the translation of ``dcn::dcnv3`` / ``dcn::dcnv4`` calls
into one node each (attributes by the contract), the schemas' shape inference, and the ONNX reference
evaluator's ops (exporter/verify.py's last-resort runtime). The generic steps call these:
exporter/translate.py (``translations``), exporter/schemas.py (``INFER``), exporter/verify.py (``op_runs``).
"""
from __future__ import annotations

from typing import Any, Callable

import onnx

from ... import schemas
from ...contract import OpSpec
from .spec import ATTRS, DCNV3, DCNV4, out_size, points


def _attrs(values) -> dict[str, Any]:
    """The torch op's attribute arguments (contract order) -> ONNX attributes by contract name."""
    out = {}
    for a, v in zip(ATTRS, values):
        out[a.name] = [int(x) for x in v] if a.kind == "INTS" else (float(v) if a.kind == "FLOAT" else int(v))
    return out


def translations(dcn_opset, like: Callable) -> dict:
    """torch op -> ONNX emitter; ``like(value, ref)`` casts value to ref's element type (one type per node)."""
    import torch

    v3, v4 = getattr(dcn_opset, DCNV3.op_type), getattr(dcn_opset, DCNV4.op_type)

    # parameter names are the torch ops' schema argument names (FX may pass keywords)
    def dcn_dcnv3(X, offset, mask, kernel_shape, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), group=1,
                  group_channels=1, offset_scale=1.0, remove_center=0):
        attrs = _attrs((kernel_shape, strides, pads, dilations, group, group_channels, offset_scale, remove_center))
        return v3(X, like(offset, X), like(mask, X), **attrs)

    def dcn_dcnv4(X, offset_mask, kernel_shape, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), group=1,
                  group_channels=1, offset_scale=1.0, remove_center=0):
        attrs = _attrs((kernel_shape, strides, pads, dilations, group, group_channels, offset_scale, remove_center))
        return v4(X, like(offset_mask, X), **attrs)

    return {torch.ops.dcn.dcnv3.default: dcn_dcnv3, torch.ops.dcn.dcnv4.default: dcn_dcnv4}


# --------------------------------------------------------------------------- shape inference
def _fail(spec: OpSpec, ctx, what: str) -> None:
    raise onnx.shape_inference.InferenceError(f"{spec.op_type} '{ctx.get_display_name()}': {what}")


def _infer(spec: OpSpec, ctx) -> None:
    types = schemas._input_types(ctx, spec)
    x_t = types[0]
    if x_t is None:
        return
    ks = ctx.get_attribute("kernel_shape")
    if ks is None:
        _fail(spec, ctx, "attribute kernel_shape is missing, expected an INTS (kh, kw)")
    a = {x.name: schemas._attr_ints(ctx, x.name, x.default) for x in ATTRS if x.kind == "INTS" and x.default}
    ks = list(ks.ints)
    for name, vals in (("kernel_shape", ks), *a.items()):
        schemas._check_len(ctx, spec, name, vals)
    group = schemas._attr_int(ctx, "group", 1)
    gc = ctx.get_attribute("group_channels")
    P = points(ks, schemas._attr_int(ctx, "remove_center", 0))
    for r, name in ((schemas._rank(t), i.name) for t, i in zip(types, spec.inputs)):
        if r is not None and r != 4:
            _fail(spec, ctx, f"{name} has rank {r}, expected 4 (NHWC)")
    c = schemas._Dim.of(x_t, 3)
    if gc is not None and c.value is not None and c.value != group * gc.i:
        _fail(spec, ctx, f"X has {c.value} channels, expected group*group_channels = {group * gc.i}")
    wants = ([("offset", types[1], 2 * group * P, "group*P*2"), ("mask", types[2], group * P, "group*P")]
             if spec is DCNV3 else [("offset_mask", types[1], 3 * group * P, "group*P*3")])
    for name, tp, want, formula in wants:
        got = schemas._Dim.of(tp, 3).value
        if got is not None and (got < want if spec is DCNV4 else got != want):
            _fail(spec, ctx, f"{name} has {got} channels, expected {'at least ' if spec is DCNV4 else ''}"
                             f"{formula} = {want}")
    spatial = []
    pads, strides, dil = a["pads"], a["strides"], a["dilations"]
    for axis, k, s, p0, p1, d in ((1, ks[0], strides[0], pads[0], pads[2], dil[0]),
                                   (2, ks[1], strides[1], pads[1], pads[3], dil[1])):
        size, given = schemas._Dim.of(x_t, axis).value, schemas._Dim.of(types[1], axis)
        if size is None:
            spatial.append(given)  # offset's (symbolic) dims are the output's
            continue
        out = out_size(size, p0, p1, d, k, s)
        if given.value is not None and given.value != out:
            _fail(spec, ctx, f"{spec.inputs[1].name} has {'height' if axis == 1 else 'width'} {given.value}, "
                             f"expected the output's {out}")
        spatial.append(schemas._Dim(value=out))
    schemas._set_output(ctx, x_t.tensor_type.elem_type, [schemas._Dim.of(x_t, 0), *spatial, c])


INFER = {DCNV3.op_type: lambda ctx: _infer(DCNV3, ctx), DCNV4.op_type: lambda ctx: _infer(DCNV4, ctx)}
DOCS = {DCNV3.op_type: "InternImage's DCNv3 aggregation (NHWC, x-major points); see shared/design/ops.md.",
        DCNV4.op_type: "FlashInternImage's DCNv4 (packed offset_mask, raw masks); see shared/design/ops.md."}


# --------------------------------------------------------------------------- reference evaluator
def op_runs(OpRun, domain: str, as_torch: Callable) -> list:
    """OpRun classes calling the references (float math for half data)."""
    from ..dcnv4.reference import dcnv4
    from .reference import dcnv3

    def attrs(op) -> dict:
        vals = {a.name: getattr(op, a.name, None) for a in ATTRS}
        return {k: (v if v is not None else next(a.default for a in ATTRS if a.name == k)) for k, v in vals.items()}

    class DCNv3(OpRun):
        op_domain = domain

        def _run(self, X, offset, mask, **_):
            y = dcnv3(as_torch(X), as_torch(offset), as_torch(mask), node=self.onnx_node.name, **attrs(self))
            return (y.numpy().astype(X.dtype),)

    class DCNv4(OpRun):
        op_domain = domain

        def _run(self, X, offset_mask, **_):
            y = dcnv4(as_torch(X), as_torch(offset_mask), node=self.onnx_node.name, **attrs(self))
            return (y.numpy().astype(X.dtype),)

    return [DCNv3, DCNv4]
