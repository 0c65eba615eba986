"""PyTorch's own runs of the model, before anything is exported: the reference outputs (the original
model, or its swapped copy where the original cannot run here), the truth in float64, PyTorch's own
float16 run, and which inputs the contract keeps float32 in every precision (found by a probe run:
the tensors a registered op takes at its float32 input positions, e.g. RoIs)."""
from __future__ import annotations

import copy
import weakref
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

from dcn_base.errors import ContractError, DcnError, describe

from .contract import NEW_QUANTITY_TORCH, specs
from .dtype_mode import Float16, LikeData, cast_constants, drop_dtype_assertions, torch_overload
from .swap import Swap
from .torch_scope import ModuleTracker, flatten_outputs, output_keys, quiet_torch, set_training, shape_str


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


def _shapes(names: Sequence[str], inputs: Sequence[torch.Tensor]) -> str:
    return ", ".join(f"{n}: {shape_str(t)}" for n, t in zip(names, inputs))


def _reference_outputs(module: Any, inputs: tuple[torch.Tensor, ...],
                       names: Sequence[str]) -> tuple[list[torch.Tensor], Optional[list[str]]]:
    """Run the model as given (before any swap) in eval mode; an error names the running module.

    Returns the output tensors in order and, when forward returns a dict, their names (its keys)."""
    was_training = module.training
    set_training(module, False)
    tracker = ModuleTracker(module)
    try:
        with torch.no_grad(), tracker, quiet_torch():
            out = module(*inputs)
            return flatten_outputs(out), output_keys(out)
    except ContractError as e:  # an op's contract check: it names the op, the module path says which layer
        raise ContractError(f"model rejected the example inputs ({_shapes(names, inputs)}){tracker.where()}: {e}") \
            from e
    except DcnError:
        raise
    except Exception as e:
        raise DcnError(f"model rejected the example inputs ({_shapes(names, inputs)}){tracker.where()}: "
                       f"{describe(e)}") from e
    finally:
        set_training(module, was_training)


def _coordinate_ops() -> dict[Any, tuple[int, ...]]:
    """{torch op: positions of its float32 arguments} of the registered ops that have any (coordinates:
    RoIs, sampling locations), which stay float32 in every precision."""
    return {torch_overload(s.torch_op): s.float32_inputs for s in specs() if s.float32_inputs}


# Ops whose output is a new quantity rather than the same coordinates moved, scaled or reshaped (learned
# layers and normalisations: contract.NEW_QUANTITY_TORCH). Coordinates are followed through every other op
# (reference points + offsets / normaliser -> sampling locations).


class _CoordinatesProbe(TorchDispatchMode):
    """Records the storage of every tensor a registered op takes at a float32 (coordinate) position, and
    which inputs (``sources``: storage -> input position) such a tensor derives from through ops that move,
    scale or reshape coordinates (not through learned layers: ``NEW_QUANTITY_TORCH``)."""

    def __init__(self, sources: Optional[dict[int, int]] = None) -> None:
        super().__init__()
        self.storages: set[int] = set()
        self.derived: set[int] = set()  # input positions a coordinate argument derives from
        self.learned: set[int] = set()  # input positions a learned layer takes too (not kept float32 for that)
        self._ops = _coordinate_ops()
        self._sources = dict(sources or {})
        self._taint: dict[int, tuple[Any, frozenset]] = {}  # id(tensor) -> (weakref, input positions)

    def _taint_of(self, t: torch.Tensor) -> frozenset:
        entry = self._taint.get(id(t))
        got = entry[1] if entry is not None and entry[0]() is t else frozenset()
        try:
            src = self._sources.get(t.untyped_storage().data_ptr())
        except (NotImplementedError, RuntimeError):  # sparse / mkldnn tensors have no storage: not an input
            src = None
        return got | {src} if src is not None else got

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        for i in self._ops.get(func, ()):
            value = args[i] if len(args) > i else None
            if isinstance(value, torch.Tensor):
                self.storages.add(value.untyped_storage().data_ptr())
                self.derived |= self._taint_of(value)
        out = func(*args, **kwargs)
        leaves = [a for a in pytree.tree_leaves((args, kwargs)) if isinstance(a, torch.Tensor)]
        taint = frozenset().union(*(self._taint_of(a) for a in leaves)) if leaves else frozenset()
        if func.overloadpacket.__name__ in NEW_QUANTITY_TORCH:
            # e.g. DINO's query position embedding from the reference points: a half layer must take them
            self.learned |= taint
        elif func not in self._ops:
            if taint:
                for o in pytree.tree_leaves(out):
                    if isinstance(o, torch.Tensor) and o.is_floating_point():
                        self._taint[id(o)] = (weakref.ref(o), taint)
        return out


