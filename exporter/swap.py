"""Third-party deformable modules -> ours (``exporter.ops``), weights kept.

mmcv and detectron2 run their deformable ops through C++ extensions inside custom
autograd Functions, which neither trace nor export. Their modules are recognised by
class name and defining module (``mmcv.ops...``, ``detectron2.layers...``), without
importing those libraries, and replaced in place by ours with the same geometry and
parameters, so the exported node carries exactly the module's stride, padding,
dilation, groups and offset groups.

torchvision is not swapped: ``torchvision.ops.DeformConv2d`` and the functional
``torchvision.ops.deform_conv2d`` both call ``torchvision::deform_conv2d``, which the
exporter translates straight into our node (one mapping covers modules and calls).

mmcv's ``DeformRoIPool`` / ``DeformRoIPoolPack`` / ``ModulatedDeformRoIPoolPack`` sample
like RoIAlign (centred sub-bin samples on a ``sampling_ratio`` grid, RoIs not rounded,
every sample counted), not like the original ``DeformablePSROIPooling`` of
``dcn::DeformPSROIPool``: they become ours of the same names, built on ``dcn::DeformRoIPool``
(mmcv's semantics), with their ``offset_fc`` / ``mask_fc`` weights.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import nn

from .errors import DcnError
from .ops import modules as ours
from .ops.multi_scale_deformable_attention.swap import RULES as MSDA_RULES


@dataclass(frozen=True)
class Swap:
    """One replaced module: its path in the model, what it was, what it became."""

    path: str
    source: str
    target: str

    def __str__(self) -> str:
        return f"{self.path or '<root>'}: {self.source} -> {self.target}"


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


# --------------------------------------------------------------------------- converters
def _geometry(m: nn.Module, groups_attr: str) -> dict:
    weight = m.weight
    return dict(
        in_channels=weight.shape[1] * int(m.groups),
        out_channels=weight.shape[0],
        kernel_size=tuple(weight.shape[2:]),
        # their kernels read [0] (height) and [1] (width) of these
        stride=_pair(m.stride)[:2],
        padding=_pair(m.padding)[:2],
        dilation=_pair(m.dilation)[:2],
        groups=int(m.groups),
        deform_groups=int(getattr(m, groups_attr)),
    )


def _finish(new: nn.Module, old: nn.Module, path: str) -> nn.Module:
    """Copy parameters by name (strict: every parameter of the new module must come from the old)."""
    new_state = new.state_dict()
    old_state = old.state_dict()
    missing = [k for k in new_state if k not in old_state]
    if missing:
        raise DcnError(
            f"module '{path}' ({_qualname(type(old))}): cannot swap for {type(new).__name__}, "
            f"its state has no {', '.join(missing)}"
        )
    for k, v in new_state.items():
        if tuple(old_state[k].shape) != tuple(v.shape):
            raise DcnError(
                f"module '{path}' ({_qualname(type(old))}): parameter {k} has shape {list(old_state[k].shape)}, "
                f"expected {list(v.shape)} for {type(new).__name__}"
            )
    ref = next(iter(old.parameters()), None)
    if ref is not None:
        new.to(device=ref.device, dtype=ref.dtype)
    new.load_state_dict({k: old_state[k] for k in new_state}, strict=True)
    new.train(old.training)
    return new


def _check_offset_branch(m: nn.Module, path: str) -> None:
    """mmcv's packs build conv_offset with the deformable conv's own stride/padding/dilation: ours assume it."""
    conv = getattr(m, "conv_offset", None)
    if not isinstance(conv, nn.Conv2d):
        raise DcnError(f"module '{path}' ({_qualname(type(m))}): conv_offset is {type(conv).__name__}, expected nn.Conv2d")
    pad = conv.padding if isinstance(conv.padding, tuple) else None
    want = (_pair(m.stride)[:2], _pair(m.padding)[:2], _pair(m.dilation)[:2], tuple(m.weight.shape[2:]))
    got = (tuple(conv.stride), pad, tuple(conv.dilation), tuple(conv.kernel_size))
    if got != want or conv.groups != 1 or conv.bias is None:
        raise DcnError(
            f"module '{path}' ({_qualname(type(m))}): conv_offset has stride/padding/dilation/kernel {got}, "
            f"expected {want} (the deformable conv's own geometry, groups 1, with bias)"
        )


def _pair(v) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    v = tuple(int(x) for x in v)
    return (v[0], v[0]) if len(v) == 1 else v  # type: ignore[return-value]


def _mmcv_deform_conv(m: nn.Module, path: str) -> nn.Module:
    if getattr(m, "bias", None) is not None:
        raise DcnError(f"module '{path}' (mmcv DeformConv2d) has a bias, which mmcv does not support; expected none")
    return _finish(ours.DeformConv2d(**_geometry(m, "deform_groups"), bias=False), m, path)


def _mmcv_deform_conv_pack(m: nn.Module, path: str) -> nn.Module:
    _check_offset_branch(m, path)
    if getattr(m, "bias", None) is not None:
        raise DcnError(f"module '{path}' (mmcv DeformConv2dPack) has a bias, which mmcv does not support; expected none")
    return _finish(ours.DeformConv2dPack(**_geometry(m, "deform_groups"), bias=False), m, path)


def _mmcv_modulated(m: nn.Module, path: str) -> nn.Module:
    return _finish(ours.ModulatedDeformConv2d(**_geometry(m, "deform_groups"), bias=m.bias is not None), m, path)


def _mmcv_modulated_pack(m: nn.Module, path: str) -> nn.Module:
    _check_offset_branch(m, path)
    return _finish(ours.ModulatedDeformConv2dPack(**_geometry(m, "deform_groups"), bias=m.bias is not None), m, path)


def _d2(cls) -> Callable[[nn.Module, str], nn.Module]:
    def convert(m: nn.Module, path: str) -> nn.Module:
        bias = getattr(m, "bias", None) is not None
        new = cls(**_geometry(m, "deformable_groups"), bias=bias)
        new = _finish(new, m, path)  # parameters of the conv itself
        new.norm = m.norm  # kept as they are (their own parameters and state)
        new.activation = m.activation
        return new

    return convert


def _roi_pool_args(m: nn.Module) -> dict:
    return dict(output_size=tuple(int(v) for v in _pair(m.output_size)), spatial_scale=float(m.spatial_scale),
                sampling_ratio=int(m.sampling_ratio), gamma=float(m.gamma))


def _mmcv_deform_roi_pool(m: nn.Module, path: str) -> nn.Module:
    new = ours.DeformRoIPool(**_roi_pool_args(m))
    new.train(m.training)
    return new


def _mmcv_roi_pool_pack(cls) -> Callable[[nn.Module, str], nn.Module]:
    def convert(m: nn.Module, path: str) -> nn.Module:
        new = cls(output_channels=int(m.output_channels), deform_fc_channels=int(m.deform_fc_channels),
                  **_roi_pool_args(m))
        return _finish(new, m, path)  # offset_fc (and mask_fc): names and shapes checked, weights copied

    return convert


# (library module prefix, class name) -> converter
KNOWN: dict[tuple[str, str], Callable[[nn.Module, str], nn.Module]] = {
    ("mmcv.ops", "DeformConv2d"): _mmcv_deform_conv,
    ("mmcv.ops", "DeformConv2dPack"): _mmcv_deform_conv_pack,
    ("mmcv.ops", "ModulatedDeformConv2d"): _mmcv_modulated,
    ("mmcv.ops", "ModulatedDeformConv2dPack"): _mmcv_modulated_pack,
    ("mmcv.ops", "DeformRoIPool"): _mmcv_deform_roi_pool,
    ("mmcv.ops", "DeformRoIPoolPack"): _mmcv_roi_pool_pack(ours.DeformRoIPoolPack),
    ("mmcv.ops", "ModulatedDeformRoIPoolPack"): _mmcv_roi_pool_pack(ours.ModulatedDeformRoIPoolPack),
    ("detectron2.layers", "DeformConv"): _d2(Detectron2DeformConv),
    ("detectron2.layers", "ModulatedDeformConv"): _d2(Detectron2ModulatedDeformConv),
    **MSDA_RULES,
}


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def match(module: nn.Module) -> Optional[tuple[type, Callable[[nn.Module, str], nn.Module]]]:
    """The known third-party class in ``module``'s MRO and its converter, or None."""
    for cls in type(module).__mro__:
        mod = getattr(cls, "__module__", "") or ""
        for (prefix, name), convert in KNOWN.items():
            if cls.__name__ == name and (mod == prefix or mod.startswith(prefix + ".")):
                return cls, convert
    return None


