"""A model's inputs and outputs on disk, both directions, in one place: Polygraphy's JSON formats
and numpy archives.

* ``inputs.json``: a list of feed dicts ``{name: ndarray}`` (``polygraphy.json.save_json``),
  what ``polygraphy run --load-inputs`` reads.
* ``outputs.json``: a Polygraphy ``RunResults`` with one iteration of runner ``pytorch`` (the
  reference: PyTorch in float64 where the model runs in it), what ``polygraphy run --load-outputs``
  and ``dcn-compare`` read; and, when known, runner ``pytorch-own``: PyTorch in the export's
  precision (float32, or float16 for --fp16), whose error sets ``dcn-compare``'s bound
  (``dcn_base.tolerance.passes``).
* ``inputs.npz`` / ``outputs.npz`` (``fmt="npz"``): the same data as numpy archives (one array per
  name, one iteration; the own outputs as ``pytorch-own/<name>``): smaller and faster for big
  tensors, but Polygraphy's own ``--load-inputs`` reads JSON only.

Writers: :func:`save_io` (``dcn-export --save-io``), :func:`save_inputs`, :func:`save_outputs`,
:func:`save_npz`, all atomic (temp file + rename). Readers: :func:`read_feeds` (every inputs file:
JSON list / dict or .npz), :func:`load_feeds` (``dcn-compare``: every iteration, by input name),
:func:`load_input_arrays` (``dcn-infer``: the first feed plus ``--input NAME=FILE``),
:func:`load_reference_outputs` / :func:`reference_paths` (saved outputs), :func:`load_npz`,
:func:`load_outputs`. Errors are one-line ``DcnError``s naming the file. Polygraphy is imported
when a JSON file is read or written (it is heavy).
"""
from __future__ import annotations

import os
import zipfile
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from .atomic import atomic_path, uninterrupted
from .errors import DcnError, first_line, one_line

RUNNER_NAME = "pytorch"
OWN_RUNNER_NAME = "pytorch-own"
INPUTS_FILE = "inputs.json"
OUTPUTS_FILE = "outputs.json"
IO_FORMATS = ("json", "npz")  # json first: the default, what Polygraphy reads


# --------------------------------------------------------------------------- writing
@contextmanager
def _target(dest: Path, group=None):
    """The path to write ``dest`` through: a temporary renamed at once (``atomic_path``), or one of
    ``group``'s temporaries (a dcn_base.atomic.AtomicGroup renames them all together later)."""
    if group is None:
        with atomic_path(dest) as tmp:
            yield tmp
    else:
        yield group.path(dest)


def _atomic(dest: Path, write, group=None) -> None:
    from polygraphy.logger import G_LOGGER  # noqa: PLC0415  (polygraphy: heavy, only for JSON files)

    with _target(dest, group) as tmp, G_LOGGER.verbosity(G_LOGGER.ERROR):  # no "[I] Saving ..." lines
        write(str(tmp))


def save_inputs(path: os.PathLike, feeds: Sequence[Mapping[str, np.ndarray]], group=None) -> None:
    from polygraphy.json import save_json  # noqa: PLC0415  (polygraphy: heavy, only for JSON files)

    data = [{k: np.asarray(v) for k, v in feed.items()} for feed in feeds]
    _atomic(Path(path), lambda tmp: save_json(data, tmp, description="example inputs"), group)


def save_outputs(path: os.PathLike, outputs: Mapping[str, np.ndarray], runner_name: str = RUNNER_NAME,
                 own: Mapping[str, np.ndarray] | None = None, group=None) -> None:
    from polygraphy.comparator import IterationResult, RunResults  # noqa: PLC0415  (heavy, JSON only)

    results = RunResults()
    for name, outs in ((runner_name, outputs), (OWN_RUNNER_NAME, own)):
        if outs is not None:
            results.append((name, [IterationResult({k: np.asarray(v) for k, v in outs.items()}, runner_name=name)]))
    _atomic(Path(path), lambda tmp: results.save(tmp), group)


