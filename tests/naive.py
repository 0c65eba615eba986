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
                    part_h = math.floor(ph / P * part)
                    part_w = math.floor(pw / P * part)
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
