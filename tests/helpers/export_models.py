"""Tiny models for the exporter tests, stand-ins of third-party modules, and factories.

The mmcv / detectron2 stand-ins copy those libraries' class names, defining modules,
constructor arguments, attribute names and forward signatures. Like the real ones, they
compute through a custom autograd Function that leaves PyTorch (here: through numpy, where
the real ones call a C++ extension), so they run eagerly but cannot be traced: exporting
them only works through exporter.swap.
"""
from __future__ import annotations

import torch
import torchvision
from torch import nn
from torch.nn.modules.utils import _pair

from exporter.ops import (
    DeformConv2d,
    DeformConv2dPack,
    DeformPSROIPoolPack,
    ModulatedDeformConv2d,
    ModulatedDeformConv2dPack,
)


def randomize_offsets(model: nn.Module, std: float = 0.5, seed: int = 0) -> nn.Module:
    """Non-zero offset branches (ours start at zero), so the sampling is exercised."""
    g = torch.Generator().manual_seed(seed)
    for name, m in model.named_modules():
        for attr in ("conv_offset", "offset_conv", "off"):
            conv = getattr(m, attr, None)
            if isinstance(conv, nn.Conv2d):
                with torch.no_grad():
                    conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * std / conv.weight[0].numel() ** 0.5)
                    if conv.bias is not None:
                        conv.bias.copy_(torch.randn(conv.bias.shape, generator=g) * std)
    return model


