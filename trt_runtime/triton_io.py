"""What a model looks like to Triton: its inputs / outputs and whether it has a batch axis.

Shared by ``dcn-serve`` (PyTriton, trt_runtime.serve) and ``dcn-triton-repo`` (native model
repositories, trt_runtime.triton_repo). An ONNX model is read with ``onnx`` (weights not
loaded); an engine through TensorRT (GPU machine), or from the ONNX model it was built from
(the ``.build.json`` dcn-build writes beside it) where TensorRT is not needed.

Dynamic batching needs one batch axis: axis 0 of every input and every output, dynamic and
one symbol (ONNX ``dim_param``) throughout. A model whose axis 0 means different things
(the PS-RoI sample: ``images`` batch vs ``rois`` count) is served without batching
(Triton's ``max_batch_size: 0``, full shapes); so is an engine whose optimization profile
starts above batch 1 (Triton's batcher forms batches from 1 up, which the engine would refuse).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import onnx
from onnx import helper
from onnx.external_data_helper import uses_external_data

from dcn_base.errors import DcnError

from . import engine_files

# numpy dtype name -> Triton data type (model_config.proto's DataType, and the client's names)
_TRITON_TYPES = {
    "bool": "BOOL", "uint8": "UINT8", "uint16": "UINT16", "uint32": "UINT32", "uint64": "UINT64",
    "int8": "INT8", "int16": "INT16", "int32": "INT32", "int64": "INT64",
    "float16": "FP16", "float32": "FP32", "float64": "FP64",
}

Dim = Union[int, str]  # a size, or the symbol of a dynamic axis ("" when unnamed)


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # numpy dtype name
    shape: tuple[Dim, ...]

    @property
    def dims(self) -> tuple[int, ...]:
        """The shape with -1 for every dynamic axis."""
        return tuple(d if isinstance(d, int) else -1 for d in self.shape)

    @property
    def triton_type(self) -> str:
        """Triton's name of the dtype, e.g. FP32 (config.pbtxt writes TYPE_FP32)."""
        try:
            return _TRITON_TYPES[self.dtype]
        except KeyError:
            raise DcnError(f"tensor {self.name!r}: dtype {self.dtype} has no Triton data type") from None

    def describe(self) -> str:
        return f"{self.name} {self.triton_type} {list(self.shape_text())}"

    def shape_text(self) -> list[str]:
        return [str(d) if isinstance(d, int) else (d or "?") for d in self.shape]


@dataclass
class ModelSpec:
    path: Path
    kind: str  # "onnx" or "engine"
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    max_profile_batch: Optional[int] = None  # engines: the optimization profile's largest batch
    min_profile_batch: Optional[int] = None  # engines: the optimization profile's smallest batch
    notes: list[str] = field(default_factory=list)
    # engines seen through TensorRT: batch_axis of the ONNX model it was built from (None: unknown)
    onnx_batch_axis: Optional[bool] = None

    @property
    def batch_axis(self) -> bool:
        """Axis 0 of every input and output is one dynamic batch axis (see the module docstring)."""
        tensors = self.inputs + self.outputs
        if not tensors or any(len(t.shape) == 0 or isinstance(t.shape[0], int) for t in tensors):
            return False
        if self.onnx_batch_axis is not None:
            return self.onnx_batch_axis
        symbols = {t.shape[0] for t in tensors}
        if self.kind == "engine" and symbols == {""}:
            # TensorRT reports -1 without names: several inputs' axes 0 may differ (images and RoIs)
            return len(self.inputs) == 1
        return len(symbols) == 1 and "" not in symbols

    def no_batching_reason(self, wanted: int) -> Optional[str]:
        """Why Triton must not batch this model (None: it may), for the tools' summary lines."""
        if wanted <= 0:
            return "--max-batch 0"
        if not self.batch_axis:
            return "axis 0 is not one batch axis of every input and output"
        if self.min_profile_batch is not None and self.min_profile_batch > 1:
            return (f"the engine's optimization profile starts at batch {self.min_profile_batch}, and Triton's "
                    "batcher forms smaller batches too; requests carry their whole batch")
        return None

    def batch_size(self, wanted: int) -> int:
        """Triton's max_batch_size for a wanted maximum: 0 without batching (see no_batching_reason), capped by
        the engine's profile."""
        if self.no_batching_reason(wanted) is not None:
            return 0
        if self.max_profile_batch is not None:
            return max(1, min(wanted, self.max_profile_batch))
        return wanted


def default_name(path: Union[str, Path]) -> str:
    """Model name from the file: its stem, or its folder's name for a generic stem (model.onnx);
    reduced to the characters Triton's model names and URLs take."""
    p = Path(path)
    stem = p.stem
    if stem.lower() in ("model", "engine", "model_fp16") and p.resolve().parent.name:
        stem = p.resolve().parent.name
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).strip("._-")
    return name or "model"


def check_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", name or ""):
        raise DcnError(f"model name {name!r}: expected letters, digits, '_', '.', '-' (it becomes a URL path and a folder)")
    return name


def is_onnx(path: Union[str, Path]) -> bool:
    return Path(path).suffix.lower() == ".onnx"


