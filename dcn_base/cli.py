"""What every command line of the project shares: ``--version``, one verbosity scheme, and errors ->
one line and an exit code (``run_command``).

Used by ``dcn-export`` (exporter.cli) and by ``dcn-build`` / ``dcn-infer`` / ``dcn-compare`` /
``dcn-plugins``, ``dcn-serve``, ``dcn-triton-repo`` (trt_runtime). Imports nothing of either half
and nothing heavy at import time (Polygraphy only when its logger is configured).

Verbosity (the same on every command): ``-q`` errors only (-1), default summaries (0), ``-v`` stage
times and Polygraphy's info log (1), ``-vv`` Polygraphy's verbose log (2). Progress, stage times
and tables: :mod:`dcn_base.console`.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
import traceback
from importlib.metadata import PackageNotFoundError, version
from typing import Callable, Iterable, Optional, Sequence

from .errors import DcnError, first_line, one_line

QUIET, DEFAULT, VERBOSE, VERY_VERBOSE = -1, 0, 1, 2

# distributions reported by --version: (label, distribution names tried in order)
_VERSIONED = (
    ("torch", ("torch",)),
    ("onnx", ("onnx",)),
    ("onnxruntime", ("onnxruntime", "onnxruntime-gpu")),
    ("polygraphy", ("polygraphy",)),
    ("TensorRT", ("tensorrt", "tensorrt-cu13", "tensorrt-cu12", "tensorrt-cu11")),
)


# --------------------------------------------------------------------------- --version
def _dist_version(names: Sequence[str]) -> Optional[str]:
    for name in names:
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return None


def versions() -> dict[str, Optional[str]]:
    """{'dcn-deploy': ..., 'torch': ..., ..., 'TensorRT': ... or None}; read from package metadata only
    (nothing is imported: a TensorRT without its distribution's metadata reads as not installed)."""
    out: dict[str, Optional[str]] = {"dcn-deploy": _dist_version(("dcn-deploy",)) or "source"}
    for label, names in _VERSIONED:
        out[label] = _dist_version(names)
    out["python"] = sys.version.split()[0]
    return out


def version_text(prog: str) -> str:
    v = versions()
    lines = [f"{prog} {v.pop('dcn-deploy')} (dcn-deploy)"]
    lines += [f"  {k} {val if val else 'not installed'}" for k, val in v.items()]
    return "\n".join(lines)


class _VersionAction(argparse.Action):
    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(version_text(parser.prog), flush=True)
        parser.exit(0)


def add_common_args(parser: argparse.ArgumentParser, verbose_help: str = "") -> argparse.ArgumentParser:
    """``--version``, ``-q/--quiet`` and ``-v/--verbose`` (repeatable: -vv) on ``parser``."""
    parser.add_argument("--version", action=_VersionAction,
                        help="print the versions of this package, torch, onnx, onnxruntime, polygraphy and TensorRT")
    parser.add_argument("-q", "--quiet", action="store_true", help="print errors only (no summary, no progress)")
    extra = f"; {verbose_help}" if verbose_help else ""
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help=f"-v: stage times and Polygraphy's info log{extra}; -vv: Polygraphy's verbose log")
    return parser


def verbosity(args: argparse.Namespace) -> int:
    """-1 (-q), 0 (default), 1 (-v), 2 (-vv or more)."""
    if getattr(args, "quiet", False):
        return QUIET
    return min(int(getattr(args, "verbose", 0) or 0), VERY_VERBOSE)


def polygraphy_severity(level: int) -> int:
    """Polygraphy logger severity for a verbosity level: quiet by default (errors only)."""
    from polygraphy.logger import G_LOGGER  # noqa: PLC0415  (polygraphy: heavy, imported when used)

    return {QUIET: G_LOGGER.CRITICAL + 10, DEFAULT: G_LOGGER.ERROR, VERBOSE: G_LOGGER.INFO}.get(
        level, G_LOGGER.VERBOSE)


def configure_polygraphy(level: int) -> None:
    """Set Polygraphy's global logger for ``level``; no colour codes unless 'colored' is installed
    (so no "'colored' module is not installed" warning)."""
    if importlib.util.find_spec("polygraphy") is None:
        return
    from polygraphy.logger import G_LOGGER  # noqa: PLC0415  (polygraphy: heavy, imported when used)

    G_LOGGER.colors = importlib.util.find_spec("colored") is not None
    G_LOGGER.module_severity = polygraphy_severity(level)


def join_option_values(argv: Optional[Sequence[str]], options: Iterable[str]) -> Optional[list[str]]:
    """``--val-range -2,2`` -> ``--val-range=-2,2``: argparse takes a value starting with '-' for an option."""
    if argv is None:
        argv = sys.argv[1:]
    options = set(options)
    out: list[str] = []
    it = iter(list(argv))
    for arg in it:
        if arg in options:
            nxt = next(it, None)
            if nxt is None:
                out.append(arg)
            elif nxt.startswith("-") and len(nxt) > 1 and (nxt[1].isdigit() or nxt[1] == "."):
                out.append(f"{arg}={nxt}")
            else:
                out += [arg, nxt]
        else:
            out.append(arg)
    return out


def process_t0() -> float:
    """``time.perf_counter()`` at the start of this process (Linux: from /proc), so that a command's total
    time includes the interpreter's start-up and imports; elsewhere: now."""
    now = time.perf_counter()
    try:
        with open("/proc/self/stat") as f:
            start_ticks = float(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        age = uptime - start_ticks / os.sysconf("SC_CLK_TCK")
        return now - age if 0 <= age < 86400 else now
    except Exception:  # noqa: BLE001
        return now


def run_command(prog: str, body: Callable[[], Optional[int]], verbose: bool = False) -> int:
    """Run a command's body and turn what it raises into one line on stderr and an exit code
    (every ``dcn-*`` command): DcnError -> its ``exit_code`` (2: usage, input, environment),
    Ctrl-C -> 130, a Polygraphy error or any other exception (an I/O error, a failure inside a
    library) -> 2. ``verbose`` (-v) adds the traceback."""
    try:
        return int(body() or 0)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr, flush=True)
        return 130
    except Exception as err:  # noqa: BLE001
        if _interrupt_swallowed():  # the console scripts' Ctrl-C, turned into an error by a library
            print(f"{prog}: interrupted", file=sys.stderr, flush=True)
            return 130
        return _report_error(prog, err, verbose)


def _interrupt_swallowed() -> bool:
    """Did the console scripts' shim (dcn_base.entry, loaded only by them) raise its KeyboardInterrupt?"""
    shim = sys.modules.get("dcn_base.entry")
    return shim is not None and shim.interrupted()


def _report_error(prog: str, err: Exception, verbose: bool) -> int:
    """One line for ``err`` on stderr and its exit code (see :func:`run_command`)."""
    if isinstance(err, DcnError):
        if verbose:
            traceback.print_exception(err.__cause__ or err, file=sys.stderr)
        print(f"{prog}: error: {one_line(err)}", file=sys.stderr, flush=True)
        return getattr(err, "exit_code", 2)
    pg = sys.modules.get("polygraphy.exception")
    if pg is not None and isinstance(err, pg.PolygraphyException):
        print(f"{prog}: error: {first_line(err)}", file=sys.stderr, flush=True)
        return 2
    if verbose:
        traceback.print_exception(err, file=sys.stderr)
    hint = "" if verbose else " (-v shows the traceback)"
    print(f"{prog}: error: {type(err).__name__}: {one_line(err)[:400]}{hint}", file=sys.stderr, flush=True)
    return 2
