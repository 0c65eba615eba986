"""dcn::DeformConv2d's plain-PyTorch reference, written from the contract: *the truth* every other
implementation (C++ CPU, CUDA, ONNX Runtime op, TensorRT plugin, standard DeformConv) is tested
against. Vectorized (no Python loops over outputs), differentiable (autograd through gather),
device-agnostic and exact in float64. See ``../shared/design/ops.md``.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from dcn_base.errors import ContractError
from exporter.contract import check_limits, conv_out_size
from exporter.ops.common import IntOrSeq, bilinear_gather, normalize_pads, pair

from .spec import SPEC

OP = SPEC.op_type


def deform_conv2d_shapes(
    input: Tensor,
    offset: Tensor,
    weight: Tensor,
    bias: Optional[Tensor],
    mask: Optional[Tensor],
    stride: tuple[int, int],
    pads: tuple[int, int, int, int],
    dilation: tuple[int, int],
    name: str = "",
) -> tuple[int, int, int, int]:
    """Check shapes against the contract; return (group, offset_group, out_h, out_w)."""
    op = f"{OP}{f' {name!r}' if name else ''}"
    if input.dim() != 4:
        raise ContractError(f"{op}: X has rank {input.dim()} (shape {list(input.shape)}), expected 4 [N, C, H, W]")
    if weight.dim() != 4:
        raise ContractError(f"{op}: W has rank {weight.dim()} (shape {list(weight.shape)}), expected 4 [M, C/group, kH, kW]")
    if offset.dim() != 4:
        raise ContractError(f"{op}: offset has rank {offset.dim()}, expected 4 [N, 2*offset_group*kH*kW, oH, oW]")
    N, C, H, W = input.shape
    M, Cg, kH, kW = weight.shape
    for attr, vals, low in (("strides", stride, 1), ("dilations", dilation, 1), ("pads", pads, 0)):
        if any(v < low for v in vals):
            raise ContractError(f"{op}: {attr} is {list(vals)}, expected every value >= {low}")
    check_limits(OP, name, {"strides": stride, "pads": pads, "dilations": dilation})
    if Cg <= 0 or C % Cg != 0:
        raise ContractError(f"{op}: X has {C} channels, expected a multiple of W.shape[1] = C/group = {Cg}")
    group = C // Cg
    if M % group != 0:
        raise ContractError(f"{op}: W has {M} output channels, expected a multiple of group = {group}")
    K = kH * kW
    if offset.shape[1] % (2 * K) != 0 or offset.shape[1] == 0:
        raise ContractError(
            f"{op}: offset has {offset.shape[1]} channels, expected a non-zero multiple of 2*kH*kW = {2 * K}"
        )
    offset_group = offset.shape[1] // (2 * K)
    if C % offset_group != 0:
        raise ContractError(f"{op}: X has {C} channels, expected a multiple of offset_group = {offset_group}")
    out_h = conv_out_size(H, pads[0], pads[2], dilation[0], kH, stride[0])
    out_w = conv_out_size(W, pads[1], pads[3], dilation[1], kW, stride[1])
    if out_h <= 0 or out_w <= 0:
        raise ContractError(f"{op}: output size is {out_h}x{out_w} for input {H}x{W}, expected positive")
    if offset.shape[0] != N or tuple(offset.shape[2:]) != (out_h, out_w):
        raise ContractError(
            f"{op}: offset has shape {list(offset.shape)}, expected [{N}, {offset.shape[1]}, {out_h}, {out_w}]"
        )
    if mask is not None:
        want = [N, offset_group * K, out_h, out_w]
        if list(mask.shape) != want:
            raise ContractError(
                f"{op}: mask has shape {list(mask.shape)}, expected {want} (offset_group*kH*kW = {offset_group * K} channels)"
            )
    if bias is not None and list(bias.shape) != [M]:
        raise ContractError(f"{op}: B has shape {list(bias.shape)}, expected [{M}]")
    return group, offset_group, out_h, out_w


def sample_positions(offset: Tensor, kernel: tuple[int, int], stride: tuple[int, int],
                     pads: tuple[int, int, int, int], dilation: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """The contract's sampling positions (h, w), each [N, offset_group, kH*kW, oH, oW], in offset's dtype:
    h = oh*stride - pad_top + i*dilation + offset_h (kernel point k = i*kW + j), w alike. The exact integer
    base plus the offset, one rounding, as every kernel computes it."""
    N, _, oh, ow = offset.shape
    kH, kW = kernel
    K = kH * kW
    dev, dtype = offset.device, offset.dtype
    ho = torch.arange(oh, device=dev, dtype=dtype) * stride[0] - pads[0]
    wo = torch.arange(ow, device=dev, dtype=dtype) * stride[1] - pads[1]
    ki = (torch.arange(kH, device=dev, dtype=dtype) * dilation[0]).repeat_interleave(kW)  # [K]
    kj = (torch.arange(kW, device=dev, dtype=dtype) * dilation[1]).repeat(kH)  # [K]
    base_h = ki.view(K, 1, 1) + ho.view(1, oh, 1)  # [K, oh, 1]
    base_w = kj.view(K, 1, 1) + wo.view(1, 1, ow)  # [K, 1, ow]
    off = offset.reshape(N, offset.shape[1] // (2 * K), K, 2, oh, ow)
    return base_h + off[:, :, :, 0], base_w + off[:, :, :, 1]


def samples_inside(offset: Tensor, size: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int],
                   pads: tuple[int, int, int, int], dilation: tuple[int, int]) -> Tensor:
    """[N, offset_group, kH*kW, oH, oW]: the samples the contract reads (-1 < h < H and -1 < w < W); any
    other sample is 0 whatever its position, so its offset and mask gradients are 0 (also exactly on
    h = -1, where the inner neighbour's derivative is not the contract's)."""
    h, w = sample_positions(offset, kernel, stride, pads, dilation)
    return (h > -1) & (h < size[0]) & (w > -1) & (w < size[1])


def deform_conv2d(
    input: Tensor,
    offset: Tensor,
    weight: Tensor,
    bias: Optional[Tensor] = None,
    stride: IntOrSeq = 1,
    padding: IntOrSeq = 0,
    dilation: IntOrSeq = 1,
    mask: Optional[Tensor] = None,
) -> Tensor:
    """Deformable convolution v1 (``mask is None``) and v2, torchvision's signature.

    ``padding`` takes 1, 2 or 4 values (top, left, bottom, right). Groups and offset
    groups are inferred from the shapes as torchvision does.
    """
    stride_ = pair(stride, "strides", OP)
    dil = pair(dilation, "dilations", OP)
    pads = normalize_pads(padding, OP)
    group, og, oh, ow = deform_conv2d_shapes(input, offset, weight, bias, mask, stride_, pads, dil)
    N, C, H, W = input.shape
    M, Cg, kH, kW = weight.shape
    K = kH * kW
    L = oh * ow
    dtype = torch.promote_types(input.dtype, weight.dtype)

    h, w = sample_positions(offset.to(dtype), (kH, kW), stride_, pads, dil)  # [N, og, K, oh, ow]

    Cog = C // og
    planes = input.to(dtype).reshape(N * og, Cog, H, W)
    cols = bilinear_gather(planes, h.reshape(N * og, K * L), w.reshape(N * og, K * L))  # [N*og, Cog, K*L]
    cols = cols.reshape(N, og, Cog, K, L)
    if mask is not None:  # a sample outside the map reads nothing: 0 whatever the mask (inf / NaN too)
        inside = ((h > -1) & (h < H) & (w > -1) & (w < W)).reshape(N, og, 1, K, L)
        cols = torch.where(inside, cols * mask.to(dtype).reshape(N, og, 1, K, L), torch.zeros_like(cols))
    # [N, C, K, L] -> per convolution group [N, group, Cg*K, L]
    cols = cols.reshape(N, group, Cg * K, L)
    wmat = weight.to(dtype).reshape(group, M // group, Cg * K)
    out = torch.einsum("gmk,ngkl->ngml", wmat, cols).reshape(N, M, oh, ow)
    if bias is not None:
        out = out + bias.to(dtype).view(1, M, 1, 1)
    return out


def example_inputs(seed: int = 0) -> tuple[dict, dict]:
    """A small valid case (float32 arrays by input name, attributes by contract name), awkward on purpose
    (groups and offset groups 2, kernel 3x2, asymmetric stride / pads): for generic tests that run
    every registered op (FP16 conversion, fuzz cases)."""
    import numpy as np  # noqa: PLC0415  (tests only)

    rng = np.random.default_rng(seed)
    strides, pads, dilations = [1, 2], [1, 0, 0, 1], [1, 1]
    oh, ow = conv_out_size(6, 1, 0, 1, 3, 1), conv_out_size(7, 0, 1, 1, 2, 2)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    inputs = {"X": f(2, 4, 6, 7), "W": f(6, 2, 3, 2), "offset": f(2, 2 * 2 * 6, oh, ow), "B": f(6),
              "mask": rng.random((2, 2 * 6, oh, ow)).astype(np.float32)}
    return inputs, {"strides": strides, "pads": pads, "dilations": dilations, "group": 2, "offset_group": 2}
