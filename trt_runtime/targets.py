"""dcn-compare's TARGET: what kind of file it is, its inputs / outputs / precision, and the Polygraphy
runner that runs it (ONNX Runtime with our ops, or TensorRT with our plugins)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
from onnx import helper

from dcn_base import libraries
from dcn_base.errors import DcnError, one_line

from . import cuda_env, engine_files, environment
from .build import dcn_nodes, load_onnx, onnx_float_dtype, onnx_inputs, onnx_outputs


ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


ONNX_SUFFIXES = (".onnx",)


@dataclass
class TargetInfo:
    kind: str  # "onnx" or "engine"
    path: str
    inputs: list[tuple[str, Any, tuple[Any, ...]]]  # (name, numpy dtype, dims with None for dynamic)
    outputs: list[str]
    precision: Optional[str]  # auto-detected float type
    runner_factory: Callable[[], Any]
    runner_name: str
    profile_opt: dict[str, tuple[int, ...]] = field(default_factory=dict)
    description: str = ""


def target_kind(path: str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix in ONNX_SUFFIXES:
        return "onnx"
    if suffix in ENGINE_SUFFIXES:
        return "engine"
    raise DcnError(f"TARGET {path!r}: expected an ONNX model (.onnx) or a TensorRT engine ({', '.join(ENGINE_SUFFIXES)})")


def ort_session_factory(path: str, needs_dcn_ops: bool) -> Callable[[], Any]:
    """A callable building an ONNX Runtime session with our CPU ops (``dcn_base.libraries.ort_session``).

    Models without dcn nodes fall back to a plain session when the op library is not built.
    """

    def make():
        try:
            return libraries.ort_session(path, providers=["CPUExecutionProvider"])
        except DcnError as err:
            if not _looks_not_built(err):
                raise
            why = one_line(err)
        if needs_dcn_ops:
            raise environment.PluginLibraryError(
                f"ONNX Runtime op library not built, needed for the dcn nodes of {path!r}: {why}; "
                "run the project's set-up command or `dcn-plugins --ort` to see why"
            )
        import onnxruntime as ort  # noqa: PLC0415  (onnxruntime: heavy, imported where a session is made)

        return ort.InferenceSession(path, sess_options=libraries.session_options(),
                                    providers=["CPUExecutionProvider"])

    return make


def _looks_not_built(err: BaseException) -> bool:
    name = type(err).__name__.lower()
    return isinstance(err, environment.TrtEnvironmentError) or "notbuilt" in name or "not built" in str(err).lower() \
        or "missing" in name or "notfound" in name


def describe_onnx_target(path: str, plugins: Optional[str] = None) -> TargetInfo:

    model = load_onnx(path)
    inputs = []
    for name, elem, dims in onnx_inputs(model):
        try:
            dt = np.dtype(helper.tensor_dtype_to_np_dtype(elem))
        except Exception:  # noqa: BLE001
            raise DcnError(f"ONNX input {name!r} has element type {elem}, which cannot be fed from numpy") from None
        inputs.append((name, dt, tuple(d if isinstance(d, int) else None for d in dims)))
    needs = bool(dcn_nodes(model))
    from polygraphy.backend.onnxrt import OnnxrtRunner  # noqa: PLC0415  (polygraphy: heavy, imported where it runs)

    factory = ort_session_factory(str(path), needs)
    return TargetInfo(
        kind="onnx", path=str(path), inputs=inputs, outputs=onnx_outputs(model), precision=onnx_float_dtype(model),
        runner_factory=lambda: OnnxrtRunner(factory, name="onnxruntime"), runner_name="onnxruntime",
        description="ONNX Runtime (CPU" + (", dcn ops" if needs else "") + ")",
    )


def onnx_order(onnx_path: Optional[str], inputs: list, outputs: list[str]) -> tuple[list, list[str]]:
    """An engine's inputs ((name, ...) tuples) and output names in the order of the ONNX model it was built
    from, where that model is at hand: the PyTorch reference takes its inputs by position and names its
    outputs in this order, and TensorRT does not promise to keep the ONNX order. As given otherwise."""
    if not onnx_path or not Path(onnx_path).is_file():
        return inputs, outputs
    try:
        model = load_onnx(onnx_path)
    except DcnError:
        return inputs, outputs
    rank_in = {n: i for i, (n, _, _) in enumerate(onnx_inputs(model))}
    rank_out = {n: i for i, n in enumerate(onnx_outputs(model))}
    return (sorted(inputs, key=lambda t: rank_in.get(t[0], len(rank_in))),
            sorted(outputs, key=lambda n: rank_out.get(n, len(rank_out))))


def describe_engine_target(path: str, plugins: Optional[str] = None) -> TargetInfo:
    trt = environment.import_tensorrt()
    cuda_env.require_cuda_device()
    engine, runtime, _ = engine_files.deserialize_engine(trt, str(path), plugins=plugins)
    in_names, out_names = engine_files.io_tensors(trt, engine)
    inputs, opt = [], {}
    for n in in_names:
        shape = tuple(engine.get_tensor_shape(n))
        inputs.append((n, np.dtype(trt.nptype(engine.get_tensor_dtype(n))),
                       tuple(d if d >= 0 else None for d in shape)))
        if any(d < 0 for d in shape):
            opt[n] = tuple(engine.get_tensor_profile_shape(n, 0)[1])
    info = engine_files.read_build_info(path)
    inputs, out_names = onnx_order(info.get("onnx"), inputs, out_names)
    from polygraphy.backend.trt import TrtRunner  # noqa: PLC0415  (polygraphy: heavy, imported where it runs)

    keep = (engine, runtime)  # the runtime must outlive the engine
    return TargetInfo(
        kind="engine", path=str(path), inputs=inputs, outputs=out_names,
        precision=info.get("precision") or "float16",
        runner_factory=lambda: TrtRunner(keep[0], name="tensorrt"), runner_name="tensorrt",
        profile_opt=opt, description=f"TensorRT {trt.__version__}",
    )
