"""Deformable ops: reference implementations (the truth), torch.library custom ops
(``torch.ops.dcn.deform_conv2d`` / ``deform_psroi_pool`` / ``deform_roi_pool``) and modules."""
from . import custom  # noqa: F401  (registers torch.ops.dcn.*)
from .custom import deform_conv2d_op, deform_psroi_pool_op, deform_roi_pool_op
from .modules import (
    DeformConv2d,
    DeformConv2dPack,
    DeformPSROIPool,
    DeformPSROIPoolPack,
    DeformRoIPool,
    DeformRoIPoolPack,
    ModulatedDeformConv2d,
    ModulatedDeformConv2dPack,
    ModulatedDeformRoIPoolPack,
)
from .reference import deform_conv2d, deform_psroi_pool, deform_roi_pool
from .multi_scale_deformable_attention import custom as _msda_custom  # noqa: F401,E402  (torch.ops.dcn.multi_scale_deformable_attention)

__all__ = [
    "deform_conv2d",
    "deform_psroi_pool",
    "deform_conv2d_op",
    "deform_psroi_pool_op",
    "DeformConv2d",
    "ModulatedDeformConv2d",
    "DeformConv2dPack",
    "ModulatedDeformConv2dPack",
    "DeformPSROIPool",
    "DeformPSROIPoolPack",
    "deform_roi_pool",
    "deform_roi_pool_op",
    "DeformRoIPool",
    "DeformRoIPoolPack",
    "ModulatedDeformRoIPoolPack",
]