# --------------------------------------------------------------------------- ONNX


def _onnx_tensor(value_info) -> TensorSpec:
    tt = value_info.type.tensor_type
    if not value_info.type.HasField("tensor_type"):
        raise DcnError(f"ONNX value {value_info.name!r} is not a tensor (sequence / map values are not served)")
    if not tt.HasField("shape"):  # a rank-0 tensor has a shape with no dims; this one has none at all
        raise DcnError(f"tensor {value_info.name!r} has unknown rank (no shape in the ONNX model); expected a shape "
                       "on every input and output (dims may be symbols), as dcn-export writes them")
    dtype = str(helper.tensor_dtype_to_np_dtype(tt.elem_type)) if tt.elem_type else "?"
    shape: list[Dim] = []
    for d in tt.shape.dim:
        if d.HasField("dim_value") and d.dim_value > 0:
            shape.append(int(d.dim_value))
        else:
            shape.append(d.dim_param if d.HasField("dim_param") else "")
    return TensorSpec(value_info.name, dtype, tuple(shape))


def describe_onnx(path: Union[str, Path]) -> ModelSpec:
    p = Path(path)
    if not p.is_file():
        raise DcnError(f"model {str(path)!r} does not exist or is not a file")
    try:
        model = onnx.load(str(p), load_external_data=False)
    except Exception as err:  # noqa: BLE001
        raise DcnError(f"{str(path)!r} is not an ONNX model ({' '.join(str(err).split())})") from None
    inits = {i.name for i in model.graph.initializer}
    inputs = [_onnx_tensor(v) for v in model.graph.input if v.name not in inits]
    outputs = [_onnx_tensor(v) for v in model.graph.output]
    return ModelSpec(p, "onnx", inputs, outputs)


def onnx_external_files(path: Union[str, Path]) -> list[Path]:
    """Files holding the model's external tensor data (large models), relative to the model; each must
    lie inside the model's folder (a hostile model's '../../x' or '/abs/x' would otherwise be read
    from, and written to, places outside the model and the repository: DcnError)."""
    model = onnx.load(str(path), load_external_data=False)
    base = Path(path).resolve().parent
    found: list[Path] = []
    for t in model.graph.initializer:
        if uses_external_data(t):
            for entry in t.external_data:
                if entry.key != "location":
                    continue
                loc = Path(entry.value)
                if loc.is_absolute() or ".." in loc.parts or not (base / loc).resolve().is_relative_to(base):
                    raise DcnError(f"model {str(path)!r}: initializer {t.name!r} has external data location "
                                   f"{entry.value!r}, expected a relative path inside the model's folder")
                if loc not in found:
                    found.append(loc)
    return found


# --------------------------------------------------------------------------- engines


def describe_engine(path: Union[str, Path], onnx_path: Optional[Union[str, Path]] = None) -> ModelSpec:
    """An engine's inputs / outputs from the ONNX model it was built from (``onnx_path``, else
    the one named in its ``.build.json``), with the profile's largest batch from that file."""
    p = Path(path)
    if not p.is_file():
        raise DcnError(f"engine {str(path)!r} does not exist or is not a file")
    info = engine_files.read_build_info(p)
    src = onnx_path or info.get("onnx")
    if not src or not Path(src).is_file():
        where = f"{str(src)!r} (from {engine_files.build_info_path(p).name}) does not exist" if src else \
            f"no {engine_files.build_info_path(p).name} beside it names one"
        raise DcnError(f"engine {str(path)!r}: its inputs / outputs are read from the ONNX model it was built from, "
                       f"and {where}; pass --onnx MODEL.onnx")
    spec = describe_onnx(src)
    spec.path, spec.kind = p, "engine"
    profiles = [s for s in (info.get("shapes") or {}).values() if s and len(s) == 3 and s[0] and s[2]]
    if profiles:
        spec.max_profile_batch = min(int(s[2][0]) for s in profiles)
        spec.min_profile_batch = max(int(s[0][0]) for s in profiles)
    spec.notes.append(f"inputs / outputs from {src}")
    return spec


def describe_engine_object(engine) -> ModelSpec:
    """From a loaded trt_runtime.infer.Engine (GPU machine): TensorRT's own view."""
    ins = [TensorSpec(n, str(engine.dtypes[n]), tuple(d if d >= 0 else "" for d in engine.input_shape(n)))
           for n in engine.input_names]
    outs = [TensorSpec(n, str(engine.dtypes[n]), tuple(d if d >= 0 else "" for d in engine.input_shape(n)))
            for n in engine.output_names]  # input_shape(): TensorRT's declared shape of any I/O tensor
    spec = ModelSpec(Path(engine.path), "engine", ins, outs)
    dyn = [n for n in engine.input_names if engine.input_shape(n) and engine.input_shape(n)[0] < 0]
    if dyn:
        spec.max_profile_batch = min(int(engine.profile_shapes(n)[2][0]) for n in dyn)
        spec.min_profile_batch = max(int(engine.profile_shapes(n)[0][0]) for n in dyn)
    return spec
