"""Helpers of the serving tests and the serving benchmark: export the samples, start ``dcn-serve``
on loopback with free ports, wait for it, always tear it down (the whole process tree)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

REPO = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
TIMEOUT_S = 60.0  # per request


def export_resnet_tiny(work: Path, size: int = 64) -> Path:
    """The tiny ResNet-DCN sample (DCNv2) as ONNX with a dynamic batch (and height / width)."""
    from exporter.cli import main as dcn_export
    from samples.resnet_dcn import make_model

    pt2, onnx_path = work / "resnet_dcn.pt2", work / "resnet_dcn.onnx"
    assert make_model.main(["--variant", "dcnv2", "--tiny", "--offset-std", "0.05", "--size", str(size),
                            "-o", str(pt2)]) == 0
    assert dcn_export([str(pt2), "-o", str(onnx_path), "--input", f"images:2x3x{size}x{size}",
                       "--dynamic", "images:0=batch,2=height,3=width"]) == 0
    return onnx_path


def export_rfcn_tiny(work: Path) -> Path:
    """The tiny R-FCN sample (deformable PS-RoI pooling): images [1, 3, 64, 64], rois [R, 5]."""
    from exporter.cli import main as dcn_export
    from samples.rfcn_dpsroi import make_model

    pt2, onnx_path = work / "rfcn_dpsroi.pt2", work / "rfcn_dpsroi.onnx"
    assert make_model.main(["--head", "rfcn", "--tiny", "-o", str(pt2)]) == 0
    assert dcn_export([str(pt2), "-o", str(onnx_path), *make_model.EXPORT_ARGS,
                       "--dynamic", "rois:0=num_rois"]) == 0
    return onnx_path


class ServerProcess:
    """``dcn-serve MODEL ARGS`` (``python -m trt_runtime.serve``; or ``command``, a whole dcn-serve
    command line, e.g. the README's) on 127.0.0.1 with free ports (appended: the last option wins)."""

    def __init__(self, model: Optional[Path], args: Sequence[str], logdir: Path,
                 command: Optional[Sequence[str]] = None):
        from trt_runtime.serve_processes import free_port

        self.http_port, self.grpc_port, self.metrics_port = (free_port(HOST) for _ in range(3))
        self.stdout_path, self.stderr_path = logdir / "serve.out", logdir / "serve.err"
        cmd = list(command) if command else [sys.executable, "-m", "trt_runtime.serve", str(model), *args]
        cmd += ["--host", HOST, "--http-port", str(self.http_port), "--grpc-port", str(self.grpc_port),
                "--metrics-port", str(self.metrics_port)]
        env = dict(os.environ, PYTHONPATH=str(REPO))
        env["PATH"] = f"{REPO / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        self.cmd = cmd
        with open(self.stdout_path, "w") as out, open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=err, start_new_session=True)
        self.returncode: Optional[int] = None

    @property
    def http_url(self) -> str:
        return f"{HOST}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{HOST}:{self.grpc_port}"

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 240.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "ready; Ctrl-C stops" in self.stdout():
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"dcn-serve exited with {self.proc.returncode}:\n{self.stdout()}\n{self.stderr()}")
            time.sleep(0.25)
        raise TimeoutError(f"dcn-serve not ready after {timeout} s:\n{self.stdout()}\n{self.stderr()}")

    def stop(self, timeout: float = 60.0) -> int:
        """Ctrl-C (SIGINT); after ``timeout`` the whole process tree is killed. Returns the exit code."""
        if self.returncode is not None:
            return self.returncode
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self.returncode = self.proc.wait()
        return self.returncode

    def kill(self) -> None:
        from trt_runtime.serve_processes import descendants

        for pid in [*descendants(self.proc.pid), self.proc.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()


# --------------------------------------------------------------------------- clients (tritonclient)


def infer(client_module, client, model: str, feeds: dict, outputs):
    """One request; {output: array}."""
    import numpy as np
    from tritonclient.utils import np_to_triton_dtype

    inputs = []
    for name, arr in feeds.items():
        arr = np.ascontiguousarray(arr)
        inp = client_module.InferInput(name, list(arr.shape), np_to_triton_dtype(arr.dtype))
        inp.set_data_from_numpy(arr)
        inputs.append(inp)
    wanted = [client_module.InferRequestedOutput(o) for o in outputs]
    timeout = {"client_timeout": TIMEOUT_S} if client_module.__name__.endswith("grpc") else {}
    result = client.infer(model, inputs, outputs=wanted, **timeout)
    return {o: result.as_numpy(o) for o in outputs}


def client_for(protocol: str, server: ServerProcess):
    """(tritonclient module, client) for "http" or "grpc"."""
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    if protocol == "grpc":
        return grpcclient, grpcclient.InferenceServerClient(server.grpc_url)
    return httpclient, httpclient.InferenceServerClient(
        server.http_url, connection_timeout=TIMEOUT_S, network_timeout=TIMEOUT_S)


def deviation(got, ref, tol) -> tuple[float, bool]:
    """(max |got - ref|, within atol + rtol * |ref| everywhere with the same shape)."""
    import numpy as np

    atol, rtol = tol
    diff = np.abs(got.astype(np.float64) - ref.astype(np.float64))
    return float(diff.max()), bool(got.shape == ref.shape and np.all(diff <= atol + rtol * np.abs(ref)))


def batch_stats(server: ServerProcess, model: str) -> dict[int, int]:
    """{batch size: executions} from Triton's statistics."""
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(server.http_url)
    try:
        stats = client.get_inference_statistics(model)["model_stats"][0]
    finally:
        client.close()
    return {int(b["batch_size"]): int(b["compute_infer"]["count"]) for b in stats.get("batch_stats", [])}


def run_clients(server: ServerProcess, clients: int, requests: int, one) -> tuple[list, list[str]]:
    """``clients`` threads (even: HTTP, odd: gRPC), each calling ``one(module, client, c, j)`` for its
    requests j = 0 .. requests-1. Returns (every result ``one`` returned, one line per exception)."""
    import threading

    results: list = []
    errors: list[str] = []
    lock = threading.Lock()

    def loop(c: int) -> None:
        module, client = client_for("grpc" if c % 2 else "http", server)
        try:
            for j in range(requests):
                try:
                    result = one(module, client, c, j)
                    with lock:
                        results.append(result)
                except Exception as err:  # noqa: BLE001  (counted and reported by the caller)
                    with lock:
                        errors.append(f"client {c} request {j}: {' '.join(str(err).split())[:300]}")
        finally:
            client.close()

    threads = [threading.Thread(target=loop, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=requests * TIMEOUT_S)
    return results, errors
