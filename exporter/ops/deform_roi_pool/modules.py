"""dcn::DeformRoIPool's nn.Modules: mmcv's ``DeformRoIPool``, ``DeformRoIPoolPack`` (mmdetection's dpool)
and ``ModulatedDeformRoIPoolPack`` (mdpool) with mmcv's constructors and parameter layout, calling
``torch.ops.dcn.deform_roi_pool``."""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from exporter.ops.common import pair

from . import custom  # noqa: F401  (registers torch.ops.dcn.deform_roi_pool)
from .spec import SPEC


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
        self.output_size = pair(output_size, "output_size", SPEC.op_type)
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


_PACKS = ("DeformRoIPoolPack", "ModulatedDeformRoIPoolPack")  # ours or mmcv's: the same attributes


def example_rois_scale(model: nn.Module, image: Sequence[int]) -> Optional[float]:
    """For generated example RoIs (dcn-export --input rois:Rx5): when the 4-D input of shape ``image``
    is a (modulated) deformable RoI pooling pack's feature map (output_channels channels), RoIs in
    image pixels are 1/spatial_scale larger; the scale, else None."""
    pack = next((m for m in model.modules() if type(m).__name__ in _PACKS), None)
    if pack is not None and image[1] == pack.output_channels:
        return pack.spatial_scale
    return None
