"""Write the mdpool Faster R-CNN head sample to a file that dcn-export reads.

    python -m samples.mmdet_mdpool.make_model -o out/mmdet_mdpool/model.pt2
    python -m samples.mmdet_mdpool.make_model --tiny -o out/mmdet_mdpool/model.pt2

A ``torch.export`` program (``.pt2``) with two inputs, ``images`` [1, 3, SIZE, SIZE] and ``rois``
[R, 5] (valid boxes inside the image, saved as its example inputs), batch and RoI count traced
symbolic. Written atomically. Prints the next command.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from samples.resnet_dcn import model as resnet
from samples.resnet_dcn.pipeline import check_writable_file, main_wrapper, set_threads, write_program
from samples.rfcn_dpsroi import make_model as rfcn_make
from samples.rfcn_dpsroi import model as rfcn

from . import model as M

PROG = "samples.mmdet_mdpool.make_model"
EXPORT_ARGS = ["--output-names", ",".join(M.OUTPUT_NAMES)]


def add_model_args(p: argparse.ArgumentParser) -> None:
    from samples.resnet_dcn import make_model as resnet_make

    resnet_make.add_model_args(p, variant_help="backbone (default dcnv2)",
                               tiny_help="CI size: 1-block, 1/4-width backbone, narrow head")
    p.add_argument("--rois", type=int, default=None, help="number of RoIs in the example (default 300, 8 with --tiny)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python -m {PROG}", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p)
    p.add_argument("-o", "--output", required=True, help="model file to write, e.g. out/mmdet_mdpool/model.pt2")
    return p


def make(args: argparse.Namespace) -> int:
    set_threads()
    size, num_rois = rfcn_make.sizes(args)
    check_writable_file(Path(args.output))  # before any work
    net = M.build(args.variant, tiny=args.tiny, offset_std=args.offset_std, seed=args.seed)
    images = resnet.example_images(size, seed=args.seed)
    rois = rfcn.example_rois(num_rois, size, size, seed=args.seed)
    out = Path(args.output)
    off_px, mask = M.pool_offset_stats(net, images, rois)
    print(f"Faster R-CNN mdpool head (ModulatedDeformRoIPoolPack) on ResNet-50-DCN {args.variant}"
          f"{' (tiny)' if args.tiny else ''}: {sum(p.numel() for p in net.parameters()) / 1e6:.1f} M parameters; "
          f"on the example: backbone offsets mean |offset| "
          f"{resnet.offset_stats(net.backbone, images)['mean_abs_offset']:.3f} px, RoI pooling offsets mean "
          f"{off_px:.2f} px, mask mean {mask:.3f}")
    write_program(net, (images, rois), out, {0: {0: "batch"}, 1: {0: "num_rois"}},
                  f"example inputs images 1x3x{size}x{size}, rois {num_rois}x5", EXPORT_ARGS)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    return main_wrapper(PROG, make, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
