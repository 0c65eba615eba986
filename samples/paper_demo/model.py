"""The demo's CNN: a plain version and the same network with deformable convs in its last 3 layers.

Both share one layout (the paper's recipe in small: deformable convs replace the last
plain 3x3 convs, offsets from a zero-initialised conv branch, ``DeformConv2dPack``)::

    images [N, 1, 32, 32]
    conv1 3x3, 8   + BN + ReLU, maxpool 2      stride 2 (16x16)
    conv2 3x3, 16  + BN + ReLU
    conv3 3x3, 16  + BN + ReLU   <- deformable in the DCN model
    conv4 3x3, 16  + BN + ReLU   <- deformable
    conv5 3x3, 16  + BN + ReLU   <- deformable
    global average pool, fc -> logits [N, 4]

The plain network's receptive field is 20 pixels, less than a large object (up to 30
pixels wide): a unit sees a part of a big shape, or a small shape with clutter around
it. Deformable layers can spread or gather their sampling points to the object's size.

``build_plain`` / ``build_dcn`` take no arguments so that ``dcn-compare --factory
samples.paper_demo.model:build_dcn`` can rebuild the model for a saved state dict.
"""
from __future__ import annotations

from torch import Tensor, nn

from exporter.ops import DeformConv2dPack

from .fast import deform_conv_fast

NUM_CLASSES = 4
WIDTH = 16
IMAGE_SIZE = 32
FEATURE_STRIDE = 2  # image pixels per feature pixel at conv3..conv5
DEFORM_LAYERS = ("conv3", "conv4", "conv5")


def _block(conv: nn.Module, channels: int) -> nn.Sequential:
    return nn.Sequential(conv, nn.BatchNorm2d(channels), nn.ReLU(inplace=True))


class ShapeNet(nn.Module):
    def __init__(self, deformable: bool, num_classes: int = NUM_CLASSES, width: int = WIDTH) -> None:
        super().__init__()
        self.deformable = deformable
        self.fast = False  # True: deformable layers via samples.paper_demo.fast (training speed)
        half = width // 2
        self.conv1 = _block(nn.Conv2d(1, half, 3, padding=1, bias=False), half)
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = _block(nn.Conv2d(half, width, 3, padding=1, bias=False), width)
        for name in DEFORM_LAYERS:
            conv = (DeformConv2dPack(width, width, 3, padding=1, bias=False) if deformable
                    else nn.Conv2d(width, width, 3, padding=1, bias=False))
            setattr(self, name, _block(conv, width))
        self.fc = nn.Linear(width, num_classes)

    def features(self, x: Tensor) -> list[Tensor]:
        """Inputs of conv3, conv4, conv5 and the output of conv5 (for the sampling-location plot)."""
        x = self.conv2(self.pool1(self.conv1(x)))
        feats = [x]
        for name in DEFORM_LAYERS:
            block = getattr(self, name)
            if self.fast and self.deformable:  # training only: same function, grid_sample kernels
                x = block[2](block[1](deform_conv_fast(block[0], x)))
            else:
                x = block(x)
            feats.append(x)
        return feats

    def forward(self, images: Tensor) -> Tensor:
        x = self.features(images)[-1]
        return self.fc(x.mean(dim=(2, 3)))

    def deform_convs(self) -> list[DeformConv2dPack]:
        return [getattr(self, name)[0] for name in DEFORM_LAYERS] if self.deformable else []


def build_plain() -> ShapeNet:
    return ShapeNet(deformable=False)


def build_dcn() -> ShapeNet:
    return ShapeNet(deformable=True)
