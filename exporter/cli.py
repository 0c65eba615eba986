"""``dcn-export``: a PyTorch deformable model -> ONNX with dcn nodes (see ``dcn-export --help``).

Exit codes: 0 written; 1 ``--check`` found the ONNX outputs outside the tolerance (nothing
written); 2 usage, input or environment errors (one line, no traceback; ``--verbose``
prints the underlying traceback).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Optional, Sequence

from dcn_base.atomic import final_commit
from dcn_base.cli import DEFAULT, VERBOSE, add_common_args, process_t0, run_command, verbosity, version_text
from dcn_base.console import Stages, table
from dcn_base.errors import DcnError

from .cli_inputs import InputSpec, make_inputs, onnx_feed, parse_dynamic, parse_input  # noqa: F401  (InputSpec: public)
from .contract import DEFAULT_OPSET, DEFORM_CONV_MODES
from .contract import specs as op_specs
from .report import export_report, write_report

PROG = "dcn-export"

EPILOG = """\
examples:
  dcn-export model.pt2 -o model.onnx --input images:1x3x512x512 --dynamic images:0=batch,2=height,3=width
  dcn-export weights.pth --factory mypkg.models:build -o model.onnx --input images:1x3x512x512 --check
  dcn-export rfcn.ts -o rfcn.onnx --input features:1x1029x32x32 --input rois:300x5 --save-io io/
  dcn-export rtdetr.onnx --fuse-msda -o rtdetr_dcn.onnx --save-io io/ --check

