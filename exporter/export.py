"""PyTorch deformable models -> ONNX with one ``dcn::`` node per deformable op call.

``export()`` walks forward, each step a named function called once:

1. ``_load``: options checked, example inputs and their names, dynamic axes, the model prepared (a
   torch.export program becomes its module; TorchScript is converted in step 4), the inputs the
   contract keeps float32 in FP16 modes (coordinates).
2. ``_swap``: a copy in which third-party deformable modules are swapped for ours (exporter.swap);
   first, before anything runs, so a module that cannot be exported is named in one line on every
   machine (even where the original's own kernels are missing).
3. ``_reference``: PyTorch once on the example inputs (errors name the module): the original model,
   or its swapped copy where the original cannot run here (said in the log); the truth (float64
   where the model runs in it) and PyTorch's own run in the target's precision.
4. ``_trace``: ``torch.export.export(strict=False)`` with the requested dynamic axes (float16 if
   asked), then the scan for operators without an ONNX translation (named with their module path).
5. ``_translate``: torch's dynamo ONNX exporter with every op's translation (exporter.translate),
   the opt-in rewrites into our nodes (exporter.rewrites, e.g. ``--fuse-msda``), then the
   post-processing (exporter.onnx_post: names by module path, each op's own clean-up, axis labels,
   IR version, shape inference with our schemas, ``onnx.checker``).
6. ``_check``: run the ONNX model (exporter.verify) and compare with the truth.
7. ``_write``: model (and ``--save-io`` files) to temporaries renamed together at the end.

``check_outputs`` (that every output can be written) runs first: in ``export()``, or in the
command line before it loads the model (``dcn-export``), which then calls ``run_export``.
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

from dcn_base import model_io
from dcn_base.atomic import AtomicGroup, check_distinct, check_writable
from dcn_base.console import Stages
from dcn_base.errors import DcnError, describe

from . import rewrites
from .contract import DEFAULT_OPSET, DEFORM_CONV_MODES, MIN_OPSET, specs
from .onnx_post import postprocess
from .program_dims import dynamic_axes_of, merge_dynamic
from .reference_runs import float16_reference, float64_reference, reference_run, rois_positions
from .swap import Swap, match, swap_modules
from .torch_scope import root_cause
from .trace import as_inputs, forward_param_names, normalize_dynamic, prepare_model, trace_program
from .translate import scan_ops, to_onnx
from .verify import check_export

class CheckError(DcnError):
    """The exported model's outputs differ from PyTorch's beyond the tolerance (``check=True``);
    ``report``: the check's numbers (verify.CheckReport)."""

    exit_code = 1

    def __init__(self, report: Any) -> None:
        super().__init__(f"{report.summary()}; nothing written")
        self.report = report


@dataclass
class ExportOptions:
    """export()'s options (see its docstring), checked by :meth:`checked`."""

    path: Path
    input_names: Optional[Sequence[str]] = None
    output_names: Optional[Sequence[str]] = None
    dynamic: Optional[Mapping[str, Any]] = None
    opset: Any = DEFAULT_OPSET
    deform_conv: str = "plugin"
    fp16: bool = False
    fp16_io: bool = False
    save_io: Optional[Path] = None
    save_io_format: str = "json"
    check: bool = False
    verify: bool = True
    runtime: str = "auto"
    rewrites: Sequence[str] = ()  # opt-in ONNX rewrites into our nodes (exporter.rewrites: --fuse-msda ...)

    def checked(self) -> "ExportOptions":
        if self.deform_conv not in DEFORM_CONV_MODES:
            raise DcnError(f"deform_conv is {self.deform_conv!r}, expected one of {', '.join(DEFORM_CONV_MODES)}")
        if self.runtime not in ("auto", "reference"):
            raise DcnError(f"runtime is {self.runtime!r}, expected auto or reference")
        try:
            self.opset = int(self.opset)
        except (TypeError, ValueError):
            raise DcnError(f"opset is {self.opset!r}, expected an integer") from None
        max_opset = onnx.defs.onnx_opset_version()
        if not MIN_OPSET <= self.opset <= max_opset:
            raise DcnError(f"opset {self.opset} is not supported, expected {MIN_OPSET}..{max_opset}")
        standard = [s.standard for s in specs() if s.standard is not None]
        needed = max((s.opset for s in standard), default=MIN_OPSET)
        if self.deform_conv == "onnx" and self.opset < needed:
            raise DcnError(f"--deform-conv onnx writes the standard {', '.join(s.op_type for s in standard)}, "
                           f"which needs opset >= {needed}; got opset {self.opset}")
        self.fp16 = self.fp16 or self.fp16_io  # float16 I/O is a float16 model's option
        self.verify = self.verify or self.check or self.runtime == "reference"  # both ask for the run
        if self.save_io_format not in model_io.IO_FORMATS:
            raise DcnError(f"--io-format {self.save_io_format!r}: expected json or npz")
        self.rewrites = rewrites.check_flags(self.rewrites)
        return self


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


