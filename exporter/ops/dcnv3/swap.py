"""Swap rules: InternImage's ``DCNv3`` / ``DCNv3_pytorch`` and the DCNv4 package's ``DCNv4`` -> ours
(exporter/ops/dcnv3/modules.py, exporter/ops/dcnv4/modules.py), weights kept.

InternImage runs DCNv3 through a CUDA extension inside an autograd Function (``DCNv3Function``: "Couldn't
export Python operator", OpenGVLab/InternImage#39, #66, #114) or through its grid_sample formulation; the
DCNv4 package is CUDA-only. Their modules are recognised by class name in any module (InternImage vendors
``ops_dcnv3`` under several paths; exporter/swap.py's KNOWN with prefix "" = anywhere but exporter) and
rebuilt from their attributes; exporter/swap.py's ``finish`` copies every parameter by name and shape.
InternImage's ``dw_conv`` (depth-wise conv, norm, activation: plain PyTorch) is kept as it is.
"""
from __future__ import annotations

from typing import Callable

from torch import nn

from ...errors import DcnError
from ..dcnv4.modules import DCNv4
from .modules import DCNv3
from .spec import dcnv4_channels


def _get(m: nn.Module, path: str, name: str):
    if not hasattr(m, name):
        raise DcnError(f"module '{path}' ({type(m).__name__}): no attribute {name}, expected "
                       f"{type(m).__name__}'s constructor arguments as attributes")
    return getattr(m, name)


def _int(v) -> int:
    return int(v[0] if isinstance(v, (tuple, list)) else v)


def internimage_dcnv3(finish: Callable) -> Callable[[nn.Module, str], nn.Module]:
    """InternImage's DCNv3 / DCNv3_pytorch -> exporter.ops.DCNv3."""

    def convert(m: nn.Module, path: str) -> nn.Module:
        dw = _get(m, path, "dw_conv")
        if not (isinstance(dw, nn.Sequential) and len(dw) == 3 and isinstance(dw[0], nn.Conv2d)):
            raise DcnError(f"module '{path}' ({type(m).__name__}): dw_conv is {type(dw).__name__}, expected "
                           f"Sequential(depth-wise Conv2d, norm, activation)")
        norm = "BN" if any(isinstance(x, nn.BatchNorm2d) for x in dw[1].modules()) else "LN"
        act = {nn.GELU: "GELU", nn.ReLU: "ReLU", nn.SiLU: "SiLU"}.get(type(dw[2]), "GELU")
        new = DCNv3(channels=_int(_get(m, path, "channels")), kernel_size=_int(_get(m, path, "kernel_size")),
                    dw_kernel_size=dw[0].kernel_size[0], stride=_int(_get(m, path, "stride")),
                    pad=_int(_get(m, path, "pad")), dilation=_int(_get(m, path, "dilation")),
                    group=_int(_get(m, path, "group")), offset_scale=float(_get(m, path, "offset_scale")),
                    act_layer=act, norm_layer=norm,
                    center_feature_scale=bool(getattr(m, "center_feature_scale", False)),
                    remove_center=bool(getattr(m, "remove_center", 0)))
        new = finish(new, m, path)
        new.dw_conv = dw  # theirs, as it is (eps, in-place activations): plain PyTorch
        return new

    return convert


def dcnv4_package(finish: Callable) -> Callable[[nn.Module, str], nn.Module]:
    """The DCNv4 package's DCNv4 -> exporter.ops.DCNv4."""

    def convert(m: nn.Module, path: str) -> nn.Module:
        group, k = _int(_get(m, path, "group")), _int(_get(m, path, "kernel_size"))
        rc = int(getattr(m, "remove_center", 0))
        om = _get(m, path, "offset_mask")
        want = dcnv4_channels(group, (k, k), rc)
        if not isinstance(om, nn.Linear) or om.out_features != want:
            raise DcnError(f"module '{path}' ({type(m).__name__}): offset_mask has "
                           f"{getattr(om, 'out_features', type(om).__name__)} outputs, expected "
                           f"ceil(group*P*3 / 8)*8 = {want}")
        proj = getattr(m, "output_proj", None)
        new = DCNv4(channels=_int(_get(m, path, "channels")), kernel_size=k, stride=_int(_get(m, path, "stride")),
                    pad=_int(_get(m, path, "pad")), dilation=_int(_get(m, path, "dilation")), group=group,
                    offset_scale=float(_get(m, path, "offset_scale")),
                    dw_kernel_size=getattr(m, "dw_kernel_size", None),
                    center_feature_scale=bool(getattr(m, "center_feature_scale", False)), remove_center=bool(rc),
                    output_bias=proj is None or proj.bias is not None,
                    without_pointwise=bool(getattr(m, "without_pointwise", False)))
        return finish(new, m, path)

    return convert


def _all_kept(convert: Callable) -> Callable[[nn.Module, str], nn.Module]:
    """Every parameter and buffer of theirs must be one of ours: none may be left behind unused."""

    def run(m: nn.Module, path: str) -> nn.Module:
        new = convert(m, path)
        extra = sorted(set(m.state_dict()) - set(new.state_dict()))
        if extra:
            raise DcnError(f"module '{path}' ({type(m).__name__}): cannot swap for {type(new).__name__}, which has "
                           f"no {', '.join(extra)}; expected {type(m).__name__}'s parameter layout")
        return new

    return run


def known(finish: Callable) -> dict:
    """exporter/swap.py's KNOWN entries: (module prefix, class name) -> converter; prefix "" = any module."""
    v3 = _all_kept(internimage_dcnv3(finish))
    return {("", "DCNv3"): v3, ("", "DCNv3_pytorch"): v3, ("", "DCNv4"): _all_kept(dcnv4_package(finish))}
