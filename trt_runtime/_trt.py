"""Lazy TensorRT / CUDA imports and the environment checks around them.

Nothing here imports ``tensorrt`` or ``cuda`` at module import time: the CPU half of the
project (dcn-compare against ONNX Runtime, the tests) must run on machines without them.
Every failure the user can fix becomes a :class:`TrtEnvironmentError` subclass whose message
is one line: what is missing, and how to get it.
"""
from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from exporter.errors import DcnError, one_line  # noqa: F401  (one_line: used by the runtime's modules)

MIN_TRT_MAJOR = 10  # our plugins are IPluginV3 (TensorRT >= 10)

TRT_INSTALL_HINT = (
    "install it on a GPU machine with `pip install 'dcn-deploy[tensorrt]'` "
    "(or `pip install tensorrt` with NVIDIA's package index as an extra index)"
)

# (creator name, version, namespace) of our plugins, from the op contract.
def _our_plugins() -> list[tuple[str, str, str]]:
    from exporter import contract

    return [(op, contract.PLUGIN_VERSION, contract.PLUGIN_NAMESPACE) for op in contract.OPS]


class TrtEnvironmentError(DcnError):
    """Something outside the project is missing or incompatible (exit code 2)."""


class TensorRTNotInstalled(TrtEnvironmentError):
    pass


class CudaUnavailable(TrtEnvironmentError):
    pass


class PluginLibraryError(TrtEnvironmentError):
    pass


class EngineIncompatible(TrtEnvironmentError):
    pass


# --------------------------------------------------------------------------- TensorRT


def import_tensorrt():
    """Import and return ``tensorrt``; raise :class:`TensorRTNotInstalled` with an install hint."""
    try:
        import tensorrt as trt  # noqa: PLC0415
    except ImportError as err:
        raise TensorRTNotInstalled(f"TensorRT is not installed ({one_line(err)}); {TRT_INSTALL_HINT}") from None
    except OSError as err:  # the wheel is there, its shared libraries are not loadable
        raise TensorRTNotInstalled(
            f"TensorRT is installed but its libraries failed to load ({one_line(err)}); "
            f"check the CUDA driver and reinstall: {TRT_INSTALL_HINT}"
        ) from None
    version = getattr(trt, "__version__", None)
    if not version or not hasattr(trt, "Logger"):
        raise TensorRTNotInstalled(
            f"the installed 'tensorrt' package is a placeholder without TensorRT's libraries "
            f"(found {getattr(trt, '__file__', '?')}); {TRT_INSTALL_HINT}"
        )
    major = version_tuple(version)[0]
    if major < MIN_TRT_MAJOR:
        raise TensorRTNotInstalled(
            f"TensorRT {version} is too old: the dcn plugins implement IPluginV3 and need TensorRT >= "
            f"{MIN_TRT_MAJOR}; {TRT_INSTALL_HINT}"
        )
    return trt


def version_tuple(version: str) -> tuple[int, ...]:
    """'10.14.1.48.post1' -> (10, 14, 1, 48); raises DcnError for text without a leading number."""
    parts = []
    for piece in str(version).split("."):
        m = re.match(r"\d+", piece)
        if not m:
            break
        parts.append(int(m.group()))
    if not parts:
        raise DcnError(f"cannot read a version number from {version!r}; expected e.g. '10.14.1'")
    return tuple(parts)


def make_logger(trt, severity: Optional[str] = None):
    """A TensorRT ILogger that prints warnings and errors to stderr and keeps the messages.

    ``logger.messages`` holds (severity name, message) of everything at WARNING or above, so a
    failure can be explained afterwards in one line.
    """
    import sys

    min_sev = int(getattr(trt.Logger, (severity or "WARNING").upper()))
    warning = int(trt.Logger.WARNING)

    class _Logger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.messages: list[tuple[str, str]] = []
            self.quiet = False

        def log(self, sev, msg):  # noqa: D401  (TensorRT callback; lower severity value = more severe)
            label = getattr(sev, "name", None) or str(sev).split(".")[-1]
            if int(sev) <= warning:
                self.messages.append((label, msg))
            if int(sev) <= min_sev and not self.quiet:
                print(f"[TensorRT {label}] {msg}", file=sys.stderr)

    return _Logger()


# --------------------------------------------------------------------------- CUDA


def import_cudart():
    """cuda-python's runtime module: ``cuda.bindings.runtime`` (>= 12.6) or ``cuda.cudart``."""
    try:
        from cuda.bindings import runtime as cudart  # noqa: PLC0415

        return cudart
    except ImportError:
        pass
    try:
        from cuda import cudart  # noqa: PLC0415

        return cudart
    except ImportError as err:
        raise CudaUnavailable(
            f"cuda-python is not installed ({one_line(err)}); install it with `pip install 'dcn-deploy[tensorrt]'` "
            "or `pip install cuda-python`"
        ) from None


def cuda_device_count() -> tuple[int, str]:
    """(number of CUDA devices, reason when 0). Uses cuda-python, else torch."""
    try:
        cudart = import_cudart()
    except CudaUnavailable as err:
        try:
            import torch  # noqa: PLC0415
        except ImportError:
            return 0, str(err)
        if torch.cuda.is_available():
            return torch.cuda.device_count(), ""
        return 0, "torch.cuda.is_available() is False"
    try:
        err, count = cudart.cudaGetDeviceCount()
    except Exception as exc:  # noqa: BLE001  (driver library missing / broken)
        return 0, one_line(exc)
    if int(err) != 0:
        try:
            _, text = cudart.cudaGetErrorString(err)
            text = text.decode() if isinstance(text, bytes) else str(text)
        except Exception:  # noqa: BLE001
            text = str(err)
        name = getattr(err, "name", str(err))
        return 0, f"{text} ({name})"
    return int(count), "" if count else "cudaGetDeviceCount() found 0 devices"


