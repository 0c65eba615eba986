"""Run an exported ONNX model and compare it with PyTorch's outputs.

Runtimes, first usable wins:

1. ONNX Runtime alone, when the graph has no ``dcn`` node (``--deform-conv onnx``
   without RoI pooling).
2. ONNX Runtime with our custom-op library (``dcn_base.libraries.ort_session``),
   once that library is built.
3. ONNX Runtime with every node run as ONNX's own equivalent of its op (the contract entry's
   ``standard``: same semantics, inputs and attributes), when every op of the graph has one
   and the graph's opset has it.
4. ``onnx.reference.ReferenceEvaluator`` with ``dcn`` ops that call our PyTorch
   reference: pure Python, slow on big models, runs anything.

Tolerances come from :mod:`dcn_base.tolerance`: the error unit of an element is
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
import torch
from onnx.reference import ReferenceEvaluator
from onnx.reference.op_run import OpRun

from dcn_base import libraries
from dcn_base.console import near_zero_note
from dcn_base.errors import DcnError, describe, one_line
from dcn_base.tolerance import (FACTOR, error_ratio, exact_dtype, output_scale, output_tolerance, passes,
                                same_non_finite, share_beyond, tolerance)

from . import ops
from .contract import DOMAIN, OpSpec, is_dcn_node, spec_of_node, specs


# --------------------------------------------------------------------------- reference evaluator ops
def _as_torch(a):
    if a is None:
        return None
    t = torch.from_numpy(np.array(a, copy=True))
    return t.float() if t.dtype == torch.float16 else t  # float math for half data


def _reference_op(spec: OpSpec, evaluate) -> type:
    """An OpRun class for ``spec``'s nodes that runs the op's float64 reference (its onnx.py ``evaluate``)."""

    def _run(self, *inputs, **_):
        attrs = {a.name: getattr(self, a.name, None) for a in spec.attrs}
        attrs = {k: (v if v is not None else spec.attr(k).default) for k, v in attrs.items()}
        given = [_as_torch(x) for x in inputs] + [None] * (len(spec.inputs) - len(inputs))
        y = evaluate(self.onnx_node.name, given, attrs)
        return (y.numpy().astype(inputs[0].dtype),)

    return type(spec.op_type, (OpRun,), {"op_domain": DOMAIN, "_run": _run})


def _reference_ops() -> list[type]:
    """OpRun classes for the dcn domain: every registered op on its float64 reference."""
    return [_reference_op(spec, ops.part(spec.name, "onnx").evaluate) for spec in specs()]


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
    import onnxruntime as ort  # noqa: PLC0415  (heavy: only when a model is checked)

    sess = ort.InferenceSession(model.SerializeToString(), libraries.session_options(),
                                providers=["CPUExecutionProvider"])
    return Runner(name, lambda feed: sess.run(None, dict(feed)))


def as_standard_ops(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy in which every node of ours that ONNX has an equivalent of is that standard op (contract:
    same inputs, attributes and semantics)."""
    out = copy.deepcopy(model)
    for node in out.graph.node:
        spec = spec_of_node(node)
        if node.domain == DOMAIN and spec is not None and spec.standard is not None:
            node.op_type, node.domain = spec.standard.op_type, ""
    if not _dcn_op_types(out):
        keep = [o for o in out.opset_import if o.domain != DOMAIN]
        del out.opset_import[:]
        out.opset_import.extend(keep)
    return out


def _standard_runner(model: onnx.ModelProto, op_types: set[str]) -> Optional[Callable[[], Optional[Runner]]]:
    """ONNX Runtime with every node run as ONNX's equivalent, when all of the graph's ops have one in its opset."""
    equivalents = {s.op_type: s.standard for s in specs() if s.standard is not None}
    if not op_types <= set(equivalents) or _default_opset(model) < max(equivalents[t].opset for t in op_types):
        return None
    what = ", ".join(f"dcn::{t} run as ONNX {equivalents[t].op_type}" for t in sorted(op_types))
    return lambda: _ort_runner(as_standard_ops(model), f"onnxruntime, {what}")


