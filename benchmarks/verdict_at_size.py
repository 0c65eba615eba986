"""The verdict at detection size: ResNet-50-DCN (deformable c3-c5, DCNv1 / DCNv2, trained-like
initialisation: calibrated BatchNorm, residual gain 0.5, offsets of ~0.1 px) at 1x3x800x1333,
its c5 feature map as the output.

For each variant: ``dcn-export --check`` (the API) and ``dcn-compare`` on the saved I/O, then the
same model with one deformable conv's weight off by 1% (``layer3.0.conv2.weight * 1.01``), exported
without the check and compared against the original's saved I/O: it must FAIL. Prints the
numbers of ``dcn_base.tolerance.passes`` (errors in tolerance units) -- a measurement, not a test:
slow (minutes per variant on 2 cores).

``--rfcn``: instead, the R-FCN sample (tiny backbone, the full head: 21 classes, 7x7 bins) exported
with ``--fp16`` at 1x3x800x1333 with 300 RoIs beyond 1024 px, checked against float64; then the same
ONNX model fed the RoIs rounded to float16 (what a float16 rois input did), judged the same way.

    python benchmarks/verdict_at_size.py [--variant dcnv1 dcnv2] [--size 800x1333] [--out out/verdict] [--rfcn]
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import exporter  # noqa: E402
from samples.resnet_dcn import model as M  # noqa: E402
from trt_runtime.cli import compare_main  # noqa: E402


class C5(nn.Module):
    """The backbone up to c5 (layer4): what a detector's neck consumes."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        n = self.net
        x = n.maxpool(n.relu(n.bn1(n.conv1(images))))
        return n.layer4(n.layer3(n.layer2(n.layer1(x))))


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--variant", nargs="+", default=["dcnv1", "dcnv2"])
    p.add_argument("--size", default="800x1333")
    p.add_argument("--out", default="out/verdict")
    p.add_argument("--rfcn", action="store_true", help="the FP16 R-FCN head with float32 vs float16 RoIs")
    args = p.parse_args()
    h, w = (int(v) for v in args.size.split("x"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    x = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(0))
    if args.rfcn:
        return rfcn(x, out)
    for variant in args.variant:
        model = C5(M.build(variant, offset_std=0.1)).eval()
        t = time.perf_counter()
        res = exporter.export(model, (x,), out / f"{variant}.onnx", input_names=["images"], output_names=["c5"],
                              save_io=out / f"{variant}.io", check=False)
        print(f"[{variant}] export ({time.perf_counter() - t:.0f} s): {res.check.summary()}", flush=True)
        rc = compare_main([str(out / f"{variant}.io"), str(out / f"{variant}.onnx")])
        print(f"[{variant}] dcn-compare exit {rc}", flush=True)
        twin = copy.deepcopy(model)
        with torch.no_grad():
            twin.net.layer3[0].conv2.weight.mul_(1.01)
        exporter.export(twin, (x,), out / f"{variant}.twin.onnx", input_names=["images"], output_names=["c5"],
                        verify=False)
        rc = compare_main([str(out / f"{variant}.io"), str(out / f"{variant}.twin.onnx")])
        print(f"[{variant}] 1%-perturbed twin: dcn-compare exit {rc} (1 = FAIL expected)", flush=True)
    return 0


def rfcn(x: torch.Tensor, out: Path) -> int:
    import numpy as np

    from exporter import verify
    from dcn_base.model_io import load_outputs
    from samples.rfcn_dpsroi import model as R

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from helpers import user_path_models as upm

    h, w = x.shape[-2:]
    model = R.build("rfcn", tiny=True, offset_std=0.1)
    rois = upm.far_rois(300, 1, h, w)
    res = exporter.export(model, (x, rois), out / "rfcn16.onnx", input_names=["images", "rois"],
                          output_names=["cls_score", "bbox_pred"], fp16=True, save_io=out / "rfcn16.io")
    print(f"[rfcn fp16, float32 rois] {res.check.summary()}", flush=True)
    results = load_outputs(out / "rfcn16.io" / "outputs.json")
    truth = [results["pytorch"][0][n] for n in res.output_names]
    own = [results["pytorch-own"][0][n] for n in res.output_names]
    runner = verify.make_runner(res.model)
    feed = {"images": x.numpy(), "rois": rois.half().float().numpy()}
    rep = verify.check_outputs(runner, feed, res.output_names, truth, "float16", "PyTorch float64", own=own)
    print(f"[rfcn fp16, rois rounded to float16] {rep.summary()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
