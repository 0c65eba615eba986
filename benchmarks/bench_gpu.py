"""GPU latency of the ResNet-DCN sample: TensorRT FP16 engine (our plugins) vs PyTorch CUDA eager.

    python benchmarks/bench_gpu.py                         # ResNet-50-DCN c3-c5 dcnv2, 1x3x224x224
    python benchmarks/bench_gpu.py --variant dcnv1 --batch 8 --size 512 --iterations 500

For a machine with an NVIDIA GPU, TensorRT >= 10 (``pip install 'dcn-deploy[tensorrt]'``) and the
TensorRT plugin library built (``dcn-plugins --trt``). Without them it exits 2 with one line
naming what is missing. Steps:

1. build the sample model (``samples.resnet_dcn``), export it with ``dcn-export`` (plugin mode);
2. build an FP16 engine with ``dcn-build`` (``trt_runtime.build_engine``), every dcn node checked to be
   our plugin layer;
3. check the engine's output against PyTorch's with the float16 row of ``dcn_base.tolerance``;
4. time, like trtexec's GPU compute time, with device-resident inputs and outputs (torch CUDA
   tensors; no host copies), each cell the median of ``--iterations`` synchronised runs after
   ``--warmup`` runs:

   PyTorch CUDA eager FP32        model.cuda(), torch.no_grad (dcn ops on torchvision's CUDA kernels)
   PyTorch CUDA eager FP16        model.half()
   TensorRT FP16 engine           trt_runtime.Engine on CUDA tensors (our plugins)
   TensorRT FP16 engine + copies  the same with numpy inputs: host->device and device->host included

The ratio column is PyTorch CUDA FP32's median / the row's median. A benchmark: it prints a table,
it asserts nothing about time. ``trtexec --loadEngine=ENGINE --staticPlugins=LIB`` times the same
engine from the command line (printed at the end).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PROG = "bench_gpu"


def _short(e: BaseException) -> str:
    """The first clause of an error's message (the project's messages append install hints after ';')."""
    return " ".join(str(e).split(";")[0].split())


def missing_requirements() -> list[str]:
    """What this machine lacks for the benchmark, each as a short phrase (empty: all there)."""
    missing = []
    try:
        from trt_runtime import environment

        environment.import_tensorrt()
    except Exception as e:  # noqa: BLE001  (TensorRTNotInstalled and anything a broken install raises)
        missing.append(f"TensorRT: {_short(e)}, pip install 'dcn-deploy[tensorrt]'")
    try:
        import torch

        if not torch.cuda.is_available():
            missing.append("a CUDA GPU: torch.cuda.is_available() is False")
    except Exception as e:  # noqa: BLE001
        missing.append(f"PyTorch with CUDA: {type(e).__name__}: {_short(e)}")
    try:
        from trt_runtime import plugins

        plugins.trt_library()
    except Exception:  # noqa: BLE001
        missing.append("the TensorRT plugin library libdcn_trt_plugins.so (dcn-plugins --trt says where it is looked "
                       "for; README 'GPU machine' builds it)")
    return missing


def build_parser() -> argparse.ArgumentParser:
    from samples.resnet_dcn import model as M

    p = argparse.ArgumentParser(prog=f"python benchmarks/{PROG}.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variant", choices=list(M.VARIANTS), default="dcnv2", help="ResNet-DCN variant (default dcnv2)")
    p.add_argument("--size", type=int, default=M.DEFAULT_SIZE, help=f"input height = width (default {M.DEFAULT_SIZE})")
    p.add_argument("--batch", type=int, default=1, help="batch size (default 1)")
    p.add_argument("--iterations", type=int, default=200, help="timed runs per row (default 200)")
    p.add_argument("--warmup", type=int, default=20, help="untimed runs per row first (default 20)")
    p.add_argument("--offset-std", type=float, default=0.1, help="random offsets, about this many pixels (default 0.1)")
    p.add_argument("--tiny", action="store_true", help="the tiny sample model (a quick check of this script)")
    p.add_argument("--workdir", help="keep the ONNX model and engine here (default: a temporary directory)")
    return p


def cuda_timer(fn: Callable[[], object], iterations: int, warmup: int) -> list[float]:
    """Wall time (ms) of each synchronised call."""
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def run(args: argparse.Namespace) -> int:
    missing = missing_requirements()
    if missing:
        print(f"{PROG}: error: needs an NVIDIA GPU machine with TensorRT; missing: {'; '.join(missing)}",
              file=sys.stderr)
        return 2
    import copy

    import numpy as np
    import torch

    import exporter
    from dcn_base.tolerance import model_tolerance
    from samples.resnet_dcn import model as M
    from trt_runtime import Engine, build_engine, plugins

    if args.batch < 1 or args.size < 32 or args.iterations < 1 or args.warmup < 0:
        raise ValueError("--batch, --iterations >= 1, --warmup >= 0 and --size >= 32 expected")
    model = M.build(args.variant, tiny=args.tiny, offset_std=args.offset_std)
    x = M.example_images(args.size, batch=args.batch)
    gpu = torch.cuda.get_device_name(0)
    print(f"ResNet-50-DCN c3-c5 {args.variant}{' (tiny)' if args.tiny else ''}, images {args.batch}x3x{args.size}x"
          f"{args.size}; GPU: {gpu}; median of {args.iterations} runs after {args.warmup} warm-up")

    tmp = None
    if args.workdir:
        work = Path(args.workdir)
        work.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="bench_gpu_")
        work = Path(tmp.name)
    try:
        onnx_path, engine_path = work / "model.onnx", work / "model.engine"
        exporter.export(model, (x,), onnx_path, input_names=["images"], output_names=["output"], verify=False)
        t0 = time.perf_counter()
        build_engine(onnx_path, engine_path, fp16=True, progress=False, log=lambda s: None)
        print(f"dcn-build: FP16 engine built in {time.perf_counter() - t0:.0f} s")

        m32 = copy.deepcopy(model).cuda().eval()
        m16 = copy.deepcopy(model).half().cuda().eval()
        xc = x.cuda()
        with torch.no_grad():
            ref = m32(xc).float().cpu().numpy()
        rows: dict[str, Callable[[], object]] = {}

        def eager32():
            with torch.no_grad():
                m32(xc)

        def eager16():
            with torch.no_grad():
                m16(xc.half())

        rows["PyTorch CUDA eager FP32"] = eager32
        rows["PyTorch CUDA eager FP16"] = eager16
        with Engine(engine_path, backend="torch") as engine:
            name = engine.input_names[0]
            got = engine({name: xc})
            out = next(iter(got.values())).float().cpu().numpy()
            atol, rtol = model_tolerance("float16", ref)
            err = float(np.abs(out - ref).max())
            if not np.allclose(out, ref, rtol=rtol, atol=atol):
                print(f"{PROG}: error: the FP16 engine's output differs from PyTorch's by {err:.2e} (float16 "
                      f"tolerance atol {atol:.1e}, rtol {rtol:.0e}); not timing a wrong engine", file=sys.stderr)
                return 1
            print(f"TensorRT FP16 output within the float16 tolerance of PyTorch FP32 (max |err| {err:.1e})")
            host = {name: x.numpy()}
            rows["TensorRT FP16 engine"] = lambda: engine({name: xc})
            rows["TensorRT FP16 engine + copies"] = lambda: engine(host)
            times = {label: cuda_timer(fn, args.iterations, args.warmup) for label, fn in rows.items()}
        base = statistics.median(times["PyTorch CUDA eager FP32"])
        table = [("runtime", "median ms", "p90 ms", "vs PyTorch FP32")]
        for label, ms in times.items():
            s = sorted(ms)
            med = statistics.median(s)
            table.append((label, f"{med:.3f}", f"{s[max(1, -(-9 * len(s) // 10)) - 1]:.3f}", f"{base / med:.2f}x"))
        widths = [max(len(r[i]) for r in table) for i in range(4)]
        print()
        for i, r in enumerate(table):
            print(f"| {r[0].ljust(widths[0])} | " + " | ".join(c.rjust(w) for c, w in zip(r[1:], widths[1:])) + " |")
            if i == 0:
                print("|" + "|".join("-" * (w + 2) if j == 0 else "-" * (w + 1) + ":" for j, w in enumerate(widths))
                      + "|")
        print(f"\nsame engine from the command line: trtexec --loadEngine={engine_path} "
              f"--staticPlugins={plugins.trt_library()}" + (" (use --workdir to keep the engine)" if tmp else ""))
    finally:
        if tmp is not None:
            tmp.cleanup()
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(None if argv is None else [str(a) for a in argv])
    from dcn_base.errors import DcnError

    try:
        return run(args)
    except (DcnError, ValueError, OSError) as e:
        print(f"{PROG}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return getattr(e, "exit_code", 2) if isinstance(e, DcnError) else 2


if __name__ == "__main__":
    sys.exit(main())
