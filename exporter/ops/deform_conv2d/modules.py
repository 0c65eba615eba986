"""dcn::DeformConv2d's nn.Modules: DCNv1 (``DeformConv2d``, ``DeformConv2dPack``) and DCNv2
(``ModulatedDeformConv2d``, ``ModulatedDeformConv2dPack``), all calling ``torch.ops.dcn.deform_conv2d``.

Names and parameter layouts follow mmcv / mmdetection (``deform_groups``, ``conv_offset``, the
modulated pack's ``(o1, o2, mask)`` chunking), so weights of those modules load unchanged.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor, nn

from exporter.ops.common import IntOrSeq, normalize_pads, pair

from . import custom  # noqa: F401  (registers torch.ops.dcn.deform_conv2d)
from .spec import SPEC

OP = SPEC.op_type


def _pad_for_conv(x: Tensor, pads: tuple[int, int, int, int]) -> tuple[Tensor, tuple[int, int]]:
    """nn.Conv2d pads symmetrically; asymmetric pads become an explicit F.pad."""
    top, left, bottom, right = pads
    if top == bottom and left == right:
        return x, (top, left)
    return nn.functional.pad(x, (left, right, top, bottom)), (0, 0)


class DeformConv2d(nn.Module):
    """Deformable convolution v1: ``forward(x, offset)``.

    offset: [N, 2*deform_groups*kH*kW, oH, oW], (dh, dw) pairs per kernel point.
    ``padding`` takes 1, 2 or 4 values (top, left, bottom, right).
    """

    modulated = False

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrSeq,
        stride: IntOrSeq = 1,
        padding: IntOrSeq = 0,
        dilation: IntOrSeq = 1,
        groups: int = 1,
        deform_groups: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"{type(self).__name__}: in_channels {in_channels} and out_channels {out_channels} "
                f"must be divisible by groups {groups}"
            )
        if in_channels % deform_groups:
            raise ValueError(
                f"{type(self).__name__}: in_channels {in_channels} must be divisible by deform_groups {deform_groups}"
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = pair(kernel_size, "kernel_shape", OP)
        self.stride = pair(stride, "strides", OP)
        self.padding = normalize_pads(padding, OP)
        self.dilation = pair(dilation, "dilations", OP)
        self.groups = groups
        self.deform_groups = deform_groups
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, *self.kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight.shape[1] * self.weight.shape[2] * self.weight.shape[3]
            bound = 1 / math.sqrt(fan_in)
            nn.init.uniform_(self.bias, -bound, bound)

    @property
    def num_offset_channels(self) -> int:
        return self.deform_groups * 2 * self.kernel_size[0] * self.kernel_size[1]

    def deform(self, x: Tensor, offset: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        return torch.ops.dcn.deform_conv2d(
            x, self.weight, offset, self.bias, mask, list(self.stride), list(self.padding),
            list(self.dilation), self.groups, self.deform_groups,
        )

    def forward(self, x: Tensor, offset: Tensor) -> Tensor:
        return self.deform(x, offset)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, dilation={self.dilation}, groups={self.groups}, "
            f"deform_groups={self.deform_groups}, bias={self.bias is not None}"
        )


class ModulatedDeformConv2d(DeformConv2d):
    """Deformable convolution v2: ``forward(x, offset, mask)``; mask [N, deform_groups*kH*kW, oH, oW]."""

    modulated = True

    def forward(self, x: Tensor, offset: Tensor, mask: Tensor) -> Tensor:  # type: ignore[override]
        return self.deform(x, offset, mask)


class DeformConv2dPack(DeformConv2d):
    """DCNv1 with its offset branch: a conv of the same geometry, zero-initialised (paper sec. 2.1)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.conv_offset = nn.Conv2d(
            self.in_channels, self._branch_channels(), self.kernel_size, stride=self.stride,
            padding=0, dilation=self.dilation, bias=True,
        )
        nn.init.zeros_(self.conv_offset.weight)
        nn.init.zeros_(self.conv_offset.bias)

    def _branch_channels(self) -> int:
        return self.num_offset_channels

    def _branch(self, x: Tensor) -> Tensor:
        xp, padding = _pad_for_conv(x, self.padding)
        return nn.functional.conv2d(xp, self.conv_offset.weight, self.conv_offset.bias, self.stride, padding,
                                    self.dilation)

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        return self.deform(x, self._branch(x))


class ModulatedDeformConv2dPack(DeformConv2dPack):
    """DCNv2 with its offset/mask branch (mmcv layout: chunks o1, o2, mask; mask = sigmoid)."""

    modulated = True

    def _branch_channels(self) -> int:
        return self.deform_groups * 3 * self.kernel_size[0] * self.kernel_size[1]

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        o1, o2, mask = torch.chunk(self._branch(x), 3, dim=1)
        return self.deform(x, torch.cat((o1, o2), dim=1), torch.sigmoid(mask))
