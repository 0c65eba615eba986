"""Command lines: dcn-build, dcn-infer, dcn-compare (also ``python -m trt_runtime.cli build|infer|compare``).

Each ``*_main(argv=None)`` returns its exit code: 0 success / PASS, 1 mismatch (dcn-compare) or
an engine that does not use our plugins (dcn-build), 2 usage, input or environment errors,
printed as one line ``<tool>: error: <message>`` without a traceback.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from dcn_base import atomic
from dcn_base.cli import (DEFAULT, VERBOSE, add_common_args, configure_polygraphy, join_option_values, process_t0,
                          run_command, verbosity)
from dcn_base.console import fmt_g, progress_enabled, table
from dcn_base.errors import DcnError, one_line
from dcn_base.model_io import check_not_pytorch, input_file_spec, load_input_arrays, save_npz

from .build import build_engine, parse_shapes
from .compare import compare
from .infer import BACKENDS, Engine, benchmark
from .ort_model import OrtModel
from .plugin_loader import add_plugins_arg


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit code 2 (argparse's own convention)
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {one_line(message)}", file=sys.stderr)
        raise SystemExit(2)


def _run(prog: str, make_parser: Callable[[str], argparse.ArgumentParser],
         body: Callable[[argparse.Namespace], int], argv: Optional[Sequence[str]],
         as_command: Optional[bool] = None) -> int:
    parser = make_parser(prog)
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 2
    configure_polygraphy(verbosity(args))
    # run as the console script: times count from the process start
    args.as_command = argv is None if as_command is None else as_command
    return run_command(prog, lambda: body(args), verbose=bool(getattr(args, "verbose", False)))


# --------------------------------------------------------------------------- dcn-build


def _build_parser(prog: str) -> argparse.ArgumentParser:
    p = _Parser(prog=prog, description="Build a TensorRT engine (FP16 by default) from an ONNX model with dcn nodes.")
    p.add_argument("model", metavar="MODEL.onnx", help="ONNX model written by dcn-export")
    p.add_argument("-o", "--output", required=True, metavar="MODEL.engine", help="engine file to write (atomically)")
    p.add_argument("--fp16", action=argparse.BooleanOptionalAction, default=True,
                   help="FP16 engine (default); TensorRT 10: builder flag, TensorRT 11: float16 ONNX, strongly typed")
    p.add_argument("--shapes", action="append", default=[], metavar="NAME:MIN:OPT:MAX",
                   help="optimization profile of a dynamic input, each shape like 1x3x224x224 (repeatable)")
    p.add_argument("--workspace", metavar="SIZE", help="workspace memory pool limit, e.g. 512MiB, 4GiB (number: MiB)")
    p.add_argument("--timing-cache", metavar="PATH", help="tactic timing cache: read if present, updated after the build")
    add_plugins_arg(p)
    p.add_argument("--skip-plugin-check", action="store_true",
                   help="write the engine even if a dcn node did not become our plugin layer")
    p.add_argument("--no-progress", action="store_true", help="no progress bar during the build (it shows only "
                   "when stderr is a terminal)")
    add_common_args(p, verbose_help="the TensorRT build log")
    return p


def _build_body(args) -> int:
    # The engine's commit is the last interruptible step (its .build.json side file follows as a
    # finished command's): a Ctrl-C then cannot end as "interrupted" with the engine replaced.
    with atomic.final_commit():
        build_engine(
            args.model, args.output, fp16=args.fp16, shapes=parse_shapes(args.shapes), workspace=args.workspace,
            timing_cache=args.timing_cache, plugins=args.plugins, check_plugins=not args.skip_plugin_check,
            verbose=verbosity(args) >= VERBOSE, progress=not args.no_progress and progress_enabled(verbosity(args)),
            log=_say(args),
        )
    return 0


def build_main(argv: Optional[Sequence[str]] = None) -> int:
    return _run("dcn-build", _build_parser, _build_body, argv)


# --------------------------------------------------------------------------- dcn-infer


def _infer_parser(prog: str) -> argparse.ArgumentParser:
    p = _Parser(
        prog=prog, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run a TensorRT engine (GPU, our plugins) or an ONNX model (ONNX Runtime CPU with our dcn "
                    "ops) on saved inputs; print its outputs, optionally save and time them.",
        epilog="MODEL.onnx runs on the CPU without TensorRT (exported with the default dcn:: nodes).\n"
               "For plain Polygraphy / ONNX Runtime without our op library (polygraphy run --onnxrt), export with\n"
               "`dcn-export --deform-conv onnx`: the standard DeformConv (opset >= 19), which they run as it is.",
    )
    p.add_argument("engine", metavar="MODEL", help="MODEL.engine (TensorRT) or MODEL.onnx (ONNX Runtime CPU + dcn ops)")
    p.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy",
                   help="an input array (repeatable); FILE.npz gives all inputs by name")
    p.add_argument("--load-inputs", metavar="inputs.json|inputs.npz",
                   help="first feed dict of a Polygraphy inputs JSON, or an .npz (dcn-export --save-io)")
    p.add_argument("-o", "--output", metavar="OUT.npz", help="write the outputs by name (atomically)")
    p.add_argument("--iterations", type=int, default=0, metavar="N", help="time N runs: median / p90 latency, throughput")
    p.add_argument("--warmup", type=int, default=3, metavar="N", help="untimed runs before timing (default 3)")
    add_plugins_arg(p, ", or for MODEL.onnx the ONNX Runtime op library")
    p.add_argument("--backend", choices=BACKENDS, default="cuda-python",
                   help="engines: device memory and streams (default cuda-python)")
    p.add_argument("--threads", type=int, metavar="N", help="MODEL.onnx: ONNX Runtime intra-op threads "
                   "(default: ONNX Runtime's)")
    add_common_args(p)
    return p


def _say(args) -> Callable[[str], None]:
    """print when not -q."""
    level = verbosity(args)
    return (lambda msg: print(msg, flush=True)) if level >= DEFAULT else (lambda msg: None)


def _infer_body(args) -> int:

    if args.iterations < 0:
        raise DcnError(f"--iterations {args.iterations}: must be >= 0")
    if not Path(args.engine).is_file():  # named before any runtime is asked (TensorRT may be missing too)
        raise DcnError(f"model {args.engine!r} does not exist or is not a file")
    check_not_pytorch(args.engine)
    if args.output:
        atomic.check_writable(args.output)
        files = {f"--input {spec}": input_file_spec(spec)[1] for spec in args.input}
        atomic.check_distinct({"-o": args.output}, {"model": args.engine, "--load-inputs": args.load_inputs, **files})
    feeds = load_input_arrays(args.input, args.load_inputs)
    if not feeds:
        raise DcnError("no inputs: give --input NAME=FILE.npy (repeatable) or --load-inputs inputs.json")
    say = _say(args)
    if args.engine.lower().endswith(".onnx"):
        model = OrtModel(args.engine, library=args.plugins, threads=args.threads)
        where = model.description
    else:
        model = Engine(args.engine, plugins=args.plugins, backend=args.backend)
        where = f"TensorRT, backend {args.backend}, host<->device copies included"
    with model as engine:
        if "" in feeds:
            if len(engine.input_names) != 1:
                raise DcnError(f"--input without NAME= needs a single-input model; its inputs are {engine.input_names}")
            feeds[engine.input_names[0]] = feeds.pop("")
        outputs = engine(feeds)
        rows = []
        for name, arr in outputs.items():
            a = np.asarray(arr)
            rows.append([name, "x".join(map(str, a.shape)) or "scalar", a.dtype,
                         *(fmt_g(float(f(a))) if a.size else "-" for f in (np.min, np.max, np.mean))])
        for line in table(["output", "shape", "dtype", "min", "max", "mean"], rows):
            say(line)
        if args.output:
            save_npz(args.output, outputs)
            say(f"wrote {args.output}")
        if args.iterations:
            st = benchmark(engine, feeds, args.iterations, warmup=args.warmup)
            say(f"latency ({where}):")
            for line in table(["runs", "batch", "median_ms", "p90_ms", "mean_ms", "min_ms", "inferences/s",
                               "samples/s"],
                              [[st["iterations"], st["batch"], f"{st['median_ms']:.3f}", f"{st['p90_ms']:.3f}",
                                f"{st['mean_ms']:.3f}", f"{st['min_ms']:.3f}", f"{st['throughput_per_s']:.1f}",
                                f"{st['samples_per_s']:.1f}"]], indent="  "):
                say(line)
    return 0


def infer_main(argv: Optional[Sequence[str]] = None) -> int:
    return _run("dcn-infer", _infer_parser, _infer_body, argv)


# --------------------------------------------------------------------------- dcn-compare


def _compare_parser(prog: str) -> argparse.ArgumentParser:
    p = _Parser(
        prog=prog,
        description="Compare a deployed model (ONNX Runtime or TensorRT) with its PyTorch original through "
                    "Polygraphy's Comparator. Exit code 0: every output within tolerance, 1: mismatch, 2: error.",
    )
    p.add_argument("reference", metavar="REFERENCE",
                   help="PyTorch model (TorchScript, .pt2, state dict + --factory, pickle + --trust-pickle), "
                        "or saved Polygraphy outputs (outputs.json, or the dcn-export --save-io directory)")
    p.add_argument("target", metavar="TARGET", help="MODEL.onnx (ONNX Runtime + dcn CPU ops) or MODEL.engine (TensorRT)")
    p.add_argument("--load-inputs", metavar="inputs.json|inputs.npz",
                   help="Polygraphy input JSON or an .npz of one feed (default: generated)")
    p.add_argument("--input", action="append", default=[], metavar="NAME:SHAPE",
                   help="shape of a generated input, fixing dynamic dims, e.g. images:2x3x224x224 (repeatable)")
    p.add_argument("--seed", type=int, default=None, help="seed of generated inputs (Polygraphy's default if omitted)")
    p.add_argument("--iterations", type=int, default=1, help="number of generated input sets (default 1)")
    p.add_argument("--val-range", action="append", default=[], metavar="[NAME:]LOW,HIGH",
                   help="value range of generated inputs (default 0,1), e.g. --val-range -2,2")
    p.add_argument("--precision", choices=["auto", "fp32", "fp16"], default="auto",
                   help="tolerance row of dcn_base.tolerance (auto: from the ONNX types / the engine's build)")
    p.add_argument("--atol", action="append", default=[], metavar="[NAME:]VALUE", help="absolute tolerance override")
    p.add_argument("--rtol", action="append", default=[], metavar="[NAME:]VALUE", help="relative tolerance override")
    add_plugins_arg(p, " for engine targets")
    p.add_argument("--factory", metavar="module:callable", help="builds the model for a state-dict REFERENCE")
    p.add_argument("--trust-pickle", action="store_true", help="allow a pickled nn.Module REFERENCE (runs its code)")
    p.add_argument("--device", default="cpu", help="torch device of the PyTorch reference (default cpu)")
    p.add_argument("--report", metavar="out.json", help="write the comparison as JSON (atomically)")
    p.add_argument("--plot", metavar="DIR", help="write per-output error histograms and heatmaps (PNG)")
    add_common_args(p)
    return p


def _compare_body(args) -> int:
    t0 = process_t0() if getattr(args, "as_command", False) else time.perf_counter()
    outcome = compare(
        args.reference, args.target, load_inputs=args.load_inputs, input_shapes=args.input, seed=args.seed,
        iterations=args.iterations, val_range=args.val_range, precision=args.precision, atol=args.atol,
        rtol=args.rtol, plugins=args.plugins, factory=args.factory, trust_pickle=args.trust_pickle,
        device=args.device, report=args.report, plot=args.plot, verbose=args.verbose, log=_compare_log(args),
        progress=verbosity(args),
    )
    if verbosity(args) >= VERBOSE:
        for line in table(["stage", "seconds"], [["run (both models)", f"{outcome.report['run_seconds']:.2f}"],
                                                  ["total", f"{time.perf_counter() - t0:.2f}"]], indent="  "):
            print(line)
    return outcome.exit_code


def _compare_log(args) -> Callable[[str], None]:
    """-q: only a FAIL verdict (on stderr); default: notes, the table and the verdict."""
    if verbosity(args) >= DEFAULT:
        return lambda msg: print(msg, flush=True)
    return lambda msg: print(msg, file=sys.stderr, flush=True) if msg.startswith("FAIL") else None


def compare_main(argv: Optional[Sequence[str]] = None) -> int:
    # "--val-range -2,2": argparse would take -2,2 for an option
    return _run("dcn-compare", _compare_parser, _compare_body, join_option_values(argv, ["--val-range"]),
                as_command=argv is None)


# --------------------------------------------------------------------------- python -m trt_runtime.cli

_COMMANDS = {"build": build_main, "infer": infer_main, "compare": compare_main}


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in _COMMANDS:
        print("usage: python -m trt_runtime.cli {build,infer,compare} ...", file=sys.stderr)
        if argv and argv[0] in ("-h", "--help"):
            return 0
        print(f"trt_runtime.cli: error: expected a command: {', '.join(_COMMANDS)}", file=sys.stderr)
        return 2
    return _COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
