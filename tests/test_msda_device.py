"""GPU: the MultiScaleDeformableAttention plugin's real enqueue (host harness, device mode) against the
float64 reference on awkward cases, FP32 / FP16 values x INT32 / INT64 index inputs, levels that do not
fit value's S (read nothing), the benchmark shapes, two execution contexts on two streams. Skips here
(no CUDA device) naming what is missing; scripts/gpu_check.sh builds the harness on a GPU machine."""
from __future__ import annotations

import pytest
import torch

from exporter.ops.multi_scale_deformable_attention.reference import multi_scale_deformable_attention as ref
from dcn_base.tolerance import tolerance
from helpers import msda_device as md
from helpers import trt_device as td
from helpers.msda_cases import awkward_cases, make_case

pytestmark = pytest.mark.gpu

CASES = awkward_cases()


@pytest.fixture(scope="module")
def hx():
    why = td.cuda_missing()
    if why:
        pytest.skip(why)
    h = td.DeviceHarness(td.device_harness_path())
    yield h
    h.close()


def _check(got, want, dtype, what):
    atol, rtol = tolerance(dtype)
    scale = max(1.0, float(want.abs().max())) if want.numel() else 1.0
    g, w = got.double().cpu(), want.double().cpu()
    assert g.shape == w.shape, what
    torch.testing.assert_close(g, w, atol=atol * scale, rtol=rtol, msg=what)


@pytest.mark.parametrize("index", [torch.int64, torch.int32], ids=["int64", "int32"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("c", CASES, ids=[c.name for c in CASES])
def test_plugin_equals_reference(hx, c, dtype, index):
    v, s, st, loc, w = c.inputs()
    lay = md.run_msda(hx, v, s, st, loc, w, dtype, index)
    torch.cuda.synchronize()
    vi, _, _, li, wi = (t.double().cpu() if t.is_floating_point() else t for t in lay.inputs)
    _check(lay.output, ref(vi, s, st, li, wi), dtype, f"{c.name} {dtype} {index}")


@pytest.mark.parametrize("split", ["1", "2", "8"], ids=["plain", "split2", "split8"])
@pytest.mark.parametrize("name,levels,N,Lq", [("rt-detr decoder batch 1", md.RTDETR_640, 1, 300),
                                              ("small", [(9, 7), (4, 5)], 2, 33)])
def test_split_kernel_and_plain_kernel(hx, monkeypatch, name, levels, N, Lq, split):
    """DCN_MSDA_SPLIT forces the plain kernel (1) or the split kernel (K point slices, shared-memory sums)
    at the sizes where the launcher would pick the split kernel."""
    monkeypatch.setenv("DCN_MSDA_SPLIT", split)
    v, s, st, loc, w = md.bench_case(levels, N, Lq, device="cpu", dtype=torch.float64)
    want = ref(v, s, st, loc.double(), w)
    for dtype in (torch.float32, torch.float16):
        lay = md.run_msda(hx, v, s, st, loc, w, dtype)
        torch.cuda.synchronize()
        _check(lay.output, want, dtype, f"{name} split {split} {dtype}")


@pytest.mark.parametrize("D", [1, 3, 6, 32, 64, 200])
def test_every_vector_width(hx, D):
    c = make_case("D", [(9, 7), (4, 5)], N=2, Lq=33, M=3, D=D, P=3, seed=D, spread=0.5)
    for dtype in (torch.float32, torch.float16):
        lay = md.run_msda(hx, *c.inputs(), dtype)
        torch.cuda.synchronize()
        vi, _, _, li, wi = (t.double().cpu() if t.is_floating_point() else t for t in lay.inputs)
        _check(lay.output, ref(vi, c.shapes, c.starts, li, wi), dtype, f"D {D} {dtype}")


def test_levels_that_do_not_fit_read_nothing(hx):
    c = make_case("bad", [(4, 5), (2, 3)], N=1, Lq=4, M=1, D=4, P=2, seed=23)
    v, s, st, loc, w = c.inputs()
    level0 = ref(v[:, :20], s[:1], st[:1], loc[:, :, :, :1].contiguous(), w[:, :, :, :1].contiguous())
    for starts, shapes in (([0, 21], [[4, 5], [2, 3]]), ([0, -5], [[4, 5], [2, 3]]), ([0, 20], [[4, 5], [2, 2**40]])):
        lay = md.run_msda(hx, v, torch.tensor(shapes), torch.tensor(starts), loc, w, torch.float32)
        torch.cuda.synchronize()
        _check(lay.output, level0, torch.float32, f"levels {shapes} {starts}")


@pytest.mark.parametrize("name,levels,N,Lq", [("rt-detr decoder", md.RTDETR_640, 8, 300),
                                              ("deformable detr encoder", md.DDETR_800x1333, 1, 22223)])
def test_benchmark_shapes(hx, name, levels, N, Lq):
    v, s, st, loc, w = md.bench_case(levels, N, Lq, device="cpu", dtype=torch.float64)
    want = ref(v, s, st, loc.double(), w)
    for dtype in (torch.float32, torch.float16):
        lay = md.run_msda(hx, v, s, st, loc, w, dtype)
        torch.cuda.synchronize()
        _check(lay.output, want, dtype, f"{name} {dtype}")


def test_two_contexts_two_streams(hx):
    c = make_case("ctx", [(16, 12), (8, 6)], N=2, Lq=64, M=4, D=16, P=4, seed=31)
    a = md.run_msda(hx, *c.inputs(), torch.float32, context=0)
    b = md.run_msda(hx, *c.inputs(), torch.float16, context=1)
    s1, s2 = torch.cuda.Stream(), torch.cuda.Stream()
    a.output.fill_(float("nan")), b.output.fill_(float("nan"))
    torch.cuda.synchronize()
    assert a.enqueue(s1) == 0 and b.enqueue(s2) == 0
    torch.cuda.synchronize()
    want = ref(*c.inputs())
    _check(a.output, want, torch.float32, "context 0")
    _check(b.output, want, torch.float16, "context 1")
