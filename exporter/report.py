"""``dcn-export --report out.json``: what was exported, as JSON (written atomically).

Keys: ``output`` (the ONNX file), ``source`` (the model file), ``inputs`` / ``outputs`` (name,
shape with dynamic axes as their labels, dtype), ``dynamic_axes``, ``opset``, ``ir_version``,
``deform_conv``, ``precision``, ``dcn_nodes`` (name, op type, graph order) and ``node_counts``,
``swaps``, ``check`` (runtime, reference, tolerance, per-output numbers, passed; null when not
verified), ``io`` (the --save-io files), ``stage_seconds``, ``total_seconds``, ``versions``.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional

import onnx

from dcn_base.atomic import atomic_path, json_text
from dcn_base.cli import versions


def _finite(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)  # JSON has no inf / nan
    return x


def _values(value_infos) -> list[dict[str, Any]]:
    out = []
    for v in value_infos:
        t = v.type.tensor_type
        dims = [d.dim_param if d.HasField("dim_param") else (d.dim_value if d.HasField("dim_value") else None)
                for d in t.shape.dim]
        out.append({"name": v.name, "shape": dims, "dtype": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name
                    if t.elem_type else None})
    return out


def export_report(result: Any, source: Optional[str], total_seconds: float) -> dict[str, Any]:
    """The report of one ``exporter.export`` result (an ``ExportResult``)."""
    graph = result.model.graph if result.model is not None else None
    inputs = _values(graph.input) if graph is not None else [{"name": n} for n in result.input_names]
    outputs = _values(graph.output) if graph is not None else [{"name": n} for n in result.output_names]
    dynamic = {v["name"]: {str(i): d for i, d in enumerate(v.get("shape") or []) if isinstance(d, str)}
               for v in inputs}
    counts: dict[str, int] = {}
    for t in result.dcn_nodes.values():
        counts[t] = counts.get(t, 0) + 1
    check = None
    if result.check is not None:
        c = result.check
        check = {
            "passed": c.passed, "runtime": c.runtime, "reference": c.reference, "dtype": c.dtype,
            "atol": c.atol, "rtol": c.rtol, "atol_scaled_by": "max(1, max |ref|) per output",
            "outputs": [{k: _finite(v) for k, v in asdict(o).items()} | {"passed": o.passed} for o in c.outputs],
        }
    io = None
    if result.io_dir is not None:
        io = {"dir": str(result.io_dir), "files": sorted(p.name for p in result.io_dir.iterdir()
                                                          if p.stem in ("inputs", "outputs"))}
    return {
        "output": str(result.path),
        "source": source,
        "inputs": inputs,
        "outputs": outputs,
        "dynamic_axes": {k: v for k, v in dynamic.items() if v},
        "opset": result.opset,
        "ir_version": result.ir_version,
        "deform_conv": result.deform_conv,
        "precision": ("float16" + ("/io-float16" if result.fp16_io else "/io-float32")) if result.fp16 else "float32",
        "dcn_nodes": [{"name": n, "op_type": t} for n, t in result.dcn_nodes.items()],
        "node_counts": counts,
        "swaps": [asdict(s) for s in result.swaps],
        "check": check,
        "io": io,
        "stage_seconds": {k: round(v, 3) for k, v in result.stage_seconds.items()},
        "total_seconds": round(total_seconds, 3),
        "versions": versions(),
    }


def write_report(path: os.PathLike | str, report: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json_text(report))
