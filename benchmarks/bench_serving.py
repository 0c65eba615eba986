"""Serving overhead and batching: throughput and p50 / p99 latency against the number of concurrent
clients, for the model behind ``dcn-serve`` (Triton through PyTriton, gRPC client, ONNX Runtime
with our ops) next to direct in-process ONNX Runtime calls on the same model, in one table.

    python benchmarks/bench_serving.py                       # tiny ResNet-DCN sample (DCNv2), 224x224
    python benchmarks/bench_serving.py --model out/resnet_dcn.onnx --size 64 --requests 400
    python benchmarks/bench_serving.py --quick               # a few requests per level (smoke test)

Both sides get the same CPU budget: the server runs ``--instances`` model instances of
``--threads`` ONNX Runtime threads each (dynamic batching up to ``--max-batch``), the direct side
one session with ``--instances x --threads`` intra-op threads called from the same number of
client threads (ONNX Runtime's ``run`` is thread-safe). Every client sends batch-1 requests
back to back. Latency is per request, as the client sees it; throughput is requests / wall time
of the level. The "mean batch" column is Triton's own statistics (inferences / executions)
over the level. Responses are checked against the direct output once before timing (exit 1
on a mismatch). A benchmark, not a test: it prints ratios, it asserts nothing about time.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

PROG = "bench_serving"


def percentile(ms: Sequence[float], q: float) -> float:
    s = sorted(ms)
    return s[max(1, -(-int(q * len(s)) // 100)) - 1]


def run_level(concurrency: int, requests: int, make_call: Callable[[], Callable[[], None]]) -> dict:
    """``requests`` calls spread over ``concurrency`` threads; per-call latency (ms) and throughput."""
    per_thread = [requests // concurrency + (1 if i < requests % concurrency else 0) for i in range(concurrency)]
    latencies: list[float] = []
    lock = threading.Lock()
    calls = [make_call() for _ in range(concurrency)]
    barrier = threading.Barrier(concurrency + 1)

    def loop(i: int) -> None:
        mine = []
        barrier.wait()
        for _ in range(per_thread[i]):
            t0 = time.perf_counter()
            calls[i]()
            mine.append((time.perf_counter() - t0) * 1e3)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {"rps": len(latencies) / wall, "p50": statistics.median(latencies), "p99": percentile(latencies, 99)}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python benchmarks/{PROG}.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="MODEL.onnx with a batch axis (default: the tiny ResNet-DCN sample, exported)")
    p.add_argument("--size", type=int, default=224, help="input height = width (default 224)")
    p.add_argument("--concurrency", default="1,2,4,8", help="client counts (default 1,2,4,8)")
    p.add_argument("--requests", type=int, default=240, help="requests per level and side (default 240)")
    p.add_argument("--instances", type=int, default=2, help="server model instances (default 2)")
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads per instance (default 1)")
    p.add_argument("--max-batch", type=int, default=8)
    p.add_argument("--max-queue-delay-us", type=int, default=2000)
    p.add_argument("--quick", action="store_true", help="24 requests per level (smoke test)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    import numpy as np
    import onnxruntime as ort
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    from dcn_base.tolerance import model_tolerance
    from helpers.serve_helpers import ServerProcess, export_resnet_tiny
    from trt_runtime.plugins import ort_session

    args = build_parser().parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]
    requests = 24 if args.quick else args.requests
    work = Path(tempfile.mkdtemp(prefix="bench_serving-"))
    model = Path(args.model) if args.model else export_resnet_tiny(work, args.size)

    so = ort.SessionOptions()
    so.intra_op_num_threads = args.instances * args.threads
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort_session(str(model), sess_options=so)
    in_name, out_name = sess.get_inputs()[0].name, sess.get_outputs()[0].name
    x = np.random.default_rng(0).standard_normal((1, 3, args.size, args.size)).astype(np.float32)
    direct_out = sess.run([out_name], {in_name: x})[0]

    server = ServerProcess(model, ["--name", "bench", "--instances", str(args.instances), "--threads",
                                   str(args.threads), "--max-batch", str(args.max_batch),
                                   "--max-queue-delay-us", str(args.max_queue_delay_us)], work)
    try:
        server.wait_ready()
        stats_client = httpclient.InferenceServerClient(server.http_url)

        def served_call():
            client = grpcclient.InferenceServerClient(server.grpc_url)
            inp = grpcclient.InferInput(in_name, list(x.shape), "FP32")
            inp.set_data_from_numpy(x)
            return lambda: client.infer("bench", [inp], client_timeout=120)

        def direct_call():
            return lambda: sess.run([out_name], {in_name: x})

        got = served_call()().as_numpy(out_name)
        atol, rtol = model_tolerance("float32", direct_out)
        if not np.allclose(got, direct_out, atol=atol, rtol=rtol):
            print(f"{PROG}: served output differs from direct ONNX Runtime (max |diff| "
                  f"{np.abs(got - direct_out).max():.3g}); not timing a wrong model", file=sys.stderr)
            return 1

        def counts():
            s = stats_client.get_inference_statistics("bench")["model_stats"][0]
            return int(s["inference_count"]), int(s["execution_count"])

        for _ in range(2):  # warm-up, both sides
            run_level(2, 8, direct_call)
            run_level(2, 8, served_call)
        rows = []
        for c in levels:
            direct = run_level(c, requests, direct_call)
            before = counts()
            served = run_level(c, requests, served_call)
            after = counts()
            batch = (after[0] - before[0]) / max(1, after[1] - before[1])
            rows.append((c, direct, served, batch))
        stats_client.close()
    finally:
        server.stop()

    print(f"{model.name}, 1x3x{args.size}x{args.size} float32 requests, {requests} per level; server: "
          f"{args.instances} instance(s) x {args.threads} thread(s), dynamic batching up to {args.max_batch} "
          f"({args.max_queue_delay_us} us), gRPC; direct: one session, {args.instances * args.threads} thread(s); "
          f"{os.cpu_count()} CPUs")
    print()
    print("| clients | direct ORT req/s | p50 ms | p99 ms | dcn-serve req/s | p50 ms | p99 ms | mean batch "
          "| served / direct throughput | served / direct p50 |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c, d, s, batch in rows:
        print(f"| {c} | {d['rps']:.1f} | {d['p50']:.2f} | {d['p99']:.2f} | {s['rps']:.1f} | {s['p50']:.2f} | "
              f"{s['p99']:.2f} | {batch:.2f} | {s['rps'] / d['rps']:.2f} | {s['p50'] / d['p50']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
