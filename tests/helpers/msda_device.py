"""The MultiScaleDeformableAttention plugin's real enqueue on a CUDA device through the host harness
(tests/helpers/trt_device.py's DeviceHarness: createPlugin -> formats / types / shapes -> configure ->
serialize round trip -> attachToContext -> onShapeChange -> enqueue), with its integer index inputs
(trt_device.run_plugin casts every input to the float type). Used by tests/test_msda_device.py and
benchmarks/bench_plugins_cuda.py; imports only torch and the repo."""
from __future__ import annotations

from dataclasses import dataclass

import torch

OP = "MultiScaleDeformableAttention"
TRT = {torch.float32: "FP32", torch.float16: "FP16", torch.int32: "INT32", torch.int64: "INT64"}


@dataclass
class MsdaLayer:
    hx: object
    handle: int
    shapes: list
    types: list
    out_shape: list
    out_type: str
    inputs: list
    output: torch.Tensor

    def enqueue(self, stream=None) -> int:
        s = stream if stream is not None else torch.cuda.current_stream()
        return self.hx.enqueue(self.handle, self.shapes, self.out_shape, self.types, self.out_type,
                               [t.data_ptr() if t.numel() else 0 for t in self.inputs], self.output.data_ptr(), 0,
                               s.cuda_stream)


def run_msda(hx, value, spatial_shapes, level_start_index, sampling_locations, attention_weights, dtype,
             index_dtype=torch.int64, layer: str = "decoder.layers.0.cross_attn", context: int = 0) -> MsdaLayer:
    """One plugin layer through the whole life cycle and one enqueue on the current stream (output
    NaN-poisoned first; not synchronised)."""
    dev = [value.to("cuda", dtype), spatial_shapes.to("cuda", index_dtype), level_start_index.to("cuda", index_dtype),
           sampling_locations.to("cuda", torch.float32), attention_weights.to("cuda", dtype)]
    dev = [t.contiguous() for t in dev]
    shapes = [list(t.shape) for t in dev]
    types = [TRT[t.dtype] for t in dev]
    h = hx.create(OP, layer, {"im2col_step": 64})
    assert h, hx.log()
    n = len(dev)
    for pos in range(n + 1):
        assert hx.supports(h, pos, types + [TRT[dtype]], ["LINEAR"] * (n + 1), n), (pos, types, hx.log())
    rc, out_code = hx.output_type(h, types)
    assert rc == 0 and out_code == hx.enum(TRT[dtype]), hx.log()
    rc, out_shape, _ = hx.output_shape(h, shapes, [[False] * len(s) for s in shapes])
    assert rc == 0, hx.log()
    rc, ws = hx.configure_types(h, shapes, out_shape, types)
    assert rc == 0 and ws == 0, hx.log()
    h_rt = hx.roundtrip(h, layer)
    assert h_rt, hx.log()
    h_ctx = hx.attach_context(h_rt, context)
    assert h_ctx, hx.log()
    assert hx.shape_change(h_ctx, shapes, out_shape, types) == 0, hx.log()
    out = torch.full(out_shape, float("nan"), dtype=dtype, device="cuda")
    lay = MsdaLayer(hx, h_ctx, shapes, types, out_shape, TRT[dtype], dev, out)
    assert lay.enqueue() == 0, hx.log()
    return lay


# (name, N, levels, Lq, M, P, D): the benchmark rows (strides 8/16/32(/64) of the input)
RTDETR_640 = [(80, 80), (40, 40), (20, 20)]
DDETR_800x1333 = [(100, 167), (50, 84), (25, 42), (13, 21)]


def bench_case(levels, N, Lq, M=8, P=4, D=32, seed=0, dtype=torch.float32, device="cuda"):
    """value, shapes, starts, locations (around reference points, some off the map), weights (softmax)."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    shapes = torch.tensor(levels, dtype=torch.int64)
    areas = shapes[:, 0] * shapes[:, 1]
    starts = torch.cat([areas.new_zeros(1), areas.cumsum(0)[:-1]])
    S, L = int(areas.sum()), len(levels)
    value = torch.randn(N, S, M, D, generator=g).to(device, dtype)
    ref = torch.rand(N, Lq, 1, 1, 1, 2, generator=g)
    loc = (ref + torch.randn(N, Lq, M, L, P, 2, generator=g) * 0.05).to(device)
    w = torch.randn(N, Lq, M, L * P, generator=g).softmax(-1).view(N, Lq, M, L, P).to(device, dtype)
    return value, shapes.to(device), starts.to(device), loc, w


def bytes_moved(value, loc, w, out) -> int:
    return sum(t.numel() * t.element_size() for t in (value, loc, w, out))
