"""dcn::DeformPSROIPool's plain-PyTorch reference, written from the contract (the original
DeformablePSROIPooling): *the truth* every other implementation is tested against. Vectorized,
differentiable, device-agnostic and exact in float64; coordinates in float32 (float64 for float64
data), never in half. See ``../shared/design/ops.md``.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from dcn_base.errors import ContractError
from exporter.contract import check_limits
from exporter.ops.common import round_half_away

from .spec import SPEC

OP = SPEC.op_type


def deform_psroi_pool_check(
    data: Tensor,
    rois: Tensor,
    trans: Optional[Tensor],
    output_dim: int,
    group_size: int,
    pooled_size: int,
    part_size: int,
    sample_per_part: int,
    name: str = "",
    *,
    spatial_scale: float = 1.0,
    trans_std: float = 0.0,
) -> tuple[int, int]:
    """Check shapes and attributes against the contract (the C++ validation's rules); return (part_size
    resolved, num_classes)."""
    op = f"{OP}{f' {name!r}' if name else ''}"
    if not (math.isfinite(spatial_scale) and spatial_scale > 0):
        raise ContractError(f"{op}: spatial_scale is {spatial_scale}, expected a finite value > 0")
    if not math.isfinite(trans_std):
        raise ContractError(f"{op}: trans_std is {trans_std}, expected a finite value")
    for attr, val in (("output_dim", output_dim), ("group_size", group_size), ("pooled_size", pooled_size),
                      ("sample_per_part", sample_per_part)):
        if val < 1:
            raise ContractError(f"{op}: {attr} is {val}, expected >= 1")
    if part_size < 0:
        raise ContractError(f"{op}: part_size is {part_size}, expected >= 0 (0 = pooled_size)")
    check_limits(OP, name, {"output_dim": output_dim, "group_size": group_size,
                            "pooled_size": pooled_size, "part_size": part_size,
                            "sample_per_part": sample_per_part})
    part = part_size or pooled_size
    if data.dim() != 4:
        raise ContractError(f"{op}: data has rank {data.dim()}, expected 4 [N, output_dim*group_size^2, H, W]")
    want_c = output_dim * group_size * group_size
    if data.shape[1] != want_c:
        raise ContractError(
            f"{op}: data has {data.shape[1]} channels, expected output_dim*group_size^2 = {want_c}"
        )
    if rois.dim() != 2 or rois.shape[1] != 5:
        raise ContractError(f"{op}: rois has shape {list(rois.shape)}, expected [R, 5] (batch_index, x1, y1, x2, y2)")
    num_classes = 1
    if trans is not None:
        R = rois.shape[0]
        if trans.dim() != 4 or trans.shape[1] % 2 != 0 or trans.shape[1] == 0:
            raise ContractError(
                f"{op}: trans has shape {list(trans.shape)}, expected [R, 2*num_classes, part_size, part_size]"
            )
        if list(trans.shape) != [R, trans.shape[1], part, part]:
            raise ContractError(
                f"{op}: trans has shape {list(trans.shape)}, expected [{R}, {trans.shape[1]}, {part}, {part}] (part_size = {part})"
            )
        num_classes = trans.shape[1] // 2
        if output_dim % num_classes != 0:
            raise ContractError(
                f"{op}: trans has {trans.shape[1]} channels = 2*{num_classes} classes, expected num_classes to divide output_dim = {output_dim}"
            )
    return part, num_classes


def deform_psroi_pool(
    data: Tensor,
    rois: Tensor,
    trans: Optional[Tensor] = None,
    *,
    spatial_scale: float,
    output_dim: int,
    group_size: int,
    pooled_size: int,
    part_size: int = 0,
    sample_per_part: int = 4,
    trans_std: float = 0.0,
) -> Tensor:
    """Deformable (position-sensitive) RoI pooling, as the original ``DeformablePSROIPooling``.

    ``trans is None`` means no_trans. Output [R, output_dim, pooled_size, pooled_size].
    """
    part, ncls = deform_psroi_pool_check(
        data, rois, trans, output_dim, group_size, pooled_size, part_size, sample_per_part,
        spatial_scale=float(spatial_scale), trans_std=float(trans_std)
    )
    N, C, H, W = data.shape
    R = rois.shape[0]
    P, S, G = pooled_size, sample_per_part, group_size
    # float64 data: all in float64; otherwise coordinates, sampling and sums in float32 and the
    # result stored in data's type (contract: coordinates never in half, rois float32)
    dtype = torch.float64 if data.dtype == torch.float64 else torch.float32
    out_dtype = data.dtype if data.is_floating_point() else torch.float32
    dev = data.device
    if R == 0:
        return data.new_zeros((0, output_dim, P, P))

    rois_d = rois.detach().to(dtype)
    b_raw = rois_d[:, 0]
    b_ok = (b_raw > -1) & (b_raw < N)  # False for NaN too
    if not torch.jit.is_tracing() and not bool(b_ok.all()):
        r = int(torch.nonzero(~b_ok)[0, 0])
        raise ContractError(
            f"{OP}: rois[{r}, 0] = {float(b_raw[r])}, expected a batch index in [0, N) = [0, {N})"
        )
    batch = torch.where(b_ok, b_raw, torch.zeros_like(b_raw)).long()
    if H == 0 or W == 0:  # an empty map: no sample counts
        return data.new_zeros((R, output_dim, P, P))
    x1, y1, x2, y2 = (round_half_away(rois_d[:, i]) for i in range(1, 5))
    start_w = x1 * spatial_scale - 0.5
    start_h = y1 * spatial_scale - 0.5
    end_w = (x2 + 1.0) * spatial_scale - 0.5
    end_h = (y2 + 1.0) * spatial_scale - 0.5
    # A box that is not finite (NaN / inf coordinates, or overflowing when scaled) counts no sample: 0.
    box_ok = (torch.isfinite(start_w) & torch.isfinite(start_h) & torch.isfinite(end_w)
              & torch.isfinite(end_h)).view(R, 1, 1, 1, 1, 1)
    roi_w = torch.clamp(end_w - start_w, min=0.1)
    roi_h = torch.clamp(end_h - start_h, min=0.1)
    bin_w, bin_h = roi_w / P, roi_h / P
    sub_w, sub_h = bin_w / S, bin_h / S

    idx_p = torch.arange(P, device=dev)
    # floor(p / P * part_size) in float32 whatever the data's type (contract: coordinate arithmetic is
    # float32; the original's formula): p = 13 of P = part_size = 22 is part 12, not the exact 13
    part_idx = torch.clamp(torch.floor(idx_p.to(torch.float32) / P * part).long(), max=part - 1)
    grp_idx = torch.clamp((idx_p * G) // P, 0, G - 1)

    ctop = torch.arange(output_dim, device=dev)
    cls = ctop // (output_dim // ncls)  # [D]
    if trans is not None:
        t = trans.to(dtype).reshape(R, ncls, 2, part, part)
        t = t[:, :, :, part_idx][:, :, :, :, part_idx]  # [R, ncls, 2, P(ph), P(pw)]
        t = t[:, cls] * trans_std  # [R, D, 2, P, P]
        dx, dy = t[:, :, 0], t[:, :, 1]
    else:
        dx = dy = torch.zeros((R, 1, P, P), dtype=dtype, device=dev)

    pf = idx_p.to(dtype)
    # [R, D|1, P(ph), P(pw)]
    wstart = pf.view(1, 1, 1, P) * bin_w.view(R, 1, 1, 1) + start_w.view(R, 1, 1, 1) + dx * roi_w.view(R, 1, 1, 1)
    hstart = pf.view(1, 1, P, 1) * bin_h.view(R, 1, 1, 1) + start_h.view(R, 1, 1, 1) + dy * roi_h.view(R, 1, 1, 1)
    sf = torch.arange(S, device=dev, dtype=dtype)
    # samples [R, D|1, P, P, S(iy), S(ix)]
    w = wstart[..., None, None] + sf.view(1, S) * sub_w.view(R, 1, 1, 1, 1, 1)
    h = hstart[..., None, None] + sf.view(S, 1) * sub_h.view(R, 1, 1, 1, 1, 1)
    w, h = torch.broadcast_tensors(w, h)
    keep = (w >= -0.5) & (w <= W - 0.5) & (h >= -0.5) & (h <= H - 0.5) & box_ok  # False for NaN
    # skipped samples (NaN / inf positions included) read position 0: never an index from NaN
    w = torch.where(keep, torch.clamp(w, 0, W - 1), torch.zeros_like(w))
    h = torch.where(keep, torch.clamp(h, 0, H - 1), torch.zeros_like(h))
    w = w.expand(R, output_dim, P, P, S, S)
    h = h.expand(R, output_dim, P, P, S, S)
    keep = keep.expand(R, output_dim, P, P, S, S)

    # channel c = (ctop*G + gh)*G + gw per (ctop, ph, pw)
    chan = (ctop.view(-1, 1, 1) * G + grp_idx.view(1, P, 1)) * G + grp_idx.view(1, 1, P)  # [D, P, P]
    plane = batch.view(R, 1, 1, 1) * C + chan.unsqueeze(0)  # [R, D, P, P]
    planes = data.to(dtype).reshape(N * C, 1, H, W)
    # Gather with per-sample plane index: flatten planes as one [1, 1, N*C*H*W]-like table.
    flat = planes.reshape(1, 1, N * C * H * W)
    h0 = torch.floor(h)
    w0 = torch.floor(w)
    lh, lw = h - h0, w - w0
    h0, w0 = h0.long(), w0.long()
    base = plane[..., None, None] * (H * W)
    total = None
    for dy_, wy in ((0, 1 - lh), (1, lh)):
        for dx_, wx in ((0, 1 - lw), (1, lw)):
            y = torch.clamp(h0 + dy_, max=H - 1)
            x = torch.clamp(w0 + dx_, max=W - 1)
            # a neighbour at H (or W) is outside the map: it reads nothing (0, also next to inf / NaN)
            valid = (h0 + dy_ <= H - 1) & (w0 + dx_ <= W - 1)
            idx = (base + y * W + x).reshape(1, 1, -1)
            vals = torch.gather(flat, 2, idx).reshape(h.shape)
            term = torch.where(valid, vals * (wy * wx), torch.zeros_like(vals))
            total = term if total is None else total + term
    assert total is not None
    total = torch.where(keep, total, torch.zeros_like(total))
    count = keep.sum(dim=(-1, -2)).to(dtype)
    summed = total.sum(dim=(-1, -2))
    out = torch.where(count > 0, summed / count.clamp(min=1), torch.zeros_like(summed))
    return out.to(out_dtype)


def example_inputs(seed: int = 0) -> tuple[dict, dict]:
    """A small valid case (float32 arrays by input name, attributes by contract name; RoIs as boxes in
    image pixels, one partly off the map): for generic tests that run every registered op (FP16
    conversion, fuzz cases)."""
    import numpy as np  # noqa: PLC0415  (tests only)

    rng = np.random.default_rng(seed)
    rois = np.array([[0, 1.5, 2.25, 9.0, 10.5], [1, 4.0, 0.0, 13.0, 7.75], [1, -3.0, 5.0, 6.0, 18.0]], np.float32)
    inputs = {"data": rng.standard_normal((2, 2 * 2 * 2, 6, 7)).astype(np.float32), "rois": rois,
              "trans": rng.standard_normal((3, 2, 2, 2)).astype(np.float32)}
    attrs = {"spatial_scale": 0.5, "output_dim": 2, "group_size": 2, "pooled_size": 2, "part_size": 0,
             "sample_per_part": 2, "trans_std": 0.1, "no_trans": 0}
    return inputs, attrs
