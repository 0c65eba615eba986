"""Swap rules: InternImage's ``DCNv3`` / ``DCNv3_pytorch`` -> ours (:mod:`exporter.swap` applies ``RULES``),
weights kept.

InternImage runs DCNv3 through a CUDA extension inside an autograd Function (``DCNv3Function``: "Couldn't
export Python operator", OpenGVLab/InternImage#39, #66, #114) or through its grid_sample formulation.
InternImage vendors ``ops_dcnv3`` under several paths, so the modules are recognised by class name in
any module (prefix ""), rebuilt from their attributes, every parameter checked by name and shape
(exporter.swap: finish, keeping_all). InternImage's ``dw_conv`` (depth-wise conv, norm, activation: plain
PyTorch) is kept as it is.
"""
from __future__ import annotations

from typing import Callable

from torch import nn

from dcn_base.errors import DcnError
from exporter.swap import attribute, finish, hw_pair, keeping_all

from .modules import DCNv3


def _internimage(m: nn.Module, path: str) -> nn.Module:
    """InternImage's DCNv3 / DCNv3_pytorch -> exporter.ops.DCNv3."""
    dw = attribute(m, path, "dw_conv")
    if not (isinstance(dw, nn.Sequential) and len(dw) == 3 and isinstance(dw[0], nn.Conv2d)):
        raise DcnError(f"module '{path}' ({type(m).__name__}): dw_conv is {type(dw).__name__}, expected "
                       f"Sequential(depth-wise Conv2d, norm, activation)")
    norm = "BN" if any(isinstance(x, nn.BatchNorm2d) for x in dw[1].modules()) else "LN"
    act = {nn.GELU: "GELU", nn.ReLU: "ReLU", nn.SiLU: "SiLU"}.get(type(dw[2]), "GELU")

    def get(name: str) -> int:
        return hw_pair(attribute(m, path, name))[0]

    new = DCNv3(channels=get("channels"), kernel_size=get("kernel_size"), dw_kernel_size=dw[0].kernel_size[0],
                stride=get("stride"), pad=get("pad"), dilation=get("dilation"), group=get("group"),
                offset_scale=float(attribute(m, path, "offset_scale")), act_layer=act, norm_layer=norm,
                center_feature_scale=bool(getattr(m, "center_feature_scale", False)),
                remove_center=bool(getattr(m, "remove_center", 0)))
    new = finish(new, m, path)
    new.dw_conv = dw  # theirs, as it is (eps, in-place activations): plain PyTorch
    return new


# (module prefix, class name) -> converter; prefix "": defined in any module outside exporter
RULES: dict[tuple[str, str], Callable[[nn.Module, str], nn.Module]] = {
    ("", "DCNv3"): keeping_all(_internimage),
    ("", "DCNv3_pytorch"): keeping_all(_internimage),
}
