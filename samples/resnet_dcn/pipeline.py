"""The sample pipeline, shared by every sample: model file -> ONNX -> ONNX Runtime -> Polygraphy.

* :func:`save_program` writes a ``torch.export`` program (``.pt2``) atomically, with dynamic axes
  traced symbolically and the example inputs saved, so ``dcn-export model.pt2 -o model.onnx``
  needs no ``--input``.
* :func:`run_pipeline` runs the same command lines a user types (``dcn-export`` as a command,
  ``dcn-compare`` through its Python API, each printed first), then ONNX Runtime by hand, for
  the plugin mode (``dcn::DeformConv2d`` / ``dcn::DeformPSROIPool`` with our CPU op library) and
  optionally the standard-op mode (``--deform-conv onnx``: ONNX's ``DeformConv``, run by a plain
  ONNX Runtime session without our library).

Every comparison uses :mod:`dcn_base.tolerance` (``model_tolerance``) or ``dcn-compare`` (which
reads the same table). Errors are one line.
"""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np
import torch
from torch import nn

from dcn_base.atomic import atomic_path
from dcn_base.errors import DcnError

MAX_THREADS = 2  # the machines this runs on in CI are small and shared


def set_threads(n: Optional[int] = None) -> int:
    """PyTorch's threads: ``n``, else at most MAX_THREADS (fewer if OMP_NUM_THREADS or the caller set fewer)."""
    n = n or min(MAX_THREADS, torch.get_num_threads(), os.cpu_count() or 1)
    torch.set_num_threads(n)
    return n


def check_writable_file(path: Path) -> None:
    if path.exists() and path.is_dir():
        raise DcnError(f"output '{path}' is a directory, expected a file path")
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DcnError(f"cannot create output directory '{parent}': {e.strerror or e}") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise DcnError(f"output directory '{parent}' is not writable")


def write_program(model: nn.Module, example_inputs: Sequence[torch.Tensor], path: os.PathLike | str,
                  dynamic: Mapping[int, Mapping[int, str]], described: str, export_args: Sequence[str] = ()) -> Path:
    """:func:`save_program`, then the two lines every sample prints: what was written (``described``:
    the example inputs in words) and the ``next:`` dcn-export command that proves it."""
    out = save_program(model, example_inputs, path, dynamic=dynamic)
    print(f"wrote {out} (torch.export program, {described})")
    extra = "".join(f" {a}" for a in export_args)
    print(f"next: dcn-export {out} -o {out.with_suffix('.onnx')}{extra} --save-io {out.parent / 'io'} --check")
    return out


def save_program(model: nn.Module, example_inputs: Sequence[torch.Tensor], path: os.PathLike | str,
                 dynamic: Optional[Mapping[int, Mapping[int, str]]] = None) -> Path:
    """``torch.export`` ``model`` and save the program to ``path`` atomically (temp file + rename).

    dynamic: {input index: {axis: label}}; those axes are traced symbolic (at size >= 2), so the
    program re-traces with ``dcn-export --dynamic``. The saved example inputs are ``example_inputs``
    as given (batch 1), so ``dcn-export model.pt2`` exports that shape by default."""
    path = Path(path)
    check_writable_file(path)
    example_inputs = tuple(example_inputs)
    trace = list(example_inputs)
    shapes = None
    if dynamic:
        shapes = []
        for i, t in enumerate(example_inputs):
            axes = dynamic.get(i, {})
            for axis in axes:
                if t.shape[axis] < 2:  # torch.export specializes sizes 0 and 1
                    reps = [1] * t.dim()
                    reps[axis] = 2
                    trace[i] = trace[i].repeat(*reps)
            shapes.append({axis: torch.export.Dim(label, min=1) for axis, label in axes.items()} or None)
        shapes = tuple(shapes)
    model = model.eval()
    try:
        with torch.no_grad():
            ep = torch.export.export(model, tuple(trace), dynamic_shapes=shapes, strict=False)
    except Exception as e:  # noqa: BLE001
        raise DcnError(f"torch.export of the sample model failed: {type(e).__name__}: {_first_line(e)}") from e
    ep.example_inputs = (example_inputs, {})
    with atomic_path(path) as tmp:  # ends in .pt2 like path
        torch.export.save(ep, tmp)
    return path


