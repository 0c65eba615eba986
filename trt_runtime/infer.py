"""Run a TensorRT engine: ``Engine(path)(images=array) -> {"output": array, ...}``.

Inputs are numpy arrays or torch tensors. CUDA torch tensors are bound zero-copy (their
``data_ptr``) and run on torch's current stream, outputs coming back as CUDA tensors; numpy or
CPU tensors are copied through device buffers managed by one of three backends:

* ``"cuda-python"`` (default): ``cuda.bindings.runtime`` (or the older ``cuda.cudart``),
* ``"pycuda"``: ``pycuda.driver`` on the device's primary context (optional extra ``[pycuda]``),
* ``"torch"``: CUDA tensors as raw buffers.

Dynamic shapes are set per call from the inputs; TensorRT 10/11 ``execute_async_v3`` with
``set_tensor_address``.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from dcn_base.errors import DcnError, one_line

from . import cuda_env, engine_files, environment

BACKENDS = ("cuda-python", "pycuda", "torch")


def _is_torch(x) -> bool:
    t = type(x)
    return t.__module__.startswith("torch") and t.__name__ in ("Tensor", "Parameter")


# --------------------------------------------------------------------------- device memory backends


class _CudaPython:
    name = "cuda-python"

    def __init__(self, device: int):
        self.rt = cuda_env.import_cudart()
        cuda_env.check_cuda(self.rt.cudaSetDevice(device), "cudaSetDevice")

    def stream(self):
        return cuda_env.check_cuda(self.rt.cudaStreamCreate(), "cudaStreamCreate")

    def handle(self, stream) -> int:
        return int(stream)

    def alloc(self, nbytes: int):
        return cuda_env.check_cuda(self.rt.cudaMalloc(max(int(nbytes), 256)), "cudaMalloc")

    def ptr(self, buf) -> int:
        return int(buf)

    def free(self, buf):
        self.rt.cudaFree(buf)

    def htod(self, buf, host, stream):
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        cuda_env.check_cuda(self.rt.cudaMemcpyAsync(buf, host.ctypes.data, host.nbytes, kind, stream), "cudaMemcpyAsync")

    def dtoh(self, host, buf, stream):
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        cuda_env.check_cuda(self.rt.cudaMemcpyAsync(host.ctypes.data, buf, host.nbytes, kind, stream), "cudaMemcpyAsync")

    def sync(self, stream):
        cuda_env.check_cuda(self.rt.cudaStreamSynchronize(stream), "cudaStreamSynchronize")

    def close(self, stream):
        if stream is not None:
            self.rt.cudaStreamDestroy(stream)


class _PyCuda:
    name = "pycuda"

    def __init__(self, device: int):
        try:
            import pycuda.driver as cuda  # noqa: PLC0415
        except ImportError as err:
            raise environment.CudaUnavailable(
                f"backend 'pycuda' needs pycuda ({one_line(err)}); install it on a GPU machine with "
                "`pip install 'dcn-deploy[pycuda]'` (it builds against the CUDA toolkit), or use backend 'cuda-python'"
            ) from None
        self.cuda = cuda
        cuda.init()
        # The primary context is the one TensorRT and the CUDA runtime use.
        self.ctx = cuda.Device(device).retain_primary_context()
        self.ctx.push()

    def stream(self):
        return self.cuda.Stream()

    def handle(self, stream) -> int:
        return int(stream.handle)

    def alloc(self, nbytes: int):
        return self.cuda.mem_alloc(max(int(nbytes), 256))

    def ptr(self, buf) -> int:
        return int(buf)

    def free(self, buf):
        buf.free()

    def htod(self, buf, host, stream):
        self.cuda.memcpy_htod_async(buf, host, stream)

    def dtoh(self, host, buf, stream):
        self.cuda.memcpy_dtoh_async(host, buf, stream)

    def sync(self, stream):
        stream.synchronize()

    def close(self, stream):
        try:
            self.ctx.pop()
        except Exception:  # noqa: BLE001
            pass


class _Torch:
    name = "torch"

    def __init__(self, device: int):
        import torch  # noqa: PLC0415

        if not torch.cuda.is_available():
            raise environment.CudaUnavailable("backend 'torch' needs a CUDA build of torch and a CUDA device")
        self.torch = torch
        self.device = torch.device("cuda", device)

    def stream(self):
        return self.torch.cuda.Stream(device=self.device)

    def handle(self, stream) -> int:
        return int(stream.cuda_stream)

    def alloc(self, nbytes: int):
        return self.torch.empty(max(int(nbytes), 256), dtype=self.torch.uint8, device=self.device)

    def ptr(self, buf) -> int:
        return int(buf.data_ptr())

    def free(self, buf):
        pass

    def htod(self, buf, host, stream):
        src = self.torch.from_numpy(host.reshape(-1).view("uint8"))
        with self.torch.cuda.stream(stream):
            buf[: host.nbytes].copy_(src, non_blocking=False)

    def dtoh(self, host, buf, stream):
        with self.torch.cuda.stream(stream):
            self.torch.from_numpy(host.reshape(-1).view("uint8")).copy_(buf[: host.nbytes])

    def sync(self, stream):
        stream.synchronize()

    def close(self, stream):
        pass


def _make_backend(name: str, device: int):
    if name == "cuda-python":
        return _CudaPython(device)
    if name == "pycuda":
        return _PyCuda(device)
    if name == "torch":
        return _Torch(device)
    raise DcnError(f"backend {name!r}: expected one of {list(BACKENDS)}")


# --------------------------------------------------------------------------- Engine


class Engine:
    """A deserialized TensorRT engine with our plugins, callable with numpy arrays or torch tensors.

    >>> eng = Engine("model.engine")                    # doctest: +SKIP
    >>> out = eng(images=np.zeros((2, 3, 224, 224), np.float32))   # doctest: +SKIP
    >>> out["logits"].shape                              # doctest: +SKIP
    """

    def __init__(self, path: str | Path, plugins: Optional[str] = None, backend: str = "cuda-python",
                 device: int = 0):
        if backend not in BACKENDS:
            raise DcnError(f"backend {backend!r}: expected one of {list(BACKENDS)}")
        import numpy as np  # noqa: PLC0415

        self._np = np
        self.path = str(path)
        self._closed = True
        trt = self._trt = environment.import_tensorrt()
        cuda_env.require_cuda_device()
        self.backend = backend
        self.device = device
        self._engine, self._runtime, self._logger = engine_files.deserialize_engine(trt, self.path, plugins=plugins)
        self._context = self._engine.create_execution_context()
        if self._context is None:
            raise DcnError(f"TensorRT could not create an execution context for {self.path!r} (out of GPU memory?)")
        self._mem = _make_backend(backend, device)
        self.input_names, self.output_names = engine_files.io_tensors(trt, self._engine)
        self.dtypes = {n: np.dtype(trt.nptype(self._engine.get_tensor_dtype(n)))
                       for n in self.input_names + self.output_names}
        self._stream = self._mem.stream()
        self._buffers: dict[str, tuple[Any, int]] = {}
        self._closed = False

    # ---- description

    def input_shape(self, name: str) -> tuple[int, ...]:
        """The engine's declared shape (-1 for a dynamic dimension)."""
        return tuple(self._engine.get_tensor_shape(name))

    def profile_shapes(self, name: str, profile: int = 0) -> tuple[tuple[int, ...], ...]:
        """(min, opt, max) of a dynamic input in an optimization profile."""
        return tuple(tuple(s) for s in self._engine.get_tensor_profile_shape(name, profile))

    def __repr__(self) -> str:
        ins = ", ".join(f"{n}{list(self.input_shape(n))}" for n in self.input_names)
        return f"Engine({self.path!r}, backend={self.backend!r}, inputs=[{ins}], outputs={self.output_names})"

    # ---- running

    def __call__(self, feeds: Optional[Mapping[str, Any]] = None, **named):
        return self.infer(feeds, **named)

    def infer(self, feeds: Optional[Mapping[str, Any]] = None, **named) -> dict[str, Any]:
        """Run once. Returns {output name: array}: numpy for numpy inputs, torch for torch inputs."""
        if self._closed:
            raise DcnError(f"Engine {self.path!r} is closed")
        feeds = {**(dict(feeds) if feeds else {}), **named}
        unknown = sorted(set(feeds) - set(self.input_names))
        missing = [n for n in self.input_names if n not in feeds]
        if unknown or missing:
            raise DcnError(
                f"engine {Path(self.path).name!r} takes inputs {self.input_names}; "
                + (f"missing {missing}" if missing else "") + ("; " if unknown and missing else "")
                + (f"unknown {unknown}" if unknown else "")
            )
        use_torch = any(_is_torch(v) for v in feeds.values())
        on_cuda = use_torch and any(_is_torch(v) and v.is_cuda for v in feeds.values())
        for name in self.input_names:
            self._set_shape(name, tuple(int(d) for d in feeds[name].shape))
        if on_cuda:
            return self._run_torch_cuda(feeds)
        return self._run_host(feeds, use_torch)

    def _set_shape(self, name: str, shape: tuple[int, ...]):
        declared = self.input_shape(name)
        if len(shape) != len(declared) or any(d >= 0 and d != s for d, s in zip(declared, shape)):
            raise DcnError(f"input {name!r}: got shape {list(shape)}, the engine expects {list(declared)}")
        if any(d < 0 for d in declared):
            mn, _, mx = self.profile_shapes(name)
            if any(s < a or s > b for s, a, b in zip(shape, mn, mx)):
                raise DcnError(
                    f"input {name!r}: shape {list(shape)} is outside the engine's profile "
                    f"min {list(mn)} .. max {list(mx)}; rebuild with dcn-build --shapes"
                )
        if not self._context.set_input_shape(name, shape):
            raise DcnError(f"input {name!r}: TensorRT rejected shape {list(shape)}")

    def _output_shape(self, name: str) -> tuple[int, ...]:
        shape = tuple(self._context.get_tensor_shape(name))
        if any(d < 0 for d in shape):
            raise DcnError(
                f"output {name!r} has a data-dependent shape {list(shape)}; use Polygraphy's TrtRunner for this engine"
            )
        return shape

    def _run_torch_cuda(self, feeds):
        import torch  # noqa: PLC0415

        device = next(v.device for v in feeds.values() if _is_torch(v) and v.is_cuda)
        keep = []
        for name in self.input_names:
            t = torch.as_tensor(feeds[name])
            t = t.to(device=device, dtype=_torch_dtype(self.dtypes[name])).contiguous()
            keep.append(t)
            self._context.set_tensor_address(name, t.data_ptr())
        outputs = {}
        for name in self.output_names:
            o = torch.empty(self._output_shape(name), dtype=_torch_dtype(self.dtypes[name]), device=device)
            outputs[name] = o
            self._context.set_tensor_address(name, o.data_ptr() if o.numel() else keep[0].data_ptr())
        stream = torch.cuda.current_stream(device)
        if not self._context.execute_async_v3(stream.cuda_stream):
            raise DcnError(f"TensorRT execute_async_v3 failed for {self.path!r} (see the log above)")
        return outputs

    def _buffer(self, name: str, nbytes: int):
        buf, cap = self._buffers.get(name, (None, 0))
        if buf is None or cap < nbytes:
            if buf is not None:
                self._mem.free(buf)
            cap = max(nbytes, 256)
            buf = self._mem.alloc(cap)
            self._buffers[name] = (buf, cap)
        return buf

    def _run_host(self, feeds, use_torch: bool):
        np = self._np
        stream = self._stream
        hosts = {}
        for name in self.input_names:
            v = feeds[name]
            if _is_torch(v):
                v = v.detach().cpu().numpy()
            a = np.ascontiguousarray(np.asarray(v), dtype=self.dtypes[name])
            hosts[name] = a
            buf = self._buffer(name, a.nbytes)
            if a.nbytes:
                self._mem.htod(buf, a, stream)
            self._context.set_tensor_address(name, self._mem.ptr(buf))
        outputs = {}
        for name in self.output_names:
            o = np.empty(self._output_shape(name), dtype=self.dtypes[name])
            buf = self._buffer(name, o.nbytes)
            outputs[name] = (o, buf)
            self._context.set_tensor_address(name, self._mem.ptr(buf))
        if not self._context.execute_async_v3(self._mem.handle(stream)):
            raise DcnError(f"TensorRT execute_async_v3 failed for {self.path!r} (see the log above)")
        for name, (o, buf) in outputs.items():
            if o.nbytes:
                self._mem.dtoh(o, buf, stream)
        self._mem.sync(stream)
        result = {name: o for name, (o, _) in outputs.items()}
        if use_torch:
            import torch  # noqa: PLC0415

            result = {k: torch.from_numpy(v) for k, v in result.items()}
        return result

    # ---- lifetime

    def close(self):
        if self._closed:
            return
        self._closed = True
        for buf, _ in self._buffers.values():
            try:
                self._mem.free(buf)
            except Exception:  # noqa: BLE001
                pass
        self._buffers.clear()
        self._context = None
        self._engine = None
        self._mem.close(self._stream)
        self._stream = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass


