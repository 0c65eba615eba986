"""dcn-compare's data: input shapes and value ranges from the command line, the inputs (loaded or
described for Polygraphy's DataLoader), and saved reference outputs (``dcn-export --save-io``)."""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from exporter.cli_common import example_shape
from exporter.errors import DcnError, first_line

from . import engine_files
from .targets import TargetInfo


def parse_input_shapes(specs: Optional[Sequence[str]]) -> dict[str, tuple[int, ...]]:
    """['images:2x3x64x64'] -> {'images': (2, 3, 64, 64)}."""
    out = {}
    for spec in specs or []:
        name, sep, shape = spec.rpartition(":")
        if not sep or not name:
            raise DcnError(f"--input {spec!r}: expected NAME:SHAPE, e.g. images:1x3x224x224")
        out[name] = engine_files.parse_shape(shape, f"--input {name}")
        from exporter.cli import check_input_size  # noqa: PLC0415

        check_input_size(f"--input {spec!r}", out[name], 8)  # generated inputs: up to float64
    return out


def parse_val_ranges(specs: Optional[Sequence[str]]):
    """['0,1', 'rois:0,60'] -> Polygraphy val_range: a tuple, or a dict with '' as the default."""
    ranges: dict[str, tuple[float, float]] = {}
    for spec in specs or []:
        name, sep, rng = spec.rpartition(":")
        lo, comma, hi = rng.partition(",")
        try:
            pair = (float(lo), float(hi))
        except ValueError:
            raise DcnError(f"--val-range {spec!r}: expected [NAME:]LOW,HIGH, e.g. images:-1,1") from None
        if not comma or pair[0] > pair[1]:
            raise DcnError(f"--val-range {spec!r}: expected [NAME:]LOW,HIGH with LOW <= HIGH")
        ranges[name if sep else ""] = pair
    if not ranges:
        return None
    if list(ranges) == [""]:
        return ranges[""]
    return ranges


def resolve_input_metadata(target: TargetInfo, shapes: Mapping[str, tuple[int, ...]], log=print):
    """TensorMetadata with every dimension fixed: target shapes, then --input overrides."""
    from polygraphy.common import TensorMetadata  # noqa: PLC0415

    names = [n for n, _, _ in target.inputs]
    unknown = sorted(set(shapes) - set(names))
    if unknown:
        raise DcnError(f"--input names {unknown}, but the target's inputs are {names}")
    meta = TensorMetadata()
    for name, dt, dims in target.inputs:
        if name in shapes:
            shape = shapes[name]
            if len(shape) != len(dims) or any(d is not None and d != s for d, s in zip(dims, shape)):
                raise DcnError(f"--input {name}: shape {list(shape)} does not fit the target's {fmt_dims(dims)}")
        elif any(d is None for d in dims):
            if name in target.profile_opt:
                shape = target.profile_opt[name]
                log(f"[dcn-compare] input {name!r}: using the engine profile's OPT shape {list(shape)} "
                    f"(give --input {name}:SHAPE to choose)")
            else:
                raise DcnError(f"input {name!r} has dynamic shape {fmt_dims(dims)}; give a shape the model takes with "
                               f"--input {name}:SHAPE, e.g. --input {name}:{example_shape(dims)}")
        else:
            shape = tuple(dims)
        meta.add(name, dtype=dt, shape=list(shape))
    return meta


def fmt_dims(dims) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"


def load_feeds(path: str, input_names: Sequence[str]) -> list[dict[str, Any]]:
    """Feed dicts from a Polygraphy inputs JSON (a list of {name: array}, or one dict) or an .npz (one feed)."""
    from polygraphy.json import load_json  # noqa: PLC0415

    p = Path(path)
    if not p.is_file():
        raise DcnError(f"--load-inputs {path!r} does not exist or is not a file")
    if p.suffix.lower() == ".npz":
        from exporter.polygraphy_io import load_npz  # noqa: PLC0415

        data = [load_npz(p, "--load-inputs")]
    else:
        try:
            data = load_json(str(p), description="input data")
        except Exception as err:  # noqa: BLE001
            raise DcnError(f"--load-inputs {path!r} is not Polygraphy input JSON: {first_line(err)}") from None
    feeds = [data] if isinstance(data, Mapping) else list(data)
    if not feeds or not all(isinstance(f, Mapping) for f in feeds):
        raise DcnError(f"--load-inputs {path!r}: expected a list of {{input name: array}} feed dicts")
    for i, f in enumerate(feeds):
        missing = [n for n in input_names if n not in f]
        if missing:
            raise DcnError(f"--load-inputs {path!r}: iteration {i} lacks input(s) {missing}; it has {sorted(f)}")
    return [OrderedDict((n, f[n]) for n in input_names) for f in feeds]


def load_reference_outputs(path: str):
    """(RunResults with one runner, runner name, PyTorch's own iterations or None) from one read of a
    Polygraphy outputs JSON or an .npz of one iteration (runner 'pytorch'); the own iterations are
    runner ``pytorch-own`` (PyTorch in the export's precision), kept beside the reference."""
    from polygraphy.comparator import IterationResult, RunResults  # noqa: PLC0415

    from exporter.polygraphy_io import OWN_RUNNER_NAME, RUNNER_NAME, load_npz, split_own  # noqa: PLC0415

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


def reference_paths(reference: str) -> tuple[str, Optional[str]]:
    """(outputs.json, sibling inputs.json or None) when REFERENCE is saved outputs, else (reference, None)."""
    p = Path(reference)
    if p.is_dir():
        out = p / "outputs.json"
        if not out.is_file() and (p / "outputs.npz").is_file():
            out = p / "outputs.npz"
        if not out.is_file():
            raise DcnError(f"REFERENCE directory {reference!r} has no outputs.json or outputs.npz "
                           "(written by dcn-export --save-io)")
        p = out
    if p.suffix.lower() in (".json", ".npz"):
        if not p.is_file():
            raise DcnError(f"REFERENCE {reference!r} does not exist")
        sib = p.with_name("inputs" + p.suffix.lower())
        return str(p), (str(sib) if sib.is_file() else None)
    return reference, None
