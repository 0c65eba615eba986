"""dcn::DeformPSROIPool in ONNX: the translation of ``dcn::deform_psroi_pool`` calls into one node (rois
cast to float32, trans left out with no_trans), the schema's shape inference and the reference
evaluator's node."""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import onnx
import torch

from exporter import onnx_shapes as shapes

from . import custom  # noqa: F401  (registers torch.ops.dcn.deform_psroi_pool)
from . import reference as ref
from .spec import SPEC


def translations(em) -> dict[Any, Callable]:
    """torch op -> function emitting the node (``em``: exporter.translate.Emitter)."""
    def dcn_deform_psroi_pool(data, rois, trans=None, spatial_scale=1.0, output_dim=1, group_size=1,
                              pooled_size=1, part_size=0, sample_per_part=4, trans_std=0.0, no_trans=0):
        attrs = em.attrs(SPEC, (spatial_scale, output_dim, group_size, pooled_size, part_size, sample_per_part,
                                trans_std, no_trans))
        if trans is None:
            attrs["no_trans"] = 1
        trans, rois = em.like(trans, data), em.float32(rois, data)
        inputs = [data, rois] + ([trans] if trans is not None and not attrs["no_trans"] else [])
        return em.node(SPEC)(*inputs, **attrs)

    return {torch.ops.dcn.deform_psroi_pool.default: dcn_deform_psroi_pool}


def infer(ctx) -> None:
    spec = SPEC
    types = shapes.input_types(ctx, spec)
    data_t, rois_t = types[0], types[1]
    if data_t is None:
        return
    r = shapes.rank(rois_t)
    if r is not None and r != 2:
        raise onnx.shape_inference.InferenceError(
            f"{spec.op_type} '{shapes.node_name(ctx)}': rois has rank {r}, expected 2 [R, 5]"
        )
    output_dim = ctx.get_attribute("output_dim")
    pooled = ctx.get_attribute("pooled_size")
    dims = [shapes.Dim.of(rois_t, 0), shapes.Dim(value=output_dim.i if output_dim is not None else None),
            shapes.Dim(value=pooled.i if pooled is not None else None),
            shapes.Dim(value=pooled.i if pooled is not None else None)]
    shapes.set_output(ctx, data_t.tensor_type.elem_type, dims)

def evaluate(node: str, inputs: Sequence[Optional[torch.Tensor]], attrs: dict) -> torch.Tensor:
    """The node on the float64 reference (onnx.reference.ReferenceEvaluator, exporter.verify)."""
    data, rois, trans = inputs
    return ref.deform_psroi_pool(
        data, rois, None if attrs["no_trans"] else trans, spatial_scale=float(attrs["spatial_scale"]),
        output_dim=int(attrs["output_dim"]), group_size=int(attrs["group_size"]),
        pooled_size=int(attrs["pooled_size"]), part_size=int(attrs["part_size"]),
        sample_per_part=int(attrs["sample_per_part"]), trans_std=float(attrs["trans_std"]),
    )
