"""``DCNv3``: InternImage's deformable aggregation module (Wang et al., CVPR 2023) on ``dcn::dcnv3``.

Constructor arguments and parameter layout are InternImage's ``DCNv3`` / ``DCNv3_pytorch``
(OpenGVLab/InternImage, classification/ops_dcnv3/modules/dcnv3.py, read for the layout only), so
their weights load unchanged and ``dcn-export`` swaps those modules for this one:

    dw_conv        Sequential(depth-wise Conv2d, norm (to channels-last + LayerNorm, or BatchNorm +
                   to channels-last), activation): the features the offsets and masks come from
    offset, mask   Linear(C, group*P*2), Linear(C, group*P), P = kernel_size^2 - remove_center
    input_proj, output_proj   Linear(C, C) before and after the aggregation
    center_feature_scale_proj_weight [group, C] / _bias [group]   with center_feature_scale=True

forward(input [N, H, W, C]) -> [N, H, W, C]; the mask is a softmax over each group's P points, taken
here (outside the op, ordinary ONNX), as InternImage does.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from exporter.ops.aggregation import center_feature_scale, module_attrs

from . import custom  # noqa: F401  (registers torch.ops.dcn.dcnv3)


class ToChannelsLast(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.permute(0, 2, 3, 1)


class ToChannelsFirst(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.permute(0, 3, 1, 2)


def build_norm(dim: int, kind: str, in_format: str = "channels_last", out_format: str = "channels_last",
               eps: float = 1e-6) -> nn.Sequential:
    """'LN' (LayerNorm over channels, channels-last inside) or 'BN' (BatchNorm2d, channels-first inside),
    with the permutes the formats need, in InternImage's order (so the parameter names match)."""
    layers: list[nn.Module] = []
    if kind == "BN":
        layers += [ToChannelsFirst()] if in_format == "channels_last" else []
        layers.append(nn.BatchNorm2d(dim))
        layers += [ToChannelsLast()] if out_format == "channels_last" else []
    elif kind == "LN":
        layers += [ToChannelsLast()] if in_format == "channels_first" else []
        layers.append(nn.LayerNorm(dim, eps=eps))
        layers += [ToChannelsFirst()] if out_format == "channels_first" else []
    else:
        raise ValueError(f"norm_layer is {kind!r}, expected 'LN' or 'BN'")
    return nn.Sequential(*layers)


def build_act(kind: str) -> nn.Module:
    acts = {"GELU": nn.GELU, "ReLU": lambda: nn.ReLU(inplace=True), "SiLU": lambda: nn.SiLU(inplace=True)}
    if kind not in acts:
        raise ValueError(f"act_layer is {kind!r}, expected one of {', '.join(acts)}")
    return acts[kind]()


class DCNv3(nn.Module):
    """InternImage's DCNv3 module; ``forward(input [N, H, W, C]) -> [N, H, W, C]``."""

    def __init__(self, channels: int = 64, kernel_size: int = 3, dw_kernel_size=None, stride: int = 1, pad: int = 1,
                 dilation: int = 1, group: int = 4, offset_scale: float = 1.0, act_layer: str = "GELU",
                 norm_layer: str = "LN", center_feature_scale: bool = False, remove_center: bool = False) -> None:
        super().__init__()
        if channels % group:
            raise ValueError(f"DCNv3: channels {channels} must be divisible by group {group}")
        if remove_center and kernel_size % 2 == 0:
            raise ValueError(f"DCNv3: remove_center needs an odd kernel_size, got {kernel_size}")
        dw = dw_kernel_size if dw_kernel_size is not None else kernel_size
        self.channels, self.kernel_size, self.dw_kernel_size = channels, kernel_size, dw
        self.stride, self.pad, self.dilation, self.group = stride, pad, dilation, group
        self.group_channels = channels // group
        self.offset_scale = float(offset_scale)
        self.center_feature_scale = bool(center_feature_scale)
        self.remove_center = int(remove_center)
        P = kernel_size * kernel_size - self.remove_center
        self.dw_conv = nn.Sequential(
            nn.Conv2d(channels, channels, dw, stride=1, padding=(dw - 1) // 2, groups=channels),
            build_norm(channels, norm_layer, "channels_first", "channels_last"),
            build_act(act_layer))
        self.offset = nn.Linear(channels, group * P * 2)
        self.mask = nn.Linear(channels, group * P)
        self.input_proj = nn.Linear(channels, channels)
        self.output_proj = nn.Linear(channels, channels)
        self.reset_parameters()
        if self.center_feature_scale:
            self.center_feature_scale_proj_weight = nn.Parameter(torch.zeros(group, channels))
            self.center_feature_scale_proj_bias = nn.Parameter(torch.zeros(group))

    def reset_parameters(self) -> None:
        """Offsets and masks start at zero (regular grid, uniform weights), projections Xavier, as InternImage."""
        for lin in (self.offset, self.mask):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)
        for lin in (self.input_proj, self.output_proj):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    def attrs(self) -> list:
        """The op's attributes after its tensors."""
        return module_attrs(self)

    def forward(self, input: Tensor) -> Tensor:
        x = self.input_proj(input)
        x_proj = x
        x1 = self.dw_conv(input.permute(0, 3, 1, 2))
        offset = self.offset(x1)
        mask = self.mask(x1)
        mask = F.softmax(mask.reshape(*mask.shape[:3], self.group, -1), -1).reshape(mask.shape)
        x = torch.ops.dcn.dcnv3(x, offset, mask, *self.attrs())
        if self.center_feature_scale:
            scale = center_feature_scale(x1, self.center_feature_scale_proj_weight,
                                         self.center_feature_scale_proj_bias, self.channels, self.group)
            x = x * (1 - scale) + x_proj * scale
        return self.output_proj(x)

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, kernel_size={self.kernel_size}, stride={self.stride}, pad={self.pad}, "
                f"dilation={self.dilation}, group={self.group}, offset_scale={self.offset_scale}, "
                f"remove_center={self.remove_center}, center_feature_scale={self.center_feature_scale}")

