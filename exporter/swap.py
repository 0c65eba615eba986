"""Third-party deformable modules -> ours, weights kept: the generic step. The rules are each op's
``swap.py`` (``RULES``: (library module prefix, class name) -> converter); this module finds the
modules of a model that a rule matches (by class name and defining module, without importing those
libraries), checks that they can be swapped exactly and replaces them in place.

A rule's prefix is the library's module path (the class defined there or below), or ``""``: the class
defined in any module outside this package, for libraries that users vendor under paths of their own
(copied op folders); then the converter must check the module's layout itself (:func:`keeping_all`).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, Optional

from torch import nn

from dcn_base.errors import DcnError

from . import ops


@dataclass(frozen=True)
class Swap:
    """One replaced module: its path in the model, what it was, what it became."""

    path: str
    source: str
    target: str

    def __str__(self) -> str:
        return f"{self.path or '<root>'}: {self.source} -> {self.target}"


# --------------------------------------------------------------------------- what the rules share
def finish(new: nn.Module, old: nn.Module, path: str) -> nn.Module:
    """Copy parameters by name (strict: every parameter of the new module must come from the old)."""
    new_state = new.state_dict()
    old_state = old.state_dict()
    missing = [k for k in new_state if k not in old_state]
    if missing:
        raise DcnError(
            f"module '{path}' ({qualname(type(old))}): cannot swap for {type(new).__name__}, "
            f"its state has no {', '.join(missing)}"
        )
    for k, v in new_state.items():
        if tuple(old_state[k].shape) != tuple(v.shape):
            raise DcnError(
                f"module '{path}' ({qualname(type(old))}): parameter {k} has shape {list(old_state[k].shape)}, "
                f"expected {list(v.shape)} for {type(new).__name__}"
            )
    ref = next(iter(old.parameters()), None)
    if ref is not None:
        new.to(device=ref.device, dtype=ref.dtype)
    new.load_state_dict({k: old_state[k] for k in new_state}, strict=True)
    new.train(old.training)
    return new


def hw_pair(v) -> tuple[int, int]:
    """A third-party module's (height, width) attribute: an int, or a sequence (one value: both)."""
    if isinstance(v, int):
        return (v, v)
    v = tuple(int(x) for x in v)
    return (v[0], v[0]) if len(v) == 1 else v  # type: ignore[return-value]


def attribute(m: nn.Module, path: str, name: str):
    """A constructor argument the third-party module keeps as an attribute (DcnError naming it otherwise)."""
    if not hasattr(m, name):
        raise DcnError(f"module '{path}' ({qualname(type(m))}): no attribute {name}, expected "
                       f"{type(m).__name__}'s constructor arguments as attributes")
    return getattr(m, name)


def qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def keeping_all(convert: Callable[[nn.Module, str], nn.Module]) -> Callable[[nn.Module, str], nn.Module]:
    """``convert``, refusing to leave any parameter or buffer of the old module behind (:func:`finish`
    checks the other way): for rules matched by class name alone, every weight must find its place."""

    def run(m: nn.Module, path: str) -> nn.Module:
        new = convert(m, path)
        extra = sorted(set(m.state_dict()) - set(new.state_dict()))
        if extra:
            raise DcnError(f"module '{path}' ({qualname(type(m))}): cannot swap for {type(new).__name__}, which has "
                           f"no {', '.join(extra)}; expected {type(m).__name__}'s parameter layout")
        return new

    return run


def _defined_in(module: str, prefix: str) -> bool:
    """Is a class of ``module`` one a rule with ``prefix`` covers (module docstring)?"""
    if not prefix:
        return module != __package__ and not module.startswith(__package__ + ".")
    return module == prefix or module.startswith(prefix + ".")


@functools.lru_cache(maxsize=None)
def known() -> dict[tuple[str, str], Callable[[nn.Module, str], nn.Module]]:
    """Every op's swap rules (its swap.py ``RULES``), in the registry's order."""
    rules: dict[tuple[str, str], Callable[[nn.Module, str], nn.Module]] = {}
    for part in ops.parts("swap"):
        rules.update(part.RULES)
    return rules


def match(module: nn.Module) -> Optional[tuple[type, Callable[[nn.Module, str], nn.Module]]]:
    """The known third-party class in ``module``'s MRO and its converter, or None."""
    for cls in type(module).__mro__:
        mod = getattr(cls, "__module__", "") or ""
        for (prefix, name), convert in known().items():
            if cls.__name__ == name and _defined_in(mod, prefix):
                return cls, convert
    return None


def swap_modules(model: nn.Module) -> tuple[nn.Module, list[Swap]]:
    """Replace known third-party deformable modules in ``model`` (in place) by ours.

    Returns the (possibly new, when the root itself is swapped) model and the swaps made.
    Raises DcnError naming the module path for modules that cannot be swapped exactly.
    """
    swaps: list[Swap] = []
    todo = []
    for path, m in model.named_modules():
        found = match(m)
        if found is None:
            continue
        cls, convert = found
        if type(m) is not cls and type(m).forward is not cls.forward:
            raise DcnError(
                f"module '{path}' ({qualname(type(m))}) subclasses {qualname(cls)} and overrides forward; "
                f"dcn-export cannot swap it exactly - give it a forward built on exporter.ops modules"
            )
        todo.append((path, m, convert))
    for path, m, convert in todo:
        if any(path.startswith(p + ".") for p, _, _ in todo if p and p != path):
            continue  # inside a module that is itself swapped (none of the known ones nest)
        new = convert(m, path)
        swaps.append(Swap(path, qualname(type(m)), qualname(type(new))))
        if path == "":
            model = new
        else:
            parent_path, _, attr = path.rpartition(".")
            parent = model.get_submodule(parent_path) if parent_path else model
            setattr(parent, attr, new)
    return model, swaps
