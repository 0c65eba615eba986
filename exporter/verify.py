"""Run an exported ONNX model and compare it with PyTorch's outputs.

Runtimes, first usable wins:

1. ONNX Runtime alone, when the graph has no ``dcn`` node (``--deform-conv onnx``
   without RoI pooling).
2. ONNX Runtime with our custom-op library (``exporter.libraries.ort_session``),
   once that library is built.
3. ONNX Runtime with every ``dcn::DeformConv2d`` run as the standard ``DeformConv``
   (same semantics, inputs and attributes by the contract), when the graph has no
   ``DeformPSROIPool`` and its opset has ``DeformConv`` (>= 19).
4. ``onnx.reference.ReferenceEvaluator`` with ``dcn`` ops that call our PyTorch
   reference: pure Python, slow on big models, runs anything.

Tolerances come from :mod:`exporter.tolerance`: the error unit of an element is
``atol * scale + rtol * |ref|``, with ``scale = max(1, max |ref|)`` of that output, and the
verdict is ``tolerance.passes``: the target's largest error in those units must be at most
``max(1, FACTOR x PyTorch's own error)`` -- PyTorch's own error being the model run in the
target's precision (float32, or float16 for FP16 exports) against the same reference.
The reference is PyTorch in float64 where the model runs in it.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional, Sequence

import numpy as np
import onnx

from .contract import (DEFORM_CONV2D, DEFORM_PSROI_POOL, DEFORM_ROI_POOL, DOMAIN, STANDARD_DEFORM_CONV,
                       STANDARD_DEFORM_CONV_OPSET, is_dcn_node)
from .errors import DcnError, describe, one_line
from .tolerance import FACTOR, error_ratio, output_scale, passes, tolerance


# --------------------------------------------------------------------------- reference evaluator ops
def _reference_ops():
    """OpRun classes for the dcn domain, calling exporter.ops.reference (float math for half data)."""
    import torch
    from onnx.reference.op_run import OpRun

    from .ops import reference as ref

    def attrs(op, spec):
        values = {}
        for a in spec.attrs:
            v = getattr(op, a.name, None)
            if v is None:
                v = a.default
            values[a.name] = v
        return values

    def as_torch(a):
        if a is None:
            return None
        t = torch.from_numpy(np.array(a, copy=True))
        return t.float() if t.dtype == torch.float16 else t

    class DeformConv2d(OpRun):
        op_domain = DOMAIN

        def _run(self, X, W, offset, B=None, mask=None, **_):
            a = attrs(self, DEFORM_CONV2D)
            y = ref.deform_conv2d(
                as_torch(X), as_torch(offset), as_torch(W), as_torch(B), stride=tuple(a["strides"]),
                padding=tuple(a["pads"]), dilation=tuple(a["dilations"]), mask=as_torch(mask),
            )
            got = {"group": X.shape[1] // W.shape[1],
                   "offset_group": offset.shape[1] // (2 * W.shape[2] * W.shape[3])}
            for key, want in got.items():
                if int(a[key]) != want:
                    raise DcnError(f"DeformConv2d '{self.onnx_node.name}': {key} is {a[key]}, "
                                   f"expected {want} from the input shapes")
            return (y.numpy().astype(X.dtype),)

    class DeformPSROIPool(OpRun):
        op_domain = DOMAIN

        def _run(self, data, rois, trans=None, **_):
            a = attrs(self, DEFORM_PSROI_POOL)
            y = ref.deform_psroi_pool(
                as_torch(data), as_torch(rois), None if a["no_trans"] else as_torch(trans),
                spatial_scale=float(a["spatial_scale"]), output_dim=int(a["output_dim"]),
                group_size=int(a["group_size"]), pooled_size=int(a["pooled_size"]), part_size=int(a["part_size"]),
                sample_per_part=int(a["sample_per_part"]), trans_std=float(a["trans_std"]),
            )
            return (y.numpy().astype(data.dtype),)

    class DeformRoIPool(OpRun):
        op_domain = DOMAIN

        def _run(self, data, rois, offset=None, **_):
            a = attrs(self, DEFORM_ROI_POOL)
            y = ref.deform_roi_pool(
                as_torch(data), as_torch(rois), as_torch(offset), pooled_height=int(a["pooled_height"]),
                pooled_width=int(a["pooled_width"]), spatial_scale=float(a["spatial_scale"]),
                sampling_ratio=int(a["sampling_ratio"]), gamma=float(a["gamma"]),
            )
            return (y.numpy().astype(data.dtype),)

    from .ops.multi_scale_deformable_attention.onnx import reference_op

    return [DeformConv2d, DeformPSROIPool, DeformRoIPool, reference_op()]


# --------------------------------------------------------------------------- runtimes
@dataclass
class Runner:
    name: str
    run: Callable[[Mapping[str, np.ndarray]], list[np.ndarray]]


def _dcn_op_types(model: onnx.ModelProto) -> set[str]:
    return {n.op_type for n in model.graph.node if is_dcn_node(n, standard=False)}


def _default_opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _ort_runner(model: onnx.ModelProto, name: str) -> Runner:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return Runner(name, lambda feed: sess.run(None, dict(feed)))


def as_standard_deform_conv(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy in which every ``dcn::DeformConv2d`` is the standard ``DeformConv`` (contract: same semantics)."""
    out = copy.deepcopy(model)
    for node in out.graph.node:
        if node.domain == DOMAIN and node.op_type == DEFORM_CONV2D.op_type:
            node.op_type, node.domain = STANDARD_DEFORM_CONV, ""
    if not _dcn_op_types(out):
        keep = [o for o in out.opset_import if o.domain != DOMAIN]
        del out.opset_import[:]
        out.opset_import.extend(keep)
    return out


