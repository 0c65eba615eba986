"""A training-speed formulation of the demo's deformable convs (same function, same weights).

torchvision's CPU deform_conv2d, which ``torch.ops.dcn.deform_conv2d`` runs, takes
~0.25 s forward and ~1.4 s backward for one 64x32x16x16 3x3 layer on 2 cores (a plain
conv: 0.03 s), which would make the demo's training take tens of minutes. DCNv1 with
stride 1, one group and one offset group is bilinear sampling of the input at 9 moved
points per output position followed by a 1x1 contraction with the weights; PyTorch's
``grid_sample`` (bilinear, zero padding, align_corners=True) does the sampling with the
same edge rule as deformable conv (neighbours outside the map count as zero) and has a
fast backward. ``run.py`` trains with it, then evaluates, plots and exports the real
``DeformConv2dPack`` model and checks that both give the same outputs.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from exporter.ops import DeformConv2dPack


def sampling_grid(offset: Tensor, kernel: tuple[int, int], padding: tuple[int, int],
                  dilation: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Absolute sampling positions (h, w), each [N, K, H, W], of a stride-1 deformable conv.

    offset [N, 2K, H, W] holds (dh, dw) per kernel point k = i*kW + j (the op contract's layout).
    """
    N, _, H, W = offset.shape
    kH, kW = kernel
    K = kH * kW
    dev, dt = offset.device, offset.dtype
    ki = (torch.arange(kH, device=dev, dtype=dt) * dilation[0]).repeat_interleave(kW)  # [K]
    kj = (torch.arange(kW, device=dev, dtype=dt) * dilation[1]).repeat(kH)
    base_h = ki.view(K, 1, 1) + (torch.arange(H, device=dev, dtype=dt) - padding[0]).view(1, H, 1)
    base_w = kj.view(K, 1, 1) + (torch.arange(W, device=dev, dtype=dt) - padding[1]).view(1, 1, W)
    off = offset.view(N, K, 2, H, W)
    return base_h + off[:, :, 0], base_w + off[:, :, 1]


def deform_conv_fast(conv: DeformConv2dPack, x: Tensor) -> Tensor:
    """``conv(x)`` for a stride-1, symmetric-padding, single-group DeformConv2dPack, via grid_sample."""
    if (conv.stride != (1, 1) or conv.groups != 1 or conv.deform_groups != 1
            or conv.padding[0] != conv.padding[2] or conv.padding[1] != conv.padding[3]):
        raise ValueError(f"deform_conv_fast supports stride 1, one group, symmetric padding; got {conv}")
    N, C, H, W = x.shape
    offset = conv._branch(x)
    kH, kW = conv.kernel_size
    K = kH * kW
    h, w = sampling_grid(offset, conv.kernel_size, conv.padding[:2], conv.dilation)  # [N, K, H, W]
    grid = torch.stack((2 * w / max(W - 1, 1) - 1, 2 * h / max(H - 1, 1) - 1), dim=-1)  # x, y order
    cols = F.grid_sample(x, grid.view(N, K * H, W, 2), mode="bilinear", padding_mode="zeros",
                         align_corners=True)  # [N, C, K*H, W]
    cols = cols.view(N, C * K, H, W)  # channel-major, kernel point minor: the weight's layout
    out = F.conv2d(cols, conv.weight.reshape(conv.out_channels, C * K, 1, 1))
    if conv.bias is not None:
        out = out + conv.bias.view(1, -1, 1, 1)
    return out
