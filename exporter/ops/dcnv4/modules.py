"""``DCNv4``: FlashInternImage's deformable aggregation module (Xiong et al., CVPR 2024) on ``dcn::dcnv4``.

Constructor arguments and parameter layout are the DCNv4 package's ``DCNv4`` (OpenGVLab/DCNv4,
DCNv4_op/DCNv4/modules/dcnv4.py, read for the layout only), so its weights load unchanged and
``dcn-export`` swaps it for this one:

    offset_mask_dw   depth-wise Conv2d(C, C, dw_kernel_size) in front of offset_mask (when dw_kernel_size)
    offset_mask      Linear(C, ceil(group*P*3 / 8)*8): per group dx, dy pairs then the raw masks
    value_proj, output_proj   Linear(C, C) (output_proj's bias optional; both absent with without_pointwise)
    center_feature_scale_proj_weight [group, C] / _bias [group]   with center_feature_scale=True

forward(input [N, L, C], shape=(H, W)) -> [N, L, C]; without ``shape``, H = W = sqrt(L). Masks are raw
(no softmax), as DCNv4 computes them.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from exporter.ops.aggregation import center_feature_scale, module_attrs

from . import custom  # noqa: F401  (registers torch.ops.dcn.dcnv4)
from .spec import packed_channels


class DCNv4(nn.Module):
    """The DCNv4 package's module; ``forward(input [N, L, C], shape=None) -> [N, L, C]``."""

    def __init__(self, channels: int = 64, kernel_size: int = 3, stride: int = 1, pad: int = 1, dilation: int = 1,
                 group: int = 4, offset_scale: float = 1.0, dw_kernel_size=None, center_feature_scale: bool = False,
                 remove_center: bool = False, output_bias: bool = True, without_pointwise: bool = False,
                 **kwargs) -> None:
        super().__init__()
        if channels % group:
            raise ValueError(f"DCNv4: channels {channels} must be divisible by group {group}")
        if remove_center and kernel_size % 2 == 0:
            raise ValueError(f"DCNv4: remove_center needs an odd kernel_size, got {kernel_size}")
        self.channels, self.kernel_size, self.stride = channels, kernel_size, stride
        self.pad, self.dilation = pad, dilation
        self.group, self.group_channels = group, channels // group
        self.offset_scale = float(offset_scale)
        self.dw_kernel_size = dw_kernel_size
        self.center_feature_scale = bool(center_feature_scale)
        self.remove_center = int(remove_center)
        self.without_pointwise = bool(without_pointwise)
        self.K = group * (kernel_size * kernel_size - self.remove_center)
        if dw_kernel_size is not None:
            self.offset_mask_dw = nn.Conv2d(channels, channels, dw_kernel_size, stride=1,
                                            padding=(dw_kernel_size - 1) // 2, groups=channels)
        self.offset_mask = nn.Linear(channels, packed_channels(group, (kernel_size, kernel_size), self.remove_center))
        if not self.without_pointwise:
            self.value_proj = nn.Linear(channels, channels)
            self.output_proj = nn.Linear(channels, channels, bias=output_bias)
        self.reset_parameters()
        if self.center_feature_scale:
            self.center_feature_scale_proj_weight = nn.Parameter(torch.zeros(group, channels))
            self.center_feature_scale_proj_bias = nn.Parameter(torch.zeros(group))

    def reset_parameters(self) -> None:
        """offset_mask starts at zero, projections Xavier with zero bias, as the DCNv4 package."""
        nn.init.zeros_(self.offset_mask.weight)
        nn.init.zeros_(self.offset_mask.bias)
        if not self.without_pointwise:
            for lin in (self.value_proj, self.output_proj):
                nn.init.xavier_uniform_(lin.weight)
                if lin.bias is not None:
                    nn.init.zeros_(lin.bias)

    def attrs(self) -> list:
        """The op's attributes after its tensors."""
        return module_attrs(self)

    def forward(self, input: Tensor, shape=None) -> Tensor:
        N, L, C = input.shape
        H, W = shape if shape is not None else (math.isqrt(L), math.isqrt(L))
        x = input if self.without_pointwise else self.value_proj(input)
        x = x.reshape(N, H, W, -1)
        om_in = input
        if self.dw_kernel_size is not None:
            om_in = self.offset_mask_dw(input.reshape(N, H, W, C).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        offset_mask = self.offset_mask(om_in).reshape(N, H, W, -1)
        x_proj = x
        x = torch.ops.dcn.dcnv4(x, offset_mask, *self.attrs())
        if self.center_feature_scale:  # on the aggregated features, as the DCNv4 package does
            scale = center_feature_scale(x, self.center_feature_scale_proj_weight, self.center_feature_scale_proj_bias,
                                         self.channels, self.group)
            x = x * (1 - scale) + x_proj * scale
        x = x.reshape(N, -1, self.channels)
        return x if self.without_pointwise else self.output_proj(x)

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, kernel_size={self.kernel_size}, stride={self.stride}, pad={self.pad}, "
                f"dilation={self.dilation}, group={self.group}, offset_scale={self.offset_scale}, "
                f"dw_kernel_size={self.dw_kernel_size}, remove_center={self.remove_center}")
