"""Write the DeepLab-DCN segmentation sample to a file that dcn-export reads.

    python -m samples.deeplab_dcn.make_model -o out/deeplab_dcn/model.pt2
    python -m samples.deeplab_dcn.make_model --tiny --size 64 -o out/deeplab_dcn/model.pt2

A ``torch.export`` program (``.pt2``) with the example input ``images`` [1, 3, SIZE, SIZE] saved
and a symbolic batch axis. Written atomically; the parent directory is created. Prints the next
command.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from samples.resnet_dcn import make_model as resnet_make
from samples.resnet_dcn import model as resnet
from samples.resnet_dcn.pipeline import check_writable_file, main_wrapper, set_threads, write_program

from . import model as M

PROG = "samples.deeplab_dcn.make_model"
EXPORT_ARGS = ["--output-names", ",".join(M.OUTPUT_NAMES)]


size_of = resnet_make.size_of  # the backbone options are the ResNet sample's


def add_model_args(p: argparse.ArgumentParser) -> None:
    resnet_make.add_model_args(p, variant_help="backbone (default dcnv2)",
                               tiny_help="CI size: 1-block, 1/4-width backbone, 32-channel head")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python -m {PROG}", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p)
    p.add_argument("-o", "--output", required=True, help="model file to write, e.g. out/deeplab_dcn/model.pt2")
    return p


def make(args: argparse.Namespace) -> int:
    set_threads()
    size = size_of(args)
    check_writable_file(Path(args.output))  # before any work
    net = M.build(args.variant, tiny=args.tiny, offset_std=args.offset_std, seed=args.seed)
    images = resnet.example_images(size, seed=args.seed)
    out = Path(args.output)
    print(f"DeepLab-DCN (ASPP-lite, dilated c5) on ResNet-50-DCN {args.variant}{' (tiny)' if args.tiny else ''}: "
          f"{resnet.describe(net)}; offsets on the example input: mean |offset| "
          f"{resnet.offset_stats(net, images)['mean_abs_offset']:.3f} px")
    write_program(net, (images,), out, {0: {0: "batch"}}, f"example input images 1x3x{size}x{size}", EXPORT_ARGS)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    return main_wrapper(PROG, make, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
