"""torch.library op ``dcn::dcnv3``: the contract's inputs (X, offset, mask) then its attributes in order,
so the exporter maps one call to one ``dcn::DCNv3`` node. Runs the reference; a fake kernel for tracing /
``torch.export``; backward through the reference's autograd (exporter/ops/aggregation.py)."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from exporter.ops.aggregation import attr_kwargs, fake_output, register_backward

from . import reference as ref
from .spec import SPEC


def _forward(x, offset, mask, kernel_shape, strides, pads, dilations, group, group_channels, offset_scale,
             remove_center):
    return ref.dcnv3(x, offset, mask, **attr_kwargs(kernel_shape, strides, pads, dilations, group, group_channels,
                                                    offset_scale, remove_center))


@torch.library.custom_op(SPEC.torch_op, mutates_args=())
def dcnv3_op(
    X: Tensor,
    offset: Tensor,
    mask: Tensor,
    kernel_shape: Sequence[int],
    strides: Sequence[int],
    pads: Sequence[int],
    dilations: Sequence[int],
    group: int,
    group_channels: int,
    offset_scale: float,
    remove_center: int,
) -> Tensor:
    """X [N, H, W, C], offset [N, Ho, Wo, G*P*2], mask [N, Ho, Wo, G*P] + the contract's attributes."""
    return _forward(X, offset, mask, kernel_shape, strides, pads, dilations, group, group_channels, offset_scale,
                    remove_center).contiguous()


@dcnv3_op.register_fake
def _(X, offset, mask, kernel_shape, strides, pads, dilations, group, group_channels, offset_scale, remove_center):
    return fake_output(X, kernel_shape, strides, pads, dilations)


register_backward(dcnv3_op, _forward, 3)
