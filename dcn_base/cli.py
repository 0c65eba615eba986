"""What every command line of the project shares: ``--version``, one verbosity scheme, progress, tables.

Used by ``dcn-export`` (exporter.cli) and by ``dcn-build`` / ``dcn-infer`` / ``dcn-compare`` /
``dcn-plugins``, ``dcn-serve``, ``dcn-triton-repo`` (trt_runtime): ``run_command`` turns errors into one line
and an exit code for all of them. It imports nothing of trt_runtime (dependencies go one way) and
nothing heavy at import time.

Verbosity (the same on every command): ``-q`` errors only (-1), default summaries (0), ``-v`` stage
times and Polygraphy's info log (1), ``-vv`` Polygraphy's verbose log (2). Progress bars (tqdm) go
to stderr, only when stderr is a terminal and not with ``-q``.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from typing import Any, Callable, Iterable, Optional, Sequence

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
    from importlib.metadata import PackageNotFoundError, version

    for name in names:
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return None


def _tensorrt_version() -> Optional[str]:
    """TensorRT's version from its distribution, else from importing it (a system install); never raises."""
    found = _dist_version(dict(_VERSIONED)["TensorRT"])
    if found:
        return found
    try:
        if importlib.util.find_spec("tensorrt") is None:
            return None
        import tensorrt  # noqa: PLC0415

        return str(getattr(tensorrt, "__version__", "unknown version"))
    except Exception:  # noqa: BLE001  (a broken TensorRT install is "not usable", not a crash)
        return None


def versions() -> dict[str, Optional[str]]:
    """{'dcn-deploy': ..., 'torch': ..., ..., 'TensorRT': ... or None}; read from package metadata."""
    out: dict[str, Optional[str]] = {"dcn-deploy": _dist_version(("dcn-deploy",)) or "source"}
    for label, names in _VERSIONED:
        out[label] = _tensorrt_version() if label == "TensorRT" else _dist_version(names)
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
    from polygraphy.logger import G_LOGGER  # noqa: PLC0415

    return {QUIET: G_LOGGER.CRITICAL + 10, DEFAULT: G_LOGGER.ERROR, VERBOSE: G_LOGGER.INFO}.get(
        level, G_LOGGER.VERBOSE)


def configure_polygraphy(level: int) -> None:
    """Set Polygraphy's global logger for ``level``; no colour codes unless 'colored' is installed
    (so no "'colored' module is not installed" warning)."""
    if importlib.util.find_spec("polygraphy") is None:
        return
    from polygraphy.logger import G_LOGGER  # noqa: PLC0415

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


# --------------------------------------------------------------------------- progress
def progress_enabled(level: int, stream: Any = None) -> bool:
    stream = stream if stream is not None else sys.stderr
    try:
        tty = bool(stream.isatty())
    except Exception:  # noqa: BLE001
        tty = False
    return level >= DEFAULT and tty and importlib.util.find_spec("tqdm") is not None


def progress_bar(level: int, total: Optional[int] = None, desc: str = "", unit: str = "it", leave: bool = False):
    """A tqdm bar on stderr, or a no-op stand-in when progress is off (-q, stderr not a terminal)."""
    if not progress_enabled(level):
        return _NoBar()
    from tqdm import tqdm  # noqa: PLC0415

    return tqdm(total=total, desc=desc, unit=unit, leave=leave, file=sys.stderr, dynamic_ncols=True)


class _NoBar:
    n = 0

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_description_str(self, *a, **k) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


