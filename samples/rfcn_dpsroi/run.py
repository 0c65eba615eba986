"""R-FCN / Faster R-CNN with deformable (PS-)RoI pooling end to end: create -> dcn-export (--save-io)
-> ONNX Runtime with our ops -> dcn-compare.

    python -m samples.rfcn_dpsroi.run --head rfcn --workdir out/rfcn_dpsroi
    python -m samples.rfcn_dpsroi.run --head faster --tiny --workdir out/faster_dpsroi

The graph holds dcn::DeformPSROIPool nodes, which no standard ONNX op expresses, so it runs with our
op library (the backbone's deformable convs are dcn::DeformConv2d). ``--standard`` also exports the
backbone's convs as ONNX DeformConv (RoI pooling stays dcn::) and compares that model too.
Exit 0: PASS; 1: a mismatch; 2: an error (one line).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from samples.resnet_dcn.pipeline import main_wrapper, print_summary, run_pipeline, set_threads

from . import make_model

PROG = "samples.rfcn_dpsroi.run"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python -m {PROG}", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    make_model.add_model_args(p)
    p.add_argument("--workdir", default=None, help="directory for the files (default out/rfcn_dpsroi or "
                   "out/faster_dpsroi)")
    p.add_argument("--standard", action="store_true", help="also the --deform-conv onnx export of the backbone")
    return p


def run(args: argparse.Namespace) -> int:
    set_threads()
    size, num_rois = make_model.sizes(args)
    work = Path(args.workdir or ("out/rfcn_dpsroi" if args.head == "rfcn" else "out/faster_dpsroi"))
    work.mkdir(parents=True, exist_ok=True)
    model_path = work / "model.pt2"
    print(f"--- create: python -m {make_model.PROG} --head {args.head} --variant {args.variant}"
          f"{' --tiny' if args.tiny else ''} --size {size} --rois {num_rois} --offset-std {args.offset_std} "
          f"-o {model_path}")
    make_model.make(argparse.Namespace(**vars(args), output=str(model_path)))
    results = run_pipeline(model_path, work, export_args=make_model.EXPORT_ARGS, standard=args.standard)
    title = (f"{'R-FCN' if args.head == 'rfcn' else 'Faster R-CNN'} {args.variant}{' tiny' if args.tiny else ''}, "
             f"images 1x3x{size}x{size}, rois {num_rois}x5")
    return 0 if print_summary(title, results) else 1


def main(argv: Optional[Sequence[str]] = None) -> int:
    return main_wrapper(PROG, run, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