def save_npz(path: os.PathLike, arrays: Mapping[str, np.ndarray], group=None) -> None:
    """One feed dict / one iteration's outputs as a numpy archive, written atomically."""
    with _target(Path(path), group) as tmp:
        # Ctrl-C held back while numpy writes: interrupted, its zip archive stays open and complains at exit
        # (np.savez's own archive, written member by member: savez(file, **arrays) fails on an array named 'file')
        with uninterrupted(), zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
            for k, v in arrays.items():
                with z.open(f"{k}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asarray(v), allow_pickle=False)


def _io_dir(directory: os.PathLike, group=None) -> Path:
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
    return d


PYTORCH_SUFFIXES = (".pt2", ".pt", ".pth", ".ts", ".pkl")  # what dcn-export reads, not a runtime


def check_not_pytorch(path: str | os.PathLike, what: str = "model") -> None:
    """The runtime commands run ONNX models and engines: a PyTorch file is named as one, not taken for an
    engine (whose error would be about TensorRT)."""
    if Path(path).suffix.lower() in PYTORCH_SUFFIXES:
        raise DcnError(f"{what} {str(path)!r} is a PyTorch file; expected an ONNX model (from dcn-export) or a "
                       "TensorRT engine (from dcn-build)")


def io_files(directory: os.PathLike) -> dict[str, Path]:
    """Every file --save-io writes or removes in ``directory`` (either format's pair), by name."""
    return {f"{stem}{suffix}": Path(directory) / f"{stem}{suffix}"
            for stem in (Path(INPUTS_FILE).stem, Path(OUTPUTS_FILE).stem) for suffix in (".json", ".npz")}


def save_io(directory: os.PathLike, feed: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray],
            own: Mapping[str, np.ndarray] | None = None, fmt: str = "json", group=None) -> tuple[Path, Path]:
    """Write ``DIR/inputs.json`` and ``DIR/outputs.json`` (``fmt="npz"``: ``.npz``); returns their paths.
    ``own``: PyTorch's outputs in the export's precision, kept beside the reference. The other format's
    pair, left by an earlier run, is removed with them (dcn-compare DIR reads outputs.json first: an old
    one would be judged instead of the new npz). With ``group`` (a dcn_base.atomic.AtomicGroup) both
    files become temporaries that the group renames later, and the old pair goes when it commits."""
    if fmt not in IO_FORMATS:
        raise DcnError(f"--io-format {fmt!r}: expected one of {', '.join(IO_FORMATS)}")
    d = _io_dir(directory, group)
    inputs_path, outputs_path = d / INPUTS_FILE, d / OUTPUTS_FILE
    if fmt == "npz":
        inputs_path, outputs_path = inputs_path.with_suffix(".npz"), outputs_path.with_suffix(".npz")
        save_npz(inputs_path, feed, group)
        save_npz(outputs_path, {**outputs, **{f"{OWN_RUNNER_NAME}/{k}": v for k, v in (own or {}).items()}}, group)
    else:
        save_inputs(inputs_path, [feed], group)
        save_outputs(outputs_path, outputs, own=own, group=group)
    for old in (p for p in io_files(d).values() if p not in (inputs_path, outputs_path)):
        if group is not None:
            group.remove(old)
        else:
            try:
                old.unlink(missing_ok=True)
            except OSError as e:
                raise DcnError(f"--save-io: cannot remove the stale '{old}': {e.strerror or e}") from None
    return inputs_path, outputs_path


# --------------------------------------------------------------------------- reading
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


def load_inputs(path: os.PathLike) -> list[dict[str, np.ndarray]]:
    """The feed dicts of a Polygraphy inputs JSON (Polygraphy's own reader, its errors)."""
    from polygraphy.json import load_json  # noqa: PLC0415  (polygraphy: heavy, only for JSON files)

    return load_json(str(path), description="example inputs")


def load_outputs(path: os.PathLike):
    """A Polygraphy outputs JSON as ``RunResults`` (Polygraphy's own reader, its errors)."""
    from polygraphy.comparator import RunResults  # noqa: PLC0415  (polygraphy: heavy, only for JSON files)

    return RunResults.load(str(path))


def read_feeds(path: os.PathLike, what: str = "--load-inputs") -> list[Mapping[str, Any]]:
    """Every feed dict of an inputs file: a Polygraphy inputs JSON (a list of {name: array}, or one
    dict) or an .npz (one feed). One-line DcnError naming ``what`` for a missing or unreadable file."""
    p = Path(path)
    if not p.is_file():
        raise DcnError(f"{what} {str(path)!r} does not exist or is not a file")
    if p.suffix.lower() == ".npz":
        return [load_npz(p, what)]
    from polygraphy.json import load_json  # noqa: PLC0415  (polygraphy: heavy, only for JSON files)

    try:
        data = load_json(str(p), description="input data")
    except Exception as err:  # noqa: BLE001
        raise DcnError(f"{what} {str(path)!r} is not Polygraphy input JSON: {first_line(err)}") from None
    feeds = [data] if isinstance(data, Mapping) else list(data)
    if not all(isinstance(f, Mapping) for f in feeds):
        raise DcnError(f"{what} {str(path)!r}: expected a list of {{input name: array}} feed dicts")
    return feeds


def load_feeds(path: str, input_names: Sequence[str]) -> list[dict[str, Any]]:
    """dcn-compare's feeds: every iteration of an inputs file, ordered by ``input_names`` (all required)."""
    feeds = read_feeds(path)
    if not feeds:
        raise DcnError(f"--load-inputs {path!r}: expected a list of {{input name: array}} feed dicts")
    for i, f in enumerate(feeds):
        missing = [n for n in input_names if n not in f]
        if missing:
            raise DcnError(f"--load-inputs {path!r}: iteration {i} lacks input(s) {missing}; it has {sorted(f)}")
    return [OrderedDict((n, f[n]) for n in input_names) for f in feeds]


def input_file_spec(spec: str) -> tuple[str, str]:
    """dcn-infer's ``--input NAME=FILE`` as (name, file); a bare ``FILE`` (a single input) as ('', FILE)."""
    name, sep, path = spec.partition("=")
    return (name, path) if sep else ("", spec)


