"""Device memory for :class:`trt_runtime.infer.Engine`: three interchangeable backends (allocate, copy,
stream, synchronise) and the per-tensor buffers an engine reuses across calls.

* ``"cuda-python"`` (default): ``cuda.bindings.runtime`` (or the older ``cuda.cudart``),
* ``"pycuda"``: ``pycuda.driver`` on the device's primary context (optional extra ``[pycuda]``),
* ``"torch"``: CUDA tensors as raw buffers.
"""
from __future__ import annotations

from typing import Any

from dcn_base.errors import DcnError, one_line

from . import cuda_env, environment

BACKENDS = ("cuda-python", "pycuda", "torch")


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
            import pycuda.driver as cuda  # noqa: PLC0415  (optional extra [pycuda])
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
        import torch  # noqa: PLC0415  (heavy; this backend only)

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


def make_backend(name: str, device: int):
    """The device memory backend ``name`` (BACKENDS) on CUDA device ``device``."""
    if name == "cuda-python":
        return _CudaPython(device)
    if name == "pycuda":
        return _PyCuda(device)
    if name == "torch":
        return _Torch(device)
    raise DcnError(f"backend {name!r}: expected one of {list(BACKENDS)}")


class DeviceBuffers:
    """One device buffer per tensor name, grown when a call needs more and reused otherwise."""

    def __init__(self, mem) -> None:
        self.mem = mem
        self._buffers: dict[str, tuple[Any, int]] = {}

    def get(self, name: str, nbytes: int):
        buf, cap = self._buffers.get(name, (None, 0))
        if buf is None or cap < nbytes:
            if buf is not None:
                del self._buffers[name]  # forgotten before it is freed: a failed alloc below leaves no freed pointer
                self.mem.free(buf)
            cap = max(nbytes, 256)
            buf = self.mem.alloc(cap)
            self._buffers[name] = (buf, cap)
        return buf

    def free_all(self) -> None:
        for buf, _ in self._buffers.values():
            try:
                self.mem.free(buf)
            except Exception:  # noqa: BLE001
                pass
        self._buffers.clear()
