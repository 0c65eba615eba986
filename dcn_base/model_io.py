"""Example inputs and PyTorch outputs in Polygraphy's JSON formats.

* ``inputs.json``: a list of feed dicts ``{name: ndarray}`` (``polygraphy.json.save_json``),
  what ``polygraphy run --load-inputs`` reads.
* ``outputs.json``: a Polygraphy ``RunResults`` with one iteration of runner ``pytorch`` (the
  reference: PyTorch in float64 where the model runs in it), what ``polygraphy run --load-outputs``
  and ``dcn-compare`` read; and, when known, runner ``pytorch-own``: PyTorch in the export's
  precision (float32, or float16 for --fp16), whose error sets ``dcn-compare``'s bound
  (``exporter.tolerance.passes``).

Both files are written atomically (temp file + rename). ``fmt="npz"`` writes the same data as
numpy archives instead (``inputs.npz`` / ``outputs.npz``: one array per name, one iteration;
smaller and faster for big tensors, but Polygraphy's own ``--load-inputs`` reads JSON only).
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .atomic import atomic_path
from .errors import DcnError

RUNNER_NAME = "pytorch"
OWN_RUNNER_NAME = "pytorch-own"
INPUTS_FILE = "inputs.json"
OUTPUTS_FILE = "outputs.json"
IO_FORMATS = ("json", "npz")  # json first: the default, what Polygraphy reads


@contextmanager
def _target(dest: Path, group=None):
    """The path to write ``dest`` through: a temporary renamed at once (``atomic_path``), or one of
    ``group``'s temporaries (an exporter.atomic.AtomicGroup renames them all together later)."""
    if group is None:
        with atomic_path(dest) as tmp:
            yield tmp
    else:
        yield group.path(dest)


def _atomic(dest: Path, write, group=None) -> None:
    from polygraphy.logger import G_LOGGER

    with _target(dest, group) as tmp, G_LOGGER.verbosity(G_LOGGER.ERROR):  # no "[I] Saving ..." lines
        write(str(tmp))


def save_inputs(path: os.PathLike, feeds: Sequence[Mapping[str, np.ndarray]], group=None) -> None:
    from polygraphy.json import save_json

    data = [{k: np.asarray(v) for k, v in feed.items()} for feed in feeds]
    _atomic(Path(path), lambda tmp: save_json(data, tmp, description="example inputs"), group)


def save_outputs(path: os.PathLike, outputs: Mapping[str, np.ndarray], runner_name: str = RUNNER_NAME,
                 own: Mapping[str, np.ndarray] | None = None, group=None) -> None:
    from polygraphy.comparator import IterationResult, RunResults

    results = RunResults()
    for name, outs in ((runner_name, outputs), (OWN_RUNNER_NAME, own)):
        if outs is not None:
            results.append((name, [IterationResult({k: np.asarray(v) for k, v in outs.items()}, runner_name=name)]))
    _atomic(Path(path), lambda tmp: results.save(tmp), group)


def save_npz(path: os.PathLike, arrays: Mapping[str, np.ndarray], group=None) -> None:
    """One feed dict / one iteration's outputs as a numpy archive, written atomically."""
    with _target(Path(path), group) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()})


def load_npz(path: os.PathLike, what: str = "arrays") -> dict[str, np.ndarray]:
    """{name: array} of a .npz archive; DcnError (one line) for anything else."""
    p = Path(path)
    if not p.is_file():
        raise DcnError(f"{what} {str(path)!r} does not exist or is not a file")
    try:
        with np.load(p, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as e:  # noqa: BLE001
        raise DcnError(f"{what} {str(path)!r} is not a .npz archive ({type(e).__name__}: {e})") from None


def split_own(arrays: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None]:
    """(reference outputs, PyTorch's own outputs or None) of an ``outputs.npz``: the own outputs are
    stored under ``pytorch-own/<name>`` beside the reference's ``<name>``."""
    prefix = f"{OWN_RUNNER_NAME}/"
    ref = {k: v for k, v in arrays.items() if not k.startswith(prefix)}
    own = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
    return ref, (own or None)


def save_io(directory: os.PathLike, feed: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray],
            own: Mapping[str, np.ndarray] | None = None, fmt: str = "json", group=None) -> tuple[Path, Path]:
    """Write ``DIR/inputs.json`` and ``DIR/outputs.json`` (``fmt="npz"``: ``.npz``); returns their paths.
    ``own``: PyTorch's outputs in the export's precision, kept beside the reference. With ``group``
    (an exporter.atomic.AtomicGroup) both files become temporaries that the group renames later."""
    if fmt not in IO_FORMATS:
        raise DcnError(f"--io-format {fmt!r}: expected one of {', '.join(IO_FORMATS)}")
    d = Path(directory)
    try:
        if group is not None:
            group.mkdir(d)
        else:
            d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DcnError(f"--save-io: cannot create directory '{d}': {e.strerror or e}") from None
    if not os.access(d, os.W_OK | os.X_OK):
        raise DcnError(f"--save-io: directory '{d}' is not writable")
    inputs_path, outputs_path = d / INPUTS_FILE, d / OUTPUTS_FILE
    if fmt == "npz":
        inputs_path, outputs_path = inputs_path.with_suffix(".npz"), outputs_path.with_suffix(".npz")
        save_npz(inputs_path, feed, group)
        save_npz(outputs_path, {**outputs, **{f"{OWN_RUNNER_NAME}/{k}": v for k, v in (own or {}).items()}}, group)
    else:
        save_inputs(inputs_path, [feed], group)
        save_outputs(outputs_path, outputs, own=own, group=group)
    return inputs_path, outputs_path


def load_inputs(path: os.PathLike) -> list[dict[str, np.ndarray]]:
    from polygraphy.json import load_json

    return load_json(str(path), description="example inputs")


def load_outputs(path: os.PathLike):
    from polygraphy.comparator import RunResults

    return RunResults.load(str(path))
