"""CUDA in this environment: the lazy ``cuda.bindings.runtime`` import, the device count, and
checked CUDA calls."""
from __future__ import annotations


from dcn_base.errors import one_line
from .environment import CudaUnavailable, TrtEnvironmentError


def import_cudart():
    """cuda-python's runtime module: ``cuda.bindings.runtime`` (>= 12.6) or ``cuda.cudart``."""
    try:
        from cuda.bindings import runtime as cudart  # noqa: PLC0415

        return cudart
    except ImportError:
        pass
    try:
        from cuda import cudart  # noqa: PLC0415

        return cudart
    except ImportError as err:
        raise CudaUnavailable(
            f"cuda-python is not installed ({one_line(err)}); install it with `pip install 'dcn-deploy[tensorrt]'` "
            "or `pip install cuda-python`"
        ) from None


def cuda_device_count() -> tuple[int, str]:
    """(number of CUDA devices, reason when 0). Uses cuda-python, else torch."""
    try:
        cudart = import_cudart()
    except CudaUnavailable as err:
        try:
            import torch  # noqa: PLC0415
        except ImportError:
            return 0, str(err)
        if torch.cuda.is_available():
            return torch.cuda.device_count(), ""
        return 0, "torch.cuda.is_available() is False"
    try:
        err, count = cudart.cudaGetDeviceCount()
    except Exception as exc:  # noqa: BLE001  (driver library missing / broken)
        return 0, one_line(exc)
    if int(err) != 0:
        try:
            _, text = cudart.cudaGetErrorString(err)
            text = text.decode() if isinstance(text, bytes) else str(text)
        except Exception:  # noqa: BLE001
            text = str(err)
        name = getattr(err, "name", str(err))
        return 0, f"{text} ({name})"
    return int(count), "" if count else "cudaGetDeviceCount() found 0 devices"


def require_cuda_device() -> None:
    count, why = cuda_device_count()
    if count <= 0:
        raise CudaUnavailable(
            f"no CUDA device: {why}; TensorRT engines need an NVIDIA GPU with its driver installed"
        )


def check_cuda(result, what: str):
    """Unpack a cuda-python call's (err, *values) tuple; raise DcnError naming the call on failure."""
    if not isinstance(result, tuple):
        result = (result,)
    err, rest = result[0], result[1:]
    if int(err) != 0:
        raise TrtEnvironmentError(f"CUDA error in {what}: {getattr(err, 'name', err)}")
    if not rest:
        return None
    return rest[0] if len(rest) == 1 else rest
