"""Plain-PyTorch reference implementations of the two ops, written from the contract.

These are *the truth* every other implementation (C++ CPU, CUDA, ONNX Runtime op,
TensorRT plugin, decomposed ONNX) is tested against. They are vectorized (no Python
loops over outputs), differentiable (autograd through gather), device-agnostic and
exact in float64. See ``../shared/design/ops.md``.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from ..contract import DEFORM_CONV2D, DEFORM_PSROI_POOL, DEFORM_ROI_POOL, check_limits, conv_out_size
from dcn_base.errors import ContractError

IntOrSeq = Union[int, Sequence[int]]


# --------------------------------------------------------------------------- helpers
def _pair(value: IntOrSeq, name: str, op: str = DEFORM_CONV2D.op_type) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    vals = tuple(int(v) for v in value)
    if len(vals) == 1:
        return (vals[0], vals[0])
    if len(vals) != 2:
        raise ContractError(f"{op}: {name} has {len(vals)} values {list(vals)}, expected 1 or 2")
    return vals  # type: ignore[return-value]


def normalize_pads(padding: IntOrSeq, op: str = DEFORM_CONV2D.op_type) -> tuple[int, int, int, int]:
    """int, (pad_h, pad_w) or (top, left, bottom, right) -> (top, left, bottom, right)."""
    if isinstance(padding, int):
        return (padding,) * 4  # type: ignore[return-value]
    vals = tuple(int(v) for v in padding)
    if len(vals) == 1:
        return (vals[0],) * 4  # type: ignore[return-value]
    if len(vals) == 2:
        return (vals[0], vals[1], vals[0], vals[1])
    if len(vals) == 4:
        return vals  # type: ignore[return-value]
    raise ContractError(
        f"{op}: padding has {len(vals)} values {list(vals)}, expected 1, 2 or 4 (top, left, bottom, right)"
    )


def bilinear_gather(planes: Tensor, h: Tensor, w: Tensor) -> Tensor:
    """Bilinear sampling as the contract states.

    planes: [B, K, H, W]; h, w: [B, P] sample positions shared by the K planes of a row.
    Returns [B, K, P]. Zero when h <= -1, h >= H, w <= -1 or w >= W; otherwise the four
    integer neighbours are weighed, each neighbour outside the map counting as zero.
    """
    B, K, H, W = planes.shape
    flat = planes.reshape(B, K, H * W)
    inside = (h > -1) & (h < H) & (w > -1) & (w < W)
    h0 = torch.floor(h)
    w0 = torch.floor(w)
    lh = h - h0
    lw = w - w0
    h0 = h0.long()
    w0 = w0.long()
    out = None
    for dy, wy in ((0, 1 - lh), (1, lh)):
        for dx, wx in ((0, 1 - lw), (1, lw)):
            y = h0 + dy
            x = w0 + dx
            valid = inside & (y >= 0) & (y < H) & (x >= 0) & (x < W)
            idx = torch.where(valid, y * W + x, torch.zeros_like(y))
            vals = torch.gather(flat, 2, idx.unsqueeze(1).expand(B, K, idx.shape[-1]))
            # a neighbour outside the map reads nothing (0, also next to inf / NaN values)
            term = torch.where(valid.unsqueeze(1), vals * (wy * wx).unsqueeze(1), torch.zeros_like(vals))
            out = term if out is None else out + term
    assert out is not None
    return out


# --------------------------------------------------------------------------- deform_conv2d
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
    op = f"{DEFORM_CONV2D.op_type}{f' {name!r}' if name else ''}"
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
    check_limits(DEFORM_CONV2D.op_type, name, {"strides": stride, "pads": pads, "dilations": dilation})
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
    stride_ = _pair(stride, "strides")
    dil = _pair(dilation, "dilations")
    pads = normalize_pads(padding)
    group, og, oh, ow = deform_conv2d_shapes(input, offset, weight, bias, mask, stride_, pads, dil)
    N, C, H, W = input.shape
    M, Cg, kH, kW = weight.shape
    K = kH * kW
    L = oh * ow
    dtype = torch.promote_types(input.dtype, weight.dtype)
    dev = input.device

    # Base sampling positions per kernel point k = i*kW + j and output position.
    ho = torch.arange(oh, device=dev, dtype=dtype) * stride_[0] - pads[0]
    wo = torch.arange(ow, device=dev, dtype=dtype) * stride_[1] - pads[1]
    ki = (torch.arange(kH, device=dev, dtype=dtype) * dil[0]).repeat_interleave(kW)  # [K]
    kj = (torch.arange(kW, device=dev, dtype=dtype) * dil[1]).repeat(kH)  # [K]
    base_h = ki.view(K, 1, 1) + ho.view(1, oh, 1)  # [K, oh, 1]
    base_w = kj.view(K, 1, 1) + wo.view(1, 1, ow)  # [K, 1, ow]

    off = offset.to(dtype).reshape(N, og, K, 2, oh, ow)
    h = base_h + off[:, :, :, 0]  # [N, og, K, oh, ow]
    w = base_w + off[:, :, :, 1]

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


# --------------------------------------------------------------------------- deform_psroi_pool
def round_half_away(x: Tensor) -> Tensor:
    """C's round(): halves away from zero (2.5 -> 3, -0.5 -> -1)."""
    return torch.sign(x) * torch.floor(torch.abs(x) + 0.5)


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
) -> tuple[int, int]:
    """Check shapes against the contract; return (part_size resolved, num_classes)."""
    op = f"{DEFORM_PSROI_POOL.op_type}{f' {name!r}' if name else ''}"
    for attr, val in (("output_dim", output_dim), ("group_size", group_size), ("pooled_size", pooled_size),
                      ("sample_per_part", sample_per_part)):
        if val < 1:
            raise ContractError(f"{op}: {attr} is {val}, expected >= 1")
    if part_size < 0:
        raise ContractError(f"{op}: part_size is {part_size}, expected >= 0 (0 = pooled_size)")
    check_limits(DEFORM_PSROI_POOL.op_type, name, {"output_dim": output_dim, "group_size": group_size,
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
        data, rois, trans, output_dim, group_size, pooled_size, part_size, sample_per_part
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
            f"{DEFORM_PSROI_POOL.op_type}: rois[{r}, 0] = {float(b_raw[r])}, expected a batch index in [0, N) = [0, {N})"
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
    part_idx = (idx_p * part) // P  # floor(p / P * part_size), exact in integers
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


# --------------------------------------------------------------------------- deform_roi_pool (mmcv)
# Largest sampling grid per bin and axis (sampling_ratio, or the adaptive ceil(roi size / pooled
# size)): bounds the work of one output value for hostile RoIs (contract: docs/deform_roi_pool.md).
ROI_POOL_MAX_GRID = 1024


def deform_roi_pool_check(data: Tensor, rois: Tensor, offset: Optional[Tensor], pooled_height: int,
                          pooled_width: int, spatial_scale: float, sampling_ratio: int, gamma: float,
                          name: str = "") -> None:
    """Check attributes and shapes against the contract (``DeformRoIPool``)."""
    op = f"{DEFORM_ROI_POOL.op_type}{f' {name!r}' if name else ''}"
    for attr, val, low in (("pooled_height", pooled_height, 1), ("pooled_width", pooled_width, 1),
                           ("sampling_ratio", sampling_ratio, 0)):
        if val < low:
            raise ContractError(f"{op}: {attr} is {val}, expected >= {low}")
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
    """RoIAlign's bilinear sampling (the contract's DeformRoIPool rule, not DeformConv2d's).

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
    if R == 0 or C == 0:
        return data.new_zeros((R, C, PH, PW))
    r = rois.detach().to(cdt)
    batch_f = r[:, 0]
    valid_b = (batch_f > -1) & (batch_f < N)
    batch = torch.where(valid_b, batch_f, torch.zeros_like(batch_f)).long()
    if not torch.jit.is_tracing() and not bool(valid_b.all()):
        bad = batch_f[~valid_b][0].item()
        raise ContractError(f"{DEFORM_ROI_POOL.op_type}: rois has batch index {bad}, expected 0 <= batch_index < N = {N}")
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
