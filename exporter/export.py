"""PyTorch deformable models -> ONNX with ``dcn::DeformConv2d`` / ``DeformPSROIPool`` / ``DeformRoIPool`` nodes.

Pipeline (``export``):

1. Prepare: TorchScript -> torch.export program (``TS2EPConverter``); a copy of the model
   in eval mode with third-party deformable modules swapped for ours (:mod:`exporter.swap`);
   float16 copy for ``fp16``.
   The swap comes first, before anything runs, so a module that cannot be exported is named
   in one line on every machine (even where the original's own kernels are missing).
2. Run PyTorch once on the example inputs (reference outputs; errors name the module): the
   original model, or its swapped copy where the original cannot run here (said in the log).
3. ``torch.export.export(strict=False)`` with the requested dynamic axes, then a scan for
   operators without an ONNX translation (named with their module path).
4. torch's dynamo ONNX exporter with a translation table that maps
   ``dcn::deform_conv2d``, ``dcn::deform_psroi_pool`` and ``torchvision::deform_conv2d``
   to one ONNX node each, attributes named and ordered by :mod:`exporter.contract`.
5. Post-process: dcn nodes named by module path, zero-bias input of torchvision's DCNv1
   dropped, dynamic axes named, IR version the installed ONNX Runtime accepts, shape
   inference with our schemas, ``onnx.checker`` (full check).
6. Verify: run the ONNX model (:mod:`exporter.verify`) and compare with PyTorch.
7. Write atomically (temp file + rename); nothing is left behind on failure.

Steps live in :mod:`exporter.trace` (1-3), :mod:`exporter.translate` (4), :mod:`exporter.onnx_post`
(5) and :mod:`exporter.verify` (6); this module holds ``export()`` and its options.
"""
from __future__ import annotations

import copy
import os
import sys
import time
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np
import onnx
import torch
from torch import nn

from dcn_base.atomic import AtomicGroup, check_writable
from dcn_base.console import Stages
from .contract import STANDARD_DEFORM_CONV_OPSET
from dcn_base.errors import DcnError, describe
from .onnx_post import postprocess
from .swap import Swap, match, swap_modules
from .trace import (as_inputs, float16_reference, float64_reference, forward_param_names, normalize_dynamic,
                    prepare_model, reference_run, rois_positions, root_cause, trace_program)
from .translate import DEFORM_CONV_MODES, scan_ops, to_onnx
from .verify import check_export


DEFAULT_OPSET = 19  # the first with the standard DeformConv: one default for both --deform-conv modes


MIN_OPSET = 18  # torch's ONNX function library is written at opset 18


class CheckError(DcnError):
    """The exported model's outputs differ from PyTorch's beyond the tolerance (``check=True``)."""

    exit_code = 1


@dataclass
class ExportResult:
    path: Path
    input_names: list[str]
    output_names: list[str]
    dcn_nodes: dict[str, str]  # node name -> op type, graph order (standard DeformConv in "onnx" mode)
    opset: int
    ir_version: int
    deform_conv: str
    fp16: bool
    fp16_io: bool
    export_seconds: float  # torch.export + ONNX translation + post-processing + checker
    total_seconds: float  # everything, verification and writing included
    swaps: list[Swap] = field(default_factory=list)
    check: Any = None  # verify.CheckReport when verified
    io_dir: Optional[Path] = None
    model: Optional[onnx.ModelProto] = field(default=None, repr=False)
    stage_seconds: dict[str, float] = field(default_factory=dict)  # wall time per stage (see export's stages)

    def summary(self, seconds: Optional[float] = None) -> str:
        """One line; ``seconds``: the wall time to report (default: this export call's, total_seconds)."""
        counts: dict[str, int] = {}
        for t in self.dcn_nodes.values():
            counts[t] = counts.get(t, 0) + 1
        nodes = ", ".join(f"{n} {t}" for t, n in counts.items()) or "no deformable nodes"
        prec = "float16" + (" (float16 I/O)" if self.fp16_io else " (float32 I/O)") if self.fp16 else "float32"
        checked = f"; checked on {self.check.runtime}" if self.check is not None else ""
        return (f"wrote {self.path} ({nodes}; opset {self.opset}, IR {self.ir_version}, {prec}) "
                f"in {self.total_seconds if seconds is None else seconds:.1f} s{checked}")


