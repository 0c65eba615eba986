"""Device mode of the TensorRT host harness: the plugins' real enqueue on a CUDA device.

The harness (plugins/trt/testing/trt_host_harness.cpp, built from the real plugin sources,
CUDA kernels and cuBLAS against TensorRT headers, no libnvinfer) stands in for TensorRT.
:func:`run_plugin` drives one plugin through the lifecycle TensorRT gives it for one
layer: createPlugin from fields as the ONNX parser passes them (INT/INTS as kINT32, FLOAT as
kFLOAT32) -> getOutputShapes / supportsFormatCombination / getOutputDataTypes ->
configurePlugin / getWorkspaceSize -> getFieldsToSerialize -> createPlugin in the runtime
phase -> attachToContext (one resource context per execution-context id) -> onShapeChange ->
enqueue on device buffers the caller owns (torch CUDA tensors) and a stream.

Used by tests/test_trt_device.py and benchmarks/bench_plugins_cuda.py (scripts/gpu_check.sh).
Imports only torch, numpy, pytest and exporter.{contract, tolerance, ops}: nothing of onnx,
onnxruntime or Polygraphy (tests/test_gpu_kit.py checks that), so it runs on a GPU machine
with only its own torch.
"""
from __future__ import annotations

import ctypes
import json
import math
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import torch

from test_trt_contract import Harness

REPO = Path(__file__).resolve().parents[2]
GPU_CHECK = REPO / "scripts" / "gpu_check.sh"
TRT_TYPE = {torch.float32: "FP32", torch.float16: "FP16"}


def cuda_missing() -> Optional[str]:
    """Why the device mode cannot run here (one line), or None."""
    if not torch.cuda.is_available():
        return f"no CUDA device (torch {torch.__version__}: torch.cuda.is_available() is False)"
    return None


def device_harness_path() -> Path:
    """The harness library built for this machine's GPU: DCN_HARNESS_LIBRARY, else built now
    by ``scripts/gpu_check.sh --build-harness`` (CMake, the local architecture only)."""
    env = os.environ.get("DCN_HARNESS_LIBRARY")
    if env:
        return Path(env)
    p = subprocess.run(["bash", str(GPU_CHECK), "--build-harness"], cwd=REPO, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"building the device harness failed (exit {p.returncode}):\n{p.stdout[-3000:]}{p.stderr[-3000:]}")
    return Path(p.stdout.strip().splitlines()[-1])


class DeviceHarness(Harness):
    """tests/test_trt_contract.py's Harness plus per-input types, resource contexts and enqueue."""

    def __init__(self, path: Path):
        super().__init__(path)
        L = self.L
        P, I32, I64 = ctypes.c_void_p, ctypes.POINTER(ctypes.c_int32), ctypes.POINTER(ctypes.c_int64)
        L.dcn_harness_attach_context.restype = P
        L.dcn_harness_clone.restype = P
        L.dcn_harness_clone.argtypes = [P]
        L.dcn_harness_attach_context.argtypes = [P, ctypes.c_int32]
        L.dcn_harness_use_registry.argtypes = [ctypes.c_int32]
        L.dcn_harness_resources.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
        L.dcn_harness_shape_change.argtypes = [P, ctypes.c_int32, I32, I64, I32, ctypes.c_int32, I64]
        L.dcn_harness_enqueue.argtypes = [P, ctypes.c_int32, I32, I64, I32, ctypes.c_int32, I64, ctypes.c_int32,
                                          ctypes.POINTER(P), P, P, P]

    def types(self, names: Sequence[str]):
        return (ctypes.c_int32 * len(names))(*[self.enum(t) for t in names])

    def attach_context(self, h, context: int):
        h2 = self.L.dcn_harness_attach_context(h, context)
        if h2:
            self.handles.append(h2)
        return h2

    def clone(self, h):
        h2 = self.L.dcn_harness_clone(h)
        if h2:
            self.handles.append(h2)
        return h2

    def resources(self) -> dict:
        return json.loads(self.text(self.L.dcn_harness_resources))

    def destroy(self, h) -> None:
        self.handles.remove(h)
        self.L.dcn_harness_destroy(h)

    def configure_types(self, h, shapes, out_shape, types: Sequence[str], min_shapes=None):
        """configurePlugin + getWorkspaceSize for a profile from min_shapes (default: shapes) to shapes."""
        ranks, dims = self._flat(shapes)
        mins = self._flat(min_shapes)[1] if min_shapes is not None else None
        ws = ctypes.c_int64()
        rc = self.L.dcn_harness_configure_range(h, len(shapes), ranks, mins, dims, self.types(types), len(out_shape),
                                                (ctypes.c_int64 * 8)(*out_shape), ctypes.byref(ws))
        return rc, ws.value

    def shape_change(self, h, shapes, out_shape, types: Sequence[str]) -> int:
        ranks, dims = self._flat(shapes)
        return self.L.dcn_harness_shape_change(h, len(shapes), ranks, dims, self.types(types), len(out_shape),
                                               (ctypes.c_int64 * 8)(*out_shape))

    def enqueue(self, h, shapes, out_shape, types: Sequence[str], out_type: str, pointers: Sequence[int],
                output: int, workspace: int, stream: int) -> int:
        ranks, dims = self._flat(shapes)
        ptrs = (ctypes.c_void_p * len(pointers))(*[p or None for p in pointers])
        return self.L.dcn_harness_enqueue(h, len(shapes), ranks, dims, self.types(types), len(out_shape),
                                          (ctypes.c_int64 * 8)(*out_shape), self.enum(out_type), ptrs,
                                          output or None, workspace or None, stream or None)


