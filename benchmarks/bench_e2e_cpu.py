"""End-to-end CPU latency of the ResNet-DCN sample: PyTorch eager vs ONNX Runtime with our ops vs
ONNX Runtime with the standard DeformConv, side by side in one table.

    python benchmarks/bench_e2e_cpu.py                    # ResNet-50-DCN c3-c5, 1x3x224x224
    python benchmarks/bench_e2e_cpu.py --variant dcnv1 --size 512 --threads 8 --repeat 50
    python benchmarks/bench_e2e_cpu.py --quick            # tiny model, 64x64, a few runs (smoke test)

Rows (same model, same input, batch 1, same number of threads everywhere):

  PyTorch eager             torch.no_grad; dcn::deform_conv2d runs torchvision's CPU kernel
  ORT + dcn ops (ours)      dcn-export (plugin mode) -> ONNX Runtime with libdcn_ort
  ORT standard DeformConv   dcn-export --deform-conv onnx -> plain ONNX Runtime (its DeformConv kernel)
  ORT dense ResNet-50       the same network with plain 3x3 convs (the floor: no deformable sampling)

Each cell is the median of ``--repeat`` runs after ``--warmup`` runs; the rows run interleaved,
round after round, so that load from elsewhere on the machine hits every row alike (ONNX Runtime's
idle workers do not spin, so one row never takes the cores from the next). The ratio
column is PyTorch's median / the row's median (> 1: faster than PyTorch). Before timing, every
ONNX Runtime row's output is checked against PyTorch's with ``dcn_base.tolerance.model_tolerance``
(exit 1 on a mismatch: timing a wrong model means nothing). A benchmark, not a test: it prints,
it asserts nothing about time.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trt_runtime.timing import interleaved_times  # noqa: E402

PROG = "bench_e2e_cpu"


def p90(ms: Sequence[float]) -> float:
    s = sorted(ms)
    return s[max(1, -(-9 * len(s) // 10)) - 1]


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def build_parser() -> argparse.ArgumentParser:
    from samples.resnet_dcn import model as M

    p = argparse.ArgumentParser(prog=f"python benchmarks/{PROG}.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variant", choices=list(M.VARIANTS), default="dcnv2", help="ResNet-DCN variant (default dcnv2)")
    p.add_argument("--size", type=int, default=None, help="input height = width (default 224; 64 with --quick)")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for PyTorch and ONNX Runtime alike (default: min(2, cores))")
    p.add_argument("--repeat", type=int, default=None, help="timed runs per row (default 20; 3 with --quick)")
    p.add_argument("--warmup", type=int, default=None, help="untimed runs per row first (default 3; 1 with --quick)")
    p.add_argument("--offset-std", type=float, default=0.1, help="random offsets, about this many pixels (default 0.1)")
    p.add_argument("--no-dense", action="store_true", help="skip the dense ResNet-50 floor row")
    p.add_argument("--quick", action="store_true", help="tiny model at 64x64, few runs: a smoke test of this script")
    p.add_argument("--workdir", help="keep the ONNX files here (default: a temporary directory)")
    return p


def session(path: Path, threads: int, ours: bool):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    # Idle ONNX Runtime workers spin by default, taking the cores from whichever row runs next.
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if ours:
        from trt_runtime.plugins import ort_session

        return ort_session(str(path), sess_options=so)
    return ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])


def dense_twin(model):
    """The same ResNet with every deformable 3x3 replaced by a plain Conv2d of the same weights."""
    import copy

    from torch import nn

    from samples.resnet_dcn.model import deformable_convs

    twin = copy.deepcopy(model)
    for name, m in deformable_convs(twin):
        parent_name, _, attr = name.rpartition(".")
        conv = nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, stride=m.stride, padding=m.padding[:2],
                         dilation=m.dilation, groups=m.groups, bias=False)
        conv.weight.data.copy_(m.weight.data)
        setattr(twin.get_submodule(parent_name), attr, conv)
    return twin.eval()


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import onnxruntime as ort
    import torch

    import exporter
    from dcn_base.tolerance import model_tolerance
    from samples.resnet_dcn import model as M

    threads = args.threads or min(2, os.cpu_count() or 1)
    size = args.size or (M.TINY_SIZE if args.quick else M.DEFAULT_SIZE)
    repeat = args.repeat or (3 if args.quick else 20)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 3)
    if threads < 1 or size < 32 or repeat < 1 or warmup < 0:
        raise ValueError("--threads, --repeat >= 1, --warmup >= 0 and --size >= 32 expected")
    torch.set_num_threads(threads)

    name = f"ResNet-50-DCN c3-c5 {args.variant}" + (" (tiny)" if args.quick else "")
    print(f"{name}, batch 1, images 1x3x{size}x{size}, float32; {threads} thread(s); median of {repeat} runs "
          f"after {warmup} warm-up")
    print(f"CPU: {cpu_name()} ({os.cpu_count()} logical cores); torch {torch.__version__}, "
          f"onnxruntime {ort.__version__}")
    model = M.build(args.variant, tiny=args.quick, offset_std=args.offset_std)
    x = M.example_images(size)
    with torch.no_grad():
        ref = model(x).numpy()

    tmp = None
    if args.workdir:
        work = Path(args.workdir)
        work.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="bench_e2e_")
        work = Path(tmp.name)
    try:
        exports = [("ORT + dcn ops (ours)", "plugin", model, True),
                   ("ORT standard DeformConv", "onnx", model, False)]
        if not args.no_dense:
            exports.append(("ORT dense ResNet-50 (floor)", "plugin", dense_twin(model), False))
        rows: dict[str, Callable[[], object]] = {}

        def eager():
            with torch.no_grad():
                model(x)

        rows["PyTorch eager"] = eager
        feed = {"images": x.numpy()}
        for label, mode, net, ours in exports:
            path = work / f"resnet_dcn_{args.variant}_{mode}{'_dense' if net is not model else ''}.onnx"
            t0 = time.perf_counter()
            exporter.export(net, (x,), path, input_names=["images"], output_names=["output"], deform_conv=mode,
                            verify=False)
            sess = session(path, threads, ours)
            got = sess.run(["output"], feed)[0]
            if net is model:
                atol, rtol = model_tolerance("float32", ref)
                err = float(np.abs(got - ref).max())
                if not np.allclose(got, ref, rtol=rtol, atol=atol):
                    print(f"{PROG}: error: {label}: output differs from PyTorch's by {err:.2e} "
                          f"(tolerance atol {atol:.1e}, rtol {rtol:.0e}); not timing a wrong model", file=sys.stderr)
                    return 1
                print(f"  {label}: exported in {time.perf_counter() - t0:.1f} s, output within tolerance of "
                      f"PyTorch (max |err| {err:.1e})")
            rows[label] = (lambda s=sess: s.run(["output"], feed))
        times = interleaved_times(rows, repeat, warmup)
    finally:
        if tmp is not None:
            tmp.cleanup()

    base = statistics.median(times["PyTorch eager"])
    table = [("runtime", "median ms", "p90 ms", "vs PyTorch")]
    for label, ms in times.items():
        med = statistics.median(ms)
        table.append((label, f"{med:.2f}", f"{p90(ms):.2f}", f"{base / med:.2f}x"))
    widths = [max(len(r[i]) for r in table) for i in range(4)]
    print()
    for i, r in enumerate(table):
        print(f"| {r[0].ljust(widths[0])} | " + " | ".join(c.rjust(w) for c, w in zip(r[1:], widths[1:])) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) if j == 0 else "-" * (w + 1) + ":" for j, w in enumerate(widths)) + "|")
    print("\nvs PyTorch = PyTorch eager median / row median (> 1: faster than PyTorch)")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(None if argv is None else [str(a) for a in argv])
    from dcn_base.errors import DcnError

    try:
        return run(args)
    except (DcnError, ValueError, OSError) as e:
        print(f"{PROG}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