@dataclass
class _Job:
    """What the steps hand on: the model and its inputs (``_load``), the swap, the reference."""

    module: Any
    names: list[str]
    dyn: dict[int, dict[int, str]]
    inputs: tuple  # the example inputs as given
    onnx_inputs: tuple  # what the ONNX model gets (float16 for float16 I/O, coordinates float32)
    ref_inputs: tuple  # what PyTorch gets: the same values, float32
    keep32: list[int]
    swapped: Any = None
    swaps: list[Swap] = field(default_factory=list)
    outs: list[str] = field(default_factory=list)
    reference: list = field(default_factory=list)  # PyTorch's float32 outputs
    truth: list = field(default_factory=list)
    truth_name: str = "PyTorch float32"
    own: Optional[list] = None  # PyTorch's own outputs in the target's precision

    def feed(self) -> dict[str, np.ndarray]:
        return {n: t.detach().cpu().numpy() for n, t in zip(self.names, self.onnx_inputs)}


def export(model: Any, example_inputs: Any, path: Union[str, os.PathLike], *,
           log: Optional[Callable[[str], None]] = None, stages: Any = None, **options: Any) -> ExportResult:
    """Export ``model`` to ONNX at ``path`` with ``dcn`` nodes; see the module doc.

    model: nn.Module (ours, torchvision's, mmcv / detectron2 modules are swapped), a
        TorchScript module or a torch.export ExportedProgram.
    example_inputs: a tensor or tuple of tensors, positional forward arguments.
    options (keywords, :class:`ExportOptions`):
      input_names / output_names: ONNX names (default: forward's parameter names; output / output_i).
      dynamic: {input name: {axis: label}} (or {input name: [axes]}), e.g.
          ``{"images": {0: "batch", 2: "height", 3: "width"}}``.
      opset: ONNX opset of the default domain (``dcn`` is always version 1).
      deform_conv: "plugin" (our nodes) or "onnx" (ONNX's equivalent where an op has one: DeformConv, opset >= 19).
      fp16: float16 weights and compute; I/O stays float32 unless ``fp16_io`` (which implies fp16).
      save_io: directory for Polygraphy ``inputs.json`` / ``outputs.json`` (runner "pytorch"),
          or ``inputs.npz`` / ``outputs.npz`` with ``save_io_format="npz"``.
      verify: run the ONNX model and compare with PyTorch (result in ``.check``);
      check: raise :class:`CheckError` (exit code 1, nothing written) when that comparison fails.
      runtime: "auto" or "reference" (force the ONNX reference evaluator for the check).
      rewrites: flags of opt-in ONNX rewrites into our nodes (``["fuse-msda"]``; exporter.rewrites),
          applied to the translated graph before the check.
    log: called with progress lines (swaps, the check's one-line summary).
    stages: a ``dcn_base.console.Stages`` timing the steps (and showing progress); times in
        ``.stage_seconds`` either way.

    Raises :class:`DcnError` (one line, naming module / input / attribute) for anything the
    user can fix; nothing is written then.
    """
    opts = ExportOptions(Path(path), **options).checked()
    check_outputs(opts)
    result = run_export(model, example_inputs, opts, log=log, stages=stages)
    if log is not None and result.check is not None:
        log(result.check.summary())
    return result


