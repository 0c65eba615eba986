"""dcn::DeformPSROIPool has no third-party module to swap: mmcv's deformable RoI pooling samples like
RoIAlign and becomes dcn::DeformRoIPool (exporter/ops/deform_roi_pool/swap.py); the original
DeformablePSROIPooling (MXNet, Deformable-ConvNets) has no PyTorch module to recognise."""
from __future__ import annotations

from typing import Callable

from torch import nn

RULES: dict[tuple[str, str], Callable[[nn.Module, str], nn.Module]] = {}
