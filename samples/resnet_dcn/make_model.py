"""Write the ResNet-DCN sample model to a file that dcn-export reads.

    python -m samples.resnet_dcn.make_model --variant dcnv2 -o out/resnet_dcn/model.pt2
    python -m samples.resnet_dcn.make_model --variant dcnv1 --tiny --offset-std 0.05 -o out/sample/model.pt2

Default format: a ``torch.export`` program (``.pt2``) with its example input (1x3xSIZExSIZE) saved
and a symbolic batch axis, so ``dcn-export model.pt2 -o model.onnx`` needs no ``--input`` and
``--dynamic images:0=batch`` works. ``--format state-dict`` writes ``torch.save(state_dict)``
instead, exported with ``--factory samples.resnet_dcn.model:<name>``. Written atomically
(temp file + rename); the parent directory is created. Prints the next command.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from . import model as M
from .pipeline import check_writable_file, main_wrapper, save_state_dict, set_threads, write_program

PROG = "samples.resnet_dcn.make_model"
DEFAULT_OFFSET_STD = 0.1  # full size
TINY_OFFSET_STD = 0.5


VARIANT_HELP = ("dcnv1: DeformConv2dPack; dcnv2: ModulatedDeformConv2dPack; dcnv2-dg4: DCNv2, "
                "deform_groups 4 (default dcnv2)")


def add_model_args(p: argparse.ArgumentParser, *, variant_help: str = VARIANT_HELP,
                   tiny_help: str = "CI size: one bottleneck per stage, a quarter of the width (default input 64x64)"
                   ) -> None:
    """The backbone options every sample's make_model shares (--variant, --tiny, --size, --offset-std, --seed)."""
    p.add_argument("--variant", choices=list(M.VARIANTS), default="dcnv2", help=variant_help)
    p.add_argument("--tiny", action="store_true", help=tiny_help)
    p.add_argument("--size", type=int, default=None,
                   help=f"example input height = width (default {M.DEFAULT_SIZE}, {M.TINY_SIZE} with --tiny)")
    p.add_argument("--offset-std", type=float, default=None,
                   help="random offset-branch weights giving offsets of about this many pixels, so the deformable "
                        f"sampling is exercised; 0 = zero-initialised as before training (default {TINY_OFFSET_STD} "
                        f"with --tiny, else {DEFAULT_OFFSET_STD}: through the full depth, larger random offsets amplify "
                        "float32 rounding -- PyTorch's own float32 included -- towards the float32 tolerance)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and the example inputs (default 0)")


def size_of(args: argparse.Namespace) -> int:
    """The input size; also resolves and checks --offset-std (its default depends on --tiny)."""
    size = args.size if args.size is not None else (M.TINY_SIZE if args.tiny else M.DEFAULT_SIZE)
    if size < 32:
        raise ValueError(f"--size {size}: must be at least 32 (the network's output stride)")
    if args.offset_std is None:
        args.offset_std = TINY_OFFSET_STD if args.tiny else DEFAULT_OFFSET_STD
    if args.offset_std < 0:
        raise ValueError(f"--offset-std {args.offset_std}: must be >= 0")
    return size


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python -m {PROG}", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p)
    p.add_argument("--format", choices=["pt2", "state-dict"], default="pt2",
                   help="pt2: torch.export program (default); state-dict: torch.save(state_dict) for --factory")
    p.add_argument("-o", "--output", required=True, help="model file to write, e.g. out/resnet_dcn/model.pt2")
    return p


def make(args: argparse.Namespace) -> int:
    set_threads()
    size = size_of(args)
    check_writable_file(Path(args.output))  # before any work
    net = M.build(args.variant, tiny=args.tiny, offset_std=args.offset_std, seed=args.seed)
    images = M.example_images(size, seed=args.seed)
    out = Path(args.output)
    print(f"ResNet-50-DCN c3-c5 {args.variant}{' (tiny)' if args.tiny else ''}: {M.describe(net)}; "
          f"offsets on the example input: mean |offset| {M.offset_stats(net, images)['mean_abs_offset']:.3f} px")
    if args.format == "pt2":
        write_program(net, (images,), out, {0: {0: "batch"}}, f"example input images 1x3x{size}x{size}")
    else:
        save_state_dict(net, out)
        factory = f"samples.resnet_dcn.model:{M.factory_name(args.variant, args.tiny)}"
        print(f"wrote {out} (state dict)")
        print(f"next: dcn-export {out} --factory {factory} -o {out.with_suffix('.onnx')} "
              f"--input images:1x3x{size}x{size} --check")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    return main_wrapper(PROG, make, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
