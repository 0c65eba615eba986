"""A DETR-family detector end to end: create -> dcn-export (--save-io) -> ONNX Runtime with our ops ->
dcn-compare, in up to three modes:

* plugin: the detector with mmcv's / transformers' attention, swapped by dcn-export for ours, one
  dcn::MultiScaleDeformableAttention node per layer, checked against PyTorch (float64);
* fp16: the same exported with --fp16 (float16 weights and compute, locations float32, float32 I/O),
  checked against PyTorch with the float16 tolerance (the transformers models; default for the single-stage
  deformable-detr-hf: a two-stage detector's top-k query selection is not stable in float16 with random
  weights, see model.py; mmdetection's DINO / Deformable DETR mix float32 tensors into float16 layers);
* fuse-msda: the detector as torch.onnx.export writes it (a GridSample per level in every attention),
  rewritten by dcn-export --fuse-msda and checked against that original graph on ONNX Runtime (RT-DETR;
  for the others torch.onnx.export writes the encoder's sampling grid in float64, which ONNX Runtime's
  GridSample does not run).

    python -m samples.detr_msda.run --model rtdetr --workdir out/detr_msda
    python -m samples.detr_msda.run --model deformable-detr --workdir out/detr_msda
    python -m samples.detr_msda.run --model deformable-detr-hf --workdir out/detr_msda

Exit 0: PASS; 1: a mismatch; 2: an error (one line).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from samples.resnet_dcn.pipeline import (ModeResult, dcn_compare, dcn_export, load_io, main_wrapper,
                                         max_error_and_tolerance, node_summary, ort_run, print_summary, save_state_dict,
                                         set_threads)

from . import make_model
from . import model as M

PROG = "samples.detr_msda.run"
MODES = ("plugin", "fp16", "fuse-msda")
DEFAULT_MODES = {"rtdetr": ("plugin", "fuse-msda"), "dino": ("plugin",), "deformable-detr": ("plugin",),
                 "deformable-detr-hf": ("plugin", "fp16")}
FP16_MODELS = ("rtdetr", "deformable-detr-hf")
FUSE_MODELS = ("rtdetr",)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python -m {PROG}", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    make_model.add_model_args(p)
    p.add_argument("--modes", nargs="+", choices=MODES, default=None,
                   help="what to export and compare (default: plugin and fuse-msda for rtdetr, plugin and fp16 for "
                        "deformable-detr-hf, plugin for the mmdetection models)")
    p.add_argument("--workdir", default="out/detr_msda", help="directory for the files (default out/detr_msda)")
    return p


def _mode(mode: str, onnx_path: Path, io_dir: Path, argv: list[Any], say=print) -> ModeResult:
    """One export (dcn-export ARGV, which checks), ONNX Runtime by hand, then dcn-compare."""
    t0 = time.perf_counter()
    dcn_export(argv, say)
    export_s = time.perf_counter() - t0
    feed, ref = load_io(io_dir)
    got, ms = ort_run(onnx_path, feed, ours=True)
    ok, detail = max_error_and_tolerance(got, ref, "float16" if mode == "fp16" else None)
    say(f"ONNX Runtime + libdcn_ort: {', '.join(f'{k} {list(v.shape)}' for k, v in got.items())} in {ms:.1f} ms; "
        f"vs the reference: {detail} -> {'PASS' if ok else 'FAIL'}")
    outcome = dcn_compare(io_dir, onnx_path, say=say)
    max_err = max(float(o.get("max_abs", float("nan"))) for o in outcome.outputs)
    return ModeResult(mode, onnx_path, node_summary(onnx_path), bool(outcome.passed and ok), max_err, ms,
                      "ONNX Runtime + libdcn_ort", export_s)


def run(args: argparse.Namespace) -> int:
    set_threads()
    size = make_model.image_size(args)
    modes = args.modes or DEFAULT_MODES[args.model]
    if "fp16" in modes and args.model not in FP16_MODELS:
        raise ValueError(f"--modes fp16: {args.model} (mmdetection) mixes float32 tensors into float16 layers and "
                         f"cannot run in float16; fp16 is for {' and '.join(FP16_MODELS)}")
    if "fuse-msda" in modes and args.model not in FUSE_MODELS:
        raise ValueError(f"--modes fuse-msda: torch.onnx.export writes {args.model}'s encoder sampling grids in float64, "
                         f"which ONNX Runtime's GridSample cannot run (the original graph is the check's truth); "
                         f"fuse-msda is for {' and '.join(FUSE_MODELS)}")
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    name = args.model.replace("-", "_")
    weights = work / f"{name}.pth"
    print(f"--- create: python -m {make_model.PROG} --model {args.model}{' --tiny' if args.tiny else ''} "
          f"--size {size[0]}x{size[1]} -o {weights}")
    net = M.build(args.model, tiny=args.tiny, seed=args.seed)
    print(f"{M.describe(net, args.model, args.tiny)}; image 1x3x{size[0]}x{size[1]}")
    save_state_dict(net, weights)
    common = make_model.export_args(args, size)
    results = []
    for mode in modes:
        print(f"--- {mode}")
        io_dir = work / f"io_{name}_{mode.replace('-', '_')}"
        if mode == "fuse-msda":
            src = make_model.write_gridsample_onnx(net, make_model.example_images(*size, seed=args.seed),
                                                   work / f"{name}_gridsample.onnx")
            out = work / f"{name}_fused.onnx"
            argv = [src, "--fuse-msda", "-o", out, "--input", f"images={work / 'images.npy'}"]
        else:
            out = work / f"{name}{'_fp16' if mode == 'fp16' else ''}.onnx"
            argv = [weights, *common, "-o", out] + (["--fp16"] if mode == "fp16" else [])
        results.append(_mode(mode, out, io_dir, [*argv, "--save-io", io_dir, "--check"]))
    title = f"{M.describe(net, args.model, args.tiny).split(':')[0]}, images 1x3x{size[0]}x{size[1]}"
    return 0 if print_summary(title, results) else 1


def main(argv: Optional[Sequence[str]] = None) -> int:
    return main_wrapper(PROG, run, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
