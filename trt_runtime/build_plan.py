"""What dcn-build decides before TensorRT is involved: sizes and shape profiles from the command line,
the ONNX model read (its float type, inputs, our nodes and their attributes), and the build plan -- the
pure choice between TensorRT 10's FP16 builder flag and TensorRT 11's float16 ONNX, strongly typed."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import onnx
from onnx import TensorProto

from dcn_base.console import example_shape
from dcn_base.errors import DcnError, one_line
from exporter import contract

from . import engine_files, environment

ShapeTriple = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]




def parse_size(text: str | int | None) -> Optional[int]:
    """'512MiB', '2GiB', '1.5G', '300M', '4096' (MiB) -> bytes; None stays None."""
    if text is None or text == "":
        return None
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B)?\s*", str(text), re.IGNORECASE)
    if not m:
        raise DcnError(f"--workspace {text!r}: expected a size like 512MiB, 2GiB or a number of MiB")
    value, unit = float(m.group(1)), m.group(2).upper()
    scale = {"": 1 << 20, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}[unit]
    size = int(value * scale)
    if size <= 0:
        raise DcnError(f"--workspace {text!r}: must be > 0")
    return size


def parse_shapes(specs: Sequence[str] | None) -> dict[str, ShapeTriple]:
    """['images:1x3x224x224:4x3x224x224:8x3x224x224'] -> {'images': (min, opt, max)}."""
    out: dict[str, ShapeTriple] = {}
    for spec in specs or []:
        parts = spec.rsplit(":", 3)
        if len(parts) != 4 or not parts[0]:
            raise DcnError(f"--shapes {spec!r}: expected NAME:MIN:OPT:MAX, e.g. images:1x3x224x224:4x3x224x224:8x3x224x224")
        name = parts[0]
        mn, opt, mx = (engine_files.parse_shape(p, f"--shapes {name}") for p in parts[1:])
        if not (len(mn) == len(opt) == len(mx)):
            raise DcnError(f"--shapes {spec!r}: MIN, OPT and MAX must have the same rank, got {mn}, {opt}, {mx}")
        for a, b, c in zip(mn, opt, mx):
            if not (0 < a <= b <= c):
                raise DcnError(f"--shapes {spec!r}: need 0 < MIN <= OPT <= MAX in every dimension, got {mn}, {opt}, {mx}")
        if name in out:
            raise DcnError(f"--shapes: input {name!r} given twice")
        out[name] = (mn, opt, mx)
    return out


@dataclass(frozen=True)
class BuildPlan:
    """How to get the requested precision out of the installed TensorRT."""

    trt_major: int
    precision: str  # "float16" or "float32": what the engine computes in
    strongly_typed: bool  # network created with NetworkDefinitionCreationFlag.STRONGLY_TYPED
    fp16_flag: bool  # BuilderFlag.FP16 (TensorRT < 11 only)
    convert_to_fp16: bool  # convert the float32 ONNX to float16 before parsing (TensorRT >= 11)
    note: str = ""


def build_plan(trt_version: str, onnx_dtype: str, fp16: bool) -> BuildPlan:
    """Pure decision: builder flag (TensorRT 10) vs float16 ONNX + strongly typed (TensorRT 11).

    onnx_dtype is the model's float type, "float32" or "float16" (see :func:`onnx_float_dtype`).
    """
    major = environment.version_tuple(trt_version)[0]
    if major < environment.MIN_TRT_MAJOR:
        raise environment.TensorRTNotInstalled(
            f"TensorRT {trt_version} is too old: the dcn plugins need TensorRT >= {environment.MIN_TRT_MAJOR}"
        )
    if onnx_dtype not in ("float32", "float16"):
        raise DcnError(f"ONNX float type {onnx_dtype!r}: expected 'float32' or 'float16'")
    if onnx_dtype == "float16":
        note = "" if fp16 else "the ONNX model is float16, so the engine runs in float16 despite --no-fp16"
        return BuildPlan(major, "float16", strongly_typed=True, fp16_flag=False, convert_to_fp16=False, note=note)
    if not fp16:
        return BuildPlan(major, "float32", strongly_typed=major >= 11, fp16_flag=False, convert_to_fp16=False)
    if major >= 11:
        return BuildPlan(major, "float16", strongly_typed=True, fp16_flag=False, convert_to_fp16=True,
                         note=f"TensorRT {major} has no FP16 builder flag: converting the float32 ONNX to float16 "
                              "(export with dcn-export --fp16 to skip this)")
    return BuildPlan(major, "float16", strongly_typed=False, fp16_flag=True, convert_to_fp16=False)


def load_onnx(path: str | Path, external_data: bool = False):
    """The ONNX model's graph (weights kept in external files left on disk unless ``external_data``);
    one-line errors for bad files."""
    p = Path(path)
    if not p.exists():
        raise DcnError(f"ONNX model {str(path)!r} does not exist")
    if not p.is_file():
        raise DcnError(f"ONNX model {str(path)!r} is not a file")
    try:
        return onnx.load(str(p), load_external_data=external_data)
    except Exception as err:  # noqa: BLE001  (protobuf DecodeError and friends)
        raise DcnError(f"{str(path)!r} is not a readable ONNX model: {one_line(err)}") from None


# Attributes that choose the element type a node makes (Cast's ``to``, EyeLike's ``dtype``, ...).
DTYPE_ATTRS = ("to", "dtype", "output_dtype")


def float16_site(model) -> Optional[str]:
    """The first thing that makes the model compute in float16, in words ("initializer 'w'", "node 'h'
    (Cast)"), or None: a float16 weight, graph input, output or value type, or a node that makes float16
    (a Cast to float16, a float16 constant), in subgraphs too."""
    graphs = [model.graph]
    while graphs:
        g = graphs.pop()
        for t in g.initializer:
            if t.data_type == TensorProto.FLOAT16:
                return f"initializer {t.name!r}"
        for vi in (*g.input, *g.output, *g.value_info):
            if vi.type.tensor_type.elem_type == TensorProto.FLOAT16:
                return f"value {vi.name!r}"
        for n in g.node:
            for a in n.attribute:
                tensors = [a.t] if a.type == onnx.AttributeProto.TENSOR else list(a.tensors)
                if a.type == onnx.AttributeProto.SPARSE_TENSOR:
                    tensors.append(a.sparse_tensor.values)
                if any(t.data_type == TensorProto.FLOAT16 for t in tensors) or (
                        a.type == onnx.AttributeProto.INT and a.name in DTYPE_ATTRS and a.i == TensorProto.FLOAT16):
                    return f"node {n.name!r} ({n.op_type})"
                graphs.extend([a.g] if a.type == onnx.AttributeProto.GRAPH else a.graphs)
    return None


def onnx_float_dtype(model) -> str:
    """'float16' if the model keeps any float weights, constants or graph inputs in float16, else 'float32'.
    A float32 model with a few float16 steps (a Cast to float16: :func:`float16_site`) is 'float32': FP16 by
    TensorRT 10's builder flag, compared at float32's tolerance (PyTorch's float32 run has the same casts);
    TensorRT 11's float16 conversion refuses it in one line (build it with --no-fp16, as typed)."""
    for init in model.graph.initializer:
        if init.data_type == TensorProto.FLOAT16:
            return "float16"
    for node in model.graph.node:
        if node.op_type == "Constant" and any(a.t.data_type == TensorProto.FLOAT16 for a in node.attribute
                                              if a.type == onnx.AttributeProto.TENSOR):
            return "float16"
    for vi in model.graph.input:
        if vi.type.tensor_type.elem_type == TensorProto.FLOAT16:
            return "float16"
    return "float32"


def onnx_inputs(model) -> list[tuple[str, int, tuple[Any, ...]]]:
    """[(name, elem_type, dims)] of the real inputs; a dynamic dim is its symbol name or None."""
    inits = {i.name for i in model.graph.initializer}
    out = []
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        dims = tuple(
            (d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else (d.dim_param or None))
            for d in tt.shape.dim
        )
        out.append((vi.name, tt.elem_type, dims))
    return out


def onnx_outputs(model) -> list[str]:
    return [o.name for o in model.graph.output]


def dcn_nodes(model) -> list[tuple[str, str]]:
    """[(node name, op type)] of the nodes our plugins must run."""
    return [(n.name, n.op_type) for n in model.graph.node if contract.is_dcn_node(n, standard=False)]


def check_dcn_attributes(model) -> None:
    """Our nodes' integer attributes fit TensorRT's int32 plugin fields and the contract's limits
    (the parser would wrap a larger value silently)."""
    contract.check_graph_attributes(model)


def check_profile(inputs: Sequence[tuple[str, int, tuple[Any, ...]]],
                  shapes: Mapping[str, ShapeTriple]) -> dict[str, ShapeTriple]:
    """Validate --shapes against the ONNX inputs; every dynamic input needs one. Returns the profile."""
    by_name = {name: dims for name, _, dims in inputs}
    for name in shapes:
        if name not in by_name:
            raise DcnError(f"--shapes names input {name!r}, but the model's inputs are {sorted(by_name)}")
    profile: dict[str, ShapeTriple] = {}
    for name, dims in by_name.items():
        dynamic = any(not isinstance(d, int) for d in dims)
        if name not in shapes:
            if dynamic:
                example = example_shape(dims)
                raise DcnError(
                    f"input {name!r} has dynamic shape {_fmt_dims(dims)}; give its range with "
                    f"--shapes {name}:MIN:OPT:MAX, e.g. --shapes {name}:{example}:{example}:{example}"
                )
            continue
        mn, opt, mx = shapes[name]
        if len(mn) != len(dims):
            raise DcnError(f"--shapes {name}: rank {len(mn)} does not match the model's input {_fmt_dims(dims)}")
        for i, d in enumerate(dims):
            if isinstance(d, int) and not (mn[i] == opt[i] == mx[i] == d):
                raise DcnError(
                    f"--shapes {name}: dimension {i} is fixed to {d} in the model, got {mn[i]}/{opt[i]}/{mx[i]}"
                )
        profile[name] = (mn, opt, mx)
    return profile


def _fmt_dims(dims) -> str:
    return "[" + ", ".join(str(d) if d is not None else "?" for d in dims) + "]"
