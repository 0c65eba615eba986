"""ResNet-50 with deformable 3x3 convolutions in stages c3-c5 (mmdetection's ``dconv_c3-c5``).

torchvision's ``resnet50(weights=None)`` (``ResNet(Bottleneck, [3, 4, 6, 3])``, here a subclass whose
forward names its input ``images``) with ``conv2`` (the 3x3) of every bottleneck in
``layer2``-``layer4`` replaced by our :class:`~exporter.ops.DeformConv2dPack` (DCNv1) or
:class:`~exporter.ops.ModulatedDeformConv2dPack` (DCNv2, mmcv layout): same geometry (stride 2
on the 3x3 of a stage's first block, as torchvision and mmdetection's ``style='pytorch'``),
no bias, the dense conv's weights copied, the offset branch zero-initialised as in the paper.
Module paths stay torchvision's (``layer3.0.conv2``), so the ONNX nodes carry those names.

Variants: ``dcnv1``, ``dcnv2``, ``dcnv2-dg4`` (DCNv2 with deform_groups 4).

* ``offset_std > 0`` fills the offset branches with small random weights (std
  ``offset_std / sqrt(fan_in)``, bias std ``offset_std``): a unit-scale input then gives offsets
  of about ``offset_std`` pixels, so bilinear sampling is really exercised (zero offsets would make
  every deformable conv a plain conv).
* ``tiny=True`` is the CI size: the same structure with one bottleneck per stage
  (``ResNet(Bottleneck, [1, 1, 1, 1])``) and a quarter of the width (c5 has 512 channels).
* ``dilate_c5=True`` is the paper's segmentation / R-FCN backbone: ``layer4`` with stride 1 and
  dilation 2, its deformable 3x3s dilated 2 (output stride 16).

BatchNorm statistics are calibrated on a few random images (``calibrate``) so activations stay
at unit scale through the untrained network, as they would in a trained one, and each residual
branch's last BatchNorm starts at weight ``RESIDUAL_GAIN`` = 0.5 (see there) so the untrained
network is not chaotic.
"""
from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import Bottleneck, ResNet

from exporter.ops import DeformConv2dPack, ModulatedDeformConv2dPack

VARIANTS = {
    # name: (module class, deform_groups)
    "dcnv1": (DeformConv2dPack, 1),
    "dcnv2": (ModulatedDeformConv2dPack, 1),
    "dcnv2-dg4": (ModulatedDeformConv2dPack, 4),
}
DEFAULT_SIZE = 224
# Scale of each bottleneck's last BatchNorm (bn3.weight; torchvision: 1, zero_init_residual: 0). With
# full-strength random residual branches an untrained ResNet-50 is chaotic: float32 rounding grows
# about 4x per stage, and PyTorch's own float32 run of the full-size DeepLab sample differs from its
# float64 run by 1.4x the float32 tolerance. At 0.5 the network is as tame as a trained one (that
# error drops to 0.03x) while every deformable conv still shapes the output.
RESIDUAL_GAIN = 0.5
TINY_SIZE = 64


class ResNetDCN(ResNet):
    """torchvision's ResNet whose forward names its input ``images`` (the ONNX input's name)."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self._forward_impl(images)


class _NarrowResNet(ResNetDCN):
    """torchvision's ResNet with every stage's width divided by ``divisor`` (the stem stays 64)."""

    def __init__(self, layers: list[int], divisor: int, **kwargs) -> None:
        self._divisor = divisor
        super().__init__(Bottleneck, layers, **kwargs)
        self.fc = nn.Linear(512 * Bottleneck.expansion // divisor, self.fc.out_features)

    def _make_layer(self, block, planes, blocks, stride=1, dilate=False):  # type: ignore[override]
        return super()._make_layer(block, planes // self._divisor, blocks, stride, dilate)


def check_variant(variant: str) -> tuple[type, int]:
    if variant not in VARIANTS:
        raise ValueError(f"variant {variant!r}: expected one of {', '.join(VARIANTS)}")
    return VARIANTS[variant]


def backbone(variant: str = "dcnv2", *, tiny: bool = False, dilate_c5: bool = False, num_classes: int = 1000,
             seed: int = 0) -> ResNetDCN:
    """torchvision ResNet-50 (or the tiny one) with deformable conv2 in layer2-4 (zero offsets, no calibration)."""
    cls, deform_groups = check_variant(variant)
    torch.manual_seed(seed)
    dilation = [False, False, dilate_c5]
    if tiny:
        net: ResNetDCN = _NarrowResNet([1, 1, 1, 1], divisor=4, num_classes=num_classes,
                                    replace_stride_with_dilation=dilation)
    else:  # exactly torchvision's resnet50(weights=None): ResNet(Bottleneck, [3, 4, 6, 3]), no weights loaded
        net = ResNetDCN(Bottleneck, [3, 4, 6, 3], num_classes=num_classes, replace_stride_with_dilation=dilation)
    for layer in (net.layer2, net.layer3, net.layer4):
        for block in layer:
            conv = block.conv2
            d = 2 if (dilate_c5 and layer is net.layer4) else conv.dilation[0]  # the paper: all of c5 dilated 2
            dcn = cls(conv.in_channels, conv.out_channels, 3, stride=conv.stride, padding=d, dilation=d,
                      groups=conv.groups, deform_groups=deform_groups, bias=False)
            with torch.no_grad():
                dcn.weight.copy_(conv.weight)
            block.conv2 = dcn
    for layer in (net.layer1, net.layer2, net.layer3, net.layer4):
        for block in layer:
            nn.init.constant_(block.bn3.weight, RESIDUAL_GAIN)
    return net


def deformable_convs(model: nn.Module) -> list[tuple[str, DeformConv2dPack]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, DeformConv2dPack)]


def randomize_offset_branches(model: nn.Module, std: float, seed: int = 0) -> nn.Module:
    """Offset (and mask) branches of every DeformConv2dPack ~ N(0, std^2 / fan_in), bias ~ N(0, std^2)."""
    g = torch.Generator().manual_seed(seed)
    for _, m in deformable_convs(model):
        w = m.conv_offset.weight
        with torch.no_grad():
            w.copy_(torch.randn(w.shape, generator=g) * std / w[0].numel() ** 0.5)
            m.conv_offset.bias.copy_(torch.randn(m.conv_offset.bias.shape, generator=g) * std)
    return model


@torch.no_grad()
def calibrate(model: nn.Module, images: torch.Tensor, *extra: torch.Tensor) -> nn.Module:
    """BatchNorm running statistics from one batch (cumulative average), then eval mode.

    An untrained network in eval mode with BN's default statistics lets activations grow stage
    after stage; calibrated, they stay at unit scale like a trained network's."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    model.train()
    model(images, *extra)
    for bn, mom in zip(bns, saved):
        bn.momentum = mom
    return model.eval()


