"""Where the built C++ libraries are, and an ONNX Runtime session with our ops.

Shared by both halves (``dcn-export --check`` runs ONNX Runtime with our ops too). The libraries are
found by path, importing neither ``trt_runtime`` nor ``exporter``: CMake installs them into
``INSTALL_LIBDIR`` (``trt_runtime/lib``, its ``DCN_INSTALL_LIBDIR``) under the install prefix, which
is the repository for an in-place build and site-packages for ``pip install`` (the editable
install's "redirect" mode keeps built files there while the sources stay in the repository).

Libraries (built by CMake from ``plugins/``):

* ``libdcn_ort.so``          ONNX Runtime CPU custom ops (every op of the registry)
* ``libdcn_trt_plugins.so``  TensorRT plugins (GPU machines only)
* ``libdcn_host_tests.so``   the math headers over whole tensors, for the tests (ctypes)

Each is looked up in this order: an explicit ``path`` argument > its environment variable
(``DCN_ORT_LIBRARY``, ``DCN_TRT_LIBRARY``, ``DCN_HOST_TEST_LIBRARY``) > ``<repo>/INSTALL_LIBDIR`` >
``INSTALL_LIBDIR`` in site-packages (platlib, purelib, site, user site) > ``<repo>/build/**/``
(a developer's CMake build; the newest wins). A library found nowhere raises
:class:`LibraryNotBuiltError`, one line: which library, where it looked, how to build it.
Importing this module imports neither onnxruntime nor tensorrt.
"""
from __future__ import annotations

import os
import site
import sys
import sysconfig
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence, Union

from .errors import DcnError

REPO = Path(__file__).resolve().parent.parent
# Where CMake installs the libraries, relative to the prefix: plugins/CMakeLists.txt DCN_INSTALL_LIBDIR (tested equal).
INSTALL_LIBDIR = Path("trt_runtime") / "lib"

SETUP_HINT = "build it with `bash scripts/setup.sh`"
TRT_BUILD_HINT = (
    "build it on a GPU machine with CUDA and TensorRT: `bash scripts/build_trt_plugins.sh [TensorRT_ROOT]` "
    "(see README 'TensorRT plugins')"
)


class LibraryNotBuiltError(DcnError, LookupError):
    """A library of ours is not where it should be (not built, or a path that does not exist)."""


@dataclass(frozen=True)
class Library:
    what: str  # for messages
    stem: str  # CMake target name
    env: str  # environment variable overriding the search
    how: str  # how to build it

    @property
    def filename(self) -> str:
        if sys.platform == "win32":
            return f"{self.stem}.dll"
        if sys.platform == "darwin":
            return f"lib{self.stem}.dylib"
        return f"lib{self.stem}.so"


ORT = Library("ONNX Runtime op library", "dcn_ort", "DCN_ORT_LIBRARY", SETUP_HINT)
TRT = Library("TensorRT plugin library", "dcn_trt_plugins", "DCN_TRT_LIBRARY", TRT_BUILD_HINT)
HOST_TESTS = Library("host math test library", "dcn_host_tests", "DCN_HOST_TEST_LIBRARY", SETUP_HINT)


def _package_lib_dirs() -> list[Path]:
    """INSTALL_LIBDIR under the repository (in-place install) and under every site-packages."""
    roots: list[str] = [str(REPO)]
    for key in ("platlib", "purelib"):
        try:
            roots.append(sysconfig.get_paths()[key])
        except KeyError:
            pass
    try:
        roots.extend(site.getsitepackages())
    except AttributeError:  # some virtualenv flavours
        pass
    user = getattr(site, "getusersitepackages", lambda: None)()
    if user:
        roots.append(user)
    unique: list[Path] = []
    for d in (Path(r) / INSTALL_LIBDIR for r in roots):
        if d not in unique:
            unique.append(d)
    return unique


def _build_candidates(filename: str) -> list[Path]:
    build = REPO / "build"
    if not build.is_dir():
        return []
    hits = [p for p in build.rglob(filename) if p.is_file()]
    return sorted(hits, key=lambda p: p.stat().st_mtime, reverse=True)


def locate(lib: Library, path: Union[str, os.PathLike, None] = None) -> Path:
    """The library's path (see the module docstring for the order); LibraryNotBuiltError if none."""
    if path:
        p = Path(path).expanduser()
        if p.is_file():
            return p.resolve()
        raise LibraryNotBuiltError(f"{lib.what}: {str(p)!r} (given as path) is not a file; {lib.how}")
    env = os.environ.get(lib.env)
    if env:
        p = Path(env).expanduser()
        if p.is_file():
            return p.resolve()
        raise LibraryNotBuiltError(f"{lib.what}: {lib.env}={env!r} is not a file; unset it or {lib.how}")
    dirs = _package_lib_dirs()
    for d in dirs:
        if (d / lib.filename).is_file():
            return (d / lib.filename).resolve()
    found = _build_candidates(lib.filename)
    if found:
        return found[0].resolve()
    looked = ", ".join([f"${lib.env}"] + [str(d) for d in dirs] + [str(REPO / "build" / "**")])
    raise LibraryNotBuiltError(f"{lib.what} {lib.filename} is not built (looked in {looked}); {lib.how}")


def ort_library(path: Union[str, os.PathLike, None] = None) -> Path:
    """libdcn_ort: the ONNX Runtime custom ops (``SessionOptions.register_custom_ops_library``)."""
    return locate(ORT, path)


def trt_library(path: Union[str, os.PathLike, None] = None) -> Path:
    """libdcn_trt_plugins: the TensorRT plugins (GPU machines)."""
    return locate(TRT, path)


def host_test_library(path: Union[str, os.PathLike, None] = None) -> Path:
    """libdcn_host_tests: the math header over whole tensors, loaded by the tests with ctypes."""
    return locate(HOST_TESTS, path)


# The libraries registered on each SessionOptions by ort_session (they live as long as the options do).
_REGISTERED: "weakref.WeakKeyDictionary[Any, set[str]]" = weakref.WeakKeyDictionary()


def session_options():
    """``onnxruntime.SessionOptions`` that log nothing themselves (severity 4): every session of ours reports
    an error as the exception it raises, which the commands print as one line, not also as ONNX Runtime's
    own coloured line on stderr."""
    import onnxruntime as ort  # noqa: PLC0415  (heavy; this module stays import-light for the locator)

    so = ort.SessionOptions()
    so.log_severity_level = 4
    return so


def ort_session(
    model: Union[str, os.PathLike, bytes],
    providers: Sequence[Any] = ("CPUExecutionProvider",),
    *,
    sess_options: Any = None,
    library: Union[str, os.PathLike, None] = None,
    **kw: Any,
):
    """An ``onnxruntime.InferenceSession`` for ``model`` (path or serialized bytes) with our ops registered.

    ``sess_options`` (an ``onnxruntime.SessionOptions``) is used as given, with the library
    registered on it once: one options object may serve many sessions (ONNX Runtime refuses a
    session whose options hold the library twice: "Domain already set in registry"). Without
    ``sess_options``, a new one of :func:`session_options`. Other keyword arguments go to ``InferenceSession``.
    """
    import onnxruntime as ort  # noqa: PLC0415  (heavy; this module stays import-light for the locator)

    lib = str(ort_library(library))
    so = sess_options if sess_options is not None else session_options()
    registered = _REGISTERED.setdefault(so, set())
    if lib not in registered:
        so.register_custom_ops_library(lib)
        registered.add(lib)
    if isinstance(model, os.PathLike):
        model = os.fspath(model)
    return ort.InferenceSession(model, sess_options=so, providers=list(providers), **kw)
