"""dcn-compare's report: error statistics per output, the table printed, the versions recorded and
the plots (matplotlib)."""
from __future__ import annotations

import math
import re
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from dcn_base import atomic
from dcn_base.console import near_zero_note, table
from dcn_base.errors import DcnError, one_line
from dcn_base.tolerance import FACTOR, SHARE_FLOOR, equal_elements



EPSILON = 2.220446049250313e-16  # Polygraphy adds this to zero reference values for relative errors


def error_arrays(ref, got):
    """(abs error, rel error against ref) as Polygraphy computes them (fp16 promoted to fp32), 0 where both
    sides hold the same non-finite value (the verdict's rule: dcn_base.tolerance.same_non_finite)."""
    def up(a):
        a = np.asarray(a)
        if a.dtype == np.float16:
            return a.astype(np.float32)
        if a.dtype == np.bool_:
            return a.astype(np.int32)
        return a

    r, g = up(ref), up(got)
    with np.errstate(invalid="ignore", over="ignore"):
        absdiff = np.abs(g - r) if r.dtype.kind == "f" or g.dtype.kind == "f" else np.abs(
            g.astype(np.int64) - r.astype(np.int64))
        denom = r.astype(absdiff.dtype, copy=True) if absdiff.dtype.kind == "f" else r.astype(np.float64)
        denom[denom == 0] += EPSILON
        reldiff = absdiff / np.abs(denom)
        if absdiff.dtype.kind == "f":  # the same non-finite value on both sides (NaN for NaN, inf for inf): equal
            same = equal_elements(g, r)
            absdiff = np.where(same, 0, absdiff)
            reldiff = np.where(same, 0, reldiff)
    return absdiff, reldiff


def error_stats(refs: Sequence[Any], gots: Sequence[Any], atol: float, rtol: float, bound: float = 1.0) -> dict[str, Any]:
    """Max / mean / median abs and rel error and the share of elements outside tolerance
    (|got - ref| > bound * (atol + rtol * |ref|), the verdict's rule; NaN counts as outside).

    ``refs``/``gots`` are one array per iteration; statistics are over all elements of all of them.
    """
    abs_parts, rel_parts = [], []
    for r, g in zip(refs, gots):
        r, g = np.asarray(r), np.asarray(g)
        if r.shape != g.shape:
            return {"shape_mismatch": f"reference {list(r.shape)} vs target {list(g.shape)}",
                    "elements": int(r.size), "outside": 1.0, "outside_count": int(max(r.size, g.size))}
        a, rl = error_arrays(r, g)
        abs_parts.append(a.reshape(-1))
        rel_parts.append(rl.reshape(-1))
    a = np.concatenate(abs_parts) if abs_parts else np.zeros(0)
    rl = np.concatenate(rel_parts) if rel_parts else np.zeros(0)
    r_abs = np.concatenate([np.abs(np.asarray(r, dtype=np.float64)).reshape(-1) for r in refs]) if refs else a
    with np.errstate(invalid="ignore"):
        bad = np.isnan(a) | (a > bound * (atol + rtol * r_abs))
    n = int(a.size)

    def stat(fn, x):
        if x.size == 0:
            return 0.0
        v = fn(x.astype(np.float64))
        return float(v)

    return {
        "elements": n,
        "max_abs": stat(np.nanmax, a) if n and not np.all(np.isnan(a)) else (float("nan") if n else 0.0),
        "mean_abs": stat(np.mean, a),
        "median_abs": stat(np.median, a),
        "max_rel": stat(np.nanmax, rl) if n and not np.all(np.isnan(rl)) else (float("nan") if n else 0.0),
        "mean_rel": stat(np.mean, rl),
        "median_rel": stat(np.median, rl),
        "nan_count": int(np.isnan(a).sum()),
        "outside_count": int(bad.sum()),
        "outside": float(bad.sum()) / n if n else 0.0,
    }


def runtime_versions() -> dict[str, str]:
    out = {}
    for mod in ("polygraphy", "onnxruntime", "torch", "numpy", "tensorrt"):
        m = sys.modules.get(mod)
        if m is not None and getattr(m, "__version__", None):
            out[mod] = m.__version__
    return out


def _g(x: float) -> str:
    if x is None:
        return "-"
    if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
        return str(x)
    return f"{x:.3g}"


