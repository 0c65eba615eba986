"""The DCNv3 / DCNv4 TensorRT plugins' real enqueue on a CUDA device, without TensorRT (tests/helpers/
trt_device.py: the host harness in device mode), in the style of tests/test_trt_device.py.

Every plugin lifecycle step to enqueue on torch CUDA tensors, FP32 and FP16, against the float64 reference
(exporter/ops/dcnv3, dcnv4, on the same device) with dcn_base/tolerance.py: the awkward sweep (tests/helpers/
dcn_sweep.py), InternImage-T layers (stage 1 at 224x224 batch 1 and 32, stage 2 at 512x512 batch 8), X
pointers off the vector alignment (narrower vectors, the scalar path), the grid_sample formulation on CUDA agreeing too,
CUDA graph capture and replay. Without a CUDA device every test skips, naming it.
"""
from __future__ import annotations

import pytest
import torch

from helpers import trt_device as td
from helpers.dcn_grid_sample import dcnv3_grid_sample
from helpers.dcn_sweep import CASES, internimage_case, softmaxed
from exporter.ops.dcnv3.reference import dcnv3
from exporter.ops.dcnv4.reference import dcnv4

pytestmark = pytest.mark.gpu

DTYPES = [torch.float32, torch.float16]
DT_IDS = ["fp32", "fp16"]
OPS = ["DCNv3", "DCNv4"]


@pytest.fixture(scope="module")
def hx():
    why = td.cuda_missing()
    if why:
        pytest.skip(why)
    h = td.DeviceHarness(td.device_harness_path())
    yield h
    torch.cuda.synchronize()
    h.close()


def inputs_of(case, op):
    return [case.x, case.offset, case.mask] if op == "DCNv3" else [case.x, case.offset_mask]


def reference(lay, case, op):
    ins = td.as_reference_inputs(lay)
    return dcnv3(*ins, **case.attrs()) if op == "DCNv3" else dcnv4(*ins, **case.attrs())


def check(hx, case, op, dtype, what, inputs=None):
    lay = td.run_plugin(hx, op, what, case.attrs(), inputs or inputs_of(case, op), dtype)
    torch.cuda.synchronize()
    td.assert_close(lay.output, reference(lay, case, op), dtype, what)
    return lay


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_sweep(hx, case, op, dtype):
    check(hx, case, op, dtype, f"{op} {case.name}")


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("stage,size,batch", [(1, 224, 1), (1, 224, 32), (2, 512, 8)])
def test_internimage_t_layers(hx, stage, size, batch, op, dtype):
    case = internimage_case(stage, size, batch, dtype=torch.float32)
    case.mask = softmaxed(case.mask, case.group)
    check(hx, case, op, dtype, f"{op} InternImage-T stage {stage} at {size}, batch {batch}")


@pytest.mark.parametrize("shift", [1, 4], ids=["one-element-off", "four-elements-off"])
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
def test_misaligned_x_narrows_the_vector_width(hx, dtype, op, shift):
    """X `shift` elements past a 512-byte aligned allocation: one element off, one channel a thread (no
    vector loads); four off, four channels a thread (8 bytes of float16, 16 of float32) where eight would
    fault. The launcher's choice is checked on the host (tests/test_dcnv3_host.py); here the results."""
    case = internimage_case(1, 64, 2, dtype=torch.float32)
    buf = torch.empty(case.x.numel() + shift, dtype=dtype, device="cuda")
    x = buf[shift:].view(case.x.shape)
    x.copy_(case.x)
    check(hx, case, op, dtype, f"{op} X {shift} elements off", [x] + inputs_of(case, op)[1:])


def test_grid_sample_formulation_agrees_on_cuda(hx):
    case = internimage_case(2, 512, 2, dtype=torch.float32)
    lay = check(hx, case, "DCNv3", torch.float32, "DCNv3 vs grid_sample")
    x, off, m = (t.double() for t in lay.inputs)
    want = dcnv3_grid_sample(x, off, m, **case.grid_kwargs())
    td.assert_close(lay.output, want, torch.float32, "grid_sample formulation")


@pytest.mark.parametrize("op", OPS)
def test_enqueue_captured_in_a_cuda_graph_replays_right(hx, op):
    case = internimage_case(1, 224, 2, dtype=torch.float32)
    lay = td.run_plugin(hx, op, "graph", case.attrs(), inputs_of(case, op), torch.float16)
    torch.cuda.synchronize()
    s = torch.cuda.Stream()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g, stream=s):
        assert lay.enqueue(s) == 0
    lay.inputs[0].copy_(torch.randn_like(lay.inputs[0], dtype=torch.float32).half())
    g.replay()
    torch.cuda.synchronize()
    td.assert_close(lay.output, reference(lay, case, op), torch.float16, f"{op} graph replay")