def load_input_arrays(specs: Sequence[str], load_inputs: Optional[str] = None) -> dict:
    """dcn-infer's feed: the first feed of ``load_inputs``, then ``--input NAME=FILE.npy`` / ``FILE.npz``
    / ``FILE.npy`` (a single input: name '') on top -> {name: array}."""
    feeds: dict = {}
    if load_inputs:
        first = read_feeds(load_inputs)
        feeds.update({k: np.asarray(v) for k, v in dict(first[0] if first else {}).items()})
    for spec in specs:
        name, path = input_file_spec(spec)
        if not path:
            raise DcnError(f"--input {spec!r}: expected NAME=FILE.npy")
        feeds.update(_input_file(spec, name, path))
    return feeds


def _input_file(spec: str, name: str, path: str) -> dict:
    p = Path(path)
    if not p.is_file():
        raise DcnError(f"--input {spec!r}: file {path!r} does not exist")
    try:
        loaded = np.load(p, allow_pickle=False)
    except Exception as err:  # noqa: BLE001
        raise DcnError(f"--input {spec!r}: {path!r} is not a .npy/.npz file ({one_line(err)})") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        return {name: loaded}
    if not name:
        return {k: loaded[k] for k in loaded.files}
    if name not in loaded.files:
        raise DcnError(f"--input {spec!r}: {path!r} has arrays {loaded.files}, not {name!r}")
    return {name: loaded[name]}


def load_reference_outputs(path: str):
    """(RunResults with one runner, runner name, PyTorch's own iterations or None) from one read of a
    Polygraphy outputs JSON or an .npz of one iteration (runner 'pytorch'); the own iterations are
    runner ``pytorch-own`` (PyTorch in the export's precision), kept beside the reference."""
    from polygraphy.comparator import IterationResult, RunResults  # noqa: PLC0415  (polygraphy: heavy)

    if str(path).lower().endswith(".npz"):
        arrays, own = split_own(load_npz(path, "REFERENCE"))
        results = RunResults()
        results.append((RUNNER_NAME, [IterationResult(arrays, runner_name=RUNNER_NAME)]))
        return results, RUNNER_NAME, None if own is None else [IterationResult(own, runner_name=OWN_RUNNER_NAME)]

    try:
        results = RunResults.load(str(path))
    except Exception as err:  # noqa: BLE001
        raise DcnError(f"REFERENCE {path!r} is not Polygraphy RunResults JSON: {first_line(err)}") from None
    if not len(results):
        raise DcnError(f"REFERENCE {path!r} holds no runner results")
    names = [n for n, _ in results.items()]
    pick = RUNNER_NAME if RUNNER_NAME in names else names[0]
    only = RunResults()
    only.append((pick, results[pick]))
    own_iters = list(results[OWN_RUNNER_NAME]) if OWN_RUNNER_NAME in names else None
    return only, pick, own_iters


def reference_files(reference: Any) -> list[str]:
    """The files that REFERENCE (a path; a module or program object: none) makes dcn-compare read: a
    directory's --save-io files, saved outputs and the inputs beside them, or the model file."""
    if not isinstance(reference, (str, os.PathLike)):
        return []
    if Path(reference).is_dir():
        return [str(p) for p in io_files(reference).values()]
    p = Path(reference)
    return [str(p), str(inputs_beside(p))] if p.suffix.lower() in (".json", ".npz") else [str(p)]


def inputs_beside(outputs: Path) -> Path:
    """The inputs saved with saved outputs (--save-io's pair: outputs.json beside inputs.json, .npz alike)."""
    return outputs.with_name(Path(INPUTS_FILE).stem + outputs.suffix.lower())


def reference_paths(reference: str) -> tuple[str, Optional[str]]:
    """(outputs.json, sibling inputs.json or None) when REFERENCE is saved outputs, else (reference, None)."""
    p = Path(reference)
    if p.is_dir():
        out = p / OUTPUTS_FILE
        if not out.is_file() and (p / "outputs.npz").is_file():
            out = p / "outputs.npz"
        if not out.is_file():
            raise DcnError(f"REFERENCE directory {reference!r} has no outputs.json or outputs.npz "
                           "(written by dcn-export --save-io)")
        p = out
    if p.suffix.lower() in (".json", ".npz"):
        if not p.is_file():
            raise DcnError(f"REFERENCE {reference!r} does not exist")
        sib = inputs_beside(p)
        return str(p), (str(sib) if sib.is_file() else None)
    return reference, None


# --------------------------------------------------------------------------- sizes
def input_size_limit() -> int:
    """Bytes one generated input may take: half of this machine's memory (at least 1 GiB)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 16 << 30
    return max(total // 2, 1 << 30)


def check_input_size(what: str, shape: Sequence[int], itemsize: int = 4, dtype: str = "float32") -> None:
    """Refuse a shape whose tensor would not fit, before anything allocates it."""
    n = 1
    for d in shape:
        n *= int(d)
    limit = input_size_limit()
    if n * itemsize > limit:
        raise DcnError(f"{what}: {n} elements ({n * itemsize / 2**30:.1f} GiB as {dtype}), expected at most "
                       f"{limit / 2**30:.1f} GiB (half of this machine's memory)")
