"""CPU benchmark of libdcn_ort, side by side in one table.

DeformConv2d on the ResNet-50-DCN layers (3x3, stride 1, pad 1, batch 1, C in = C out;
c3 128ch 64x64, c4 256ch 32x32, c5 512ch 16x16) and a small layer where fixed costs show (32ch
16x16, a head at a coarse level), DCNv1 (no mask) and v2 (mask):

  ours      dcn::DeformConv2d in ONNX Runtime (libdcn_ort)
  ORT       ONNX Runtime's native DeformConv (opset 19), same inputs and attributes
  tv        torchvision.ops.deform_conv2d
  Conv      ONNX Runtime's dense Conv of the same shape (no sampling)
  GEMM      ONNX Runtime's MatMul of the layer's GEMM alone: W [M, C*kH*kW] x columns [C*kH*kW, oH*oW],
            the one step both DeformConv implementations share (MLAS SGEMM)

with ms (median), ours/ORT, the floor of ours/ORT (the faster of dense Conv and GEMM alone, over ORT:
about the ratio ours would reach if its sampling took no time, its GEMM being MLAS's either way), and
the GFLOP/s ours reaches (2*M*C*kH*kW*oH*oW per run) next to the peak GFLOP/s of ONNX Runtime's
MatMul measured here. Then DeformPSROIPool on an R-FCN head (C = 7*7*21, 300 RoIs, pooled 7,
sample_per_part 4) vs the PyTorch reference, and DeformRoIPool
on an mmdet dpool head (256 channels, the stride-16 map of an 800x1333 image, 512 RoIs, 7x7,
sampling_ratio 2, zero offsets) vs torchvision.ops.roi_align(aligned=True), the same work.

    python benchmarks/bench_ort_ops.py [--threads N] [--repeat N] [--quick]

All runtimes get the same number of threads (default: the machine's cores); the columns of a
row run interleaved, round after round, and each cell is the median. Idle ONNX Runtime workers
do not spin (as in bench_e2e_cpu.py), nor do PyTorch's OpenMP workers (OMP_WAIT_POLICY=PASSIVE
unless set), so that one column never takes the cores from the next.
Not a test: it prints, it asserts nothing about time.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# PyTorch's OpenMP workers spin a while after each call by default, taking the cores from the
# column that runs next: ORT's dense Conv right after torchvision took 6.5 ms on c3 at two threads
# instead of 4.2. Here they wait passively, like ONNX Runtime's (torchvision's one large parallel
# loop is as fast either way). Not in bench_e2e_cpu.py: PyTorch eager, many small loops, was 25 %
# slower there waiting passively. Only where torch is not loaded yet (else it has no effect).
if "torch" not in sys.modules:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from exporter.contract import DOMAIN, DOMAIN_VERSION  # noqa: E402
from exporter.ops.deform_conv2d.spec import SPEC as DEFORM_CONV2D  # noqa: E402
from exporter.ops.deform_psroi_pool.spec import SPEC as DEFORM_PSROI_POOL  # noqa: E402
from exporter.ops.deform_roi_pool.spec import SPEC as DEFORM_ROI_POOL  # noqa: E402
from trt_runtime import plugins  # noqa: E402
from trt_runtime.timing import interleaved_times  # noqa: E402

IR_VERSION = 10

# (name, channels, size)
LAYERS = [("c3", 128, 64), ("c4", 256, 32), ("c5", 512, 16), ("small", 32, 16)]
QUICK_LAYERS = [("tiny", 8, 8)]


def timeit(fns: dict[str, Callable[[], object]], repeat: int, warmup: int = 2) -> dict[str, float]:
    """Median wall time in ms of each callable, run interleaved (trt_runtime.timing)."""
    return {name: statistics.median(t) for name, t in interleaved_times(fns, repeat, warmup).items()}


def session(model, threads: int, ours: bool):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle workers spin by default, taking the cores from whichever column runs next.
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if ours:
        return plugins.ort_session(model.SerializeToString(), sess_options=so)
    return ort.InferenceSession(model.SerializeToString(), sess_options=so, providers=["CPUExecutionProvider"])


def graph_model(nodes, inputs, initializers, output_shape, opsets):
    graph = helper.make_graph(
        nodes, "bench",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, a.shape) for n, a in inputs.items()],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, output_shape)],
        initializer=[numpy_helper.from_array(a, n) for n, a in initializers.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets], ir_version=IR_VERSION)


def conv_row(name: str, C: int, S: int, modulated: bool, threads: int, repeat: int, rng) -> dict:
    k, M = 3, C
    x = rng.standard_normal((1, C, S, S), dtype=np.float32)
    w = (rng.standard_normal((M, C, k, k), dtype=np.float32) / np.sqrt(C * k * k)).astype(np.float32)
    b = rng.standard_normal(M, dtype=np.float32)
    off = rng.standard_normal((1, 2 * k * k, S, S), dtype=np.float32) * 2
    mask = rng.random((1, k * k, S, S), dtype=np.float32)
    attrs = dict(strides=[1, 1], pads=[1, 1, 1, 1], dilations=[1, 1], group=1, offset_group=1, kernel_shape=[k, k])
    feeds = {"X": x, "offset": off}
    if modulated:
        feeds["mask"] = mask
    names = ["X", "W", "offset", "B"] + (["mask"] if modulated else [])
    inits = {"W": w, "B": b}
    out_shape = [1, M, S, S]

    ours = session(graph_model([helper.make_node(DEFORM_CONV2D.op_type, names, ["Y"], domain=DOMAIN, **attrs)],
                               feeds, inits, out_shape, [("", 19), (DOMAIN, DOMAIN_VERSION)]), threads, True)
    native = session(graph_model([helper.make_node("DeformConv", names, ["Y"], **attrs)],
                                 feeds, inits, out_shape, [("", 19)]), threads, False)
    dense = session(graph_model([helper.make_node("Conv", ["X", "W", "B"], ["Y"], pads=[1, 1, 1, 1],
                                                  kernel_shape=[k, k])],
                                {"X": x}, inits, out_shape, [("", 19)]), threads, False)
    w2 = w.reshape(M, C * k * k)
    cols = rng.standard_normal((C * k * k, S * S), dtype=np.float32)
    gemm = session(graph_model([helper.make_node("MatMul", ["A", "B"], ["Y"])], {"B": cols}, {"A": w2},
                               [M, S * S], [("", 19)]), threads, False)
    y_ours = ours.run(None, feeds)[0]
    y_native = native.run(None, feeds)[0]
    agree = float(np.abs(y_ours - y_native).max())

    tx, toff, tw, tb = (torch.from_numpy(a) for a in (x, off, w, b))
    tmask = torch.from_numpy(mask) if modulated else None
    import torchvision  # noqa: PLC0415

    def tv():
        with torch.inference_mode():
            return torchvision.ops.deform_conv2d(tx, toff, tw, tb, padding=(1, 1), mask=tmask)

    row = timeit({"ours": lambda: ours.run(None, feeds), "ort": lambda: native.run(None, feeds), "tv": tv,
                  "conv": lambda: dense.run(None, {"X": x}), "gemm": lambda: gemm.run(None, {"B": cols})}, repeat)
    row.update({"layer": f"{name} {C}ch {S}x{S}", "variant": "v2" if modulated else "v1",
                "flop": 2.0 * M * C * k * k * S * S, "max|ours-ORT|": agree})
    return row


def matmul_peak(threads: int, repeat: int, sizes) -> tuple[float, str]:
    """Best GFLOP/s of ONNX Runtime's MatMul over a few square sizes."""
    best, best_at = 0.0, ""
    rng = np.random.default_rng(0)
    for n in sizes:
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = rng.standard_normal((n, n), dtype=np.float32)
        sess = session(graph_model([helper.make_node("MatMul", ["A", "B"], ["Y"])], {"A": a, "B": b}, {},
                                   [n, n], [("", 19)]), threads, False)
        ms = timeit({"mm": lambda: sess.run(None, {"A": a, "B": b})}, repeat)["mm"]
        gflops = 2.0 * n ** 3 / (ms * 1e-3) / 1e9
        if gflops > best:
            best, best_at = gflops, f"{n}x{n}x{n}"
    return best, best_at


