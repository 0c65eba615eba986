"""PyTorch deformable models -> ONNX with ``dcn::DeformConv2d`` / ``DeformPSROIPool`` / ``DeformRoIPool`` nodes.

Pipeline (``export``):

1. Prepare: TorchScript -> torch.export program (``TS2EPConverter``); a copy of the model
   in eval mode with third-party deformable modules swapped for ours (:mod:`exporter.swap`);
   float16 copy for ``fp16``.
   The swap comes first, before anything runs, so a module that cannot be exported is named
   in one line on every machine (even where the original's own kernels are missing).
2. Run PyTorch once on the example inputs (reference outputs; errors name the module): the
   original model, or its swapped copy where the original cannot run here (said in the log).
3. ``torch.export.export(strict=False)`` with the requested dynamic axes, then a scan for
   operators without an ONNX translation (named with their module path).
4. torch's dynamo ONNX exporter with a translation table that maps
   ``dcn::deform_conv2d``, ``dcn::deform_psroi_pool`` and ``torchvision::deform_conv2d``
   to one ONNX node each, attributes named and ordered by :mod:`exporter.contract`.
5. Post-process: dcn nodes named by module path, zero-bias input of torchvision's DCNv1
   dropped, dynamic axes named, IR version the installed ONNX Runtime accepts, shape
   inference with our schemas, ``onnx.checker`` (full check).
6. Verify: run the ONNX model (:mod:`exporter.verify`) and compare with PyTorch.
7. Write atomically (temp file + rename); nothing is left behind on failure.
"""
from __future__ import annotations

import ast
import contextlib
import logging
import sys
import types
import copy
import functools
import inspect
import io
import os
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np
import onnx
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from . import schemas
from .contract import (DEFORM_CONV2D, DEFORM_PSROI_POOL, DEFORM_ROI_POOL, DOMAIN, DOMAIN_VERSION, FLOAT,
                       FORBIDDEN_OP_TYPES, INT, INTS, OPS, STANDARD_DEFORM_CONV_OPSET, OpSpec, is_dcn_node)
from .atomic import AtomicGroup
from .cli_common import Stages
from .errors import DcnError, describe
from .swap import Swap, match, swap_modules

DEFAULT_OPSET = 19  # the first with the standard DeformConv: one default for both --deform-conv modes
MIN_OPSET = 18  # torch's ONNX function library is written at opset 18
DEFORM_CONV_MODES = ("plugin", "onnx")
MAX_PROTO_BYTES = 2**31 - 1

# torch ops the translation table handles (all others must be aten/prims or known to torch's registry)
TORCHVISION_DEFORM_CONV = "torchvision::deform_conv2d"


class CheckError(DcnError):
    """The exported model's outputs differ from PyTorch's beyond the tolerance (``check=True``)."""

    exit_code = 1


@dataclass
class ExportResult:
    path: Path
    input_names: list[str]
    output_names: list[str]
    dcn_nodes: dict[str, str]  # node name -> op type, graph order (standard DeformConv in "onnx" mode)
    opset: int
    ir_version: int
    deform_conv: str
    fp16: bool
    fp16_io: bool
    export_seconds: float  # torch.export + ONNX translation + post-processing + checker
    total_seconds: float  # everything, verification and writing included
    swaps: list[Swap] = field(default_factory=list)
    check: Any = None  # verify.CheckReport when verified
    io_dir: Optional[Path] = None
    model: Optional[onnx.ModelProto] = field(default=None, repr=False)
    stage_seconds: dict[str, float] = field(default_factory=dict)  # wall time per stage (see export's stages)

    def summary(self, seconds: Optional[float] = None) -> str:
        """One line; ``seconds``: the wall time to report (default: this export call's, total_seconds)."""
        counts: dict[str, int] = {}
        for t in self.dcn_nodes.values():
            counts[t] = counts.get(t, 0) + 1
        nodes = ", ".join(f"{n} {t}" for t, n in counts.items()) or "no deformable nodes"
        prec = "float16" + (" (float16 I/O)" if self.fp16_io else " (float32 I/O)") if self.fp16 else "float32"
        checked = f"; checked on {self.check.runtime}" if self.check is not None else ""
        return (f"wrote {self.path} ({nodes}; opset {self.opset}, IR {self.ir_version}, {prec}) "
                f"in {self.total_seconds if seconds is None else seconds:.1f} s{checked}")


# --------------------------------------------------------------------------- translation table
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


