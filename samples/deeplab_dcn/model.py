"""DeepLab-style semantic segmentation on the ResNet-DCN backbone with a dilated c5, as in the paper.

The Deformable ConvNets paper runs DeepLab on ResNet-101 whose conv5 has stride 1 and dilation 2
(output stride 16) with deformable 3x3 convs there. Here: the ResNet-50-DCN of
:mod:`samples.resnet_dcn` (deformable 3x3s in c3-c5, c5's dilated 2 with stride 1 in layer4), then
an ASPP-lite head (DeepLab v3's atrous spatial pyramid pooling, reduced: a 1x1 branch, 3x3 branches
with dilation 6 and 12, image pooling (without BatchNorm); concatenated, 1x1 projection), a 1x1 classifier over 21
classes and bilinear upsampling to the input size.

Input ``images`` [N, 3, H, W]; output ``logits`` [N, 21, H, W]. ``tiny`` shrinks the backbone and
the head's width (the structure stays).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from samples.rfcn_dpsroi.model import ResNetFeatures, features

NUM_CLASSES = 21
ASPP_RATES = (6, 12)
OUTPUT_NAMES = ("logits",)
DEFAULT_SIZE = 224
TINY_SIZE = 64


def _conv_bn_relu(cin: int, cout: int, k: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=dilation * (k // 2), dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ASPPLite(nn.Module):
    def __init__(self, cin: int, cout: int, rates: tuple[int, ...] = ASPP_RATES) -> None:
        super().__init__()
        self.branches = nn.ModuleList([_conv_bn_relu(cin, cout, 1)] + [_conv_bn_relu(cin, cout, 3, r) for r in rates])
        # image pooling: no BatchNorm on its 1x1 map (statistics over a batch of single pixels are noise)
        self.image_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, 1), nn.ReLU(inplace=True))
        self.project = _conv_bn_relu(cout * (len(rates) + 2), cout, 1)

    def forward(self, x: Tensor) -> Tensor:
        pooled = self.image_pool(x).expand(-1, -1, x.shape[2], x.shape[3])
        return self.project(torch.cat([b(x) for b in self.branches] + [pooled], dim=1))


class DeepLabDCN(nn.Module):
    """``forward(images) -> logits`` [N, classes, H, W]."""

    def __init__(self, backbone: ResNetFeatures, head_channels: int = 256, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.backbone = backbone
        self.aspp = ASPPLite(backbone.out_channels, head_channels)
        self.classifier = nn.Conv2d(head_channels, num_classes, 1)

    def forward(self, images: Tensor) -> Tensor:
        x = self.classifier(self.aspp(self.backbone(images)))
        return nn.functional.interpolate(x, size=images.shape[-2:], mode="bilinear", align_corners=False)


@torch.no_grad()
def _calibrate_head(net: DeepLabDCN, images: Tensor) -> None:
    """BN statistics of the head from one batch (the backbone's are calibrated already)."""
    bns = [m for m in net.aspp.modules() if isinstance(m, nn.BatchNorm2d)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    net.aspp.train()
    net.aspp(net.backbone(images))
    for bn in bns:
        bn.momentum = 0.1
    net.eval()


def build(variant: str = "dcnv2", *, tiny: bool = False, offset_std: float = 0.0, seed: int = 0) -> DeepLabDCN:
    """The segmentation sample in eval mode (tiny: 1-block 1/4-width backbone, 32-channel head)."""
    from samples.resnet_dcn.model import calibration_images

    feats = features(variant, tiny, offset_std, seed)
    torch.manual_seed(seed)
    net = DeepLabDCN(feats, head_channels=32 if tiny else 256)
    _calibrate_head(net, calibration_images(size=TINY_SIZE if tiny else DEFAULT_SIZE))
    return net.eval()


# zero-argument factories for ``dcn-export weights.pth --factory samples.deeplab_dcn.model:NAME``
def deeplab_dcnv2() -> DeepLabDCN:
    return build()


def tiny_deeplab_dcnv2() -> DeepLabDCN:
    return build(tiny=True)
