"""The TensorRT plugins' enqueue on a CUDA device, without TensorRT (scripts/gpu_check.sh, step 4).

    python benchmarks/bench_plugins_cuda.py [--out DIR] [--iterations 30] [--batches 1 8]

DeformConv2d (the plugin's enqueue through the host harness: deformable im2col + cuBLAS) against
torchvision.ops.deform_conv2d on CUDA and a dense torch.nn.functional.conv2d (cuDNN) of the same
shape, FP32 and FP16, on ResNet-50-DCN's c3 / c4 / c5 3x3 layers (DCNv2) at a 1333x800 input,
batch 1 and 8; DeformPSROIPool on an R-FCN head (300 RoIs, 21 classes, 7x7) against the PyTorch
reference (exporter.ops.reference) on CUDA. Each cell: median of --iterations calls, each timed
with CUDA events after warm-up; ratios are torchvision / ours and ours / dense. Prints a
markdown table and writes it (DIR/bench.md) and the numbers (DIR/report.json). A benchmark:
it asserts nothing about time. Without a CUDA device it exits 2 with one line.
DCNv3 / DCNv4 (--ops dcn): the plugins' enqueue against the grid_sample formulation on InternImage-T layers
(stage 1 at 224x224, batch 1 and 32; stage 2 at 512x512, batch 8), with the bytes-that-must-move floor.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]


def conv_rows(hx, td, torch, batches, iterations):
    import torch.nn.functional as F

    tv_missing = None
    try:
        from torchvision.ops import deform_conv2d as tv_deform_conv2d
    except Exception as err:  # noqa: BLE001
        tv_deform_conv2d, tv_missing = None, f"{type(err).__name__}: {err}"
    rows = []
    for stage, C, H, W in td.RESNET_LAYERS:
        for batch in batches:
            for dtype in (torch.float32, torch.float16):
                case = td.resnet_case(stage, batch=batch, dtype=torch.float32)
                lay = td.run_plugin(hx, td.CONV_OP, f"bench.{stage}", case.attrs(), td.conv_inputs(case, empty_bias=True),
                                    dtype, poison=False)
                x, w, off, _, mask = lay.inputs
                ours = td.time_ms(lay.enqueue, iterations=iterations)
                tv = None
                if tv_deform_conv2d is not None:
                    try:
                        tv = td.time_ms(lambda: tv_deform_conv2d(x, off, w, None, stride=1, padding=1, mask=mask),
                                        iterations=iterations)
                    except RuntimeError as err:  # e.g. a dtype torchvision's CUDA kernel lacks
                        tv_missing = f"{dtype}: {str(err).splitlines()[0]}"
                dense = td.time_ms(lambda: F.conv2d(x, w, None, 1, 1), iterations=iterations)
                flops = 2.0 * batch * C * C * 9 * H * W
                rows.append(dict(op="DeformConv2d", layer=f"{stage} {C}ch {H}x{W}", batch=batch,
                                 dtype=str(dtype).replace("torch.", ""), ours_ms=ours, torchvision_ms=tv,
                                 dense_cudnn_ms=dense, ours_tflops=flops / ours / 1e9,
                                 torchvision_over_ours=None if tv is None else tv / ours, ours_over_dense=ours / dense))
                del lay, x, w, off, mask
                torch.cuda.empty_cache()
    return rows, tv_missing


def pool_rows(hx, td, torch, iterations):
    from exporter.ops.reference import deform_psroi_pool

    rows = []
    for dtype in (torch.float32, torch.float16):
        case = td.rfcn_case(300, dtype=torch.float32)
        lay = td.run_plugin(hx, td.POOL_OP, "bench.psroi", case.attrs, td.pool_inputs(case), dtype,
                            float32_at=(1,), poison=False)
        ours = td.time_ms(lay.enqueue, iterations=iterations)
        data, rois, trans = (t.float() for t in lay.inputs)
        a = case.attrs
        ref = td.time_ms(lambda: deform_psroi_pool(
            data, rois, trans, spatial_scale=a["spatial_scale"], output_dim=a["output_dim"], group_size=a["group_size"],
            pooled_size=a["pooled_size"], part_size=a["part_size"], sample_per_part=a["sample_per_part"],
            trans_std=a["trans_std"]), iterations=max(5, iterations // 3))
        rows.append(dict(op="DeformPSROIPool", layer="R-FCN head 1029ch 50x84, 300 RoIs", batch=1,
                         dtype=str(dtype).replace("torch.", ""), ours_ms=ours, torch_reference_ms=ref,
                         reference_over_ours=ref / ours))
    return rows


def dcn_rows(hx, td, torch, iterations):
    """DCNv3 / DCNv4 plugin enqueue vs the grid_sample formulation InternImage users run without the CUDA
    op (tests/helpers/dcn_grid_sample.py) on CUDA, on InternImage-T layers; the floor is the bytes that
    must move (X, offsets, masks, Y) at 4.8 TB/s (H200 HBM3e)."""
    from helpers.dcn_grid_sample import dcnv3_grid_sample, dcnv4_grid_sample
    from helpers.dcn_sweep import internimage_case, softmaxed

    rows = []
    for stage, size, batch in ((1, 224, 1), (1, 224, 32), (2, 512, 8)):
        for op in ("DCNv3", "DCNv4"):
            for dtype in (torch.float32, torch.float16):
                case = internimage_case(stage, size, batch, dtype=torch.float32)
                ins = ([case.x, case.offset, softmaxed(case.mask, case.group)] if op == "DCNv3"
                       else [case.x, case.offset_mask])
                lay = td.run_plugin(hx, op, f"bench.{op}", case.attrs(), ins, dtype, poison=False)
                ours = td.time_ms(lay.enqueue, iterations=iterations)
                base_fn = dcnv3_grid_sample if op == "DCNv3" else dcnv4_grid_sample
                base = td.time_ms(lambda: base_fn(*lay.inputs, **case.grid_kwargs()), iterations=iterations)
                moved = sum(t.numel() * t.element_size() for t in lay.inputs) + \
                    lay.output.numel() * lay.output.element_size()
                floor_ms = moved / 4.8e12 * 1e3
                layer = f"InternImage-T stage {stage} @{size}: {case.H}x{case.W}, {case.C} ch, {case.group} groups"
                rows.append(dict(op=op, layer=layer, batch=batch, dtype=str(dtype).replace("torch.", ""),
                                 ours_ms=ours, grid_sample_ms=base, grid_sample_over_ours=base / ours,
                                 floor_ms=floor_ms, ours_over_floor=ours / floor_ms))
                del lay
                torch.cuda.empty_cache()
    return rows


def fmt(v, digits=3):
    return "n/a" if v is None else f"{v:.{digits}f}"


def table(gpu: str, conv, pool, note, dcn=()) -> str:
    lines = [f"Plugin enqueue on {gpu} (median ms, CUDA events; torchvision / ours > 1: ours faster; "
             "ours / dense: the price of deformation over cuDNN):", "",
             "| layer | batch | dtype | ours | torchvision | dense cuDNN | torchvision / ours | ours / dense | ours TFLOP/s |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in conv:
        lines.append(f"| {r['layer']} | {r['batch']} | {r['dtype']} | {fmt(r['ours_ms'])} | {fmt(r['torchvision_ms'])} "
                     f"| {fmt(r['dense_cudnn_ms'])} | {fmt(r['torchvision_over_ours'], 2)} | {fmt(r['ours_over_dense'], 2)} "
                     f"| {fmt(r['ours_tflops'], 1)} |")
    lines += ["", "| DeformPSROIPool | dtype | ours | PyTorch reference (CUDA, float32) | reference / ours |",
              "|---|---|---:|---:|---:|"]
    for r in pool:
        lines.append(f"| {r['layer']} | {r['dtype']} | {fmt(r['ours_ms'])} | {fmt(r['torch_reference_ms'])} "
                     f"| {fmt(r['reference_over_ours'], 1)} |")
    if dcn:
        lines += ["", "| DCNv3 / DCNv4 layer | op | batch | dtype | ours | grid_sample formulation "
                      "| grid_sample / ours | bytes floor | ours / floor |", "|---|---|---:|---|---:|---:|---:|---:|---:|"]
        for r in dcn:
            lines.append(f"| {r['layer']} | {r['op']} | {r['batch']} | {r['dtype']} | {fmt(r['ours_ms'], 4)} "
                         f"| {fmt(r['grid_sample_ms'])} | {fmt(r['grid_sample_over_ours'], 1)} "
                         f"| {fmt(r['floor_ms'], 4)} | {fmt(r['ours_over_floor'], 1)} |")
    if note:
        lines += ["", f"torchvision.ops.deform_conv2d n/a: {note}"]
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="bench_plugins_cuda", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="directory for bench.md and report.json")
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--ops", nargs="+", choices=["conv", "pool", "dcn"], default=["conv", "pool", "dcn"],
                    help="which rows: DeformConv2d, DeformPSROIPool, DCNv3 / DCNv4 (default all)")
    args = ap.parse_args(argv)
    import torch

    from helpers import trt_device as td

    why = td.cuda_missing()
    if why:
        print(f"bench_plugins_cuda: {why}", file=sys.stderr)
        return 2
    hx = td.DeviceHarness(td.device_harness_path())
    props = torch.cuda.get_device_properties(0)
    gpu = f"{props.name} (sm_{props.major}{props.minor}, torch {torch.__version__})"
    conv, note = conv_rows(hx, td, torch, args.batches, args.iterations) if "conv" in args.ops else ([], None)
    pool = pool_rows(hx, td, torch, args.iterations) if "pool" in args.ops else []
    dcn = dcn_rows(hx, td, torch, args.iterations) if "dcn" in args.ops else []
    text = table(gpu, conv, pool, note, dcn)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "bench.md").write_text(text)
        (args.out / "report.json").write_text(json.dumps(dict(gpu=gpu, conv=conv, psroi=pool, dcn=dcn), indent=1))
    torch.cuda.synchronize()
    return 0


if __name__ == "__main__":
    sys.exit(main())
