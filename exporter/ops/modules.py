"""nn.Modules users put in models; all call the ``dcn::`` custom ops.

Names and parameter layouts follow mmcv / mmdetection (``deform_groups``,
``conv_offset``, the modulated pack's ``(o1, o2, mask)`` chunking), so weights of
those modules load unchanged.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor, nn

from . import custom  # noqa: F401  (registers torch.ops.dcn.*)
from .reference import IntOrSeq, _pair, normalize_pads


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
        self.kernel_size = _pair(kernel_size, "kernel_shape")
        self.stride = _pair(stride, "strides")
        self.padding = normalize_pads(padding)
        self.dilation = _pair(dilation, "dilations")
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


class DeformPSROIPool(nn.Module):
    """Deformable (position-sensitive) RoI pooling: ``forward(data, rois, trans=None)``.

    ``group_size=1``: the paper's deformable RoI pooling; ``group_size=k``: R-FCN's
    position-sensitive variant. rois [R, 5] = (batch_index, x1, y1, x2, y2) in image pixels;
    trans [R, 2*num_classes, part_size, part_size] (normalized offsets, scaled by trans_std).
    """

    def __init__(
        self,
        spatial_scale: float,
        output_dim: int,
        group_size: int,
        pooled_size: int,
        part_size: int = 0,
        sample_per_part: int = 4,
        trans_std: float = 0.0,
    ) -> None:
        super().__init__()
        self.spatial_scale = float(spatial_scale)
        self.output_dim = int(output_dim)
        self.group_size = int(group_size)
        self.pooled_size = int(pooled_size)
        self.part_size = int(part_size) or int(pooled_size)
        self.sample_per_part = int(sample_per_part)
        self.trans_std = float(trans_std)

    def pool(self, data: Tensor, rois: Tensor, trans: Optional[Tensor], output_dim: Optional[int] = None,
             trans_std: Optional[float] = None) -> Tensor:
        # written so that torch.jit.script compiles it (no keyword-only arguments, no `or` on Optional)
        return torch.ops.dcn.deform_psroi_pool(
            data, rois, trans, self.spatial_scale, self.output_dim if output_dim is None else output_dim,
            self.group_size, self.pooled_size, self.part_size, self.sample_per_part,
            self.trans_std if trans_std is None else trans_std, int(trans is None),
        )

    def forward(self, data: Tensor, rois: Tensor, trans: Optional[Tensor] = None) -> Tensor:
        return self.pool(data, rois, trans)

    def extra_repr(self) -> str:
        return (
            f"spatial_scale={self.spatial_scale}, output_dim={self.output_dim}, group_size={self.group_size}, "
            f"pooled_size={self.pooled_size}, part_size={self.part_size}, "
            f"sample_per_part={self.sample_per_part}, trans_std={self.trans_std}"
        )


class DeformPSROIPoolPack(DeformPSROIPool):
    """Deformable (PS-)RoI pooling that learns its own offsets.

    * ``group_size == 1`` — the paper's Faster R-CNN head (sec. 2.2): plain RoI pooling
      (no offsets) -> fc -> ReLU -> fc (zero-initialised) -> normalized offsets
      [R, 2, P, P], then deformable RoI pooling with ``trans_std`` γ = 0.1.
    * ``group_size > 1`` — the R-FCN head: a 1x1 conv offset branch (zero-initialised)
      on ``data`` gives 2*num_offset_classes*group_size² score maps, pooled
      position-sensitively without offsets into trans [R, 2*num_offset_classes, P, P].
      ``num_offset_classes`` = 1 (class-agnostic) or output_dim (class-specific).
    """

    def __init__(
        self,
        spatial_scale: float,
        output_dim: int,
        group_size: int,
        pooled_size: int,
        part_size: int = 0,
        sample_per_part: int = 4,
        trans_std: float = 0.1,
        num_offset_classes: int = 1,
        deform_fc_channels: int = 1024,
    ) -> None:
        super().__init__(spatial_scale, output_dim, group_size, pooled_size, part_size, sample_per_part, trans_std)
        if output_dim % num_offset_classes:
            raise ValueError(
                f"DeformPSROIPoolPack: num_offset_classes {num_offset_classes} must divide output_dim {output_dim}"
            )
        if (part_size or pooled_size) != pooled_size:
            raise ValueError(
                f"DeformPSROIPoolPack: part_size {part_size} must equal pooled_size {pooled_size} "
                "(learned offsets are one per output bin)"
            )
        self.num_offset_classes = num_offset_classes
        in_channels = output_dim * group_size * group_size
        if group_size == 1:
            p2 = pooled_size * pooled_size
            self.offset_fc = nn.Sequential(
                nn.Linear(p2 * in_channels, deform_fc_channels),
                nn.ReLU(inplace=True),
                nn.Linear(deform_fc_channels, p2 * 2 * num_offset_classes),
            )
            nn.init.zeros_(self.offset_fc[-1].weight)
            nn.init.zeros_(self.offset_fc[-1].bias)
            self.offset_conv = None
        else:
            self.offset_fc = None
            self.offset_conv = nn.Conv2d(in_channels, 2 * num_offset_classes * group_size * group_size, 1)
            nn.init.zeros_(self.offset_conv.weight)
            nn.init.zeros_(self.offset_conv.bias)

    def offsets(self, data: Tensor, rois: Tensor) -> Tensor:
        P = self.pooled_size
        if self.offset_fc is not None:
            plain = self.pool(data, rois, None)
            return self.offset_fc(plain.flatten(1)).view(-1, 2 * self.num_offset_classes, P, P)
        assert self.offset_conv is not None
        return self.pool(self.offset_conv(data), rois, None, output_dim=2 * self.num_offset_classes)

    def forward(self, data: Tensor, rois: Tensor) -> Tensor:  # type: ignore[override]
        return self.pool(data, rois, self.offsets(data, rois))

    def extra_repr(self) -> str:
        return super().extra_repr() + f", num_offset_classes={self.num_offset_classes}"


# --------------------------------------------------------------------------- mmcv's deformable RoI pooling
def _rois_coordinates(rois: Tensor) -> Tensor:
    """RoI coordinates are never half precision (contract): float16 RoIs become float32."""
    return rois.float() if rois.dtype == torch.float16 else rois


class DeformRoIPool(nn.Module):
    """mmcv's ``DeformRoIPool``: ``forward(input, rois, offset=None)`` -> [R, C, PH, PW].

    RoIAlign-style sampling (``aligned``), ``offset`` [R, 2, PH, PW] = (dx, dy) per bin in units
    of the RoI's width / height, scaled by ``gamma``. Same constructor as mmcv's.
    """

    def __init__(self, output_size, spatial_scale: float = 1.0, sampling_ratio: int = 0, gamma: float = 0.1) -> None:
        super().__init__()
        self.output_size = _pair(output_size, "output_size", "DeformRoIPool")
        self.spatial_scale = float(spatial_scale)
        self.sampling_ratio = int(sampling_ratio)
        self.gamma = float(gamma)

    def pool(self, input: Tensor, rois: Tensor, offset: Optional[Tensor]) -> Tensor:
        return torch.ops.dcn.deform_roi_pool(input, _rois_coordinates(rois), offset, self.output_size[0],
                                             self.output_size[1], self.spatial_scale, self.sampling_ratio,
                                             self.gamma)

    def forward(self, input: Tensor, rois: Tensor, offset: Optional[Tensor] = None) -> Tensor:
        return self.pool(input, rois, offset)

    def extra_repr(self) -> str:
        return (f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
                f"sampling_ratio={self.sampling_ratio}, gamma={self.gamma}")


class DeformRoIPoolPack(DeformRoIPool):
    """mmcv's ``DeformRoIPoolPack`` (mmdetection's ``dpool``): plain pooling -> ``offset_fc``
    (fc, ReLU, fc, ReLU, fc; the last zero-initialised) -> offsets -> deformable pooling.
    Parameter names and shapes are mmcv's, so its weights load unchanged."""

    def __init__(self, output_size, output_channels: int, deform_fc_channels: int = 1024,
                 spatial_scale: float = 1.0, sampling_ratio: int = 0, gamma: float = 0.1) -> None:
        super().__init__(output_size, spatial_scale, sampling_ratio, gamma)
        self.output_channels = int(output_channels)
        self.deform_fc_channels = int(deform_fc_channels)
        bins = self.output_size[0] * self.output_size[1]
        fc = self.deform_fc_channels
        self.offset_fc = nn.Sequential(
            nn.Linear(bins * self.output_channels, fc), nn.ReLU(inplace=True),
            nn.Linear(fc, fc), nn.ReLU(inplace=True),
            nn.Linear(fc, bins * 2),
        )
        nn.init.zeros_(self.offset_fc[-1].weight)
        nn.init.zeros_(self.offset_fc[-1].bias)

    def _check_channels(self, input: Tensor) -> None:
        if not torch.compiler.is_compiling() and input.shape[1] != self.output_channels:
            raise ValueError(f"{type(self).__name__}: input has {input.shape[1]} channels, "
                             f"expected output_channels = {self.output_channels}")

    def offsets(self, plain: Tensor) -> Tensor:
        return self.offset_fc(plain.flatten(1)).view(-1, 2, *self.output_size)

    def forward(self, input: Tensor, rois: Tensor) -> Tensor:  # type: ignore[override]
        self._check_channels(input)
        plain = self.pool(input, rois, None)
        return self.pool(input, rois, self.offsets(plain))


