"""Load a user's model file into an ``nn.Module`` for export.

Recognised by content, not by file name:

* TorchScript archive (``torch.jit.save``): loaded with ``torch.jit.load``; the
  exporter converts it to a torch.export program with the example inputs.
* torch.export program (``torch.export.save``, ``.pt2``): its graph module (the
  exporter re-traces it, so ``--dynamic`` applies); its saved example inputs are
  kept as ``module.example_inputs``.
* ``torch.save`` of a state dict (or a checkpoint dict holding one under
  ``state_dict`` / ``model`` / ``model_state_dict``): needs ``factory`` to build the
  module the weights go into; loaded with ``weights_only=True`` (no code runs).
* ``torch.save`` of a whole pickled ``nn.Module``: unpickling runs code from the
  file, so only with ``trust_pickle=True``.

Every failure is a one-line :class:`DcnError`.
"""
from __future__ import annotations

import importlib
import io
import os
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Union

import torch
from torch import nn

from dcn_base.errors import DcnError, describe

STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "module", "net")

PICKLE_HINT = (
    "unpickling runs code from the file, so dcn-export loads it only with --trust-pickle "
    "(or save a state dict with --factory, a TorchScript archive or a torch.export program instead)"
)


def register_ops() -> None:
    """Our custom ops (and torchvision's) must exist before a model that calls them is loaded."""
    from . import ops  # noqa: F401  (registers torch.ops.dcn.*)

    try:
        import torchvision  # noqa: F401  (registers torch.ops.torchvision.*)
    except Exception:
        pass




def file_kind(path: Path) -> str:
    """'torchscript', 'pt2', 'torch.save' or 'unknown'."""
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, OSError):
            return "unknown"
        base = {n.split("/", 1)[1] if "/" in n else n for n in names}
        if "archive_format" in base or any(n.startswith("models/") and n.endswith(".json") for n in base):
            return "pt2"
        if any(n.startswith("code/") for n in base) and "data.pkl" in base:
            return "torchscript"
        if "data.pkl" in base:
            return "torch.save"
        return "unknown"
    with open(path, "rb") as f:
        head = f.read(2)
    if len(head) == 2 and head[0] == 0x80:  # pickle protocol marker: legacy torch.save
        return "torch.save"
    return "unknown"


def _cwd_importable() -> None:
    """The current directory importable, as for ``python -m``: --factory and --trust-pickle find
    the model's own module there."""
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())