def export(
    model: Any,
    example_inputs: Any,
    path: Union[str, os.PathLike],
    *,
    input_names: Optional[Sequence[str]] = None,
    output_names: Optional[Sequence[str]] = None,
    dynamic: Optional[Mapping[str, Any]] = None,
    opset: int = DEFAULT_OPSET,
    deform_conv: str = "plugin",
    fp16: bool = False,
    fp16_io: bool = False,
    save_io: Union[str, os.PathLike, None] = None,
    save_io_format: str = "json",
    check: bool = False,
    verify: bool = True,
    runtime: str = "auto",
    log: Optional[Callable[[str], None]] = None,
    stages: Any = None,
    on_check: Optional[Callable[[Any], None]] = None,
) -> ExportResult:
    """Export ``model`` to ONNX at ``path`` with ``dcn`` nodes; see the module doc.

    model: nn.Module (ours, torchvision's, mmcv / detectron2 modules are swapped), a
        TorchScript module or a torch.export ExportedProgram.
    example_inputs: a tensor or tuple of tensors, positional forward arguments.
    input_names / output_names: ONNX names (default: forward's parameter names; output / output_i).
    dynamic: {input name: {axis: label}} (or {input name: [axes]}), e.g.
        ``{"images": {0: "batch", 2: "height", 3: "width"}}``.
    opset: ONNX opset of the default domain (``dcn`` is always version 1).
    deform_conv: "plugin" (``dcn::DeformConv2d``) or "onnx" (standard ``DeformConv``, opset >= 19).
    fp16: float16 weights and compute; I/O stays float32 unless ``fp16_io`` (which implies fp16).
    save_io: directory for Polygraphy ``inputs.json`` / ``outputs.json`` (runner "pytorch"),
        or ``inputs.npz`` / ``outputs.npz`` with ``save_io_format="npz"``.
    verify: run the ONNX model and compare with PyTorch (result in ``.check``);
    check: raise :class:`CheckError` (exit code 1, nothing written) when that comparison fails.
    runtime: "auto" or "reference" (force the ONNX reference evaluator for the check).
    log: called with progress lines (swaps, the check's summary).
    stages: an ``dcn_base.console.Stages`` timing the steps (and showing progress); times in
        ``.stage_seconds`` either way.
    on_check: called with the check's report (instead of logging its one-line summary).

    Raises :class:`DcnError` (one line, naming module / input / attribute) for anything the
    user can fix; nothing is written then.
    """
    t_start = time.perf_counter()
    say = log or (lambda s: None)
    st = stages if stages is not None else Stages()
    out_path = Path(path)
    opset = _validate_options(deform_conv, runtime, opset)
    fp16 = fp16 or fp16_io  # float16 I/O is a float16 model's option
    check_writable(out_path)
    io_dir = Path(save_io) if save_io is not None else None
    if io_dir is not None and io_dir.exists() and not io_dir.is_dir():
        raise DcnError(f"--save-io '{io_dir}' exists and is not a directory")
    if save_io_format not in ("json", "npz"):
        raise DcnError(f"--io-format {save_io_format!r}: expected json or npz")
    verify = verify or check

    inputs = as_inputs(example_inputs)
    from .program_dims import dynamic_axes_of, merge_dynamic

    program_dyn = dynamic_axes_of(model)  # a torch.export program's own dynamic dimensions
    module = prepare_model(model)
    names = list(input_names) if input_names is not None else forward_param_names(module, len(inputs))
    if len(names) != len(inputs) or len(set(names)) != len(names):
        raise DcnError(f"input names {names}: expected {len(inputs)} distinct names, one per example input")
    dyn = normalize_dynamic(merge_dynamic(program_dyn, dynamic, names), names, inputs)
    # RoIs stay float32 in every FP16 mode (contract: coordinates are never half)
    keep32 = rois_positions(module, inputs, names) if fp16 else []
    onnx_inputs = tuple(t.half() if fp16_io and t.is_floating_point() and i not in keep32 else t
                        for i, t in enumerate(inputs))
    # PyTorch sees the values the ONNX model gets (float16-rounded for float16 I/O)
    ref_inputs = tuple(t.float() if fp16_io and t.is_floating_point() else t for t in onnx_inputs)

    # Swap first: a module that cannot be exported is named (one line) before anything runs.
    swapped, swaps = _swap_copy(module, say)
    st.start("pytorch run")
    (reference, keys), ref_module = reference_run(module, swapped, swaps, ref_inputs, names, say)
    outs = _output_names(output_names if output_names is not None else keys, len(reference), names)
    truth, truth_name = [t.detach().cpu().numpy() for t in reference], "PyTorch float32"
    own = None  # PyTorch's own outputs in the target's precision, judged against the same truth
    if verify or io_dir is not None:  # the truth: PyTorch in float64 where the model runs in it
        ref64 = float64_reference(ref_module, ref_inputs, len(reference))
        if ref64 is not None:
            truth, truth_name = ref64, "PyTorch float64"
            own = float16_reference(ref_module, ref_inputs, len(reference), keep32) if fp16 else \
                [t.detach().cpu().numpy() for t in reference]

    t_export = time.perf_counter()
    st.start("torch.export")
    ep, swaps, strip, dim_labels = trace_program(module, inputs, onnx_inputs, names, dyn, fp16, fp16_io, say, keep32,
                                          swapped=(swapped, swaps))
    scan_ops(ep, deform_conv, opset, strip)
    st.start("onnx conversion")
    try:
        proto = to_onnx(ep, opset, deform_conv, names, outs)
    except DcnError:
        raise
    except Exception as e:
        raise DcnError(f"ONNX translation failed: {describe(root_cause(e))}") from e
    st.start("onnx checker")
    proto, dcn_nodes = postprocess(proto, strip, dim_labels, deform_conv, fp16, fp16_io, swaps)
    data = proto.SerializeToString()
    export_seconds = time.perf_counter() - t_export

    report = None
    feed = {n: t.detach().cpu().numpy() for n, t in zip(names, onnx_inputs)}
    if verify:
        st.start("verify")
        dtype = "float16" if fp16 else str(reference[0].dtype).replace("torch.", "")
        report = check_export(proto, feed, outs, truth, truth_name, dtype, runtime, own)
        if on_check is not None:
            on_check(report)
        else:
            say(report.summary())
        if check and not report.passed:
            raise CheckError(f"{report.summary()}; nothing written")

    # Nothing is replaced until everything is written: the model and the I/O files go to
    # temporaries, renamed together at the end (a full disk or Ctrl-C leaves the old ones).
    st.start("save")
    try:
        with AtomicGroup() as group:
            with open(group.path(out_path), "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            if io_dir is not None:
                from dcn_base.model_io import save_io as _save_io

                ref_np = [np.asarray(a).astype(torch.empty(0, dtype=t.dtype).numpy().dtype)
                          for a, t in zip(truth, reference)]
                own_np = dict(zip(outs, (np.asarray(o, dtype=np.float32) for o in own))) if own is not None else None
                _save_io(io_dir, feed, dict(zip(outs, ref_np)), own_np, fmt=save_io_format, group=group)
    except OSError as e:
        raise DcnError(f"cannot write '{e.filename or out_path}': {describe(e)}; nothing was replaced") from e
    st.stop()
    return ExportResult(
        path=out_path, input_names=names, output_names=outs, dcn_nodes=dcn_nodes, opset=opset,
        ir_version=proto.ir_version, deform_conv=deform_conv, fp16=fp16, fp16_io=fp16_io,
        export_seconds=export_seconds, total_seconds=time.perf_counter() - t_start, swaps=swaps, check=report,
        io_dir=io_dir, model=proto, stage_seconds=dict(st.seconds),
    )


def _validate_options(deform_conv: str, runtime: str, opset: Any) -> int:
    if deform_conv not in DEFORM_CONV_MODES:
        raise DcnError(f"deform_conv is {deform_conv!r}, expected one of {', '.join(DEFORM_CONV_MODES)}")
    if runtime not in ("auto", "reference"):
        raise DcnError(f"runtime is {runtime!r}, expected auto or reference")
    try:
        opset = int(opset)
    except (TypeError, ValueError):
        raise DcnError(f"opset is {opset!r}, expected an integer") from None
    max_opset = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= max_opset:
        raise DcnError(f"opset {opset} is not supported, expected {MIN_OPSET}..{max_opset}")
    if deform_conv == "onnx" and opset < STANDARD_DEFORM_CONV_OPSET:
        raise DcnError(f"--deform-conv onnx writes the standard DeformConv, which needs opset >= "
                       f"{STANDARD_DEFORM_CONV_OPSET}; got opset {opset}")
    return opset


def _swap_copy(module: Any, say: Callable[[str], None]) -> tuple[Any, list[Swap]]:
    """A copy of ``module`` with third-party deformable modules swapped for ours (exporter.swap),
    or ``module`` itself when there is nothing to swap (TorchScript is converted later)."""
    if not isinstance(module, nn.Module) or isinstance(module, torch.jit.ScriptModule) or \
            not any(match(m) for m in module.modules()):
        return module, []
    work = copy.deepcopy(module)
    work, swaps = swap_modules(work)
    for s in swaps:
        say(f"swapped {s}")
    return work, swaps


def _output_names(output_names: Optional[Sequence[str]], count: int, input_names: Sequence[str]) -> list[str]:
    outs = list(output_names) if output_names is not None else (
        ["output"] if count == 1 else [f"output_{i}" for i in range(count)])
    if len(outs) != count or len(set(outs)) != len(outs):
        raise DcnError(f"output names {outs}: the model returns {count} tensors, expected one distinct name each")
    if set(outs) & set(input_names):
        raise DcnError(f"names {sorted(set(outs) & set(input_names))} are used for both an input and an output")
    return outs


# ``exporter.export`` is both this module and, lazily, the function (exporter/__init__.py).
# Once the submodule is imported, the package attribute is the module, so the module is
# made callable: ``exporter.export(model, inputs, path)`` works whichever one it resolves to.
class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs) -> ExportResult:
        return export(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