class ModulatedDeformRoIPoolPack(DeformRoIPoolPack):
    """mmcv's ``ModulatedDeformRoIPoolPack`` (mmdetection's ``mdpool``): ``DeformRoIPoolPack``
    plus ``mask_fc`` (fc, ReLU, fc zero-initialised, sigmoid) whose per-bin mask multiplies the output."""

    def __init__(self, output_size, output_channels: int, deform_fc_channels: int = 1024,
                 spatial_scale: float = 1.0, sampling_ratio: int = 0, gamma: float = 0.1) -> None:
        super().__init__(output_size, output_channels, deform_fc_channels, spatial_scale, sampling_ratio, gamma)
        bins = self.output_size[0] * self.output_size[1]
        self.mask_fc = nn.Sequential(
            nn.Linear(bins * self.output_channels, self.deform_fc_channels), nn.ReLU(inplace=True),
            nn.Linear(self.deform_fc_channels, bins), nn.Sigmoid(),
        )
        nn.init.zeros_(self.mask_fc[2].weight)
        nn.init.zeros_(self.mask_fc[2].bias)

    def forward(self, input: Tensor, rois: Tensor) -> Tensor:  # type: ignore[override]
        self._check_channels(input)
        plain = self.pool(input, rois, None)
        mask = self.mask_fc(plain.flatten(1)).view(-1, 1, *self.output_size)
        return self.pool(input, rois, self.offsets(plain)) * mask