# --------------------------------------------------------------------------- torch.export helpers
class ModuleTracker:
    """Forward hooks that keep the stack of running module paths, so errors can name one."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.stack: list[str] = []
        self._handles: list[Any] = []

    def __enter__(self) -> "ModuleTracker":
        self.stack = []
        if isinstance(self.model, torch.jit.ScriptModule):
            return self  # TorchScript takes no hooks: errors then name no module
        for path, m in self.model.named_modules():
            if not path:
                continue
            self._handles.append(m.register_forward_pre_hook(self._push(path)))
            self._handles.append(m.register_forward_hook(self._pop(path)))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def _push(self, path: str):
        def hook(module, args):
            self.stack.append(path)

        return hook

    def _pop(self, path: str):
        def hook(module, args, output):
            if self.stack and self.stack[-1] == path:
                self.stack.pop()

        return hook

    def where(self) -> str:
        """`` in module 'a.b' (pkg.Class)`` for the innermost running module, or ''."""
        if not self.stack:
            return ""
        path = self.stack[-1]
        try:
            cls = type(self.model.get_submodule(path))
            return f" in module '{path}' ({cls.__module__}.{cls.__qualname__})"
        except AttributeError:
            return f" in module '{path}'"




_USER_FRAME = re.compile(r'File "([^"]+)", line (\d+), in [^\n]*\n\s*([^\n]+)')


def _user_line(exc: BaseException) -> str:
    """`` at FILE:LINE (`code`)``: the user's source line torch names in its message, else the
    innermost traceback frame outside torch and this package; '' when there is none."""
    def users(path: str) -> bool:
        return "site-packages" not in path and f"{os.sep}torch{os.sep}" not in path and \
            os.path.dirname(os.path.abspath(path)) != os.path.dirname(os.path.abspath(__file__))

    found = [(f, int(n), code.strip()) for f, n, code in _USER_FRAME.findall(str(exc)) if users(f)]
    if not found:
        import traceback as _tb

        found = [(fr.filename, fr.lineno or 0, (fr.line or "").strip())
                 for fr in _tb.extract_tb(exc.__traceback__) if users(fr.filename)]
    if not found:
        return ""
    f, n, code = found[-1]
    return f" at {f}:{n}" + (f" (`{code}`)" if code else "")


def _root_cause(exc: BaseException) -> BaseException:
    seen = set()
    while exc.__cause__ is not None and id(exc) not in seen:
        seen.add(id(exc))
        exc = exc.__cause__
    return exc


def _flatten_outputs(out: Any) -> list[torch.Tensor]:
    leaves, _ = torch.utils._pytree.tree_flatten(out)
    tensors = [t for t in leaves if isinstance(t, torch.Tensor)]
    if len(tensors) != len(leaves):
        bad = next(type(t).__name__ for t in leaves if not isinstance(t, torch.Tensor))
        raise DcnError(f"model returns a {bad} among its outputs, expected tensors only")
    if not tensors:
        raise DcnError("model returns no tensor")
    return tensors


def _forward_param_names(model: nn.Module, n: int) -> list[str]:
    schema = getattr(getattr(model, "forward", None), "schema", None)  # TorchScript method
    if schema is not None:
        names = [a.name for a in schema.arguments[1:]][:n]
        return names + [f"input_{i}" for i in range(len(names), n)]
    try:
        params = [p for p in inspect.signature(model.forward).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    names = [p.name for p in params[:n]]
    return names + [f"input_{i}" for i in range(len(names), n)]


class _Float16(nn.Module):
    """float16 weights and compute; float32 I/O unless ``io_fp16``.

    Inputs at the positions ``keep_float32`` (RoIs: coordinates are never half) stay float32.
    forward takes ``*args``: torch.export then sees one tuple argument, so dynamic shapes are
    given for it as one tuple (``_trace``).
    """

    def __init__(self, model: nn.Module, io_fp16: bool, keep_float32: Sequence[int] = ()) -> None:
        from .dtype_mode import cast_constants

        super().__init__()
        self.model = cast_constants(model.half(), torch.float16)
        self.io_fp16 = io_fp16
        self.keep_float32 = frozenset(keep_float32)

    def forward(self, *args):
        args = tuple(a.half() if isinstance(a, torch.Tensor) and a.is_floating_point() and i not in self.keep_float32
                     else a for i, a in enumerate(args))
        out = self.model(*args)
        if self.io_fp16:
            return out
        return torch.utils._pytree.tree_map(
            lambda t: t.float() if isinstance(t, torch.Tensor) and t.dtype == torch.float16 else t, out
        )


_FP16_PREFIX = "model"


def _module_path_of_fx_node(node: torch.fx.Node, strip: Optional[str]) -> tuple[str, str]:
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return "", ""
    path, cls = list(stack.values())[-1]
    path = _strip_prefix(str(path), strip)
    cls = cls if isinstance(cls, str) else f"{cls.__module__}.{cls.__qualname__}"
    return path, cls


def _strip_prefix(path: str, strip: Optional[str]) -> str:
    if strip:
        if path == strip:
            return ""
        if path.startswith(strip + "."):
            return path[len(strip) + 1:]
    return path


def _scan_ops(ep: torch.export.ExportedProgram, deform_conv: str, opset: int, strip: Optional[str]) -> None:
    """Every operator must be aten/prims, one of ours, or translated by torch's ONNX registry."""
    table = translation_table(deform_conv)
    registry = _registry(opset, deform_conv)
    for node in ep.graph.nodes:
        if node.op != "call_function" or not isinstance(node.target, torch._ops.OpOverload):
            continue
        target = node.target
        if target.namespace in ("aten", "prims") or target in table:
            continue
        if registry is not None and registry.is_registered(target):
            continue
        path, cls = _module_path_of_fx_node(node, strip)
        where = f" in module '{path}' ({cls})" if path else ""
        name = target.name().replace(".default", "")
        raise DcnError(
            f"operator {name}{where} has no ONNX translation; dcn-export maps "
            f"dcn::deform_conv2d, dcn::deform_psroi_pool, dcn::deform_roi_pool and {TORCHVISION_DEFORM_CONV} "
            f"besides the standard ops"
        )


@functools.lru_cache(maxsize=None)
def _registry(opset: int, deform_conv: str):
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


def _to_onnx(ep, opset: int, deform_conv: str, input_names, output_names) -> onnx.ModelProto:
    registry = _registry(opset, deform_conv)
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


# --------------------------------------------------------------------------- ONNX post-processing
@functools.lru_cache(maxsize=None)
def max_ir_version_for_onnxruntime() -> Optional[int]:
    """The highest IR version the installed ONNX Runtime loads (probed once), or None without it."""
    try:
        import onnxruntime as ort
    except Exception:
        return None
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    opts = ort.SessionOptions()
    opts.log_severity_level = 4
    for ir_version in range(onnx.IR_VERSION, 6, -1):
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=ir_version)
        try:
            ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
            return ir_version
        except Exception:
            continue
    return None


_POOL_OPS = (DEFORM_PSROI_POOL.op_type, DEFORM_ROI_POOL.op_type)


def _meta(node: onnx.NodeProto) -> dict[str, str]:
    return {p.key: p.value for p in node.metadata_props}


