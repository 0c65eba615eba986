"""ONNX operator schemas for the ``dcn`` domain, built from :mod:`exporter.contract`.

Registering them lets ``onnx.checker.check_model(full_check=True)`` and
``onnx.shape_inference`` understand our nodes: input arity and optionality,
attribute names and types, one element type for the inputs (except DeformPSROIPool's rois:
always float32), and output shapes (symbolic where the graph's shapes are symbolic).

``register()`` is idempotent and process-wide (ONNX keeps one schema registry).
"""
from __future__ import annotations

from typing import Optional

import onnx
from onnx import TypeProto, defs, helper
from onnx.defs import OpSchema

from .contract import (DEFORM_CONV2D, DEFORM_PSROI_POOL, DEFORM_ROI_POOL, DOMAIN, DOMAIN_VERSION, FLOAT, INT, INTS,
                       OpSpec, conv_out_size)

# Element types a dcn node may carry; its inputs and output share one, except inputs the
# contract fixes to float32 (DeformPSROIPool's rois; float64 nodes, for references, may use float64).
TYPES = ("tensor(float)", "tensor(float16)", "tensor(double)")
FIXED_TYPES = {"float32": ("tensor(float)", "tensor(double)")}

_ATTR_TYPE = {INT: OpSchema.AttrType.INT, INTS: OpSchema.AttrType.INTS, FLOAT: OpSchema.AttrType.FLOAT}

_DOCS = {
    DEFORM_CONV2D.op_type: "Deformable convolution v1 (3-4 inputs) and v2 (mask given); see shared/design/ops.md.",
    DEFORM_PSROI_POOL.op_type: "Deformable (position-sensitive) RoI pooling; see shared/design/ops.md.",
    DEFORM_ROI_POOL.op_type: "mmcv's deformable RoI pooling (RoIAlign-style sampling); see docs/deform_roi_pool.md.",
}

# --------------------------------------------------------------------------- shape inference
class _Dim:
    """A dimension: a known value, a symbol, or unknown."""

    def __init__(self, value: Optional[int] = None, param: Optional[str] = None) -> None:
        self.value, self.param = value, param

    @classmethod
    def of(cls, tp: Optional[TypeProto], axis: int) -> "_Dim":
        if tp is None or not tp.HasField("tensor_type") or not tp.tensor_type.HasField("shape"):
            return cls()
        dims = tp.tensor_type.shape.dim
        if axis >= len(dims):
            return cls()
        d = dims[axis]
        if d.HasField("dim_value"):
            return cls(value=d.dim_value)
        if d.HasField("dim_param"):
            return cls(param=d.dim_param)
        return cls()

    def write(self, dim) -> None:
        if self.value is not None:
            dim.dim_value = self.value
        elif self.param:
            dim.dim_param = self.param


def _rank(tp: Optional[TypeProto]) -> Optional[int]:
    if tp is None or not tp.HasField("tensor_type") or not tp.tensor_type.HasField("shape"):
        return None
    return len(tp.tensor_type.shape.dim)


def _attr_ints(ctx, name: str, default) -> list[int]:
    a = ctx.get_attribute(name)
    return list(a.ints) if a is not None else list(default)


def _attr_int(ctx, name: str, default) -> int:
    a = ctx.get_attribute(name)
    return int(a.i) if a is not None else int(default)


def _set_output(ctx, elem_type: int, dims: list[_Dim]) -> None:
    out = TypeProto()
    out.tensor_type.elem_type = elem_type
    shape = out.tensor_type.shape
    for d in dims:
        d.write(shape.dim.add())
    ctx.set_output_type(0, out)


def _input_types(ctx, spec: OpSpec) -> list[Optional[TypeProto]]:
    types = []
    for i in range(ctx.get_num_inputs()):
        types.append(ctx.get_input_type(i) if ctx.has_input(i) else None)
    present = [(spec.inputs[i], t.tensor_type.elem_type) for i, t in enumerate(types)
               if t is not None and t.HasField("tensor_type") and t.tensor_type.elem_type]
    shared = [(i.name, e) for i, e in present if i.dtype is None]
    if len({e for _, e in shared}) > 1:
        got = ", ".join(f"{n}={helper.tensor_dtype_to_np_dtype(e).name}" for n, e in shared)
        raise onnx.shape_inference.InferenceError(
            f"{spec.op_type} '{ctx.get_display_name()}': inputs have different element types ({got}), expected one"
        )
    node_type = shared[0][1] if shared else None
    for inp, e in present:
        if inp.dtype == "float32" and e != onnx.TensorProto.FLOAT and not (
                e == onnx.TensorProto.DOUBLE and node_type == onnx.TensorProto.DOUBLE):
            raise onnx.shape_inference.InferenceError(
                f"{spec.op_type} '{ctx.get_display_name()}': {inp.name} is "
                f"{helper.tensor_dtype_to_np_dtype(e).name}, expected float32 (also in a float16 node)"
            )
    return types


