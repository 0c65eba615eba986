"""dcn-export's inputs from the command line: ``--input`` (NAME:SHAPE[:DTYPE] or NAME=FILE.npy) and
``--dynamic`` parsed, and the example tensors made (files loaded, others generated from --seed: floats
~ N(0, 1), RoIs as valid boxes inside the image)."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from dcn_base.errors import DcnError
from dcn_base.model_io import check_input_size

from . import ops

DTYPES = ("float32", "float16", "float64", "int64", "int32", "uint8", "bool")


class InputSpec:
    def __init__(self, name: str, shape: Optional[tuple[int, ...]] = None, dtype: str = "float32",
                 file: Optional[str] = None) -> None:
        self.name, self.shape, self.dtype, self.file = name, shape, dtype, file


_NAME = r"[A-Za-z_][A-Za-z0-9_.\-/]*"


def parse_input(text: str) -> InputSpec:
    """``NAME:SHAPE[:DTYPE]`` (SHAPE like 1x3x512x512) or ``NAME=FILE.npy``."""
    hint = f"--input {text!r}: expected NAME:SHAPE[:DTYPE] (e.g. images:1x3x512x512) or NAME=FILE.npy"
    m = re.fullmatch(rf"({_NAME})=(.+)", text)
    if m:
        return InputSpec(m.group(1), file=m.group(2))
    m = re.fullmatch(rf"({_NAME}):([0-9]+(?:[x,][0-9]+)*)(?::([a-z0-9]+))?", text)
    if not m:
        raise DcnError(hint)
    shape = tuple(int(d) for d in re.split(r"[x,]", m.group(2)))
    dtype = m.group(3) or "float32"
    if dtype not in DTYPES:
        raise DcnError(f"--input {text!r}: dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    if any(d <= 0 for d in shape):
        raise DcnError(f"--input {text!r}: every dimension must be positive, got {list(shape)}")
    check_input_size(f"--input {text!r}", shape, _ITEMSIZE[dtype], dtype)
    return InputSpec(m.group(1), shape, dtype)


_ITEMSIZE = {"float32": 4, "float16": 2, "float64": 8, "int64": 8, "int32": 4, "uint8": 1, "bool": 1}


def parse_dynamic(text: str) -> tuple[str, dict[int, str]]:
    """``NAME:AXIS=LABEL[,AXIS=LABEL...]`` or ``NAME:AXIS[,AXIS...]`` (labels NAME_dimAXIS)."""
    hint = f"--dynamic {text!r}: expected NAME:AXIS=LABEL[,AXIS=LABEL...], e.g. images:0=batch,2=height,3=width"
    name, sep, rest = text.partition(":")
    if not sep or not re.fullmatch(_NAME, name) or not rest:
        raise DcnError(hint)
    axes: dict[int, str] = {}
    for item in rest.split(","):
        m = re.fullmatch(r"(-?[0-9]+)(?:=([A-Za-z_][A-Za-z0-9_]*))?", item.strip())
        if not m:
            raise DcnError(hint)
        axis = int(m.group(1))
        axes[axis] = m.group(2) or f"{name}_dim{axis}"
    return name, axes


def _torch_dtype(name: str):
    import torch  # noqa: PLC0415  (torch: heavy; argument errors and --version answer without it)

    return {"float32": torch.float32, "float16": torch.float16, "float64": torch.float64, "int64": torch.int64,
            "int32": torch.int32, "uint8": torch.uint8, "bool": torch.bool}[name]


def _is_rois(spec: InputSpec) -> bool:
    return "roi" in spec.name.lower() and spec.shape is not None and len(spec.shape) == 2 and spec.shape[1] == 5 \
        and spec.dtype.startswith("float")


def _load_file(s: InputSpec):
    """The tensor of ``--input NAME=FILE.npy``."""
    import torch  # noqa: PLC0415  (torch: heavy; argument errors and --version answer without it)

    path = Path(s.file)
    if not path.is_file():
        hint = f" (a shape is written {s.name}:{s.file})" if re.fullmatch(r"[0-9]+(?:x[0-9]+)*", s.file) else ""
        what = "is a directory, expected a .npy file" if path.is_dir() else "not found"
        raise DcnError(f"--input {s.name}={s.file}: file '{s.file}' {what}{hint}")
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as e:
        raise DcnError(f"--input {s.name}={s.file}: not a .npy array ({type(e).__name__}: {e})") from None
    if not isinstance(arr, np.ndarray):
        raise DcnError(f"--input {s.name}={s.file}: holds {type(arr).__name__}, expected one .npy array")
    return torch.from_numpy(np.ascontiguousarray(arr))


def make_inputs(specs: Sequence[InputSpec], model, seed: int = 0) -> list:
    """Tensors for ``specs``: files loaded, others generated from ``seed`` (rois as valid boxes)."""
    import torch  # noqa: PLC0415  (torch: heavy; argument errors and --version answer without it)

    tensors: list = [_load_file(s) if s.file is not None else None for s in specs]
    gen = torch.Generator().manual_seed(seed)
    image = None  # (N, C, H, W) of the first 4-D float input
    for s, t in zip(specs, tensors):
        shape = tuple(t.shape) if t is not None else s.shape
        dtype = str(t.dtype).replace("torch.", "") if t is not None else s.dtype
        if len(shape) == 4 and dtype.startswith("float"):
            image = shape
            break
    scale = _rois_scale(model, image)
    for i, s in enumerate(specs):
        if tensors[i] is not None:
            continue
        dtype = _torch_dtype(s.dtype)
        if _is_rois(s):
            n, _, h, w = image if image is not None else (1, 3, 64, 64)
            if scale:
                h, w = h / scale, w / scale
            tensors[i] = _boxes(s.shape[0], n, h, w, gen).to(dtype)
        elif dtype.is_floating_point:
            tensors[i] = torch.randn(s.shape, generator=gen).to(dtype)
        elif dtype == torch.bool:
            tensors[i] = torch.randint(0, 2, s.shape, generator=gen).bool()
        else:
            tensors[i] = torch.randint(0, 10, s.shape, generator=gen).to(dtype)
    return tensors


def _rois_scale(model, image) -> Optional[float]:
    """RoIs are in image pixels: a 4-D input that is a RoI op's own feature map is 1/spatial_scale smaller
    than the image (each op's modules.py ``example_rois_scale`` recognises its own); any other 4-D input is
    the image. The first op's scale, else None."""
    if image is None or not hasattr(model, "modules"):
        return None
    for part in ops.parts("modules"):
        scale = getattr(part, "example_rois_scale", lambda m, i: None)(model, image)
        if scale is not None:
            return scale
    return None


def _boxes(r: int, n: int, h: float, w: float, gen):
    """[R, 5] (batch_index, x1, y1, x2, y2): boxes inside an h x w image, at least 1 pixel wide."""
    import torch  # noqa: PLC0415  (torch: heavy; argument errors and --version answer without it)

    b = torch.randint(0, max(n, 1), (r,), generator=gen).float()
    x1 = torch.rand(r, generator=gen) * (w - 1) * 0.75
    y1 = torch.rand(r, generator=gen) * (h - 1) * 0.75
    x2 = torch.minimum(x1 + 1 + torch.rand(r, generator=gen) * (w - 1) * 0.5, torch.tensor(w - 1.0))
    y2 = torch.minimum(y1 + 1 + torch.rand(r, generator=gen) * (h - 1) * 0.5, torch.tensor(h - 1.0))
    return torch.stack([b, x1, y1, x2, y2], dim=1)


_ONNX_DTYPE = {1: "float32", 10: "float16", 11: "float64", 7: "int64", 6: "int32", 2: "uint8", 9: "bool"}  # TensorProto


def onnx_feed(model, specs: Sequence[InputSpec], seed: int = 0) -> dict[str, np.ndarray]:
    """The inputs of an ONNX graph (``dcn-export MODEL.onnx --<rewrite>``): from ``specs`` (every graph
    input, no other), else generated from the graph's own shapes (all static)."""
    inits = {t.name for t in model.graph.initializer}
    graph_inputs = [i for i in model.graph.input if i.name not in inits]
    names = [i.name for i in graph_inputs]
    if specs:
        unknown = [s.name for s in specs if s.name not in names]
        missing = [n for n in names if n not in {s.name for s in specs}]
        if unknown or missing:
            raise DcnError(f"--input: the graph's inputs are {names}; "
                           + (f"not in the graph: {unknown}" if unknown else f"not given: {missing}"))
    else:
        specs = [_generated(i) for i in graph_inputs]
    tensors = make_inputs(specs, None, seed=seed)
    return {s.name: t.numpy() for s, t in zip(specs, tensors)}


def _generated(vi) -> InputSpec:
    t = vi.type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
    if None in dims or t.elem_type not in _ONNX_DTYPE:
        raise DcnError(f"input {vi.name!r} has shape {[d.dim_param or d.dim_value for d in t.shape.dim]} "
                       f"(ONNX element type {t.elem_type}): give --input {vi.name}:SHAPE")
    return InputSpec(vi.name, tuple(dims), _ONNX_DTYPE[t.elem_type])
