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
from .dcnv3.modules import DCNv3  # noqa: E402  (registers torch.ops.dcn.dcnv3)
from .dcnv4.modules import DCNv4  # noqa: E402  (registers torch.ops.dcn.dcnv4)

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
    "DCNv3",
    "DCNv4",
]