def psroi_row(threads: int, repeat: int, quick: bool, rng) -> dict:
    """R-FCN head: ResNet-101 c5 at stride 16 of a 600x1000 image, 21 classes, class-agnostic offsets."""
    G = P = 7
    D, R, S, H, W = (21, 300, 4, 38, 63) if not quick else (3, 5, 2, 6, 7)
    scale = 1.0 / 16
    data = rng.standard_normal((1, D * G * G, H, W), dtype=np.float32)
    x1 = rng.uniform(0, W / scale * 0.8, R)
    y1 = rng.uniform(0, H / scale * 0.8, R)
    rois = np.stack([np.zeros(R), x1, y1, x1 + rng.uniform(16, 400, R), y1 + rng.uniform(16, 300, R)],
                    axis=1).astype(np.float32)
    trans = rng.standard_normal((R, 2, P, P), dtype=np.float32)
    attrs = dict(spatial_scale=scale, output_dim=D, group_size=G, pooled_size=P, part_size=P, sample_per_part=S,
                 trans_std=0.1, no_trans=0)
    feeds = {"data": data, "rois": rois, "trans": trans}
    model = graph_model([helper.make_node(DEFORM_PSROI_POOL.op_type, list(feeds), ["Y"], domain=DOMAIN, **attrs)],
                        feeds, {}, [R, D, P, P], [("", 19), (DOMAIN, DOMAIN_VERSION)])
    ours = session(model, threads, True)
    from exporter.ops import deform_psroi_pool  # noqa: PLC0415

    td, tr, tt = (torch.from_numpy(a) for a in (data, rois, trans))
    kw = {k: v for k, v in attrs.items() if k != "no_trans"}

    def ref():
        with torch.inference_mode():
            return deform_psroi_pool(td, tr, tt, **kw)

    agree = float(np.abs(ours.run(None, feeds)[0] - ref().numpy()).max())
    row = timeit({"ours": lambda: ours.run(None, feeds), "ref": ref}, max(1, repeat // 2), warmup=1)
    row.update({"shape": f"C={D}*{G}*{G}={D * G * G} {H}x{W}, {R} RoIs, pooled {P}, spp {S}",
                "max|ours-ref|": agree})
    return row


def roi_pool_row(threads: int, repeat: int, quick: bool, rng) -> dict:
    """mmdet dpool head (DeformRoIPoolPack's pooling): 256 channels at stride 16 of an 800x1333 image, 512
    RoIs, 7x7, sampling_ratio 2, zero offsets (the offset branch's start) vs torchvision's roi_align."""
    P, ratio, scale = 7, 2, 1.0 / 16
    C, R, H, W = (256, 512, 50, 84) if not quick else (4, 6, 6, 7)
    data = rng.standard_normal((1, C, H, W), dtype=np.float32)
    x1 = rng.uniform(0, W / scale * 0.85, R)
    y1 = rng.uniform(0, H / scale * 0.85, R)
    rois = np.stack([np.zeros(R), x1, y1, x1 + rng.uniform(16, 400, R), y1 + rng.uniform(16, 300, R)],
                    axis=1).astype(np.float32)
    offset = np.zeros((R, 2, P, P), dtype=np.float32)
    attrs = dict(pooled_height=P, pooled_width=P, spatial_scale=scale, sampling_ratio=ratio, gamma=0.1)
    feeds = {"data": data, "rois": rois, "offset": offset}
    model = graph_model([helper.make_node(DEFORM_ROI_POOL.op_type, list(feeds), ["Y"], domain=DOMAIN, **attrs)],
                        feeds, {}, [R, C, P, P], [("", 19), (DOMAIN, DOMAIN_VERSION)])
    ours = session(model, threads, True)
    import torchvision  # noqa: PLC0415

    td, tr = torch.from_numpy(data), torch.from_numpy(rois)

    def tv():
        with torch.inference_mode():
            return torchvision.ops.roi_align(td, tr, (P, P), scale, ratio, aligned=True)

    y_ours, y_tv = ours.run(None, feeds)[0], tv().numpy()
    row = timeit({"ours": lambda: ours.run(None, feeds), "tv": tv}, repeat)
    row.update({"shape": f"C={C} {H}x{W}, {R} RoIs, {P}x{P}, sampling_ratio {ratio}, zero offsets",
                "max|ours-tv|": float(np.abs(y_ours - y_tv).max()), "equal": bool(np.array_equal(y_ours, y_tv))})
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for every runtime")
    ap.add_argument("--repeat", type=int, default=10, help="timed runs per cell (median)")
    ap.add_argument("--quick", action="store_true", help="tiny shapes, 2 runs: a smoke test of this script")
    args = ap.parse_args(argv)
    repeat = 2 if args.quick else args.repeat
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    layers = QUICK_LAYERS if args.quick else LAYERS

    print(f"# CPU: {os.cpu_count()} cores, {args.threads} threads per runtime; onnxruntime {ort.__version__}, "
          f"torch {torch.__version__}; ours = {plugins.ort_library()}")
    peak, peak_at = matmul_peak(args.threads, repeat, [64] if args.quick else [512, 1024, 2048])
    print(f"# ONNX Runtime MatMul peak: {peak:.1f} GFLOP/s (float32, {peak_at})")
    print()
    head = ("layer", "DCN", "ours ms", "ORT DeformConv ms", "ours/ORT", "torchvision ms", "dense Conv ms",
            "GEMM alone ms", "floor ours/ORT", "ours GFLOP/s", "% of MatMul peak")
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    worst, worst_floor = 0.0, 0.0
    for name, C, S in layers:
        for modulated in (False, True):
            r = conv_row(name, C, S, modulated, args.threads, repeat, rng)
            gflops = r["flop"] / (r["ours"] * 1e-3) / 1e9
            ratio = r["ours"] / r["ort"]
            floor = min(r["conv"], r["gemm"]) / r["ort"]
            if ratio > worst:
                worst, worst_floor = ratio, floor
            cells = (r["layer"], r["variant"], f"{r['ours']:.2f}", f"{r['ort']:.2f}", f"{ratio:.2f}",
                     f"{r['tv']:.2f}", f"{r['conv']:.2f}", f"{r['gemm']:.2f}", f"{floor:.2f}", f"{gflops:.1f}",
                     f"{100 * gflops / peak:.0f}%")
            print("| " + " | ".join(cells) + " |")
            if r["max|ours-ORT|"] > 1e-3:
                print(f"  (!) ours and ORT DeformConv differ by {r['max|ours-ORT|']:.2e}")
    print()
    p = psroi_row(args.threads, repeat, args.quick, rng)
    print("| DeformPSROIPool (R-FCN head) | ours ms | PyTorch reference ms | ours/reference |")
    print("|---|---|---|---|")
    print(f"| {p['shape']} | {p['ours']:.2f} | {p['ref']:.2f} | {p['ours'] / p['ref']:.3f} |")
    if p["max|ours-ref|"] > 1e-3:
        print(f"  (!) ours and the reference differ by {p['max|ours-ref|']:.2e}")
    print()
    q = roi_pool_row(args.threads, repeat, args.quick, rng)
    print("| DeformRoIPool (mmdet dpool head) | ours ms | torchvision roi_align ms | ours/roi_align | outputs |")
    print("|---|---|---|---|---|")
    same = "identical" if q["equal"] else f"max diff {q['max|ours-tv|']:.1e}"
    print(f"| {q['shape']} | {q['ours']:.2f} | {q['tv']:.2f} | {q['ours'] / q['tv']:.3f} | {same} |")
    if q["max|ours-tv|"] > 1e-5:
        print(f"  (!) ours and torchvision's roi_align differ by {q['max|ours-tv|']:.2e}")
    print()
    print(f"# worst ours/ORT DeformConv ratio: {worst:.2f} (target <= 0.7, issue 20; that row's floor, "
          f"min(dense Conv, GEMM alone) / ORT: {worst_floor:.2f}); "
          f"DeformRoIPool ours/roi_align: {q['ours'] / q['tv']:.2f} (target <= 1.0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
