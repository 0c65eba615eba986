"""Load a torch.export archive (``.pt2``) without unpickling anything from it.

``torch.export.load`` unpickles parts of an archive with ``weights_only=False``: the saved
example inputs when the restricted loader refuses them, weights / constants marked
``use_pickle`` in their ``*_config.json``, custom and opaque objects, the weight / constant
files of the legacy format, and it loads AOTInductor shared libraries. Any of those runs
code from the file. So, unless the user passes ``--trust-pickle``:

1. :func:`inspect_pt2` reads the zip directory and the JSON configs (never a pickle) and
   names the first member that loading would unpickle or execute; :func:`load_pt2` refuses
   it with one line naming that member;
2. the example inputs are read here with ``torch.load(weights_only=True)`` (torch's
   restricted unpickler: tensors and containers only, no code); when that refuses them they
   are ignored with a note asking for ``--input``;
3. the program is loaded from an in-memory copy of the archive without the example inputs,
   with ``TORCH_FORCE_WEIGHTS_ONLY_LOAD=1`` so that any ``torch.load`` inside torch is the
   restricted one too (belt and braces for a path the inspection does not know).
"""
from __future__ import annotations

import io
import json
import logging
import os
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, Iterator, Optional

from dcn_base.errors import DcnError

WEIGHTS_DIR = "data/weights/"
CONSTANTS_DIR = "data/constants/"
SAMPLE_INPUTS_DIR = "data/sample_inputs/"
COMPILED_DIRS = ("data/aotinductor/", "data/executorch/", "data/mtia/")
TENSOR_CONSTANT_PREFIX = "tensor_"
# Archives larger than this are not copied into memory to drop their example inputs.
MAX_COPY_BYTES = 8 << 30


@dataclass
class Pt2Inspection:
    root: str  # "name/" prefix of every member
    models: list[str]
    refusal: Optional[tuple[str, str]] = None  # (member, why): loading it would run code
    sample_inputs: dict[str, str] = field(default_factory=dict)  # model -> member


def _strip_root(names: list[str]) -> tuple[str, list[str]]:
    roots = {n.split("/", 1)[0] for n in names}
    if len(roots) == 1 and all("/" in n for n in names):
        root = roots.pop() + "/"
        return root, [n[len(root):] for n in names]
    return "", list(names)


def _config(z: zipfile.ZipFile, member: str) -> dict:
    try:
        cfg = json.loads(z.read(member).decode("utf-8"))
    except (OSError, ValueError, zipfile.BadZipFile, UnicodeDecodeError) as e:
        raise DcnError(f"'{z.filename}': member {member} is not valid JSON ({type(e).__name__}); corrupt archive?") from None
    entries = cfg.get("config") if isinstance(cfg, dict) else None
    if not isinstance(entries, dict):
        raise DcnError(f"'{z.filename}': member {member} has no 'config' table; corrupt archive?")
    return entries


def inspect_pt2(z: zipfile.ZipFile) -> Pt2Inspection:
    """What loading the archive ``z`` would unpickle or execute; reads only the directory and JSON."""
    root, names = _strip_root(z.namelist())
    present = set(names)
    models = [n[len("models/"):-len(".json")] for n in names if n.startswith("models/") and n.endswith(".json")]
    ins = Pt2Inspection(root=root, models=models)

    def refuse(member: str, why: str) -> Pt2Inspection:
        ins.refusal = (root + member, why)
        return ins

    for n in names:
        if n.startswith(COMPILED_DIRS) or PurePosixPath(n).suffix in (".so", ".dll", ".dylib"):
            return refuse(n, "compiled code (AOTInductor / ExecuTorch) that loading would execute")
    if "archive_format" not in present:
        return refuse(names[0] if names else "(empty)", "a legacy torch.export archive whose parts load with pickle")
    for model in models:
        for legacy in (f"{WEIGHTS_DIR}{model}.pt", f"{CONSTANTS_DIR}{model}.pt"):
            if legacy in present:
                return refuse(legacy, "legacy weights / constants stored as a pickle")
        wcfg = f"{WEIGHTS_DIR}{model}_weights_config.json"
        if wcfg in present:
            for fqn, meta in _config(z, root + wcfg).items():
                if not isinstance(meta, dict) or meta.get("use_pickle"):
                    return refuse(f"{WEIGHTS_DIR}{_path_name(meta, fqn)}", f"weight {fqn!r} stored as a pickle")
        ccfg = f"{CONSTANTS_DIR}{model}_constants_config.json"
        if ccfg in present:
            for fqn, meta in _config(z, root + ccfg).items():
                path_name = _path_name(meta, fqn)
                if (not isinstance(meta, dict) or meta.get("use_pickle")
                        or not path_name.startswith(TENSOR_CONSTANT_PREFIX)):
                    return refuse(f"{CONSTANTS_DIR}{path_name}", f"constant {fqn!r} stored as a pickled object")
        sample = f"{SAMPLE_INPUTS_DIR}{model}.pt"
        if sample in present:
            ins.sample_inputs[model] = root + sample
    return ins


