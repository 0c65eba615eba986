"""The models of the user-path matrix (tests/test_user_paths.py): tiny, and built by
factories so that ``--factory helpers.user_path_models:NAME`` and pickling find them by name.

* ``dcnv1_bias``: DCNv1 with bias (ours);
* ``dcnv2_bn``: torchvision ``DeformConv2d`` with ``mask=`` and ``bias=False``, then BatchNorm
  (the normal DCN + BN pattern);
* ``tv_functional``: torchvision's functional ``deform_conv2d`` with kernel 3x1, stride (2, 1),
  dilation (1, 2), groups 2, offset groups 2;
* ``psroi_head``: an R-FCN head (deformable PS-RoI pooling) whose RoIs lie beyond 1024 px;
* ``dict_out``: a forward returning a dict of three tensors.
"""
from __future__ import annotations

import torch
import torchvision
from torch import nn

from exporter.ops import DeformConv2dPack, DeformPSROIPoolPack


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
