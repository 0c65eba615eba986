"""The awkward sweep of dcn::DCNv3 / dcn::DCNv4 cases every implementation is held to (reference vs
grid_sample, custom op, ONNX Runtime op, host-emulated CUDA kernels, device tests).

Kernels 3x3, 5x5, 3x5, 1x1 and 2x4 (even, dilated, offset_scale 2: an odd kernel's centre and
offset_scale 1 hide a wrong centre formula); stride 2 and (1, 2); dilation 2; asymmetric pads; offset_scale 0.5 / 2;
remove_center with 3x3 and 5x5; groups 1..32; channels per group 1..32 (odd ones: no vector path);
batch 0, 1, 2, 33; offsets far off the map. DCNv4 cases carry K padded to a multiple of 8 with the
padding filled with large values (they must be ignored).
"""
from __future__ import annotations

from dataclasses import dataclass, field
import torch

from exporter.contract import conv_out_size as out_size
from exporter.ops.dcnv4.spec import packed_channels


@dataclass
class DcnCase:
    name: str
    N: int
    H: int
    W: int
    group: int
    group_channels: int
    kernel: tuple[int, int] = (3, 3)
    strides: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (1, 1, 1, 1)
    dilations: tuple[int, int] = (1, 1)
    offset_scale: float = 1.0
    remove_center: int = 0
    offset_std: float = 1.5
    seed: int = 0
    x: torch.Tensor = field(default=None, repr=False)
    offset: torch.Tensor = field(default=None, repr=False)
    mask: torch.Tensor = field(default=None, repr=False)
    offset_mask: torch.Tensor = field(default=None, repr=False)

    @property
    def C(self) -> int:
        return self.group * self.group_channels

    @property
    def P(self) -> int:
        return self.kernel[0] * self.kernel[1] - self.remove_center

    @property
    def out_hw(self) -> tuple[int, int]:
        return (out_size(self.H, self.pads[0], self.pads[2], self.dilations[0], self.kernel[0], self.strides[0]),
                out_size(self.W, self.pads[1], self.pads[3], self.dilations[1], self.kernel[1], self.strides[1]))

    def attrs(self) -> dict:
        """The contract's attributes (ONNX / TensorRT field names)."""
        return dict(kernel_shape=list(self.kernel), strides=list(self.strides), pads=list(self.pads),
                    dilations=list(self.dilations), group=self.group, group_channels=self.group_channels,
                    offset_scale=float(self.offset_scale), remove_center=self.remove_center)

    def grid_kwargs(self) -> dict:
        return dict(kernel_shape=self.kernel, strides=self.strides, pads=self.pads, dilations=self.dilations,
                    group=self.group, offset_scale=self.offset_scale, remove_center=self.remove_center)


SPECS = [
    # name, N, H, W, G, Cg, kernel, strides, pads, dilations, offset_scale, remove_center, offset_std
    ("k3", 1, 7, 9, 4, 4, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1.0, 0, 1.5),
    ("k5-os0.5", 2, 8, 6, 2, 8, (5, 5), (1, 1), (2, 2, 2, 2), (1, 1), 0.5, 0, 2.0),
    ("k3x5-asym-os2", 1, 9, 11, 3, 5, (3, 5), (1, 2), (1, 2, 0, 1), (2, 1), 2.0, 0, 1.0),
    ("s2-d2", 2, 13, 10, 1, 16, (3, 3), (2, 2), (2, 2, 2, 2), (2, 2), 1.0, 0, 1.5),
    ("remove-center-k3", 1, 8, 8, 8, 4, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1.0, 1, 1.5),
    ("remove-center-k5", 1, 7, 9, 2, 6, (5, 5), (1, 1), (2, 2, 2, 2), (1, 1), 0.5, 1, 2.0),
    ("g32-cg4", 1, 5, 6, 32, 4, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1.0, 0, 1.5),
    ("g1-cg32", 1, 6, 5, 1, 32, (3, 3), (1, 1), (0, 1, 2, 0), (1, 1), 1.0, 0, 1.5),
    ("cg1-odd", 1, 6, 7, 3, 1, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1.0, 0, 1.0),
    ("cg8-k1", 1, 4, 5, 2, 8, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1.0, 0, 1.0),
    ("batch0", 0, 6, 6, 2, 4, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1.0, 0, 1.5),
    ("batch33", 33, 4, 5, 2, 4, (3, 3), (2, 1), (1, 1, 1, 1), (1, 1), 1.0, 0, 1.5),
    ("far-off-map", 1, 6, 7, 2, 8, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1.0, 0, 25.0),
    # an even kernel with dilation and offset_scale != 1: the window's centre enters the position
    ("k2x4-d2-os2", 1, 7, 9, 2, 4, (2, 4), (1, 1), (1, 1, 1, 1), (1, 2), 2.0, 0, 1.0),
]