def process_t0() -> float:
    """``time.perf_counter()`` at the start of this process (Linux: from /proc), so that a command's total
    time includes the interpreter's start-up and imports; elsewhere: now."""
    now = time.perf_counter()
    try:
        import os  # noqa: PLC0415

        with open("/proc/self/stat") as f:
            start_ticks = float(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        age = uptime - start_ticks / os.sysconf("SC_CLK_TCK")
        return now - age if 0 <= age < 86400 else now
    except Exception:  # noqa: BLE001
        return now


class Stages:
    """Wall time per stage, and a progress bar over the stages.

    ``start(name)`` ends the running stage and starts ``name``; ``done()`` ends the last one.
    ``expected``: the stage names planned (the bar's total). ``seconds``: {stage: s}.
    """

    def __init__(self, expected: Sequence[str] = (), level: int = QUIET, prog: str = "",
                 t0: Optional[float] = None) -> None:
        self.expected = list(expected)
        self.seconds: dict[str, float] = {}
        self.t0 = time.perf_counter() if t0 is None else t0
        if t0 is not None:  # the time before this object: start-up (interpreter, imports, arguments)
            self.seconds["start-up"] = time.perf_counter() - t0
        self._name: Optional[str] = None
        self._t = self.t0
        self._bar = progress_bar(level, total=len(self.expected) or None, desc=prog, unit="stage") \
            if self.expected else _NoBar()

    def start(self, name: str) -> None:
        self._finish()
        self._name, self._t = name, time.perf_counter()
        self._bar.set_description_str(name)

    def _finish(self) -> None:
        if self._name is not None:
            self.seconds[self._name] = self.seconds.get(self._name, 0.0) + time.perf_counter() - self._t
            self._name = None
            self._bar.update(1)

    def stop(self) -> None:
        """End the running stage and clear the bar from the terminal (so that lines printed now stay
        clean; the next ``start`` draws it again)."""
        self._finish()
        clear = getattr(self._bar, "clear", None)
        if clear is not None:
            clear()

    def done(self) -> None:
        self._finish()
        self._bar.close()

    @property
    def total(self) -> float:
        return time.perf_counter() - self.t0

    def rows(self) -> list[list[str]]:
        return [[k, f"{v:.2f}"] for k, v in self.seconds.items()] + [["total", f"{self.total:.2f}"]]


def example_shape(dims: Sequence[Any]) -> str:
    """A plausible shape for a hint about dynamic dims (None / a label / negative): a batch (first of
    >= 3 dims) 1, the sides of a 4-D NCHW input 224, others 16; e.g. [?, 3, ?, ?] -> 1x3x224x224."""
    out = []
    for i, d in enumerate(dims):
        if isinstance(d, int) and d >= 0:
            out.append(str(d))
        elif i == 0 and len(dims) >= 3:
            out.append("1")
        elif len(dims) == 4 and i >= 2:
            out.append("224")
        else:
            out.append("16")
    return "x".join(out)


# --------------------------------------------------------------------------- tables
def table(head: Sequence[str], rows: Sequence[Sequence[Any]], indent: str = "") -> list[str]:
    """Lines of a plain text table: columns left-aligned, two spaces apart (every command's summaries)."""
    cells = [[str(c) for c in head]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) if i < len(r) else 0 for r in cells) for i in range(len(head))]
    return [(indent + "  ".join(c.ljust(w) for c, w in zip(r, widths))).rstrip() for r in cells]


# A passing output whose max relative error is above this gets a note: those elements pass on atol.
NOTE_MAX_REL = 0.01


def near_zero_note(max_rels: Iterable[float]) -> list[str]:
    """The note for passing outputs with a large max_rel (elements whose reference is near zero)."""
    if any(r is not None and r > NOTE_MAX_REL for r in max_rels):
        return ["note: max_rel is large only where the reference is near zero; an element fails when its error is "
                "above atol AND above rtol*|ref|, so those elements pass on atol"]
    return []


def fmt_g(x: Any) -> str:
    """3 significant digits; '-' for None."""
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.3g}"
    return str(x)


def run_command(prog: str, body: Callable[[], Optional[int]], verbose: bool = False) -> int:
    """Run a command's body and turn what it raises into one line on stderr and an exit code
    (every ``dcn-*`` command): DcnError -> its ``exit_code`` (2: usage, input, environment),
    Ctrl-C -> 130, a Polygraphy error or any other exception (an I/O error, a failure inside a
    library) -> 2. ``verbose`` (-v) adds the traceback."""
    import traceback

    from .errors import DcnError, first_line, one_line

    try:
        return int(body() or 0)
    except DcnError as err:
        if verbose:
            traceback.print_exception(err.__cause__ or err, file=sys.stderr)
        print(f"{prog}: error: {one_line(err)}", file=sys.stderr, flush=True)
        return getattr(err, "exit_code", 2)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr, flush=True)
        return 130
    except Exception as err:  # noqa: BLE001
        pg = sys.modules.get("polygraphy.exception")
        if pg is not None and isinstance(err, pg.PolygraphyException):
            print(f"{prog}: error: {first_line(err)}", file=sys.stderr, flush=True)
            return 2
        if verbose:
            traceback.print_exception(err, file=sys.stderr)
        hint = "" if verbose else " (-v shows the traceback)"
        print(f"{prog}: error: {type(err).__name__}: {one_line(err)[:400]}{hint}", file=sys.stderr, flush=True)
        return 2
