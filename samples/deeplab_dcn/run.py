"""DeepLab-DCN end to end: create -> dcn-export (--save-io) -> ONNX Runtime -> dcn-compare, in the
plugin mode (dcn::DeformConv2d, our CPU ops) and the standard-op mode (ONNX DeformConv).

    python -m samples.deeplab_dcn.run --workdir out/deeplab_dcn
    python -m samples.deeplab_dcn.run --tiny --size 64 --workdir out/deeplab_dcn

Exit 0: every comparison PASSes; 1: a mismatch; 2: an error (one line).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from samples.resnet_dcn.pipeline import main_wrapper, print_summary, run_pipeline, set_threads

from . import make_model

PROG = "samples.deeplab_dcn.run"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python -m {PROG}", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    make_model.add_model_args(p)
    p.add_argument("--workdir", default="out/deeplab_dcn", help="directory for the files (default out/deeplab_dcn)")
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
    make_model.make(argparse.Namespace(**vars(args), output=str(model_path)))
    results = run_pipeline(model_path, work, export_args=make_model.EXPORT_ARGS, standard=not args.no_standard)
    title = f"DeepLab-DCN {args.variant}{' tiny' if args.tiny else ''}, images 1x3x{size}x{size}"
    return 0 if print_summary(title, results) else 1


def main(argv: Optional[Sequence[str]] = None) -> int:
    return main_wrapper(PROG, run, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