# --------------------------------------------------------------------------- one layer
@dataclass
class Layer:
    """A plugin attached to an execution context, with its device buffers (kept alive here)."""
    hx: DeviceHarness
    handle: int
    shapes: list
    types: list
    out_shape: list
    out_type: str
    inputs: list            # torch CUDA tensors or None (an empty optional input)
    output: torch.Tensor
    workspace: torch.Tensor
    workspace_bytes: int
    misalign: int
    keep: list = field(default_factory=list)

    def guard_intact(self) -> bool:
        """The bytes after the workspace (run_plugin's guard) still hold 0xA5."""
        tail = self.workspace[self.workspace_bytes + self.misalign:]
        return bool((tail == 0xA5).all())

    @property
    def workspace_ptr(self) -> int:
        return self.workspace.data_ptr() + self.misalign if self.workspace_bytes else 0

    def enqueue(self, stream: Optional[torch.cuda.Stream] = None) -> int:
        s = stream if stream is not None else torch.cuda.current_stream()
        ptrs = [t.data_ptr() if t is not None else 0 for t in self.inputs]
        return self.hx.enqueue(self.handle, self.shapes, self.out_shape, self.types, self.out_type, ptrs,
                               self.output.data_ptr(), self.workspace_ptr, s.cuda_stream)


def _input_types(hx: DeviceHarness, h, dtype: torch.dtype, shapes: list, float32_at: Sequence[int]) -> list[str]:
    """The data type of each input as TensorRT would pick it: the run's type, or FP32 where the
    plugin accepts only that (e.g. rois: coordinates never in half)."""
    want = TRT_TYPE[dtype]
    types = [want] * len(shapes)
    n = len(shapes)
    for pos in range(n):
        if want == "FP16" and pos in float32_at:
            trial = types.copy()
            if not hx.supports(h, pos, trial + [want], ["LINEAR"] * (n + 1), n):
                trial[pos] = "FP32"
                types = trial
    return types


