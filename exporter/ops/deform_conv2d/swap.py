"""Third-party deformable convolutions -> ours (:mod:`exporter.swap` applies ``RULES``), weights kept.

mmcv and detectron2 run their deformable convolutions through C++ extensions inside custom autograd
Functions, which neither trace nor export. Their modules are recognised by class name and defining
module (``mmcv.ops...``, ``detectron2.layers...``), without importing those libraries, and replaced
by ours with the same geometry and parameters, so the exported node carries exactly the module's
stride, padding, dilation, groups and offset groups.

torchvision is not swapped: ``torchvision.ops.DeformConv2d`` and the functional
``torchvision.ops.deform_conv2d`` both call ``torchvision::deform_conv2d``, which this op's onnx.py
translates straight into our node (one mapping covers modules and calls).
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import nn

from dcn_base.errors import DcnError
from exporter.swap import finish, hw_pair, qualname

from . import modules as ours


# --------------------------------------------------------------------------- our stand-ins for detectron2
class Detectron2DeformConv(ours.DeformConv2d):
    """detectron2 ``DeformConv``: DCNv1 (no bias) followed by its optional norm and activation."""

    def __init__(self, *args, norm: Optional[nn.Module] = None, activation: Optional[Callable] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.norm = norm
        self.activation = activation

    def _post(self, x: torch.Tensor) -> torch.Tensor:
        if self.norm is not None:
            x = self.norm(x)
        if self.activation is not None:
            x = self.activation(x)
        return x

    def forward(self, x: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self._post(self.deform(x, offset))


class Detectron2ModulatedDeformConv(Detectron2DeformConv):
    """detectron2 ``ModulatedDeformConv``: DCNv2, then its optional norm and activation."""

    modulated = True

    def forward(self, x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self._post(self.deform(x, offset, mask))


def _geometry(m: nn.Module, groups_attr: str) -> dict:
    weight = m.weight
    return dict(
        in_channels=weight.shape[1] * int(m.groups),
        out_channels=weight.shape[0],
        kernel_size=tuple(weight.shape[2:]),
        # their kernels read [0] (height) and [1] (width) of these
        stride=hw_pair(m.stride)[:2],
        padding=hw_pair(m.padding)[:2],
        dilation=hw_pair(m.dilation)[:2],
        groups=int(m.groups),
        deform_groups=int(getattr(m, groups_attr)),
    )


def _check_offset_branch(m: nn.Module, path: str) -> None:
    """mmcv's packs build conv_offset with the deformable conv's own stride/padding/dilation: ours assume it."""
    conv = getattr(m, "conv_offset", None)
    if not isinstance(conv, nn.Conv2d):
        raise DcnError(f"module '{path}' ({qualname(type(m))}): conv_offset is {type(conv).__name__}, expected nn.Conv2d")
    pad = conv.padding if isinstance(conv.padding, tuple) else None
    want = (hw_pair(m.stride)[:2], hw_pair(m.padding)[:2], hw_pair(m.dilation)[:2], tuple(m.weight.shape[2:]))
    got = (tuple(conv.stride), pad, tuple(conv.dilation), tuple(conv.kernel_size))
    if got != want or conv.groups != 1 or conv.bias is None:
        raise DcnError(
            f"module '{path}' ({qualname(type(m))}): conv_offset has stride/padding/dilation/kernel {got}, "
            f"expected {want} (the deformable conv's own geometry, groups 1, with bias)"
        )


def _mmcv_deform_conv(m: nn.Module, path: str) -> nn.Module:
    if getattr(m, "bias", None) is not None:
        raise DcnError(f"module '{path}' (mmcv DeformConv2d) has a bias, which mmcv does not support; expected none")
    return finish(ours.DeformConv2d(**_geometry(m, "deform_groups"), bias=False), m, path)


def _mmcv_deform_conv_pack(m: nn.Module, path: str) -> nn.Module:
    _check_offset_branch(m, path)
    if getattr(m, "bias", None) is not None:
        raise DcnError(f"module '{path}' (mmcv DeformConv2dPack) has a bias, which mmcv does not support; expected none")
    return finish(ours.DeformConv2dPack(**_geometry(m, "deform_groups"), bias=False), m, path)


def _mmcv_modulated(m: nn.Module, path: str) -> nn.Module:
    return finish(ours.ModulatedDeformConv2d(**_geometry(m, "deform_groups"), bias=m.bias is not None), m, path)


def _mmcv_modulated_pack(m: nn.Module, path: str) -> nn.Module:
    _check_offset_branch(m, path)
    return finish(ours.ModulatedDeformConv2dPack(**_geometry(m, "deform_groups"), bias=m.bias is not None), m, path)


def _d2(cls) -> Callable[[nn.Module, str], nn.Module]:
    def convert(m: nn.Module, path: str) -> nn.Module:
        bias = getattr(m, "bias", None) is not None
        new = cls(**_geometry(m, "deformable_groups"), bias=bias)
        new = finish(new, m, path)  # parameters of the conv itself
        new.norm = m.norm  # kept as they are (their own parameters and state)
        new.activation = m.activation
        return new

    return convert


# (library module prefix, class name) -> converter
RULES: dict[tuple[str, str], Callable[[nn.Module, str], nn.Module]] = {
    ("mmcv.ops", "DeformConv2d"): _mmcv_deform_conv,
    ("mmcv.ops", "DeformConv2dPack"): _mmcv_deform_conv_pack,
    ("mmcv.ops", "ModulatedDeformConv2d"): _mmcv_modulated,
    ("mmcv.ops", "ModulatedDeformConv2dPack"): _mmcv_modulated_pack,
    ("detectron2.layers", "DeformConv"): _d2(Detectron2DeformConv),
    ("detectron2.layers", "ModulatedDeformConv"): _d2(Detectron2ModulatedDeformConv),
}
