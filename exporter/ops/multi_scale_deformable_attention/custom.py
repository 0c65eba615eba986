"""torch.library op ``dcn::multi_scale_deformable_attention``: the contract's inputs in order, then
im2col_step; a fake kernel for tracing / torch.export (the output shape needs no data) and autograd
through the reference (gradients for value, sampling_locations and attention_weights)."""
from __future__ import annotations

import torch
from torch import Tensor

from . import reference as ref
from .spec import SPEC


def _forward(value, spatial_shapes, level_start_index, sampling_locations, attention_weights):
    loc_dtype = torch.float64 if value.dtype == torch.float64 else torch.float32
    if value.dtype == torch.float16:  # contract: sample and accumulate in float, store half
        out = ref.multi_scale_deformable_attention(value.float(), spatial_shapes, level_start_index,
                                                   sampling_locations.to(loc_dtype), attention_weights.float())
        return out.half()
    return ref.multi_scale_deformable_attention(value, spatial_shapes, level_start_index,
                                                sampling_locations.to(loc_dtype), attention_weights)


@torch.library.custom_op(SPEC.torch_op, mutates_args=())
def multi_scale_deformable_attention_op(
    value: Tensor,
    spatial_shapes: Tensor,
    level_start_index: Tensor,
    sampling_locations: Tensor,
    attention_weights: Tensor,
    im2col_step: int,
) -> Tensor:
    """value [N, S, M, D], spatial_shapes [L, 2], level_start_index [L], sampling_locations
    [N, Lq, M, L, P, 2] (float32), attention_weights [N, Lq, M, L, P] + im2col_step -> [N, Lq, M*D]."""
    return _forward(value, spatial_shapes, level_start_index, sampling_locations, attention_weights).contiguous()


@multi_scale_deformable_attention_op.register_fake
def _(value, spatial_shapes, level_start_index, sampling_locations, attention_weights, im2col_step):
    N, _, M, D = value.shape
    return value.new_empty((N, sampling_locations.shape[1], M * D))


def _setup(ctx, inputs, output):
    ctx.save_for_backward(*inputs[:5])


def _backward(ctx, grad):
    value, shapes, starts, loc, weights = ctx.saved_tensors
    leaves = [t.detach().requires_grad_(True) if t.is_floating_point() else t.detach()
              for t in (value, shapes, starts, loc, weights)]
    want = [i for i in (0, 3, 4) if ctx.needs_input_grad[i]]
    if not want:
        return (None,) * 6
    with torch.enable_grad():
        out = _forward(*leaves)
    grads = torch.autograd.grad(out, [leaves[i] for i in want], grad, allow_unused=True)
    result = [None] * 6
    for i, g in zip(want, grads):
        result[i] = g if g is not None else torch.zeros_like(leaves[i])
    return tuple(result)


multi_scale_deformable_attention_op.register_autograd(_backward, setup_context=_setup)
