"""The TensorRT plugins' enqueue on a CUDA device, without TensorRT (scripts/gpu_check.sh, step 4).

    python benchmarks/bench_plugins_cuda.py [--out DIR] [--iterations 30] [--batches 1 8] [--quick]
                                            [--ops conv roi psroi msda dcn]

DeformConv2d (the plugin's enqueue through the host harness) on ResNet-50-DCN's c3 / c4 / c5 3x3
layers (DCNv2, no bias) at a 1333x800 input, batch 1 and 8, FP32 and FP16, on each of its paths:
im2col (coordinates-once deformable im2col + cuBLAS) and, FP16, the fused implicit-GEMM kernels
(forced; the one-stage kernel and the two-stage "pipelined" one) -- against
torchvision.ops.deform_conv2d on CUDA and a dense torch.nn.functional.conv2d (cuDNN) of the same
shape. "plan" is the path the plugin takes by default (deform_conv2d_plan.h choose_path). Per row:
the split of GPU time per kernel (torch.profiler) and the sampling kernel's achieved GB/s (bytes it
must move: columns written, X, offset and mask read once). Then the column-buffer cap measured on c3
batch 8 (im2col path), DeformRoIPool on mmdet's dpool head against
torchvision.ops.roi_align(aligned=True), and DeformPSROIPool on an R-FCN head against the PyTorch
reference, and MultiScaleDeformableAttention (RT-DETR decoder 640x640 batch 1 / 8, Deformable DETR
encoder layer 800x1333) against the grid_sample path (mmcv's / Deformable DETR's PyTorch
formulation), FP32 / FP16, with the bandwidth floor. Each cell: median of --iterations calls timed
with CUDA events after warm-up. Then a verdict per DeformConv2d row against issue 20's targets (for
the default path and the fastest one measured) and, for each switch that is off until measured
(pipelined, 3xtf32), whether it is faster where it would run. Prints markdown tables and writes them (DIR/bench.md) with the
numbers (DIR/report.json). A benchmark: it asserts nothing about time. Without a CUDA device it
exits 2 with one line.
DCNv3 / DCNv4 (--ops dcn): the plugins' enqueue against the grid_sample formulation on InternImage-T layers
(stage 1 at 224x224, batch 1 and 32; stage 2 at 512x512, batch 8), with the bytes-that-must-move floor.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "benchmarks")]
from dcn_base.errors import describe  # noqa: E402  (the repository's root on the path first)
OPS = ("conv", "roi", "psroi", "msda", "dcn")
# DeformConv2d: im2col, the one-stage and the two-stage fused kernel (FP16), im2col with FP32's GEMM as 3xTF32
CONV_PATHS = ("im2col", "fused", "pipelined", "3xtf32", "nhwc")
FP16_PATHS, FP32_PATHS = ("im2col", "fused", "pipelined", "nhwc"), ("im2col", "3xtf32")


def paths_of(dtype: str) -> tuple[str, ...]:
    """The DeformConv2d paths measured in a dtype ("float16" or "float32")."""
    return FP16_PATHS if dtype == "float16" else FP32_PATHS
# Issue 20's DeformConv2d targets, printed as a verdict per row (a benchmark: nothing asserts on time):
# torchvision / ours at least TV_TARGET[dtype]; FP16 ours / dense at most DENSE_TARGET_FUSED where the plan
# takes the fused path, else DENSE_TARGET_B8 from batch 8.
TV_TARGET = {"float16": 2.0, "float32": 1.3}
DENSE_TARGET_B8, DENSE_TARGET_FUSED = 3.0, 1.5
# the switches that are off until measured: path -> (the path it would replace, the default to flip); a switch is
# worth flipping where it is faster by SWITCH_MARGIN on every row it would change (one median each: noise)
SWITCHES = {"pipelined": ("fused", "kPipelinedDefault"), "3xtf32": ("im2col", "k3xTf32Default"),
            "nhwc": ("im2col", "kNhwcDefault")}
# The rows a switch would change: the pipelined kernel where the plan takes the fused path, the channels-last
# im2col where it takes the im2col path (3xtf32: every FP32 row, all im2col).
SWITCH_PLAN = {"pipelined": "fused", "nhwc": "im2col"}
SWITCH_MARGIN = 1.03


def _tv_deform_conv2d():
    try:
        from torchvision.ops import deform_conv2d
        return deform_conv2d, None
    except Exception as err:  # noqa: BLE001
        return None, f"{type(err).__name__}: {err}"


def conv_paths(hx, td, torch, row, paths, iterations):
    """Times each DeformConv2d path of `paths` on the row's layer (its time, its per-kernel split, the
    sampling kernel's GB/s); a path that fails is recorded in the row ("<path>_error") and the others go on."""
    from cuda_profile import kernel_split

    stage, C, H, W, batch = row["stage"], row["C"], row["H"], row["W"], row["batch"]
    dtype = getattr(torch, row["dtype"])
    case = td.resnet_case(stage, batch=batch, dtype=torch.float32)
    es = 4 if dtype == torch.float32 else 2
    inputs = None
    for path in paths:
        try:
            with td.conv_path(path):
                lay = td.run_plugin(hx, td.CONV_OP, f"bench.{stage}", case.attrs(),
                                    td.conv_inputs(case, empty_bias=True), dtype, poison=False)
                row[f"{path}_ms"] = td.time_ms(lay.enqueue, iterations=iterations)
                split = kernel_split(lay.enqueue)
                row[f"{path}_split"] = split
        except Exception as err:  # noqa: BLE001  (recorded, printed in the table; the benchmark exits 1)
            row[f"{path}_error"] = describe(err, 300)
            continue
        sampler = split.get({"fused": "fused", "pipelined": "fused", "nhwc": "im2col-nhwc"}.get(path, "im2col"), 0.0)
        # column copies the sampling writes (3xtf32: hi and lo)
        written = {"im2col": 1, "3xtf32": 2, "nhwc": 1}.get(path, 0)
        moved = es * (batch * C * 9 * H * W * written + batch * C * H * W + batch * 27 * H * W)
        row[f"{path}_sampling_gbps"] = moved / (sampler * 1e-3) / 1e9 if sampler else None
        inputs = lay.inputs
        del lay
    return case, inputs


