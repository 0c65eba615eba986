"""dcn-compare's inputs from the command line: shapes and value ranges, and the metadata Polygraphy's
DataLoader generates inputs from. Files (inputs, saved reference outputs) are read by
:mod:`dcn_base.model_io`."""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

from dcn_base.console import example_shape
from dcn_base.errors import DcnError
from dcn_base.model_io import check_input_size

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
        check_input_size(f"--input {spec!r}", out[name], 8, "float64")  # generated inputs: up to float64
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
    from polygraphy.common import TensorMetadata  # noqa: PLC0415  (polygraphy: heavy, imported where it runs)

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
        if name not in shapes:  # the model's own or the profile's shape: the same limit as --input's
            check_input_size(f"input {name!r} of shape {list(shape)}", shape, 8, "float64")
        meta.add(name, dtype=dt, shape=list(shape))
    return meta


def fmt_dims(dims) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"