def run_plugin(hx: DeviceHarness, op: str, layer: str, fields: dict, inputs: Sequence[Optional[torch.Tensor]],
               dtype: torch.dtype, *, context: int = 0, misalign: int = 0, float32_at: Sequence[int] = (),
               poison: bool = True, device: str = "cuda", expect_ok: bool = True, profile=None,
               guard: int = 0) -> Layer:
    """The whole lifecycle of one plugin layer; returns the attached layer after one enqueue on
    the current stream (output in layer.output; not synchronised). `inputs`: float64 or
    dtype tensors (moved to CUDA and cast; None = an empty optional input, rank 0, null
    pointer); `float32_at`: inputs kept in float32 when the plugin asks so; `misalign`: bytes
    added to the workspace pointer TensorRT would hand over (its alignment is undocumented).
    device="cpu", expect_ok=False: the host dry run (tests/test_trt_robustness.py): every step
    up to enqueue, which then fails before touching memory (no GPU). `profile`: (min shapes, max
    shapes) the engine is built for (default: the inputs' own), the inputs' shapes run inside it;
    `guard`: bytes after the workspace TensorRT hands over, filled with 0xA5 (guard_intact() checks)."""
    shapes = [list(t.shape) if t is not None else [] for t in inputs]
    h = hx.create(op, layer, fields)
    assert h, hx.log()
    types = _input_types(hx, h, dtype, shapes, float32_at)
    n = len(shapes)
    for pos in range(n + 1):
        assert hx.supports(h, pos, types + [TRT_TYPE[dtype]], ["LINEAR"] * (n + 1), n), (op, pos, types, hx.log())
    rc, out_code = hx.output_type(h, types)
    assert rc == 0, hx.log()
    out_type = next(t for t in ("FP32", "FP16") if hx.enum(t) == out_code)
    rc, out_shape, _ = hx.output_shape(h, shapes, [[False] * len(s) for s in shapes])
    assert rc == 0, hx.log()
    if profile is not None:  # built for a range of shapes: the largest's output, the profile's minimum
        rc, max_out, _ = hx.output_shape(h, profile[1], [[False] * len(s) for s in profile[1]])
        assert rc == 0, hx.log()
        rc, ws = hx.configure_types(h, profile[1], max_out, types, min_shapes=profile[0])
    else:
        rc, ws = hx.configure_types(h, shapes, out_shape, types)
    assert rc == 0, hx.log()
    h_rt = hx.roundtrip(h, layer)  # getFieldsToSerialize -> createPlugin(kRUNTIME)
    assert h_rt, hx.log()
    h_ctx = hx.attach_context(h_rt, context)
    assert h_ctx, hx.log()
    assert hx.shape_change(h_ctx, shapes, out_shape, types) == 0, hx.log()
    dev = [None if t is None else t.to(device=device, dtype=torch.float32 if ty == "FP32" else torch.float16).contiguous()
           for t, ty in zip(inputs, types)]
    out_dtype = torch.float32 if out_type == "FP32" else torch.float16
    out = torch.full(out_shape, float("nan"), dtype=out_dtype, device=device) if poison else \
        torch.empty(out_shape, dtype=out_dtype, device=device)
    wsbuf = torch.empty(ws + misalign + guard if ws else 0, dtype=torch.uint8, device=device)
    if ws and guard:
        wsbuf[ws + misalign:] = 0xA5
    lay = Layer(hx, h_ctx, shapes, types, out_shape, out_type, dev, out, wsbuf, ws, misalign)
    rc = lay.enqueue() if device == "cuda" else lay.hx.enqueue(
        h_ctx, shapes, out_shape, types, out_type, [t.data_ptr() if t is not None else 0 for t in dev],
        out.data_ptr(), lay.workspace_ptr, 0)
    assert (rc == 0) == expect_ok, hx.log()
    return lay


def as_reference_inputs(lay: Layer) -> list[Optional[torch.Tensor]]:
    """The inputs the plugin saw (after casting), in float64 on the same device."""
    return [None if t is None else t.double() for t in lay.inputs]


def kernel_launches(fn) -> Optional[dict[str, int]]:
    """{name: launches} of the CUDA kernels fn() launches (torch.profiler: the plugin library's kernels
    too); None under compute-sanitizer (DCN_UNDER_SANITIZER, set by scripts/gpu_check.sh), which holds
    the profiling interface CUPTI itself."""
    from torch.profiler import ProfilerActivity, profile

    if os.environ.get("DCN_UNDER_SANITIZER"):
        return None
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    return {ev.key: ev.count for ev in prof.key_averages()}


def kernels_launched(fn) -> Optional[set[str]]:
    """Names of the CUDA kernels fn() launches (kernel_launches); None under compute-sanitizer."""
    counts = kernel_launches(fn)
    return None if counts is None else set(counts)


