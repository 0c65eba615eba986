"""The ONNX translation: every registered op's torch calls (and the foreign torch ops that compute one,
e.g. torchvision's) -> one ONNX node each, written by the op's onnx.py ``translations`` with the
:class:`Emitter` below (attributes named and ordered by the op's contract entry); the registry of
torch's dynamo ONNX exporter with them, and the conversion of a torch.export program."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import onnx
import torch

from dcn_base.errors import DcnError

from . import ops, schemas
from .contract import DEFORM_CONV_MODES, DOMAIN, DOMAIN_VERSION, FLOAT, INT, INTS, OpSpec, specs
from .torch_scope import module_path_of_fx_node, quiet_torch


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


@dataclass
class Emitter:
    """What an op's translation writes ONNX with (onnxscript: ``op`` is the default-domain opset 18)."""

    standard: bool  # --deform-conv onnx: ONNX's own equivalent (spec.standard) instead of our node
    op: Any
    ir: Any
    dcn: Any  # our domain's opset
    opsets: Any  # onnxscript.onnx_opset

    def node(self, spec: OpSpec) -> Callable:
        """The function writing one ``dcn::<op type>`` node."""
        return getattr(self.dcn, spec.op_type)

    def standard_node(self, spec: OpSpec) -> Callable:
        """The function writing ONNX's own equivalent of ``spec`` (in the opset that introduced it)."""
        return getattr(getattr(self.opsets, f"opset{spec.standard.opset}"), spec.standard.op_type)

    attrs = staticmethod(contract_attrs)

    def like(self, value, ref):
        """``value`` in ``ref``'s element type: e.g. a float32 zero bias a float16 program computes
        with (a .pt2 / TorchScript graph fixes the constant's dtype when it is traced)."""
        if value is None or value.dtype is None or ref.dtype is None or value.dtype == ref.dtype:
            return value
        return self.op.Cast(value, to=ref.dtype)

    def float32(self, value, data):
        """An input the contract fixes to float32 (coordinates; float64 only beside float64 data, for references)."""
        ir = self.ir
        if value.dtype in (None, ir.DataType.FLOAT) or (value.dtype == ir.DataType.DOUBLE and
                                                        data.dtype == ir.DataType.DOUBLE):
            return value
        return self.op.Cast(value, to=ir.DataType.FLOAT)

    @staticmethod
    def static_dims(value, axes: Sequence[int]) -> Optional[list[int]]:
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
    from onnxscript import ir, onnx_opset, values  # noqa: PLC0415  (onnxscript: heavy, only when translating)

    em = Emitter(deform_conv == "onnx", onnx_opset.opset18, ir, values.Opset(DOMAIN, DOMAIN_VERSION), onnx_opset)
    table: dict[Any, Callable] = {}
    for part in ops.parts("onnx"):
        table.update(part.translations(em))
    return table


def translated_op_names() -> list[str]:
    """The torch ops the table translates, by name (ours, then the foreign ones)."""
    return [s.torch_op for s in specs()] + [n for part in ops.parts("onnx")
                                            for n in getattr(part, "FOREIGN_TORCH_OPS", ())]


@functools.lru_cache(maxsize=None)
def onnx_registry(opset: int, deform_conv: str):
    """torch's ONNX registry with our translations, built once per (opset, mode): building it costs seconds.

    Uses torch.onnx's internal registry; None when that moved (then the public
    ``torch.onnx.export(custom_translation_table=...)`` path is used).
    """
    try:
        from torch.onnx._internal.exporter import _constants, _registration  # noqa: PLC0415  (internal, may move)
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
            from torch.onnx._internal.exporter import _core as core  # noqa: PLC0415  (internal, may move)
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
        known = translated_op_names()
        raise DcnError(
            f"operator {name}{where} has no ONNX translation; dcn-export maps "
            f"{', '.join(known[:-1])} and {known[-1]} besides the standard ops"
        )