def conv_row(hx, td, torch, stage, C, H, W, batch, dtype, iterations, tv_fn):
    """One layer × batch × dtype on the paths that run by default (im2col, fused); the switches' paths
    (pipelined, 3xtf32: never yet run on a GPU) are added last by conv_paths over the measured rows."""
    import torch.nn.functional as F
    from cuda_profile import kernel_split

    row = dict(op="DeformConv2d", layer=f"{stage} {C}ch {H}x{W}", batch=batch, dtype=str(dtype).replace("torch.", ""),
               stage=stage, C=C, H=H, W=W)
    paths = [p for p in paths_of(row["dtype"]) if p not in SWITCHES]
    case, inputs = conv_paths(hx, td, torch, row, paths, iterations)
    if inputs is None:
        raise RuntimeError(f"{row['layer']} batch {batch} {row['dtype']}: no path ran ("
                           + "; ".join(f"{p}: {row.get(f'{p}_error')}" for p in paths) + ")")
    x, w, off, _, mask = inputs
    try:  # which path the plugin takes by default (its kernels' names)
        with td.conv_path("auto"):
            lay = td.run_plugin(hx, td.CONV_OP, f"bench.{stage}", case.attrs(),
                                td.conv_inputs(case, empty_bias=True), dtype, poison=False)
            plan = kernel_split(lay.enqueue, calls=1)
            row["plan"] = "fused" if "fused" in plan else "nhwc" if "im2col-nhwc" in plan else "im2col"
            del lay
    except Exception as err:  # noqa: BLE001  (recorded; the row keeps its measured paths)
        row["plan"], row["plan_error"] = "failed", describe(err, 300)
    ours = row["ours_ms"] = row.get(f"{row['plan']}_ms")  # None where the plan's path failed (its _error)
    row["torchvision_ms"] = None
    if tv_fn is not None:
        try:
            row["torchvision_ms"] = td.time_ms(lambda: tv_fn(x, off, w, None, stride=1, padding=1, mask=mask),
                                               iterations=iterations)
        except RuntimeError:  # a dtype torchvision's CUDA kernel lacks
            pass
    row["dense_cudnn_ms"] = td.time_ms(lambda: F.conv2d(x, w, None, 1, 1), iterations=iterations)
    row["ours_tflops"] = None if ours is None else 2.0 * batch * C * C * 9 * H * W / ours / 1e9
    tv = row["torchvision_ms"]
    row["torchvision_over_ours"] = None if tv is None or ours is None else tv / ours
    row["ours_over_dense"] = None if ours is None else ours / row["dense_cudnn_ms"]
    torch.cuda.empty_cache()
    return row


