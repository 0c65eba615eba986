"""What every command prints besides its errors: progress bars (tqdm, on a terminal and not with
``-q``), stage times (:class:`Stages`), plain text tables and the notes beside them."""
from __future__ import annotations

import importlib.util
import sys
import time
from typing import Any, Iterable, Optional, Sequence

from .cli import DEFAULT, QUIET


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
    from tqdm import tqdm  # noqa: PLC0415  (only when a bar is drawn: checked above that tqdm exists)

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
