"""CPU benchmark of dcn::DCNv3 / dcn::DCNv4 in ONNX Runtime (libdcn_ort) against the PyTorch grid_sample
formulation InternImage users run on the CPU (tests/helpers/dcn_grid_sample.py) and our float64-capable
references (exporter/ops/dcnv3, dcnv4: reference.py, float32 inputs), on InternImage-T's DCN layers at 224x224
(stage 1: 56x56, 64 ch, 4 groups; stage 2: 28x28, 128 ch, 8 groups; stage 3: 14x14, 256 ch, 16 groups;
stage 4: 7x7, 512 ch, 32 groups), batch 1, softmaxed masks, FP32 (and the ORT op in FP16).

    python benchmarks/bench_dcnv3_cpu.py [--threads 2] [--repeat 10] [--quick]

Same threads for every runtime; columns run interleaved (trt_runtime.timing), each cell the median.
Not a test: it prints, it asserts nothing about time.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402

from exporter.ops.dcnv3.reference import dcnv3  # noqa: E402
from exporter.ops.dcnv4.reference import dcnv4  # noqa: E402
from helpers.dcn_grid_sample import dcnv3_grid_sample, dcnv4_grid_sample  # noqa: E402
from helpers.dcn_sweep import internimage_case, softmaxed  # noqa: E402
from trt_runtime import plugins  # noqa: E402
from trt_runtime.timing import interleaved_times  # noqa: E402


def model(op: str, attrs: dict, dtype) -> bytes:
    et = TensorProto.FLOAT if dtype == np.float32 else TensorProto.FLOAT16
    names = ["X", "offset", "mask"] if op == "DCNv3" else ["X", "offset_mask"]
    node = helper.make_node(op, names, ["Y"], domain="dcn", name="bench", **attrs)
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info(n, et, None) for n in names],
                          [helper.make_tensor_value_info("Y", et, None)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 19), helper.make_opsetid("dcn", 1)])
    m.ir_version = 10
    return m.SerializeToString()


def row(op: str, stage: int, size: int, threads: int, repeat: int) -> dict:
    case = internimage_case(stage, size, 1, dtype=torch.float32)
    case.mask = softmaxed(case.mask, case.group)
    ins = [case.x, case.offset, case.mask] if op == "DCNv3" else [case.x, case.offset_mask]
    def options():
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
        return so

    names = ["X", "offset", "mask"] if op == "DCNv3" else ["X", "offset_mask"]
    sessions = {dt: plugins.ort_session(model(op, case.attrs(), dt), sess_options=options())
                for dt in (np.float32, np.float16)}
    feeds = {dt: {n: t.numpy().astype(dt) for n, t in zip(names, ins)} for dt in sessions}
    grid, ref = (dcnv3_grid_sample, dcnv3) if op == "DCNv3" else (dcnv4_grid_sample, dcnv4)
    fns = {"ours": lambda: sessions[np.float32].run(None, feeds[np.float32]),
           "ours fp16": lambda: sessions[np.float16].run(None, feeds[np.float16]),
           "grid_sample": lambda: grid(*ins, **case.grid_kwargs()),
           "reference": lambda: ref(*ins, **case.attrs())}
    with torch.no_grad():
        t = {k: statistics.median(v) for k, v in interleaved_times(fns, repeat, 2).items()}
        err = float(np.abs(fns["ours"]()[0] - grid(*ins, **case.grid_kwargs()).numpy()).max())
    return dict(layer=f"stage {stage}: {case.H}x{case.W}, {case.C} ch, {case.group} groups", op=op, err=err, **t)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2, help="threads for every runtime (default 2)")
    ap.add_argument("--repeat", type=int, default=10, help="timed runs per cell (median)")
    ap.add_argument("--quick", action="store_true", help="stage 4 only, 2 runs: a smoke test of this script")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    repeat = 2 if args.quick else args.repeat
    print(f"# {args.threads} threads per runtime; onnxruntime {ort.__version__}, torch {torch.__version__}")
    head = ("InternImage-T layer @224", "op", "ours ms", "ours fp16 ms", "grid_sample ms", "reference ms",
            "grid_sample / ours", "max |ours - grid_sample|")
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    for stage in ((4,) if args.quick else (1, 2, 3, 4)):
        for op in ("DCNv3", "DCNv4"):
            r = row(op, stage, 224, args.threads, repeat)
            print(f"| {r['layer']} | {op} | {r['ours']:.2f} | {r['ours fp16']:.2f} | {r['grid_sample']:.2f} "
                  f"| {r['reference']:.2f} | {r['grid_sample'] / r['ours']:.1f} | {r['err']:.1e} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
