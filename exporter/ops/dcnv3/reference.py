"""Plain-PyTorch reference of ``dcn::DCNv3`` (and the core ``dcn::DCNv4`` shares), from the contract.

The truth every other implementation (ONNX Runtime op, CUDA kernels, TensorRT plugin) is tested
against: vectorised, differentiable, device-agnostic, exact in float64; float32 / float16 inputs
are sampled and summed in float32 and the result stored in the input's type.

    cw = floor(dw*(kw-1)/2),  ch = floor(dh*(kh-1)/2)
    points p: i over the kernel's width (outer), j over its height (inner), centre skipped with remove_center
    x = wo*sw - left + cw + offset_scale*(i*dw - cw + dx_p)
    y = ho*sh - top  + ch + offset_scale*(j*dh - ch + dy_p)
    Y[n, ho, wo, g*Cg + c] = sum_p m_p * bilinear(X[n, :, :, g*Cg + c], y, x)

A sample outside the map (y <= -1, y >= H, x <= -1, x >= W, or NaN) adds nothing whatever its mask;
inside, each of the four neighbours outside the map counts zero (DeformConv2d's bilinear).
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from ...errors import ContractError
from ..reference import bilinear_gather
from .spec import DCNV3, check_attrs, out_size, points


def point_grid(kernel_shape: Sequence[int], dilations: Sequence[int], remove_center: int, dtype, device):
    """The kernel grid of the P points, x-major: (gx, gy) = (i*dw - cw, j*dh - ch), each [P]."""
    kh, kw = kernel_shape
    dh, dw = dilations
    i = torch.arange(kw, device=device).repeat_interleave(kh)  # outer: the kernel's width
    j = torch.arange(kh, device=device).repeat(kw)  # inner: its height
    if remove_center:
        keep = ~((i == kw // 2) & (j == kh // 2))
        i, j = i[keep], j[keep]
    cw, ch = (dw * (kw - 1)) // 2, (dh * (kh - 1)) // 2
    return (i * dw - cw).to(dtype), (j * dh - ch).to(dtype)


def check_shapes(op_type: str, x: Tensor, attrs: dict, node: str = "") -> tuple[int, int, int]:
    """X against the attributes; returns (Ho, Wo, P)."""
    op = f"{op_type}{f' {node!r}' if node else ''}"
    if x.dim() != 4:
        raise ContractError(f"{op}: X has rank {x.dim()} (shape {list(x.shape)}), expected 4 [N, H, W, C]")
    N, H, W, C = x.shape
    g, gc = attrs["group"], attrs["group_channels"]
    if C != g * gc:
        raise ContractError(f"{op}: X has {C} channels, expected group*group_channels = {g}*{gc} = {g * gc}")
    if H < 1 or W < 1:
        raise ContractError(f"{op}: X has spatial size {H}x{W}, expected >= 1x1")
    (kh, kw), (sh, sw), pads, (dh, dw) = attrs["kernel_shape"], attrs["strides"], attrs["pads"], attrs["dilations"]
    ho, wo = out_size(H, pads[0], pads[2], dh, kh, sh), out_size(W, pads[1], pads[3], dw, kw, sw)
    if ho < 1 or wo < 1:
        raise ContractError(f"{op}: output size is {ho}x{wo} for input {H}x{W} (kernel {kh}x{kw}, pads "
                            f"{list(pads)}, strides [{sh}, {sw}], dilations [{dh}, {dw}]), expected >= 1x1")
    return ho, wo, points(attrs["kernel_shape"], attrs["remove_center"])


def check_io(op: str, name: str, t: Tensor, want: list[int], formula: str) -> None:
    if list(t.shape) != want:
        raise ContractError(f"{op}: {name} has shape {list(t.shape)}, expected {want} ({formula})")


def dcn_core(x: Tensor, off: Tensor, mask: Tensor, attrs: dict, ho: int, wo: int) -> Tensor:
    """The sampling of both ops. x [N, H, W, C]; off [N, Ho, Wo, G, P, 2] (dx, dy); mask [N, Ho, Wo, G, P]."""
    N, H, W, C = x.shape
    G, Cg = attrs["group"], attrs["group_channels"]
    cdt = torch.float64 if x.dtype == torch.float64 else torch.float32
    dev = x.device
    (kh, kw), (sh, sw), pads, (dh, dw) = attrs["kernel_shape"], attrs["strides"], attrs["pads"], attrs["dilations"]
    s = attrs["offset_scale"]
    P = off.shape[4]
    if N == 0 or P == 0:
        return x.new_zeros((N, ho, wo, C))
    gx, gy = point_grid(attrs["kernel_shape"], attrs["dilations"], attrs["remove_center"], cdt, dev)
    cw, ch = (dw * (kw - 1)) // 2, (dh * (kh - 1)) // 2
    bx = (torch.arange(wo, device=dev, dtype=cdt) * sw + (cw - pads[1])).view(1, 1, wo, 1, 1)
    by = (torch.arange(ho, device=dev, dtype=cdt) * sh + (ch - pads[0])).view(1, ho, 1, 1, 1)
    off = off.to(cdt)
    px = bx + s * (gx.view(1, 1, 1, 1, P) + off[..., 0])  # [N, Ho, Wo, G, P]
    py = by + s * (gy.view(1, 1, 1, 1, P) + off[..., 1])
    px, py = torch.broadcast_tensors(px, py)
    # sample per (n, g): planes [N*G, Cg, H, W], positions [N*G, Ho*Wo*P]
    planes = x.to(cdt).reshape(N, H, W, G, Cg).permute(0, 3, 4, 1, 2).reshape(N * G, Cg, H, W)
    pos_x = px.permute(0, 3, 1, 2, 4).reshape(N * G, ho * wo * P)
    pos_y = py.permute(0, 3, 1, 2, 4).reshape(N * G, ho * wo * P)
    cols = bilinear_gather(planes, pos_y, pos_x).reshape(N, G, Cg, ho, wo, P)
    m = mask.to(cdt).permute(0, 3, 1, 2, 4).reshape(N, G, 1, ho, wo, P)
    inside = ((pos_y > -1) & (pos_y < H) & (pos_x > -1) & (pos_x < W)).reshape(N, G, 1, ho, wo, P)
    # a sample outside the map adds nothing, whatever its mask (inf / NaN too)
    y = torch.where(inside, cols * m, torch.zeros((), dtype=cdt, device=dev)).sum(-1)  # [N, G, Cg, Ho, Wo]
    return y.permute(0, 3, 4, 1, 2).reshape(N, ho, wo, C).to(x.dtype)


def dcnv3(x: Tensor, offset: Tensor, mask: Tensor, *, kernel_shape: Sequence[int], strides: Sequence[int] = (1, 1),
          pads: Sequence[int] = (0, 0, 0, 0), dilations: Sequence[int] = (1, 1), group: int = 1,
          group_channels: Optional[int] = None, offset_scale: float = 1.0, remove_center: int = 0,
          node: str = "") -> Tensor:
    """``dcn::DCNv3``: X [N, H, W, C], offset [N, Ho, Wo, G*P*2], mask [N, Ho, Wo, G*P] -> [N, Ho, Wo, C].

    ``group_channels`` defaults to C / group. The mask is used as given (softmax is the module's)."""
    if group_channels is None:
        group_channels = x.shape[-1] // max(int(group), 1) if x.dim() == 4 else 0
    a = check_attrs(DCNV3.op_type, node, kernel_shape, strides, pads, dilations, group, group_channels, offset_scale,
                    remove_center)
    ho, wo, P = check_shapes(DCNV3.op_type, x, a, node)
    op = f"{DCNV3.op_type}{f' {node!r}' if node else ''}"
    N, G = x.shape[0], a["group"]
    check_io(op, "offset", offset, [N, ho, wo, G * P * 2], f"N, Ho, Wo, group*P*2 with P = {P}")
    check_io(op, "mask", mask, [N, ho, wo, G * P], f"N, Ho, Wo, group*P with P = {P}")
    return dcn_core(x, offset.reshape(N, ho, wo, G, P, 2), mask.reshape(N, ho, wo, G, P), a, ho, wo)
