"""Detection heads with deformable (position-sensitive) RoI pooling on ResNet-DCN features.

Both follow the Deformable ConvNets paper (Dai et al., ICCV 2017) and its original MXNet code:
the backbone is the ResNet-DCN of :mod:`samples.resnet_dcn` with a dilated c5 (stride 1, dilation
2: output stride 16, ``spatial_scale = 1/16``), followed by a new 1x1 conv + ReLU (``conv_new_1``).
Inputs: ``images`` [N, 3, H, W] and ``rois`` [R, 5] = (batch_index, x1, y1, x2, y2) in image pixels.

* :class:`RFCN` (``head="rfcn"``): R-FCN with deformable position-sensitive RoI pooling, group_size 7,
  21 classes. ``rfcn_cls`` (7*7*21 score maps) is pooled by a :class:`DeformPSROIPoolPack` with
  class-specific offsets (``num_offset_classes = 21``), ``rfcn_bbox`` (7*7*8 maps, 8 = 4 box
  coordinates x 2 class-agnostic classes) by one with class-agnostic offsets
  (``num_offset_classes = 1``); both average-pooled over the 7x7 bins (position-sensitive voting).
  Outputs ``cls_score`` [R, 21] (class logits; the softmax is post-processing) and ``bbox_pred`` [R, 8].
* :class:`FasterRCNN` (``head="faster"``): Faster R-CNN with deformable RoI pooling (group_size 1,
  7x7 bins, offsets from fc layers, trans_std = gamma = 0.1), then fc6/fc7 (ReLU) and the
  ``cls_score`` / ``bbox_pred`` layers. Outputs ``cls_score`` [R, 21] and ``bbox_pred`` [R, 8].

Offset branches are zero-initialised as in the paper; ``offset_std > 0`` gives them small random
weights so the deformable sampling is exercised. ``tiny`` shrinks the backbone and the head's
channels (classes, group size and pooled size stay the paper's).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from exporter.ops import DeformPSROIPoolPack
from samples.resnet_dcn import model as resnet

NUM_CLASSES = 21
GROUP_SIZE = 7  # R-FCN's k x k position-sensitive bins
POOLED_SIZE = 7
SAMPLE_PER_PART = 4
TRANS_STD = 0.1  # the paper's gamma
BBOX_DIM = 8  # 4 coordinates x 2 (class-agnostic: background / foreground)
SPATIAL_SCALE = 1.0 / 16  # dilated c5: output stride 16
HEADS = ("rfcn", "faster")
OUTPUT_NAMES = ("cls_score", "bbox_pred")
DEFAULT_SIZE = 224
TINY_SIZE = 64


class ResNetFeatures(nn.Module):
    """The c5 features of a torchvision ResNet (its avgpool / fc removed); module paths ``body.layer3.0.conv2``."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        del net.avgpool, net.fc
        self.body = net
        self.out_channels = net.layer4[-1].conv3.out_channels

    def forward(self, x: Tensor) -> Tensor:
        b = self.body
        x = b.maxpool(b.relu(b.bn1(b.conv1(x))))
        return b.layer4(b.layer3(b.layer2(b.layer1(x))))


def features(variant: str, tiny: bool, offset_std: float, seed: int) -> ResNetFeatures:
    """Dilated ResNet-DCN (BN calibrated, offsets randomized if asked) as a feature extractor."""
    return ResNetFeatures(resnet.build(variant, tiny=tiny, offset_std=offset_std, dilate_c5=True, seed=seed))


def _randomize(layer: nn.Module, std: float, g: torch.Generator) -> None:
    w = layer.weight
    with torch.no_grad():
        w.copy_(torch.randn(w.shape, generator=g) * std / w[0].numel() ** 0.5)
        layer.bias.copy_(torch.randn(layer.bias.shape, generator=g) * std)


def randomize_pool_offsets(model: nn.Module, std: float, seed: int = 0) -> nn.Module:
    """The zero-initialised offset layers of every DeformPSROIPoolPack ~ N(0, std^2 / fan_in), bias N(0, std^2)."""
    g = torch.Generator().manual_seed(seed + 1)
    for m in model.modules():
        if isinstance(m, DeformPSROIPoolPack):
            _randomize(m.offset_conv if m.offset_conv is not None else m.offset_fc[-1], std, g)
    return model


