"""An independent formulation of DCNv3 / DCNv4 with ``torch.nn.functional.grid_sample``: the way InternImage's
PyTorch path (``dcnv3_core_pytorch``) computes the op, written here from the paper (Wang et al., CVPR 2023,
eq. 4: y(p0) = sum_g sum_k m_gk x_g(p0 + p_k + dp_gk)) and shared/design/ops.md, not from its code.

The map is zero-padded first; each output's kernel window starts at (ho*sh, wo*sw) in the padded map with
its reference point at the window's centre (ch, cw) = (dh*(kh-1)//2, dw*(kw-1)//2); the kernel grid, x-major
(width outer, height inner, centre dropped with remove_center), is (i*dw - cw, j*dh - ch); offset_scale
multiplies grid and learned offset alike. Pixel positions become grid_sample's normalised coordinates with
align_corners=False ((p + 0.5) / size * 2 - 1); grid_sample's zero padding reads 0 outside the padded map.
Also the tests' and the benchmark's GPU baseline (what InternImage users run without the CUDA op).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def dcnv3_grid_sample(x, offset, mask, kernel_shape, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), group=1,
                      offset_scale=1.0, remove_center=0):
    """x [N, H, W, C]; offset [N, Ho, Wo, G*P*2]; mask [N, Ho, Wo, G*P] -> [N, Ho, Wo, C] (x's dtype)."""
    N, H, W, C = x.shape
    kh, kw = kernel_shape
    sh, sw = strides
    dh, dw = dilations
    top, left, bottom, right = pads
    G, Cg = group, C // group
    xp = F.pad(x, (0, 0, left, right, top, bottom))
    Hp, Wp = H + top + bottom, W + left + right
    Ho, Wo = (Hp - (dh * (kh - 1) + 1)) // sh + 1, (Wp - (dw * (kw - 1) + 1)) // sw + 1
    ch, cw = (dh * (kh - 1)) // 2, (dw * (kw - 1)) // 2
    pts = [(i * dw - cw, j * dh - ch) for i in range(kw) for j in range(kh)
           if not (remove_center and i == kw // 2 and j == kh // 2)]
    P = len(pts)
    dev, dt = x.device, x.dtype
    grid = torch.tensor(pts, dtype=dt, device=dev)  # [P, 2] (x, y)
    ref_x = torch.arange(Wo, dtype=dt, device=dev) * sw + cw
    ref_y = torch.arange(Ho, dtype=dt, device=dev) * sh + ch
    ref = torch.stack(torch.broadcast_tensors(ref_x.view(1, Wo), ref_y.view(Ho, 1)), -1)  # [Ho, Wo, 2]
    off = offset.reshape(N, Ho, Wo, G, P, 2)
    loc = ref.view(1, Ho, Wo, 1, 1, 2) + offset_scale * (grid.view(1, 1, 1, 1, P, 2) + off)  # padded pixels
    size = torch.tensor([Wp, Hp], dtype=dt, device=dev)
    norm = (loc + 0.5) / size * 2 - 1
    norm = norm.permute(0, 3, 1, 2, 4, 5).reshape(N * G, Ho * Wo, P, 2)
    value = xp.reshape(N, Hp, Wp, G, Cg).permute(0, 3, 4, 1, 2).reshape(N * G, Cg, Hp, Wp)
    sampled = F.grid_sample(value, norm, mode="bilinear", padding_mode="zeros", align_corners=False)
    m = mask.reshape(N, Ho, Wo, G, P).permute(0, 3, 1, 2, 4).reshape(N * G, 1, Ho * Wo, P)
    out = (sampled * m).sum(-1)  # [N*G, Cg, Ho*Wo]
    return out.reshape(N, G, Cg, Ho, Wo).permute(0, 3, 4, 1, 2).reshape(N, Ho, Wo, C)


def dcnv4_grid_sample(x, offset_mask, kernel_shape, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), group=1,
                      offset_scale=1.0, remove_center=0):
    """DCNv4: offset_mask [N, Ho, Wo, K]; group g's 3P channels at g*3P: P (dx, dy) pairs, then P masks."""
    N, Ho, Wo, _ = offset_mask.shape
    P = kernel_shape[0] * kernel_shape[1] - remove_center
    om = offset_mask[..., : group * 3 * P].reshape(N, Ho, Wo, group, 3 * P)
    offset = om[..., : 2 * P].reshape(N, Ho, Wo, group * 2 * P)
    mask = om[..., 2 * P:].reshape(N, Ho, Wo, group * P)
    return dcnv3_grid_sample(x, offset, mask, kernel_shape, strides, pads, dilations, group, offset_scale,
                             remove_center)