def _path_name(meta: Any, fqn: str) -> str:
    name = meta.get("path_name") if isinstance(meta, dict) else None
    return name if isinstance(name, str) else f"? (entry {fqn!r})"


def _restricted_load(data: bytes) -> Any:
    """torch.load with the restricted (weights-only) unpickler; raises on anything else."""
    import torch

    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


@contextmanager
def weights_only_everywhere() -> Iterator[None]:
    """Every torch.load inside uses the restricted unpickler (TORCH_FORCE_WEIGHTS_ONLY_LOAD);
    torch.export's own warnings (with tracebacks) are kept off the terminal."""
    old = os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD")
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    loggers = [logging.getLogger(n) for n in ("torch.export", "torch._export")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TORCH_FORCE_WEIGHTS_ONLY_LOAD", None)
        else:
            os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = old
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


def _copy_without(z: zipfile.ZipFile, drop: set[str]) -> io.BytesIO:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as out:
        for info in z.infolist():
            out.writestr(info.filename, b"" if info.filename in drop else z.read(info.filename))
    buf.seek(0)
    return buf


def load_pt2(path: str) -> tuple[Any, Any, Optional[str]]:
    """(ExportedProgram, example inputs or None, note or None); nothing is unpickled beyond
    tensors. Raises DcnError (one line, naming the member) for an archive that would run code."""
    import torch

    try:
        z = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as e:
        raise DcnError(f"cannot read torch.export program '{path}': {type(e).__name__}: {e}") from None
    with z:
        ins = inspect_pt2(z)
        if ins.refusal is not None:
            member, why = ins.refusal
            raise DcnError(f"'{path}': member {member} is {why}; unpickling runs code from the file, so it is "
                           "loaded only with --trust-pickle")
        if not ins.models:
            raise DcnError(f"'{path}' holds no program (no models/*.json member); corrupt archive?")
        note = None
        example = None
        member = ins.sample_inputs.get("model")
        if member is not None and z.getinfo(member).file_size > 0:
            try:
                example = _restricted_load(z.read(member))
            except Exception:  # noqa: BLE001 - anything the restricted unpickler refuses
                example = None
                note = (f"'{path}': the example inputs ({member}) are a pickle that only loads by running code; "
                        "ignored (give --input NAME:SHAPE)")
        total = sum(i.file_size for i in z.infolist())
        if total > MAX_COPY_BYTES:
            raise DcnError(f"'{path}' unpacks to {total} bytes, expected at most {MAX_COPY_BYTES}")
        source = _copy_without(z, set(ins.sample_inputs.values()))
    try:
        with weights_only_everywhere():
            ep = torch.export.load(source)
    except Exception as e:  # noqa: BLE001
        text = str(e).strip().splitlines()
        raise DcnError(f"cannot load torch.export program '{path}': {type(e).__name__}: "
                       f"{text[0][:300] if text else ''}") from None
    return ep, example, note
