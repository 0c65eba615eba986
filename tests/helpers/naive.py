"""Naive loops written straight from the contract's equations (../shared/design/ops.md).

Slow, scalar, obviously right: the reference is tested against these, everything else
against the reference.
"""
from __future__ import annotations

import math

import numpy as np


def bilinear(plane: np.ndarray, h: float, w: float) -> float:
    H, W = plane.shape
    if h <= -1 or h >= H or w <= -1 or w >= W:
        return 0.0
    h0, w0 = math.floor(h), math.floor(w)
    lh, lw = h - h0, w - w0
    total = 0.0
    for y, wy in ((h0, 1 - lh), (h0 + 1, lh)):
        for x, wx in ((w0, 1 - lw), (w0 + 1, lw)):
            if 0 <= y < H and 0 <= x < W:
                total += wy * wx * float(plane[y, x])
    return total


def deform_conv2d(x, offset, weight, bias, mask, strides, pads, dilations, group, offset_group):
    x, offset, weight = (np.asarray(a, dtype=np.float64) for a in (x, offset, weight))
    N, C, H, W = x.shape
    M, Cg, kH, kW = weight.shape
    top, left, bottom, right = pads
    sh, sw = strides
    dh, dw = dilations
    oH = (H + top + bottom - dh * (kH - 1) - 1) // sh + 1
    oW = (W + left + right - dw * (kW - 1) - 1) // sw + 1
    K = kH * kW
    y = np.zeros((N, M, oH, oW))
    Mg = M // group
    for n in range(N):
        for m in range(M):
            g_conv = m // Mg
            for ho in range(oH):
                for wo in range(oW):
                    acc = 0.0 if bias is None else float(bias[m])
                    for cp in range(Cg):
                        c = g_conv * Cg + cp
                        g = c // (C // offset_group)
                        for i in range(kH):
                            for j in range(kW):
                                k = i * kW + j
                                h = ho * sh - top + i * dh + offset[n, 2 * (g * K + k), ho, wo]
                                w = wo * sw - left + j * dw + offset[n, 2 * (g * K + k) + 1, ho, wo]
                                mk = 1.0 if mask is None else float(mask[n, g * K + k, ho, wo])
                                acc += weight[m, cp, i, j] * mk * bilinear(x[n, c], h, w)
                    y[n, m, ho, wo] = acc
    return y


def c_round(v: float) -> float:
    return math.copysign(math.floor(abs(v) + 0.5), v)


def deform_psroi_pool(data, rois, trans, spatial_scale, output_dim, group_size, pooled_size, part_size,
                      sample_per_part, trans_std, no_trans):
    data = np.asarray(data, dtype=np.float64)
    N, C, H, W = data.shape
    R = rois.shape[0]
    P, S = pooled_size, sample_per_part
    part = part_size or pooled_size
    use_trans = trans is not None and not no_trans
    num_classes = trans.shape[1] // 2 if use_trans else 1
    per_class = output_dim // num_classes
    out = np.zeros((R, output_dim, P, P))
    for r in range(R):
        b = int(rois[r, 0])
        x1, y1, x2, y2 = (c_round(float(v)) for v in rois[r, 1:5])
        start_w = x1 * spatial_scale - 0.5
        start_h = y1 * spatial_scale - 0.5
        end_w = (x2 + 1) * spatial_scale - 0.5
        end_h = (y2 + 1) * spatial_scale - 0.5
        roi_w = max(end_w - start_w, 0.1)
        roi_h = max(end_h - start_h, 0.1)
        bin_w, bin_h = roi_w / P, roi_h / P
        sub_w, sub_h = bin_w / S, bin_h / S
        for ctop in range(output_dim):
            cls = ctop // per_class
            for ph in range(P):
                for pw in range(P):
                    # in float32 (the contract's coordinate arithmetic): 13 / 22 * 22 is 12.999999
                    part_h = math.floor(np.float32(ph) / np.float32(P) * np.float32(part))
                    part_w = math.floor(np.float32(pw) / np.float32(P) * np.float32(part))
                    dx = dy = 0.0
                    if use_trans:
                        dx = float(trans[r, 2 * cls, part_h, part_w]) * trans_std
                        dy = float(trans[r, 2 * cls + 1, part_h, part_w]) * trans_std
                    wstart = pw * bin_w + start_w + dx * roi_w
                    hstart = ph * bin_h + start_h + dy * roi_h
                    gw = min(max(math.floor(pw * group_size / P), 0), group_size - 1)
                    gh = min(max(math.floor(ph * group_size / P), 0), group_size - 1)
                    c = (ctop * group_size + gh) * group_size + gw
                    total, count = 0.0, 0
                    for iy in range(S):
                        for ix in range(S):
                            h = hstart + iy * sub_h
                            w = wstart + ix * sub_w
                            if w < -0.5 or w > W - 0.5 or h < -0.5 or h > H - 0.5:
                                continue
                            w = min(max(w, 0.0), W - 1.0)
                            h = min(max(h, 0.0), H - 1.0)
                            total += bilinear(data[b, c], h, w)
                            count += 1
                    out[r, ctop, ph, pw] = total / count if count else 0.0
    return out


