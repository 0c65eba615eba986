"""PyTorch side of the export: TorchScript -> torch.export program, dynamic dims and the messages
of their constraints, ``torch.export.export`` with module paths for errors, the scan for
operators without a translation, and the reference runs (float64, float16, RoI probes)."""
from __future__ import annotations

import contextlib
import copy
import inspect
import io
import logging
import os
import re
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from dcn_base.errors import DcnError, describe
from .swap import Swap, swap_modules


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


def root_cause(exc: BaseException) -> BaseException:
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


_FP16_PREFIX = "model"


class _Float16(nn.Module):
    """float16 weights and compute; float32 I/O unless ``io_fp16``.

    Inputs at the positions ``keep_float32`` (RoIs: coordinates are never half) stay float32.
    forward takes ``*args``: torch.export then sees one tuple argument, so dynamic shapes are
    given for it as one tuple (``trace_program``).
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


def module_path_of_fx_node(node: torch.fx.Node, strip: Optional[str]) -> tuple[str, str]:
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return "", ""
    path, cls = list(stack.values())[-1]
    path = strip_prefix(str(path), strip)
    cls = cls if isinstance(cls, str) else f"{cls.__module__}.{cls.__qualname__}"
    return path, cls


def strip_prefix(path: str, strip: Optional[str]) -> str:
    if strip:
        if path == strip:
            return ""
        if path.startswith(strip + "."):
            return path[len(strip) + 1:]
    return path


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


def reference_run(module: Any, swapped: Any, swaps: Sequence[Swap], inputs: tuple[torch.Tensor, ...],
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


def rois_positions(module: Any, inputs: Sequence[torch.Tensor], names: Sequence[str]) -> list[int]:
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


def float16_reference(module: Any, inputs: Sequence[torch.Tensor], count: int,
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


def trace_program(module: Any, inputs: tuple[torch.Tensor, ...], onnx_inputs: tuple[torch.Tensor, ...],
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
        cause = root_cause(e)
        if printed.getvalue().strip():
            e.add_note("torch.export printed:\n" + printed.getvalue())
        constraint = _constraint_message(cause, work, names, dyn)
        if constraint:
            raise DcnError(constraint) from e
        raise DcnError(f"torch.export failed{tracker.where()}{_user_line(cause)}: {describe(cause)}") from e
    return ep, swaps, strip, _dim_symbols(ep, names, dyn)


def float64_reference(module: nn.Module, inputs: Sequence[torch.Tensor], count: int) -> Optional[list[np.ndarray]]:
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