# --------------------------------------------------------------------------- our modules
class OursZoo(nn.Module):
    """Every variant of our conv modules in one graph: v1/v2, bias or not, groups, offset groups,
    non-square kernels, asymmetric stride / padding / dilation."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        # v1 pack, bias, asymmetric everything, non-square kernel, groups and offset groups
        self.v1 = DeformConv2dPack(8, 8, (3, 5), stride=(2, 1), padding=(1, 2, 0, 1), dilation=(1, 2), groups=2,
                                   deform_groups=2, bias=True)
        # v2 pack without bias, offset groups 4, kernel (5, 3), stride (1, 2)
        self.v2 = ModulatedDeformConv2dPack(8, 12, (5, 3), stride=(1, 2), padding=(2, 1, 1, 0), dilation=(2, 1),
                                            groups=4, deform_groups=4, bias=False)
        # plain modules fed by an explicit offset / mask branch
        self.off1 = nn.Conv2d(12, 2 * 9, 3, padding=1)
        self.plain_v1 = DeformConv2d(12, 6, 3, padding=1, bias=False)
        self.off2 = nn.Conv2d(6, 3 * 9, 3, padding=1)
        self.plain_v2 = ModulatedDeformConv2d(6, 6, 3, padding=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x))
        x = self.v1(x)
        x = self.v2(x)
        x = self.plain_v1(x, self.off1(x))
        om = self.off2(x)
        return self.plain_v2(x, om[:, :18], torch.sigmoid(om[:, 18:]))


# --------------------------------------------------------------------------- torchvision
class TorchvisionNet(nn.Module):
    """torchvision.ops.DeformConv2d (v1, no bias; v2 with bias) and a functional deform_conv2d call."""

    def __init__(self) -> None:
        super().__init__()
        self.off = nn.Conv2d(4, 2 * 2 * 3 * 5, (3, 5), stride=(2, 1), padding=(1, 2))
        self.dcn = torchvision.ops.DeformConv2d(4, 6, (3, 5), stride=(2, 1), padding=(1, 2), groups=2, bias=False)
        self.off2 = nn.Conv2d(6, 3 * 9, 3, padding=(2, 1), dilation=(2, 1))
        self.dcn2 = torchvision.ops.DeformConv2d(6, 6, 3, padding=(2, 1), dilation=(2, 1), bias=True)
        self.weight = nn.Parameter(torch.randn(4, 6, 1, 3) * 0.3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dcn(x, self.off(x))
        om = self.off2(x)
        x = self.dcn2(x, om[:, :18], torch.sigmoid(om[:, 18:]))
        return torchvision.ops.deform_conv2d(x, x.new_zeros((x.shape[0], 6, x.shape[2], x.shape[3] - 2)) + 0.25,
                                             self.weight)


# --------------------------------------------------------------------------- third-party stand-ins
class _ExtFunction(torch.autograd.Function):
    """Like mmcv's / detectron2's Functions: the math runs outside PyTorch (numpy here), untraceable."""

    @staticmethod
    def forward(ctx, x, offset, mask, weight, bias, stride, padding, dilation):
        y = torchvision.ops.deform_conv2d(x.detach(), offset.detach(), weight.detach(),
                                          None if bias is None else bias.detach(), stride=stride, padding=padding,
                                          dilation=dilation, mask=None if mask is None else mask.detach())
        return torch.from_numpy(y.numpy().copy())


class MmcvDeformConv2d(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 deform_groups=1, bias=False, im2col_step=32):
        super().__init__()
        assert not bias
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _pair(kernel_size)
        self.stride, self.padding, self.dilation = _pair(stride), _pair(padding), _pair(dilation)
        self.groups, self.deform_groups, self.im2col_step = groups, deform_groups, im2col_step
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels // groups, *self.kernel_size) * 0.2)

    def forward(self, x, offset):
        return _ExtFunction.apply(x, offset, None, self.weight, None, self.stride, self.padding, self.dilation)


class MmcvDeformConv2dPack(MmcvDeformConv2d):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.conv_offset = nn.Conv2d(self.in_channels, self.deform_groups * 2 * self.kernel_size[0] * self.kernel_size[1],
                                     kernel_size=self.kernel_size, stride=self.stride, padding=self.padding,
                                     dilation=self.dilation, bias=True)

    def forward(self, x):
        return _ExtFunction.apply(x, self.conv_offset(x), None, self.weight, None, self.stride, self.padding,
                                  self.dilation)


class MmcvModulatedDeformConv2d(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 deform_groups=1, bias=True):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _pair(kernel_size)
        self.stride, self.padding, self.dilation = _pair(stride), _pair(padding), _pair(dilation)
        self.groups, self.deform_groups = groups, deform_groups
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels // groups, *self.kernel_size) * 0.2)
        self.bias = nn.Parameter(torch.randn(out_channels)) if bias else None

    def forward(self, x, offset, mask):
        return _ExtFunction.apply(x, offset, mask, self.weight, self.bias, self.stride, self.padding, self.dilation)


class MmcvModulatedDeformConv2dPack(MmcvModulatedDeformConv2d):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.conv_offset = nn.Conv2d(self.in_channels, self.deform_groups * 3 * self.kernel_size[0] * self.kernel_size[1],
                                     kernel_size=self.kernel_size, stride=self.stride, padding=self.padding,
                                     dilation=self.dilation, bias=True)

    def forward(self, x):
        o1, o2, mask = torch.chunk(self.conv_offset(x), 3, dim=1)
        return _ExtFunction.apply(x, torch.cat((o1, o2), dim=1), torch.sigmoid(mask), self.weight, self.bias,
                                  self.stride, self.padding, self.dilation)


class MmcvDeformRoIPool(nn.Module):
    def __init__(self, output_size, spatial_scale=1.0, sampling_ratio=0, gamma=0.1):
        super().__init__()
        self.output_size, self.spatial_scale = _pair(output_size), spatial_scale
        self.sampling_ratio, self.gamma = sampling_ratio, gamma

    def forward(self, input, rois, offset=None):
        return torchvision.ops.roi_align(input, rois, self.output_size, self.spatial_scale, self.sampling_ratio,
                                         aligned=True)


class D2DeformConv(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 deformable_groups=1, bias=False, norm=None, activation=None):
        super().__init__()
        assert not bias
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _pair(kernel_size)
        self.stride, self.padding, self.dilation = _pair(stride), _pair(padding), _pair(dilation)
        self.groups, self.deformable_groups = groups, deformable_groups
        self.norm, self.activation = norm, activation
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels // groups, *self.kernel_size) * 0.2)
        self.bias = None

    def forward(self, x, offset):
        x = _ExtFunction.apply(x, offset, None, self.weight, None, self.stride, self.padding, self.dilation)
        if self.norm is not None:
            x = self.norm(x)
        if self.activation is not None:
            x = self.activation(x)
        return x


class D2ModulatedDeformConv(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 deformable_groups=1, bias=True, norm=None, activation=None):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _pair(kernel_size)
        self.stride, self.padding, self.dilation = stride, padding, dilation  # ints, as detectron2 keeps them
        self.groups, self.deformable_groups, self.with_bias = groups, deformable_groups, bias
        self.norm, self.activation = norm, activation
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels // groups, *self.kernel_size) * 0.2)
        self.bias = nn.Parameter(torch.randn(out_channels)) if bias else None

    def forward(self, x, offset, mask):
        x = _ExtFunction.apply(x, offset, mask, self.weight, self.bias, _pair(self.stride), _pair(self.padding),
                               _pair(self.dilation))
        if self.norm is not None:
            x = self.norm(x)
        if self.activation is not None:
            x = self.activation(x)
        return x


# the names and defining modules the real libraries use
for _cls, _mod, _name in (
    (MmcvDeformConv2d, "mmcv.ops.deform_conv", "DeformConv2d"),
    (MmcvDeformConv2dPack, "mmcv.ops.deform_conv", "DeformConv2dPack"),
    (MmcvModulatedDeformConv2d, "mmcv.ops.modulated_deform_conv", "ModulatedDeformConv2d"),
    (MmcvModulatedDeformConv2dPack, "mmcv.ops.modulated_deform_conv", "ModulatedDeformConv2dPack"),
    (MmcvDeformRoIPool, "mmcv.ops.deform_roi_pool", "DeformRoIPool"),
    (D2DeformConv, "detectron2.layers.deform_conv", "DeformConv"),
    (D2ModulatedDeformConv, "detectron2.layers.deform_conv", "ModulatedDeformConv"),
):
    _cls.__module__, _cls.__name__, _cls.__qualname__ = _mod, _name, _name


class ThirdPartyNet(nn.Module):
    """mmcv and detectron2 modules (stand-ins), v1 and v2, asymmetric stride / padding, groups."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            MmcvDeformConv2dPack(8, 8, (3, 5), stride=(2, 1), padding=(1, 2), groups=2, deform_groups=2),
            MmcvModulatedDeformConv2dPack(8, 8, 3, stride=(1, 2), padding=(2, 1), dilation=(2, 1), deform_groups=2),
        )
        self.off = nn.Conv2d(8, 2 * 9, 3, padding=1)
        self.mmcv_plain = MmcvDeformConv2d(8, 8, 3, padding=1)
        self.off_m = nn.Conv2d(8, 3 * 9, 3, padding=1)
        self.mmcv_mod = MmcvModulatedDeformConv2d(8, 8, 3, padding=1, bias=False)
        self.d2 = D2DeformConv(8, 8, 3, padding=1, norm=nn.BatchNorm2d(8), activation=torch.relu)
        self.d2_mod = D2ModulatedDeformConv(8, 4, 3, stride=2, padding=1, groups=2)

    def forward(self, x):
        x = self.backbone(x)
        x = self.mmcv_plain(x, self.off(x))
        om = self.off_m(x)
        x = self.mmcv_mod(x, om[:, :18], torch.sigmoid(om[:, 18:]))
        x = self.d2(x, self.off(x))
        om = self.off_m(x)
        return self.d2_mod(x, om[:, :18, ::2, ::2], torch.sigmoid(om[:, 18:, ::2, ::2]))


class MmcvRoIPoolNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Module()
        self.head.pool = MmcvDeformRoIPool(3, spatial_scale=0.25)

    def forward(self, feat, rois):
        return self.head.pool(feat, rois)


# --------------------------------------------------------------------------- pooling
class PSRoINet(nn.Module):
    """R-FCN style head: 1x1 conv to output_dim*k^2 maps, deformable PS-RoI pooling with learned trans."""

    def __init__(self, output_dim: int = 3, group_size: int = 3, pooled_size: int = 3) -> None:
        super().__init__()
        self.body = nn.Conv2d(4, output_dim * group_size * group_size, 1)
        self.head = DeformPSROIPoolPack(1 / 4, output_dim, group_size, pooled_size, sample_per_part=2,
                                        trans_std=0.1)

    def forward(self, images, rois):
        return self.head(self.body(images), rois)


class PlainRoINet(nn.Module):
    """The paper's deformable RoI pooling head (group_size 1, fc offsets)."""

    def __init__(self) -> None:
        super().__init__()
        self.head = DeformPSROIPoolPack(1 / 4, 4, 1, 2, sample_per_part=2, trans_std=0.1, deform_fc_channels=16)
        with torch.no_grad():
            self.head.offset_fc[-1].weight.normal_(std=0.2)

    def forward(self, features, rois):
        return self.head(features, rois)