def _plugin_ort_runner(model: onnx.ModelProto) -> Optional[Runner]:
    """ONNX Runtime with our custom-op library (exporter.libraries), or None where it is not built."""
    from . import libraries

    factory = libraries.ort_session
    try:
        sess = factory(model.SerializeToString())
    except Exception as e:
        if isinstance(e, LookupError):  # libraries.LibraryNotBuiltError: not built, the next runtime (named)
            return None
        # built but not loadable, or it refuses the model: an error, never a silent fallback
        raise DcnError(f"ONNX Runtime with libdcn_ort failed to load the model: {type(e).__name__}: "
                       f"{one_line(e)[:400]}") from e
    return Runner("onnxruntime + dcn ops", lambda feed: sess.run(None, dict(feed)))


def _reference_runner(model: onnx.ModelProto) -> Runner:
    from onnx.reference import ReferenceEvaluator

    ev = ReferenceEvaluator(model, new_ops=_reference_ops())
    return Runner("onnx reference evaluator + dcn reference ops", lambda feed: list(ev.run(None, dict(feed))))


def make_runner(model: onnx.ModelProto, prefer: str = "auto") -> Runner:
    """Pick the first usable runtime (see module doc). ``prefer='reference'`` forces the evaluator."""
    if prefer == "reference":
        return _reference_runner(model)
    ops = _dcn_op_types(model)
    candidates: list[Callable[[], Optional[Runner]]] = []
    if not ops:
        candidates.append(lambda: _ort_runner(model, "onnxruntime"))
    else:
        candidates.append(lambda: _plugin_ort_runner(model))
        if ops == {DEFORM_CONV2D.op_type} and _default_opset(model) >= STANDARD_DEFORM_CONV_OPSET:
            candidates.append(lambda: _ort_runner(as_standard_deform_conv(model),
                                                  "onnxruntime, dcn::DeformConv2d run as ONNX DeformConv"))
    for make in candidates:
        try:
            runner = make()
        except DcnError:
            raise
        except Exception:  # e.g. a float16 kernel ONNX Runtime's CPU provider lacks
            runner = None
        if runner is not None:
            return runner
    return _reference_runner(model)


# --------------------------------------------------------------------------- comparison
@dataclass
class OutputError:
    name: str
    max_abs: float
    max_rel: float  # |got - ref| / |ref| over elements with ref != 0
    worst: float  # max |got - ref| / (atol * scale + rtol |ref|): the target's error in tolerance units
    scale: float = 1.0  # max(1, max |ref|)
    shape_ok: bool = True
    finite_ok: bool = True
    own: Optional[float] = None  # PyTorch's own error in the target's precision, same units

    @property
    def verdict(self):
        return passes(self.worst, self.own)

    @property
    def passed(self) -> bool:
        return self.shape_ok and self.finite_ok and self.verdict.passed


