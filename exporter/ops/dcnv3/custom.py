"""torch.library op ``dcn::dcnv3``: the contract's inputs (X, offset, mask) then its attributes in order,
so an exporter maps one call to one ``dcn::DCNv3`` node. Runs the reference (exporter/ops/dcnv3/
reference.py); a fake kernel for tracing / ``torch.export``; backward through the reference's autograd.

Also the helpers ``dcn::dcnv4`` (exporter/ops/dcnv4/custom.py) shares: the fake output and the backward.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor

from . import reference as ref
from .spec import out_size

N_ATTRS = 8  # kernel_shape, strides, pads, dilations, group, group_channels, offset_scale, remove_center


def attr_kwargs(kernel_shape, strides, pads, dilations, group, group_channels, offset_scale, remove_center) -> dict:
    return dict(kernel_shape=list(kernel_shape), strides=list(strides), pads=list(pads), dilations=list(dilations),
                group=int(group), group_channels=int(group_channels), offset_scale=float(offset_scale),
                remove_center=int(remove_center))


def fake_output(x: Tensor, kernel_shape, strides, pads, dilations) -> Tensor:
    """[N, Ho, Wo, C] (symbolic sizes stay symbolic)."""
    n, h, w, c = x.shape
    ho = out_size(h, pads[0], pads[2], dilations[0], kernel_shape[0], strides[0])
    wo = out_size(w, pads[1], pads[3], dilations[1], kernel_shape[1], strides[1])
    return x.new_empty((n, ho, wo, c))


def register_backward(op, forward: Callable, n_tensors: int) -> None:
    """Backward of a dcn op with ``n_tensors`` tensor inputs then N_ATTRS attributes: the vector-Jacobian
    product of ``forward`` (the reference) recomputed under autograd."""

    def setup(ctx, inputs, output):
        ctx.save_for_backward(*inputs[:n_tensors])
        ctx.attrs = inputs[n_tensors:]

    def backward(ctx, grad):
        leaves = [t.detach().requires_grad_(True) for t in ctx.saved_tensors]
        with torch.enable_grad():
            out = forward(*leaves, *ctx.attrs)
        need = ctx.needs_input_grad[:n_tensors]
        want = [t for t, n in zip(leaves, need) if n]
        grads = iter(torch.autograd.grad(out, want, grad, allow_unused=True) if want else [])
        result = []
        for t, n in zip(leaves, need):
            g = next(grads) if n else None
            result.append(torch.zeros_like(t) if n and g is None else g)
        return (*result, *([None] * N_ATTRS))

    op.register_autograd(backward, setup_context=setup)


def _forward(x, offset, mask, kernel_shape, strides, pads, dilations, group, group_channels, offset_scale,
             remove_center):
    return ref.dcnv3(x, offset, mask, **attr_kwargs(kernel_shape, strides, pads, dilations, group, group_channels,
                                                    offset_scale, remove_center))


@torch.library.custom_op("dcn::dcnv3", mutates_args=())
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