# The caps measured (MiB); the plan's cap (kColumnsCapBytes in deform_conv2d_plan.h) is the largest.
CAPS_MB = (16, 48, 128, 256)


def cap_rows(hx, td, torch, iterations):
    """The column buffer's cap (DCN_DEFORM_CONV_COLUMNS_MB) on c3 batch 8, im2col path."""
    rows = []
    _, C, H, W = td.RESNET_LAYERS[0]
    case = td.resnet_case("c3", batch=8, dtype=torch.float32)
    for dtype in (torch.float16, torch.float32):
        for mb in CAPS_MB:
            os.environ["DCN_DEFORM_CONV_COLUMNS_MB"] = str(mb)
            try:
                with td.conv_path("im2col"):
                    lay = td.run_plugin(hx, td.CONV_OP, "bench.cap", case.attrs(), td.conv_inputs(case, empty_bias=True),
                                        dtype, poison=False)
                    ms = td.time_ms(lay.enqueue, iterations=iterations)
                    del lay
            finally:
                os.environ.pop("DCN_DEFORM_CONV_COLUMNS_MB", None)
            rows.append(dict(dtype=str(dtype).replace("torch.", ""), cap_mb=mb, ms=ms))
    torch.cuda.empty_cache()
    return rows


def roi_rows(hx, td, torch, iterations):
    from cuda_profile import kernel_split
    try:
        from torchvision.ops import roi_align
    except Exception:  # noqa: BLE001
        roi_align = None
    rows = []
    for offsets in (False, True):
        for dtype in (torch.float32, torch.float16):
            case = td.mmdet_roi_case(512, sampling_ratio=2, offsets=offsets, dtype=torch.float32)
            lay = td.run_plugin(hx, td.ROI_OP, "bench.roi", case.attrs, td.roi_inputs(case), dtype, float32_at=(1,),
                                poison=False)
            ours = td.time_ms(lay.enqueue, iterations=iterations)
            split = kernel_split(lay.enqueue)
            ref = None
            if roi_align is not None:
                data, rois = lay.inputs[0], lay.inputs[1]
                boxes = rois.to(data.dtype)
                ref = td.time_ms(lambda: roi_align(data, boxes, (7, 7), 1 / 16, 2, aligned=True), iterations=iterations)
            out_bytes = lay.output.numel() * lay.output.element_size()
            data_bytes = lay.inputs[0].numel() * lay.inputs[0].element_size()
            k = split.get("roi-pool", 0.0)
            rows.append(dict(op="DeformRoIPool", layer="mmdet dpool 256ch 50x84, 512 RoIs, 7x7, sampling 2",
                             offsets=offsets, dtype=str(dtype).replace("torch.", ""), ours_ms=ours, roi_align_ms=ref,
                             ours_over_roi_align=None if ref is None else ours / ref, split=split,
                             sampling_gbps=(out_bytes + data_bytes) / (k * 1e-3) / 1e9 if k else None))
            del lay
    return rows


def psroi_rows(hx, td, torch, iterations):
    from exporter.ops.deform_psroi_pool.reference import deform_psroi_pool

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


def dcn_rows(hx, td, torch, iterations, bandwidth_tbs):
    """DCNv3 / DCNv4 plugin enqueue vs the grid_sample formulation InternImage users run without the CUDA
    op (tests/helpers/dcn_grid_sample.py) on CUDA, on InternImage-T layers; the floor is the bytes that
    must move (X, offsets, masks, Y) at this card's measured copy bandwidth."""
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
                floor_ms = moved / (bandwidth_tbs * 1e12) * 1e3
                layer = f"InternImage-T stage {stage} @{size}: {case.H}x{case.W}, {case.C} ch, {case.group} groups"
                rows.append(dict(op=op, layer=layer, batch=batch, dtype=str(dtype).replace("torch.", ""),
                                 ours_ms=ours, grid_sample_ms=base, grid_sample_over_ours=base / ours,
                                 floor_ms=floor_ms, ours_over_floor=ours / floor_ms))
                del lay
                torch.cuda.empty_cache()
    return rows