inputs are generated from --seed: floats ~ N(0, 1); an input whose name contains 'roi'
with shape [R, 5] gets valid boxes (batch_index, x1, y1, x2, y2) inside the image (its size
is the first 4-D input's, divided by the RoI pooling's spatial_scale when that input is the pooling's
feature map).
"""


# --------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Export a PyTorch model with deformable ops (convolution, RoI pooling, ...) to ONNX with one "
                    "dcn:: node per op call (or ONNX's own equivalent where an op has one).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", nargs="?", help="TorchScript archive, torch.export program (.pt2), pickled nn.Module "
                   "(with --trust-pickle) or state dict (with --factory); omit to export a fresh --factory model; "
                   "an ONNX file (.onnx) with an opt-in rewrite such as --fuse-msda")
    p.add_argument("-o", "--output", required=True, help="ONNX file to write (atomically)")
    p.add_argument("--input", action="append", default=[], metavar="SPEC",
                   help="NAME:SHAPE[:DTYPE] (e.g. images:1x3x512x512, rois:300x5) or NAME=FILE.npy; repeat in the "
                        "order of forward's arguments")
    p.add_argument("--dynamic", action="append", default=[], metavar="SPEC",
                   help="NAME:AXIS=LABEL[,AXIS=LABEL...] dynamic axes, e.g. images:0=batch,2=height,3=width")
    p.add_argument("--output-names", metavar="A,B", help="names of the model's outputs (default output / output_i)")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    p.add_argument("--deform-conv", choices=DEFORM_CONV_MODES, default="plugin",
                   help="plugin: our dcn:: nodes (our ORT ops / TensorRT plugins; default); "
                        "onnx: ONNX's own equivalent where an op has one, the standard DeformConv (opset >= 19)")
    p.add_argument("--fp16", action="store_true", help="float16 weights and compute, float32 I/O")
    p.add_argument("--fp16-io", action="store_true", help="with --fp16: float16 inputs and outputs too")
    p.add_argument("--save-io", metavar="DIR", help="write DIR/inputs.json and DIR/outputs.json (Polygraphy JSON, "
                   "runner 'pytorch') for polygraphy run --load-inputs/--load-outputs and dcn-compare")
    p.add_argument("--io-format", choices=("json", "npz"), default="json",
                   help="format of --save-io: json (default; what Polygraphy reads) or npz (inputs.npz / outputs.npz: "
                        "smaller, faster; read by dcn-compare and dcn-infer)")
    p.add_argument("--report", metavar="OUT.json", help="write what was exported as JSON (atomically): inputs, "
                   "outputs, dynamic axes, dcn nodes, swaps, check numbers, stage times, versions")
    p.add_argument("--check", action="store_true", help="fail (exit 1, nothing written) when the ONNX model's "
                   "outputs differ from PyTorch's beyond dcn_base.tolerance")
    p.add_argument("--no-verify", action="store_true",
                   help="skip running the exported model (--check and --reference-check run it all the same)")
    p.add_argument("--reference-check", action="store_true",
                   help="verify with the ONNX reference evaluator + our PyTorch reference ops (pure Python)")
    p.add_argument("--factory", metavar="MODULE:CALLABLE", help="builds the model a state dict loads into")
    p.add_argument("--trust-pickle", action="store_true",
                   help="allow loading a pickled nn.Module (unpickling runs code from the file)")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated inputs (default 0)")
    for spec in op_specs():  # each op's opt-in ONNX rewrites into its node (exporter.rewrites)
        for rw in spec.rewrites:
            p.add_argument(f"--{rw.flag}", dest="rewrites", action="append_const", const=rw.flag, help=rw.help)
    add_common_args(p, verbose_help="tracebacks of errors")
    return p


def _run(args: argparse.Namespace, say: Callable[[str], None]) -> int:
    """load -> swap -> trace -> translate -> check -> write (exporter.export), then the summary."""
    from . import export  # noqa: PLC0415  (torch: heavy; --version and argument errors answer without it)
    from .loading import load_model  # noqa: PLC0415  (torch, as above)

    specs = _input_specs(args)
    opts = _options(args, export)
    # before loading anything; no output may replace the model, an --input file or another output
    export.check_outputs(opts, report=Path(args.report) if args.report else None,
                         inputs={"model": args.model, **{f"--input {s.name}": s.file for s in specs}})
    onnx_in = str(args.model or "").lower().endswith(".onnx")
    stages = Stages(["load"] + ([] if onnx_in else ["pytorch run", "torch.export"]) + ["onnx conversion", "onnx checker"]
                    + (["verify"] if opts.verify else []) + ["save"], level=verbosity(args), prog=PROG,
                    t0=getattr(args, "t0", None))
    # The model's (and --save-io's) commit is the last interruptible step: a Ctrl-C during or after
    # it no longer makes the command "interrupted" (130) over replaced files; the summary and the
    # --report file follow as a finished command's.
    try:
        with final_commit():
            if onnx_in:  # an ONNX file: the opt-in rewrites, checked against the original graph
                from .onnx_file import run_onnx_file  # noqa: PLC0415  (torch, as above)

                _onnx_only(args)
                result = run_onnx_file(args.model, opts, lambda m: onnx_feed(m, specs, args.seed), log=say,
                                       stages=stages)
            else:
                stages.start("load")
                model = load_model(args.model, factory=args.factory, trust_pickle=args.trust_pickle)
                inputs, opts.input_names = _example_inputs(specs, model, args.seed, say)
                result = export.run_export(model, inputs, opts, log=say, stages=stages)
    except export.CheckError as err:  # the numbers first, then the one-line error
        stages.done()
        _print_check(err.report, say)
        raise
    finally:
        stages.done()
    if result.check is not None:
        _print_check(result.check, say)
    _summarize(args, result, stages, say)
    return 0


def _onnx_only(args: argparse.Namespace) -> None:
    """The options that mean nothing for an ONNX file given as the model: a one-line error."""
    given = [flag for flag, on in (("--factory", args.factory), ("--trust-pickle", args.trust_pickle),
                                   ("--fp16", args.fp16 or args.fp16_io), ("--dynamic", args.dynamic),
                                   ("--output-names", args.output_names),
                                   ("--deform-conv", args.deform_conv != "plugin")) if on]
    if given:
        raise DcnError(f"{', '.join(given)}: not for an ONNX model ('{args.model}' is rewritten as it is)")


def _input_specs(args: argparse.Namespace) -> list[InputSpec]:
    specs = [parse_input(s) for s in args.input]
    names = [s.name for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DcnError(f"--input {dupes[0]!r} given more than once")
    return specs


def _options(args: argparse.Namespace, export):
    dynamic: dict[str, dict[int, str]] = {}
    for text in args.dynamic:
        name, axes = parse_dynamic(text)
        dynamic.setdefault(name, {}).update(axes)
    return export.ExportOptions(
        Path(args.output), output_names=[n.strip() for n in args.output_names.split(",")] if args.output_names else None,
        dynamic=dynamic or None, opset=args.opset, deform_conv=args.deform_conv, fp16=args.fp16 or args.fp16_io,
        fp16_io=args.fp16_io, save_io=Path(args.save_io) if args.save_io is not None else None,
        save_io_format=args.io_format, check=args.check, verify=not args.no_verify,
        runtime="reference" if args.reference_check else "auto", rewrites=args.rewrites or (),
    ).checked()


def _example_inputs(specs: Sequence[InputSpec], model, seed: int, say: Callable[[str], None]):
    """(tensors, their names or None): from --input, else the program's saved example inputs."""
    if specs:
        return tuple(make_inputs(specs, model, seed=seed)), [s.name for s in specs]
    example = getattr(model, "example_inputs", None)
    if example is None and getattr(model, "example_inputs_note", None):
        say(model.example_inputs_note)
    if example is None:
        from .trace import forward_param_names  # noqa: PLC0415  (torch, as in _run)

        params = [p for p in forward_param_names(model, 8) if not p.startswith("input_")]
        wanted = f" (forward takes {', '.join(params)})" if params else ""
        raise DcnError(f"no example inputs: give --input NAME:SHAPE for each of the model's inputs{wanted}")
    ex_args, ex_kwargs = example if isinstance(example, tuple) and len(example) == 2 else (example, {})
    if ex_kwargs:
        raise DcnError("the program's saved example inputs use keyword arguments; give --input for each input")
    say("using the example inputs saved in the torch.export program")
    return tuple(ex_args), None


