"""dcn::DeformRoIPool in ONNX: the translation of ``dcn::deform_roi_pool`` calls into one node (rois cast
to float32), the schema's shape inference and the reference evaluator's node."""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import onnx
import torch
from onnx import helper

from exporter import onnx_shapes as shapes

from . import custom  # noqa: F401  (registers torch.ops.dcn.deform_roi_pool)
from . import reference as ref
from .spec import SPEC


def translations(em) -> dict[Any, Callable]:
    """torch op -> function emitting the node (``em``: exporter.translate.Emitter)."""
    def dcn_deform_roi_pool(data, rois, offset=None, pooled_height=1, pooled_width=1, spatial_scale=1.0,
                            sampling_ratio=0, gamma=0.1):
        attrs = em.attrs(SPEC, (pooled_height, pooled_width, spatial_scale, sampling_ratio, gamma))
        offset, rois = em.like(offset, data), em.float32(rois, data)
        return em.node(SPEC)(*([data, rois] + ([offset] if offset is not None else [])), **attrs)

    return {torch.ops.dcn.deform_roi_pool.default: dcn_deform_roi_pool}


def infer(ctx) -> None:
    spec = SPEC
    name = shapes.node_name(ctx)
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
        r = shapes.rank(tp)
        if r is not None and r != rank:
            raise onnx.shape_inference.InferenceError(f"{spec.op_type} '{name}': {what} has rank {r}, expected "
                                                      f"{rank} {layout}")
    ph, pw = ctx.get_attribute("pooled_height"), ctx.get_attribute("pooled_width")
    dims = [shapes.Dim.of(rois_t, 0), shapes.Dim.of(data_t, 1), shapes.Dim(value=ph.i if ph is not None else None),
            shapes.Dim(value=pw.i if pw is not None else None)]
    shapes.set_output(ctx, data_t.tensor_type.elem_type, dims)

def evaluate(node: str, inputs: Sequence[Optional[torch.Tensor]], attrs: dict) -> torch.Tensor:
    """The node on the float64 reference (onnx.reference.ReferenceEvaluator, exporter.verify)."""
    data, rois, offset = inputs
    return ref.deform_roi_pool(
        data, rois, offset, pooled_height=int(attrs["pooled_height"]), pooled_width=int(attrs["pooled_width"]),
        spatial_scale=float(attrs["spatial_scale"]), sampling_ratio=int(attrs["sampling_ratio"]),
        gamma=float(attrs["gamma"]),
    )
