"""``dcn-export``: a PyTorch deformable model -> ONNX with dcn nodes (see ``dcn-export --help``).

Exit codes: 0 written; 1 ``--check`` found the ONNX outputs outside the tolerance (nothing
written); 2 usage, input or environment errors (one line, no traceback; ``--verbose``
prints the underlying traceback).
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Callable, Optional, Sequence

from dcn_base.cli import DEFAULT, VERBOSE, add_common_args, process_t0, run_command, verbosity, version_text
from dcn_base.console import Stages, table
from dcn_base.errors import DcnError
from dcn_base.model_io import check_input_size

PROG = "dcn-export"

DTYPES = ("float32", "float16", "float64", "int64", "int32", "uint8", "bool")

EPILOG = """\
examples:
  dcn-export model.pt2 -o model.onnx --input images:1x3x512x512 --dynamic images:0=batch,2=height,3=width
  dcn-export weights.pth --factory mypkg.models:build -o model.onnx --input images:1x3x512x512 --check
  dcn-export rfcn.ts -o rfcn.onnx --input features:1x1029x32x32 --input rois:300x5 --save-io io/

inputs are generated from --seed: floats ~ N(0, 1); an input whose name contains 'roi'
with shape [R, 5] gets valid boxes (batch_index, x1, y1, x2, y2) inside the image (its size
is the first 4-D input's, divided by the model's DeformPSROIPool or (Modulated)DeformRoIPoolPack
spatial_scale when that input is the pooling's feature map).
"""


# --------------------------------------------------------------------------- argument syntax
class InputSpec:
    def __init__(self, name: str, shape: Optional[tuple[int, ...]] = None, dtype: str = "float32",
                 file: Optional[str] = None) -> None:
        self.name, self.shape, self.dtype, self.file = name, shape, dtype, file


_NAME = r"[A-Za-z_][A-Za-z0-9_.\-/]*"


def parse_input(text: str) -> InputSpec:
    """``NAME:SHAPE[:DTYPE]`` (SHAPE like 1x3x512x512) or ``NAME=FILE.npy``."""
    hint = f"--input {text!r}: expected NAME:SHAPE[:DTYPE] (e.g. images:1x3x512x512) or NAME=FILE.npy"
    m = re.fullmatch(rf"({_NAME})=(.+)", text)
    if m:
        return InputSpec(m.group(1), file=m.group(2))
    m = re.fullmatch(rf"({_NAME}):([0-9]+(?:[x,][0-9]+)*)(?::([a-z0-9]+))?", text)
    if not m:
        raise DcnError(hint)
    shape = tuple(int(d) for d in re.split(r"[x,]", m.group(2)))
    dtype = m.group(3) or "float32"
    if dtype not in DTYPES:
        raise DcnError(f"--input {text!r}: dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    if any(d <= 0 for d in shape):
        raise DcnError(f"--input {text!r}: every dimension must be positive, got {list(shape)}")
    check_input_size(f"--input {text!r}", shape, _ITEMSIZE[dtype], dtype)
    return InputSpec(m.group(1), shape, dtype)


_ITEMSIZE = {"float32": 4, "float16": 2, "float64": 8, "int64": 8, "int32": 4, "uint8": 1, "bool": 1}


def parse_dynamic(text: str) -> tuple[str, dict[int, str]]:
    """``NAME:AXIS=LABEL[,AXIS=LABEL...]`` or ``NAME:AXIS[,AXIS...]`` (labels NAME_dimAXIS)."""
    hint = f"--dynamic {text!r}: expected NAME:AXIS=LABEL[,AXIS=LABEL...], e.g. images:0=batch,2=height,3=width"
    name, sep, rest = text.partition(":")
    if not sep or not re.fullmatch(_NAME, name) or not rest:
        raise DcnError(hint)
    axes: dict[int, str] = {}
    for item in rest.split(","):
        m = re.fullmatch(r"(-?[0-9]+)(?:=([A-Za-z_][A-Za-z0-9_]*))?", item.strip())
        if not m:
            raise DcnError(hint)
        axis = int(m.group(1))
        axes[axis] = m.group(2) or f"{name}_dim{axis}"
    return name, axes


# --------------------------------------------------------------------------- example inputs
def _torch_dtype(name: str):
    import torch

    return {"float32": torch.float32, "float16": torch.float16, "float64": torch.float64, "int64": torch.int64,
            "int32": torch.int32, "uint8": torch.uint8, "bool": torch.bool}[name]


def _is_rois(spec: InputSpec) -> bool:
    return "roi" in spec.name.lower() and spec.shape is not None and len(spec.shape) == 2 and spec.shape[1] == 5 \
        and spec.dtype.startswith("float")


def make_inputs(specs: Sequence[InputSpec], model, seed: int = 0) -> list:
    """Tensors for ``specs``: files loaded, others generated from ``seed`` (rois as valid boxes)."""
    import numpy as np
    import torch

    from .ops import DeformPSROIPool

    tensors: list = [None] * len(specs)
    for i, s in enumerate(specs):
        if s.file is None:
            continue
        path = Path(s.file)
        if not path.is_file():
            hint = f" (a shape is written {s.name}:{s.file})" if re.fullmatch(r"[0-9]+(?:x[0-9]+)*", s.file) else ""
            raise DcnError(f"--input {s.name}={s.file}: file '{s.file}' not found{hint}")
        try:
            arr = np.load(path, allow_pickle=False)
        except Exception as e:
            raise DcnError(f"--input {s.name}={s.file}: not a .npy array ({type(e).__name__}: {e})") from None
        if not isinstance(arr, np.ndarray):
            raise DcnError(f"--input {s.name}={s.file}: holds {type(arr).__name__}, expected one .npy array")
        tensors[i] = torch.from_numpy(np.ascontiguousarray(arr))
    gen = torch.Generator().manual_seed(seed)
    image = None  # (N, C, H, W) of the first 4-D float input
    for s, t in zip(specs, tensors):
        shape = tuple(t.shape) if t is not None else s.shape
        dtype = str(t.dtype).replace("torch.", "") if t is not None else s.dtype
        if len(shape) == 4 and dtype.startswith("float"):
            image = shape
            break
    pool = next((m for m in model.modules() if isinstance(m, DeformPSROIPool)), None) \
        if hasattr(model, "modules") else None
    # RoIs are in image pixels: a 4-D input that is the pooling's own feature map (its channels are
    # output_dim*group_size^2) is 1/spatial_scale smaller than the image; any other 4-D input is the image.
    scale = None
    if pool is not None and image is not None and image[1] == pool.output_dim * pool.group_size ** 2:
        scale = pool.spatial_scale
    # the same for mmcv-style deformable RoI pooling packs (ours or mmcv's), whose feature map has output_channels
    roi_pack = next((m for m in model.modules() if type(m).__name__ in ("DeformRoIPoolPack", "ModulatedDeformRoIPoolPack")),
                    None) if hasattr(model, "modules") else None
    if scale is None and roi_pack is not None and image is not None and image[1] == roi_pack.output_channels:
        scale = roi_pack.spatial_scale
    for i, s in enumerate(specs):
        if tensors[i] is not None:
            continue
        dtype = _torch_dtype(s.dtype)
        if _is_rois(s):
            n, _, h, w = image if image is not None else (1, 3, 64, 64)
            if scale:
                h, w = h / scale, w / scale
            tensors[i] = _boxes(s.shape[0], n, h, w, gen).to(dtype)
        elif dtype.is_floating_point:
            tensors[i] = torch.randn(s.shape, generator=gen).to(dtype)
        elif dtype == torch.bool:
            tensors[i] = torch.randint(0, 2, s.shape, generator=gen).bool()
        else:
            tensors[i] = torch.randint(0, 10, s.shape, generator=gen).to(dtype)
    return tensors


def _boxes(r: int, n: int, h: float, w: float, gen):
    """[R, 5] (batch_index, x1, y1, x2, y2): boxes inside an h x w image, at least 1 pixel wide."""
    import torch

    b = torch.randint(0, max(n, 1), (r,), generator=gen).float()
    x1 = torch.rand(r, generator=gen) * (w - 1) * 0.75
    y1 = torch.rand(r, generator=gen) * (h - 1) * 0.75
    x2 = torch.minimum(x1 + 1 + torch.rand(r, generator=gen) * (w - 1) * 0.5, torch.tensor(w - 1.0))
    y2 = torch.minimum(y1 + 1 + torch.rand(r, generator=gen) * (h - 1) * 0.5, torch.tensor(h - 1.0))
    return torch.stack([b, x1, y1, x2, y2], dim=1)


# --------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    from .export import DEFAULT_OPSET, DEFORM_CONV_MODES

    p = argparse.ArgumentParser(
        prog=PROG,
        description="Export a PyTorch model with deformable convolution / deformable (PS-)RoI pooling to ONNX "
                    "with dcn::DeformConv2d / DeformPSROIPool / DeformRoIPool nodes (or the standard DeformConv).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", nargs="?", help="TorchScript archive, torch.export program (.pt2), pickled nn.Module "
                   "(with --trust-pickle) or state dict (with --factory); omit to export a fresh --factory model")
    p.add_argument("-o", "--output", required=True, help="ONNX file to write (atomically)")
    p.add_argument("--input", action="append", default=[], metavar="SPEC",
                   help="NAME:SHAPE[:DTYPE] (e.g. images:1x3x512x512, rois:300x5) or NAME=FILE.npy; repeat in the "
                        "order of forward's arguments")
    p.add_argument("--dynamic", action="append", default=[], metavar="SPEC",
                   help="NAME:AXIS=LABEL[,AXIS=LABEL...] dynamic axes, e.g. images:0=batch,2=height,3=width")
    p.add_argument("--output-names", metavar="A,B", help="names of the model's outputs (default output / output_i)")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    p.add_argument("--deform-conv", choices=DEFORM_CONV_MODES, default="plugin",
                   help="plugin: dcn::DeformConv2d (our ORT op / TensorRT plugin; default); "
                        "onnx: the standard DeformConv (opset >= 19)")
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
    p.add_argument("--no-verify", action="store_true", help="skip running the exported model")
    p.add_argument("--reference-check", action="store_true",
                   help="verify with the ONNX reference evaluator + our PyTorch reference ops (pure Python)")
    p.add_argument("--factory", metavar="MODULE:CALLABLE", help="builds the model a state dict loads into")
    p.add_argument("--trust-pickle", action="store_true",
                   help="allow loading a pickled nn.Module (unpickling runs code from the file)")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated inputs (default 0)")
    add_common_args(p, verbose_help="tracebacks of errors")
    return p


def _run(args: argparse.Namespace, say: Callable[[str], None]) -> int:
    from .export import CheckError, export
    from .loading import load_model

    specs = [parse_input(s) for s in args.input]
    names = [s.name for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DcnError(f"--input {dupes[0]!r} given more than once")
    dynamic: dict[str, dict[int, str]] = {}
    for text in args.dynamic:
        name, axes = parse_dynamic(text)
        dynamic.setdefault(name, {}).update(axes)
    output_names = [n.strip() for n in args.output_names.split(",")] if args.output_names else None

    from dcn_base.atomic import check_writable

    check_writable(Path(args.output))  # before loading anything
    if args.report:
        check_writable(Path(args.report))
    level = verbosity(args)
    verify = not args.no_verify or args.check
    stages = Stages(["load", "pytorch run", "torch.export", "onnx conversion", "onnx checker"]
                    + (["verify"] if verify else []) + ["save"], level=level, prog=PROG,
                    t0=getattr(args, "t0", None))
    stages.start("load")
    model = load_model(args.model, factory=args.factory, trust_pickle=args.trust_pickle)
    if specs:
        inputs = make_inputs(specs, model, seed=args.seed)
        input_names: Optional[list[str]] = names
    else:
        example = getattr(model, "example_inputs", None)
        if example is None and getattr(model, "example_inputs_note", None):
            say(model.example_inputs_note)
        if example is None:
            from .trace import forward_param_names

            params = [p for p in forward_param_names(model, 8) if not p.startswith("input_")]
            wanted = f" (forward takes {', '.join(params)})" if params else ""
            raise DcnError(f"no example inputs: give --input NAME:SHAPE for each of the model's inputs{wanted}")
        ex_args, ex_kwargs = example if isinstance(example, tuple) and len(example) == 2 else (example, {})
        if ex_kwargs:
            raise DcnError("the program's saved example inputs use keyword arguments; give --input for each input")
        inputs, input_names = list(ex_args), None
        say("using the example inputs saved in the torch.export program")
    def on_check(report) -> None:  # the check's numbers as a table, like dcn-compare's
        stages.stop()
        say(f"check ({report.runtime} vs {report.reference}) {'PASS' if report.passed else 'FAIL'} "
            f"[{report.dtype} tolerance atol {report.atol:g} x scale, rtol {report.rtol:g}]")
        for line in table(*report.table_rows(), indent="  ") + report.notes():
            say(line)

    try:
        result = export(
            model, tuple(inputs), args.output, input_names=input_names, output_names=output_names,
            dynamic=dynamic or None, opset=args.opset, deform_conv=args.deform_conv, fp16=args.fp16 or args.fp16_io,
            fp16_io=args.fp16_io, save_io=args.save_io, save_io_format=args.io_format, check=args.check,
            verify=not args.no_verify, runtime="reference" if args.reference_check else "auto", log=say,
            stages=stages, on_check=on_check,
        )
    except CheckError:
        raise
    finally:
        stages.done()
    total = stages.total
    if args.report:
        from .report import export_report, write_report

        write_report(args.report, export_report(result, args.model, total))
    say(result.summary(seconds=total))
    if level >= VERBOSE:
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
    return 0


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