def msda_rows(hx, torch, iterations, bandwidth_tbs):
    """MultiScaleDeformableAttention: the plugin's enqueue against the grid_sample formulation (mmcv's /
    Deformable DETR's PyTorch path, written from the contract in exporter.ops) on CUDA; floor = bytes
    that must move (value, locations, weights, output) / measured copy bandwidth."""
    from exporter.ops.multi_scale_deformable_attention import grid_sample_formulation
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
            os.environ["DCN_MSDA_SPLIT"] = "1"  # the plain kernel (the launcher reads it at every enqueue)
            try:
                plain = time_ms_fn(lay.enqueue, iterations)
            finally:
                del os.environ["DCN_MSDA_SPLIT"]
            shapes = [tuple(x) for x in levels]
            base = time_ms_fn(lambda: grid_sample_formulation(v, shapes, loc.to(dtype), w), iterations)
            floor_ms = md.bytes_moved(v, loc, w, lay.output) / (bandwidth_tbs * 1e12) * 1e3
            rows.append(dict(op="MultiScaleDeformableAttention", layer=name, batch=N,
                             dtype=str(dtype).replace("torch.", ""), ours_ms=ours, plain_kernel_ms=plain,
                             grid_sample_ms=base,
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
             "ours: the launcher's choice (the split kernel where few groups); plain: DCN_MSDA_SPLIT=1", "",
             "| layer | batch | dtype | ours | plain | grid_sample path | floor | grid_sample / ours | ours / floor |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['layer']} | {r['batch']} | {r['dtype']} | {fmt(r['ours_ms'], 4)} | {fmt(r['plain_kernel_ms'], 4)} | "
                     f"{fmt(r['grid_sample_ms'], 4)} | {fmt(r['floor_ms'], 4)} | {fmt(r['grid_sample_over_ours'], 1)} | "
                     f"{fmt(r['ours_over_floor'], 1)} |")
    return "\n".join(lines) + "\n"


def fmt(v, digits=3):
    return "n/a" if v is None else f"{v:.{digits}f}"


def table(gpu: str, conv, caps, roi, pool, notes, dcn=(), bw=0.0) -> str:
    from cuda_profile import fmt_split

    L = [f"Plugin enqueue on {gpu} (median ms, CUDA events). im2col / fused: our two DeformConv2d paths "
         "(fused: the one-stage kernel; pipelined: the two-stage one, DCN_DEFORM_CONV_FUSED_KERNEL=pipelined; "
         "3xtf32: FP32 im2col with the GEMM as three TF32 GEMMs, DCN_DEFORM_CONV_FP32_GEMM=3xtf32; "
         "nhwc: FP16 im2col from a channels-last copy into tap-major columns, one GEMM, DCN_DEFORM_CONV_IM2COL=nhwc); "
         "plan: the path the plugin takes by default; ratios use the plan's path "
         "(torchvision / ours > 1: ours faster; ours / dense: the price of deformation over cuDNN):", "",
         "| layer | batch | dtype | im2col | fused | pipelined | 3xtf32 | nhwc | plan | torchvision | dense cuDNN "
         "| torchvision / ours | ours / dense | ours TFLOP/s |",
         "|---|---:|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|"]
    for r in conv:
        cells = [r["layer"], r["batch"], r["dtype"], *(fmt(r.get(f"{p}_ms")) for p in CONV_PATHS), r["plan"],
                 fmt(r["torchvision_ms"]), fmt(r["dense_cudnn_ms"]), fmt(r["torchvision_over_ours"], 2),
                 fmt(r["ours_over_dense"], 2), fmt(r["ours_tflops"], 1)]
        L.append("| " + " | ".join(map(str, cells)) + " |")
    L += ["", "GPU time per kernel (ms per call) and the sampling kernel's GB/s (bytes it must move / its time):", "",
          "| layer | batch | dtype | path | split | sampling GB/s |", "|---|---:|---|---|---|---:|"]
    for r in conv:
        for path in CONV_PATHS:
            if f"{path}_split" in r:
                L.append(f"| {r['layer']} | {r['batch']} | {r['dtype']} | {path} | {fmt_split(r[f'{path}_split'])} "
                         f"| {fmt(r.get(f'{path}_sampling_gbps'), 0)} |")
    L += ["", "Column-buffer cap (DCN_DEFORM_CONV_COLUMNS_MB), c3 batch 8, im2col path:", "",
          "| dtype | cap MiB | ms |", "|---|---:|---:|"]
    L += [f"| {r['dtype']} | {r['cap_mb']} | {fmt(r['ms'])} |" for r in caps]
    if caps:
        L += ["", cap_verdict(caps)]
    L += ["", "| DeformRoIPool | offsets | dtype | ours | roi_align(aligned=True) | ours / roi_align | split | GB/s |",
          "|---|---|---|---:|---:|---:|---|---:|"]
    for r in roi:
        L.append(f"| {r['layer']} | {'yes' if r['offsets'] else 'zero'} | {r['dtype']} | {fmt(r['ours_ms'])} "
                 f"| {fmt(r['roi_align_ms'])} | {fmt(r['ours_over_roi_align'], 2)} | {fmt_split(r['split'])} "
                 f"| {fmt(r['sampling_gbps'], 0)} |")
    L += ["", "| DeformPSROIPool | dtype | ours | PyTorch reference (CUDA, float32) | reference / ours |",
          "|---|---|---:|---:|---:|"]
    for r in pool:
        L.append(f"| {r['layer']} | {r['dtype']} | {fmt(r['ours_ms'])} | {fmt(r['torch_reference_ms'])} "
                 f"| {fmt(r['reference_over_ours'], 1)} |")
    if dcn:
        L += ["", f"DCNv3 / DCNv4 (median ms; floor = bytes / {bw:.2f} TB/s measured copy bandwidth):", "",
              "| DCNv3 / DCNv4 layer | op | batch | dtype | ours | grid_sample formulation "
              "| grid_sample / ours | bytes floor | ours / floor |", "|---|---|---:|---|---:|---:|---:|---:|---:|"]
        for r in dcn:
            L.append(f"| {r['layer']} | {r['op']} | {r['batch']} | {r['dtype']} | {fmt(r['ours_ms'], 4)} "
                     f"| {fmt(r['grid_sample_ms'])} | {fmt(r['grid_sample_over_ours'], 1)} "
                     f"| {fmt(r['floor_ms'], 4)} | {fmt(r['ours_over_floor'], 1)} |")
    for n in notes or ():
        L += ["", n]
    return "\n".join(L) + "\n"


def cap_verdict(caps) -> str:
    """Which column-buffer cap to keep (issue 20: the chunk size chosen by measurement): a smaller cap is
    advised only where it is faster than the plan's (the largest measured) by SWITCH_MARGIN in every dtype
    measured, and then the one whose smallest speed-up over the dtypes is largest (on a tie the larger cap:
    fewer chunks, fewer GEMM calls)."""
    plan = max(CAPS_MB)
    by = {}
    for r in caps:
        if r.get("ms"):
            by.setdefault(r["dtype"], {})[r["cap_mb"]] = r["ms"]
    timed = {dt: ms for dt, ms in by.items() if plan in ms}
    if not timed:
        return f"Column cap: the plan's {plan} MiB was not measured; keep kColumnsCapBytes."
    ok = [mb for mb in CAPS_MB if mb < plan and all(mb in ms and ms[plan] / ms[mb] >= SWITCH_MARGIN
                                                     for ms in timed.values())]
    speed = "; ".join(f"{dt} " + ", ".join(f"{mb} MiB {ms[plan] / ms[mb]:.2f}x" for mb in sorted(ms) if mb != plan)
                      for dt, ms in timed.items())
    margin = f"{100 * (SWITCH_MARGIN - 1):.0f} %"
    if ok:
        best = max(ok, key=lambda mb: (min(ms[plan] / ms[mb] for ms in timed.values()), mb))
        return (f"Column cap vs the plan's {plan} MiB ({plan} MiB ms / cap ms): {speed}; {best} MiB is faster by "
                f"at least {margin} in every dtype on c3 batch 8: rerun the table with DCN_DEFORM_CONV_COLUMNS_MB="
                f"{best} (more rows take chunks then), and if no row is slower, lower kColumnsCapBytes "
                f"(deform_conv2d_plan.h) to {best} MiB.")
    return f"Column cap vs the plan's {plan} MiB ({plan} MiB ms / cap ms): {speed}; no smaller cap faster by {margin} " \
           "in every dtype: keep kColumnsCapBytes."


def targets(conv) -> str:
    """Each DeformConv2d row against issue 20's targets, for the plan's path and for the fastest path
    measured (switches included), and what each off switch would change."""
    if not conv:
        return ""
    L = ["", "Targets (issue 20): torchvision / ours >= 2 (FP16), >= 1.3 (FP32); FP16 ours / dense <= 1.5 where "
         "the plan takes the fused path, <= 3 from batch 8. plan: the default path; best: the fastest measured "
         "(switches included):", "",
         "| layer | batch | dtype | plan | tv / plan | best | tv / best | ours / dense target | ours / dense (best) "
         "| met (plan) | met (best) |", "|---|---:|---|---|---:|---|---:|---:|---:|---|---|"]
    for r in conv:
        measured = {p: r[f"{p}_ms"] for p in CONV_PATHS if r.get(f"{p}_ms")}
        if not measured:
            L.append(f"| {r['layer']} | {r['batch']} | {r['dtype']} | {r.get('plan', 'n/a')} | n/a | n/a | n/a | n/a "
                     "| n/a | no | no |")
            continue
        best = min(measured, key=measured.get)
        tv, dense = r["torchvision_ms"], r["dense_cudnn_ms"]
        want_dense = None
        if r["dtype"] == "float16":
            want_dense = DENSE_TARGET_FUSED if r["plan"] == "fused" else (DENSE_TARGET_B8 if r["batch"] >= 8 else None)

        def met(ms):
            ok_tv = tv is not None and tv / ms >= TV_TARGET.get(r["dtype"], 0.0)
            return "yes" if ok_tv and (want_dense is None or ms / dense <= want_dense) else "no"

        plan_ms = r["ours_ms"]
        L.append(f"| {r['layer']} | {r['batch']} | {r['dtype']} | {r['plan']} | "
                 f"{fmt(tv / plan_ms if tv and plan_ms else None, 2)} | {best} | "
                 f"{fmt(tv / measured[best] if tv else None, 2)} | {fmt(want_dense, 1)} | "
                 f"{fmt(measured[best] / dense, 2)} | {met(plan_ms) if plan_ms else 'no'} | {met(measured[best])} |")
    for path, (base, default) in SWITCHES.items():
        pairs = [(r, r[f"{base}_ms"] / r[f"{path}_ms"]) for r in conv if r.get(f"{path}_ms") and r.get(f"{base}_ms")
                 and r["plan"] == SWITCH_PLAN.get(path, r["plan"])]
        failed = [f"{r['layer'].split()[0]} b{r['batch']} {r['dtype']}" for r in conv if r.get(f"{path}_error")]
        if pairs or failed:
            speed = ", ".join(f"{r['layer'].split()[0]} b{r['batch']} {x:.2f}x" for r, x in pairs)
            margin = f"{100 * (SWITCH_MARGIN - 1):.0f} %"
            if failed:
                verdict = f"FAILED on {', '.join(failed)}: keep {default}"
            elif all(x >= SWITCH_MARGIN for _, x in pairs):
                verdict = (f"faster by at least {margin} on every row: flip {default} (deform_conv2d_plan.h) if its "
                           "device tests passed (tests.log)")
            else:
                verdict = f"not faster by {margin} everywhere: keep {default}"
            L.append(f"\n{path} vs {base} ({base} ms / {path} ms): {speed or 'n/a'}; {verdict}.")
    return "\n".join(L) + "\n"


def save(out: Optional[Path], text: str, report: dict) -> None:
    """bench.md and report.json as they stand, each through a temporary file renamed over the old one,
    after every section: a run stopped at its time limit keeps what it measured."""
    if out is None:
        return
    out.mkdir(parents=True, exist_ok=True)
    for name, content in (("bench.md", text), ("report.json", json.dumps(report, indent=1))):
        tmp = out / f".{name}.tmp"
        tmp.write_text(content)
        os.replace(tmp, out / name)


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="bench_plugins_cuda", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="directory for bench.md and report.json")
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--quick", action="store_true", help="c3 only, no cap sweep (a smoke run)")
    ap.add_argument("--ops", nargs="+", default=list(OPS), choices=OPS,
                    help="which rows: DeformConv2d (and its cap sweep), DeformRoIPool, DeformPSROIPool, "
                         "MultiScaleDeformableAttention, DCNv3 / DCNv4 (default all)")
    args = ap.parse_args(argv)
    import torch

    from helpers import trt_device as td

    why = td.cuda_missing()
    if why:
        print(f"bench_plugins_cuda: {why}", file=sys.stderr)
        return 2
    hx = td.DeviceHarness(td.device_harness_path())
    props = torch.cuda.get_device_properties(0)
    gpu = f"{props.name} (sm_{props.major}{props.minor}, {props.multi_processor_count} SMs, torch {torch.__version__})"
    tv_fn, note = _tv_deform_conv2d()
    dense_note = (f"dense cuDNN: torch.nn.functional.conv2d, FP32 rows with cuDNN TF32 "
                  f"{'on' if torch.backends.cudnn.allow_tf32 else 'off'} (torch's setting)")
    layers = td.RESNET_LAYERS[:1] if args.quick else td.RESNET_LAYERS
    res = dict(conv=[], caps=[], roi=[], psroi=[], dcn=[], msda=[], bw=0.0, errors=[])

    def render() -> str:
        notes = [n for n in (note and f"torchvision.ops.deform_conv2d n/a: {note}", dense_note) if n]
        text = table(gpu, res["conv"], res["caps"], res["roi"], res["psroi"], notes, res["dcn"], res["bw"]) \
            + targets(res["conv"]) + (msda_table(res["msda"], res["bw"]) if res["msda"] else "")
        return text + ("\nErrors:\n" + "\n".join(f"- {e}" for e in errors()) + "\n" if errors() else "")

    def errors() -> list[str]:  # the sections' and the DeformConv2d paths' (recorded in their rows)
        return res["errors"] + [f"DeformConv2d {r['layer']} b{r['batch']} {r['dtype']} {p}: {r[f'{p}_error']}"
                                for r in res["conv"] for p in (*CONV_PATHS, "plan") if r.get(f"{p}_error")]

    def checkpoint() -> None:
        save(args.out, render(), dict(gpu=gpu, copy_tbs=res["bw"], **{k: v for k, v in res.items() if k != "bw"}))

    def failed(what: str, err: BaseException) -> None:
        res["errors"].append(f"{what}: {describe(err, 300)}")

    def section(name: str, fn) -> None:
        """Runs one section, keeps what it measured and records its failure; saves after it, and when
        interrupted (the kit's timeout -s INT) saves what it has before stopping."""
        try:
            fn()
        except KeyboardInterrupt as err:
            failed(f"{name} (interrupted)", err)
            checkpoint()
            raise
        except Exception as err:  # noqa: BLE001  (a benchmark: the other sections still run)
            failed(name, err)
        checkpoint()
        print(f"bench_plugins_cuda: {name} done", file=sys.stderr, flush=True)

    def conv_rows():  # one row at a time: a failing row is named and the next one runs; saved after each
        for stage, C, H, W in layers:
            for batch in args.batches:
                for dtype in (torch.float32, torch.float16):
                    try:
                        res["conv"].append(conv_row(hx, td, torch, stage, C, H, W, batch, dtype, args.iterations,
                                                    tv_fn))
                    except Exception as err:  # noqa: BLE001
                        failed(f"DeformConv2d {stage} b{batch} {str(dtype).replace('torch.', '')}", err)
                    checkpoint()

    def switch_paths():  # last: never yet run on a GPU, so a failure here loses nothing measured above
        for row in res["conv"]:
            on = [p for p in SWITCHES if p in paths_of(row["dtype"])]
            conv_paths(hx, td, torch, row, on, args.iterations)  # (a path's failure: recorded in the row)
            checkpoint()

    def bandwidth():
        res["bw"] = copy_bandwidth_tbs(torch)  # this card's, not a datasheet's

    if "conv" in args.ops:
        section("DeformConv2d", conv_rows)
        if not args.quick:
            section("column cap", lambda: res["caps"].extend(cap_rows(hx, td, torch, max(5, args.iterations // 3))))
    if "roi" in args.ops:
        section("DeformRoIPool", lambda: res["roi"].extend(roi_rows(hx, td, torch, args.iterations)))
    if "psroi" in args.ops:
        section("DeformPSROIPool", lambda: res["psroi"].extend(psroi_rows(hx, td, torch, args.iterations)))
    if {"dcn", "msda"} & set(args.ops):
        section("copy bandwidth", bandwidth)
    if "dcn" in args.ops and res["bw"]:
        section("DCNv3 / DCNv4", lambda: res["dcn"].extend(dcn_rows(hx, td, torch, args.iterations, res["bw"])))
    if "msda" in args.ops and res["bw"]:
        section("MultiScaleDeformableAttention",
                lambda: res["msda"].extend(msda_rows(hx, torch, args.iterations, res["bw"])))
    if "conv" in args.ops:
        section("DeformConv2d switches (pipelined, 3xtf32)", switch_paths)
    text = render()
    print(text)
    torch.cuda.synchronize()
    return 1 if errors() else 0


if __name__ == "__main__":
    sys.exit(main())