def _check_len(ctx, spec: OpSpec, name: str, values: list[int]) -> None:
    want = spec.attr(name).length
    if len(values) != want:
        raise onnx.shape_inference.InferenceError(
            f"{spec.op_type} '{ctx.get_display_name()}': attribute {name} has {len(values)} values {values}, "
            f"expected {want}"
        )


def _infer_deform_conv2d(ctx) -> None:
    spec = DEFORM_CONV2D
    types = _input_types(ctx, spec)
    x_t, w_t, off_t = types[0], types[1], types[2]
    if x_t is None:
        return
    strides = _attr_ints(ctx, "strides", spec.attr("strides").default)
    pads = _attr_ints(ctx, "pads", spec.attr("pads").default)
    dil = _attr_ints(ctx, "dilations", spec.attr("dilations").default)
    for name, vals in (("strides", strides), ("pads", pads), ("dilations", dil)):
        _check_len(ctx, spec, name, vals)
    ks = ctx.get_attribute("kernel_shape")
    kh, kw = _Dim.of(w_t, 2).value, _Dim.of(w_t, 3).value
    if ks is not None:
        ks = list(ks.ints)
        _check_len(ctx, spec, "kernel_shape", ks)
        if kh is not None and kw is not None and ks != [kh, kw]:
            raise onnx.shape_inference.InferenceError(
                f"{spec.op_type} '{ctx.get_display_name()}': attribute kernel_shape is {ks}, "
                f"expected W's spatial shape [{kh}, {kw}]"
            )
        kh, kw = ks
    for r, name in ((_rank(x_t), "X"), (_rank(w_t), "W"), (_rank(off_t), "offset")):
        if r is not None and r != 4:
            raise onnx.shape_inference.InferenceError(
                f"{spec.op_type} '{ctx.get_display_name()}': {name} has rank {r}, expected 4"
            )
    name = ctx.get_display_name()
    og = _attr_int(ctx, "offset_group", spec.attr("offset_group").default)
    mask_t = types[4] if len(types) > 4 else None
    if kh is not None and kw is not None:
        for what, tp, want in (("offset", off_t, 2 * og * kh * kw), ("mask", mask_t, og * kh * kw)):
            got = _Dim.of(tp, 1).value
            if got is not None and got != want:
                factor = "2*offset_group*kH*kW" if what == "offset" else "offset_group*kH*kW"
                raise onnx.shape_inference.InferenceError(
                    f"{spec.op_type} '{name}': {what} has {got} channels, expected {factor} = {want}"
                )
    spatial = []
    for axis, k, s, p0, p1, d in ((2, kh, strides[0], pads[0], pads[2], dil[0]),
                                   (3, kw, strides[1], pads[1], pads[3], dil[1])):
        size = _Dim.of(x_t, axis).value
        given = _Dim.of(off_t, axis)  # offset is [N, 2*og*kH*kW, oH, oW]: its (symbolic) dims are the output's
        if size is not None and k is not None:
            out = conv_out_size(size, p0, p1, d, k, s)
            if given.value is not None and given.value != out:
                raise onnx.shape_inference.InferenceError(
                    f"{spec.op_type} '{name}': offset has {'height' if axis == 2 else 'width'} {given.value}, "
                    f"expected the output's {out}"
                )
            spatial.append(_Dim(value=out))
        else:
            spatial.append(given)
    _set_output(ctx, x_t.tensor_type.elem_type, [_Dim.of(x_t, 0), _Dim.of(w_t, 0), *spatial])


def _infer_deform_psroi_pool(ctx) -> None:
    spec = DEFORM_PSROI_POOL
    types = _input_types(ctx, spec)
    data_t, rois_t = types[0], types[1]
    if data_t is None:
        return
    r = _rank(rois_t)
    if r is not None and r != 2:
        raise onnx.shape_inference.InferenceError(
            f"{spec.op_type} '{ctx.get_display_name()}': rois has rank {r}, expected 2 [R, 5]"
        )
    output_dim = ctx.get_attribute("output_dim")
    pooled = ctx.get_attribute("pooled_size")
    dims = [_Dim.of(rois_t, 0), _Dim(value=output_dim.i if output_dim is not None else None),
            _Dim(value=pooled.i if pooled is not None else None),
            _Dim(value=pooled.i if pooled is not None else None)]
    _set_output(ctx, data_t.tensor_type.elem_type, dims)


