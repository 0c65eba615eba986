"""Nothing half-written: every output file of the project goes through ``atomic_path``."""
from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Union

from dcn_base.errors import DcnError

PathLike = Union[str, "os.PathLike[str]"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(dest: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``dest`` (ending in dest's suffix, which numpy and
    matplotlib choose formats by); on success it is renamed onto ``dest`` with the usual file
    mode, on any exception it is removed and an existing ``dest`` stays untouched."""
    dest = Path(dest)
    parent = dest.parent if str(dest.parent) else Path(".")
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=f".tmp{dest.suffix}", dir=parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(dest: PathLike, data: bytes) -> None:
    with atomic_path(dest) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


class AtomicGroup:
    """Several outputs that replace their destinations together: ``path(dest)`` gives a
    temporary beside each ``dest``; when the ``with`` block ends normally every temporary is
    renamed onto its destination (only then, after all were written); on any exception
    (a full disk, Ctrl-C) every temporary and every directory ``mkdir`` created is removed and
    the old outputs stay untouched."""

    def __init__(self) -> None:
        self._pending: list[tuple[Path, Path]] = []
        self._created: list[Path] = []

    def __enter__(self) -> "AtomicGroup":
        return self

    def mkdir(self, directory: PathLike) -> Path:
        """Create ``directory`` (and parents) if missing; removed again if the group fails."""
        d = Path(directory)
        missing = []
        p = d
        while not p.exists():
            missing.append(p)
            if p.parent == p:
                break
            p = p.parent
        d.mkdir(parents=True, exist_ok=True)
        self._created.extend(missing)  # innermost first
        return d

    def path(self, dest: PathLike) -> Path:
        dest = Path(dest)
        parent = dest.parent if str(dest.parent) else Path(".")
        fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=f".tmp{dest.suffix}", dir=parent)
        os.close(fd)
        self._pending.append((Path(name), dest))
        return Path(name)

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            try:
                mode = 0o666 & ~_umask()
                for tmp, _ in self._pending:
                    os.chmod(tmp, mode)
                for tmp, dest in self._pending:
                    os.replace(tmp, dest)
                return
            except BaseException:
                self._discard()
                raise
        self._discard()

    def _discard(self) -> None:
        for tmp, _ in self._pending:
            tmp.unlink(missing_ok=True)
        for d in self._created:
            try:
                d.rmdir()  # only if still empty
            except OSError:
                pass


@contextmanager
def atomic_output(path: str | os.PathLike):
    """A temporary path next to ``path`` (same suffix), renamed onto it on success
    (dcn_base.atomic.atomic_path), after checking that ``path`` can be written at all."""
    check_writable(path)
    with atomic_path(path) as tmp:
        yield tmp


def check_writable(path: str | os.PathLike) -> Path:
    """Fail before any work when ``path`` cannot be (over)written as a file (every command's outputs);
    returns its directory."""
    path = Path(path)
    if path.is_dir():
        raise DcnError(f"output '{path}' is a directory, expected a file path")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        raise DcnError(f"output directory '{parent}' does not exist")
    if not parent.is_dir():
        raise DcnError(f"output directory '{parent}' is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise DcnError(f"output directory '{parent}' is not writable")
    if path.exists() and not os.access(path, os.W_OK):
        raise DcnError(f"output file '{path}' is not writable")
    return parent


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=json_default) + "\n")


def json_default(o):
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