# --------------------------------------------------------------------------- timing
TIME_SAMPLE_MS, TIME_MAX_REPS = 0.5, 20  # time_ms: calls per event pair until a sample spans ~0.5 ms
TIME_QUEUE_CYCLES = 2_000_000  # time_ms: a GPU sleep (~1 ms) queued before each sample's first event


def time_ms(fn, *, iterations: int = 50, warmup: int = 10, stream: Optional[torch.cuda.Stream] = None) -> float:
    """Median over `iterations` samples of the GPU time per call, each sample timed with CUDA events on
    `stream` around `reps` back-to-back calls (as many as make a sample of about TIME_SAMPLE_MS, at most
    TIME_MAX_REPS), queued behind a GPU sleep (TIME_QUEUE_CYCLES): the host launches the calls while the
    GPU sleeps, so a short kernel's time is its own, not the host's launch time (Python, ctypes, enqueue)."""
    s = stream if stream is not None else torch.cuda.current_stream()
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def sample(reps: int) -> float:
        torch.cuda._sleep(TIME_QUEUE_CYCLES)  # on `stream` (the current one here): the calls queue behind it
        a.record(s)
        for _ in range(reps):
            fn()
        b.record(s)
        b.synchronize()
        return a.elapsed_time(b) / reps

    with torch.cuda.stream(s):
        for _ in range(warmup):
            fn()
        reps = max(1, min(TIME_MAX_REPS, math.ceil(TIME_SAMPLE_MS / max(sample(1), 1e-4))))
        times = sorted(sample(reps) for _ in range(iterations))
    return times[len(times) // 2]


# --------------------------------------------------------------------------- cases
CONV_OP, POOL_OP, ROI_OP = "DeformConv2d", "DeformPSROIPool", "DeformRoIPool"
FUSED_ENV = "DCN_DEFORM_CONV_FUSED"  # deform_conv2d_plan.h: 0 off, 1 on, force (no SM-count rule)
FUSED_KERNEL_ENV = "DCN_DEFORM_CONV_FUSED_KERNEL"  # deform_conv2d_plan.h: pipelined, else one-stage
FP32_GEMM_ENV = "DCN_DEFORM_CONV_FP32_GEMM"  # deform_conv2d_plan.h: 3xtf32, else SGEMM
IM2COL_ENV = "DCN_DEFORM_CONV_IM2COL"  # deform_conv2d_plan.h: nhwc (the channels-last im2col), else NCHW

# kernel name (as the profiler shows it) of each DeformConv2d path's main kernel (3xtf32: the
# im2col path whose FP32 GEMM runs as three TF32 GEMMs; its own kernel is the weight split)
PATH_KERNELS = {"im2col": "dcn_deform_im2col_kernel", "fused": "dcn_deform_conv_fused_kernel",
                "pipelined": "dcn_deform_conv_fused_pipelined_kernel", "3xtf32": "dcn_split_tf32_kernel",
                "nhwc": "dcn_nhwc_im2col_kernel"}


class conv_path:
    """Context manager: the DeformConv2d path the plugin takes in this process ("im2col", "fused":
    the one-stage FP16 implicit-GEMM kernel wherever it applies, "pipelined": the two-stage one,
    "3xtf32": im2col with FP32's GEMM as three TF32 GEMMs, "nhwc": the channels-last im2col (FP16) where it
    applies, "auto": the plan's default)."""

    VALUES = {"im2col": ("0", None, None, None), "fused": ("force", "one-stage", None, None),
              "pipelined": ("force", "pipelined", None, None), "3xtf32": ("0", None, "3xtf32", None),
              "nhwc": ("0", None, None, "nhwc"), "auto": (None, None, None, None)}

    def __init__(self, path: str):
        self.values = dict(zip((FUSED_ENV, FUSED_KERNEL_ENV, FP32_GEMM_ENV, IM2COL_ENV), self.VALUES[path]))

    def __enter__(self):
        self.old = {k: os.environ.get(k) for k in self.values}
        self._set(self.values)
        return self

    def __exit__(self, *exc):
        self._set(self.old)

    @staticmethod
    def _set(values):
        for k, v in values.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def conv_inputs(case, *, empty_bias: bool = False) -> list:
    """X, W, offset[, B[, mask]] of a tests/helpers/sweep.py ConvCase, as the ONNX node has them. With
    a mask and no bias: B is an empty optional input (None) if `empty_bias`, else zeros (what
    dcn-export writes)."""
    ins = [case.x, case.weight, case.offset]
    if case.mask is not None:
        b = case.bias
        if b is None:
            b = None if empty_bias else torch.zeros(case.weight.shape[0], dtype=case.x.dtype)
        ins += [b, case.mask]
    elif case.bias is not None:
        ins.append(case.bias)
    return ins


def conv_reference(lay: Layer, case) -> torch.Tensor:
    from exporter.ops.deform_conv2d.reference import deform_conv2d

    x, w, off = as_reference_inputs(lay)[:3]
    rest = as_reference_inputs(lay)[3:]
    b = rest[0] if rest else None
    mask = rest[1] if len(rest) > 1 else None
    return deform_conv2d(x, off, w, b, stride=case.strides, padding=case.pads, dilation=case.dilations, mask=mask)


def pool_inputs(case) -> list:
    return [case.data, case.rois] + ([case.trans] if case.trans is not None else [])


def pool_reference(lay: Layer, case) -> torch.Tensor:
    from exporter.ops.deform_psroi_pool.reference import deform_psroi_pool

    ins = as_reference_inputs(lay)
    a = case.attrs
    trans = ins[2] if len(ins) > 2 and not a["no_trans"] else None
    return deform_psroi_pool(ins[0], ins[1], trans, spatial_scale=a["spatial_scale"], output_dim=a["output_dim"],
                             group_size=a["group_size"], pooled_size=a["pooled_size"], part_size=a["part_size"],
                             sample_per_part=a["sample_per_part"], trans_std=a["trans_std"])


def roi_inputs(case) -> list:
    return [case.data, case.rois] + ([case.trans] if case.trans is not None else [])


def roi_reference(lay: Layer, case) -> torch.Tensor:
    from exporter.ops.deform_roi_pool.reference import deform_roi_pool

    ins = as_reference_inputs(lay)
    return deform_roi_pool(ins[0], ins[1], ins[2] if len(ins) > 2 else None, **case.attrs)


def mmdet_roi_case(rois: int = 512, *, sampling_ratio: int = 2, offsets: bool = True, seed: int = 0,
                   channels: int = 256, dtype=torch.float64):
    """mmdet's dpool / mdpool head (DeformRoIPoolPack, 7x7, gamma 0.1) on a stride-16 map of an
    800x1333 image: RoIs inside, partly and wholly off the image, zero-size (x1 = x2, y1 = y2) and
    inverted ones; offsets like the head's fc output (or none: plain RoIAlign)."""
    from .sweep import PoolCase

    g = torch.Generator().manual_seed(seed)
    H, W, P = 50, 84, 7
    data = torch.randn(2, channels, H, W, generator=g, dtype=dtype)
    xy = torch.rand(rois, 2, generator=g, dtype=dtype) * torch.tensor([1333.0, 800.0], dtype=dtype)
    wh = torch.rand(rois, 2, generator=g, dtype=dtype) * 400 + 8
    boxes = torch.cat([torch.randint(0, 2, (rois, 1), generator=g).to(dtype), xy, xy + wh], dim=1)
    k = max(1, rois // 16)
    boxes[:k, 1:] -= 900                       # wholly off the image (above / left)
    boxes[k:2 * k, 3:] = boxes[k:2 * k, 1:3]   # zero-size
    boxes[2 * k:3 * k, 1:] = boxes[2 * k:3 * k, [3, 4, 1, 2]]  # inverted
    trans = torch.randn(rois, 2, P, P, generator=g, dtype=dtype) * 0.3 if offsets else None
    attrs = dict(pooled_height=P, pooled_width=P, spatial_scale=1 / 16, sampling_ratio=sampling_ratio, gamma=0.1)
    return PoolCase(data, boxes, trans, attrs)


def unit_weights(case):
    """Weights scaled to unit output variance (std 1/sqrt(fan_in), like a trained layer), so the
    float16 row of dcn_base/tolerance.py, written for unit-scale data, applies."""
    fan_in = case.weight.shape[1] * case.weight.shape[2] * case.weight.shape[3]
    case.weight = case.weight / fan_in ** 0.5
    return case


# ResNet-50-DCN c3-c5 (mmdetection dconv_c3-c5, DCNv2: 3x3, stride 1 in the blocks that follow the
# first, no bias, mask) at a 1333x800 input: feature maps at strides 8, 16, 32.
RESNET_LAYERS = [("c3", 128, 100, 167), ("c4", 256, 50, 84), ("c5", 512, 25, 42)]


def resnet_case(stage: str, batch: int = 1, seed: int = 0, dtype=torch.float64):
    from .sweep import ConvCase

    _, C, H, W = next(r for r in RESNET_LAYERS if r[0] == stage)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, C, H, W, generator=g, dtype=dtype)
    w = torch.randn(C, C, 3, 3, generator=g, dtype=dtype) / (C * 9) ** 0.5
    off = torch.randn(batch, 18, H, W, generator=g, dtype=dtype) * 2 + 0.123
    mask = torch.rand(batch, 9, H, W, generator=g, dtype=dtype)
    return ConvCase(x, w, off, None, mask, (1, 1), (1, 1, 1, 1), (1, 1), 1, 1)


def chunked_case(batch: int = 33, seed: int = 0):
    """Big enough per image (64ch 3x3 over 64x64: 9.4 MB of FP32 columns, 4.7 MB of FP16) that batch 33 runs
    in chunks of the column buffer with a remainder (FP32 27 + 6 at the default 256 MiB; FP16 only under a
    lower cap: 13 + 13 + 7 at DCN_DEFORM_CONV_COLUMNS_MB=64), with groups, offset groups, bias, mask."""
    from .sweep import ConvCase

    g = torch.Generator().manual_seed(seed)
    N, C, H, W, M = batch, 64, 64, 64, 32
    x = torch.randn(N, C, H, W, generator=g, dtype=torch.float64)
    w = torch.randn(M, C // 2, 3, 3, generator=g, dtype=torch.float64) / (C // 2 * 9) ** 0.5
    off = torch.randn(N, 2 * 2 * 9, H, W, generator=g, dtype=torch.float64) * 1.5 + 0.123
    mask = torch.rand(N, 2 * 9, H, W, generator=g, dtype=torch.float64)
    b = torch.randn(M, generator=g, dtype=torch.float64)
    return ConvCase(x, w, off, b, mask, (1, 1), (1, 1, 1, 1), (1, 1), 2, 2)


def rfcn_case(rois: int = 300, seed: int = 0, dtype=torch.float64):
    """R-FCN head (Dai et al.): c4 features at stride 16 of a 1333x800 image, 21 classes,
    group_size = pooled_size = part_size 7, sample_per_part 4, trans_std 0.1, class-agnostic offsets."""
    from .sweep import PoolCase

    g = torch.Generator().manual_seed(seed)
    H, W, D, G = 50, 84, 21, 7
    data = torch.randn(1, D * G * G, H, W, generator=g, dtype=dtype)
    xy = torch.rand(rois, 2, generator=g, dtype=dtype) * torch.tensor([1333.0, 800.0], dtype=dtype)
    wh = torch.rand(rois, 2, generator=g, dtype=dtype) * 400 + 16
    boxes = torch.cat([torch.zeros(rois, 1, dtype=dtype), xy, (xy + wh)], dim=1)
    trans = torch.randn(rois, 2, G, G, generator=g, dtype=dtype) * 0.5
    attrs = dict(spatial_scale=1 / 16, output_dim=D, group_size=G, pooled_size=G, part_size=G, sample_per_part=4,
                 trans_std=0.1, no_trans=0)
    return PoolCase(data, boxes, trans, attrs)


def assert_close(got: torch.Tensor, want: torch.Tensor, dtype: torch.dtype, what: str) -> None:
    """dcn_base/tolerance.py's row for dtype; every element written (the output was NaN-poisoned)."""
    import numpy as np

    from dcn_base.tolerance import tolerance

    atol, rtol = tolerance(dtype)
    g = got.double().cpu().numpy()
    w = want.double().cpu().numpy()
    assert g.shape == w.shape, f"{what}: shape {g.shape}, expected {w.shape}"
    np.testing.assert_allclose(g, w, atol=atol, rtol=rtol, err_msg=what)
