"""Swap rule: the DCNv4 package's ``DCNv4`` -> ours (:mod:`exporter.swap` applies ``RULES``), weights kept.

The DCNv4 package (OpenGVLab/DCNv4) is CUDA-only and has no ONNX export (OpenGVLab/DCNv4#62); its module
is vendored under many paths, so it is recognised by class name in any module (prefix ""), rebuilt from
its attributes, offset_mask's width checked against the packing the op reads, every parameter checked by
name and shape (exporter.swap: finish, keeping_all).
"""
from __future__ import annotations

from typing import Callable

from torch import nn

from dcn_base.errors import DcnError
from exporter.swap import attribute, finish, hw_pair, keeping_all

from .modules import DCNv4
from .spec import packed_channels


def _dcnv4_package(m: nn.Module, path: str) -> nn.Module:
    def get(name: str) -> int:
        return hw_pair(attribute(m, path, name))[0]

    group, k = get("group"), get("kernel_size")
    rc = int(getattr(m, "remove_center", 0))
    om = attribute(m, path, "offset_mask")
    want = packed_channels(group, (k, k), rc)
    if not isinstance(om, nn.Linear) or om.out_features != want:
        raise DcnError(f"module '{path}' ({type(m).__name__}): offset_mask has "
                       f"{getattr(om, 'out_features', type(om).__name__)} outputs, expected "
                       f"ceil(group*P*3 / 8)*8 = {want}")
    proj = getattr(m, "output_proj", None)
    new = DCNv4(channels=get("channels"), kernel_size=k, stride=get("stride"), pad=get("pad"),
                dilation=get("dilation"), group=group, offset_scale=float(attribute(m, path, "offset_scale")),
                dw_kernel_size=getattr(m, "dw_kernel_size", None),
                center_feature_scale=bool(getattr(m, "center_feature_scale", False)), remove_center=bool(rc),
                output_bias=proj is None or proj.bias is not None,
                without_pointwise=bool(getattr(m, "without_pointwise", False)))
    return finish(new, m, path)


# (module prefix, class name) -> converter; prefix "": defined in any module outside exporter
RULES: dict[tuple[str, str], Callable[[nn.Module, str], nn.Module]] = {
    ("", "DCNv4"): keeping_all(_dcnv4_package),
}