def check_outputs(opts: ExportOptions, *, report: Optional[os.PathLike] = None,
                  inputs: Optional[Mapping[str, Optional[os.PathLike]]] = None) -> None:
    """Every output can be written (before anything is loaded or run), and none of them replaces another
    or one of ``inputs`` ({what: path}: the model, --input files): -o, ``report``, and every file
    --save-io writes or removes (either format's pair)."""
    check_writable(opts.path)
    if report is not None:
        check_writable(report)
    outputs: dict[str, Optional[os.PathLike]] = {"-o": opts.path, "--report": report}
    if opts.save_io is not None:
        there = Path(opts.save_io).exists()
        if there and not Path(opts.save_io).is_dir():
            raise DcnError(f"--save-io '{opts.save_io}' exists and is not a directory")
        for name, path in model_io.io_files(opts.save_io).items():
            if there:  # each replaced or removed: a file, writable (a new folder holds none yet)
                check_writable(path)
            outputs[f"--save-io {name}"] = path
    check_distinct(outputs, inputs or {})


def run_export(model: Any, example_inputs: Any, opts: ExportOptions, *, log: Optional[Callable[[str], None]] = None,
               stages: Any = None) -> ExportResult:
    """The walk of the module doc, outputs already checked (:func:`check_outputs`); the check's report
    in ``.check`` (or in the CheckError that ``check=True`` raises)."""
    t_start = time.perf_counter()
    say = log or (lambda s: None)
    st = stages if stages is not None else Stages()
    job = _load(model, example_inputs, opts)
    job.swapped, job.swaps = _swap(job.module, say)
    _float16_forms(job, opts)
    _reference(job, opts, say, st)
    t_export = time.perf_counter()
    ep, strip, dim_labels = _trace(job, opts, st)
    proto, dcn_nodes = _translate(ep, strip, dim_labels, job, opts, st)
    export_seconds = time.perf_counter() - t_export
    report = _check(proto, job, opts, st)
    _write(proto, job, opts, st)
    return ExportResult(
        path=opts.path, input_names=job.names, output_names=job.outs, dcn_nodes=dcn_nodes, opset=opts.opset,
        ir_version=proto.ir_version, deform_conv=opts.deform_conv, fp16=opts.fp16, fp16_io=opts.fp16_io,
        export_seconds=export_seconds, total_seconds=time.perf_counter() - t_start, swaps=job.swaps, check=report,
        io_dir=Path(opts.save_io) if opts.save_io is not None else None, model=proto, stage_seconds=dict(st.seconds),
    )


def _load(model: Any, example_inputs: Any, opts: ExportOptions) -> _Job:
    """The model prepared and its inputs named, with their dynamic axes and float16 forms."""
    inputs = as_inputs(example_inputs)
    program_dyn = dynamic_axes_of(model)  # a torch.export program's own dynamic dimensions
    module = prepare_model(model)
    names = list(opts.input_names) if opts.input_names is not None else forward_param_names(module, len(inputs))
    if len(names) != len(inputs) or len(set(names)) != len(names):
        raise DcnError(f"input names {names}: expected {len(inputs)} distinct names, one per example input")
    dyn = normalize_dynamic(merge_dynamic(program_dyn, opts.dynamic, names), names, inputs)
    return _Job(module, names, dyn, inputs, inputs, inputs, [])


def _float16_forms(job: _Job, opts: ExportOptions) -> None:
    """The inputs the ONNX model and PyTorch get: coordinates stay float32 in every FP16 mode (contract:
    never half), found on the swapped model (mmcv's modules reach our ops only after the swap)."""
    job.keep32 = rois_positions(job.swapped, job.inputs, job.names) if opts.fp16 else []
    job.onnx_inputs = tuple(t.half() if opts.fp16_io and t.is_floating_point() and i not in job.keep32 else t
                            for i, t in enumerate(job.inputs))
    # PyTorch sees the values the ONNX model gets (float16-rounded for float16 I/O)
    job.ref_inputs = tuple(t.float() if opts.fp16_io and t.is_floating_point() else t for t in job.onnx_inputs)


def _swap(module: Any, say: Callable[[str], None]) -> tuple[Any, list[Swap]]:
    """A copy of ``module`` with third-party deformable modules swapped for ours (exporter.swap),
    or ``module`` itself when there is nothing to swap (TorchScript: converted as it is)."""
    if not isinstance(module, nn.Module) or isinstance(module, torch.jit.ScriptModule) or \
            not any(match(m) for m in module.modules()):
        return module, []
    work, swaps = swap_modules(copy.deepcopy(module))
    for s in swaps:
        say(f"swapped {s}")
    return work, swaps


