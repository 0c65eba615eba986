"""Our TensorRT plugin library: where it is (``dcn_base.libraries``), loading it once per process,
and checking that its creators registered."""
from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any, Optional

from dcn_base import libraries
from dcn_base.errors import DcnError, one_line
from exporter import contract

from .environment import PluginLibraryError


# (creator name, version, namespace) of our plugins, from the op contract.
def _our_plugins() -> list[tuple[str, str, str]]:
    return [(op, contract.PLUGIN_VERSION, contract.PLUGIN_NAMESPACE) for op in contract.OPS]


def resolve_plugin_path(path: Optional[str] = None, *, required: bool = True) -> Optional[str]:
    """The TensorRT plugin library to load: ``path`` if given, else ``dcn_base.libraries.trt_library()``.

    Returns None when nothing was given, the default library is not built and ``required`` is False.
    """
    if path:
        p = Path(path)
        if not p.is_file():
            raise PluginLibraryError(f"plugin library {path!r} does not exist or is not a file")
        return str(p.resolve())
    try:
        found = libraries.trt_library()
    except (DcnError, OSError, LookupError, RuntimeError) as err:
        found, why = None, one_line(err)
    if found:
        return str(found)
    if required:
        if "TensorRT plugin library" in why:  # dcn_base.libraries already says what and how to build
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


def add_plugins_arg(parser, what: str = "") -> None:
    """``--plugins PATH`` on a command line (every command that may load or ship our TensorRT plugins)."""
    parser.add_argument("--plugins", metavar="PATH",
                        help=f"TensorRT plugin library{what} (default: the one this package built)")
