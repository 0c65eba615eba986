"""torch.library op ``dcn::dcnv4``: X, offset_mask, then the contract's attributes in order (one call,
one ``dcn::DCNv4`` node). Runs the reference; fake kernel and backward through the reference's autograd
(exporter/ops/aggregation.py)."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from exporter.ops.aggregation import attr_kwargs, fake_output, register_backward

from . import reference as ref
from .spec import SPEC


def _forward(x, offset_mask, kernel_shape, strides, pads, dilations, group, group_channels, offset_scale,
             remove_center):
    return ref.dcnv4(x, offset_mask, **attr_kwargs(kernel_shape, strides, pads, dilations, group, group_channels,
                                                   offset_scale, remove_center))


@torch.library.custom_op(SPEC.torch_op, mutates_args=())
def dcnv4_op(
    X: Tensor,
    offset_mask: Tensor,
    kernel_shape: Sequence[int],
    strides: Sequence[int],
    pads: Sequence[int],
    dilations: Sequence[int],
    group: int,
    group_channels: int,
    offset_scale: float,
    remove_center: int,
) -> Tensor:
    """X [N, H, W, C], offset_mask [N, Ho, Wo, K >= G*P*3] + the contract's attributes."""
    return _forward(X, offset_mask, kernel_shape, strides, pads, dilations, group, group_channels, offset_scale,
                    remove_center).contiguous()


@dcnv4_op.register_fake
def _(X, offset_mask, kernel_shape, strides, pads, dilations, group, group_channels, offset_scale, remove_center):
    return fake_output(X, kernel_shape, strides, pads, dilations)


register_backward(dcnv4_op, _forward, 2)