def _print_check(report, say: Callable[[str], None]) -> None:
    """The check's numbers as a table, like dcn-compare's."""
    say(f"check ({report.runtime} vs {report.reference}) {'PASS' if report.passed else 'FAIL'} "
        f"[{report.dtype} tolerance atol {report.atol:g} x scale, rtol {report.rtol:g}]")
    for line in table(*report.table_rows(), indent="  ") + report.notes():
        say(line)


def _summarize(args: argparse.Namespace, result, stages: Stages, say: Callable[[str], None]) -> None:
    total = stages.total
    if args.report:
        write_report(args.report, export_report(result, args.model, total))
    say(result.summary(seconds=total))
    if verbosity(args) >= VERBOSE:
        for line in table(["stage", "seconds"], stages.rows(), indent="  "):
            say(line)
    if result.check is not None and not result.check.passed:
        say("warning: the exported model's outputs differ from PyTorch's beyond the tolerance "
            "(--check makes this an error)")
    if result.io_dir is not None:
        ext = args.io_format
        say(f"wrote {result.io_dir}/inputs.{ext} and {result.io_dir}/outputs.{ext}"
            + (" (runner 'pytorch')" if ext == "json" else ""))
    if args.report:
        say(f"wrote {args.report}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    t0 = process_t0() if argv is None else None  # the whole command's time when run as a command
    if "--version" in (sys.argv[1:] if argv is None else list(argv)):  # without importing torch first
        print(version_text(PROG))
        return 0
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse printed its usage line
        return int(e.code) if isinstance(e.code, int) else 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    args.t0 = t0

    def say(msg: str) -> None:  # table lines (indented) without the prefix
        if verbosity(args) >= DEFAULT:
            print(msg if msg.startswith("  ") else f"{PROG}: {msg}", flush=True)

    return run_command(PROG, lambda: _run(args, say), verbose=bool(args.verbose))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