def _name_dcn_nodes(model: onnx.ModelProto, strip: Optional[str]) -> dict[str, str]:
    """Name each dcn node by its PyTorch module path (``backbone.layer3.0.conv2``).

    Several nodes from one module (e.g. a pooling pack's two calls) get ``path/<fx name>``.
    Without module scope (TorchScript), the weight's parameter name gives the path.
    """
    graph = model.graph
    dcn = [n for n in graph.node if is_dcn_node(n)]
    proposals = []
    for n in dcn:
        scopes: list[str] = []
        raw = _meta(n).get("pkg.torch.onnx.name_scopes")
        if raw:
            try:
                scopes = [str(s) for s in ast.literal_eval(raw)]
            except (ValueError, SyntaxError):
                scopes = []
        fx_name = scopes[-1] if scopes else n.name
        path = _strip_prefix(scopes[-2], strip) if len(scopes) >= 2 else ""
        if not path and n.op_type not in _POOL_OPS and len(n.input) > 1 and n.input[1].endswith(".weight"):
            path = n.input[1][: -len(".weight")]
        proposals.append((n, path, fx_name))
    per_path: dict[str, int] = {}
    for _, path, _ in proposals:
        per_path[path] = per_path.get(path, 0) + 1
    taken = {n.name for n in graph.node if not is_dcn_node(n)}
    names: dict[str, str] = {}
    for n, path, fx_name in proposals:
        name = path if path and per_path[path] == 1 else (f"{path}/{fx_name}" if path else fx_name)
        base, i = name, 1
        while name in taken:
            name = f"{base}_{i}"
            i += 1
        taken.add(name)
        n.name = name
        names[name] = n.op_type
    return names


def _strip_value_prefix(model: onnx.ModelProto, prefix: str) -> None:
    """Initializer names without the float16 wrapper's prefix (``model.backbone.0.weight`` -> ``backbone.0.weight``)."""
    g = model.graph
    taken = {t.name for t in g.initializer} | {o for n in g.node for o in n.output} | {i.name for i in g.input}
    rename = {}
    for t in g.initializer:
        if t.name.startswith(prefix):
            new = t.name[len(prefix):]
            if new and new not in taken:
                rename[t.name] = new
                taken.add(new)
    if not rename:
        return
    for t in g.initializer:
        t.name = rename.get(t.name, t.name)
    for n in g.node:
        for i, name in enumerate(n.input):
            if name in rename:
                n.input[i] = rename[name]
    for vi in g.value_info:
        vi.name = rename.get(vi.name, vi.name)


def _constant_value(model: onnx.ModelProto, name: str) -> Optional[np.ndarray]:
    """The value of an initializer or Constant node output ``name``, or None."""
    from onnx import numpy_helper

    for t in model.graph.initializer:
        if t.name == name:
            return None if t.data_location == onnx.TensorProto.EXTERNAL else numpy_helper.to_array(t)
    for n in model.graph.node:
        if n.op_type == "Constant" and n.domain in ("", "ai.onnx") and list(n.output) == [name]:
            for a in n.attribute:
                if a.name == "value":
                    return numpy_helper.to_array(a.t)
    return None


def _drop_zero_bias_of_v1(model: onnx.ModelProto) -> None:
    """torchvision passes zeros for a missing bias; a DCNv1 node (no mask) then has 3 inputs."""
    dropped = False
    for n in model.graph.node:
        if not is_dcn_node(n) or n.op_type in _POOL_OPS or len(n.input) != 4 or not n.input[3]:
            continue
        b = _constant_value(model, n.input[3])
        if b is not None and not np.any(b):
            del n.input[3]
            dropped = True
    if dropped:
        used = {i for n in model.graph.node for i in n.input} | {o.name for o in model.graph.output}
        keep = [t for t in model.graph.initializer if t.name in used]
        del model.graph.initializer[:]
        model.graph.initializer.extend(keep)
        nodes = [n for n in model.graph.node
                 if not (n.op_type == "Constant" and len(n.output) == 1 and n.output[0] not in used)]
        del model.graph.node[:]
        model.graph.node.extend(nodes)


def _rename_dims(model: onnx.ModelProto, mapping: Mapping[str, str]) -> None:
    if not mapping:
        return
    pattern = re.compile(r"\b(" + "|".join(re.escape(k) for k in sorted(mapping, key=len, reverse=True)) + r")\b")
    g = model.graph
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        if not vi.type.HasField("tensor_type"):
            continue
        for d in vi.type.tensor_type.shape.dim:
            if d.HasField("dim_param"):
                d.dim_param = pattern.sub(lambda m: mapping[m.group(1)], d.dim_param)


def _ensure_value_info(model: onnx.ModelProto) -> onnx.ModelProto:
    """Shape inference (strict, with our schemas); every dcn output must then have a full-rank shape."""
    schemas.register()
    try:
        inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except Exception as e:
        raise DcnError(f"ONNX shape inference rejected the exported graph: {describe(e)}") from e
    known = {vi.name: vi for vi in list(inferred.graph.value_info) + list(inferred.graph.output)}
    for n in inferred.graph.node:
        if not is_dcn_node(n):
            continue
        vi = known.get(n.output[0])
        if vi is None or not vi.type.tensor_type.HasField("shape") or len(vi.type.tensor_type.shape.dim) != 4:
            raise DcnError(f"{n.op_type} '{n.name}': no 4-D output shape after shape inference")
    return inferred


def _check_contract(model: onnx.ModelProto) -> None:
    """Invariants of our own output (a violation is a bug here, not a user error)."""
    for n in model.graph.node:
        if n.domain == DOMAIN and n.op_type in FORBIDDEN_OP_TYPES:
            raise AssertionError(f"node '{n.name}': op type {n.op_type} in domain {DOMAIN} is forbidden")
        if n.domain == DOMAIN:
            spec = OPS.get(n.op_type, DEFORM_PSROI_POOL)
            unknown = [a.name for a in n.attribute if a.name not in spec.attr_names]
            if unknown:
                raise AssertionError(f"{n.op_type} '{n.name}': attributes {unknown} not in the contract")
    imports = {o.domain: o.version for o in model.opset_import}
    if any(n.domain == DOMAIN for n in model.graph.node) and imports.get(DOMAIN) != DOMAIN_VERSION:
        raise AssertionError(f"opset import {DOMAIN} is {imports.get(DOMAIN)}, expected {DOMAIN_VERSION}")