def save_state_dict(model: nn.Module, path: os.PathLike | str) -> Path:
    """``torch.save(model.state_dict())`` atomically (for ``dcn-export --factory``)."""
    path = Path(path)
    check_writable_file(path)
    with atomic_path(path) as tmp:
        torch.save(model.state_dict(), tmp)
    return path


def _first_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    line = lines[0] if lines else ""
    return line if len(line) <= 300 else line[:297] + "..."


def command_line(prog: str, argv: Sequence[Any]) -> str:
    return " ".join([prog] + [shlex.quote(str(a)) for a in argv])


# --------------------------------------------------------------------------- running the CLIs
def dcn_export(argv: Sequence[Any], say: Callable[[str], None] = print) -> None:
    """``dcn-export ARGV`` as a user runs it (``python -m exporter``, the command in its own process; its
    output follows the printed command line); a non-zero exit is a DcnError."""
    argv = [str(a) for a in argv]
    say(f"$ {command_line('dcn-export', argv)}")
    sys.stdout.flush()
    code = subprocess.run([sys.executable, "-m", "exporter", *argv]).returncode
    if code != 0:
        err = DcnError(f"dcn-export exited with {code} (its message is above)")
        err.exit_code = code  # 1: --check found a mismatch, 2: an error
        raise err


def dcn_compare(reference: Any, target: Any, say: Callable[[str], None] = print):
    """``dcn-compare REFERENCE TARGET`` through its Python API (the CLI's own code); returns the outcome."""
    from trt_runtime.compare import compare

    say(f"$ {command_line('dcn-compare', [reference, target])}")
    return compare(str(reference), str(target), log=say)


