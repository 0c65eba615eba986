"""Example inputs and PyTorch outputs in Polygraphy's JSON formats.

* ``inputs.json``: a list of feed dicts ``{name: ndarray}`` (``polygraphy.json.save_json``),
  what ``polygraphy run --load-inputs`` reads.
* ``outputs.json``: a Polygraphy ``RunResults`` with one iteration of runner ``pytorch`` (the
  reference: PyTorch in float64 where the model runs in it), what ``polygraphy run --load-outputs``
  and ``dcn-compare`` read; and, when known, runner ``pytorch-own``: PyTorch in the export's
  precision (float32, or float16 for --fp16), whose error sets ``dcn-compare``'s bound
  (``exporter.tolerance.passes``).

Both files are written atomically (temp file + rename).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .atomic import atomic_path
from .errors import DcnError

RUNNER_NAME = "pytorch"
OWN_RUNNER_NAME = "pytorch-own"
INPUTS_FILE = "inputs.json"
OUTPUTS_FILE = "outputs.json"


def _atomic(dest: Path, write) -> None:
    from polygraphy.logger import G_LOGGER

    with atomic_path(dest) as tmp, G_LOGGER.verbosity(G_LOGGER.ERROR):  # no "[I] Saving ..." lines
        write(str(tmp))


def save_inputs(path: os.PathLike, feeds: Sequence[Mapping[str, np.ndarray]]) -> None:
    from polygraphy.json import save_json

    data = [{k: np.asarray(v) for k, v in feed.items()} for feed in feeds]
    _atomic(Path(path), lambda tmp: save_json(data, tmp, description="example inputs"))


def save_outputs(path: os.PathLike, outputs: Mapping[str, np.ndarray], runner_name: str = RUNNER_NAME,
                 own: Mapping[str, np.ndarray] | None = None) -> None:
    from polygraphy.comparator import IterationResult, RunResults

    results = RunResults()
    for name, outs in ((runner_name, outputs), (OWN_RUNNER_NAME, own)):
        if outs is not None:
            results.append((name, [IterationResult({k: np.asarray(v) for k, v in outs.items()}, runner_name=name)]))
    _atomic(Path(path), lambda tmp: results.save(tmp))


def save_io(directory: os.PathLike, feed: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray],
            own: Mapping[str, np.ndarray] | None = None) -> tuple[Path, Path]:
    """Write ``DIR/inputs.json`` and ``DIR/outputs.json``; returns their paths."""
    d = Path(directory)
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DcnError(f"--save-io: cannot create directory '{d}': {e.strerror or e}") from None
    if not os.access(d, os.W_OK | os.X_OK):
        raise DcnError(f"--save-io: directory '{d}' is not writable")
    inputs_path, outputs_path = d / INPUTS_FILE, d / OUTPUTS_FILE
    save_inputs(inputs_path, [feed])
    save_outputs(outputs_path, outputs, own=own)
    return inputs_path, outputs_path


def load_inputs(path: os.PathLike) -> list[dict[str, np.ndarray]]:
    from polygraphy.json import load_json

    return load_json(str(path), description="example inputs")


def load_outputs(path: os.PathLike):
    from polygraphy.comparator import RunResults

    return RunResults.load(str(path))
