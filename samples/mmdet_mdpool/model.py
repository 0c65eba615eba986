"""mmdetection's ``mdpool`` RoI head (Faster R-CNN, ``ModulatedDeformRoIPoolPack``) on ResNet-50-DCN features.

mmdetection's ``faster-rcnn_r50_fpn_mdpool_1x_coco`` replaces the RoI extractor's RoIAlign by mmcv's
``ModulatedDeformRoIPoolPack`` (7x7 bins, 256 channels, ``deform_fc_channels`` 1024, adaptive
``sampling_ratio`` 0, ``gamma`` 0.1) in front of the shared 2-fc box head. Here on one feature level:
the dilated ResNet-DCN of :mod:`samples.rfcn_dpsroi` (output stride 16, ``spatial_scale = 1/16``),
a 1x1 conv to 256 channels (the neck's width), then :class:`exporter.ops.ModulatedDeformRoIPoolPack`
(mmcv's parameter layout: mmcv / mmdet weights load, and real mmcv modules swap to it), fc6 / fc7
(1024, ReLU) and ``cls_score`` [R, 81] / ``bbox_pred`` [R, 320] (COCO: 80 classes + background,
class-specific boxes). Inputs ``images`` [N, 3, H, W] and ``rois`` [R, 5] (batch_index, x1, y1, x2,
y2) in image pixels, e.g. from the RPN of a full detector.

The pack's offset and mask branches are zero-initialised as in mmcv; ``offset_std > 0`` gives their
last layers random weights so that the exported model really deforms and modulates.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from exporter.ops import ModulatedDeformRoIPoolPack
from samples.rfcn_dpsroi import model as rfcn

NUM_CLASSES = 81  # COCO 80 + background
BBOX_DIM = 4 * 80  # class-specific boxes
POOLED_SIZE = 7
GAMMA = 0.1
SAMPLING_RATIO = 0  # adaptive: ceil(RoI size / 7) samples per bin and axis
SPATIAL_SCALE = rfcn.SPATIAL_SCALE
OUTPUT_NAMES = ("cls_score", "bbox_pred")


class MdpoolFasterRCNN(nn.Module):
    """``forward(images, rois) -> (cls_score, bbox_pred)``."""

    def __init__(self, backbone: nn.Module, channels: int = 256, fc_channels: int = 1024) -> None:
        super().__init__()
        self.backbone = backbone
        self.neck = nn.Conv2d(backbone.out_channels, channels, 1)
        self.roi_extractor = ModulatedDeformRoIPoolPack(POOLED_SIZE, channels, deform_fc_channels=fc_channels,
                                                        spatial_scale=SPATIAL_SCALE, sampling_ratio=SAMPLING_RATIO,
                                                        gamma=GAMMA)
        self.fc6 = nn.Linear(channels * POOLED_SIZE * POOLED_SIZE, fc_channels)
        self.fc7 = nn.Linear(fc_channels, fc_channels)
        self.cls_score = nn.Linear(fc_channels, NUM_CLASSES)
        self.bbox_pred = nn.Linear(fc_channels, BBOX_DIM)
        nn.init.normal_(self.neck.weight, std=self.neck.weight[0].numel() ** -0.5)
        nn.init.zeros_(self.neck.bias)

    def forward(self, images: Tensor, rois: Tensor) -> tuple[Tensor, Tensor]:
        x = torch.relu(self.neck(self.backbone(images)))
        h = torch.relu(self.fc7(torch.relu(self.fc6(self.roi_extractor(x, rois).flatten(1)))))
        return self.cls_score(h), self.bbox_pred(h)


def randomize_pool_branches(model: nn.Module, std: float, seed: int = 0) -> nn.Module:
    """The zero-initialised last layers of offset_fc / mask_fc ~ N(0, std^2 / fan_in), bias N(0, std^2)."""
    g = torch.Generator().manual_seed(seed + 1)
    for m in model.modules():
        if isinstance(m, ModulatedDeformRoIPoolPack):
            for layer in (m.offset_fc[-1], m.mask_fc[2]):
                with torch.no_grad():
                    layer.weight.copy_(torch.randn(layer.weight.shape, generator=g) * std / layer.in_features ** 0.5)
                    layer.bias.copy_(torch.randn(layer.bias.shape, generator=g) * std)
    return model


def build(variant: str = "dcnv2", *, tiny: bool = False, offset_std: float = 0.0, seed: int = 0) -> nn.Module:
    """The sample in eval mode (tiny: 1/4-width 1-block backbone, 32-channel neck, 64-wide fcs)."""
    torch.manual_seed(seed)
    feats = rfcn.features(variant, tiny, offset_std, seed)
    torch.manual_seed(seed)
    net = MdpoolFasterRCNN(feats, channels=32 if tiny else 256, fc_channels=64 if tiny else 1024)
    if offset_std:
        randomize_pool_branches(net, offset_std, seed)
    return net.eval()


def pool_offset_stats(model: nn.Module, images: Tensor, rois: Tensor) -> tuple[float, float]:
    """(mean |offset| in pixels = gamma * |offset| * RoI size, mean mask) of the RoI extractor on these inputs."""
    out: list[tuple[float, float]] = []

    def hook(module, args, output):
        data, r = args
        plain = module.pool(data, r, None)
        off = module.offsets(plain)
        mask = module.mask_fc(plain.flatten(1))
        size = (r[:, 3:5] - r[:, 1:3]).abs().mean()
        out.append((float(off.abs().mean() * module.gamma * size), float(mask.mean())))

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, ModulatedDeformRoIPoolPack)]
    try:
        with torch.no_grad():
            model(images, rois)
    finally:
        for h in handles:
            h.remove()
    return out[0] if out else (0.0, 0.0)


# zero-argument factories for ``dcn-export weights.pth --factory samples.mmdet_mdpool.model:NAME``
def mdpool_faster_rcnn_dcnv2() -> nn.Module:
    return build()


def tiny_mdpool_faster_rcnn_dcnv2() -> nn.Module:
    return build(tiny=True)
