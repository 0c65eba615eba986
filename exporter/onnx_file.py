"""``dcn-export MODEL.onnx --<rewrite> -o OUT.onnx``: an ONNX file rewritten into our nodes (the opt-in
passes of exporter.rewrites, e.g. ``--fuse-msda``) and checked like an export, its truth being the
original graph itself.

``run_onnx_file`` walks load -> inputs -> truth -> rewrite -> check -> write:

1. ``_load``: the file (onnx.load, external data beside it), one line for anything else.
2. the graph's inputs (``make_feed``; dcn-export: from ``--input``, names checked against the graph, or,
   where every dimension is static, generated from the graph: floats ~ N(0, 1), integers in [0, 10)).
3. ``_truth``: the original graph run once on ONNX Runtime (with our ops where it has dcn nodes already).
4. the rewrites (exporter.rewrites; a pass that finds nothing is an error), then exporter.onnx_post's
   checks (IR version, contract, shape inference with our schemas, onnx.checker).
5. the rewritten graph run on exporter.verify's runtime (ONNX Runtime with our ops) and judged against
   the truth with dcn_base.tolerance in the outputs' precision (CheckError with ``check``).
6. the model (and ``--save-io``: the inputs and the original graph's outputs, which dcn-compare reads)
   written atomically together.
"""
from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import onnx

from dcn_base import model_io
from dcn_base.libraries import session_options
from dcn_base.atomic import AtomicGroup
from dcn_base.console import Stages
from dcn_base.errors import DcnError, describe

from . import rewrites
from .contract import is_dcn_node
from .onnx_post import check_graph
from .verify import Runner, check_outputs, make_runner

def run_onnx_file(path: str, opts: Any, make_feed: Callable[[onnx.ModelProto], dict[str, np.ndarray]], *,
                  log: Optional[Callable[[str], None]] = None, stages: Any = None):
    """Rewrite and check the ONNX file ``path`` (see the module doc); ``opts``: exporter.export.ExportOptions
    (``rewrites``, ``check``, ``verify``, ``runtime``, ``save_io``); ``make_feed``: the graph's inputs
    (dcn-export: exporter.cli_inputs.onnx_feed); an exporter.export.ExportResult."""
    from .export import CheckError, ExportResult  # noqa: PLC0415  (export imports torch; so does this route)

    t0 = time.perf_counter()
    st = stages if stages is not None else Stages()
    if not opts.rewrites:
        raise DcnError(f"'{path}' is an ONNX model: dcn-export rewrites one only with an opt-in pass "
                       f"({', '.join('--' + f for f in rewrites.known()) or 'none known'}); it exports PyTorch models")
    st.start("load")
    original = _load(Path(path))
    feed = make_feed(original)
    outs = [o.name for o in original.graph.output]
    truth, truth_name = _truth(original, feed)
    st.start("onnx conversion")
    proto, written = rewrites.apply(copy.deepcopy(original), opts.rewrites)
    st.start("onnx checker")
    proto = check_graph(proto)
    export_seconds = time.perf_counter() - t0
    report = None
    if opts.verify:
        st.start("verify")
        try:
            report = check_outputs(make_runner(proto, opts.runtime), feed, outs, truth, str(truth[0].dtype),
                                   truth_name)
        except DcnError:
            raise
        except Exception as e:
            raise DcnError(f"running the rewritten model failed: {describe(e)}") from e
        if opts.check and not report.passed:
            raise CheckError(report)
    _write(proto, feed, dict(zip(outs, truth)), opts, st)
    if log is not None:
        log(f"rewrote {len(written)} node(s): {', '.join(f'{n} ({t})' for n, t in written.items())}")
    return ExportResult(
        path=opts.path, input_names=list(feed), output_names=outs, dcn_nodes=written,
        opset=next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0),
        ir_version=proto.ir_version, deform_conv=opts.deform_conv, fp16=False, fp16_io=False,
        export_seconds=export_seconds, total_seconds=time.perf_counter() - t0, check=report,
        io_dir=Path(opts.save_io) if opts.save_io is not None else None, model=proto, stage_seconds=dict(st.seconds))


def _load(p: Path) -> onnx.ModelProto:
    if not p.is_file():
        raise DcnError(f"model file '{p}' not found")
    try:
        return onnx.load(str(p))
    except Exception as e:
        raise DcnError(f"'{p}' is not an ONNX model ({describe(e)})") from e


def _truth(model: onnx.ModelProto, feed: dict[str, np.ndarray]) -> tuple[list[np.ndarray], str]:
    """The original graph on ONNX Runtime (with our ops where it already has dcn nodes): the truth must come
    from a runtime, never from the reference evaluator's fallback."""
    try:
        if is_dcn_graph(model):
            runner = make_runner(model)
        else:
            import onnxruntime as ort  # noqa: PLC0415  (heavy: only when a model is checked)

            sess = ort.InferenceSession(model.SerializeToString(), session_options(),
                                        providers=["CPUExecutionProvider"])
            runner = Runner("onnxruntime", lambda f: sess.run(None, dict(f)))
        return [np.asarray(a) for a in runner.run(feed)], f"the original graph on {runner.name}"
    except DcnError:
        raise
    except Exception as e:
        raise DcnError(f"ONNX Runtime cannot run the original model: {describe(e)}") from e


def is_dcn_graph(model: onnx.ModelProto) -> bool:
    return any(is_dcn_node(n, standard=False) for n in model.graph.node)


def _write(proto: onnx.ModelProto, feed: dict[str, np.ndarray], truth: dict[str, np.ndarray], opts: Any,
           st: Any) -> None:
    st.start("save")
    try:
        with AtomicGroup() as group:
            group.write_bytes(opts.path, proto.SerializeToString())
            if opts.save_io is not None:
                model_io.save_io(opts.save_io, feed, truth, None, fmt=opts.save_io_format, group=group)
    except OSError as e:
        raise DcnError(f"cannot write '{e.filename or opts.path}': {describe(e)}; nothing was replaced") from e
    st.stop()
