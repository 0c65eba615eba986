"""InternImage-T-like (DCNv3) and FlashInternImage-T-like (DCNv4) classifiers, random init.

The published tiny configurations (InternImage, Wang et al., CVPR 2023, classification/configs/
internimage_t_1k_224.yaml; FlashInternImage, Xiong et al., CVPR 2024, flash_intern_image_t_1k_224.yaml):
64 channels doubling per stage, depths 4, 4, 18, 4, groups 4, 8, 16, 32 (16 channels per group), MLP
ratio 4, offset_scale 1, 3x3 kernels. Written here from the papers' descriptions: a stem (two 3x3 stride-2
convs with LayerNorm and GELU: stride 4), four stages of blocks x + core(LN(x)), x + MLP(LN(x)) with a 3x3
stride-2 conv + LayerNorm between stages, and a classification head (1x1 conv to 1.5x the width, BN,
GELU, global average pool, fc). The core is ``exporter.ops.DCNv3`` (InternImage's module layout: softmax
masks) or ``exporter.ops.DCNv4`` (the DCNv4 package's: raw masks, one packed offset_mask). No drop path,
layer scale or post-norm (inference; the tiny models have none).

``--tiny`` (CI): 16 channels, groups 1, 2, 4, 8 (still 16 per group), one block per stage, 10 classes.
``offset_std``: the offset branches (zero at init) get random weights giving offsets of about that many
pixels, and DCNv4's masks (zero at init) about 1/P each, so that the exported model really deforms.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from exporter.ops import DCNv3, DCNv4

CORES = ("dcnv3", "dcnv4")
OUTPUT_NAMES = ("logits",)
DEFAULT_SIZE, TINY_SIZE = 224, 64
FULL = dict(channels=64, depths=(4, 4, 18, 4), groups=(4, 8, 16, 32), num_classes=1000)
TINY = dict(channels=16, depths=(1, 1, 1, 1), groups=(1, 2, 4, 8), num_classes=10)


class ChannelsFirstLN(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW tensor."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class Block(nn.Module):
    """x + core(LN(x)); x + MLP(LN(x)), on NHWC features."""

    def __init__(self, core: str, channels: int, group: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(channels, eps=1e-6)
        self.dcn = (DCNv3(channels=channels, group=group, offset_scale=1.0) if core == "dcnv3"
                    else DCNv4(channels=channels, group=group, offset_scale=1.0, output_bias=False))
        self.norm2 = nn.LayerNorm(channels, eps=1e-6)
        hidden = int(channels * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.GELU(), nn.Linear(hidden, channels))

    def core(self, x: Tensor) -> Tensor:
        if isinstance(self.dcn, DCNv3):
            return self.dcn(x)
        N, H, W, C = x.shape
        return self.dcn(x.reshape(N, H * W, C), (H, W)).reshape(N, H, W, C)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.core(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class InternImageClassifier(nn.Module):
    """``forward(images [N, 3, H, W]) -> logits [N, num_classes]`` (H, W multiples of 32)."""

    def __init__(self, core: str = "dcnv3", channels: int = 64, depths: Sequence[int] = (4, 4, 18, 4),
                 groups: Sequence[int] = (4, 8, 16, 32), num_classes: int = 1000) -> None:
        super().__init__()
        if core not in CORES:
            raise ValueError(f"core is {core!r}, expected one of {', '.join(CORES)}")
        self.core = core
        self.stem = nn.Sequential(nn.Conv2d(3, channels // 2, 3, 2, 1), ChannelsFirstLN(channels // 2, eps=1e-6),
                                  nn.GELU(), nn.Conv2d(channels // 2, channels, 3, 2, 1),
                                  ChannelsFirstLN(channels, eps=1e-6))
        self.stages, self.downsample = nn.ModuleList(), nn.ModuleList()
        for i, (depth, group) in enumerate(zip(depths, groups)):
            c = channels << i
            self.stages.append(nn.Sequential(*[Block(core, c, group) for _ in range(depth)]))
            if i < len(depths) - 1:
                self.downsample.append(nn.Sequential(nn.Conv2d(c, 2 * c, 3, 2, 1, bias=False),
                                                     ChannelsFirstLN(2 * c, eps=1e-6)))
        width = channels << (len(depths) - 1)
        self.conv_head = nn.Sequential(nn.Conv2d(width, int(width * 1.5), 1, bias=False),
                                       nn.BatchNorm2d(int(width * 1.5)), nn.GELU())
        self.fc = nn.Linear(int(width * 1.5), num_classes)

    def forward(self, images: Tensor) -> Tensor:
        x = self.stem(images).permute(0, 2, 3, 1)  # NHWC
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i < len(self.downsample):
                x = self.downsample[i](x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        x = self.conv_head(x.permute(0, 3, 1, 2))
        return self.fc(x.mean(dim=(2, 3)))


def randomize(model: nn.Module, offset_std: float, seed: int = 0) -> nn.Module:
    """All weights N(0, 1/fan_in) (a network that neither explodes nor vanishes), then the offset branches
    scaled to give offsets of about ``offset_std`` pixels and DCNv4's masks about 1/P (see the module doc)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) / fan_in ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.02)
            elif isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(1 + torch.rand(m.running_var.shape, generator=g))
        for m in model.modules():
            if isinstance(m, DCNv3):
                m.offset.weight.mul_(offset_std)
                m.offset.bias.zero_()
            elif isinstance(m, DCNv4):
                P, G = m.kernel_size ** 2 - m.remove_center, m.group
                w = m.offset_mask.weight.view(-1, m.channels)[: G * 3 * P].view(G, 3 * P, m.channels)
                b = m.offset_mask.bias[: G * 3 * P].view(G, 3 * P)
                w[:, : 2 * P].mul_(offset_std)
                b[:, : 2 * P].zero_()
                w[:, 2 * P:].mul_(0.3 / P)
                b[:, 2 * P:].fill_(1.0 / P)
    return model