def check_output_path(path: Path) -> None:
    """Fail before any work when ``path`` cannot be written."""
    if path.exists() and path.is_dir():
        raise DcnError(f"output '{path}' is a directory, expected a file path")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        raise DcnError(f"output directory '{parent}' does not exist")
    if not parent.is_dir():
        raise DcnError(f"output directory '{parent}' is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise DcnError(f"output directory '{parent}' is not writable")
    if path.exists() and not os.access(path, os.W_OK):
        raise DcnError(f"output file '{path}' is not writable")


# --------------------------------------------------------------------------- the API
def _as_inputs(example_inputs: Any) -> tuple[torch.Tensor, ...]:
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,)
    if isinstance(example_inputs, (list, tuple)):
        bad = [type(x).__name__ for x in example_inputs if not isinstance(x, torch.Tensor)]
        if bad:
            raise DcnError(f"example inputs must be tensors, got {', '.join(bad)}")
        return tuple(example_inputs)
    raise DcnError(f"example inputs must be a tensor or a tuple of tensors, got {type(example_inputs).__name__}")


def _normalize_dynamic(dynamic: Optional[Mapping[str, Any]], names: Sequence[str],
                       inputs: Sequence[torch.Tensor]) -> dict[int, dict[int, str]]:
    """{input name: {axis: label}} (or a list of axes) -> {input index: {axis: label}}."""
    out: dict[int, dict[int, str]] = {}
    for name, axes in (dynamic or {}).items():
        if name not in names:
            raise DcnError(f"dynamic axes for input {name!r}: no such input; inputs are {', '.join(names)}")
        i = list(names).index(name)
        rank = inputs[i].dim()
        if not isinstance(axes, Mapping):
            axes = {int(a): f"{name}_dim{int(a)}" for a in axes}
        for axis, label in axes.items():
            axis = int(axis)
            if not -rank <= axis < rank:
                raise DcnError(f"dynamic axis {axis} of input {name!r}: out of range for rank {rank}")
            if not isinstance(label, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", label):
                raise DcnError(f"dynamic axis {axis} of input {name!r}: label {label!r} is not an identifier")
            out.setdefault(i, {})[axis % rank] = label
    return out


def _prepare_model(model: Any) -> Any:
    """An ExportedProgram becomes its module; TorchScript stays (converted after the reference run)."""
    from . import ops  # noqa: F401  (custom ops registered)

    if isinstance(model, torch.export.ExportedProgram):
        return model.module(check_guards=False)
    if isinstance(model, (torch.jit.ScriptModule, torch.jit.ScriptFunction)):
        return model
    if not isinstance(model, nn.Module):
        raise DcnError(f"model is a {type(model).__name__}, expected an nn.Module, TorchScript or ExportedProgram")
    return model


def _from_torchscript(model: Any, inputs: tuple[torch.Tensor, ...]) -> nn.Module:
    """TorchScript -> torch.export program (TS2EPConverter) -> its module, which torch.export re-traces."""
    if not isinstance(model, (torch.jit.ScriptModule, torch.jit.ScriptFunction)):
        return model
    from torch._export.converter import TS2EPConverter

    try:
        with quiet_torch():
            ep = TS2EPConverter(model, inputs).convert()
    except Exception as e:
        # Scripted code (e.g. torchvision's DeformConv2d: weight.shape[-2:]) slices lists the converter
        # cannot translate; frozen, those shapes are constants and fold away.
        try:
            with quiet_torch():
                frozen = torch.jit.freeze(model.eval()) if isinstance(model, torch.jit.ScriptModule) else None
                if frozen is None:
                    raise e
                ep = TS2EPConverter(frozen, inputs).convert()
        except Exception:
            raise DcnError(
                f"cannot convert the TorchScript model to a torch.export program{_script_where(model)}: "
                f"{describe(e)}; export it from torch.jit.trace, a torch.export program (.pt2) or a state dict "
                f"with --factory instead"
            ) from e
    return ep.module(check_guards=False)


def _script_where(model: Any) -> str:
    """`` (module 'dcn', torchvision.ops.deform_conv.DeformConv2d: .../deform_conv.py line 79)``: where the
    scripted code slices a list (what TS2EPConverter cannot translate); the module is the submodule whose
    class is defined in that file. '' when not found."""
    try:
        where = None
        for node in model.inlined_graph.nodes():
            if node.kind() == "aten::slice" and node.inputsAt(0).type().kind() == "ListType":
                m = re.search(r'File "([^"]+)", line (\d+)', node.sourceRange())
                if m:
                    where = (m.group(1), m.group(2))
                    break
        if where is None:
            return ""
        path, line = where
        short = "/".join(Path(path).parts[-3:])
        for name, sub in model.named_modules():
            qual = re.sub(r"\.___torch_mangle_\d+", "", sub._c.qualified_name.replace("__torch__.", ""))
            mod_file = qual.rsplit(".", 1)[0].replace(".", "/") + ".py"
            if path.endswith(mod_file):
                return f" (module '{name or '<top>'}', {qual}: {short} line {line})"
        return f" ({short} line {line})"
    except Exception:
        return ""


def _set_training(module: nn.Module, mode: bool) -> None:
    """``module.train(mode)``; a torch.export program's module keeps its exported mode (it refuses train/eval)."""
    try:
        module.train(mode)
    except NotImplementedError:
        pass


@contextlib.contextmanager
def quiet_torch():
    """Silence torch's warnings and export logs (they would drown the one-line messages)."""
    loggers = [logging.getLogger(n) for n in ("torch._export", "torch.export", "torch.fx.experimental.symbolic_shapes",
                                              "torch._dynamo", "torch.onnx")]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, lv in zip(loggers, levels):
                lg.setLevel(lv)


def _shape_str(t: torch.Tensor) -> str:
    return "x".join(str(d) for d in t.shape) + f" {str(t.dtype).replace('torch.', '')}"


def export(
    model: Any,
    example_inputs: Any,
    path: Union[str, os.PathLike],
    *,
    input_names: Optional[Sequence[str]] = None,
    output_names: Optional[Sequence[str]] = None,
    dynamic: Optional[Mapping[str, Any]] = None,
    opset: int = DEFAULT_OPSET,
    deform_conv: str = "plugin",
    fp16: bool = False,
    fp16_io: bool = False,
    save_io: Union[str, os.PathLike, None] = None,
    save_io_format: str = "json",
    check: bool = False,
    verify: bool = True,
    runtime: str = "auto",
    log: Optional[Callable[[str], None]] = None,
    stages: Any = None,
    on_check: Optional[Callable[[Any], None]] = None,
) -> ExportResult:
    """Export ``model`` to ONNX at ``path`` with ``dcn`` nodes; see the module doc.

    model: nn.Module (ours, torchvision's, mmcv / detectron2 modules are swapped), a
        TorchScript module or a torch.export ExportedProgram.
    example_inputs: a tensor or tuple of tensors, positional forward arguments.
    input_names / output_names: ONNX names (default: forward's parameter names; output / output_i).
    dynamic: {input name: {axis: label}} (or {input name: [axes]}), e.g.
        ``{"images": {0: "batch", 2: "height", 3: "width"}}``.
    opset: ONNX opset of the default domain (``dcn`` is always version 1).
    deform_conv: "plugin" (``dcn::DeformConv2d``) or "onnx" (standard ``DeformConv``, opset >= 19).
    fp16: float16 weights and compute; I/O stays float32 unless ``fp16_io`` (which implies fp16).
    save_io: directory for Polygraphy ``inputs.json`` / ``outputs.json`` (runner "pytorch"),
        or ``inputs.npz`` / ``outputs.npz`` with ``save_io_format="npz"``.
    verify: run the ONNX model and compare with PyTorch (result in ``.check``);
    check: raise :class:`CheckError` (exit code 1, nothing written) when that comparison fails.
    runtime: "auto" or "reference" (force the ONNX reference evaluator for the check).
    log: called with progress lines (swaps, the check's summary).
    stages: an ``exporter.cli_common.Stages`` timing the steps (and showing progress); times in
        ``.stage_seconds`` either way.
    on_check: called with the check's report (instead of logging its one-line summary).

    Raises :class:`DcnError` (one line, naming module / input / attribute) for anything the
    user can fix; nothing is written then.
    """
    t_start = time.perf_counter()
    say = log or (lambda s: None)
    st = stages if stages is not None else Stages()
    out_path = Path(path)
    opset = _validate_options(deform_conv, runtime, opset)
    fp16 = fp16 or fp16_io  # float16 I/O is a float16 model's option
    check_output_path(out_path)
    io_dir = Path(save_io) if save_io is not None else None
    if io_dir is not None and io_dir.exists() and not io_dir.is_dir():
        raise DcnError(f"--save-io '{io_dir}' exists and is not a directory")
    if save_io_format not in ("json", "npz"):
        raise DcnError(f"--io-format {save_io_format!r}: expected json or npz")
    verify = verify or check

    inputs = _as_inputs(example_inputs)
    from .program_dims import dynamic_axes_of, merge_dynamic

    program_dyn = dynamic_axes_of(model)  # a torch.export program's own dynamic dimensions
    module = _prepare_model(model)
    names = list(input_names) if input_names is not None else _forward_param_names(module, len(inputs))
    if len(names) != len(inputs) or len(set(names)) != len(names):
        raise DcnError(f"input names {names}: expected {len(inputs)} distinct names, one per example input")
    dyn = _normalize_dynamic(merge_dynamic(program_dyn, dynamic, names), names, inputs)
    # RoIs stay float32 in every FP16 mode (contract: coordinates are never half)
    keep32 = _rois_positions(module, inputs, names) if fp16 else []
    onnx_inputs = tuple(t.half() if fp16_io and t.is_floating_point() and i not in keep32 else t
                        for i, t in enumerate(inputs))
    # PyTorch sees the values the ONNX model gets (float16-rounded for float16 I/O)
    ref_inputs = tuple(t.float() if fp16_io and t.is_floating_point() else t for t in onnx_inputs)

    # Swap first: a module that cannot be exported is named (one line) before anything runs.
    swapped, swaps = _swap_copy(module, say)
    st.start("pytorch run")
    (reference, keys), ref_module = _reference_run(module, swapped, swaps, ref_inputs, names, say)
    outs = _output_names(output_names if output_names is not None else keys, len(reference), names)
    truth, truth_name = [t.detach().cpu().numpy() for t in reference], "PyTorch float32"
    own = None  # PyTorch's own outputs in the target's precision, judged against the same truth
    if verify or io_dir is not None:  # the truth: PyTorch in float64 where the model runs in it
        ref64 = _float64_reference(ref_module, ref_inputs, len(reference))
        if ref64 is not None:
            truth, truth_name = ref64, "PyTorch float64"
            own = _float16_reference(ref_module, ref_inputs, len(reference), keep32) if fp16 else \
                [t.detach().cpu().numpy() for t in reference]

    t_export = time.perf_counter()
    st.start("torch.export")
    ep, swaps, strip, dim_labels = _trace(module, inputs, onnx_inputs, names, dyn, fp16, fp16_io, say, keep32,
                                          swapped=(swapped, swaps))
    _scan_ops(ep, deform_conv, opset, strip)
    st.start("onnx conversion")
    try:
        proto = _to_onnx(ep, opset, deform_conv, names, outs)
    except DcnError:
        raise
    except Exception as e:
        raise DcnError(f"ONNX translation failed: {describe(_root_cause(e))}") from e
    st.start("onnx checker")
    proto, dcn_nodes = _postprocess(proto, strip, dim_labels, deform_conv, fp16, fp16_io, swaps)
    data = proto.SerializeToString()
    export_seconds = time.perf_counter() - t_export

    report = None
    feed = {n: t.detach().cpu().numpy() for n, t in zip(names, onnx_inputs)}
    if verify:
        st.start("verify")
        dtype = "float16" if fp16 else str(reference[0].dtype).replace("torch.", "")
        report = _verify(proto, feed, outs, truth, truth_name, dtype, runtime, own)
        if on_check is not None:
            on_check(report)
        else:
            say(report.summary())
        if check and not report.passed:
            raise CheckError(f"{report.summary()}; nothing written")

    # Nothing is replaced until everything is written: the model and the I/O files go to
    # temporaries, renamed together at the end (a full disk or Ctrl-C leaves the old ones).
    st.start("save")
    try:
        with AtomicGroup() as group:
            with open(group.path(out_path), "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            if io_dir is not None:
                from .polygraphy_io import save_io as _save_io

                ref_np = [np.asarray(a).astype(torch.empty(0, dtype=t.dtype).numpy().dtype)
                          for a, t in zip(truth, reference)]
                own_np = dict(zip(outs, (np.asarray(o, dtype=np.float32) for o in own))) if own is not None else None
                _save_io(io_dir, feed, dict(zip(outs, ref_np)), own_np, fmt=save_io_format, group=group)
    except OSError as e:
        raise DcnError(f"cannot write '{e.filename or out_path}': {describe(e)}; nothing was replaced") from e
    st.stop()
    return ExportResult(
        path=out_path, input_names=names, output_names=outs, dcn_nodes=dcn_nodes, opset=opset,
        ir_version=proto.ir_version, deform_conv=deform_conv, fp16=fp16, fp16_io=fp16_io,
        export_seconds=export_seconds, total_seconds=time.perf_counter() - t_start, swaps=swaps, check=report,
        io_dir=io_dir, model=proto, stage_seconds=dict(st.seconds),
    )


def _validate_options(deform_conv: str, runtime: str, opset: Any) -> int:
    if deform_conv not in DEFORM_CONV_MODES:
        raise DcnError(f"deform_conv is {deform_conv!r}, expected one of {', '.join(DEFORM_CONV_MODES)}")
    if runtime not in ("auto", "reference"):
        raise DcnError(f"runtime is {runtime!r}, expected auto or reference")
    try:
        opset = int(opset)
    except (TypeError, ValueError):
        raise DcnError(f"opset is {opset!r}, expected an integer") from None
    max_opset = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= max_opset:
        raise DcnError(f"opset {opset} is not supported, expected {MIN_OPSET}..{max_opset}")
    if deform_conv == "onnx" and opset < STANDARD_DEFORM_CONV_OPSET:
        raise DcnError(f"--deform-conv onnx writes the standard DeformConv, which needs opset >= "
                       f"{STANDARD_DEFORM_CONV_OPSET}; got opset {opset}")
    return opset


def _swap_copy(module: Any, say: Callable[[str], None]) -> tuple[Any, list[Swap]]:
    """A copy of ``module`` with third-party deformable modules swapped for ours (exporter.swap),
    or ``module`` itself when there is nothing to swap (TorchScript is converted later)."""
    if not isinstance(module, nn.Module) or isinstance(module, torch.jit.ScriptModule) or \
            not any(match(m) for m in module.modules()):
        return module, []
    work = copy.deepcopy(module)
    work, swaps = swap_modules(work)
    for s in swaps:
        say(f"swapped {s}")
    return work, swaps


def _reference_run(module: Any, swapped: Any, swaps: Sequence[Swap], inputs: tuple[torch.Tensor, ...],
                   names: Sequence[str], say: Callable[[str], None]
                   ) -> tuple[tuple[list[torch.Tensor], Optional[list[str]]], Any]:
    """The reference outputs (:func:`_reference_outputs`): the original model's; where it cannot run
    here but its swapped copy can (e.g. mmcv's deformable RoI pooling has no CPU kernel), the swapped
    model's, said in the log. Returns (outputs and dict keys, the module that produced them)."""
    try:
        return _reference_outputs(module, inputs, names), module
    except DcnError as e:
        if not swaps:
            raise
        outs = _reference_outputs(swapped, inputs, names)
        say(f"the original model does not run here ({e}); the reference is the swapped model "
            f"(exporter.swap's modules are tested equal to the originals)")
        return outs, swapped


def _reference_outputs(module: Any, inputs: tuple[torch.Tensor, ...],
                       names: Sequence[str]) -> tuple[list[torch.Tensor], Optional[list[str]]]:
    """Run the model as given (before any swap) in eval mode; an error names the running module.

    Returns the output tensors in order and, when forward returns a dict, their names (its keys)."""
    was_training = module.training
    _set_training(module, False)
    tracker = ModuleTracker(module)
    try:
        with torch.no_grad(), tracker, quiet_torch():
            out = module(*inputs)
            return _flatten_outputs(out), _output_keys(out)
    except DcnError:
        raise
    except Exception as e:
        shapes = ", ".join(f"{n}: {_shape_str(t)}" for n, t in zip(names, inputs))
        raise DcnError(f"model rejected the example inputs ({shapes}){tracker.where()}: {describe(e)}") from e
    finally:
        _set_training(module, was_training)


def _output_keys(out: Any) -> Optional[list[str]]:
    """A dict's keys in its order (nested containers: ``key.sub``), or None when forward returns no dict."""
    if not isinstance(out, Mapping):
        return None
    leaves, _ = torch.utils._pytree.tree_flatten_with_path(out)
    names = []
    for path, _leaf in leaves:
        parts = [str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path]
        names.append(".".join(parts))
    return names


def _pool_ops() -> tuple[Any, ...]:
    """The dcn pooling ops, whose ``rois`` (argument 1) stay float32 in every precision."""
    return (torch.ops.dcn.deform_psroi_pool.default, torch.ops.dcn.deform_roi_pool.default)


class _RoisProbe(TorchDispatchMode):
    """Records the storage of every tensor passed as ``rois`` to a dcn pooling op."""

    def __init__(self) -> None:
        super().__init__()
        self.storages: set[int] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _pool_ops():
            rois = args[1] if len(args) > 1 else kwargs.get("rois")
            if isinstance(rois, torch.Tensor):
                self.storages.add(rois.untyped_storage().data_ptr())
        return func(*args, **kwargs)


def _rois_positions(module: Any, inputs: Sequence[torch.Tensor], names: Sequence[str]) -> list[int]:
    """Positions of the inputs that are RoIs: passed (or viewed) as ``rois`` of a dcn pooling op in a
    float32 probe run, or, for modules that reach ours only after the swap, named ``*roi*`` with shape [R, 5]."""
    keep = {i for i, (n, t) in enumerate(zip(names, inputs))
            if "roi" in n.lower() and t.dim() == 2 and t.shape[-1] == 5 and t.is_floating_point()}
    if not _may_pool(module):
        return sorted(keep)  # no probe run (a forward pass) for models without our pooling
    probe = _RoisProbe()
    was_training = module.training
    _set_training(module, False)
    try:
        with torch.no_grad(), quiet_torch(), probe:
            module(*inputs)
    except Exception:  # the reference run names the problem
        pass
    finally:
        _set_training(module, was_training)
    keep |= {i for i, t in enumerate(inputs)
             if t.is_floating_point() and t.untyped_storage().data_ptr() in probe.storages}
    return sorted(keep)


def _may_pool(module: Any) -> bool:
    """Whether the model may call a dcn pooling op (ours as a module, in a program's or TorchScript graph)."""
    from .ops import DeformPSROIPool, DeformRoIPool

    ops = _pool_ops()
    try:
        if isinstance(module, (torch.jit.ScriptModule, torch.jit.ScriptFunction)):
            graph = str(module.inlined_graph)
            return any(f"dcn::{o._schema.name.split('::')[-1]}" in graph for o in ops)
        for m in module.modules():
            if isinstance(m, (DeformPSROIPool, DeformRoIPool)):
                return True
            graph = getattr(m, "graph", None)
            if isinstance(graph, torch.fx.Graph) and any(n.target in ops for n in graph.nodes):
                return True
    except Exception:
        return True
    return False


def _float16_reference(module: Any, inputs: Sequence[torch.Tensor], count: int,
                       keep_float32: Sequence[int]) -> Optional[list[np.ndarray]]:
    """PyTorch's own float16 run (the FP16 wrapper, RoIs float32), float32 outputs; None where it does not run."""
    from .dtype_mode import LikeData

    try:
        with torch.no_grad(), quiet_torch(), LikeData():
            m16 = _Float16(copy.deepcopy(module), False, keep_float32)
            _set_training(m16, False)
            outs = _flatten_outputs(m16(*inputs))
    except Exception:
        return None
    if len(outs) != count:
        return None
    return [o.detach().cpu().float().numpy() if o.is_floating_point() else o.detach().cpu().numpy() for o in outs]


def _output_names(output_names: Optional[Sequence[str]], count: int, input_names: Sequence[str]) -> list[str]:
    outs = list(output_names) if output_names is not None else (
        ["output"] if count == 1 else [f"output_{i}" for i in range(count)])
    if len(outs) != count or len(set(outs)) != len(outs):
        raise DcnError(f"output names {outs}: the model returns {count} tensors, expected one distinct name each")
    if set(outs) & set(input_names):
        raise DcnError(f"names {sorted(set(outs) & set(input_names))} are used for both an input and an output")
    return outs


def _trace(module: Any, inputs: tuple[torch.Tensor, ...], onnx_inputs: tuple[torch.Tensor, ...],
           names: Sequence[str], dyn: Mapping[int, Mapping[int, str]], fp16: bool, fp16_io: bool,
           say: Callable[[str], None], keep_float32: Sequence[int] = (),
           swapped: Optional[tuple[Any, Sequence[Swap]]] = None):
    """torch.export of a copy in eval mode, third-party modules swapped, float16 if asked.
    ``swapped``: (model, swaps) of :func:`_swap_copy` when the swap was already made.

    Returns (program, swaps, module-path prefix to strip, torch symbol -> axis label)."""
    if swapped is not None and swapped[1]:
        work, swaps = copy.deepcopy(swapped[0]), list(swapped[1])
        _set_training(work, False)
    else:
        work = copy.deepcopy(_from_torchscript(module, inputs))
        _set_training(work, False)
        work, swaps = swap_modules(work)
        for s in swaps:
            say(f"swapped {s}")
    inner, strip = work, None
    if fp16:
        work, strip = _Float16(work, fp16_io, keep_float32), _FP16_PREFIX
        _set_training(work, False)
    # torch.export specializes axes of size 0/1: trace dynamic ones at size 2.
    trace_inputs = tuple(_grow(t, dyn.get(i, {})) for i, t in enumerate(onnx_inputs))
    dynamic_shapes = tuple(
        {axis: torch.export.Dim.DYNAMIC for axis in dyn[i]} if i in dyn else None for i in range(len(inputs))
    ) if dyn else None
    if dynamic_shapes is not None and fp16:
        dynamic_shapes = (dynamic_shapes,)  # the wrapper's one *args tuple
    tracker = ModuleTracker(inner)
    printed = io.StringIO()  # torch.export prints the FX graph to stderr on some errors: kept for -v
    try:
        with tracker, quiet_torch(), contextlib.redirect_stderr(printed):
            ep = torch.export.export(work, trace_inputs, dynamic_shapes=dynamic_shapes, strict=False)
    except DcnError:
        raise
    except Exception as e:
        cause = _root_cause(e)
        if printed.getvalue().strip():
            e.add_note("torch.export printed:\n" + printed.getvalue())
        constraint = _constraint_message(cause, work, names, dyn)
        if constraint:
            raise DcnError(constraint) from e
        raise DcnError(f"torch.export failed{tracker.where()}{_user_line(cause)}: {describe(cause)}") from e
    return ep, swaps, strip, _dim_symbols(ep, names, dyn)


def _postprocess(proto: onnx.ModelProto, strip: Optional[str], dim_labels: Mapping[str, str], deform_conv: str,
                 fp16: bool, fp16_io: bool, swaps: Sequence[Swap]) -> tuple[onnx.ModelProto, dict[str, str]]:
    """Names, zero-bias inputs, axis labels, IR version, metadata; then shape inference and the checker."""
    dcn_nodes = _name_dcn_nodes(proto, strip)
    if strip:
        _strip_value_prefix(proto, strip + ".")
    _drop_zero_bias_of_v1(proto)
    _rename_dims(proto, dim_labels)
    needed = onnx.helper.find_min_ir_version_for(list(proto.opset_import), ignore_unknown=True)
    proto.ir_version = max(proto.ir_version, needed)  # e.g. opset 23 needs IR 11
    ort_ir = max_ir_version_for_onnxruntime()
    if ort_ir is not None and proto.ir_version > ort_ir:
        proto.ir_version = ort_ir
    _set_metadata(proto, deform_conv, fp16, fp16_io, swaps)
    _check_contract(proto)
    proto = _ensure_value_info(proto)
    if proto.ByteSize() > MAX_PROTO_BYTES:
        raise DcnError(f"exported model is {proto.ByteSize() / 2**30:.1f} GiB, over protobuf's 2 GiB limit")
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as e:
        raise DcnError(f"onnx.checker rejected the exported model: {describe(e)}") from e
    return proto, dcn_nodes


def _verify(proto: onnx.ModelProto, feed: Mapping[str, np.ndarray], outs: Sequence[str], truth: Sequence[np.ndarray],
            truth_name: str, dtype: str, runtime: str, own: Optional[Sequence[np.ndarray]] = None):
    from . import verify as verify_mod

    try:
        runner = verify_mod.make_runner(proto, prefer=runtime)
        return verify_mod.check_outputs(runner, feed, outs, truth, dtype, truth_name, own=own)
    except DcnError:
        raise
    except Exception as e:
        raise DcnError(f"running the exported model failed: {describe(e)}") from e


def _float64_reference(module: nn.Module, inputs: Sequence[torch.Tensor], count: int) -> Optional[list[np.ndarray]]:
    """The model's outputs computed in float64, or None where it does not run in float64."""
    if not any(t.is_floating_point() for t in inputs):
        return None
    from .dtype_mode import LikeData, cast_constants

    try:
        with torch.no_grad(), quiet_torch(), LikeData():
            m64 = copy.deepcopy(module)
            cast_constants(m64.double(), torch.float64)
            _set_training(m64, False)
            outs = _flatten_outputs(m64(*(t.double() if t.is_floating_point() else t for t in inputs)))
    except Exception:
        return None
    if len(outs) != count or any(o.dtype != torch.float64 for o in outs if o.is_floating_point()):
        return None
    return [o.detach().cpu().numpy() for o in outs]


def _grow(t: torch.Tensor, axes: Mapping[int, str]) -> torch.Tensor:
    for axis in axes:
        if t.shape[axis] < 2:
            reps = [1] * t.dim()
            reps[axis] = 2 if t.shape[axis] == 1 else 1
            if t.shape[axis] == 0:
                raise DcnError(f"dynamic axis {axis} has size 0 in the example input; give a non-empty example")
            t = t.repeat(*reps)
    return t


def _constraint_message(exc: BaseException, traced: nn.Module, names: Sequence[str],
                        dyn: Mapping[int, Mapping[int, str]]) -> Optional[str]:
    """torch.export's 'Constraints violated' -> which dynamic axis of which input, and why."""
    text = str(exc)
    if not dyn or "Constraints violated" not in text:
        return None
    m = re.search(r"L\['(\w+)'\](?:\[(\d+)\])?\.size\(\)\[(\d+)\]", text)
    if not m:
        return None
    param, index, axis = m.group(1), m.group(2), int(m.group(3))
    if index is not None:
        i = int(index)
    else:
        params = _forward_param_names(traced, len(names))
        if param not in params:
            return None
        i = params.index(param)
    label = dyn.get(i, {}).get(axis, f"axis {axis}")
    const = re.search(r"specialized it to be a constant \((\d+)\)", text)
    if const:
        why = f"the model fixes it to {const.group(1)}, so it cannot be dynamic"
    else:
        bullet = next((ln.strip()[2:] for ln in text.splitlines() if ln.strip().startswith("- ")), "")
        why = re.sub(r"L\['\w+'\](?:\[\d+\])?\.size\(\)\[\d+\]", label, bullet) or "torch.export rejects it"
    return f"dynamic axis {axis} ({label}) of input {names[i]!r}: {why}"


def _dim_symbols(ep: torch.export.ExportedProgram, names: Sequence[str],
                 dyn: Mapping[int, Mapping[int, str]]) -> dict[str, str]:
    """torch symbol (``s77``) -> user label; an axis the model fixed is an error naming it."""
    if not dyn:
        return {}
    placeholders = [n for n in ep.graph.nodes if n.op == "placeholder"]
    user = [p for p in placeholders if p.name in set(ep.graph_signature.user_inputs)]
    mapping: dict[str, str] = {}
    for i, axes in dyn.items():
        val = user[i].meta.get("val")
        for axis, label in axes.items():
            dim = val.shape[axis]
            if isinstance(dim, int):
                raise DcnError(
                    f"dynamic axis {axis} ({label}) of input {names[i]!r}: the model fixes it to {dim}, "
                    f"so it cannot be dynamic"
                )
            expr = dim.node.expr
            if getattr(expr, "is_Symbol", False):
                mapping.setdefault(str(expr), label)
    return mapping


def _set_metadata(model: onnx.ModelProto, deform_conv: str, fp16: bool, fp16_io: bool, swaps: Sequence[Swap]) -> None:
    try:
        from importlib.metadata import version

        ver = version("dcn-deploy")
    except Exception:
        ver = "source"
    props = {
        "dcn.exporter": f"dcn-export {ver}",
        "dcn.deform_conv": deform_conv,
        "dcn.precision": ("float16" + ("/io-float16" if fp16_io else "/io-float32")) if fp16 else "float32",
    }
    if swaps:
        props["dcn.swapped"] = "; ".join(str(s) for s in swaps)
    existing = {p.key: p for p in model.metadata_props}
    for k, v in props.items():
        if k in existing:
            existing[k].value = v
        else:
            model.metadata_props.add(key=k, value=v)


# ``exporter.export`` is both this module and, lazily, the function (exporter/__init__.py).
# Once the submodule is imported, the package attribute is the module, so the module is
# made callable: ``exporter.export(model, inputs, path)`` works whichever one it resolves to.
class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs) -> ExportResult:
        return export(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
