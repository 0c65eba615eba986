"""The mdpool Faster R-CNN head end to end: create -> dcn-export (--save-io) -> ONNX Runtime with our
ops -> dcn-compare.

    python -m samples.mmdet_mdpool.run --workdir out/mmdet_mdpool
    python -m samples.mmdet_mdpool.run --tiny --workdir out/mmdet_mdpool

The graph holds dcn::DeformConv2d (backbone) and two dcn::DeformRoIPool nodes (plain pooling for the
offset / mask branches, then the deformable pooling), which need our op library.
Exit 0: PASS; 1: a mismatch; 2: an error (one line).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from samples.resnet_dcn.pipeline import main_wrapper, print_summary, run_pipeline, set_threads
from samples.rfcn_dpsroi import make_model as rfcn_make

from . import make_model

PROG = "samples.mmdet_mdpool.run"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python -m {PROG}", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    make_model.add_model_args(p)
    p.add_argument("--workdir", default="out/mmdet_mdpool", help="directory for the files (default out/mmdet_mdpool)")
    return p


def run(args: argparse.Namespace) -> int:
    set_threads()
    size, num_rois = rfcn_make.sizes(args)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    model_path = work / "model.pt2"
    print(f"--- create: python -m {make_model.PROG} --variant {args.variant}{' --tiny' if args.tiny else ''} "
          f"--size {size} --rois {num_rois} --offset-std {args.offset_std} -o {model_path}")
    make_model.make(argparse.Namespace(**vars(args), output=str(model_path)))
    results = run_pipeline(model_path, work, export_args=make_model.EXPORT_ARGS, standard=False)
    title = (f"Faster R-CNN mdpool {args.variant}{' tiny' if args.tiny else ''}, images 1x3x{size}x{size}, "
             f"rois {num_rois}x5")
    return 0 if print_summary(title, results) else 1


def main(argv: Optional[Sequence[str]] = None) -> int:
    return main_wrapper(PROG, run, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
