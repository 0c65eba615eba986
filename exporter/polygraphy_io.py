"""Example inputs and PyTorch outputs in Polygraphy's JSON formats.

* ``inputs.json``: a list of feed dicts ``{name: ndarray}`` (``polygraphy.json.save_json``),
  what ``polygraphy run --load-inputs`` reads.
* ``outputs.json``: a Polygraphy ``RunResults`` with one iteration of runner ``pytorch``,
  what ``polygraphy run --load-outputs`` and ``dcn-compare`` read.

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


def save_outputs(path: os.PathLike, outputs: Mapping[str, np.ndarray], runner_name: str = RUNNER_NAME) -> None:
    from polygraphy.comparator import IterationResult, RunResults

    results = RunResults()
    results.append((runner_name, [IterationResult({k: np.asarray(v) for k, v in outputs.items()},
                                                  runner_name=runner_name)]))
    _atomic(Path(path), lambda tmp: results.save(tmp))


def save_io(directory: os.PathLike, feed: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray],
            group=None) -> tuple[Path, Path]:
    """Write ``DIR/inputs.json`` and ``DIR/outputs.json``; returns their paths. With ``group``
    (an exporter.atomic.AtomicGroup) both become temporaries that the group renames later."""
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
    if group is None:
        save_inputs(inputs_path, [feed])
        save_outputs(outputs_path, outputs)
        return inputs_path, outputs_path
    from polygraphy.comparator import IterationResult, RunResults
    from polygraphy.json import save_json
    from polygraphy.logger import G_LOGGER

    results = RunResults()
    results.append((RUNNER_NAME, [IterationResult({k: np.asarray(v) for k, v in outputs.items()},
                                                  runner_name=RUNNER_NAME)]))
    with G_LOGGER.verbosity(G_LOGGER.ERROR):
        save_json([{k: np.asarray(v) for k, v in feed.items()}], str(group.path(inputs_path)),
                  description="example inputs")
        results.save(str(group.path(outputs_path)))
    return inputs_path, outputs_path


def load_inputs(path: os.PathLike) -> list[dict[str, np.ndarray]]:
    from polygraphy.json import load_json

    return load_json(str(path), description="example inputs")


def load_outputs(path: os.PathLike):
    from polygraphy.comparator import RunResults

    return RunResults.load(str(path))
