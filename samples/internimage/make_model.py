"""Write the InternImage-T-like (DCNv3) or FlashInternImage-T-like (DCNv4) classifier to a file dcn-export reads.

    python -m samples.internimage.make_model --core dcnv3 -o out/internimage/model.pt2
    python -m samples.internimage.make_model --core dcnv4 --tiny -o out/flash_internimage/model.pt2

A ``torch.export`` program (``.pt2``) with its example input ``images`` [1, 3, SIZE, SIZE] saved and a symbolic
batch axis; random weights (samples/internimage/model.py). Written atomically. Prints the next command.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from samples.resnet_dcn.pipeline import check_writable_file, main_wrapper, set_threads, write_program

from . import model as M

PROG = "samples.internimage.make_model"
EXPORT_ARGS = ["--output-names", ",".join(M.OUTPUT_NAMES)]
DEFAULT_OFFSET_STD = 2.0


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--core", choices=list(M.CORES), default="dcnv3",
                   help="dcnv3: InternImage-T-like (default); dcnv4: FlashInternImage-T-like")
    p.add_argument("--tiny", action="store_true",
                   help="CI size: 16 channels, one block per stage, 10 classes (default input 64x64)")
    p.add_argument("--size", type=int, default=None,
                   help=f"input height = width, a multiple of 32 (default {M.DEFAULT_SIZE}, {M.TINY_SIZE} with --tiny)")
    p.add_argument("--offset-std", type=float, default=DEFAULT_OFFSET_STD,
                   help=f"random offset-branch weights giving offsets of about half this many pixels; 0 = the "
                        f"regular grid of an untrained model (default {DEFAULT_OFFSET_STD})")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and the example input (default 0)")


def size_of(args: argparse.Namespace) -> int:
    size = args.size if args.size is not None else (M.TINY_SIZE if args.tiny else M.DEFAULT_SIZE)
    if size < 32 or size % 32:
        raise ValueError(f"--size {size}: must be a multiple of 32 (the network's output stride)")
    if args.offset_std < 0:
        raise ValueError(f"--offset-std {args.offset_std}: must be >= 0")
    return size


def title(args: argparse.Namespace) -> str:
    return f"{'InternImage-T' if args.core == 'dcnv3' else 'FlashInternImage-T'}-like ({args.core})" + \
        (" tiny" if args.tiny else "")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python -m {PROG}", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p)
    p.add_argument("-o", "--output", required=True, help="model file to write, e.g. out/internimage/model.pt2")
    return p


def make(args: argparse.Namespace) -> int:
    set_threads()
    size = size_of(args)
    check_writable_file(Path(args.output))  # before any work
    net = M.build(args.core, tiny=args.tiny, offset_std=args.offset_std, seed=args.seed)
    images = M.example_images(size, seed=args.seed)
    print(f"{title(args)}: {M.describe(net)}; offsets on the example input: mean |offset| "
          f"{M.offset_stats(net, images):.3f} px")
    write_program(net, (images,), Path(args.output), {0: {0: "batch"}}, f"example input images 1x3x{size}x{size}",
                  EXPORT_ARGS)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    return main_wrapper(PROG, make, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
