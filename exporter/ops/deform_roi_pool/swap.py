"""mmcv's deformable RoI pooling -> ours (:mod:`exporter.swap` applies ``RULES``), weights kept.

mmcv's ``DeformRoIPool`` / ``DeformRoIPoolPack`` / ``ModulatedDeformRoIPoolPack`` sample like RoIAlign
(centred sub-bin samples on a ``sampling_ratio`` grid, RoIs not rounded, every sample counted), not
like the original DeformablePSROIPooling: they become ours of the same names, built on
``dcn::DeformRoIPool`` (mmcv's semantics), with their ``offset_fc`` / ``mask_fc`` weights.
"""
from __future__ import annotations

from typing import Callable

from torch import nn

from exporter.swap import finish, hw_pair

from . import modules as ours


def _roi_pool_args(m: nn.Module) -> dict:
    return dict(output_size=tuple(int(v) for v in hw_pair(m.output_size)), spatial_scale=float(m.spatial_scale),
                sampling_ratio=int(m.sampling_ratio), gamma=float(m.gamma))


def _mmcv_deform_roi_pool(m: nn.Module, path: str) -> nn.Module:
    new = ours.DeformRoIPool(**_roi_pool_args(m))
    new.train(m.training)
    return new


def _mmcv_roi_pool_pack(cls) -> Callable[[nn.Module, str], nn.Module]:
    def convert(m: nn.Module, path: str) -> nn.Module:
        new = cls(output_channels=int(m.output_channels), deform_fc_channels=int(m.deform_fc_channels),
                  **_roi_pool_args(m))
        return finish(new, m, path)  # offset_fc (and mask_fc): names and shapes checked, weights copied

    return convert


# (library module prefix, class name) -> converter
RULES: dict[tuple[str, str], Callable[[nn.Module, str], nn.Module]] = {
    ("mmcv.ops", "DeformRoIPool"): _mmcv_deform_roi_pool,
    ("mmcv.ops", "DeformRoIPoolPack"): _mmcv_roi_pool_pack(ours.DeformRoIPoolPack),
    ("mmcv.ops", "ModulatedDeformRoIPoolPack"): _mmcv_roi_pool_pack(ours.ModulatedDeformRoIPoolPack),
}