class RFCN(nn.Module):
    """R-FCN with deformable position-sensitive RoI pooling: ``forward(images, rois) -> (cls_score, bbox_pred)``."""

    def __init__(self, backbone: ResNetFeatures, mid_channels: int = 1024, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        k = GROUP_SIZE
        self.backbone = backbone
        self.conv_new_1 = nn.Conv2d(backbone.out_channels, mid_channels, 1)
        self.rfcn_cls = nn.Conv2d(mid_channels, k * k * num_classes, 1)
        self.rfcn_bbox = nn.Conv2d(mid_channels, k * k * BBOX_DIM, 1)
        self.psroi_cls = DeformPSROIPoolPack(SPATIAL_SCALE, num_classes, k, POOLED_SIZE, POOLED_SIZE, SAMPLE_PER_PART,
                                             TRANS_STD, num_offset_classes=num_classes)
        self.psroi_bbox = DeformPSROIPoolPack(SPATIAL_SCALE, BBOX_DIM, k, POOLED_SIZE, POOLED_SIZE, SAMPLE_PER_PART,
                                              TRANS_STD, num_offset_classes=1)
        for conv in (self.conv_new_1, self.rfcn_cls, self.rfcn_bbox):  # unit-scale outputs (no training here)
            nn.init.normal_(conv.weight, std=conv.weight[0].numel() ** -0.5)
            nn.init.zeros_(conv.bias)

    def forward(self, images: Tensor, rois: Tensor) -> tuple[Tensor, Tensor]:
        x = torch.relu(self.conv_new_1(self.backbone(images)))
        cls = self.psroi_cls(self.rfcn_cls(x), rois).mean(dim=(2, 3))  # position-sensitive voting
        bbox = self.psroi_bbox(self.rfcn_bbox(x), rois).mean(dim=(2, 3))
        return cls, bbox


class FasterRCNN(nn.Module):
    """Faster R-CNN head with deformable RoI pooling: ``forward(images, rois) -> (cls_score, bbox_pred)``."""

    def __init__(self, backbone: ResNetFeatures, mid_channels: int = 256, fc_channels: int = 1024,
                 num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.backbone = backbone
        self.conv_new_1 = nn.Conv2d(backbone.out_channels, mid_channels, 1)
        self.roi_pool = DeformPSROIPoolPack(SPATIAL_SCALE, mid_channels, 1, POOLED_SIZE, POOLED_SIZE, SAMPLE_PER_PART,
                                            TRANS_STD, num_offset_classes=1, deform_fc_channels=fc_channels)
        self.fc6 = nn.Linear(mid_channels * POOLED_SIZE * POOLED_SIZE, fc_channels)
        self.fc7 = nn.Linear(fc_channels, fc_channels)
        self.cls_score = nn.Linear(fc_channels, num_classes)
        self.bbox_pred = nn.Linear(fc_channels, BBOX_DIM)
        nn.init.normal_(self.conv_new_1.weight, std=self.conv_new_1.weight[0].numel() ** -0.5)
        nn.init.zeros_(self.conv_new_1.bias)

    def forward(self, images: Tensor, rois: Tensor) -> tuple[Tensor, Tensor]:
        x = torch.relu(self.conv_new_1(self.backbone(images)))
        pooled = self.roi_pool(x, rois)
        h = torch.relu(self.fc7(torch.relu(self.fc6(pooled.flatten(1)))))
        return self.cls_score(h), self.bbox_pred(h)


def build(head: str = "rfcn", variant: str = "dcnv2", *, tiny: bool = False, offset_std: float = 0.0,
          seed: int = 0) -> nn.Module:
    """The R-FCN or Faster R-CNN sample in eval mode (tiny: 1/4-width 1-block backbone, 64/32-channel heads)."""
    if head not in HEADS:
        raise ValueError(f"head {head!r}: expected one of {', '.join(HEADS)}")
    torch.manual_seed(seed)
    feats = features(variant, tiny, offset_std, seed)
    torch.manual_seed(seed)
    if head == "rfcn":
        net: nn.Module = RFCN(feats, mid_channels=64 if tiny else 1024)
    else:
        net = FasterRCNN(feats, mid_channels=32 if tiny else 256, fc_channels=64 if tiny else 1024)
    if offset_std:
        randomize_pool_offsets(net, offset_std, seed)
    return net.eval()


def example_rois(num_rois: int, height: int, width: int, batch: int = 1, seed: int = 0) -> Tensor:
    """[R, 5] valid boxes (batch_index, x1, y1, x2, y2) inside a height x width image, at least 8 px wide."""
    g = torch.Generator().manual_seed(seed)
    b = torch.randint(0, batch, (num_rois,), generator=g).float()
    w = torch.empty(num_rois).uniform_(8, max(width * 0.6, 9), generator=g)
    h = torch.empty(num_rois).uniform_(8, max(height * 0.6, 9), generator=g)
    x1 = torch.rand(num_rois, generator=g) * (width - 1 - w)
    y1 = torch.rand(num_rois, generator=g) * (height - 1 - h)
    return torch.stack([b, x1, y1, x1 + w, y1 + h], dim=1)


def pool_offset_stats(model: nn.Module, images: Tensor, rois: Tensor) -> float:
    """Mean |trans| * trans_std * RoI size: the RoI pooling offsets in pixels for these inputs."""
    values: list[float] = []

    def hook(module, args, output):
        data, r = args
        trans = module.offsets(data, r)
        size = ((r[:, 3:5] - r[:, 1:3]) + 1).mean()
        values.append(float(trans.abs().mean() * module.trans_std * size))

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, DeformPSROIPoolPack)]
    try:
        with torch.no_grad():
            model(images, rois)
    finally:
        for h in handles:
            h.remove()
    return sum(values) / max(len(values), 1)


# zero-argument factories for ``dcn-export weights.pth --factory samples.rfcn_dpsroi.model:NAME``
def rfcn_dcnv2() -> nn.Module:
    return build("rfcn")


def faster_rcnn_dcnv2() -> nn.Module:
    return build("faster")


def tiny_rfcn_dcnv2() -> nn.Module:
    return build("rfcn", tiny=True)


def tiny_faster_rcnn_dcnv2() -> nn.Module:
    return build("faster", tiny=True)