def roi_align_bilinear(plane: np.ndarray, y: float, x: float) -> float:
    """RoIAlign's sampling rule (mmcv's bilinear_interpolate in common_cuda_helper.hpp, torchvision's
    roi_align), as docs/deform_roi_pool.md states it."""
    H, W = plane.shape
    if not (-1 <= y <= H and -1 <= x <= W):
        return 0.0
    y, x = max(y, 0.0), max(x, 0.0)
    y0, x0 = int(math.floor(y)), int(math.floor(x))
    if y0 >= H - 1:
        y0 = y1 = H - 1
        y = float(y0)
    else:
        y1 = y0 + 1
    if x0 >= W - 1:
        x0 = x1 = W - 1
        x = float(x0)
    else:
        x1 = x0 + 1
    ly, lx = y - y0, x - x0
    return ((1 - ly) * (1 - lx) * plane[y0, x0] + (1 - ly) * lx * plane[y0, x1] + ly * (1 - lx) * plane[y1, x0]
            + ly * lx * plane[y1, x1])


def deform_roi_pool(data, rois, offset, pooled_height, pooled_width, spatial_scale, sampling_ratio, gamma):
    """mmcv's deformable RoI pooling, one output value at a time (mmcv/ops/csrc/common/cuda/
    deform_roi_pool_cuda_kernel.cuh, forward kernel), float64."""
    data, rois = np.asarray(data, dtype=np.float64), np.asarray(rois, dtype=np.float64)
    offset = None if offset is None else np.asarray(offset, dtype=np.float64)
    N, C, H, W = data.shape
    R = rois.shape[0]
    out = np.zeros((R, C, pooled_height, pooled_width))
    for r in range(R):
        b = int(rois[r, 0])
        sw, sh = rois[r, 1] * spatial_scale - 0.5, rois[r, 2] * spatial_scale - 0.5
        rw = rois[r, 3] * spatial_scale - 0.5 - sw
        rh = rois[r, 4] * spatial_scale - 0.5 - sh
        bw, bh = rw / pooled_width, rh / pooled_height
        gh = sampling_ratio if sampling_ratio > 0 else max(int(math.ceil(rh / pooled_height)), 0)
        gw = sampling_ratio if sampling_ratio > 0 else max(int(math.ceil(rw / pooled_width)), 0)
        for ph in range(pooled_height):
            for pw in range(pooled_width):
                x0, y0 = sw, sh
                if offset is not None:
                    x0 += gamma * rw * offset[r, 0, ph, pw]
                    y0 += gamma * rh * offset[r, 1, ph, pw]
                for c in range(C):
                    total = 0.0
                    for iy in range(gh):
                        y = y0 + ph * bh + (iy + 0.5) * bh / gh
                        for ix in range(gw):
                            x = x0 + pw * bw + (ix + 0.5) * bw / gw
                            total += roi_align_bilinear(data[b, c], y, x)
                    out[r, c, ph, pw] = total / max(gh * gw, 1)
    return out
