"""One DeformConv2d layer through the plugin's enqueue, for a profiler (ncu, nsys) to look at.

    ncu --clock-control none -k regex:dcn_ python benchmarks/ncu_conv.py --stage c3 --batch 8 --path fused

Builds the layer in the host harness (tests/helpers/trt_device.py), enqueues it --calls times and
synchronises. ResNet-50-DCN c3 / c4 / c5 at 1333x800, DCNv2, FP16 unless --fp32. Not a test.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]


def main() -> int:
    ap = argparse.ArgumentParser(prog="ncu_conv", description=__doc__.splitlines()[0])
    ap.add_argument("--stage", default="c3", choices=["c3", "c4", "c5"])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--path", default="auto", choices=["auto", "im2col", "fused", "pipelined", "3xtf32"])
    ap.add_argument("--fp32", action="store_true")
    ap.add_argument("--calls", type=int, default=2)
    a = ap.parse_args()
    import torch

    from helpers import trt_device as td

    why = td.cuda_missing()
    if why:
        print(f"ncu_conv: {why}", file=sys.stderr)
        return 2
    hx = td.DeviceHarness(td.device_harness_path())
    case = td.resnet_case(a.stage, batch=a.batch, dtype=torch.float32)
    with td.conv_path(a.path):
        lay = td.run_plugin(hx, td.CONV_OP, f"ncu.{a.stage}", case.attrs(), td.conv_inputs(case, empty_bias=True),
                            torch.float32 if a.fp32 else torch.float16, poison=False)
        for _ in range(a.calls):
            assert lay.enqueue() == 0, hx.log()
    torch.cuda.synchronize()
    return 0


if __name__ == "__main__":
    sys.exit(main())