def print_table(outputs: Sequence[Mapping[str, Any]], rep: Mapping[str, Any], log) -> None:
    head = ["output", "shape", "atol", "rtol", "max_abs", "mean_abs", "median_abs", "max_rel", "mean_rel",
            "median_rel", "outside", "error", "pytorch_own", "bound", "result"]
    rows = []
    for o in outputs:
        if "shape_mismatch" in o:
            rows.append([o["name"], "x".join(map(str, o["shape"])), _g(o["atol"]), _g(o["rtol"]),
                         "shape mismatch: " + o["shape_mismatch"], "", "", "", "", "", "100%", "", "", "", "FAIL"])
            continue
        rows.append([
            o["name"], "x".join(map(str, o["shape"])) or "scalar", _g(o["atol"]), _g(o["rtol"]),
            _g(o["max_abs"]), _g(o["mean_abs"]), _g(o["median_abs"]), _g(o["max_rel"]), _g(o["mean_rel"]),
            _g(o["median_rel"]), f"{100 * o['outside']:.3g}%", _g(o["error"]),
            _g(o["own_error"]) if o["own_error"] is not None else "unknown", _g(o["bound"]),
            "PASS" if o["passed"] else "FAIL",
        ])
    log(f"[dcn-compare] {rep['reference']['runner']} ({rep['reference']['source']}) vs "
        f"{rep['target']['runner']} ({rep['target']['source']}), {rep['precision']} tolerances, "
        f"{rep['iterations']} iteration(s)")
    log(f"  (error, pytorch_own: largest |x - ref| / (atol + rtol*|ref|), x = target / PyTorch in the target's "
        f"precision; PASS when error <= bound = max(1, {FACTOR:g} x pytorch_own) and, where pytorch_own widens the "
        f"bound, at most max({100 * SHARE_FLOOR:g}%, {FACTOR:g} x PyTorch's own share) of the elements beyond the "
        f"row (dcn_base.tolerance.passes))")
    for line in table(head, rows):
        log(line)
    for line in near_zero_note(o.get("max_rel") for o in outputs if o["passed"]):
        log(line)
    for o in outputs:
        if o.get("beyond_row") is not None and o["beyond_row"] > o["beyond_row_bound"]:
            log(f"  {o['name']}: {100 * o['beyond_row']:.3g}% of its elements beyond the tolerance row, at most "
                f"{100 * o['beyond_row_bound']:.3g}% where PyTorch's own error widens the bound "
                f"(max({100 * SHARE_FLOOR:g}%, {FACTOR:g} x PyTorch's own share))")
    if rep.get("not_compared"):
        log(f"note: target output(s) {rep['not_compared']} have no reference output and were not compared")
    empty = [o["name"] for o in outputs if o.get("elements") == 0]
    if empty:
        log(f"note: output(s) {empty} have no elements (nothing to compare)")
    failing = [o["name"] for o in outputs if not o["passed"]]
    if failing:
        log(f"FAIL: {len(failing)} of {len(outputs)} output(s) outside tolerance: {', '.join(failing)}")
    else:
        log(f"PASS: all {len(outputs)} output(s) within tolerance")


def check_plot_dir(path: str) -> None:
    try:
        import matplotlib  # noqa: PLC0415  (optional extra [plot])
    except ImportError as err:
        raise DcnError(f"--plot needs matplotlib ({one_line(err)}); pip install 'dcn-deploy[plot]'") from None
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise DcnError(f"--plot {path!r} exists and is not a directory")
    if not p.exists():
        atomic.check_writable(p)  # its parent must exist and be writable


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "output"


def write_plots(directory: str, ref_iters, tgt_iters, outputs: Sequence[Mapping[str, Any]], group=None) -> list[str]:
    """Per output: an error histogram PNG and, for >= 2-D outputs, an abs-error heatmap PNG."""
    try:
        import matplotlib  # noqa: PLC0415  (optional extra [plot])

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415  (optional extra [plot])
    except ImportError as err:
        raise DcnError(f"--plot needs matplotlib ({one_line(err)}); pip install 'dcn-deploy[plot]'") from None

    d = Path(directory)
    if group is not None:
        if not d.parent.is_dir():
            raise DcnError(f"--plot {directory!r}: directory {str(d.parent)!r} does not exist")
        group.mkdir(d)
    else:
        d.mkdir(parents=False, exist_ok=True)

    def save(fig, path):
        """Lay out, write (atomically, or into ``group``), close; the path joins ``files``."""
        fig.tight_layout()
        try:
            if group is not None:
                fig.savefig(group.path(path), dpi=100, format="png")
            else:
                with atomic.atomic_output(path) as tmp:
                    fig.savefig(tmp, dpi=100)
        finally:
            plt.close(fig)
        files.append(str(path))

    files = []
    for o in outputs:
        if "shape_mismatch" in o:
            continue
        name = o["name"]
        absd = [error_arrays(r[name], t[name])[0] for r, t in zip(ref_iters, tgt_iters)]
        flat = np.concatenate([a.reshape(-1) for a in absd]).astype(np.float64)
        flat = flat[np.isfinite(flat)]

        fig, ax = plt.subplots(figsize=(6.4, 4.0))
        floor = 1e-12
        exact = int((flat == 0).sum())
        nonzero = flat[flat > 0]
        vals = np.log10(np.maximum(nonzero, floor)) if nonzero.size else np.zeros(0)
        if vals.size:
            ax.hist(vals, bins=60, color="#3b75af", label=f"|diff| > 0 ({vals.size} elements)")
        if exact:  # log10(0) has no place on the axis: its own, labelled bar left of the rest
            left = (vals.min() if vals.size else math.log10(floor)) - 1.0
            ax.bar([left], [exact], width=0.5, color="#7f8c8d", label=f"|diff| = 0 exactly ({exact} elements)")
        ax.axvline(math.log10(max(o["atol"], floor)), color="#c0392b", linestyle="--", label=f"atol {o['atol']:.3g}")
        ax.set_xlabel("log10 |target - reference|")
        ax.set_ylabel("elements")
        ax.set_title(f"{name}: {'PASS' if o['passed'] else 'FAIL'}, max abs {_g(o['max_abs'])}, "
                     f"{100 * o['outside']:.3g}% outside")
        ax.legend()
        save(fig, d / f"{_safe(name)}_hist.png")

        if len(o["shape"]) >= 2:
            worst = max(range(len(absd)), key=lambda i: float(np.nanmax(absd[i])) if absd[i].size else 0.0)
            a = absd[worst].astype(np.float64)
            a2 = a.reshape(-1, a.shape[-2], a.shape[-1]).max(axis=0) if a.ndim > 2 else a
            fig, ax = plt.subplots(figsize=(6.4, 5.2))
            im = ax.imshow(a2, cmap="magma", aspect="auto", interpolation="nearest")
            fig.colorbar(im, ax=ax, label="|target - reference|")
            lead = " (max over leading dims)" if a.ndim > 2 else ""
            ax.set_title(f"{name}: abs error{lead}")
            ax.set_xlabel(f"dim {a.ndim - 1}")
            ax.set_ylabel(f"dim {a.ndim - 2}")
            save(fig, d / f"{_safe(name)}_heatmap.png")
    return files
