"""dcn::DeformRoIPool as the torch.library custom op ``dcn::deform_roi_pool`` (mmcv's semantics): the
contract's inputs then its attributes in order, a fake (meta) kernel for tracing / ``torch.export``,
and autograd through the vectorized reference (its vector-Jacobian product)."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from . import reference as ref
from .spec import SPEC


def _roi_pool_forward(data, rois, offset, pooled_height, pooled_width, spatial_scale, sampling_ratio, gamma):
    return ref.deform_roi_pool(data, rois, offset, pooled_height=pooled_height, pooled_width=pooled_width,
                               spatial_scale=spatial_scale, sampling_ratio=sampling_ratio, gamma=gamma)


@torch.library.custom_op(SPEC.torch_op, mutates_args=())
def deform_roi_pool_op(
    data: Tensor,
    rois: Tensor,
    offset: Optional[Tensor],
    pooled_height: int,
    pooled_width: int,
    spatial_scale: float,
    sampling_ratio: int,
    gamma: float,
) -> Tensor:
    """data, rois, offset + the contract's attributes in its order (mmcv's DeformRoIPool semantics)."""
    return _roi_pool_forward(data, rois, offset, pooled_height, pooled_width, spatial_scale, sampling_ratio,
                             gamma).contiguous()


@deform_roi_pool_op.register_fake
def _(data, rois, offset, pooled_height, pooled_width, spatial_scale, sampling_ratio, gamma):
    if offset is not None and offset.numel() > 0:  # one offset per RoI: the RoI count tied for torch.export
        torch._check(offset.shape[0] == rois.shape[0],
                     lambda: f"{SPEC.op_type}: offset has {offset.shape[0]} RoIs, expected rois' {rois.shape[0]}")
    return data.new_empty((rois.shape[0], data.shape[1], pooled_height, pooled_width))


def _roi_pool_setup(ctx, inputs, output):
    data, rois, offset = inputs[:3]
    ctx.save_for_backward(data, rois, offset)
    ctx.attrs = inputs[3:]


def _roi_pool_backward(ctx, grad):
    data, rois, offset = ctx.saved_tensors
    d = data.detach().requires_grad_(True)
    o = offset.detach().requires_grad_(True) if offset is not None else None
    with torch.enable_grad():
        out = _roi_pool_forward(d, rois.detach(), o, *ctx.attrs)
    want = [d] + ([o] if o is not None else [])
    grads = torch.autograd.grad(out, want, grad, allow_unused=True)
    gd = grads[0] if ctx.needs_input_grad[0] else None
    go = None
    if o is not None and ctx.needs_input_grad[2]:
        go = grads[1] if grads[1] is not None else torch.zeros_like(offset)
    return (gd, None, go) + (None,) * 5


deform_roi_pool_op.register_autograd(_roi_pool_backward, setup_context=_roi_pool_setup)
