"""Where a PyTorch error happened, and torch kept quiet: the running module's path (ModuleTracker,
FX node paths, the user's source line), torch's warnings and export logs silenced, and the small
helpers every run of a model shares (eval mode, outputs as a flat list of tensors)."""
from __future__ import annotations

import contextlib
import logging
import os
import re
import traceback
import warnings
from typing import Any, Mapping, Optional

import torch
from torch import nn

from dcn_base.errors import DcnError


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


def user_line(exc: BaseException) -> str:
    """`` at FILE:LINE (`code`)``: the user's source line torch names in its message, else the
    innermost traceback frame outside torch and this package; '' when there is none."""
    def users(path: str) -> bool:
        return "site-packages" not in path and f"{os.sep}torch{os.sep}" not in path and \
            os.path.dirname(os.path.abspath(path)) != os.path.dirname(os.path.abspath(__file__))

    found = [(f, int(n), code.strip()) for f, n, code in _USER_FRAME.findall(str(exc)) if users(f)]
    if not found:
        found = [(fr.filename, fr.lineno or 0, (fr.line or "").strip())
                 for fr in traceback.extract_tb(exc.__traceback__) if users(fr.filename)]
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


def flatten_outputs(out: Any) -> list[torch.Tensor]:
    leaves, _ = torch.utils._pytree.tree_flatten(out)
    tensors = [t for t in leaves if isinstance(t, torch.Tensor)]
    if len(tensors) != len(leaves):
        bad = next(type(t).__name__ for t in leaves if not isinstance(t, torch.Tensor))
        raise DcnError(f"model returns a {bad} among its outputs, expected tensors only")
    if not tensors:
        raise DcnError("model returns no tensor")
    return tensors


def output_keys(out: Any) -> Optional[list[str]]:
    """A dict's keys in its order (nested containers: ``key.sub``), or None when forward returns no dict."""
    if not isinstance(out, Mapping):
        return None
    leaves, _ = torch.utils._pytree.tree_flatten_with_path(out)
    names = []
    for path, _leaf in leaves:
        parts = [str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path]
        names.append(".".join(parts))
    return names


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


def set_training(module: nn.Module, mode: bool) -> None:
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


def shape_str(t: torch.Tensor) -> str:
    return "x".join(str(d) for d in t.shape) + f" {str(t.dtype).replace('torch.', '')}"
