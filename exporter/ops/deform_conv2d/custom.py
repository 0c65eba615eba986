"""dcn::DeformConv2d as the torch.library custom op ``dcn::deform_conv2d``, with a fake (meta) kernel
for tracing / ``torch.export`` and autograd, so models that use it trace, export and train.

Its argument order is the contract's input order followed by its attributes, so the exporter maps
one call to one ONNX node without reordering. It runs torchvision's kernels (CPU and CUDA) when
torchvision is importable: they compute the same function (tested); asymmetric pads become an
explicit zero pad, which changes nothing since padding and out-of-map neighbours both count as zero.
Otherwise, and for dtypes torchvision lacks, the reference. The backward pass recomputes the forward
under autograd and takes its vector-Jacobian product (torchvision's own backward where its kernel
ran), then applies the contract's border rule to the offset and mask gradients: a sample the contract
does not read (h <= -1, h >= H, w <= -1 or w >= W) has none. torchvision takes the derivative from the
inner neighbour at exactly h = -1 / w = -1 (e.g. zero offsets with padding 1, the first training step
of a model with zero-initialised offsets); with the rule the gradients are the reference's whichever
kernel ran (tests/test_border_gradients.py, against mmcv's fixed expected gradients too).
"""
from __future__ import annotations

import functools
from typing import Optional, Sequence

import torch
from torch import Tensor

from dcn_base.errors import ContractError
from exporter.contract import conv_out_size

from . import reference as ref
from .spec import SPEC


@functools.lru_cache(maxsize=None)
def _torchvision_deform():
    try:
        from torchvision.ops import deform_conv2d as tv  # noqa: PLC0415  (optional: registers torch.ops.torchvision.*)
    except Exception:  # torchvision missing or its ops not loadable
        return None
    return tv


def _check_conv(input, weight, offset, bias, mask, stride, pads, dilation, group, offset_group):
    g, og, _, _ = ref.deform_conv2d_shapes(
        input, offset, weight, bias, mask, tuple(stride), tuple(pads), tuple(dilation)
    )
    if g != group:
        raise ContractError(
            f"{SPEC.op_type}: group is {group}, expected X channels / W.shape[1] = {input.shape[1]}/{weight.shape[1]} = {g}"
        )
    if og != offset_group:
        raise ContractError(
            f"{SPEC.op_type}: offset has {offset.shape[1]} channels, expected 2*offset_group*kH*kW = "
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


@torch.library.custom_op(SPEC.torch_op, mutates_args=())
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
    # the shapes tied together, so that torch.export learns it (an axis declared dynamic on X alone is
    # then reported as fixed by the model, not exported to fail at any other size)
    for what, t in (("offset", offset), ("mask", mask)):
        if t is not None and t.dim() == 4:
            torch._check(t.shape[0] == n, lambda: f"{SPEC.op_type}: {what} has batch {t.shape[0]}, expected X's {n}")
            torch._check(t.shape[2] == oh and t.shape[3] == ow,
                         lambda: f"{SPEC.op_type}: {what} has size {list(t.shape[2:])}, expected the output's "
                                 f"[{oh}, {ow}]")
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
    if result[2] is not None or result[4] is not None:
        result[2], result[4] = _border_rule(input, weight, offset, result[2], result[4], stride, pads, dilation)
    return (*result, None, None, None, None, None)


def _border_rule(input, weight, offset, g_offset, g_mask, stride, pads, dilation):
    """The offset and mask gradients of the samples the contract does not read set to 0 (see the module's
    docstring); the reference's own gradients are unchanged by it."""
    kernel = (weight.shape[2], weight.shape[3])
    dtype = torch.promote_types(input.dtype, weight.dtype)
    inside = ref.samples_inside(offset.detach().to(dtype), (input.shape[2], input.shape[3]), kernel, tuple(stride),
                                tuple(pads), tuple(dilation))  # [N, og, K, oH, oW]
    if g_offset is not None:
        g = g_offset.reshape(inside.shape[:3] + (2,) + inside.shape[3:])
        g_offset = torch.where(inside.unsqueeze(3), g, torch.zeros((), dtype=g.dtype, device=g.device))
        g_offset = g_offset.reshape(offset.shape)
    if g_mask is not None:
        g_mask = torch.where(inside.reshape(g_mask.shape), g_mask, torch.zeros((), dtype=g_mask.dtype,
                                                                             device=g_mask.device))
    return g_offset, g_mask


deform_conv2d_op.register_autograd(_conv_backward, setup_context=_conv_setup)
