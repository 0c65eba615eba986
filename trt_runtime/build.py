"""ONNX -> TensorRT engine (FP16 by default) from Polygraphy's loaders.

* TensorRT 10: a float32 ONNX is built with the FP16 builder flag (weakly typed network).
* TensorRT 11 has no FP16 flag; networks are strongly typed, so precision comes from the ONNX
  types: a float16 ONNX (``dcn-export --fp16``) is built as it is, a float32 ONNX is first
  converted with onnxconverter-common (``trt_runtime.fp16_convert``, I/O kept float32, rois float32).

The choice is the pure function :func:`build_plan`. After the build, the engine inspector's
layer JSON must show every ``dcn`` node as one of our plugin layers (:func:`check_plugin_layers`),
otherwise nothing is written. The engine is written atomically, with a side file
``<engine>.build.json`` recording the TensorRT version, precision and shapes.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import re
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from exporter import contract
from dcn_base import atomic
from dcn_base.errors import DcnError, first_line, one_line

from . import cuda_env, engine_files, environment, plugin_loader

ShapeTriple = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]


class PluginLayerCheckFailed(DcnError):
    """The built engine does not run a dcn node through our plugin (a wrong engine, not a usage error)."""

    exit_code = 1


# --------------------------------------------------------------------------- pure helpers


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


def load_onnx(path: str | Path):
    """The ONNX model's graph (weights left on disk); one-line errors for bad files."""
    import onnx  # noqa: PLC0415

    p = Path(path)
    if not p.exists():
        raise DcnError(f"ONNX model {str(path)!r} does not exist")
    if not p.is_file():
        raise DcnError(f"ONNX model {str(path)!r} is not a file")
    try:
        return onnx.load(str(p), load_external_data=False)
    except Exception as err:  # noqa: BLE001  (protobuf DecodeError and friends)
        raise DcnError(f"{str(path)!r} is not a readable ONNX model: {one_line(err)}") from None


def onnx_float_dtype(model) -> str:
    """'float16' if the model keeps any float weights or graph inputs in float16, else 'float32'."""
    from onnx import TensorProto  # noqa: PLC0415

    for init in model.graph.initializer:
        if init.data_type == TensorProto.FLOAT16:
            return "float16"
    for node in model.graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.t is not None and a.t.data_type == TensorProto.FLOAT16:
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
    from onnx import helper

    for n in model.graph.node:
        if n.op_type in contract.OPS and n.domain in ("", contract.DOMAIN):
            contract.check_node_attributes(n.op_type, n.name, {a.name: helper.get_attribute_value(a)
                                                               for a in n.attribute})


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
                from dcn_base.console import example_shape  # noqa: PLC0415

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


# --------------------------------------------------------------------------- inspector check


def _layer_text_fields(layer: Mapping[str, Any]) -> list[str]:
    sep = re.compile(r"[\x1e\x1f]")
    texts = [str(layer.get("Name", ""))]
    meta = layer.get("Metadata")
    if meta:
        texts.extend(t.strip() for t in sep.split(str(meta)) if t.strip())
    return texts


def _mentions(texts: Sequence[str], node_name: str) -> bool:
    if not node_name:
        return False
    pat = re.compile(r"(^|[\s\[:+,])" + re.escape(node_name) + r"($|[\s\]+,]|\s*\[profile)")
    for t in texts:
        if t == node_name or pat.search(t):
            return True
    return False


# The inspector's JSON for plugin layers is not documented: the spellings below are read
# tolerantly. A layer is a plugin layer when a type field (LayerType, ParameterType, Type,
# "Layer Type", any case) says "plugin" (PluginV2, PluginV3, kPLUGIN_V3, Plugin...) or its
# metadata carries our plugins' getMetadataString ("DeformConv2d v1: ..."). Its plugin type is
# the first of the keys below (case, spaces and underscores ignored), a string or a nested
# object's Name / Type, without a namespace ("dcn::DeformConv2d") or version suffix
# ("DeformConv2d_1", "DeformConv2d v1", "DeformConv2d (version 1)"); else the op named by
# that metadata.
_TYPE_KEYS = ("layertype", "parametertype", "type")
_PLUGIN_KEYS = ("plugintype", "pluginname", "plugin", "plugincreator", "plugincreatorname", "creator", "pluginv3",
                "pluginv2")
