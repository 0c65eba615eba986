"""Learned sampling locations of three stacked deformable layers (the paper's Figure 5).

For one output unit of the last deformable layer: its 9 sampling points (kernel grid
plus learned offsets); each of those points' 9 sampling points in the layer below (81);
and again (729). Offsets at a fractional point are bilinearly interpolated from the
layer's offset map, as the sampling itself is. Points are drawn in image pixels.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from .model import FEATURE_STRIDE, ShapeNet


def _interp(field: Tensor, h: Tensor, w: Tensor) -> Tensor:
    """field [C, H, W] at fractional (h, w) [P] (border-clamped) -> [P, C]."""
    C, H, W = field.shape
    grid = torch.stack((2 * w / max(W - 1, 1) - 1, 2 * h / max(H - 1, 1) - 1), dim=-1).view(1, 1, -1, 2)
    out = F.grid_sample(field[None], grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out.view(C, -1).t()


@torch.no_grad()
def sampling_locations(model: ShapeNet, image: Tensor, unit: tuple[int, int]) -> list[Tensor]:
    """Sampling points of ``unit`` (h, w) on the last deformable layer's output grid.

    Returns [points of conv5 (9), of conv4 (81), of conv3 (729)], each [P, 2] as (y, x) in
    image pixel coordinates (pixel i's centre at i).
    """
    model.eval()
    feats = model.features(image[None])  # inputs of conv3, conv4, conv5, output of conv5
    convs = model.deform_convs()
    pts = torch.tensor([[float(unit[0]), float(unit[1])]])
    levels = []
    for conv, x in zip(reversed(convs), reversed(feats[:-1])):  # conv5 first
        offset = conv._branch(x)[0]  # [2K, H, W], (dh, dw) per kernel point k = i*kW + j
        kH, kW = conv.kernel_size
        K = kH * kW
        pad_h, pad_w = conv.padding[0], conv.padding[1]
        ki = (torch.arange(kH) * conv.dilation[0]).repeat_interleave(kW).float() - pad_h  # [K]
        kj = (torch.arange(kW) * conv.dilation[1]).repeat(kH).float() - pad_w
        off = _interp(offset, pts[:, 0], pts[:, 1]).view(-1, K, 2)  # [P, K, 2]
        h = pts[:, 0, None] + ki[None] + off[..., 0]
        w = pts[:, 1, None] + kj[None] + off[..., 1]
        pts = torch.stack((h, w), dim=-1).reshape(-1, 2)
        levels.append(pts)
    stride = FEATURE_STRIDE
    return [p * stride + (stride - 1) / 2 for p in levels]


def unit_at(model: ShapeNet, y: float, x: float, size: int) -> tuple[int, int]:
    """The last layer's unit whose centre is nearest to image pixel (y, x)."""
    stride = FEATURE_STRIDE
    n = size // stride
    conv = lambda v: int(min(max(round((v - (stride - 1) / 2) / stride), 0), n - 1))  # noqa: E731
    return conv(y), conv(x)


def plot_sampling(model: ShapeNet, images: Tensor, centres: list[tuple[float, float]], titles: list[str],
                  path, suptitle: str = "") -> None:
    """One panel per image: the unit (green) at ``centres`` (y, x) and its 729 sampling points (red)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(images)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.6), squeeze=False)
    size = images.shape[-1]
    for ax, img, (cy, cx), title in zip(axes[0], images, centres, titles):
        unit = unit_at(model, cy, cx, size)
        l5, l4, l3 = sampling_locations(model, img, unit)
        stride = FEATURE_STRIDE
        ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=1, extent=(-0.5, size - 0.5, size - 0.5, -0.5))
        ax.scatter(l3[:, 1], l3[:, 0], s=5, c="red", alpha=0.55, linewidths=0, label="729 (conv3)")
        ax.scatter(l5[:, 1], l5[:, 0], s=14, c="yellow", edgecolors="black", linewidths=0.4, label="9 (conv5)")
        uy, ux = unit[0] * stride + (stride - 1) / 2, unit[1] * stride + (stride - 1) / 2
        ax.scatter([ux], [uy], s=60, c="lime", edgecolors="black", marker="s", linewidths=0.6, label="unit")
        ax.set_xlim(-0.5 - size * 0.25, size - 0.5 + size * 0.25)
        ax.set_ylim(size - 0.5 + size * 0.25, -0.5 - size * 0.25)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0][0].legend(loc="lower left", fontsize=6, framealpha=0.8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