def parse_factory(spec: str) -> Callable[[], nn.Module]:
    """``module:callable`` (callable may be dotted, e.g. ``pkg.models:Net.build``) -> the callable."""
    mod_name, sep, attr = spec.partition(":")
    if not sep or not mod_name or not attr:
        raise DcnError(f"--factory {spec!r}: expected MODULE:CALLABLE, e.g. samples.resnet_dcn:build")
    _cwd_importable()
    try:
        obj: Any = importlib.import_module(mod_name)
    except Exception as e:
        raise DcnError(f"--factory {spec!r}: cannot import module {mod_name!r}: {describe(e)}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise DcnError(f"--factory {spec!r}: module {mod_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise DcnError(f"--factory {spec!r}: {attr!r} is {type(obj).__name__}, expected a callable returning nn.Module")
    return obj


def _build(factory: Union[str, Callable[[], nn.Module]]) -> nn.Module:
    fn = parse_factory(factory) if isinstance(factory, str) else factory
    name = factory if isinstance(factory, str) else getattr(fn, "__qualname__", repr(fn))
    try:
        model = fn()
    except Exception as e:
        raise DcnError(f"--factory {name!r} failed: {describe(e)}") from None
    if not isinstance(model, nn.Module):
        raise DcnError(f"--factory {name!r} returned {type(model).__name__}, expected an nn.Module")
    return model


def _find_state_dict(obj: Any) -> Optional[Mapping[str, torch.Tensor]]:
    def is_sd(d: Any) -> bool:
        return isinstance(d, Mapping) and len(d) > 0 and all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in d.items()
        )

    if is_sd(obj):
        sd = obj
    elif isinstance(obj, Mapping):
        sd = next((obj[k] for k in STATE_DICT_KEYS if k in obj and is_sd(obj[k])), None)
        if sd is None:
            return None
    else:
        return None
    if all(k.startswith("module.") for k in sd):  # saved from DataParallel / DDP
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def _load_state_dict(model: nn.Module, sd: Mapping[str, torch.Tensor], path: Path, factory_name: str) -> None:
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    wrong = [f"{k} {list(sd[k].shape)} vs {list(v.shape)}" for k, v in own.items()
             if k in sd and tuple(sd[k].shape) != tuple(v.shape)]

    def few(items: list[str]) -> str:
        return ", ".join(items[:4]) + (f" (+{len(items) - 4} more)" if len(items) > 4 else "")

    problems = []
    if missing:
        problems.append(f"missing {few(missing)}")
    if unexpected:
        problems.append(f"unexpected {few(unexpected)}")
    if wrong:
        problems.append(f"shape mismatch {few(wrong)}")
    if problems:
        raise DcnError(f"state dict '{path}' does not fit the model from --factory {factory_name!r}: "
                       + "; ".join(problems))
    model.load_state_dict(sd, strict=True)


def load_model(
    path: Union[str, os.PathLike, None],
    *,
    factory: Union[str, Callable[[], nn.Module], None] = None,
    trust_pickle: bool = False,
) -> nn.Module:
    """Load ``path`` (see module doc). With ``path=None``, build a fresh model from ``factory``."""
    register_ops()
    if path is None:
        if factory is None:
            raise DcnError("no model: give a model file, or --factory MODULE:CALLABLE to build one")
        return _build(factory)
    p = Path(path)
    if not p.exists():
        raise DcnError(f"model file '{p}' not found")
    if p.is_dir():
        raise DcnError(f"'{p}' is a directory, expected a model file (TorchScript, .pt2 or torch.save)")
    try:
        kind = file_kind(p)
    except OSError as e:
        raise DcnError(f"cannot read '{p}': {describe(e)}") from None
    if kind == "unknown":
        raise DcnError(
            f"'{p}' is not a TorchScript archive, torch.export program or torch.save file (unrecognised or corrupt)"
        )
    if factory is not None and kind in ("torchscript", "pt2"):
        raise DcnError(f"--factory applies to state-dict files; '{p}' is a "
                       f"{'TorchScript archive' if kind == 'torchscript' else 'torch.export program'}")

    if kind == "torchscript":
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return torch.jit.load(str(p), map_location="cpu")
        except Exception as e:
            raise DcnError(f"cannot load TorchScript archive '{p}': {describe(e)}") from None

    if kind == "pt2":
        note = None
        try:
            if trust_pickle:
                # torch.export.load takes a path only when it ends in .pt2; recognised by content, any name works
                ep = torch.export.load(str(p) if p.suffix == ".pt2" else io.BytesIO(p.read_bytes()))
                example = getattr(ep, "example_inputs", None)
            else:  # nothing unpickled: see exporter/safe_archive.py
                from .safe_archive import load_pt2

                ep, example, note = load_pt2(str(p))
            module = ep.module(check_guards=False)
        except DcnError:
            raise
        except Exception as e:
            raise DcnError(f"cannot load torch.export program '{p}': {describe(e)}") from None
        if note is not None:
            module.example_inputs_note = note  # type: ignore[attr-defined]
        if example is not None:
            module.example_inputs = example  # type: ignore[attr-defined]
        from .program_dims import program_dynamic_axes

        module.dynamic_axes = program_dynamic_axes(ep)  # type: ignore[attr-defined]  (its own dynamic dims)
        return module

    # torch.save
    try:
        obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as e:
        if _is_weights_only_refusal(e):
            if not trust_pickle:
                raise DcnError(f"'{p}' is a pickled Python object (e.g. a whole nn.Module); {PICKLE_HINT}") from None
            _cwd_importable()
            try:
                obj = torch.load(str(p), map_location="cpu", weights_only=False)
            except Exception as e2:
                raise DcnError(f"cannot unpickle '{p}': {describe(e2)}") from None
        else:
            raise DcnError(f"cannot read '{p}' as a torch.save file (corrupt or truncated?): {describe(e)}") from None

    if isinstance(obj, nn.Module):
        if factory is not None:
            raise DcnError(f"--factory applies to state-dict files; '{p}' holds a whole {type(obj).__name__}")
        return obj
    if isinstance(obj, Mapping) and isinstance(obj.get("model"), nn.Module) and factory is None:
        return obj["model"]
    sd = _find_state_dict(obj)
    if sd is None:
        raise DcnError(f"'{p}' holds a {type(obj).__name__}, expected an nn.Module or a state dict of tensors")
    if factory is None:
        raise DcnError(
            f"'{p}' holds a state dict ({len(sd)} tensors); give the model's constructor with --factory MODULE:CALLABLE"
        )
    model = _build(factory)
    _load_state_dict(model, sd, p, factory if isinstance(factory, str) else getattr(factory, "__qualname__", "?"))
    return model


def _is_weights_only_refusal(exc: BaseException) -> bool:
    import pickle

    return isinstance(exc, pickle.UnpicklingError) and "weights only" in str(exc).lower()