def build(core: str = "dcnv3", *, tiny: bool = False, offset_std: float = 1.0, seed: int = 0) -> InternImageClassifier:
    net = InternImageClassifier(core, **(TINY if tiny else FULL))
    return randomize(net, offset_std, seed).eval()


def example_images(size: int, batch: int = 1, seed: int = 0) -> Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed + 1))


def offset_stats(model: nn.Module, images: Tensor) -> float:
    """Mean |offset| in pixels (times offset_scale) over every DCN layer on ``images``."""
    seen: list[float] = []

    def hook(scale, split):
        def record(_m, _inp, out):
            o = out if split is None else out.reshape(*out.shape[:-1], -1)[..., : split[0]].unflatten(
                -1, (split[1], -1))[..., : split[2]]
            seen.append(float(o.abs().mean()) * scale)
        return record

    handles = []
    for m in model.modules():
        if isinstance(m, DCNv3):
            handles.append(m.offset.register_forward_hook(hook(m.offset_scale, None)))
        elif isinstance(m, DCNv4):
            P = m.kernel_size ** 2 - m.remove_center
            handles.append(m.offset_mask.register_forward_hook(hook(m.offset_scale, (m.group * 3 * P, m.group, 2 * P))))
    try:
        with torch.no_grad():
            model(images)
    finally:
        for h in handles:
            h.remove()
    return sum(seen) / max(len(seen), 1)


def describe(model: nn.Module) -> str:
    n = sum(p.numel() for p in model.parameters())
    layers = sum(isinstance(m, (DCNv3, DCNv4)) for m in model.modules())
    return f"{n / 1e6:.1f} M parameters, {layers} {'DCNv3' if model.core == 'dcnv3' else 'DCNv4'} layers"


# zero-argument factories for dcn-export --factory (weights from a state dict)
def internimage_t() -> InternImageClassifier:
    return InternImageClassifier("dcnv3", **FULL)


def flash_internimage_t() -> InternImageClassifier:
    return InternImageClassifier("dcnv4", **FULL)


def tiny_internimage_t() -> InternImageClassifier:
    return InternImageClassifier("dcnv3", **TINY)


def tiny_flash_internimage_t() -> InternImageClassifier:
    return InternImageClassifier("dcnv4", **TINY)