def _infer_deform_roi_pool(ctx) -> None:
    spec = DEFORM_ROI_POOL
    name = ctx.get_display_name()
    data_t = ctx.get_input_type(0) if ctx.has_input(0) else None
    rois_t = ctx.get_input_type(1) if ctx.has_input(1) else None
    off_t = ctx.get_input_type(2) if ctx.get_num_inputs() > 2 and ctx.has_input(2) else None
    if data_t is None:
        return
    if off_t is not None and off_t.tensor_type.elem_type and data_t.tensor_type.elem_type and \
            off_t.tensor_type.elem_type != data_t.tensor_type.elem_type:
        raise onnx.shape_inference.InferenceError(
            f"{spec.op_type} '{name}': offset has element type "
            f"{helper.tensor_dtype_to_np_dtype(off_t.tensor_type.elem_type).name}, expected data's "
            f"{helper.tensor_dtype_to_np_dtype(data_t.tensor_type.elem_type).name}")
    for what, tp, rank, layout in (("data", data_t, 4, "[N, C, H, W]"), ("rois", rois_t, 2, "[R, 5]"),
                                   ("offset", off_t, 4, "[R, 2, pooled_height, pooled_width]")):
        r = _rank(tp)
        if r is not None and r != rank:
            raise onnx.shape_inference.InferenceError(f"{spec.op_type} '{name}': {what} has rank {r}, expected "
                                                      f"{rank} {layout}")
    ph, pw = ctx.get_attribute("pooled_height"), ctx.get_attribute("pooled_width")
    dims = [_Dim.of(rois_t, 0), _Dim.of(data_t, 1), _Dim(value=ph.i if ph is not None else None),
            _Dim(value=pw.i if pw is not None else None)]
    _set_output(ctx, data_t.tensor_type.elem_type, dims)


_INFER = {DEFORM_CONV2D.op_type: _infer_deform_conv2d, DEFORM_PSROI_POOL.op_type: _infer_deform_psroi_pool,
          DEFORM_ROI_POOL.op_type: _infer_deform_roi_pool}


# --------------------------------------------------------------------------- schemas
def build_schema(spec: OpSpec) -> OpSchema:
    """The ONNX schema of one contract op (domain ``dcn``, version ``DOMAIN_VERSION``)."""
    opt = OpSchema.FormalParameterOption
    inputs = [
        OpSchema.FormalParameter(i.name, "T" if i.dtype is None else f"T_{i.name}",
                                 param_option=opt.Optional if i.optional else opt.Single)
        for i in spec.inputs
    ]
    fixed = [(f"T_{i.name}", list(FIXED_TYPES[i.dtype]), f"{i.name}: {i.dtype} (float64 in float64 nodes)")
             for i in spec.inputs if i.dtype is not None]
    outputs = [OpSchema.FormalParameter(name, "T") for name in spec.outputs]
    attributes = []
    for a in spec.attrs:
        if a.default is not None:
            value = list(a.default) if a.kind == INTS else a.default
            attributes.append(OpSchema.Attribute(a.name, helper.make_attribute(a.name, value), ""))
        else:
            attributes.append(OpSchema.Attribute(a.name, _ATTR_TYPE[a.kind], "", required=a.required))
    schema = OpSchema(
        spec.op_type, DOMAIN, DOMAIN_VERSION, _DOCS.get(spec.op_type, ""),
        inputs=inputs, outputs=outputs,
        type_constraints=[("T", list(TYPES), "the inputs and the output of one node share one element type")]
        + fixed,
        attributes=attributes,
    )
    schema.set_type_and_shape_inference_function(_INFER[spec.op_type])
    return schema


_registered = False


def register() -> None:
    """Register the ``dcn`` schemas with ONNX (once per process)."""
    global _registered
    if _registered:
        return
    for spec in (DEFORM_CONV2D, DEFORM_PSROI_POOL, DEFORM_ROI_POOL):
        if not defs.has(spec.op_type, DOMAIN_VERSION, DOMAIN):
            defs.register_schema(build_schema(spec))
    from .ops.multi_scale_deformable_attention import onnx as msda_onnx  # the op's own schema (its folder)

    if not defs.has(msda_onnx.spec.OP_TYPE, DOMAIN_VERSION, DOMAIN):
        defs.register_schema(msda_onnx.build_schema())
    _registered = True
