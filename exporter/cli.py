"""``dcn-export``: a PyTorch deformable model -> ONNX with dcn nodes (see ``dcn-export --help``).

Exit codes: 0 written; 1 ``--check`` found the ONNX outputs outside the tolerance (nothing
written); 2 usage, input or environment errors (one line, no traceback; ``--verbose``
prints the underlying traceback).
"""
from __future__ import annotations

import argparse
import re
import sys
import traceback
from pathlib import Path
from typing import Callable, Optional, Sequence

from .errors import DcnError

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
    return InputSpec(m.group(1), shape, dtype)


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
    p.add_argument("--check", action="store_true", help="fail (exit 1, nothing written) when the ONNX model's "
                   "outputs differ from PyTorch's beyond exporter.tolerance")
    p.add_argument("--no-verify", action="store_true", help="skip running the exported model")
    p.add_argument("--reference-check", action="store_true",
                   help="verify with the ONNX reference evaluator + our PyTorch reference ops (pure Python)")
    p.add_argument("--factory", metavar="MODULE:CALLABLE", help="builds the model a state dict loads into")
    p.add_argument("--trust-pickle", action="store_true",
                   help="allow loading a pickled nn.Module (unpickling runs code from the file)")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated inputs (default 0)")
    p.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    p.add_argument("-v", "--verbose", action="store_true", help="print tracebacks of errors")
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

    from .export import check_output_path

    check_output_path(Path(args.output))  # before loading anything
    model = load_model(args.model, factory=args.factory, trust_pickle=args.trust_pickle)
    if specs:
        inputs = make_inputs(specs, model, seed=args.seed)
        input_names: Optional[list[str]] = names
    else:
        example = getattr(model, "example_inputs", None)
        if example is None:
            from .export import _forward_param_names

            params = [p for p in _forward_param_names(model, 8) if not p.startswith("input_")]
            wanted = f" (forward takes {', '.join(params)})" if params else ""
            raise DcnError(f"no example inputs: give --input NAME:SHAPE for each of the model's inputs{wanted}")
        ex_args, ex_kwargs = example if isinstance(example, tuple) and len(example) == 2 else (example, {})
        if ex_kwargs:
            raise DcnError("the program's saved example inputs use keyword arguments; give --input for each input")
        inputs, input_names = list(ex_args), None
        say("using the example inputs saved in the torch.export program")
    try:
        result = export(
            model, tuple(inputs), args.output, input_names=input_names, output_names=output_names,
            dynamic=dynamic or None, opset=args.opset, deform_conv=args.deform_conv, fp16=args.fp16 or args.fp16_io,
            fp16_io=args.fp16_io, save_io=args.save_io, check=args.check, verify=not args.no_verify,
            runtime="reference" if args.reference_check else "auto", log=say,
        )
    except CheckError:
        raise
    say(result.summary())
    if result.check is not None and not result.check.passed:
        say("warning: the exported model's outputs differ from PyTorch's beyond the tolerance "
            "(--check makes this an error)")
    if result.io_dir is not None:
        say(f"wrote {result.io_dir}/inputs.json and {result.io_dir}/outputs.json (runner 'pytorch')")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse printed its usage line
        return int(e.code) if isinstance(e.code, int) else 2

    def say(msg: str) -> None:
        if not args.quiet:
            print(f"{PROG}: {msg}", flush=True)

    try:
        return _run(args, say)
    except DcnError as e:
        if args.verbose:
            traceback.print_exception(e.__cause__ or e, file=sys.stderr)
        msg = " ".join(str(e).split("\n"))
        print(f"{PROG}: error: {msg}", file=sys.stderr, flush=True)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
