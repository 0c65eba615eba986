"""The models of the user-path matrix (tests/test_user_paths.py): tiny, and built by
factories so that ``--factory helpers.user_path_models:NAME`` and pickling find them by name.

* ``dcnv1_bias``: DCNv1 with bias (ours);
* ``dcnv2_bn``: torchvision ``DeformConv2d`` with ``mask=`` and ``bias=False``, then BatchNorm
  (the normal DCN + BN pattern);
* ``tv_functional``: torchvision's functional ``deform_conv2d`` with kernel 3x1, stride (2, 1),
  dilation (1, 2), groups 2, offset groups 2;
* ``psroi_head``: an R-FCN head (deformable PS-RoI pooling) whose RoIs lie beyond 1024 px;
* ``dict_out``: a forward returning a dict of three tensors;
* ``mdpool_head``: mmdetection's modulated deformable RoI pooling head (ours), RoIs beyond 1024 px;
* ``dcnv3_block`` / ``dcnv4_block``: InternImage's DCNv3 and the DCNv4 package's module, channels last,
  groups 2;
* ``msda_layer``: mmcv's MultiScaleDeformableAttention (ours, batch first) on two levels of a value
  map, the level table a constant of the model.
"""
from __future__ import annotations

import torch
import torchvision
from torch import nn

from exporter.ops import (DCNv3, DCNv4, DeformConv2dPack, DeformPSROIPoolPack, ModulatedDeformRoIPoolPack,
                          MultiScaleDeformableAttention)


def _init(model: nn.Module, seed: int = 0) -> nn.Module:
    """Trained-like: moderate weights, non-zero offsets, BatchNorm statistics not the identity."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
        for name, p in model.named_parameters():
            if "off" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3 / max(1, p[0].numel()) ** 0.5)
    return model.eval()


class DCNv1Bias(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.dcn = DeformConv2dPack(8, 8, 3, padding=1, bias=True)

    def forward(self, images):
        return self.dcn(torch.relu(self.stem(images)))


class DCNv2BN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.off = nn.Conv2d(8, 3 * 9, 3, padding=1)
        self.dcn = torchvision.ops.DeformConv2d(8, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)

    def forward(self, images):
        x = torch.relu(self.stem(images))
        om = self.off(x)
        return torch.relu(self.bn(self.dcn(x, om[:, :18], torch.sigmoid(om[:, 18:]))))


class TvFunctional(nn.Module):
    """kernel 3x1, stride (2, 1), dilation (1, 2), groups 2, offset groups 2."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.off = nn.Conv2d(8, 2 * 2 * 3 * 1, (3, 1), stride=(2, 1), padding=(1, 0), dilation=(1, 2))
        self.weight = nn.Parameter(torch.randn(8, 4, 3, 1) * 0.3)
        self.bias = nn.Parameter(torch.randn(8) * 0.1)

    def forward(self, images):
        x = torch.relu(self.stem(images))
        return torchvision.ops.deform_conv2d(x, self.off(x), self.weight, self.bias, stride=(2, 1),
                                             padding=(1, 0), dilation=(1, 2))


class PSRoIHead(nn.Module):
    """R-FCN head on a stride-16 feature map: RoIs in image pixels, beyond 1024 px at 1333x800."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Conv2d(4, 2 * 3 * 3, 1)
        self.head = DeformPSROIPoolPack(1 / 16, 2, 3, 3, sample_per_part=2, trans_std=0.1)

    def forward(self, features, rois):
        return self.head(self.body(features), rois)


class DictOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.dcn = DeformConv2dPack(3, 4, 3, padding=1)

    def forward(self, images):
        y = self.dcn(images)
        return {"scores": y.sigmoid(), "boxes": y[:, :2] * 2.0, "feat": y}


class MdpoolHead(nn.Module):
    """mmdetection's mdpool head on a stride-16 map: a 1x1 conv, then modulated deformable RoI pooling."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Conv2d(4, 4, 1)
        self.head = ModulatedDeformRoIPoolPack((3, 3), 4, deform_fc_channels=16, spatial_scale=1 / 16,
                                               sampling_ratio=2, gamma=0.1)

    def forward(self, features, rois):
        return self.head(self.body(features), rois)


