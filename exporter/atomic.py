"""Nothing half-written: every output file of the project goes through ``atomic_path``."""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Union

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
