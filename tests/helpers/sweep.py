"""The awkward parameter sweep every implementation is tested on (brief, habit 1).

``conv_cases()`` / ``pool_cases()`` yield (id, case) with float64 torch tensors and
the contract's attributes, so any implementation (reference, naive loops, host C++
math, ONNX Runtime op, TensorRT plugin) can be fed the same inputs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch

from exporter.contract import conv_out_size


@dataclass
class ConvCase:
    x: torch.Tensor
    weight: torch.Tensor
    offset: torch.Tensor
    bias: Optional[torch.Tensor]
    mask: Optional[torch.Tensor]
    strides: tuple
    pads: tuple  # top, left, bottom, right
    dilations: tuple
    group: int
    offset_group: int

    def attrs(self) -> dict:
        return dict(strides=list(self.strides), pads=list(self.pads), dilations=list(self.dilations),
                    group=self.group, offset_group=self.offset_group,
                    kernel_shape=list(self.weight.shape[2:]))


# (id, N, C, H, W, M, kH, kW, strides, pads, dilations, group, offset_group, modulated, bias, offset_scale)
CONV_SPECS = [
    ("basic3x3", 1, 4, 6, 7, 5, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1, 1, False, True, 1.0),
    ("k3x2-asym", 2, 6, 7, 9, 4, 3, 2, (2, 1), (1, 0, 2, 1), (2, 1), 2, 3, True, True, 2.0),
    ("k2x3-stride12", 1, 6, 8, 5, 6, 2, 3, (1, 2), (0, 2, 1, 0), (1, 2), 3, 2, True, False, 1.5),
    ("far-outside", 1, 3, 5, 5, 2, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1, 1, True, True, 8.0),
    ("batch0", 0, 4, 5, 6, 4, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 2, 2, True, True, 1.0),
    ("1x1-groups", 2, 8, 4, 4, 8, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 4, 8, False, True, 1.0),
]

# small enough for numerical gradchecks, still asymmetric with groups and offset groups
CONV_GRAD_SPEC = ("grad-small", 1, 4, 4, 5, 2, 3, 2, (2, 1), (1, 0, 2, 1), (2, 1), 2, 2, True, True, 1.5)


def make_conv_case(spec, dtype=torch.float64, seed=0, batch=None) -> ConvCase:
    (_, N, C, H, W, M, kH, kW, strides, pads, dil, group, og, modulated, bias, scale) = spec
    if batch is not None:
        N = batch
    g = torch.Generator().manual_seed(seed)
    oh = conv_out_size(H, pads[0], pads[2], dil[0], kH, strides[0])
    ow = conv_out_size(W, pads[1], pads[3], dil[1], kW, strides[1])
    x = torch.randn(N, C, H, W, generator=g, dtype=dtype)
    w = torch.randn(M, C // group, kH, kW, generator=g, dtype=dtype)
    off = torch.randn(N, 2 * og * kH * kW, oh, ow, generator=g, dtype=dtype) * scale
    # keep away from exact integers (bilinear kinks) for gradchecks
    off = off + 0.123
    mask = torch.rand(N, og * kH * kW, oh, ow, generator=g, dtype=dtype) if modulated else None
    b = torch.randn(M, generator=g, dtype=dtype) if bias else None
    return ConvCase(x, w, off, b, mask, strides, pads, dil, group, og)


def infinite_mask_conv_case(seed: int = 3) -> ConvCase:
    """3x3, pad 1, one channel, integer offsets (every sample on a neighbour or off the map: weights 1, 0,
    0, 0) and masks of +inf / -inf at random points; one value 0 (inf * 0: NaN)."""
    g = torch.Generator().manual_seed(seed)
    N, H, W = 2, 5, 6
    sign = torch.where(torch.rand(N, 1, H, W, generator=g) < 0.5, -1.0, 1.0).double()
    x = (torch.rand(N, 1, H, W, generator=g, dtype=torch.float64) * 1.5 + 0.5) * sign
    x[0, 0, 2, 2] = 0.0
    offset = torch.randint(-2, 3, (N, 18, H, W), generator=g).double()
    pick = torch.rand(N, 9, H, W, generator=g, dtype=torch.float64)
    mask = torch.where(pick < 0.2, torch.inf, torch.where(pick < 0.3, -torch.inf, pick))
    return ConvCase(x, torch.full((1, 1, 3, 3), 0.5, dtype=torch.float64), offset, torch.zeros(1, dtype=torch.float64),
                    mask, (1, 1), (1, 1, 1, 1), (1, 1), 1, 1)


def conv_cases(dtype=torch.float64):
    for spec in CONV_SPECS:
        yield spec[0], make_conv_case(spec, dtype)


@dataclass
class PoolCase:
    data: torch.Tensor
    rois: torch.Tensor
    trans: Optional[torch.Tensor]
    attrs: dict = field(default_factory=dict)


# (id, N, H, W, output_dim, group_size, pooled, part, spp, num_classes(0 = no trans), scale, trans_std, rois)
POOL_SPECS = [
    ("plain-notrans", 1, 8, 10, 3, 1, 3, 0, 2, 0, 0.5, 0.1,
     [[0, 1, 1, 12, 10], [0, 0, 0, 19, 15]]),
    ("ps3-classes2-part2", 2, 9, 11, 4, 3, 3, 2, 2, 2, 0.5, 0.1,
     [[0, 2, 3, 14, 12], [1, -4, -6, 8, 9], [1, 3.5, 2.5, 3.5, 2.5]]),
    ("ps2-pooled5-offimage", 1, 6, 7, 2, 2, 5, 3, 3, 1, 0.25, 0.3,
     [[0, -40, -40, -20, -10], [0, 10, 8, 60, 50], [0, 20.5, -0.5, 27.5, 12.5]]),
    ("gs1-fc-trans", 2, 7, 7, 5, 1, 4, 0, 4, 1, 1.0, 0.1,
     [[1, 0, 0, 6, 6], [0, 2, 1, 3, 2], [0, 6, 6, 6, 6]]),
    ("no-rois", 1, 5, 5, 2, 2, 2, 0, 2, 1, 1.0, 0.1, []),
    # pooled 22: the part bins in float32 (13 / 22 * 22 = 12.999999: part 12, not 13); a corner at
    # 0.49999997 (C round: 0, where a rounded float32 sum gave 1)
    ("pooled22-part-rounding", 1, 9, 10, 2, 1, 22, 0, 1, 1, 0.5, 0.3,
     [[0, 0.49999997, 1, 15, 14], [0, 2, 3.5, 12, 16.5]]),
]

# small enough for numerical gradchecks
POOL_GRAD_SPEC = ("grad-small", 1, 5, 6, 2, 2, 2, 0, 2, 2, 1.0, 0.2, [[0, 0.5, 1, 4, 3.5], [0, -1, 2, 6, 9]])


def make_pool_case(spec, dtype=torch.float64, seed=0) -> PoolCase:
    (_, N, H, W, D, G, P, part, S, ncls, scale, tstd, rois) = spec
    g = torch.Generator().manual_seed(seed)
    data = torch.randn(N, D * G * G, H, W, generator=g, dtype=dtype)
    r = torch.tensor(rois, dtype=dtype).reshape(-1, 5)
    R = r.shape[0]
    psz = part or P
    trans = torch.randn(R, 2 * ncls, psz, psz, generator=g, dtype=dtype) * 2 + 0.0123 if ncls else None
    attrs = dict(spatial_scale=scale, output_dim=D, group_size=G, pooled_size=P, part_size=part,
                 sample_per_part=S, trans_std=tstd, no_trans=int(trans is None))
    return PoolCase(data, r, trans, attrs)


def pool_cases(dtype=torch.float64):
    for spec in POOL_SPECS:
        yield spec[0], make_pool_case(spec, dtype)


def pool_kwargs(attrs: dict) -> dict:
    """The contract attributes as keyword arguments of exporter.ops.deform_psroi_pool."""
    return {k: v for k, v in attrs.items() if k != "no_trans"}


def make_fused_case(N, C, H, W, M, *, k=(3, 3), strides=(1, 1), pads=(1, 1, 1, 1), dilations=(1, 1),
                    offset_group=1, bias=True, mask=True, spread=2.0, seed=0) -> ConvCase:
    """A DeformConv2d case the fused FP16 path takes (group 1, C / offset_group a multiple of 32)."""
    g = torch.Generator().manual_seed(seed)
    oh = conv_out_size(H, pads[0], pads[2], dilations[0], k[0], strides[0])
    ow = conv_out_size(W, pads[1], pads[3], dilations[1], k[1], strides[1])
    kk = k[0] * k[1]
    x = torch.randn(N, C, H, W, generator=g, dtype=torch.float64)
    w = torch.randn(M, C, *k, generator=g, dtype=torch.float64) / (C * kk) ** 0.5
    off = torch.randn(N, 2 * offset_group * kk, oh, ow, generator=g, dtype=torch.float64) * spread + 0.123
    msk = torch.rand(N, offset_group * kk, oh, ow, generator=g, dtype=torch.float64) if mask else None
    b = torch.randn(M, generator=g, dtype=torch.float64) if bias else None
    if msk is not None and b is None:
        b = torch.zeros(M, dtype=torch.float64)  # what dcn-export writes (B before mask)
    return ConvCase(x, w, off, b, msk, strides, pads, dilations, 1, offset_group)


FUSED_CASES = {
    # 2 images x 9x11 pixels: two pixel tiles, the second partial; M 40 < one M tile
    "basic": dict(N=2, C=32, H=9, W=11, M=40),
    # offset groups 2 (32 channels each), asymmetric stride / pad / dilation, kernel 3x2, no mask
    "asym-og2": dict(N=3, C=64, H=10, W=7, M=24, k=(3, 2), strides=(2, 1), pads=(1, 0, 2, 1), dilations=(1, 2),
                     offset_group=2, mask=False),
    # M 130: two M tiles (the second 2 rows); far offsets (points outside the map); no bias
    "m130-outside": dict(N=1, C=32, H=6, W=6, M=130, spread=6.0, bias=False, mask=False),
}
