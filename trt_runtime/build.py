"""ONNX -> TensorRT engine (FP16 by default) from Polygraphy's loaders.

* TensorRT 10: a float32 ONNX is built with the FP16 builder flag (weakly typed network).
* TensorRT 11 has no FP16 flag; networks are strongly typed, so precision comes from the ONNX
  types: a float16 ONNX (``dcn-export --fp16``) is built as it is, a float32 ONNX is first
  converted with onnxconverter-common (``trt_runtime.fp16_convert``, I/O kept float32, the
  contract's float32 inputs kept float32).

``build_engine`` walks forward, each step a named function called once: ``_read`` (arguments and
the ONNX model, no TensorRT) -> ``_environment`` (TensorRT, CUDA, our plugin library, the plan:
:func:`trt_runtime.build_plan.build_plan`) -> ``_network`` -> ``_config`` -> ``_build`` ->
``_check_layers`` (the engine inspector's layer JSON must show every ``dcn`` node as one of our
plugin layers: :mod:`trt_runtime.plugin_layers`; otherwise nothing is written) -> ``_write`` (the
engine atomically, with a side file ``<engine>.build.json`` recording the TensorRT version,
precision and shapes).
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from dcn_base import atomic
from dcn_base.errors import DcnError, first_line

from . import cuda_env, engine_files, environment, plugin_loader
from .build_plan import (BuildPlan, ShapeTriple, build_plan, check_dcn_attributes, check_profile,  # noqa: F401
                         dcn_nodes, load_onnx, onnx_float_dtype, onnx_inputs, onnx_outputs, parse_shapes,
                         parse_size)
from .build_progress import Heartbeat, make_progress_monitor
from .plugin_layers import (PluginLayerCheckFailed, check_plugin_layers, plugin_layer_report,  # noqa: F401
                            plugin_layer_table, _precisions)


@dataclass
class BuildResult:
    engine: str
    plan: BuildPlan
    plugin_layers: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    info: dict = field(default_factory=dict)


@dataclass
class _Request:
    """What ``_read`` found: the model's facts and the checked arguments."""

    onnx_path: str
    out: Path
    profile: dict[str, ShapeTriple]
    workspace: Optional[int]
    nodes: list[tuple[str, str]]
    onnx_dtype: str
    timing_cache: Optional[str]


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
    req = _read(onnx_path, output, shapes, workspace, timing_cache)
    trt, plan, plugin_path = _environment(req, fp16, plugins, log)
    network = _network(req, plan, plugin_path)
    config = _config(trt, req, plan, progress)
    engine, seconds = _build(trt, req, plan, network, config, verbose, progress and config.progress_monitor is None,
                             log)
    report = _check_layers(trt, engine, req.nodes, check_plugins)
    info = _write(trt, engine, req, plan, plugin_path, report, seconds, verbose)
    log(f"[dcn-build] wrote {str(req.out)!r} in {time.monotonic() - t_start:.1f} s (TensorRT build {seconds:.1f} s); "
        f"{len(report)} dcn node(s) run as our plugin layers" + (f" ({_precisions(report)})" if report else ""))
    for line in plugin_layer_table(report):
        log(line)
    return BuildResult(str(req.out), plan, report, seconds, info)


def _read(onnx_path, output, shapes, workspace, timing_cache) -> _Request:
    """Everything that needs no TensorRT: arguments and the ONNX model."""
    model = load_onnx(onnx_path)
    if shapes is not None and not isinstance(shapes, Mapping):
        shapes = parse_shapes(list(shapes))
    profile = check_profile(onnx_inputs(model), shapes or {})
    workspace_bytes = parse_size(workspace)
    check_dcn_attributes(model)
    out = Path(output)
    atomic.check_writable(out)
    if timing_cache:
        atomic.check_writable(timing_cache)
    # the timing cache is read and written: neither it nor the engine may replace the model or each other
    atomic.check_distinct({"-o": out, "--timing-cache": timing_cache}, {"model": onnx_path})
    return _Request(str(onnx_path), out, profile, workspace_bytes, dcn_nodes(model), onnx_float_dtype(model),
                    str(timing_cache) if timing_cache else None)


def _environment(req: _Request, fp16: bool, plugins: Optional[str], log):
    """TensorRT, a CUDA device, our plugin library loaded, and the plan for this TensorRT."""
    trt = environment.import_tensorrt()
    cuda_env.require_cuda_device()
    plugin_path = plugin_loader.resolve_plugin_path(plugins, required=bool(req.nodes))
    if plugin_path:
        plugin_loader.load_plugin_library(trt, plugin_path)
    plan = build_plan(trt.__version__, req.onnx_dtype, fp16)
    if plan.note:
        log(f"[dcn-build] note: {plan.note}")
    if plan.convert_to_fp16:
        try:
            import onnxconverter_common  # noqa: F401, PLC0415  (optional: trt_runtime.fp16_convert calls it directly)
        except ImportError:
            raise DcnError(
                f"TensorRT {trt.__version__} builds FP16 only from a float16 ONNX and {req.onnx_path!r} is float32: "
                "export it with `dcn-export --fp16`, or `pip install onnxconverter-common` so that dcn-build "
                "converts it, or build FP32 with --no-fp16"
            ) from None
    return trt, plan, plugin_path


