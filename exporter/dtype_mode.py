"""Run a model or a traced graph (TorchScript, torch.export program) in another float precision: the float16
wrapper of FP16 exports (:class:`Float16`), and what keeps a traced graph's deformable ops consistent.

Tracing fixes the dtype of constants a deformable op's Python wrapper creates -- torchvision's
deformable convolution makes a float32 zero bias / mask when none is given -- so the graph converted
with ``.double()`` / ``.half()`` hands the op mixed dtypes and PyTorch refuses it. Inside
``LikeData()`` every floating tensor argument of a registered op (and of the foreign torch ops an
op's onnx.py lists, e.g. torchvision's) takes the dtype of its first argument, except the inputs
the contract fixes to float32 (coordinates), which get float32 (float64 with float64 data), as the
exported ONNX graph does with its casts. Used for the float64 reference and PyTorch's own float16 run.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from . import ops
from .contract import specs


def torch_overload(qualified: str):
    """``torch.ops.<ns>.<name>.default`` for ``"<ns>::<name>"``, or None where it is not registered."""
    ns, _, name = qualified.partition("::")
    try:
        return getattr(getattr(torch.ops, ns), name).default
    except (AttributeError, RuntimeError):
        return None


def _targets() -> dict:
    """{torch op overload: positions of its float32 (coordinate) arguments}."""
    ops.register_torch_ops()
    out = {torch_overload(s.torch_op): frozenset(s.float32_inputs) for s in specs()}
    for part in ops.parts("onnx"):
        for name in getattr(part, "FOREIGN_TORCH_OPS", ()):
            overload = torch_overload(name)
            if overload is not None:
                out[overload] = frozenset()
    return out


class LikeData(TorchDispatchMode):
    """Casts the floating arguments of the deformable ops to their data's dtype (module doc)."""

    def __init__(self) -> None:
        super().__init__()
        self._targets = _targets()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        float32_args = self._targets.get(func)
        if float32_args is not None and args and isinstance(args[0], torch.Tensor) and args[0].is_floating_point():
            dtype = args[0].dtype
            coords_dtype = torch.float64 if dtype == torch.float64 else torch.float32

            def fix(i, a):
                if not isinstance(a, torch.Tensor) or not a.is_floating_point():
                    return a
                want = coords_dtype if i in float32_args else dtype
                return a if a.dtype == want else a.to(want)

            args = tuple(fix(i, a) for i, a in enumerate(args))
        return func(*args, **kwargs)


def cast_constants(module: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """``module.to(dtype)`` misses plain tensor attributes: the constants of a converted TorchScript
    graph (frozen parameters) or a torch.export program. Cast the floating ones too; in place."""
    for m in module.modules():
        for name, value in list(vars(m).items()):
            if isinstance(value, torch.Tensor) and not isinstance(value, torch.nn.Parameter) \
                    and value.is_floating_point() and value.dtype != dtype:
                try:
                    setattr(m, name, value.to(dtype))
                except (AttributeError, RuntimeError, TypeError):  # e.g. a ScriptModule's typed attribute
                    pass
    return module


def drop_dtype_assertions(module: torch.nn.Module) -> torch.nn.Module:
    """Remove the float32 dtype assertions (``aten._assert_tensor_metadata``) a torch.export program or a
    converted TorchScript graph records at its ``.to()`` calls: run in float16 (or in float64 for the
    truth) the tensors they check have that dtype by design. Checks only, no computation; in place."""
    target = getattr(torch.ops.aten, "_assert_tensor_metadata", None)
    if target is None:
        return module
    for m in module.modules():
        if not isinstance(m, torch.fx.GraphModule):  # (a ScriptModule's .graph may raise)
            continue
        graph = m.graph
        dead = [n for n in graph.nodes if n.op == "call_function" and getattr(n.target, "overloadpacket", None)
                is target and not n.users]
        for n in dead:
            graph.erase_node(n)
        if dead:
            m.recompile()
    return module


FP16_PREFIX = "model"


class Float16(nn.Module):
    """float16 weights and compute; float32 I/O unless ``io_fp16``.

    Inputs at the positions ``keep_float32`` (coordinates, e.g. RoIs: never half) stay float32.
    forward takes ``*args``: torch.export then sees one tuple argument, so dynamic shapes are
    given for it as one tuple (``trace_program``).
    """

    def __init__(self, model: nn.Module, io_fp16: bool, keep_float32: Sequence[int] = ()) -> None:
        super().__init__()
        self.model = drop_dtype_assertions(cast_constants(model.half(), torch.float16))
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
