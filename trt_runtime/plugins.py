"""Where the built C++ libraries are, and an ONNX Runtime session with our ops.

Libraries (built by CMake from ``plugins/``, installed into ``trt_runtime/lib``):

* ``libdcn_ort.so``          ONNX Runtime CPU custom ops ``dcn::DeformConv2d`` / ``DeformPSROIPool`` / ``DeformRoIPool``
* ``libdcn_trt_plugins.so``  TensorRT plugins (GPU machines only)
* ``libdcn_host_tests.so``   the math header over whole tensors, for the tests (ctypes)

Each is looked up in this order: an explicit ``path`` argument > its environment variable
(``DCN_ORT_LIBRARY``, ``DCN_TRT_LIBRARY``, ``DCN_HOST_TEST_LIBRARY``) > the installed package
(``trt_runtime/lib`` beside each entry of ``trt_runtime.__path__`` and in site-packages; the
editable install's "redirect" mode keeps built files there while the sources stay in the
repository) > ``<repo>/build/**/`` (a developer's CMake build; the newest wins).
A library found nowhere raises :class:`LibraryNotBuiltError`, one line: which library, where
it looked, how to build it. Importing this module imports neither onnxruntime nor tensorrt.
"""
from __future__ import annotations

import argparse
import os
import site
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence, Union

from exporter.errors import DcnError

REPO = Path(__file__).resolve().parent.parent

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
    """trt_runtime/lib beside every entry of the package path and in every site-packages."""
    dirs: list[Path] = []
    import trt_runtime  # noqa: PLC0415  (this package; lazy so that the module stays importable alone)

    for entry in getattr(trt_runtime, "__path__", []):
        dirs.append(Path(entry) / "lib")
    roots: list[str] = []
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
    dirs.extend(Path(r) / "trt_runtime" / "lib" for r in roots)
    unique: list[Path] = []
    for d in dirs:
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
    registered on it; other keyword arguments go to ``InferenceSession``.
    """
    import onnxruntime as ort  # noqa: PLC0415

    lib = ort_library(library)
    so = sess_options if sess_options is not None else ort.SessionOptions()
    so.register_custom_ops_library(str(lib))
    if isinstance(model, os.PathLike):
        model = os.fspath(model)
    return ort.InferenceSession(model, sess_options=so, providers=list(providers), **kw)


def main(argv: Optional[Iterable[str]] = None) -> int:
    """``dcn-plugins [--ort] [--trt]``: print the libraries' paths (both by default)."""
    parser = argparse.ArgumentParser(
        prog="dcn-plugins",
        description="Print the paths of the built dcn libraries: the ONNX Runtime op library "
        "(--ort) and the TensorRT plugin library (--trt); both when neither is given. "
        "Exit 0 when every one asked for is found, else 1 with one line per missing library on stderr.",
    )
    parser.add_argument("--ort", action="store_true", help="the ONNX Runtime op library (libdcn_ort)")
    parser.add_argument("--trt", action="store_true", help="the TensorRT plugin library (libdcn_trt_plugins)")
    from exporter.cli_common import add_common_args, verbosity  # noqa: PLC0415

    add_common_args(parser)
    args = parser.parse_args(None if argv is None else list(argv))
    wanted = [lib for lib, on in ((ORT, args.ort), (TRT, args.trt)) if on] or [ORT, TRT]
    missing = 0
    for lib in wanted:
        try:
            path = locate(lib)
            if verbosity(args) >= 0:
                print(path)
        except LibraryNotBuiltError as err:
            print(f"dcn-plugins: {err}", file=sys.stderr)
            missing += 1
    return 1 if missing else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
