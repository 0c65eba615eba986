"""Synthetic shapes with strong geometric variation, generated with torch (no downloads).

Every image holds one object of a shape class, drawn at a random position, scale
(log-uniform over a wide range), aspect ratio and rotation, anti-aliased by
supersampling, with a random brightness over a noisy background with a gradient.
The same seed always gives the same images.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

# Shapes in canonical coordinates (u, v) in [-1, 1]: a predicate "inside".
CLASSES = ("disk", "ring", "square", "frame", "triangle", "cross")


def _inside(cls: int, u: Tensor, v: Tensor) -> Tensor:
    r2 = u * u + v * v
    name = CLASSES[cls]
    if name == "disk":
        return r2 <= 1.0
    if name == "ring":  # annulus, hole radius 0.55
        return (r2 <= 1.0) & (r2 >= 0.55 ** 2)
    if name == "square":
        return (u.abs() <= 0.8) & (v.abs() <= 0.8)
    if name == "frame":  # hollow square, hole half-width 0.45
        box = (u.abs() <= 0.8) & (v.abs() <= 0.8)
        return box & ~((u.abs() <= 0.45) & (v.abs() <= 0.45))
    if name == "triangle":  # equilateral, circumradius 1
        s3 = math.sqrt(3.0)
        return (v >= -0.5) & (v <= 1.0 - s3 * u.abs())
    if name == "cross":  # plus sign, arm half-width 0.3
        return ((u.abs() <= 0.9) & (v.abs() <= 0.3)) | ((u.abs() <= 0.3) & (v.abs() <= 0.9))
    raise ValueError(f"unknown shape class {cls}")


@dataclass(frozen=True)
class ShapesConfig:
    size: int = 64  # image side in pixels
    classes: tuple[str, ...] = ("disk", "ring", "square", "frame")
    min_radius: float = 5.0  # object radius (pixels), log-uniform in [min, max]
    max_radius: float = 30.0
    min_aspect: float = 0.5  # minor/major axis ratio, uniform in [min, 1]
    noise: float = 0.15  # background noise std
    supersample: int = 2


def make_shapes(n: int, seed: int, cfg: ShapesConfig = ShapesConfig(), chunk: int = 512) -> tuple[Tensor, Tensor, Tensor]:
    """Return images [n, 1, S, S] float32, labels [n] int64 and per-image params [n, 5]
    (cx, cy, radius, aspect, angle) for drawing."""
    g = torch.Generator().manual_seed(seed)
    ids = [CLASSES.index(c) for c in cfg.classes]
    S, ss = cfg.size, cfg.supersample
    labels = torch.randint(len(ids), (n,), generator=g)
    log_r = torch.empty(n).uniform_(math.log(cfg.min_radius), math.log(cfg.max_radius), generator=g)
    radius = log_r.exp()
    aspect = torch.empty(n).uniform_(cfg.min_aspect, 1.0, generator=g)
    angle = torch.empty(n).uniform_(0, 2 * math.pi, generator=g)
    # Centre: the object may be cut by the border a little when large.
    margin = torch.clamp(radius * 0.7, max=S / 2 - 2)
    cx = margin + torch.rand(n, generator=g) * (S - 2 * margin)
    cy = margin + torch.rand(n, generator=g) * (S - 2 * margin)
    fg = torch.empty(n).uniform_(0.6, 1.0, generator=g)
    bg = torch.empty(n).uniform_(0.0, 0.3, generator=g)
    grad = torch.empty(n, 2).uniform_(-0.3, 0.3, generator=g)
    noise = torch.randn(n, 1, S, S, generator=g) * cfg.noise

    coords = (torch.arange(S * ss, dtype=torch.float32) + 0.5) / ss  # pixel units
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    lin = (torch.arange(S, dtype=torch.float32) / (S - 1) - 0.5)
    ly, lx = torch.meshgrid(lin, lin, indexing="ij")
    images = torch.empty(n, 1, S, S)
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        dx = xx - cx[s:e, None, None]
        dy = yy - cy[s:e, None, None]
        c, si = torch.cos(angle[s:e])[:, None, None], torch.sin(angle[s:e])[:, None, None]
        u = (c * dx + si * dy) / radius[s:e, None, None]
        v = (-si * dx + c * dy) / (radius[s:e, None, None] * aspect[s:e, None, None])
        inside = torch.zeros_like(u, dtype=torch.bool)
        for k, cls in enumerate(ids):
            sel = labels[s:e] == k
            if sel.any():
                inside[sel] = _inside(cls, u[sel], v[sel])
        cover = torch.nn.functional.avg_pool2d(inside.float().unsqueeze(1), ss)  # [b, 1, S, S]
        back = bg[s:e, None, None, None] + grad[s:e, 0, None, None, None] * lx + grad[s:e, 1, None, None, None] * ly
        images[s:e] = back + cover * (fg[s:e, None, None, None] - back) + noise[s:e]
    params = torch.stack([cx, cy, radius, aspect, angle], dim=1)
    return images, labels, params