def rois_positions(module: Any, inputs: Sequence[torch.Tensor], names: Sequence[str]) -> list[int]:
    """Positions of the inputs that stay float32: passed (or viewed) as a float32 (coordinate) argument of
    a registered op in a float32 probe run, or what such an argument is computed from by moving, scaling
    or reshaping (reference points of multi-scale deformable attention) unless a learned layer takes it
    too (DINO's position embedding of its reference points: float16 there), or, for models no probe
    runs, RoIs: named ``*roi*`` with shape [R, 5]."""
    keep = {i for i, (n, t) in enumerate(zip(names, inputs))
            if "roi" in n.lower() and t.dim() == 2 and t.shape[-1] == 5 and t.is_floating_point()}
    if not _may_take_coordinates(module):
        return sorted(keep)  # no probe run (a forward pass) for models without such ops
    probe = _CoordinatesProbe({t.untyped_storage().data_ptr(): i for i, t in enumerate(inputs)
                               if t.is_floating_point()})
    was_training = module.training
    set_training(module, False)
    try:
        with torch.no_grad(), quiet_torch(), probe:
            module(*inputs)
    except Exception:  # the reference run names the problem
        pass
    finally:
        set_training(module, was_training)
    keep |= {i for i, t in enumerate(inputs)
             if t.is_floating_point() and t.untyped_storage().data_ptr() in probe.storages}
    return sorted(keep | (probe.derived - probe.learned))


def _may_take_coordinates(module: Any) -> bool:
    """Whether the model may call a registered op with float32 (coordinate) inputs: one of its modules
    (a class of the op's modules.py in the module's class hierarchy), or in a program's or TorchScript graph."""
    ops = _coordinate_ops()
    homes = {f"exporter.ops.{s.name}.modules" for s in specs() if s.float32_inputs}
    try:
        if isinstance(module, (torch.jit.ScriptModule, torch.jit.ScriptFunction)):
            graph = str(module.inlined_graph)
            return any(f"dcn::{o._schema.name.split('::')[-1]}" in graph for o in ops)
        for m in module.modules():
            if any(c.__module__ in homes for c in type(m).__mro__):
                return True
            graph = getattr(m, "graph", None)
            if isinstance(graph, torch.fx.Graph) and any(n.target in ops for n in graph.nodes):
                return True
    except Exception:
        return True
    return False


def float16_reference(module: Any, inputs: Sequence[torch.Tensor], count: int,
                       keep_float32: Sequence[int]) -> Optional[list[np.ndarray]]:
    """PyTorch's own float16 run (the FP16 wrapper, coordinates float32), float32 outputs; None where it does not run."""
    try:
        with torch.no_grad(), quiet_torch(), LikeData():
            m16 = Float16(copy.deepcopy(module), False, keep_float32)
            set_training(m16, False)
            outs = flatten_outputs(m16(*inputs))
    except Exception:
        return None
    if len(outs) != count:
        return None
    return [o.detach().cpu().float().numpy() if o.is_floating_point() else o.detach().cpu().numpy() for o in outs]


def float64_reference(module: nn.Module, inputs: Sequence[torch.Tensor], count: int) -> Optional[list[np.ndarray]]:
    """The model's outputs computed in float64, or None where it does not run in float64."""
    if not any(t.is_floating_point() for t in inputs):
        return None
    try:
        with torch.no_grad(), quiet_torch(), LikeData():
            m64 = copy.deepcopy(module)
            drop_dtype_assertions(cast_constants(m64.double(), torch.float64))
            set_training(m64, False)
            outs = flatten_outputs(m64(*(t.double() if t.is_floating_point() else t for t in inputs)))
    except Exception:
        return None
    if len(outs) != count or any(o.dtype != torch.float64 for o in outs if o.is_floating_point()):
        return None
    return [o.detach().cpu().numpy() for o in outs]