_META_RE = re.compile(r"(?:^|[\s:\[])([A-Za-z_][A-Za-z0-9_]*) v" + re.escape(contract.PLUGIN_VERSION) + r":")


def _norm_key(key: Any) -> str:
    return re.sub(r"[\s_/-]", "", str(key)).lower()


def _normalized_fields(layer: Mapping[str, Any]) -> dict[str, Any]:
    return {_norm_key(k): v for k, v in layer.items()}


def _metadata_op(layer: Mapping[str, Any]) -> Optional[str]:
    for t in _layer_text_fields(layer)[1:]:
        m = _META_RE.search(t)
        if m and m.group(1) in contract.OPS:
            return m.group(1)
    return None


def _is_plugin_layer(layer: Mapping[str, Any]) -> bool:
    f = _normalized_fields(layer)
    kinds = " ".join(str(f.get(k, "")) for k in _TYPE_KEYS)
    return "plugin" in _norm_key(kinds) or _metadata_op(layer) is not None


def _clean_plugin_type(value: Any) -> Optional[str]:
    if isinstance(value, Mapping):
        inner = _normalized_fields(value)
        for k in ("name", "type", "plugintype", "pluginname"):
            if inner.get(k):
                return _clean_plugin_type(inner[k])
        return None
    text = str(value).strip()
    if not text:
        return None
    text = re.split(r"::|/", text)[-1].strip()  # namespace
    text = re.sub(r"\s*\(\s*version\s*\d[\w.]*\s*\)$|\s+v(?:ersion)?\s*\d[\w.]*$|_v?\d+$", "", text, flags=re.I)
    return text or None


def _plugin_type(layer: Mapping[str, Any]) -> Optional[str]:
    f = _normalized_fields(layer)
    for key in _PLUGIN_KEYS:
        if f.get(key):
            t = _clean_plugin_type(f[key])
            if t:
                # our op types in their own spelling, whatever the case the JSON used
                return next((op for op in contract.OPS if op.lower() == t.lower()), t)
    return _metadata_op(layer)


def _layer_precision(layer: Mapping[str, Any]) -> Optional[str]:
    ins = layer.get("Inputs") or []
    if ins and isinstance(ins[0], Mapping):
        for key in ("Format/Datatype", "Format/DataType", "DataType", "Datatype"):  # TensorRT 10 / 11 spellings
            if key in ins[0]:
                return str(ins[0][key])
    return None


