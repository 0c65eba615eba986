"""ResNet-DCN end to end: create -> dcn-export (--save-io) -> ONNX Runtime -> dcn-compare, in the
plugin mode (dcn::DeformConv2d, our CPU ops) and the standard-op mode (ONNX DeformConv).

    python -m samples.resnet_dcn.run --variant dcnv2 --workdir out/resnet_dcn
    python -m samples.resnet_dcn.run --variant dcnv1 --tiny --size 64 --workdir out/resnet_dcn

Writes WORKDIR/model.pt2, model.onnx, model_std.onnx and io/{inputs,outputs}.json.
Exit 0: every comparison PASSes; 1: a mismatch; 2: an error (one line).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from . import make_model
from .pipeline import main_wrapper, print_summary, run_pipeline, set_threads

PROG = "samples.resnet_dcn.run"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python -m {PROG}", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    make_model.add_model_args(p)
    p.add_argument("--workdir", default="out/resnet_dcn", help="directory for the files (default out/resnet_dcn)")
    p.add_argument("--no-standard", action="store_true", help="skip the standard-op (--deform-conv onnx) mode")
    return p


def run(args: argparse.Namespace) -> int:
    set_threads()
    size = make_model.size_of(args)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    model_path = work / "model.pt2"
    print(f"--- create: python -m {make_model.PROG} --variant {args.variant}{' --tiny' if args.tiny else ''} "
          f"--size {size} --offset-std {args.offset_std} -o {model_path}")
    ns = argparse.Namespace(**vars(args), format="pt2", output=str(model_path))
    make_model.make(ns)
    results = run_pipeline(model_path, work, standard=not args.no_standard)
    title = f"ResNet-50-DCN {args.variant}{' tiny' if args.tiny else ''}, images 1x3x{size}x{size}"
    return 0 if print_summary(title, results) else 1


def main(argv: Optional[Sequence[str]] = None) -> int:
    return main_wrapper(PROG, run, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
