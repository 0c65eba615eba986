"""Nothing half-written: every output file of the project goes through ``atomic_path``.

Ctrl-C (SIGINT) is held back (:func:`uninterrupted`) while a temporary is created and recorded, and
while outputs are renamed onto their destinations, so that an interrupt never leaves a temporary behind
nor only some outputs of a group replaced: it is delivered when that step is over (and then removes
the temporaries of the work not yet committed). A command whose last interruptible step is a commit
marks it (:func:`final_commit`): from that commit on the command is done, so that its
"interrupted" (exit 130) means that no output was replaced."""
from __future__ import annotations

import json
import math
import os
import signal
import sys
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Union

import numpy as np

from .errors import DcnError

PathLike = Union[str, "os.PathLike[str]"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def uninterrupted() -> Iterator[None]:
    """Hold Ctrl-C back for the block (main thread only: where Python runs signal handlers); a Ctrl-C that
    came meanwhile goes to the handler that was installed (KeyboardInterrupt, the console scripts' shim,
    ...) when the block ends."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    frames: list[Any] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: frames.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if frames:
            if callable(previous):
                previous(signal.SIGINT, frames[-1])
            elif previous == signal.SIG_DFL:
                os.kill(os.getpid(), signal.SIGINT)


_final = {"on": False}


@contextmanager
def final_commit() -> Iterator[None]:
    """The next commit in the block (an ``atomic_path`` or ``AtomicGroup`` renaming its outputs) is the
    command's last interruptible step: from it on, under the console scripts' shim (dcn_base.entry),
    Ctrl-C is ignored and the command ends with its own code, also for a Ctrl-C that came during the
    renames. Without it, such a Ctrl-C would end the command as "interrupted" (130) with its outputs
    replaced. Without the shim (library use) a KeyboardInterrupt is delivered as usual."""
    before = _final["on"]
    _final["on"] = True
    try:
        yield
    finally:
        _final["on"] = before


def _committed() -> None:
    """Outputs were just renamed (inside ``uninterrupted``): the command is done if that was its final commit."""
    shim = sys.modules.get("dcn_base.entry")
    if _final["on"] and shim is not None:
        shim.outputs_committed()


def _temporary(dest: Path) -> Path:
    parent = dest.parent if str(dest.parent) else Path(".")
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=f".tmp{dest.suffix}", dir=parent)
    os.close(fd)
    return Path(name)


@contextmanager
def atomic_path(dest: PathLike, commit: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``dest`` (ending in dest's suffix, which numpy and
    matplotlib choose formats by); on success it is renamed onto ``dest`` with the usual file
    mode, on any exception (Ctrl-C too) it is removed and an existing ``dest`` stays untouched.
    ``commit=False``: a side output whose rename is not the command's commit (``final_commit``)."""
    dest = Path(dest)
    tmp = None
    try:
        with uninterrupted():
            tmp = _temporary(dest)
        yield tmp
        with uninterrupted():
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600
            os.replace(tmp, dest)
            if commit:
                _committed()
    except BaseException:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def write_bytes_atomic(dest: PathLike, data: bytes) -> None:
    with atomic_path(dest) as tmp:
        _write_synced(tmp, data)


class AtomicGroup:
    """Several outputs that replace their destinations together: ``path(dest)`` gives a
    temporary beside each ``dest``; when the ``with`` block ends normally every temporary is
    renamed onto its destination (only then, after all were written); on any exception
    (a full disk, Ctrl-C) every temporary and every directory ``mkdir`` created is removed and
    the old outputs stay untouched. ``remove(dest)``: a stale file that goes with the old outputs,
    removed right after the renames (only then)."""

    def __init__(self) -> None:
        self._pending: list[tuple[Path, Path]] = []
        self._created: list[Path] = []
        self._stale: list[Path] = []

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
        with uninterrupted():  # created and recorded together
            d.mkdir(parents=True, exist_ok=True)
            self._created.extend(missing)  # innermost first
        return d

    def path(self, dest: PathLike) -> Path:
        dest = Path(dest)
        with uninterrupted():  # created and recorded together
            tmp = _temporary(dest)
            self._pending.append((tmp, dest))
        return tmp

    def remove(self, dest: PathLike) -> None:
        """Remove ``dest`` (if it is there) when the group commits, after its renames."""
        self._stale.append(Path(dest))

    def write_bytes(self, dest: PathLike, data: bytes) -> Path:
        """``data`` into the temporary of ``dest`` (written through to the disk); renamed with the group."""
        tmp = self.path(dest)
        _write_synced(tmp, data)
        return tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                # a destination that is a directory would fail its rename after others were done
                for _, dest in self._pending:
                    if dest.is_dir():
                        raise DcnError(f"output '{dest}' is a directory, expected a file path; nothing was replaced")
                for stale in self._stale:
                    if stale.is_dir():
                        raise DcnError(f"'{stale}' is a directory, expected a file to remove; nothing was replaced")
                with uninterrupted():  # all renamed, or (an error) none
                    mode = 0o666 & ~_umask()
                    for tmp, _ in self._pending:
                        os.chmod(tmp, mode)
                    done: list[Path] = []
                    for tmp, dest in self._pending:
                        try:
                            os.replace(tmp, dest)
                        except OSError as e:
                            replaced = f"; already replaced: {', '.join(map(str, done))}" if done else \
                                "; nothing was replaced"
                            raise DcnError(f"cannot replace '{dest}': {e.strerror or e}{replaced}") from e
                        done.append(dest)
                    for stale in self._stale:
                        try:
                            stale.unlink(missing_ok=True)
                        except OSError as e:
                            raise DcnError(f"cannot remove the stale '{stale}': {e.strerror or e}; "
                                           f"already replaced: {', '.join(map(str, done)) or 'nothing'}") from e
                    _committed()
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
def atomic_output(path: str | os.PathLike, commit: bool = True):
    """A temporary path next to ``path`` (same suffix), renamed onto it on success
    (dcn_base.atomic.atomic_path), after checking that ``path`` can be written at all."""
    check_writable(path)
    with atomic_path(path, commit) as tmp:
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


def _same_file_key(path: str | os.PathLike) -> tuple:
    """What names one file: its device and inode where it exists (hard links too), else its real path."""
    try:
        st = os.stat(path)
        return ("inode", st.st_dev, st.st_ino)
    except OSError:
        return ("path", os.path.realpath(path))


def check_distinct(outputs: Mapping[str, Optional[str | os.PathLike]],
                   inputs: Mapping[str, Optional[str | os.PathLike]] = {}) -> None:  # noqa: B006 (read only)
    """Fail before any work when an output would replace one of the command's inputs or another of its
    outputs (``-o`` naming the model, ``--report`` naming ``-o``): {what: path} each, None for absent."""
    seen: dict[tuple, str] = {}
    for what, path in inputs.items():
        if path:
            seen.setdefault(_same_file_key(path), f"the input {what}")
    for what, path in outputs.items():
        if not path:
            continue
        key = _same_file_key(path)
        if key in seen:
            raise DcnError(f"output {what} {str(path)!r} is also {seen[key]}; expected a path of its own")
        seen[key] = f"the output {what}"


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json_text(obj))


def _strict(o: Any) -> Any:
    if isinstance(o, dict):
        return {k: _strict(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_strict(v) for v in o]
    if isinstance(o, (np.generic, np.ndarray)):
        return _strict(o.tolist())
    if isinstance(o, float) and not math.isfinite(o):
        return "NaN" if math.isnan(o) else ("Infinity" if o > 0 else "-Infinity")
    return o


def json_text(obj: Any) -> str:
    """obj as strict JSON (RFC 8259, which any parser reads): non-finite numbers as the strings "NaN",
    "Infinity", "-Infinity" (Python's json writes bare NaN / Infinity), numpy values as numbers / lists."""
    return json.dumps(_strict(obj), indent=2, sort_keys=False, allow_nan=False, default=json_default) + "\n"


def json_default(o):
    try:
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:
        pass
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")