def require_cuda_device() -> None:
    count, why = cuda_device_count()
    if count <= 0:
        raise CudaUnavailable(
            f"no CUDA device: {why}; TensorRT engines need an NVIDIA GPU with its driver installed"
        )


def check_cuda(result, what: str):
    """Unpack a cuda-python call's (err, *values) tuple; raise DcnError naming the call on failure."""
    if not isinstance(result, tuple):
        result = (result,)
    err, rest = result[0], result[1:]
    if int(err) != 0:
        raise TrtEnvironmentError(f"CUDA error in {what}: {getattr(err, 'name', err)}")
    if not rest:
        return None
    return rest[0] if len(rest) == 1 else rest


# --------------------------------------------------------------------------- plugins


def resolve_plugin_path(path: Optional[str] = None, *, required: bool = True) -> Optional[str]:
    """The TensorRT plugin library to load: ``path`` if given, else ``trt_runtime.plugins.trt_library()``.

    Returns None when nothing was given, the default library is not built and ``required`` is False.
    """
    if path:
        p = Path(path)
        if not p.is_file():
            raise PluginLibraryError(f"plugin library {path!r} does not exist or is not a file")
        return str(p.resolve())
    try:
        from trt_runtime import plugins  # noqa: PLC0415  (helper A's module)

        found = plugins.trt_library()
    except ImportError as err:
        found, why = None, f"trt_runtime.plugins cannot be imported ({one_line(err)})"
    except (DcnError, OSError, LookupError, RuntimeError) as err:
        found, why = None, one_line(err)
    if found:
        return str(found)
    if required:
        if "TensorRT plugin library" in why:  # trt_runtime.plugins already says what and how to build
            raise PluginLibraryError(f"{why}; or pass --plugins PATH")
        raise PluginLibraryError(
            f"TensorRT plugin library not built: {why}; build it on a GPU machine with TensorRT "
            "(see README 'GPU machine') or pass --plugins PATH"
        )
    return None


def _find_creator(trt, name: str, version: str, namespace: str):
    registry = trt.get_plugin_registry()
    for getter in ("get_creator", "get_plugin_creator"):
        fn = getattr(registry, getter, None)
        if fn is None:
            continue
        try:
            creator = fn(name, version, namespace)
        except Exception:  # noqa: BLE001
            creator = None
        if creator is not None:
            return creator
    for creator in getattr(registry, "all_creators", None) or []:  # TensorRT >= 10: V2 and V3 creators
        try:
            if (creator.name, str(creator.plugin_version), creator.plugin_namespace or "") == (name, version, namespace):
                return creator
        except Exception:  # noqa: BLE001  (an interface without these attributes)
            continue
    return None


def missing_creators(trt) -> list[str]:
    return [f"{n} (version {v!r})" for n, v, ns in _our_plugins() if _find_creator(trt, n, v, ns) is None]


_LOADED: dict[str, Any] = {}


def load_plugin_library(trt, path: str) -> str:
    """Load our plugin library so that its creators are in TensorRT's registry.

    First ``ctypes.CDLL`` (what Polygraphy's ``LoadPlugins`` / ``--plugins`` does; libraries
    with static registration are done then); if the creators are still missing, TensorRT's
    ``IPluginRegistry.load_library`` (the ``getCreators`` entry point, as ``trtexec
    --dynamicPlugins``). Raises PluginLibraryError naming what is missing.
    """
    path = str(Path(path).resolve())
    if path in _LOADED:
        return path
    try:
        _LOADED[path] = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
    except OSError as err:
        raise PluginLibraryError(f"cannot load plugin library {path!r}: {one_line(err)}") from None
    if missing_creators(trt):
        try:
            handle = trt.get_plugin_registry().load_library(path)
        except Exception as err:  # noqa: BLE001
            handle = None
            why = one_line(err)
        else:
            why = "IPluginRegistry.load_library returned nothing"
        if handle is None and missing_creators(trt):
            raise PluginLibraryError(f"plugin library {path!r} could not be registered with TensorRT: {why}")
    still = missing_creators(trt)
    if still:
        raise PluginLibraryError(f"plugin library {path!r} loaded, but TensorRT's registry lacks {', '.join(still)}")
    return path


# --------------------------------------------------------------------------- engines


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


# --------------------------------------------------------------------------- files


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike):
    """A temporary path next to ``path`` (same suffix), renamed onto it on success
    (exporter.atomic.atomic_path), after checking that ``path`` can be written at all."""
    from exporter.atomic import atomic_path  # noqa: PLC0415

    check_writable(path)
    with atomic_path(path) as tmp:
        yield tmp


def check_writable(path: str | os.PathLike) -> Path:
    """Raise DcnError unless ``path`` can be (over)written as a file; returns its directory."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise DcnError(f"cannot write {str(path)!r}: directory {str(parent)!r} does not exist")
    if path.is_dir():
        raise DcnError(f"cannot write {str(path)!r}: it is a directory")
    if not os.access(parent, os.W_OK):
        raise DcnError(f"cannot write {str(path)!r}: directory {str(parent)!r} is not writable")
    return parent


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(o):
    try:
        import numpy as np  # noqa: PLC0415

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:
        pass
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")
