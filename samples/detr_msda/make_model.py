"""Write a detector of the sample to files that dcn-export reads.

    python -m samples.detr_msda.make_model --model dino -o out/detr_msda/dino.pth
    python -m samples.detr_msda.make_model --model rtdetr --format gridsample-onnx -o out/detr_msda/rtdetr_gridsample.onnx

``state-dict`` (default): ``torch.save(state_dict)`` of the detector with the library's own modules
(mmcv's / transformers' deformable attention), exported with ``--factory samples.detr_msda.model:<name>``
(dcn-export swaps the attention for ours). ``gridsample-onnx``: the detector as ``torch.onnx.export``'s
TorchScript-based exporter writes it (opset 16, as RT-DETR's and mmdeploy's tools do: each attention's
core a GridSample per level), for ``dcn-export --fuse-msda``, with the example image beside it
(``images.npy``). Written atomically. Prints the next command.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from dcn_base.atomic import atomic_path
from samples.resnet_dcn.pipeline import check_writable_file, main_wrapper, save_state_dict, set_threads

from . import model as M

PROG = "samples.detr_msda.make_model"
DEFAULT_SIZE = {"dino": (800, 1333), "deformable-detr": (800, 1333), "rtdetr": (640, 640),
                "deformable-detr-hf": (800, 1333)}


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", choices=M.MODELS, default="dino",
                   help="dino / deformable-detr: mmdetection 3.3's config; rtdetr / deformable-detr-hf: transformers' "
                        "classes (default dino)")
    p.add_argument("--tiny", action="store_true", help="CI size: a small backbone, 1 encoder and 2 decoder layers, 30 "
                   "queries, a tenth of the image (at least 64 pixels a side)")
    p.add_argument("--size", default=None, metavar="HxW",
                   help="image size (default 640x640 for rtdetr, else 800x1333)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and the example image (default 0)")


def image_size(args: argparse.Namespace) -> tuple[int, int]:
    """(H, W): --size (or the model's default); with --tiny a tenth of it, multiples of 32, at least 64."""
    if args.size is None:
        h, w = DEFAULT_SIZE[args.model]
    else:
        try:
            h, w = (int(v) for v in args.size.lower().split("x"))
        except ValueError:
            raise ValueError(f"--size {args.size}: expected HxW, e.g. 640x640") from None
    if min(h, w) < 64:
        raise ValueError(f"--size {args.size}: each side must be at least 64 (the networks' output stride is 32-64)")
    if args.tiny:
        h, w = (max(64, v // 10 // 32 * 32) for v in (h, w))
    return h, w


def factory_name(args: argparse.Namespace) -> str:
    return ("tiny_" if args.tiny else "") + args.model.replace("-", "_")


def example_images(h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(seed))


def export_args(args: argparse.Namespace, size: tuple[int, int]) -> list[str]:
    """dcn-export's arguments for the state dict (besides the file, -o and --save-io / --check)."""
    return ["--factory", f"samples.detr_msda.model:{factory_name(args)}", "--input", f"images:1x3x{size[0]}x{size[1]}",
            "--output-names", ",".join(M.OUTPUT_NAMES)]


def write_gridsample_onnx(net: torch.nn.Module, images: torch.Tensor, out: Path) -> Path:
    """The model as torch.onnx.export's TorchScript exporter writes it (opset 16), and images.npy beside it."""
    check_writable_file(out)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        with atomic_path(out) as tmp:
            torch.onnx.export(net, (images,), str(tmp), input_names=["images"], output_names=list(M.OUTPUT_NAMES),
                              opset_version=16, dynamo=False)
    with atomic_path(out.parent / "images.npy") as tmp:
        with open(tmp, "wb") as f:
            np.save(f, images.numpy())
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python -m {PROG}", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p)
    p.add_argument("--format", choices=["state-dict", "gridsample-onnx"], default="state-dict",
                   help="state-dict: torch.save(state_dict) for --factory (default); gridsample-onnx: the ONNX file "
                        "torch.onnx.export writes (GridSample cores) for --fuse-msda")
    p.add_argument("-o", "--output", required=True, help="file to write, e.g. out/detr_msda/dino.pth")
    return p


def make(args: argparse.Namespace) -> int:
    set_threads()
    size = image_size(args)
    out = Path(args.output)
    check_writable_file(out)  # before any work
    net = M.build(args.model, tiny=args.tiny, seed=args.seed)
    print(f"{M.describe(net, args.model, args.tiny)}; image 1x3x{size[0]}x{size[1]}")
    if args.format == "gridsample-onnx":
        write_gridsample_onnx(net, example_images(*size, seed=args.seed), out)
        print(f"wrote {out} (torch.onnx.export, TorchScript-based, opset 16) and {out.parent / 'images.npy'}")
        print(f"next: dcn-export {out} --fuse-msda -o {out.with_name(out.stem + '_fused.onnx')} "
              f"--input images={out.parent / 'images.npy'} --check")
        return 0
    save_state_dict(net, out)
    print(f"wrote {out} (state dict)")
    print(f"next: dcn-export {out} {' '.join(export_args(args, size))} -o {out.with_suffix('.onnx')} --check")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    return main_wrapper(PROG, make, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
