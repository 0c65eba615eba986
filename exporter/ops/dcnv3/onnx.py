"""dcn::DCNv3 in ONNX: the translation of ``dcn::dcnv3`` calls into one node (attributes by the contract),
the schema's shape inference (the aggregation ops' shared checks, exporter/ops/aggregation_onnx.py, with
DCNv3's offset and mask channels) and the reference evaluator's node."""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import torch

from exporter.ops import aggregation_onnx

from . import custom  # noqa: F401  (registers torch.ops.dcn.dcnv3)
from . import reference as ref
from .spec import SPEC


def translations(em) -> dict[Any, Callable]:
    """torch op -> function emitting the node (``em``: exporter.translate.Emitter)."""
    # parameter names are the torch op's schema argument names (FX may pass keywords)
    def dcn_dcnv3(X, offset, mask, kernel_shape, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), group=1,
                  group_channels=1, offset_scale=1.0, remove_center=0):
        attrs = em.attrs(SPEC, (kernel_shape, strides, pads, dilations, group, group_channels, offset_scale,
                                remove_center))
        return em.node(SPEC)(X, em.like(offset, X), em.like(mask, X), **attrs)

    return {torch.ops.dcn.dcnv3.default: dcn_dcnv3}


def _channels(group: int, P: int) -> list[tuple[int, int, str, bool]]:
    return [(1, 2 * group * P, "group*P*2", False), (2, group * P, "group*P", False)]


def infer(ctx) -> None:
    aggregation_onnx.infer(SPEC, ctx, _channels)


def evaluate(node: str, inputs: Sequence[Optional[torch.Tensor]], attrs: dict) -> torch.Tensor:
    """The node on the float64 reference (onnx.reference.ReferenceEvaluator, exporter.verify)."""
    X, offset, mask = inputs
    return ref.dcnv3(X, offset, mask, node=node, **attrs)
