"""TensorRT in this environment: the errors the user can fix (one line: what is missing, how to
get it; exit code 2), the lazy ``import tensorrt`` with its version check, and its logger.

Nothing here imports ``tensorrt`` at module import time: the CPU half of the project must run
on machines without it."""
from __future__ import annotations

import re
from typing import Optional

from dcn_base.errors import DcnError, one_line


MIN_TRT_MAJOR = 10  # our plugins are IPluginV3 (TensorRT >= 10)


TRT_INSTALL_HINT = (
    "install it on a GPU machine with `pip install 'dcn-deploy[tensorrt]'` "
    "(or `pip install tensorrt` with NVIDIA's package index as an extra index)"
)


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
