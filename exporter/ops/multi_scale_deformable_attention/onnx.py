"""dcn::MultiScaleDeformableAttention in ONNX: the translation of ``dcn::multi_scale_deformable_attention``
calls into one node (attention_weights in value's type, sampling_locations float32, level_start_index
in spatial_shapes' integer type), the schema's shape inference and the reference evaluator's node. The
opt-in rewrite of the GridSample decomposition into our node is :mod:`.fuse` (``dcn-export --fuse-msda``)."""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import onnx
import torch

from exporter import onnx_shapes as shapes

from . import custom  # noqa: F401  (registers torch.ops.dcn.multi_scale_deformable_attention)
from . import reference as ref
from .spec import LAYOUTS, SPEC


def translations(em) -> dict[Any, Callable]:
    """torch op -> function emitting the node (``em``: exporter.translate.Emitter)."""
    def dcn_multi_scale_deformable_attention(value, spatial_shapes, level_start_index, sampling_locations,
                                             attention_weights, im2col_step=64):
        attention_weights = em.like(attention_weights, value)
        sampling_locations = em.float32(sampling_locations, value)
        level_start_index = em.like(level_start_index, spatial_shapes)
        return em.node(SPEC)(value, spatial_shapes, level_start_index, sampling_locations, attention_weights,
                             **em.attrs(SPEC, (im2col_step,)))

    return {torch.ops.dcn.multi_scale_deformable_attention.default: dcn_multi_scale_deformable_attention}


def infer(ctx) -> None:
    types = shapes.input_types(ctx, SPEC)  # value / attention_weights one type, locations float32
    types += [None] * (len(SPEC.inputs) - len(types))
    if types[0] is None:
        return
    for i, inp in enumerate(SPEC.inputs):
        r = shapes.rank(types[i])
        want = len(LAYOUTS[inp.name].split(","))
        if r is not None and r != want:
            raise onnx.shape_inference.InferenceError(
                f"{SPEC.op_type} '{shapes.node_name(ctx)}': {inp.name} has rank {r}, expected {want} "
                f"{LAYOUTS[inp.name]}")
    m, d = shapes.Dim.of(types[0], 2), shapes.Dim.of(types[0], 3)
    md = shapes.Dim(value=m.value * d.value) if m.value is not None and d.value is not None else shapes.Dim()
    shapes.set_output(ctx, types[0].tensor_type.elem_type, [shapes.Dim.of(types[0], 0), shapes.Dim.of(types[3], 1), md])


def evaluate(node: str, inputs: Sequence[Optional[torch.Tensor]], attrs: dict) -> torch.Tensor:
    """The node on the float64 reference (onnx.reference.ReferenceEvaluator, exporter.verify)."""
    value, spatial_shapes, level_start_index, sampling_locations, attention_weights = inputs
    return ref.multi_scale_deformable_attention(value, spatial_shapes, level_start_index,
                                                sampling_locations.to(value.dtype), attention_weights.to(value.dtype),
                                                node=node)