def _plugin_ort_runner(model: onnx.ModelProto) -> Optional[Runner]:
    """ONNX Runtime with our custom-op library (dcn_base.libraries), or None where it is not built."""
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
    ev = ReferenceEvaluator(model, new_ops=_reference_ops())
    return Runner("onnx reference evaluator + dcn reference ops", lambda feed: list(ev.run(None, dict(feed))))


def make_runner(model: onnx.ModelProto, prefer: str = "auto") -> Runner:
    """Pick the first usable runtime (see module doc). ``prefer='reference'`` forces the evaluator."""
    if prefer == "reference":
        return _reference_runner(model)
    op_types = _dcn_op_types(model)
    candidates: list[Callable[[], Optional[Runner]]] = []
    if not op_types:
        candidates.append(lambda: _ort_runner(model, "onnxruntime"))
    else:
        candidates.append(lambda: _plugin_ort_runner(model))
        standard = _standard_runner(model, op_types)
        if standard is not None:
            candidates.append(standard)
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
    share: Optional[float] = None  # the share of elements beyond the row (tolerance.share_beyond)
    own_share: Optional[float] = None  # PyTorch's own, the same
    exact: bool = False  # an integer / bool output (tolerance.passes(exact=True))

    @property
    def verdict(self):
        return passes(self.worst, self.own, share=self.share, own_share=self.own_share, exact=self.exact)

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
            elif o.exact:
                parts.append(f"{o.name}: {o.verdict.text()}")
            else:
                own = f"{o.own:.2g}" if o.own is not None else "unknown"
                v = o.verdict
                spread = f", {100 * v.share:.2g}% beyond the row, at most {100 * v.share_bound:.2g}%" \
                    if v.share is not None else ""
                parts.append(f"{o.name}: max abs {o.max_abs:.3g}, max rel {o.max_rel:.3g}, "
                             f"{o.worst:.2g} of tolerance vs PyTorch's own {own} (bound {v.bound:.2g}{spread}, "
                             f"scale {o.scale:.3g})")
        verdict = "PASS" if self.passed else "FAIL"
        return (f"check ({self.runtime} vs {self.reference}) {verdict}: " + "; ".join(parts)
                + f" [{self.dtype} tolerance atol {self.atol:g} x scale, rtol {self.rtol:g}; "
                f"bound max(1, {FACTOR:g} x PyTorch's own {self.dtype} error)]")

    def table_rows(self) -> tuple[list[str], list[list[str]]]:
        """(header, rows) of the per-output table (dcn_base.console.table prints it)."""
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
        return near_zero_note(o.max_rel for o in self.outputs if o.passed)


def compare(name: str, got: np.ndarray, ref: np.ndarray, atol: float, rtol: float,
            own: Optional[np.ndarray] = None) -> OutputError:
    got = np.asarray(got)
    ref = np.asarray(ref)
    if got.shape != ref.shape:
        return OutputError(name, math.inf, math.inf, math.inf, shape_ok=False)
    g = got.astype(np.float64)
    r = ref.astype(np.float64)
    finite_ok = same_non_finite(g, r)
    both = np.isfinite(g) & np.isfinite(r)
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
        share=share_beyond(g, r, atol * scale, rtol),
        own_share=share_beyond(own, r, atol * scale, rtol) if own is not None else None,
        exact=exact_dtype(ref.dtype),
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
        # integer and bool outputs (labels, indices) exactly
        report.outputs.append(compare(name, g, r, *output_tolerance(dtype, np.asarray(r).dtype), o))
    return report


def check_export(proto: onnx.ModelProto, feed: Mapping[str, np.ndarray], outs: Sequence[str], truth: Sequence[np.ndarray],
            truth_name: str, dtype: str, runtime: str, own: Optional[Sequence[np.ndarray]] = None):
    try:
        runner = make_runner(proto, prefer=runtime)
        return check_outputs(runner, feed, outs, truth, dtype, truth_name, own=own)
    except DcnError:
        raise
    except Exception as e:
        raise DcnError(f"running the exported model failed: {describe(e)}") from e
