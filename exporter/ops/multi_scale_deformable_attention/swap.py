"""Swap rules: third-party multi-scale deformable attention modules -> ours, weights kept.

* mmcv ``MultiScaleDeformableAttention`` (mmdet's Deformable DETR / DINO / Mask2Former layers): its
  CPU path splits value by a loop over ``spatial_shapes``' values, which torch.export cannot trace
  (data-dependent), and its CUDA path is an extension Function. Ours has the same constructor and
  parameters (modules.MultiScaleDeformableAttention).
* Hugging Face transformers' core ``MultiScaleDeformableAttention`` (DeformableDetr, RT-DETR: the
  parameter-free module their attention layers call as ``self.attn``) -> :class:`MsdaCore`.
* RT-DETRv2's ``RTDetrV2MultiscaleDeformableAttention`` (calls a function, not a core module) ->
  :class:`RTDetrV2Attention` with its parameters; only the "default" method with the same number of
  points on every level (its ``n_points_list``), else a one-line error.

``RULES`` maps (library module prefix, class name) -> converter(module, path) (:mod:`exporter.swap`
applies them).
"""
from __future__ import annotations

from typing import Callable

from torch import nn

from dcn_base.errors import DcnError
from exporter.swap import finish, qualname

from .modules import MsdaCore, MultiScaleDeformableAttention, RTDetrV2Attention


def mmcv_msda(m: nn.Module, path: str) -> nn.Module:
    if getattr(m, "norm_cfg", None) is not None:
        raise DcnError(f"module '{path}' ({qualname(type(m))}) has norm_cfg {m.norm_cfg!r}, which mmcv's forward ignores "
                       f"too; expected None")
    new = MultiScaleDeformableAttention(
        embed_dims=int(m.embed_dims), num_heads=int(m.num_heads), num_levels=int(m.num_levels),
        num_points=int(m.num_points), im2col_step=int(m.im2col_step), dropout=float(m.dropout.p),
        batch_first=bool(m.batch_first), value_proj_ratio=m.value_proj.out_features / m.value_proj.in_features)
    return finish(new, m, path)


def hf_core(m: nn.Module, path: str) -> nn.Module:
    new = MsdaCore()
    new.train(m.training)
    return new


def hf_rt_detr_v2(m: nn.Module, path: str) -> nn.Module:
    method = getattr(m, "method", "default")
    points = list(getattr(m, "n_points_list", []))
    if method != "default":
        raise DcnError(f"module '{path}' ({qualname(type(m))}): decoder_method is {method!r}, expected 'default' "
                       f"(bilinear sampling; 'discrete' rounds to the nearest pixel, not this op)")
    if points != [int(m.n_points)] * int(m.n_levels):
        raise DcnError(f"module '{path}' ({qualname(type(m))}): n_points_list is {points}, expected the same number of "
                       f"points on every level ({[int(m.n_points)] * int(m.n_levels)})")
    new = RTDetrV2Attention(int(m.d_model), int(m.n_heads), int(m.n_levels), int(m.n_points), float(m.offset_scale))
    return finish(new, m, path)


RULES: dict[tuple[str, str], Callable[[nn.Module, str], nn.Module]] = {
    ("mmcv.ops", "MultiScaleDeformableAttention"): mmcv_msda,
    ("transformers.models", "MultiScaleDeformableAttention"): hf_core,
    ("transformers.models", "RTDetrV2MultiscaleDeformableAttention"): hf_rt_detr_v2,
}