class DCNv3Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.dcn = DCNv3(channels=8, kernel_size=3, group=2, offset_scale=1.0)

    def forward(self, images):  # [N, H, W, C]
        return self.dcn(images)


class DCNv4Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.dcn = DCNv4(channels=16, kernel_size=3, group=2)

    def forward(self, images):  # [N, H, W, C]
        return self.dcn(images.flatten(1, 2), (images.shape[1], images.shape[2])).reshape(images.shape)


class MsdaLayer(nn.Module):
    """Two levels (8x10 and 4x5) of a value map; reference points per query and level."""

    def __init__(self) -> None:
        super().__init__()
        self.attn = MultiScaleDeformableAttention(embed_dims=16, num_heads=2, num_levels=2, num_points=2,
                                                  batch_first=True, dropout=0.0)
        self.register_buffer("shapes", torch.tensor([[8, 10], [4, 5]]))
        self.register_buffer("starts", torch.tensor([0, 80]))

    def forward(self, query, value, reference_points):
        return self.attn(query, value=value, reference_points=reference_points, spatial_shapes=self.shapes,
                         level_start_index=self.starts)


def dcnv1_bias() -> nn.Module:
    return _init(DCNv1Bias())


def dcnv2_bn() -> nn.Module:
    return _init(DCNv2BN())


def tv_functional() -> nn.Module:
    return _init(TvFunctional())


def psroi_head() -> nn.Module:
    return _init(PSRoIHead())


def dict_out() -> nn.Module:
    return _init(DictOut())


def mdpool_head() -> nn.Module:
    return _init(MdpoolHead())


def dcnv3_block() -> nn.Module:
    return _init(DCNv3Block())


def dcnv4_block() -> nn.Module:
    return _init(DCNv4Block())


def msda_layer() -> nn.Module:
    m = MsdaLayer()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # trained-like: attention not uniform, offsets off the initial ring
        for lin in (m.attn.attention_weights, m.attn.sampling_offsets):
            lin.weight.copy_(torch.randn(lin.weight.shape, generator=g) * 0.1)
    return m.eval()


def far_rois(r: int, n: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """[R, 5] boxes in an h x w image whose corners lie beyond 1024 px where the image allows,
    with fractional coordinates (x.3, x.7) that float16 cannot hold above 512."""
    g = torch.Generator().manual_seed(seed)
    b = torch.randint(0, n, (r,), generator=g).float()
    lo_x, lo_y = min(1030.0, w * 0.5), min(600.0, h * 0.5)
    x1 = lo_x + torch.rand(r, generator=g) * (w - 1 - lo_x) * 0.5
    y1 = lo_y * 0.5 + torch.rand(r, generator=g) * (h - 1 - lo_y) * 0.5
    x2 = torch.minimum(x1 + 8 + torch.rand(r, generator=g) * (w - 1 - x1) * 0.8, torch.tensor(w - 1.0))
    y2 = torch.minimum(y1 + 8 + torch.rand(r, generator=g) * (h - 1 - y1) * 0.8, torch.tensor(h - 1.0))
    return torch.stack([b, x1, y1, x2, y2], 1)


class InputShapeSlice(nn.Module):
    """Slices its input's shape (``x.shape[-2:]``) in forward: scripted, torch's TorchScript converter
    cannot translate that list slice even frozen (it depends on the input)."""

    def __init__(self) -> None:
        super().__init__()
        self.dcn = DeformConv2dPack(3, 4, 3, padding=1)

    def forward(self, images):
        hw = images.shape[-2:]
        return self.dcn(images) * float(hw[0])


def input_shape_slice() -> nn.Module:
    return _init(InputShapeSlice())