def make_case(spec, dtype=torch.float64, seed: int = 0) -> DcnCase:
    name, N, H, W, G, Cg, k, s, p, d, os_, rc, std = spec
    c = DcnCase(name, N, H, W, G, Cg, k, s, p, d, os_, rc, std, seed)
    g = torch.Generator().manual_seed(seed + sum(map(ord, name)))
    ho, wo = c.out_hw
    P = c.P
    c.x = torch.randn(N, H, W, c.C, generator=g, dtype=torch.float64).to(dtype)
    c.offset = (torch.randn(N, ho, wo, G * P * 2, generator=g, dtype=torch.float64) * std).to(dtype)
    # some offsets land on integer positions (weights exactly 0 / 1)
    c.offset.view(-1)[::7] = torch.round(c.offset.view(-1)[::7])
    c.mask = torch.rand(N, ho, wo, G * P, generator=g, dtype=torch.float64).to(dtype)
    K = packed_channels(G, k, rc)
    om = torch.empty(N, ho, wo, K, dtype=torch.float64)
    packed = torch.cat([c.offset.double().reshape(N, ho, wo, G, 2 * P),
                        c.mask.double().reshape(N, ho, wo, G, P) * 2 - 0.5], -1)  # raw masks in [-0.5, 1.5)
    om[..., : G * 3 * P] = packed.reshape(N, ho, wo, G * 3 * P)
    om[..., G * 3 * P:] = 1e4  # DCNv4's padding channels: ignored
    c.offset_mask = om.to(dtype)
    return c


CASES = [make_case(s) for s in SPECS]


def with_infinite_masks(c: DcnCase, seed: int = 0) -> DcnCase:
    """The case with every sample on a neighbour (offsets rounded: bilinear weights 1, 0, 0, 0 with
    offset_scale 1 and an odd kernel) and masks of +inf / -inf at random points (DCNv3's mask and
    DCNv4's packed one alike)."""
    g = torch.Generator().manual_seed(seed)
    N, (ho, wo), G, P = c.N, c.out_hw, c.group, c.P
    c.offset = torch.round(c.offset)
    pick = torch.rand(c.mask.shape, generator=g, dtype=torch.float64)
    c.mask = torch.where(pick < 0.15, torch.inf, torch.where(pick < 0.25, -torch.inf, c.mask.double())).to(c.mask.dtype)
    om = c.offset_mask.double().clone()
    packed = om[..., : G * 3 * P].reshape(N, ho, wo, G, 3 * P)
    packed[..., : 2 * P] = c.offset.double().reshape(N, ho, wo, G, 2 * P)
    packed[..., 2 * P:] = c.mask.double().reshape(N, ho, wo, G, P)
    om[..., : G * 3 * P] = packed.reshape(N, ho, wo, G * 3 * P)
    c.offset_mask = om.to(c.offset_mask.dtype)
    return c


def by_name(name: str, dtype=torch.float64) -> DcnCase:
    return make_case(next(s for s in SPECS if s[0] == name), dtype)


def internimage_case(stage: int, size: int, batch: int, dtype=torch.float32, seed: int = 0,
                     offset_std: float = 2.0) -> DcnCase:
    """A DCNv3 layer of InternImage-T (channels 64 * 2^i, groups 4 * 2^i, 3x3, pad 1) at stage `stage`
    (1..4) of a `size` x `size` image (stride 4 * 2^(stage-1)), random inputs."""
    C, G, hw = 64 << (stage - 1), 4 << (stage - 1), size // (4 << (stage - 1))
    spec = (f"internimage-t-stage{stage}-{size}", batch, hw, hw, G, C // G, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1),
            1.0, 0, offset_std)
    return make_case(spec, dtype, seed)


def softmaxed(mask: torch.Tensor, group: int) -> torch.Tensor:
    """A mask as InternImage's module feeds it: softmax over each group's P points."""
    s = mask.shape
    return torch.softmax(mask.reshape(*s[:3], group, -1).double(), -1).reshape(s).to(mask.dtype)
