"""ONNX side of ``dcn::MultiScaleDeformableAttention``: the node schema (type constraints and shape
inference for onnx.checker / onnx.shape_inference), the translation of the torch op into one node, and
the reference evaluator's op (exporter.verify's last-resort runtime)."""
from __future__ import annotations

from typing import Optional

import numpy as np
import onnx
from onnx import TypeProto, helper
from onnx.defs import OpSchema

from ...contract import DOMAIN, DOMAIN_VERSION
from . import spec

FLOAT_TYPES = ["tensor(float)", "tensor(float16)", "tensor(double)"]
INDEX_TYPES = ["tensor(int64)", "tensor(int32)"]
LOCATION_TYPES = ["tensor(float)", "tensor(double)"]


def _dims(tp: Optional[TypeProto]) -> Optional[list]:
    if tp is None or not tp.HasField("tensor_type") or not tp.tensor_type.HasField("shape"):
        return None
    return list(tp.tensor_type.shape.dim)


def _infer(ctx) -> None:
    name = ctx.get_display_name()
    types = [ctx.get_input_type(i) if ctx.has_input(i) else None for i in range(ctx.get_num_inputs())]
    if not types or types[0] is None:
        return
    elem = types[0].tensor_type.elem_type
    for i, what in ((4, "attention_weights"),):
        e = types[i].tensor_type.elem_type if len(types) > i and types[i] is not None else 0
        if e and elem and e != elem:
            raise onnx.shape_inference.InferenceError(
                f"{spec.OP_TYPE} '{name}': {what} is {helper.tensor_dtype_to_np_dtype(e).name}, expected value's "
                f"{helper.tensor_dtype_to_np_dtype(elem).name}")
    loc = types[3] if len(types) > 3 else None
    le = loc.tensor_type.elem_type if loc is not None else 0
    if le and le != onnx.TensorProto.FLOAT and not (le == onnx.TensorProto.DOUBLE and elem == onnx.TensorProto.DOUBLE):
        raise onnx.shape_inference.InferenceError(
            f"{spec.OP_TYPE} '{name}': sampling_locations is {helper.tensor_dtype_to_np_dtype(le).name}, expected "
            f"float32 (also in a float16 node)")
    for i, (what, rank) in enumerate((("value", 4), ("spatial_shapes", 2), ("level_start_index", 1),
                                      ("sampling_locations", 6), ("attention_weights", 5))):
        d = _dims(types[i]) if i < len(types) else None
        if d is not None and len(d) != rank:
            raise onnx.shape_inference.InferenceError(
                f"{spec.OP_TYPE} '{name}': {what} has rank {len(d)}, expected {rank} {spec.LAYOUTS[what]}")
    out = TypeProto()
    out.tensor_type.elem_type = elem
    shape = out.tensor_type.shape
    v, lo = _dims(types[0]), _dims(loc)
    n, q, md = shape.dim.add(), shape.dim.add(), shape.dim.add()
    if v is not None:
        n.CopyFrom(v[0])
        if v[2].HasField("dim_value") and v[3].HasField("dim_value"):
            md.dim_value = v[2].dim_value * v[3].dim_value
    if lo is not None:
        q.CopyFrom(lo[1])
    ctx.set_output_type(0, out)


def build_schema() -> OpSchema:
    opt = OpSchema.FormalParameterOption
    return _with_inference(OpSchema(
        spec.OP_TYPE, DOMAIN, DOMAIN_VERSION,
        "Deformable DETR's multi-scale deformable attention core; see shared/design/ops.md.",
        inputs=[OpSchema.FormalParameter("value", "T", param_option=opt.Single),
                OpSchema.FormalParameter("spatial_shapes", "I", param_option=opt.Single),
                OpSchema.FormalParameter("level_start_index", "I", param_option=opt.Single),
                OpSchema.FormalParameter("sampling_locations", "TL", param_option=opt.Single),
                OpSchema.FormalParameter("attention_weights", "T", param_option=opt.Single)],
        outputs=[OpSchema.FormalParameter("Y", "T")],
        type_constraints=[("T", FLOAT_TYPES, "value, attention_weights and Y"),
                          ("I", INDEX_TYPES, "spatial_shapes and level_start_index: one integer type"),
                          ("TL", LOCATION_TYPES, "sampling_locations: float32 (float64 in float64 nodes)")],
        attributes=[OpSchema.Attribute("im2col_step", helper.make_attribute("im2col_step", 64), "")],
    ))


def _with_inference(schema: OpSchema) -> OpSchema:
    schema.set_type_and_shape_inference_function(_infer)
    return schema


def translation(op, ir, dcn):
    """The function torch's ONNX exporter calls for ``dcn::multi_scale_deformable_attention``."""
    node = getattr(dcn, spec.OP_TYPE)

    def dcn_multi_scale_deformable_attention(value, spatial_shapes, level_start_index, sampling_locations,
                                             attention_weights, im2col_step=64):
        if attention_weights.dtype is not None and value.dtype is not None and attention_weights.dtype != value.dtype:
            attention_weights = op.Cast(attention_weights, to=value.dtype)
        if sampling_locations.dtype not in (None, ir.DataType.FLOAT) and not (
                sampling_locations.dtype == ir.DataType.DOUBLE and value.dtype == ir.DataType.DOUBLE):
            sampling_locations = op.Cast(sampling_locations, to=ir.DataType.FLOAT)
        if level_start_index.dtype is not None and spatial_shapes.dtype is not None and \
                level_start_index.dtype != spatial_shapes.dtype:
            level_start_index = op.Cast(level_start_index, to=spatial_shapes.dtype)
        return node(value, spatial_shapes, level_start_index, sampling_locations, attention_weights,
                    im2col_step=int(im2col_step))

    return dcn_multi_scale_deformable_attention


def reference_op():
    """onnx.reference OpRun running the float64 / float32 PyTorch reference (float16 as float32)."""
    import torch
    from onnx.reference.op_run import OpRun

    from .reference import multi_scale_deformable_attention as ref

    class MultiScaleDeformableAttention(OpRun):
        op_domain = DOMAIN

        def _run(self, value, spatial_shapes, level_start_index, sampling_locations, attention_weights, **_):
            def t(a):
                x = torch.from_numpy(np.array(a, copy=True))
                return x.float() if x.dtype == torch.float16 else x

            y = ref(t(value), t(spatial_shapes), t(level_start_index), t(sampling_locations).to(t(value).dtype),
                    t(attention_weights), node=self.onnx_node.name)
            return (y.numpy().astype(value.dtype),)

    return MultiScaleDeformableAttention