def calibration_images(n: int = 2, size: int = DEFAULT_SIZE, seed: int = 1) -> torch.Tensor:
    """N(0, 1) images for BN calibration: the distribution of the example inputs (dcn-export's too)."""
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def build(variant: str = "dcnv2", *, tiny: bool = False, offset_std: float = 0.0, dilate_c5: bool = False,
          num_classes: int = 1000, seed: int = 0) -> ResNet:
    """The ResNet-DCN classifier in eval mode: backbone, offsets randomized if asked, BN calibrated."""
    net = backbone(variant, tiny=tiny, dilate_c5=dilate_c5, num_classes=num_classes, seed=seed)
    if offset_std:
        randomize_offset_branches(net, offset_std, seed=seed)
    return calibrate(net, calibration_images(size=TINY_SIZE if tiny else DEFAULT_SIZE))


def example_images(size: int, batch: int = 1, seed: int = 0) -> torch.Tensor:
    """The example input: [batch, 3, size, size], N(0, 1) (what dcn-export generates too)."""
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def offset_stats(model: nn.Module, *inputs: torch.Tensor) -> dict[str, float]:
    """Max |offset| (pixels) over all deformable convs for ``inputs``: shows the sampling is exercised."""
    worst = {"max_abs_offset": 0.0, "mean_abs_offset": 0.0}
    values: list[torch.Tensor] = []

    def hook(module, args):
        out = module._branch(args[0])  # the offset branch's output (o1, o2, mask for DCNv2)
        o = out[:, : module.num_offset_channels] if module.modulated else out
        values.append(o.detach().abs().flatten())

    handles = [m.register_forward_pre_hook(hook) for _, m in deformable_convs(model)]
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        for h in handles:
            h.remove()
    if values:
        allv = torch.cat(values)
        worst = {"max_abs_offset": float(allv.max()), "mean_abs_offset": float(allv.mean())}
    return worst


# --------------------------------------------------------------------------- zero-argument factories
# ``dcn-export weights.pth --factory samples.resnet_dcn.model:NAME`` builds these. The state dict
# holds everything else (weights, offset branches, BN statistics), so factories skip calibration.
def _factory(variant: str, tiny: bool, dilate_c5: bool = False):
    def make() -> ResNet:
        return backbone(variant, tiny=tiny, dilate_c5=dilate_c5).eval()

    make.__name__ = make.__qualname__ = ("tiny_" if tiny else "") + "resnet50_" + variant.replace("-", "_")
    return make


resnet50_dcnv1 = _factory("dcnv1", False)
resnet50_dcnv2 = _factory("dcnv2", False)
resnet50_dcnv2_dg4 = _factory("dcnv2-dg4", False)
tiny_resnet50_dcnv1 = _factory("dcnv1", True)
tiny_resnet50_dcnv2 = _factory("dcnv2", True)
tiny_resnet50_dcnv2_dg4 = _factory("dcnv2-dg4", True)


def factory_name(variant: str, tiny: bool) -> str:
    check_variant(variant)
    return ("tiny_" if tiny else "") + "resnet50_" + variant.replace("-", "_")


def describe(model: nn.Module) -> str:
    convs = deformable_convs(model)
    kinds = sorted({type(m).__name__ for _, m in convs})
    dg = sorted({m.deform_groups for _, m in convs})
    params = sum(p.numel() for p in model.parameters())
    return (f"{len(convs)} deformable 3x3 convs ({', '.join(kinds)}, deform_groups {', '.join(map(str, dg))}), "
            f"{params / 1e6:.1f} M parameters")


__all__ = [
    "VARIANTS", "backbone", "build", "calibrate", "deformable_convs", "example_images", "factory_name",
    "offset_stats", "randomize_offset_branches", "resnet50_dcnv1", "resnet50_dcnv2", "resnet50_dcnv2_dg4",
    "tiny_resnet50_dcnv1", "tiny_resnet50_dcnv2", "tiny_resnet50_dcnv2_dg4",
]
