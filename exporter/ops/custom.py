"""torch.library custom ops ``dcn::deform_conv2d`` and ``dcn::deform_psroi_pool``.

Their argument order is the contract's input order followed by its attributes, so an
exporter maps one call to one ONNX node without reordering. Each op has a fake
(meta) kernel for tracing / ``torch.export`` and autograd, so models that use them
trace, export and train.

* ``dcn::deform_conv2d`` runs torchvision's kernels (CPU and CUDA) when torchvision is
  importable: they compute the same function (tested); asymmetric pads become an
  explicit zero pad, which changes nothing since padding and out-of-map neighbours
  both count as zero. Otherwise, and for dtypes torchvision lacks, the reference.
* ``dcn::deform_psroi_pool`` runs the vectorized reference.

Backward passes recompute the forward under autograd and take its vector-Jacobian
product, so gradients are those of the reference (or of torchvision's own backward).
"""
from __future__ import annotations

import functools
from typing import Optional, Sequence

import torch
from torch import Tensor

from ..contract import conv_out_size
from . import reference as ref


@functools.lru_cache(maxsize=None)
def _torchvision_deform():
    try:
        from torchvision.ops import deform_conv2d as tv
    except Exception:  # torchvision missing or its ops not loadable
        return None
    return tv


def _check_conv(input, weight, offset, bias, mask, stride, pads, dilation, group, offset_group):
    g, og, _, _ = ref.deform_conv2d_shapes(
        input, offset, weight, bias, mask, tuple(stride), tuple(pads), tuple(dilation)
    )
    if g != group:
        raise ref.ContractError(
            f"DeformConv2d: group is {group}, expected X channels / W.shape[1] = {input.shape[1]}/{weight.shape[1]} = {g}"
        )
    if og != offset_group:
        raise ref.ContractError(
            f"DeformConv2d: offset has {offset.shape[1]} channels, expected 2*offset_group*kH*kW = "
            f"{2 * offset_group * weight.shape[2] * weight.shape[3]}"
        )


def _conv_forward(input, weight, offset, bias, mask, stride, pads, dilation):
    tv = _torchvision_deform()
    if tv is not None and input.dtype in (torch.float32, torch.float64, torch.float16) and (
        input.dtype != torch.float16 or input.is_cuda
    ):
        top, left, bottom, right = pads
        if top == bottom and left == right:
            x, padding = input, (top, left)
        else:
            x, padding = torch.nn.functional.pad(input, (left, right, top, bottom)), (0, 0)
        return tv(x, offset, weight, bias, stride=tuple(stride), padding=padding,
                  dilation=tuple(dilation), mask=mask)
    return ref.deform_conv2d(input, offset, weight, bias, stride=tuple(stride), padding=tuple(pads),
                             dilation=tuple(dilation), mask=mask)


@torch.library.custom_op("dcn::deform_conv2d", mutates_args=())
def deform_conv2d_op(
    input: Tensor,
    weight: Tensor,
    offset: Tensor,
    bias: Optional[Tensor],
    mask: Optional[Tensor],
    stride: Sequence[int],
    pads: Sequence[int],
    dilation: Sequence[int],
    group: int,
    offset_group: int,
) -> Tensor:
    """X, W, offset, B, mask + strides, pads (top, left, bottom, right), dilations, group, offset_group."""
    _check_conv(input, weight, offset, bias, mask, stride, pads, dilation, group, offset_group)
    return _conv_forward(input, weight, offset, bias, mask, stride, pads, dilation).contiguous()


@deform_conv2d_op.register_fake
def _(input, weight, offset, bias, mask, stride, pads, dilation, group, offset_group):
    n, _, h, w = input.shape
    m, _, kh, kw = weight.shape
    oh = conv_out_size(h, pads[0], pads[2], dilation[0], kh, stride[0])
    ow = conv_out_size(w, pads[1], pads[3], dilation[1], kw, stride[1])
    return input.new_empty((n, m, oh, ow))


def _conv_setup(ctx, inputs, output):
    input, weight, offset, bias, mask = inputs[:5]
    ctx.save_for_backward(input, weight, offset, bias, mask)
    ctx.attrs = inputs[5:]


def _conv_backward(ctx, grad):
    input, weight, offset, bias, mask = ctx.saved_tensors
    stride, pads, dilation = ctx.attrs[:3]
    tensors = [input, weight, offset, bias, mask]
    leaves = [t.detach().requires_grad_(True) if t is not None else None for t in tensors]
    with torch.enable_grad():
        out = _conv_forward(*leaves, stride, pads, dilation)
    want = [t for t, need in zip(leaves, ctx.needs_input_grad[:5]) if t is not None and need]
    grads = torch.autograd.grad(out, want, grad, allow_unused=True) if want else []
    it = iter(grads)
    result = [next(it) if (t is not None and need) else None for t, need in zip(leaves, ctx.needs_input_grad[:5])]
    return (*result, None, None, None, None, None)


deform_conv2d_op.register_autograd(_conv_backward, setup_context=_conv_setup)


def _pool_forward(data, rois, trans, spatial_scale, output_dim, group_size, pooled_size, part_size,
                  sample_per_part, trans_std):
    return ref.deform_psroi_pool(
        data, rois, trans, spatial_scale=spatial_scale, output_dim=output_dim, group_size=group_size,
        pooled_size=pooled_size, part_size=part_size, sample_per_part=sample_per_part, trans_std=trans_std,
    )


@torch.library.custom_op("dcn::deform_psroi_pool", mutates_args=())
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


# --------------------------------------------------------------------------- dcn::deform_roi_pool (mmcv's)
def _roi_pool_forward(data, rois, offset, pooled_height, pooled_width, spatial_scale, sampling_ratio, gamma):
    return ref.deform_roi_pool(data, rois, offset, pooled_height=pooled_height, pooled_width=pooled_width,
                               spatial_scale=spatial_scale, sampling_ratio=sampling_ratio, gamma=gamma)


@torch.library.custom_op("dcn::deform_roi_pool", mutates_args=())
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
