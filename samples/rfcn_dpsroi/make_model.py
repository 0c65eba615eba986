"""Write the R-FCN / Faster R-CNN deformable RoI pooling sample to a file that dcn-export reads.

    python -m samples.rfcn_dpsroi.make_model --head rfcn -o out/rfcn_dpsroi/model.pt2
    python -m samples.rfcn_dpsroi.make_model --head faster --tiny -o out/faster_dpsroi/model.pt2

A ``torch.export`` program (``.pt2``) with two inputs, ``images`` [1, 3, SIZE, SIZE] and
``rois`` [R, 5] (valid boxes inside the image, saved as its example inputs), batch and RoI count
traced symbolic (``--dynamic images:0=batch --dynamic rois:0=num_rois`` work). Written atomically;
the parent directory is created. Prints the next command.
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

PROG = "samples.rfcn_dpsroi.make_model"
EXPORT_ARGS = ["--output-names", ",".join(M.OUTPUT_NAMES)]


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--head", choices=list(M.HEADS), default="rfcn",
                   help="rfcn: deformable PS-RoI pooling, group_size 7 (default); faster: Faster R-CNN with "
                        "deformable RoI pooling, group_size 1, fc offsets")
    resnet_make.add_model_args(p, variant_help="backbone (default dcnv2)",
                               tiny_help="CI size: 1-block, 1/4-width backbone, narrow heads")
    p.add_argument("--rois", type=int, default=None, help="number of RoIs in the example (default 300, 8 with --tiny)")


def sizes(args: argparse.Namespace) -> tuple[int, int]:
    size = resnet_make.size_of(args)
    rois = args.rois if args.rois is not None else (8 if args.tiny else 300)
    if rois < 1:
        raise ValueError(f"--rois {rois}: must be at least 1")
    return size, rois


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python -m {PROG}", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p)
    p.add_argument("-o", "--output", required=True, help="model file to write, e.g. out/rfcn_dpsroi/model.pt2")
    return p


def make(args: argparse.Namespace) -> int:
    set_threads()
    size, num_rois = sizes(args)
    check_writable_file(Path(args.output))  # before any work
    net = M.build(args.head, args.variant, tiny=args.tiny, offset_std=args.offset_std, seed=args.seed)
    images = resnet.example_images(size, seed=args.seed)
    rois = M.example_rois(num_rois, size, size, seed=args.seed)
    out = Path(args.output)
    name = "R-FCN (deformable PS-RoI pooling)" if args.head == "rfcn" else "Faster R-CNN (deformable RoI pooling)"
    print(f"{name} on ResNet-50-DCN {args.variant}{' (tiny)' if args.tiny else ''}: "
          f"{sum(p.numel() for p in net.parameters()) / 1e6:.1f} M parameters; on the example: backbone offsets "
          f"mean |offset| {resnet.offset_stats(net.backbone, images)['mean_abs_offset']:.3f} px, RoI pooling offsets "
          f"mean {M.pool_offset_stats(net, images, rois):.2f} px")
    write_program(net, (images, rois), out, {0: {0: "batch"}, 1: {0: "num_rois"}},
                  f"example inputs images 1x3x{size}x{size}, rois {num_rois}x5", EXPORT_ARGS)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    return main_wrapper(PROG, make, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
