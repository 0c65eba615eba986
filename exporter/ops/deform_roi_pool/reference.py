"""dcn::DeformRoIPool's plain-PyTorch reference (mmcv's deformable RoI pooling), written from the
contract (docs/deform_roi_pool.md): *the truth* every other implementation is tested against.
Vectorized, differentiable, device-agnostic and exact in float64; coordinates in float32 (float64
for float64 data), never in half.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from dcn_base.errors import ContractError
from exporter.contract import check_limits

from .spec import MAX_GRID, SPEC

OP = SPEC.op_type

# Largest sampling grid per bin and axis (sampling_ratio, or the adaptive ceil(roi size / pooled
# size), clamped to it): bounds the work of one output value for hostile RoIs (spec.MAX_GRID).
ROI_POOL_MAX_GRID = MAX_GRID


def deform_roi_pool_check(data: Tensor, rois: Tensor, offset: Optional[Tensor], pooled_height: int,
                          pooled_width: int, spatial_scale: float, sampling_ratio: int, gamma: float,
                          name: str = "") -> None:
    """Check attributes and shapes against the contract (``DeformRoIPool``)."""
    op = f"{OP}{f' {name!r}' if name else ''}"
    for attr, val, low in (("pooled_height", pooled_height, 1), ("pooled_width", pooled_width, 1),
                           ("sampling_ratio", sampling_ratio, 0)):
        if val < low:
            raise ContractError(f"{op}: {attr} is {val}, expected >= {low}")
    check_limits(OP, name, {"pooled_height": pooled_height, "pooled_width": pooled_width,
                            "sampling_ratio": sampling_ratio})
    if not (math.isfinite(spatial_scale) and spatial_scale > 0):
        raise ContractError(f"{op}: spatial_scale is {spatial_scale}, expected a finite value > 0")
    if not math.isfinite(gamma):
        raise ContractError(f"{op}: gamma is {gamma}, expected a finite value")
    if data.dim() != 4:
        raise ContractError(f"{op}: data has rank {data.dim()}, expected 4 [N, C, H, W]")
    if rois.dim() != 2 or rois.shape[1] != 5:
        raise ContractError(f"{op}: rois has shape {list(rois.shape)}, expected [R, 5] (batch_index, x1, y1, x2, y2)")
    if offset is not None:
        want = [rois.shape[0], 2, pooled_height, pooled_width]
        if list(offset.shape) != want:
            raise ContractError(f"{op}: offset has shape {list(offset.shape)}, expected {want} "
                                f"(R, (dx, dy), pooled_height, pooled_width)")


def _roi_align_bilinear(flat: Tensor, base: Tensor, H: int, W: int, y: Tensor, x: Tensor) -> Tensor:
    """RoIAlign's bilinear sampling (the contract's DeformRoIPool rule, not the zero-outside bilinear of exporter/ops/common.py).

    0 when y < -1, y > H, x < -1, x > W (or NaN); else y, x below 0 count as 0, and a
    sample in the last row / column (y >= H - 1) reads that row / column only.
    flat: data as one vector; base: index of each sample's plane start (broadcasts with y, x).
    """
    inside = (y >= -1) & (y <= H) & (x >= -1) & (x <= W)
    zero = torch.zeros((), dtype=y.dtype, device=y.device)
    y = torch.clamp(torch.where(inside, y, zero), min=0)
    x = torch.clamp(torch.where(inside, x, zero), min=0)
    y0 = torch.clamp(torch.floor(y), max=H - 1)
    x0 = torch.clamp(torch.floor(x), max=W - 1)
    y = torch.where(y0 >= H - 1, y0, y)
    x = torch.where(x0 >= W - 1, x0, x)
    ly, lx = y - y0, x - x0
    y0, x0 = y0.long(), x0.long()
    y1 = torch.clamp(y0 + 1, max=H - 1)
    x1 = torch.clamp(x0 + 1, max=W - 1)
    total = None
    for yy, wy in ((y0, 1 - ly), (y1, ly)):
        for xx, wx in ((x0, 1 - lx), (x1, lx)):
            idx = torch.broadcast_to(base + yy * W + xx, torch.broadcast_shapes(base.shape, y.shape))
            term = flat[idx.reshape(-1)].reshape(idx.shape).to(y.dtype) * (wy * wx)
            total = term if total is None else total + term
    assert total is not None
    return torch.where(inside, total, zero)


def deform_roi_pool(
    data: Tensor,
    rois: Tensor,
    offset: Optional[Tensor] = None,
    *,
    pooled_height: int,
    pooled_width: int,
    spatial_scale: float,
    sampling_ratio: int = 0,
    gamma: float = 0.1,
) -> Tensor:
    """mmcv's deformable RoI pooling (``mmcv.ops.deform_roi_pool``), as the contract states.

    data [N, C, H, W]; rois [R, 5] (batch_index, x1, y1, x2, y2) in input pixels, any float
    type (coordinates are computed in float32, float64 for float64 data); offset [R, 2, PH, PW]
    ((dx, dy) per bin, in units of the RoI's size, times gamma) or None. Output [R, C, PH, PW]
    in data's dtype; float16 data is sampled and accumulated in float32.
    """
    deform_roi_pool_check(data, rois, offset, pooled_height, pooled_width, spatial_scale, sampling_ratio, gamma)
    N, C, H, W = data.shape
    R = rois.shape[0]
    PH, PW = pooled_height, pooled_width
    cdt = torch.float64 if data.dtype == torch.float64 else torch.float32
    dev = data.device
    if R == 0:
        return data.new_zeros((R, C, PH, PW))
    r = rois.detach().to(cdt)
    batch_f = r[:, 0]
    valid_b = (batch_f > -1) & (batch_f < N)
    batch = torch.where(valid_b, batch_f, torch.zeros_like(batch_f)).long()
    if not torch.jit.is_tracing() and not bool(valid_b.all()):
        bad = batch_f[~valid_b][0].item()
        raise ContractError(f"{OP}: rois has batch index {bad}, expected 0 <= batch_index < N = {N}")
    if C == 0 or H == 0 or W == 0:  # nothing to read: 0 (an empty map)
        return data.new_zeros((R, C, PH, PW))
    scale = torch.tensor(spatial_scale, dtype=cdt, device=dev)
    start_w, start_h = r[:, 1] * scale - 0.5, r[:, 2] * scale - 0.5
    roi_w = (r[:, 3] * scale - 0.5) - start_w
    roi_h = (r[:, 4] * scale - 0.5) - start_h
    bin_w, bin_h = roi_w / PW, roi_h / PH

    def grid(size: Tensor, pooled: int) -> Tensor:
        if sampling_ratio > 0:
            return torch.full_like(size, float(min(sampling_ratio, ROI_POOL_MAX_GRID)))
        g = torch.nan_to_num(size / pooled, nan=0.0, posinf=float(ROI_POOL_MAX_GRID), neginf=0.0)
        return torch.clamp(torch.ceil(g), 0, ROI_POOL_MAX_GRID)

    gh, gw = grid(roi_h, PH), grid(roi_w, PW)  # [R], integral values
    ph = torch.arange(PH, device=dev, dtype=cdt).view(1, PH, 1)
    pw = torch.arange(PW, device=dev, dtype=cdt).view(1, 1, PW)
    sh, sw = start_h.view(R, 1, 1), start_w.view(R, 1, 1)
    if offset is not None:  # the bin's start moves by gamma * roi size * offset
        off = offset.to(cdt)
        sw = sw + gamma * roi_w.view(R, 1, 1) * off[:, 0]
        sh = sh + gamma * roi_h.view(R, 1, 1) * off[:, 1]
    y0 = sh + ph * bin_h.view(R, 1, 1)  # [R, PH, 1|PW]
    x0 = sw + pw * bin_w.view(R, 1, 1)
    x0, y0 = torch.broadcast_tensors(x0, y0)  # [R, PH, PW]
    bh, bw = bin_h.view(R, 1, 1), bin_w.view(R, 1, 1)
    dh, dw = torch.clamp(gh, min=1).view(R, 1, 1), torch.clamp(gw, min=1).view(R, 1, 1)
    flat = data.reshape(-1)
    base = ((batch.view(R, 1) * C + torch.arange(C, device=dev).view(1, C)) * (H * W)).view(R, C, 1, 1)
    total = torch.zeros((R, C, PH, PW), dtype=cdt, device=dev)
    gh_max, gw_max = int(gh.max().item()), int(gw.max().item())
    # one row of samples (iy) at a time, the row's ix vectorised: [R, C, PH, PW, gw_max]
    ix = torch.arange(gw_max, device=dev, dtype=cdt)
    x = x0.unsqueeze(-1) + (ix + 0.5) * bw.unsqueeze(-1) / dw.unsqueeze(-1)  # [R, PH, PW, gw_max]
    use_x = ix.view(1, -1) < gw.view(R, 1)  # [R, gw_max]
    # samples outside the map read 0: columns (and below, rows) outside for every RoI and bin are skipped,
    # which keeps hostile RoIs (grids up to ROI_POOL_MAX_GRID) cheap
    cols = ((x >= -1) & (x <= W) & use_x.view(R, 1, 1, -1)).flatten(0, 2).any(0)
    x, use_x = x[..., cols], use_x[:, cols]
    for iy in range(gh_max if x.shape[-1] else 0):
        y = (y0 + (iy + 0.5) * bh / dh).unsqueeze(-1)
        if not bool(((y >= -1) & (y <= H)).any()):
            continue
        use = (use_x & (gh > iy).view(R, 1)).view(R, 1, 1, 1, -1)
        val = _roi_align_bilinear(flat, base.unsqueeze(-1), H, W, y.unsqueeze(1), x.unsqueeze(1))
        total = total + torch.where(use, val, torch.zeros((), dtype=cdt, device=dev)).sum(-1)
    count = torch.clamp(gh * gw, min=1).view(R, 1, 1, 1)
    return (total / count).to(data.dtype)


def example_inputs(seed: int = 0) -> tuple[dict, dict]:
    """A small valid case (float32 arrays by input name, attributes by contract name; RoIs as boxes in
    image pixels, one partly off the map): for generic tests that run every registered op (FP16
    conversion, fuzz cases)."""
    import numpy as np  # noqa: PLC0415  (tests only)

    rng = np.random.default_rng(seed)
    rois = np.array([[0, 1.5, 2.25, 9.0, 10.5], [1, 4.0, 0.0, 13.0, 7.75], [1, -3.0, 5.0, 6.0, 18.0]], np.float32)
    inputs = {"data": rng.standard_normal((2, 3, 6, 7)).astype(np.float32), "rois": rois,
              "offset": rng.standard_normal((3, 2, 2, 3)).astype(np.float32)}
    return inputs, {"pooled_height": 2, "pooled_width": 3, "spatial_scale": 0.5, "sampling_ratio": 2, "gamma": 0.1}