# --------------------------------------------------------------------------- ONNX Runtime by hand
def load_io(io_dir: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(inputs, PyTorch outputs) of the first iteration saved by ``dcn-export --save-io``."""
    from polygraphy.comparator import RunResults
    from polygraphy.json import load_json
    from polygraphy.logger import G_LOGGER

    with G_LOGGER.verbosity(G_LOGGER.ERROR):  # no "[I] Loading ..." lines
        feeds = load_json(str(io_dir / "inputs.json"))
        results = RunResults.load(str(io_dir / "outputs.json"))
    feed = dict(feeds[0] if isinstance(feeds, list) else feeds)
    name, iters = list(results.items())[0]
    return feed, {k: np.asarray(v) for k, v in iters[0].items()}


def ort_run(onnx_path: Path, feed: Mapping[str, np.ndarray], *, ours: bool, threads: Optional[int] = None,
            repeat: int = 3) -> tuple[dict[str, np.ndarray], float]:
    """Outputs and median latency (ms) of ONNX Runtime on ``feed``.

    ours: register our op library (``trt_runtime.plugins.ort_session``); else a plain session
    (possible only when the graph has no dcn node)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads or torch.get_num_threads()
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")  # shared machines: no busy-waiting
    if ours:
        from trt_runtime.plugins import ort_session

        sess = ort_session(str(onnx_path), sess_options=so)
    else:
        sess = ort.InferenceSession(str(onnx_path), sess_options=so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    outs = sess.run(names, dict(feed))
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        sess.run(names, dict(feed))
        times.append(time.perf_counter() - t0)
    return dict(zip(names, outs)), float(np.median(times) * 1e3)


def max_error_and_tolerance(got: Mapping[str, np.ndarray], ref: Mapping[str, np.ndarray]) -> tuple[bool, str]:
    """Every output within ``dcn_base.tolerance.model_tolerance`` (the numpy.isclose rule)?"""
    from dcn_base.tolerance import model_tolerance

    ok, parts = True, []
    for name, r in ref.items():
        g = np.asarray(got[name], dtype=np.float64)
        r = np.asarray(r, dtype=np.float64)
        atol, rtol = model_tolerance(str(np.asarray(got[name]).dtype), r)
        err = np.abs(g - r)
        passed = bool(g.shape == r.shape and np.all(err <= atol + rtol * np.abs(r)))
        ok &= passed
        parts.append(f"{name}: max |err| {err.max():.2e} (atol {atol:.1e}, rtol {rtol:.0e})")
    return ok, "; ".join(parts)


# --------------------------------------------------------------------------- the whole pipeline
@dataclass
class ModeResult:
    mode: str
    onnx: Path
    nodes: str
    compare_passed: bool
    max_error: float
    ort_ms: float
    runtime: str
    export_s: float
    extra: list[str] = field(default_factory=list)


def _node_summary(onnx_path: Path) -> str:
    import onnx

    from exporter.contract import is_dcn_node

    counts: dict[str, int] = {}
    for n in onnx.load(str(onnx_path), load_external_data=False).graph.node:
        if is_dcn_node(n):  # ours and the standard DeformConv
            key = f"{n.domain}::{n.op_type}" if n.domain else n.op_type
            counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{c} {k}" for k, c in counts.items()) or "none"


def run_pipeline(model_path: Path, workdir: Path, *, export_args: Sequence[Any] = (), standard: bool = True,
                 say: Callable[[str], None] = print) -> list[ModeResult]:
    """Export ``model_path`` (plugin mode, then standard-op mode if ``standard``), run each in
    ONNX Runtime, compare each with PyTorch's outputs through dcn-compare."""
    io_dir = workdir / "io"
    results = []
    modes = [("plugin", workdir / "model.onnx")] + ([("onnx", workdir / "model_std.onnx")] if standard else [])
    feed = ref = None
    for mode, onnx_path in modes:
        say(f"--- {'plugin mode: dcn:: nodes, ONNX Runtime + our CPU ops' if mode == 'plugin' else 'standard-op mode: ONNX DeformConv, plain ONNX Runtime'}")
        argv: list[Any] = [model_path, "-o", onnx_path, *export_args]
        if mode == "plugin":
            argv += ["--save-io", io_dir]
        else:
            argv += ["--deform-conv", "onnx"]
        argv += ["--check"]
        t0 = time.perf_counter()
        dcn_export(argv, say)
        export_s = time.perf_counter() - t0
        if feed is None:
            feed, ref = load_io(io_dir)
        assert ref is not None
        nodes = _node_summary(onnx_path)
        ours = mode == "plugin" or "dcn::" in nodes
        got, ms = ort_run(onnx_path, feed, ours=ours)
        ok, detail = max_error_and_tolerance(got, ref)
        runtime = "ONNX Runtime + libdcn_ort" if ours else "ONNX Runtime (no custom ops)"
        say(f"{runtime}: {', '.join(f'{k} {list(v.shape)}' for k, v in got.items())} in {ms:.1f} ms; "
            f"vs PyTorch: {detail} -> {'PASS' if ok else 'FAIL'}")
        outcome = dcn_compare(io_dir, onnx_path, say=say)
        max_err = max(float(o.get("max_abs", float("nan"))) for o in outcome.outputs)
        results.append(ModeResult(mode, onnx_path, nodes, bool(outcome.passed and ok), max_err, ms, runtime, export_s))
    return results


def print_summary(title: str, results: Sequence[ModeResult], say: Callable[[str], None] = print) -> bool:
    rows = [("mode", "deformable nodes", "runtime", "ORT ms", "max |err| vs PyTorch", "dcn-compare")]
    for r in results:
        rows.append((r.mode, r.nodes, r.runtime, f"{r.ort_ms:.1f}", f"{r.max_error:.2e}",
                     "PASS" if r.compare_passed else "FAIL"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    say(f"=== {title}")
    for i, row in enumerate(rows):
        say("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        if i == 0:
            say("  ".join("-" * w for w in widths))
    passed = all(r.compare_passed for r in results)
    say("all PASS" if passed else "MISMATCH: see the dcn-compare table above")
    return passed


def main_wrapper(prog: str, body: Callable[[argparse.Namespace], int], parser: argparse.ArgumentParser,
                 argv: Optional[Sequence[str]]) -> int:
    """Parse, run, and turn DcnError / ValueError into one line on stderr (exit 2)."""
    try:
        args = parser.parse_args(None if argv is None else [str(a) for a in argv])
    except SystemExit as e:  # argparse printed its usage line (or --help)
        return int(e.code) if isinstance(e.code, int) else 2
    try:
        return int(body(args) or 0)
    except (DcnError, ValueError, OSError) as e:
        msg = " ".join(str(e).split())
        print(f"{prog}: error: {msg}", file=sys.stderr, flush=True)
        return getattr(e, "exit_code", 2) if isinstance(e, DcnError) else 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