@dataclass
class CheckReport:
    runtime: str
    dtype: str
    atol: float
    rtol: float
    reference: str = "PyTorch"
    outputs: list[OutputError] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outputs)

    @property
    def max_abs(self) -> float:
        return max((o.max_abs for o in self.outputs), default=0.0)

    def summary(self) -> str:
        """One line: runtime, per output max abs / rel error, tolerance, PASS/FAIL."""
        parts = []
        for o in self.outputs:
            if not o.shape_ok:
                parts.append(f"{o.name}: shape mismatch")
            elif not o.finite_ok:
                parts.append(f"{o.name}: non-finite values differ")
            else:
                own = f"{o.own:.2g}" if o.own is not None else "unknown"
                parts.append(f"{o.name}: max abs {o.max_abs:.3g}, max rel {o.max_rel:.3g}, "
                             f"{o.worst:.2g} of tolerance vs PyTorch's own {own} (bound {o.verdict.bound:.2g}, "
                             f"scale {o.scale:.3g})")
        verdict = "PASS" if self.passed else "FAIL"
        return (f"check ({self.runtime} vs {self.reference}) {verdict}: " + "; ".join(parts)
                + f" [{self.dtype} tolerance atol {self.atol:g} x scale, rtol {self.rtol:g}; "
                f"bound max(1, {FACTOR:g} x PyTorch's own {self.dtype} error)]")

    def table_rows(self) -> tuple[list[str], list[list[str]]]:
        """(header, rows) of the per-output table (exporter.cli_common.table prints it)."""
        head = ["output", "max_abs", "max_rel", "of_tolerance", "scale", "result"]
        rows = []
        for o in self.outputs:
            if not o.shape_ok or not o.finite_ok:
                what = "shape mismatch" if not o.shape_ok else "non-finite values differ"
                rows.append([o.name, what, "", "", "", "FAIL"])
                continue
            rows.append([o.name, f"{o.max_abs:.3g}", f"{o.max_rel:.3g}", f"{o.worst:.2g}", f"{o.scale:.3g}",
                         "PASS" if o.passed else "FAIL"])
        return head, rows

    def notes(self) -> list[str]:
        """Lines explaining numbers that look alarming but are not (large max_rel on a pass)."""
        from .cli_common import near_zero_note

        return near_zero_note(o.max_rel for o in self.outputs if o.passed)


def compare(name: str, got: np.ndarray, ref: np.ndarray, atol: float, rtol: float,
            own: Optional[np.ndarray] = None) -> OutputError:
    got = np.asarray(got)
    ref = np.asarray(ref)
    if got.shape != ref.shape:
        return OutputError(name, math.inf, math.inf, math.inf, shape_ok=False)
    g = got.astype(np.float64)
    r = ref.astype(np.float64)
    fin_g, fin_r = np.isfinite(g), np.isfinite(r)
    finite_ok = bool(np.array_equal(fin_g, fin_r) and np.array_equal(g[~fin_r], r[~fin_r]))
    both = fin_g & fin_r
    if not both.any():
        return OutputError(name, 0.0, 0.0, 0.0, finite_ok=finite_ok)
    d = np.abs(g[both] - r[both])
    ar = np.abs(r[both])
    nz = ar > 0
    scale = output_scale(r)
    return OutputError(
        name,
        max_abs=float(d.max()),
        max_rel=float((d[nz] / ar[nz]).max()) if nz.any() else 0.0,
        worst=error_ratio(g[both], r[both], atol * scale, rtol),
        scale=scale,
        finite_ok=finite_ok,
        own=error_ratio(own, r, atol * scale, rtol) if own is not None else None,
    )


def check_outputs(runner: Runner, feed: Mapping[str, np.ndarray], output_names: Sequence[str],
                  reference: Sequence[np.ndarray], dtype: str, reference_name: str = "PyTorch",
                  own: Optional[Sequence[np.ndarray]] = None) -> CheckReport:
    """Run ``runner`` and judge each output against ``reference`` (``tolerance.passes``); ``own``:
    PyTorch's outputs in the target's precision, whose error against ``reference`` sets the bound."""
    atol, rtol = tolerance(dtype)
    got = runner.run(feed)
    report = CheckReport(runner.name, dtype, atol, rtol, reference_name)
    owns = list(own) if own is not None else [None] * len(reference)
    for name, g, r, o in zip(output_names, got, reference, owns):
        report.outputs.append(compare(name, g, r, atol, rtol, o))
    return report


def check_export(proto: onnx.ModelProto, feed: Mapping[str, np.ndarray], outs: Sequence[str], truth: Sequence[np.ndarray],
            truth_name: str, dtype: str, runtime: str, own: Optional[Sequence[np.ndarray]] = None):
    from . import verify as verify_mod

    try:
        runner = verify_mod.make_runner(proto, prefer=runtime)
        return verify_mod.check_outputs(runner, feed, outs, truth, dtype, truth_name, own=own)
    except DcnError:
        raise
    except Exception as e:
        raise DcnError(f"running the exported model failed: {describe(e)}") from e