def swap_modules(model: nn.Module) -> tuple[nn.Module, list[Swap]]:
    """Replace known third-party deformable modules in ``model`` (in place) by ours.

    Returns the (possibly new, when the root itself is swapped) model and the swaps made.
    Raises DcnError naming the module path for modules that cannot be swapped exactly.
    """
    swaps: list[Swap] = []
    todo = []
    for path, m in model.named_modules():
        found = match(m)
        if found is None:
            continue
        cls, convert = found
        if type(m) is not cls and type(m).forward is not cls.forward:
            raise DcnError(
                f"module '{path}' ({_qualname(type(m))}) subclasses {_qualname(cls)} and overrides forward; "
                f"dcn-export cannot swap it exactly - give it a forward built on exporter.ops modules"
            )
        todo.append((path, m, convert))
    for path, m, convert in todo:
        if any(path.startswith(p + ".") for p, _, _ in todo if p and p != path):
            continue  # inside a module that is itself swapped (none of the known ones nest)
        new = convert(m, path)
        swaps.append(Swap(path, _qualname(type(m)), _qualname(type(new))))
        if path == "":
            model = new
        else:
            parent_path, _, attr = path.rpartition(".")
            parent = model.get_submodule(parent_path) if parent_path else model
            setattr(parent, attr, new)
    return model, swaps