def _network(req: _Request, plan: BuildPlan, plugin_path: Optional[str]):
    """Polygraphy's loaders: plugins -> ONNX parser (-> float16 conversion)."""
    from polygraphy.backend import onnx as pg_onnx  # noqa: PLC0415  (polygraphy's TensorRT side: GPU machines)
    from polygraphy.backend import trt as pg_trt  # noqa: PLC0415  (polygraphy: heavy, imported where it runs)

    if plan.convert_to_fp16:
        from .fp16_convert import convert_to_float16  # noqa: PLC0415  (onnxconverter-common: optional)

        # onnxconverter-common directly (not Polygraphy's ConvertToFp16, which some versions route
        # through onnxmltools), the contract's float32 inputs kept float32; weights kept in external
        # files read in (the conversion rewrites them)
        network = pg_trt.NetworkFromOnnxBytes(
            pg_onnx.BytesFromOnnx(convert_to_float16(load_onnx(req.onnx_path, external_data=True))),
            strongly_typed=True,
        )
    else:
        network = pg_trt.NetworkFromOnnxPath(req.onnx_path, strongly_typed=plan.strongly_typed)
    return pg_trt.LoadPlugins(plugins=[plugin_path] if plugin_path else [], obj=network)


class _Config:
    """The builder configuration loader and the progress monitor it carries (None: heartbeats instead)."""

    def __init__(self, loader, progress_monitor):
        self.loader, self.progress_monitor = loader, progress_monitor


def _config(trt, req: _Request, plan: BuildPlan, progress: bool) -> _Config:
    from polygraphy.backend import trt as pg_trt  # noqa: PLC0415  (polygraphy's TensorRT side: GPU machines)

    profiles = None
    if req.profile:
        prof = pg_trt.Profile()
        for name, (mn, opt, mx) in req.profile.items():
            prof.add(name, min=mn, opt=opt, max=mx)
        profiles = [prof]
    monitor = make_progress_monitor(trt) if progress else None
    kwargs: dict[str, Any] = dict(fp16=plan.fp16_flag, profiles=profiles,
                                  profiling_verbosity=trt.ProfilingVerbosity.DETAILED)
    if req.workspace:
        kwargs["memory_pool_limits"] = {trt.MemoryPoolType.WORKSPACE: req.workspace}
    if req.timing_cache and Path(req.timing_cache).is_file():
        kwargs["load_timing_cache"] = req.timing_cache
    if monitor is not None:
        kwargs["progress_monitor"] = monitor
    return _Config(pg_trt.CreateConfig(**kwargs), monitor)


def _build(trt, req: _Request, plan: BuildPlan, network, config: _Config, verbose: bool, heartbeat: bool, log):
    """TensorRT's build; (engine, seconds)."""
    from polygraphy.backend import trt as pg_trt  # noqa: PLC0415  (polygraphy's TensorRT side: GPU machines)
    from polygraphy.exception import PolygraphyException  # noqa: PLC0415  (polygraphy: heavy, imported where it runs)
    from polygraphy.logger import G_LOGGER  # noqa: PLC0415  (polygraphy: heavy, imported where it runs)

    severity = G_LOGGER.INFO if verbose else G_LOGGER.WARNING
    log(f"[dcn-build] building {plan.precision} engine from {req.onnx_path!r} with TensorRT {trt.__version__} "
        f"({'strongly typed' if plan.strongly_typed else 'FP16 builder flag' if plan.fp16_flag else 'FP32'})")
    t0 = time.monotonic()
    # the timing cache through a temporary renamed after the build (a Ctrl-C or a full disk leaves the old one),
    # holding the old cache's entries for Polygraphy to merge with; a side output, not the command's commit
    # (final_commit: Ctrl-C still stops the build before the engine is written)
    cache = atomic.atomic_output(req.timing_cache, commit=False) if req.timing_cache else contextlib.nullcontext(None)
    try:
        with G_LOGGER.verbosity(severity), (Heartbeat() if heartbeat else contextlib.nullcontext()), cache as tmp:
            if tmp is not None and Path(req.timing_cache).is_file():
                shutil.copyfile(req.timing_cache, tmp)
            engine = pg_trt.engine_from_network(network, config=config.loader,
                                                save_timing_cache=str(tmp) if tmp is not None else None)
            if engine is None:
                raise DcnError(f"TensorRT failed to build {req.onnx_path!r} (see the log above)")
    except PolygraphyException as err:
        raise DcnError(f"TensorRT failed to build {req.onnx_path!r}: {first_line(err)}") from None
    return engine, time.monotonic() - t0


def _check_layers(trt, engine, nodes: Sequence[tuple[str, str]], check_plugins: bool) -> list[dict]:
    """The inspector must show every dcn node as our plugin layer (PluginLayerCheckFailed otherwise)."""
    if not nodes:
        return []
    layer_json = engine.create_engine_inspector().get_engine_information(trt.LayerInformationFormat.JSON)
    report = plugin_layer_report(layer_json, nodes)
    if check_plugins:
        check_plugin_layers(layer_json, nodes)
    return report


def _write(trt, engine, req: _Request, plan: BuildPlan, plugin_path: Optional[str], report: list[dict],
           seconds: float, verbose: bool) -> dict:
    """The engine atomically, then its side file; returns the side file's content."""
    from polygraphy.backend import trt as pg_trt  # noqa: PLC0415  (polygraphy's TensorRT side: GPU machines)
    from polygraphy.logger import G_LOGGER  # noqa: PLC0415  (polygraphy: heavy, imported where it runs)

    info = {
        "engine": req.out.name,
        "onnx": str(Path(req.onnx_path).resolve()),
        "trt_version": trt.__version__,
        "precision": plan.precision,
        "plan": asdict(plan),
        "shapes": {k: [list(s) for s in v] for k, v in req.profile.items()},
        "plugins": plugin_path,
        "plugin_layers": report,
        "build_seconds": round(seconds, 3),
        "built_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    with G_LOGGER.verbosity(G_LOGGER.INFO if verbose else G_LOGGER.WARNING), atomic.atomic_output(req.out) as tmp:
        pg_trt.save_engine(engine, str(tmp))
    atomic.write_json_atomic(engine_files.build_info_path(req.out), info)
    return info