def plugin_layer_report(engine_info: str | Mapping[str, Any],
                        nodes: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """Match every dcn node to the engine's layers (IEngineInspector JSON, DETAILED verbosity).

    Returns one entry per node: {node, op_type, ok, layer, layer_type, plugin_type, precision,
    problem}. A node is ok when a plugin layer (LayerType/ParameterType "PluginV3"...) names it
    (layer name or ONNX metadata) and, where the JSON says, its plugin type is the op type.
    An unnamed node claims a plugin layer of its type that no named node accounts for.
    """
    if isinstance(engine_info, (str, bytes)):
        try:
            engine_info = json.loads(engine_info)
        except ValueError as err:
            raise DcnError(f"engine layer information is not JSON: {one_line(err)}") from None
    layers = engine_info.get("Layers") if isinstance(engine_info, Mapping) else None
    if not isinstance(layers, list):
        raise DcnError("engine layer information has no 'Layers' list")
    if layers and not isinstance(layers[0], Mapping):
        raise DcnError("engine layer information has only layer names: build with ProfilingVerbosity.DETAILED")

    plugin_layers = [l for l in layers if _is_plugin_layer(l)]
    used_unnamed: set[int] = set()
    report = []
    for node_name, op_type in nodes:
        entry: dict[str, Any] = {"node": node_name, "op_type": op_type, "ok": False, "layer": None,
                                 "layer_type": None, "plugin_type": None, "precision": None, "problem": None}
        named = [l for l in layers if _mentions(_layer_text_fields(l), node_name)]
        # the node's own layer before reformatting copies that only mention it as their destination
        named.sort(key=lambda l: "reformat" in f"{l.get('LayerType', '')} {l.get('Name', '')}".lower())
        candidates = [l for l in named if _is_plugin_layer(l)]
        good = [l for l in candidates if _plugin_type(l) in (None, op_type)]
        if not node_name:
            # An unnamed node: claim a plugin layer of its type not named after any listed node.
            pool = [(i, l) for i, l in enumerate(plugin_layers) if i not in used_unnamed
                    and not any(_mentions(_layer_text_fields(l), n) for n, _ in nodes if n)
                    and (_plugin_type(l) == op_type or (_plugin_type(l) is None and op_type in str(l)))]
            if pool:
                i, l = pool[0]
                used_unnamed.add(i)
                good = [l]
            else:
                entry["problem"] = "unnamed node, and no unclaimed plugin layer of this type exists"
        elif not named:
            entry["problem"] = "no layer of the engine comes from this node"
        if good:
            l = good[0]
            entry.update(ok=True, layer=l.get("Name"), layer_type=l.get("LayerType"),
                         plugin_type=_plugin_type(l) or op_type, precision=_layer_precision(l))
        elif named and not entry["problem"]:
            l = (candidates or named)[0]
            entry.update(layer=l.get("Name"), layer_type=l.get("LayerType"), plugin_type=_plugin_type(l))
            if candidates:
                entry["problem"] = f"became plugin {_plugin_type(l)!r}, not {op_type!r}"
            else:
                entry["problem"] = (f"became a TensorRT {l.get('LayerType') or l.get('ParameterType')} layer, "
                                    "not our plugin (TensorRT imported it itself)")
        report.append(entry)
    return report


def check_plugin_layers(engine_info: str | Mapping[str, Any], nodes: Sequence[tuple[str, str]]) -> list[dict]:
    """:func:`plugin_layer_report`, raising PluginLayerCheckFailed naming every node that is not our plugin."""
    report = plugin_layer_report(engine_info, nodes)
    bad = [r for r in report if not r["ok"]]
    if bad:
        details = "; ".join(f"{r['op_type']} {r['node']!r}: {r['problem']}" for r in bad)
        raise PluginLayerCheckFailed(
            f"{len(bad)} of {len(report)} dcn node(s) did not become our plugin layers: {details}"
        )
    return report


# --------------------------------------------------------------------------- progress


def _make_progress_monitor(trt, stream=sys.stderr, interval: float = 2.0):
    """A TensorRT IProgressMonitor: tqdm bars per top-level phase on a terminal, else phase and step
    lines (throttled); None if TensorRT has no IProgressMonitor."""
    base = getattr(trt, "IProgressMonitor", None)
    if base is None:
        return None
    from dcn_base.cli import DEFAULT  # noqa: PLC0415
    from dcn_base.console import progress_enabled  # noqa: PLC0415

    bars = progress_enabled(DEFAULT, stream)

    class _Monitor(base):
        def __init__(self):
            base.__init__(self)
            self._steps: dict[str, int] = {}
            self._depth: dict[str, int] = {}
            self._bars: dict[str, Any] = {}
            self._last = 0.0

        def phase_start(self, phase_name, parent_phase, num_steps):
            depth = self._depth.get(parent_phase, -1) + 1 if parent_phase else 0
            self._depth[phase_name] = depth
            self._steps[phase_name] = num_steps
            if bars:
                if depth <= 1:
                    from tqdm import tqdm  # noqa: PLC0415

                    self._bars[phase_name] = tqdm(total=num_steps, desc=f"[dcn-build] {phase_name}", leave=False,
                                                  position=depth, file=stream, dynamic_ncols=True)
            elif depth <= 1:
                print(f"[dcn-build] {'  ' * depth}{phase_name} ({num_steps} steps)", file=stream, flush=True)

        def step_complete(self, phase_name, step):
            if bars:
                bar = self._bars.get(phase_name)
                if bar is not None:
                    bar.update(step + 1 - bar.n)
                return True
            now = time.monotonic()
            if now - self._last >= interval:
                self._last = now
                n = self._steps.get(phase_name, 0)
                print(f"[dcn-build]   {phase_name}: {step + 1}/{n}", file=stream, flush=True)
            return True

        def phase_finish(self, phase_name):
            bar = self._bars.pop(phase_name, None)
            if bar is not None:
                bar.close()
            self._steps.pop(phase_name, None)
            self._depth.pop(phase_name, None)

    return _Monitor()


class _Heartbeat:
    """Periodic 'still building' lines when TensorRT has no IProgressMonitor."""

    def __init__(self, every: float = 10.0, stream=sys.stderr):
        self.every, self.stream = every, stream
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._t0 = time.monotonic()

    def _run(self):
        while not self._stop.wait(self.every):
            print(f"[dcn-build] still building ({time.monotonic() - self._t0:.0f} s)", file=self.stream, flush=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=1)
        return False


# --------------------------------------------------------------------------- build


@dataclass
class BuildResult:
    engine: str
    plan: BuildPlan
    plugin_layers: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    info: dict = field(default_factory=dict)


def build_engine(
    onnx_path: str | Path,
    output: str | Path,
    *,
    fp16: bool = True,
    shapes: Optional[Mapping[str, ShapeTriple] | Sequence[str]] = None,
    workspace: Optional[int | str] = None,
    timing_cache: Optional[str | Path] = None,
    plugins: Optional[str] = None,
    check_plugins: bool = True,
    verbose: bool = False,
    progress: bool = True,
    log=print,
) -> BuildResult:
    """Build ``onnx_path`` into ``output`` (see module docstring). Raises DcnError subclasses."""
    t_start = time.monotonic()
    # 1. Everything that needs no TensorRT: arguments and the ONNX model.
    model = load_onnx(onnx_path)
    if shapes is not None and not isinstance(shapes, Mapping):
        shapes = parse_shapes(list(shapes))
    profile_shapes = check_profile(onnx_inputs(model), shapes or {})
    workspace_bytes = parse_size(workspace)
    nodes = dcn_nodes(model)
    check_dcn_attributes(model)
    onnx_dtype = onnx_float_dtype(model)
    out = Path(output)
    if out.resolve() == Path(onnx_path).resolve():
        raise DcnError(f"output {str(output)!r} is the input model")
    atomic.check_writable(out)
    if timing_cache:
        atomic.check_writable(timing_cache)
    del model

    # 2. The environment.
    trt = environment.import_tensorrt()
    cuda_env.require_cuda_device()
    plugin_path = plugin_loader.resolve_plugin_path(plugins, required=bool(nodes))
    if plugin_path:
        plugin_loader.load_plugin_library(trt, plugin_path)
    plan = build_plan(trt.__version__, onnx_dtype, fp16)
    if plan.note:
        log(f"[dcn-build] note: {plan.note}")
    if plan.convert_to_fp16:
        try:
            import onnxconverter_common  # noqa: F401, PLC0415  (trt_runtime.fp16_convert calls it directly)
        except ImportError:
            raise DcnError(
                f"TensorRT {trt.__version__} builds FP16 only from a float16 ONNX and {str(onnx_path)!r} is float32: "
                "export it with `dcn-export --fp16`, or `pip install onnxconverter-common` so that dcn-build "
                "converts it, or build FP32 with --no-fp16"
            ) from None

    from polygraphy.backend import onnx as pg_onnx  # noqa: PLC0415
    from polygraphy.backend import trt as pg_trt  # noqa: PLC0415
    from polygraphy.exception import PolygraphyException  # noqa: PLC0415
    from polygraphy.logger import G_LOGGER  # noqa: PLC0415

    # 3. Loaders: plugins -> ONNX parser (-> fp16 conversion) -> config -> engine.
    if plan.convert_to_fp16:
        from .fp16_convert import convert_to_float16  # noqa: PLC0415

        # onnxconverter-common directly (not Polygraphy's ConvertToFp16, which some versions route
        # through onnxmltools), rois kept float32 as the contract says
        network = pg_trt.NetworkFromOnnxBytes(
            pg_onnx.BytesFromOnnx(convert_to_float16(load_onnx(str(onnx_path)))), strongly_typed=True,
        )
    else:
        network = pg_trt.NetworkFromOnnxPath(str(onnx_path), strongly_typed=plan.strongly_typed)
    network = pg_trt.LoadPlugins(plugins=[plugin_path] if plugin_path else [], obj=network)

    profiles = None
    if profile_shapes:
        prof = pg_trt.Profile()
        for name, (mn, opt, mx) in profile_shapes.items():
            prof.add(name, min=mn, opt=opt, max=mx)
        profiles = [prof]
    monitor = _make_progress_monitor(trt) if progress else None
    config_kwargs: dict[str, Any] = dict(
        fp16=plan.fp16_flag,
        profiles=profiles,
        profiling_verbosity=trt.ProfilingVerbosity.DETAILED,
    )
    if workspace_bytes:
        config_kwargs["memory_pool_limits"] = {trt.MemoryPoolType.WORKSPACE: workspace_bytes}
    if timing_cache and Path(timing_cache).is_file():
        config_kwargs["load_timing_cache"] = str(timing_cache)
    if monitor is not None:
        config_kwargs["progress_monitor"] = monitor
    config = pg_trt.CreateConfig(**config_kwargs)

    severity = G_LOGGER.INFO if verbose else G_LOGGER.WARNING
    log(f"[dcn-build] building {plan.precision} engine from {str(onnx_path)!r} with TensorRT {trt.__version__} "
        f"({'strongly typed' if plan.strongly_typed else 'FP16 builder flag' if plan.fp16_flag else 'FP32'})")
    t0 = time.monotonic()
    try:
        with G_LOGGER.verbosity(severity), (_Heartbeat() if (progress and monitor is None) else contextlib.nullcontext()):
            engine = pg_trt.engine_from_network(
                network, config=config, save_timing_cache=str(timing_cache) if timing_cache else None
            )
    except PolygraphyException as err:
        raise DcnError(f"TensorRT failed to build {str(onnx_path)!r}: {first_line(err)}") from None
    seconds = time.monotonic() - t0
    if engine is None:
        raise DcnError(f"TensorRT failed to build {str(onnx_path)!r} (see the log above)")

    # 4. The inspector must show every dcn node as our plugin layer.
    report: list[dict] = []
    if nodes:
        inspector = engine.create_engine_inspector()
        layer_json = inspector.get_engine_information(trt.LayerInformationFormat.JSON)
        report = plugin_layer_report(layer_json, nodes)
        if check_plugins:
            check_plugin_layers(layer_json, nodes)

    # 5. Write atomically: engine, then its side file.
    info = {
        "engine": out.name,
        "onnx": str(Path(onnx_path).resolve()),
        "trt_version": trt.__version__,
        "precision": plan.precision,
        "plan": asdict(plan),
        "shapes": {k: [list(s) for s in v] for k, v in profile_shapes.items()},
        "plugins": plugin_path,
        "plugin_layers": report,
        "build_seconds": round(seconds, 3),
        "built_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    with G_LOGGER.verbosity(severity), atomic.atomic_output(out) as tmp:
        pg_trt.save_engine(engine, str(tmp))
    atomic.write_json_atomic(engine_files.build_info_path(out), info)
    log(f"[dcn-build] wrote {str(out)!r} in {time.monotonic() - t_start:.1f} s (TensorRT build {seconds:.1f} s); "
        f"{len(report)} dcn node(s) run as our plugin layers" + (f" ({_precisions(report)})" if report else ""))
    for line in plugin_layer_table(report):
        log(line)
    return BuildResult(str(out), plan, report, seconds, info)


def plugin_layer_table(report: Sequence[Mapping[str, Any]]) -> list[str]:
    """The plugin-layer check as the same kind of table as dcn-compare's (dcn_base.console.table)."""
    if not report:
        return []
    from dcn_base.console import table  # noqa: PLC0415

    rows = [[r.get("node") or "?", r.get("op_type") or "-", r.get("plugin_type") or "-",
             r.get("precision") or "-", "ok" if r.get("ok") else (r.get("problem") or "not our plugin")]
            for r in report]
    return table(["node", "op_type", "plugin", "precision", "check"], rows, indent="  ")


def _precisions(report: Sequence[Mapping[str, Any]]) -> str:
    seen: dict[str, int] = {}
    for r in report:
        key = r.get("precision") or "precision not reported"
        seen[key] = seen.get(key, 0) + 1
    return ", ".join(f"{v}x {k}" for k, v in seen.items())


