"""The ONNX translation table: ``dcn::*`` and ``torchvision::deform_conv2d`` calls -> one ONNX node
each, attributes named and ordered by :mod:`exporter.contract`; the registry and the conversion
of a torch.export program with it (torch's dynamo ONNX exporter)."""
from __future__ import annotations

import functools
from typing import Any, Callable, Optional, Sequence

import numpy as np
import onnx
import torch

from . import schemas
from .contract import (DEFORM_CONV2D, DEFORM_PSROI_POOL, DEFORM_ROI_POOL, DOMAIN, DOMAIN_VERSION, FLOAT, INT,
                       INTS, OpSpec)
from .errors import DcnError
from .ops.multi_scale_deformable_attention import onnx as msda_onnx
from .trace import module_path_of_fx_node, quiet_torch


DEFORM_CONV_MODES = ("plugin", "onnx")

# torch ops the translation table handles (all others must be aten/prims or known to torch's registry)
TORCHVISION_DEFORM_CONV = "torchvision::deform_conv2d"


def _attr_value(kind: str, v: Any) -> Any:
    if kind == INTS:
        return [int(x) for x in v]
    if kind == INT:
        return int(v)
    if kind == FLOAT:
        return float(v)
    raise AssertionError(kind)


def contract_attrs(spec: OpSpec, values: Sequence[Any]) -> dict[str, Any]:
    """The torch op's attribute arguments (contract order) -> ONNX attributes by contract name."""
    return {a.name: _attr_value(a.kind, v) for a, v in zip(spec.attrs, values)}


def _static_dims(value, axes: Sequence[int]) -> Optional[list[int]]:
    shape = getattr(value, "shape", None)
    if shape is None:
        return None
    try:
        dims = [shape[a] for a in axes]
    except (IndexError, TypeError):
        return None
    return [int(d) for d in dims] if all(isinstance(d, int) for d in dims) else None


@functools.lru_cache(maxsize=None)
def translation_table(deform_conv: str = "plugin") -> dict[Any, Callable]:
    """torch op -> function emitting the ONNX node (used by torch's dynamo ONNX exporter)."""
    if deform_conv not in DEFORM_CONV_MODES:
        raise DcnError(f"deform_conv is {deform_conv!r}, expected one of {', '.join(DEFORM_CONV_MODES)}")
    schemas.register()
    from onnxscript import ir, values
    from onnxscript.onnx_opset import opset18 as op
    from onnxscript.onnx_opset import opset19 as op19

    dcn = values.Opset(DOMAIN, DOMAIN_VERSION)
    conv_node = getattr(dcn, DEFORM_CONV2D.op_type)
    pool_node = getattr(dcn, DEFORM_PSROI_POOL.op_type)

    def zeros_bias(weight, like):
        m = _static_dims(weight, [0])
        np_dtype = like.dtype.numpy()
        if m is not None:
            return op.Constant(value=ir.tensor(np.zeros(m, dtype=np_dtype)))
        return op.ConstantOfShape(op.Shape(weight, start=0, end=1), value=ir.tensor(np.zeros(1, dtype=np_dtype)))

    def float32_rois(rois, data):
        """Contract: rois always float32 (float64 only beside float64 data, for references)."""
        if rois.dtype in (None, ir.DataType.FLOAT) or (rois.dtype == ir.DataType.DOUBLE and
                                                       data.dtype == ir.DataType.DOUBLE):
            return rois
        return op.Cast(rois, to=ir.DataType.FLOAT)

    def like(value, ref):
        """``value`` in ``ref``'s element type: e.g. a float32 zero bias a float16 program computes
        with (a .pt2 / TorchScript graph fixes the constant's dtype when it is traced)."""
        if value is None or value.dtype is None or ref.dtype is None or value.dtype == ref.dtype:
            return value
        return op.Cast(value, to=ref.dtype)

    def conv(input, weight, offset, bias, mask, attr_values):
        attrs = contract_attrs(DEFORM_CONV2D, attr_values)
        weight, offset, bias, mask = (like(v, input) for v in (weight, offset, bias, mask))
        ks = _static_dims(weight, [2, 3])
        if ks is not None:
            attrs["kernel_shape"] = ks
        if deform_conv == "onnx":
            return op19.DeformConv(input, weight, offset, bias, mask, **attrs)
        if mask is not None and bias is None:  # contract: with a mask and no bias, B is zeros
            bias = zeros_bias(weight, input)
        inputs = [input, weight, offset] + ([bias] if bias is not None else []) + ([mask] if mask is not None else [])
        return conv_node(*inputs, **attrs)

    # Parameter names are the torch ops' schema argument names (FX may pass keywords).
    def dcn_deform_conv2d(input, weight, offset, bias=None, mask=None, stride=(1, 1), pads=(0, 0, 0, 0),
                          dilation=(1, 1), group=1, offset_group=1):
        return conv(input, weight, offset, bias, mask, (stride, pads, dilation, group, offset_group))

    def torchvision_deform_conv2d(input, weight, offset, mask, bias, stride_h, stride_w, pad_h, pad_w,
                                  dilation_h, dilation_w, groups, offset_groups, use_mask):
        return conv(input, weight, offset, bias, mask if use_mask else None,
                    ((stride_h, stride_w), (pad_h, pad_w, pad_h, pad_w), (dilation_h, dilation_w), groups,
                     offset_groups))

    def dcn_deform_psroi_pool(data, rois, trans=None, spatial_scale=1.0, output_dim=1, group_size=1,
                              pooled_size=1, part_size=0, sample_per_part=4, trans_std=0.0, no_trans=0):
        attrs = contract_attrs(DEFORM_PSROI_POOL, (spatial_scale, output_dim, group_size, pooled_size, part_size,
                                                   sample_per_part, trans_std, no_trans))
        if trans is None:
            attrs["no_trans"] = 1
        trans, rois = like(trans, data), float32_rois(rois, data)
        inputs = [data, rois] + ([trans] if trans is not None and not attrs["no_trans"] else [])
        return pool_node(*inputs, **attrs)

    roi_pool_node = getattr(dcn, DEFORM_ROI_POOL.op_type)

    def dcn_deform_roi_pool(data, rois, offset=None, pooled_height=1, pooled_width=1, spatial_scale=1.0,
                            sampling_ratio=0, gamma=0.1):
        attrs = contract_attrs(DEFORM_ROI_POOL, (pooled_height, pooled_width, spatial_scale, sampling_ratio, gamma))
        offset, rois = like(offset, data), float32_rois(rois, data)
        return roi_pool_node(*([data, rois] + ([offset] if offset is not None else [])), **attrs)

    table: dict[Any, Callable] = {
        torch.ops.dcn.deform_conv2d.default: dcn_deform_conv2d,
        torch.ops.dcn.deform_psroi_pool.default: dcn_deform_psroi_pool,
        torch.ops.dcn.deform_roi_pool.default: dcn_deform_roi_pool,
        torch.ops.dcn.multi_scale_deformable_attention.default: msda_onnx.translation(op, ir, dcn),
    }
    tv = _torchvision_op()
    if tv is not None:
        table[tv] = torchvision_deform_conv2d
    return table