def rois_for(n: int, h: int, w: int, r: int = 5, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    b = torch.randint(0, n, (r,), generator=g).float()
    x1 = torch.rand(r, generator=g) * w * 0.6
    y1 = torch.rand(r, generator=g) * h * 0.6
    x2 = x1 + 2 + torch.rand(r, generator=g) * w * 0.4
    y2 = y1 + 2 + torch.rand(r, generator=g) * h * 0.4
    return torch.stack([b, x1, y1, x2, y2], 1)


# --------------------------------------------------------------------------- unknown ops
def _define_mystery() -> None:
    """dcn_test::mystery: a custom op (with a fake kernel, so it traces) that has no ONNX translation."""
    if hasattr(torch.ops.dcn_test, "mystery"):
        return

    @torch.library.custom_op("dcn_test::mystery", mutates_args=())
    def mystery(x: torch.Tensor) -> torch.Tensor:
        return x * 2

    @mystery.register_fake
    def _(x):
        return torch.empty_like(x)


_define_mystery()


class _Mystery(nn.Module):
    def forward(self, x):
        return torch.ops.dcn_test.mystery(x)


class UnknownOpNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), _Mystery())

    def forward(self, x):
        return self.body(x)


class _NumpyFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.from_numpy(x.detach().numpy() * 2)


class _Custom(nn.Module):
    def forward(self, x):
        return _NumpyFunction.apply(x)


class UnknownFunctionNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.neck = nn.Module()
        self.neck.custom = _Custom()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        return self.neck.custom(self.conv(x))


class NoisyNet(nn.Module):
    """Eager and exported outputs differ (random numbers): the export check must fail."""

    def __init__(self) -> None:
        super().__init__()
        self.dcn = DeformConv2dPack(3, 3, 3, padding=1)

    def forward(self, x):
        return self.dcn(x) + torch.rand_like(x)


# --------------------------------------------------------------------------- factories (--factory)
def small_dcn() -> nn.Module:
    torch.manual_seed(0)
    return randomize_offsets(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
                                           ModulatedDeformConv2dPack(4, 4, 3, padding=1))).eval()


def unknown_op_net() -> nn.Module:
    return UnknownOpNet().eval()


def unknown_function_net() -> nn.Module:
    return UnknownFunctionNet().eval()


def noisy_net() -> nn.Module:
    return NoisyNet().eval()


def psroi_net() -> nn.Module:
    torch.manual_seed(0)
    return randomize_offsets(PSRoINet()).eval()


def resnet50_dcn(offset_std: float = 0.0) -> nn.Module:
    """ResNet-50-DCN c3-c5 (mmdetection's dconv_c3-c5): torchvision resnet50 whose 3x3 conv2 in every
    bottleneck of layer2-4 is a DeformConv2dPack (DCNv1, stride on the 3x3, weights copied)."""
    from torchvision.models import resnet50

    torch.manual_seed(0)
    net = resnet50(weights=None)
    for layer in (net.layer2, net.layer3, net.layer4):
        for block in layer:
            c = block.conv2
            d = DeformConv2dPack(c.in_channels, c.out_channels, 3, stride=c.stride, padding=1, dilation=c.dilation,
                                 groups=c.groups, bias=False)
            with torch.no_grad():
                d.weight.copy_(c.weight)
            block.conv2 = d
    if offset_std:
        randomize_offsets(net, std=offset_std)
    return net.eval()


def resnet50_dcn_offsets() -> nn.Module:
    return resnet50_dcn(offset_std=0.5)
