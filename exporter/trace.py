"""The torch.export step of the export: example inputs and their names, dynamic dims and the messages
of their constraints, TorchScript -> torch.export program, and ``torch.export.export`` of the
(swapped) model in eval mode, float16 if asked, with module paths in its errors."""
from __future__ import annotations

import contextlib
import copy
import inspect
import io
import re
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import torch
from torch import nn

from dcn_base.errors import DcnError, describe

from . import ops
from .dtype_mode import FP16_PREFIX, Float16
from .torch_scope import ModuleTracker, quiet_torch, root_cause, set_training, user_line


def forward_param_names(model: nn.Module, n: int) -> list[str]:
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


def as_inputs(example_inputs: Any) -> tuple[torch.Tensor, ...]:
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,)
    if isinstance(example_inputs, (list, tuple)):
        bad = [type(x).__name__ for x in example_inputs if not isinstance(x, torch.Tensor)]
        if bad:
            raise DcnError(f"example inputs must be tensors, got {', '.join(bad)}")
        return tuple(example_inputs)
    raise DcnError(f"example inputs must be a tensor or a tuple of tensors, got {type(example_inputs).__name__}")


def normalize_dynamic(dynamic: Optional[Mapping[str, Any]], names: Sequence[str],
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


def prepare_model(model: Any) -> Any:
    """An ExportedProgram becomes its module; TorchScript stays (converted after the reference run)."""
    ops.register_torch_ops()
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
    from torch._export.converter import TS2EPConverter  # noqa: PLC0415  (torch internal: heavy, TorchScript only)

    try:
        with quiet_torch():
            ep = TS2EPConverter(model, inputs).convert()
    except Exception as e:
        # Scripted code (e.g. torchvision's deformable conv module: weight.shape[-2:]) slices lists the converter
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
    """`` (module 'dcn', <pkg.Class>: .../<file>.py line 79)``: where the
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


def trace_program(module: Any, inputs: tuple[torch.Tensor, ...], onnx_inputs: tuple[torch.Tensor, ...],
                  names: Sequence[str], dyn: Mapping[int, Mapping[int, str]], fp16: bool, fp16_io: bool,
                  keep_float32: Sequence[int] = ()):
    """torch.export of a copy of ``module`` (already swapped: exporter.swap) in eval mode, TorchScript
    converted first (with ``inputs``), float16 if asked, traced with ``onnx_inputs``.

    Returns (program, module-path prefix to strip, torch symbol -> axis label)."""
    work = copy.deepcopy(_from_torchscript(module, inputs))
    set_training(work, False)
    inner, strip = work, None
    if fp16:
        work, strip = Float16(work, fp16_io, keep_float32), FP16_PREFIX
        set_training(work, False)
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
        cause = root_cause(e)
        if printed.getvalue().strip():
            e.add_note("torch.export printed:\n" + printed.getvalue())
        constraint = _constraint_message(cause, work, names, dyn)
        if constraint:
            raise DcnError(constraint) from e
        hint = ""
        if dyn and isinstance(module, (torch.jit.ScriptModule, torch.jit.ScriptFunction)):
            hint = ("; a TorchScript model may hold sizes its code turned into numbers at the traced example's "
                    "values: for dynamic axes export a torch.export program (.pt2) or a state dict with --factory")
        elif dyn and isinstance(module, torch.fx.GraphModule):
            hint = ("; a torch.export program holds the sizes it was exported with on axes it has not as dynamic: "
                    "export it with dynamic_shapes (torch.export.Dim) for those axes, or a state dict with --factory")
        raise DcnError(f"torch.export failed{tracker.where()}{user_line(cause)}: {describe(cause)}{hint}") from e
    return ep, strip, _dim_symbols(ep, names, dyn)


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
        params = forward_param_names(traced, len(names))
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
