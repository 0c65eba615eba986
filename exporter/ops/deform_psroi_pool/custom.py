"""dcn::DeformPSROIPool as the torch.library custom op ``dcn::deform_psroi_pool``: the contract's inputs
then its attributes in order (``no_trans=1`` ignores trans), a fake (meta) kernel for tracing /
``torch.export``, and autograd through the vectorized reference (its vector-Jacobian product)."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from . import reference as ref
from .spec import SPEC


def _pool_forward(data, rois, trans, spatial_scale, output_dim, group_size, pooled_size, part_size,
                  sample_per_part, trans_std):
    return ref.deform_psroi_pool(
        data, rois, trans, spatial_scale=spatial_scale, output_dim=output_dim, group_size=group_size,
        pooled_size=pooled_size, part_size=part_size, sample_per_part=sample_per_part, trans_std=trans_std,
    )


@torch.library.custom_op(SPEC.torch_op, mutates_args=())
def deform_psroi_pool_op(
    data: Tensor,
    rois: Tensor,
    trans: Optional[Tensor],
    spatial_scale: float,
    output_dim: int,
    group_size: int,
    pooled_size: int,
    part_size: int,
    sample_per_part: int,
    trans_std: float,
    no_trans: int,
) -> Tensor:
    """data, rois, trans + the contract's attributes in its order (no_trans=1 ignores trans)."""
    return _pool_forward(data, rois, None if no_trans else trans, spatial_scale, output_dim, group_size,
                         pooled_size, part_size, sample_per_part, trans_std).contiguous()


@deform_psroi_pool_op.register_fake
def _(data, rois, trans, spatial_scale, output_dim, group_size, pooled_size, part_size, sample_per_part,
      trans_std, no_trans):
    return data.new_empty((rois.shape[0], output_dim, pooled_size, pooled_size))


def _pool_setup(ctx, inputs, output):
    data, rois, trans = inputs[:3]
    ctx.save_for_backward(data, rois, trans)
    ctx.attrs = inputs[3:]


def _pool_backward(ctx, grad):
    data, rois, trans = ctx.saved_tensors
    attrs = ctx.attrs
    no_trans = attrs[-1]
    d = data.detach().requires_grad_(True)
    t = trans.detach().requires_grad_(True) if (trans is not None and not no_trans) else None
    with torch.enable_grad():
        out = _pool_forward(d, rois.detach(), t, *attrs[:-1])
    want = [d] + ([t] if t is not None else [])
    grads = torch.autograd.grad(out, want, grad, allow_unused=True)
    gd = grads[0] if ctx.needs_input_grad[0] else None
    gt = None
    if t is not None and ctx.needs_input_grad[2]:
        gt = grads[1] if grads[1] is not None else torch.zeros_like(trans)
    return (gd, None, gt) + (None,) * 8


deform_psroi_pool_op.register_autograd(_pool_backward, setup_context=_pool_setup)