def _torch_dtype(np_dtype):
    import torch  # noqa: PLC0415

    return {
        "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "int32": torch.int32,
        "int64": torch.int64, "int8": torch.int8, "uint8": torch.uint8, "bool": torch.bool,
    }[str(np_dtype)]


# --------------------------------------------------------------------------- timing


def latency_stats(seconds: Sequence[float], batch: int = 1) -> dict[str, float]:
    """Median / p90 / mean latency (ms) and throughput (inferences/s and samples/s) of timed runs."""
    if not seconds:
        raise DcnError("no timed iterations")
    ms = sorted(s * 1e3 for s in seconds)
    median = statistics.median(ms)
    # p90 by the nearest-rank method: the smallest value with >= 90 % of runs at or below it.
    rank = max(1, -(-9 * len(ms) // 10))
    p90 = ms[rank - 1]
    return {
        "iterations": len(ms),
        "median_ms": median,
        "p90_ms": p90,
        "mean_ms": statistics.fmean(ms),
        "min_ms": ms[0],
        "max_ms": ms[-1],
        "throughput_per_s": 1e3 / median if median > 0 else float("inf"),
        "samples_per_s": batch * 1e3 / median if median > 0 else float("inf"),
        "batch": batch,
    }


def benchmark(engine: Engine, feeds: Mapping[str, Any], iterations: int, warmup: int = 3) -> dict[str, float]:
    """Time ``iterations`` synchronous runs (host<->device copies included for numpy inputs)."""
    if iterations < 1:
        raise DcnError(f"--iterations {iterations}: must be >= 1")
    on_cuda = any(_is_torch(v) and v.is_cuda for v in feeds.values())
    sync = (lambda: __import__("torch").cuda.synchronize()) if on_cuda else (lambda: None)
    for _ in range(max(0, warmup)):
        engine(feeds)
    sync()
    times = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        engine(feeds)
        sync()
        times.append(time.perf_counter() - t0)
    first = next(iter(feeds.values()))
    batch = int(first.shape[0]) if len(first.shape) else 1
    return latency_stats(times, batch)
