"""The TensorRT plugins' enqueue on a CUDA device, without TensorRT (scripts/gpu_check.sh, step 4).

    python benchmarks/bench_plugins_cuda.py [--out DIR] [--iterations 30] [--batches 1 8]

DeformConv2d (the plugin's enqueue through the host harness: deformable im2col + cuBLAS) against
torchvision.ops.deform_conv2d on CUDA and a dense torch.nn.functional.conv2d (cuDNN) of the same
shape, FP32 and FP16, on ResNet-50-DCN's c3 / c4 / c5 3x3 layers (DCNv2) at a 1333x800 input,
batch 1 and 8; DeformPSROIPool on an R-FCN head (300 RoIs, 21 classes, 7x7) against the PyTorch
reference (exporter.ops.reference) on CUDA; MultiScaleDeformableAttention (RT-DETR decoder 640x640
batch 1 / 8, Deformable DETR encoder layer 800x1333) against the grid_sample path, FP32 / FP16, with
the bandwidth floor (--ops msda for these rows alone). Each cell: median of --iterations calls, each timed
with CUDA events after warm-up; ratios are torchvision / ours and ours / dense. Prints a
markdown table and writes it (DIR/bench.md) and the numbers (DIR/report.json). A benchmark:
it asserts nothing about time. Without a CUDA device it exits 2 with one line.
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


def msda_rows(hx, torch, iterations, bandwidth_tbs):
    """MultiScaleDeformableAttention: the plugin's enqueue against the grid_sample formulation (mmcv's /
    Deformable DETR's PyTorch path, written from the contract in exporter.ops) on CUDA; floor = bytes
    that must move (value, locations, weights, output) / measured copy bandwidth."""
    from exporter.ops.multi_scale_deformable_attention.reference import grid_sample_formulation
    from helpers import msda_device as md

    rows = []
    cases = [("RT-DETR decoder 640x640 (300 q, 3 lvl, 8 heads, 4 pts, D 32)", md.RTDETR_640, b, 300)
             for b in (1, 8)]
    cases.append(("Deformable DETR encoder 800x1333 (4 lvl, 22223 q)", md.DDETR_800x1333, 1, 22223))
    for name, levels, N, Lq in cases:
        for dtype in (torch.float32, torch.float16):
            v, s, st, loc, w = md.bench_case(levels, N, Lq, dtype=dtype)
            lay = md.run_msda(hx, v, s, st, loc, w, dtype)
            ours = time_ms_fn(lay.enqueue, iterations)
            shapes = [tuple(x) for x in levels]
            base = time_ms_fn(lambda: grid_sample_formulation(v, shapes, loc.to(dtype), w), iterations)
            floor_ms = md.bytes_moved(v, loc, w, lay.output) / (bandwidth_tbs * 1e12) * 1e3
            rows.append(dict(op="MultiScaleDeformableAttention", layer=name, batch=N,
                             dtype=str(dtype).replace("torch.", ""), ours_ms=ours, grid_sample_ms=base,
                             floor_ms=floor_ms, grid_sample_over_ours=base / ours, ours_over_floor=ours / floor_ms))
            del lay, v, loc, w
            torch.cuda.empty_cache()
    return rows


def copy_bandwidth_tbs(torch) -> float:
    """Device-to-device copy bandwidth (bytes read + written), TB/s: the floor's denominator."""
    a = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    b = torch.empty_like(a)
    ms = time_ms_fn(lambda: b.copy_(a), 10)
    return 2 * a.numel() / (ms * 1e-3) / 1e12


def time_ms_fn(fn, iterations):
    from helpers import trt_device as td

    return td.time_ms(fn, iterations=iterations)


def msda_table(rows, bw) -> str:
    lines = ["", f"MultiScaleDeformableAttention (median ms; floor = bytes / {bw:.2f} TB/s measured copy bandwidth):",
             "", "| layer | batch | dtype | ours | grid_sample path | floor | grid_sample / ours | ours / floor |",
             "|---|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['layer']} | {r['batch']} | {r['dtype']} | {fmt(r['ours_ms'], 4)} | "
                     f"{fmt(r['grid_sample_ms'], 4)} | {fmt(r['floor_ms'], 4)} | {fmt(r['grid_sample_over_ours'], 1)} | "
                     f"{fmt(r['ours_over_floor'], 1)} |")
    return "\n".join(lines) + "\n"


def fmt(v, digits=3):
    return "n/a" if v is None else f"{v:.{digits}f}"


def table(gpu: str, conv, pool, note) -> str:
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
    if note:
        lines += ["", f"torchvision.ops.deform_conv2d n/a: {note}"]
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="bench_plugins_cuda", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="directory for bench.md and report.json")
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--ops", nargs="+", default=["conv", "pool", "msda"], choices=["conv", "pool", "msda"],
                    help="which rows (default all)")
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
    msda, bw = [], 0.0
    if "msda" in args.ops:
        bw = copy_bandwidth_tbs(torch)
        msda = msda_rows(hx, torch, args.iterations, bw)
    text = table(gpu, conv, pool, note) + (msda_table(msda, bw) if msda else "")
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "bench.md").write_text(text)
        (args.out / "report.json").write_text(json.dumps(dict(gpu=gpu, conv=conv, psroi=pool, msda=msda,
                                                              copy_tbs=bw), indent=1))
    torch.cuda.synchronize()
    return 0


if __name__ == "__main__":
    sys.exit(main())