def _torchvision_op():
    try:
        import torchvision  # noqa: F401

        return torch.ops.torchvision.deform_conv2d.default
    except Exception:
        return None


@functools.lru_cache(maxsize=None)
def onnx_registry(opset: int, deform_conv: str):
    """torch's ONNX registry with our translations, built once per (opset, mode): building it costs seconds.

    Uses torch.onnx's internal registry; None when that moved (then the public
    ``torch.onnx.export(custom_translation_table=...)`` path is used).
    """
    try:
        from torch.onnx._internal.exporter import _constants, _registration
    except Exception:
        return None
    reg = _registration.ONNXRegistry.from_torchlib(opset_version=max(opset, _constants.TORCHLIB_OPSET))
    for target, fn in translation_table(deform_conv).items():
        reg.register_op(target, fn, is_complex=False)
    return reg


def to_onnx(ep, opset: int, deform_conv: str, input_names, output_names) -> onnx.ModelProto:
    registry = onnx_registry(opset, deform_conv)
    core = None
    if registry is not None:
        try:
            from torch.onnx._internal.exporter import _core as core
        except Exception:
            core = None
    with quiet_torch():
        if core is not None:
            program = core.export(ep, registry=registry, opset_version=opset, input_names=input_names,
                                  output_names=output_names, verbose=False, optimize=True)
        else:
            program = torch.onnx.export(ep, (), dynamo=True, custom_translation_table=translation_table(deform_conv),
                                        opset_version=opset, input_names=input_names,
                                        output_names=output_names, verbose=False, optimize=True)
    return program.model_proto


def scan_ops(ep: torch.export.ExportedProgram, deform_conv: str, opset: int, strip: Optional[str]) -> None:
    """Every operator must be aten/prims, one of ours, or translated by torch's ONNX registry."""
    table = translation_table(deform_conv)
    registry = onnx_registry(opset, deform_conv)
    for node in ep.graph.nodes:
        if node.op != "call_function" or not isinstance(node.target, torch._ops.OpOverload):
            continue
        target = node.target
        if target.namespace in ("aten", "prims") or target in table:
            continue
        if registry is not None and registry.is_registered(target):
            continue
        path, cls = module_path_of_fx_node(node, strip)
        where = f" in module '{path}' ({cls})" if path else ""
        name = target.name().replace(".default", "")
        raise DcnError(
            f"operator {name}{where} has no ONNX translation; dcn-export maps "
            f"dcn::deform_conv2d, dcn::deform_psroi_pool, dcn::deform_roi_pool, "
            f"dcn::multi_scale_deformable_attention and {TORCHVISION_DEFORM_CONV} "
            f"besides the standard ops"
        )
