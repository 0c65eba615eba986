"""TensorRT engine files: deserialization with our plugins (failures classified in one line), the
``.build.json`` beside an engine, its I/O tensors, and shape / list arguments."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Iterable, Optional, Sequence

from dcn_base.errors import DcnError, one_line
from .environment import EngineIncompatible, PluginLibraryError, make_logger
from .plugin_loader import load_plugin_library, resolve_plugin_path


def classify_deserialize_failure(messages: Iterable[str]) -> tuple[str, str]:
    """(kind, the most telling message) for TensorRT's log of a failed deserialization.

    kind: "version" (built by another TensorRT), "device" (built for another GPU), "plugin"
    (a plugin creator is not registered), "format" (not an engine at all), "unknown".
    """
    msgs = [one_line(m) for m in messages if m]
    rules = (
        ("version", r"(not compatible with this version|version tag does not match|"
                    r"serialization version|expecting library version|please rebuild|"
                    r"engine (plan|file).*version|versions? (do not|don't) match)"),
        ("device", r"(incompatible device|expecting compute|compute capability)"),
        ("plugin", r"(plugin|creator).*(not found|cannot|could not|failed|unable|missing)|"
                   r"(cannot|could not|failed to|unable to).*(plugin|creator)"),
        ("format", r"(magic tag|magictag|does not match the expected|invalid (engine|plan)|"
                   r"not a valid|truncated|too small|corrupt)"),
    )
    for kind, pattern in rules:
        for m in msgs:
            if re.search(pattern, m, re.IGNORECASE):
                # "please rebuild" also ends the device message: let the device rule win there.
                if kind == "version" and re.search(rules[1][1], m, re.IGNORECASE):
                    return "device", m
                return kind, m
    return "unknown", (msgs[-1] if msgs else "")


def build_info_path(engine_path: str | os.PathLike) -> Path:
    """The side file dcn-build writes next to an engine (TensorRT version, precision, shapes)."""
    return Path(str(engine_path) + ".build.json")


def read_build_info(engine_path: str | os.PathLike) -> dict:
    p = build_info_path(engine_path)
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return {}


def deserialize_engine(trt, path: str, *, plugins: Optional[str] = None, plugins_required: bool = False,
                       logger=None):
    """Deserialize an engine file with our plugins loaded; one-line errors for every failure.

    Returns (engine, runtime, logger); keep the runtime alive as long as the engine.
    """
    p = Path(path)
    if not p.is_file():
        raise DcnError(f"engine {str(path)!r} does not exist or is not a file")
    plugin_path = resolve_plugin_path(plugins, required=plugins_required)
    if plugin_path:
        load_plugin_library(trt, plugin_path)
    logger = logger or make_logger(trt, "ERROR")
    logger.quiet = True
    runtime = trt.Runtime(logger)
    try:
        trt.init_libnvinfer_plugins(logger, "")
    except Exception:  # noqa: BLE001  (the builtin plugin library is optional)
        pass
    data = p.read_bytes()
    try:
        engine = runtime.deserialize_cuda_engine(data)
    except Exception as err:  # noqa: BLE001  (some versions raise instead of returning None)
        engine = None
        logger.messages.append(("ERROR", str(err)))
    logger.quiet = False
    if engine is not None:
        return engine, runtime, logger
    kind, msg = classify_deserialize_failure(m for _, m in logger.messages)
    info = read_build_info(path)
    built = f" (built with TensorRT {info['trt_version']})" if info.get("trt_version") else ""
    have = getattr(trt, "__version__", "?")
    if kind == "version" or (info.get("trt_version") and info["trt_version"] != have and kind == "unknown"):
        raise EngineIncompatible(
            f"engine {str(path)!r} was built by another TensorRT version{built} and cannot be loaded by the "
            f"installed TensorRT {have}; rebuild it with dcn-build ({msg})"
        )
    if kind == "device":
        raise EngineIncompatible(f"engine {str(path)!r} was built for another GPU; rebuild it on this machine ({msg})")
    if kind == "plugin":
        where = f"loaded {plugin_path!r}" if plugin_path else "no plugin library was loaded (not built?)"
        raise PluginLibraryError(
            f"engine {str(path)!r} needs a plugin that is not registered ({where}); pass --plugins PATH ({msg})"
        )
    if kind == "format":
        raise EngineIncompatible(f"{str(path)!r} is not a TensorRT engine or is corrupted ({msg})")
    hint = "" if plugin_path else "; no plugin library was loaded (not built?)"
    raise EngineIncompatible(
        f"TensorRT could not deserialize engine {str(path)!r}{built}: {msg or 'no reason logged'}{hint}"
    )


def io_tensors(trt, engine) -> tuple[list[str], list[str]]:
    """(input names, output names) of an engine, in binding order."""
    inputs, outputs = [], []
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        (inputs if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else outputs).append(name)
    return inputs, outputs


def parse_shape(text: str, what: str = "shape") -> tuple[int, ...]:
    """'1x3x224x224' -> (1, 3, 224, 224); a scalar is ''."""
    text = text.strip()
    if text in ("", "scalar"):
        return ()
    dims = []
    for piece in re.split(r"[x,×]", text):
        piece = piece.strip()
        if not re.fullmatch(r"\d+", piece):
            raise DcnError(f"{what} {text!r}: expected positive integers separated by 'x', e.g. 1x3x224x224")
        dims.append(int(piece))
    return tuple(dims)


def as_list(value: Optional[Sequence[str] | str]) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike)):
        return [str(value)]
    return [str(v) for v in value]
