"""InternImage-T-like (DCNv3) / FlashInternImage-T-like (DCNv4) end to end: create -> dcn-export (--save-io)
-> ONNX Runtime with our ops -> dcn-compare, as a float32 export and a float16 one (--fp16: float16 weights
and compute, float32 I/O; the ONNX Runtime ops run in float16 with float32 coordinates and sums).

    python -m samples.internimage.run --core dcnv3 --workdir out/internimage
    python -m samples.internimage.run --core dcnv4 --size 512 --workdir out/flash_internimage_512

Writes WORKDIR/model.pt2, model.onnx, io/ and fp16/{model.onnx, io/}. Exit 0: every comparison PASSes;
1: a mismatch; 2: an error (one line).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from samples.resnet_dcn.pipeline import (ModeResult, _node_summary, dcn_compare, dcn_export, load_io, main_wrapper,
                                         ort_run, print_summary, run_pipeline, set_threads)

from . import make_model

PROG = "samples.internimage.run"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python -m {PROG}", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    make_model.add_model_args(p)
    p.add_argument("--workdir", default="out/internimage", help="directory for the files (default out/internimage)")
    p.add_argument("--no-fp16", action="store_true", help="skip the float16 export")
    return p


def fp16_mode(model_path: Path, work: Path) -> ModeResult:
    """dcn-export --fp16 (its check and dcn-compare judge with the float16 tolerances), ONNX Runtime timing."""
    print("--- plugin mode, float16 export: dcn:: nodes in float16, ONNX Runtime + our CPU ops")
    work.mkdir(parents=True, exist_ok=True)
    onnx_path, io_dir = work / "model.onnx", work / "io"
    t0 = time.perf_counter()
    dcn_export([model_path, "-o", onnx_path, *make_model.EXPORT_ARGS, "--fp16", "--save-io", io_dir, "--check"])
    export_s = time.perf_counter() - t0
    feed, _ = load_io(io_dir)
    _, ms = ort_run(onnx_path, feed, ours=True)
    outcome = dcn_compare(io_dir, onnx_path)
    max_err = max(float(o.get("max_abs", float("nan"))) for o in outcome.outputs)
    return ModeResult("plugin fp16", onnx_path, f"{_node_summary(onnx_path)} (float16)", bool(outcome.passed),
                      max_err, ms, "ONNX Runtime + libdcn_ort", export_s)


def run(args: argparse.Namespace) -> int:
    set_threads()
    size = make_model.size_of(args)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    model_path = work / "model.pt2"
    print(f"--- create: python -m {make_model.PROG} --core {args.core}{' --tiny' if args.tiny else ''} --size {size} "
          f"--offset-std {args.offset_std} -o {model_path}")
    make_model.make(argparse.Namespace(**vars(args), output=str(model_path)))
    results = run_pipeline(model_path, work, export_args=make_model.EXPORT_ARGS, standard=False)
    if not args.no_fp16:
        results.append(fp16_mode(model_path, work / "fp16"))
    return 0 if print_summary(f"{make_model.title(args)}, images 1x3x{size}x{size}", results) else 1


def main(argv: Optional[Sequence[str]] = None) -> int:
    return main_wrapper(PROG, run, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
