"""The files a documented or printed command says it writes: they must exist after it ran.

``written_paths(argv)``: the paths after ``-o`` / ``--output`` / ``--report`` / ``--plot`` (files or
folders) and ``--save-io`` (a folder with inputs.* and outputs.*), relative to ``cwd``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

OUTPUT_FLAGS = ("-o", "--output", "--report", "--plot")


def written_paths(argv: Sequence[str]) -> list[tuple[str, str]]:
    """[(flag, path)] of the outputs a command line names (``--flag=value`` too)."""
    out = []
    args = list(argv)
    for i, a in enumerate(args):
        flag, eq, value = a.partition("=")
        if flag in OUTPUT_FLAGS + ("--save-io",):
            if eq:
                out.append((flag, value))
            elif i + 1 < len(args):
                out.append((flag, args[i + 1]))
    return out


def missing_outputs(argv: Sequence[str], cwd: Path, since: Optional[float] = None) -> list[str]:
    """The named outputs of ``argv`` that do not exist under ``cwd`` (empty: all there); with
    ``since`` (a time.time()), also those not written since then (stale files from an earlier run)."""
    missing = []
    for flag, value in written_paths(argv):
        p = Path(value) if Path(value).is_absolute() else cwd / value
        files = [p]
        if flag == "--save-io":
            files = [next(iter(sorted(p.glob(f"{stem}.*"))), p / f"{stem}.*") for stem in ("inputs", "outputs")]
        if not all(f.exists() and (since is None or f.stat().st_mtime >= since - 1) for f in files):
            missing.append(f"{flag} {value}")
    return missing