def _reference(job: _Job, opts: ExportOptions, say: Callable[[str], None], st: Any) -> None:
    """PyTorch's outputs, the output names, the truth and PyTorch's own run in the target's precision."""
    st.start("pytorch run")
    (reference, keys), ref_module = reference_run(job.module, job.swapped, job.swaps, job.ref_inputs, job.names, say)
    job.reference = reference
    job.outs = _output_names(opts.output_names if opts.output_names is not None else keys, len(reference), job.names)
    job.truth = [t.detach().cpu().numpy() for t in reference]
    if opts.verify or opts.save_io is not None:  # the truth: PyTorch in float64 where the model runs in it
        ref64 = float64_reference(ref_module, job.ref_inputs, len(reference))
        if ref64 is not None:
            job.truth, job.truth_name = ref64, "PyTorch float64"
            job.own = float16_reference(ref_module, job.ref_inputs, len(reference), job.keep32) if opts.fp16 \
                else [t.detach().cpu().numpy() for t in reference]


def _trace(job: _Job, opts: ExportOptions, st: Any):
    """torch.export of the swapped model, and the scan for operators without a translation."""
    st.start("torch.export")
    work = job.swapped if job.swaps else job.module
    ep, strip, dim_labels = trace_program(work, job.inputs, job.onnx_inputs, job.names, job.dyn, opts.fp16,
                                          opts.fp16_io, job.keep32)
    scan_ops(ep, opts.deform_conv, opts.opset, strip)
    return ep, strip, dim_labels


def _translate(ep, strip: Optional[str], dim_labels: Mapping[str, str], job: _Job, opts: ExportOptions,
               st: Any) -> tuple[onnx.ModelProto, dict[str, str]]:
    """The program in ONNX with our nodes, post-processed and checked by onnx.checker."""
    st.start("onnx conversion")
    try:
        proto = to_onnx(ep, opts.opset, opts.deform_conv, job.names, job.outs)
    except DcnError:
        raise
    except Exception as e:
        raise DcnError(f"ONNX translation failed: {describe(root_cause(e))}") from e
    if opts.rewrites:  # the opt-in rewrites into our nodes, before naming and the checks
        proto, _ = rewrites.apply(proto, opts.rewrites)
    st.start("onnx checker")
    return postprocess(proto, strip, dim_labels, opts.deform_conv, opts.fp16, opts.fp16_io, job.swaps)


def _check(proto: onnx.ModelProto, job: _Job, opts: ExportOptions, st: Any):
    """The ONNX model run and judged against the truth (verify); CheckError with ``check`` when it fails."""
    if not opts.verify:
        return None
    st.start("verify")
    # the first floating-point output's precision (integer and bool outputs are compared exactly)
    floats = [str(r.dtype).replace("torch.", "") for r in job.reference if r.dtype.is_floating_point]
    dtype = "float16" if opts.fp16 else (floats[0] if floats else "float32")
    report = check_export(proto, job.feed(), job.outs, job.truth, job.truth_name, dtype, opts.runtime, job.own)
    if opts.check and not report.passed:
        raise CheckError(report)
    return report


def _write(proto: onnx.ModelProto, job: _Job, opts: ExportOptions, st: Any) -> None:
    """Nothing is replaced until everything is written: the model and the I/O files go to
    temporaries, renamed together at the end (a full disk or Ctrl-C leaves the old ones)."""
    st.start("save")
    try:
        with AtomicGroup() as group:
            group.write_bytes(opts.path, proto.SerializeToString())
            if opts.save_io is not None:
                ref_np = [np.asarray(a).astype(torch.empty(0, dtype=t.dtype).numpy().dtype)
                          for a, t in zip(job.truth, job.reference)]
                own_np = dict(zip(job.outs, (np.asarray(o, dtype=np.float32) for o in job.own))) \
                    if job.own is not None else None
                model_io.save_io(opts.save_io, job.feed(), dict(zip(job.outs, ref_np)), own_np,
                                 fmt=opts.save_io_format, group=group)
    except OSError as e:
        raise DcnError(f"cannot write '{e.filename or opts.path}': {describe(e)}; nothing was replaced") from e
    st.stop()


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
