"""The TensorRT plugins' real enqueue on a CUDA device, without TensorRT (tests/helpers/trt_device.py).

Each test drives a plugin through TensorRT's lifecycle in the host harness and runs enqueue on
torch CUDA tensors: the awkward sweep of tests/helpers/sweep.py, batch 33 (two chunks of the column
buffer), ResNet-50-DCN c3-c5 layers at 1333x800 (no bias: an empty optional B, with a mask),
an R-FCN head with 300 RoIs, FP32 and FP16; outputs against the float64 reference with
dcn_base/tolerance.py. DeformConv2d on both of its paths (im2col + cuBLAS, and the fused FP16
implicit-GEMM kernels, forced where they apply) and FP32 with its GEMM as 3xTF32; DeformRoIPool on mmdet's dpool / mdpool heads
(FP32 / FP16, with and without offsets, RoIs off the image, zero-size and inverted RoIs, no RoIs).
Then: enqueue captured in a CUDA graph and replayed; two execution contexts enqueuing
concurrently on two streams. Without a CUDA device every test skips, naming it.
scripts/gpu_check.sh runs this file (and compute-sanitizer over the "small" ones).
"""
from __future__ import annotations

import threading

import pytest
import torch

from helpers import trt_device as td
from helpers.sweep import CONV_SPECS, FUSED_CASES, POOL_SPECS, make_conv_case, make_fused_case, make_pool_case

pytestmark = pytest.mark.gpu

DTYPES = [torch.float32, torch.float16]
DT_IDS = ["fp32", "fp16"]


@pytest.fixture(scope="module")
def hx():
    why = td.cuda_missing()
    if why:
        pytest.skip(why)
    h = td.DeviceHarness(td.device_harness_path())
    yield h
    torch.cuda.synchronize()
    h.close()


def check_conv(hx, case, dtype, *, what, empty_bias=False, misalign=0, context=0):
    lay = td.run_plugin(hx, td.CONV_OP, what, case.attrs(), td.conv_inputs(case, empty_bias=empty_bias), dtype,
                        misalign=misalign, context=context)
    torch.cuda.synchronize()
    td.assert_close(lay.output, td.conv_reference(lay, case), dtype, what)
    return lay


def check_pool(hx, case, dtype, *, what):
    lay = td.run_plugin(hx, td.POOL_OP, what, case.attrs, td.pool_inputs(case), dtype, float32_at=(1,))
    torch.cuda.synchronize()
    td.assert_close(lay.output, td.pool_reference(lay, case), dtype, what)
    return lay


# --------------------------------------------------------------------------- DeformConv2d
@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("spec", CONV_SPECS, ids=[s[0] for s in CONV_SPECS])
def test_conv_sweep(hx, spec, dtype):
    # workspace pointer 16 bytes off a 256-byte boundary: the plugin aligns it itself
    check_conv(hx, td.unit_weights(make_conv_case(spec)), dtype, what=f"conv {spec[0]}", misalign=16)


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
def test_conv_empty_bias_with_mask(hx, dtype):
    case = td.unit_weights(make_conv_case(CONV_SPECS[1]))
    case.bias = None
    lay = check_conv(hx, case, dtype, what="conv no bias, mask", empty_bias=True)
    assert lay.shapes[3] == [] and lay.inputs[3] is None


@pytest.mark.parametrize("path,dtype", [("im2col", torch.float32), ("im2col", torch.float16), ("nhwc", torch.float16)],
                         ids=["im2col-fp32", "im2col-fp16", "nhwc-fp16"])
def test_conv_smaller_shapes_of_a_dynamic_profile_stay_in_the_workspace(hx, path, dtype):
    """An engine built for 1x32x3x3 .. 2x32x8x8 run at 2x32x7x7: the largest output area (64) needs no
    staging, 49 does (ld 56 in FP16 / 52 in FP32) and its staged output and cuBLAS workspace must fit in what
    getWorkspaceSize asked for at the profile (sized for the largest shapes alone, they ended past it); on the
    NCHW im2col and on the FP16 channels-last one (its copy of X besides)."""
    spec = ("dynamic-profile", 2, 32, 7, 7, 256, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1, 1, True, True, 1.0)
    case = td.unit_weights(make_conv_case(spec))
    ins = td.conv_inputs(case)
    at = lambda n, h: [[n, 32, h, h], list(ins[1].shape), [n, 18, h, h], [256], [n, 9, h, h]]  # noqa: E731
    with td.conv_path(path):
        lay = td.run_plugin(hx, td.CONV_OP, "conv dynamic profile", case.attrs(), ins, dtype,
                            profile=(at(1, 3), at(2, 8)), guard=1 << 20)
        torch.cuda.synchronize()
    td.assert_close(lay.output, td.conv_reference(lay, case), dtype, "conv dynamic profile")
    assert lay.guard_intact(), "enqueue wrote past the workspace getWorkspaceSize asked for"


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
def test_conv_batch33_runs_in_chunks(hx, dtype, monkeypatch):
    """Chunks with a remainder in both types: a 64 MiB column cap (read at enqueue; the workspace stays sized
    for the default) makes FP16 13 + 13 + 7 images and FP32 6 x 5 + 3 (at 256 MiB FP16 fits one chunk)."""
    monkeypatch.setenv("DCN_DEFORM_CONV_COLUMNS_MB", "64")
    with td.conv_path("im2col"):
        lay = check_conv(hx, td.chunked_case(33), dtype, what="conv batch 33")
        counts = td.kernel_launches(lay.enqueue)
    im2col = sum(n for k, n in (counts or {}).items() if td.PATH_KERNELS["im2col"] in k)
    assert counts is None or im2col >= 3, counts  # one launch a chunk at least


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("stage", [r[0] for r in td.RESNET_LAYERS])
def test_resnet50_dcn_layers_1333x800(hx, stage, dtype):
    check_conv(hx, td.resnet_case(stage), dtype, what=f"resnet50-dcn {stage}", empty_bias=True)


# --------------------------------------------------------------------------- DeformConv2d, fused FP16 path
@pytest.mark.parametrize("path", ["fused", "pipelined", "im2col", "nhwc"])
@pytest.mark.parametrize("name", list(FUSED_CASES))
def test_conv_fused_path(hx, name, path):
    """The host-emulated fused cases (partial tiles, offset groups, asymmetric geometry, points
    outside, M over one tile) on the tensor cores; the same layers on the im2col paths (NCHW, and the
    channels-last one: group 1, whole 8-channel vectors, as these cases are) agree too.
    (A test per path: scripts/gpu_check.sh runs the paths never yet run on a GPU, pipelined and nhwc, last.)"""
    case = make_fused_case(**FUSED_CASES[name])
    with td.conv_path(path):
        lay = check_conv(hx, case, torch.float16, what=f"conv {name} {path}", misalign=16)
        names = td.kernels_launched(lay.enqueue)
    assert names is None or any(td.PATH_KERNELS[path] in k for k in names), (path, sorted(names))  # it ran


FUSED_KERNELS = ["fused", "pipelined"]  # the one-stage and the two-stage kernel


@pytest.mark.parametrize("path", FUSED_KERNELS + ["nhwc"])
@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize("stage", [r[0] for r in td.RESNET_LAYERS])
def test_resnet50_dcn_layers_fused(hx, stage, batch, path):
    with td.conv_path(path):
        lay = check_conv(hx, td.resnet_case(stage, batch=batch), torch.float16,
                         what=f"resnet50-dcn {stage} b{batch} {path}", empty_bias=True)
        names = td.kernels_launched(lay.enqueue)
        assert names is None or any(td.PATH_KERNELS[path] in k for k in names)


# --------------------------------------------------------------------------- DeformConv2d, FP32 as 3xTF32
# (DCN_DEFORM_CONV_FP32_GEMM=3xtf32: the im2col path's GEMM as three TF32 tensor-core GEMMs on hi / lo
# halves; float32's tolerance row, which plain TF32 misses: tests/test_host_conv_3xtf32.py)
@pytest.mark.parametrize("spec", CONV_SPECS, ids=[s[0] for s in CONV_SPECS])
def test_conv_3xtf32_sweep(hx, spec):
    with td.conv_path("3xtf32"):
        lay = check_conv(hx, td.unit_weights(make_conv_case(spec)), torch.float32, what=f"conv {spec[0]} 3xtf32",
                         misalign=16)
        names = td.kernels_launched(lay.enqueue)
    assert names is None or make_conv_case(spec).x.shape[0] == 0 or any(td.PATH_KERNELS["3xtf32"] in k for k in names)


def test_conv_3xtf32_batch33_runs_in_chunks(hx):
    with td.conv_path("3xtf32"):
        check_conv(hx, td.chunked_case(33), torch.float32, what="conv batch 33 3xtf32")


@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize("stage", [r[0] for r in td.RESNET_LAYERS])
def test_resnet50_dcn_layers_3xtf32(hx, stage, batch):
    with td.conv_path("3xtf32"):
        lay = check_conv(hx, td.resnet_case(stage, batch=batch), torch.float32,
                         what=f"resnet50-dcn {stage} b{batch} 3xtf32", empty_bias=True)
        names = td.kernels_launched(lay.enqueue)
        assert names is None or any(td.PATH_KERNELS["3xtf32"] in k for k in names)


@pytest.mark.parametrize("path", FUSED_KERNELS + ["3xtf32", "nhwc"])
def test_conv_fused_graph_replay(hx, path):
    case = make_fused_case(**FUSED_CASES["basic"])
    dtype = torch.float32 if path == "3xtf32" else torch.float16
    with td.conv_path(path):
        lay = td.run_plugin(hx, td.CONV_OP, "gf", case.attrs(), td.conv_inputs(case), dtype, context=12)
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        stream = torch.cuda.Stream()
        with torch.cuda.stream(stream):
            with torch.cuda.graph(graph, stream=stream):
                assert lay.enqueue(stream) == 0, hx.log()
    _refill(lay)
    lay.output.fill_(float("nan"))
    graph.replay()
    torch.cuda.synchronize()
    td.assert_close(lay.output, td.conv_reference(lay, case), dtype, f"{path} graph replay")


# --------------------------------------------------------------------------- DeformRoIPool
def check_roi(hx, case, dtype, *, what):
    lay = td.run_plugin(hx, td.ROI_OP, what, case.attrs, td.roi_inputs(case), dtype, float32_at=(1,))
    torch.cuda.synchronize()
    assert lay.types[1] == "FP32"  # RoIs stay float32 in an FP16 layer
    td.assert_close(lay.output, td.roi_reference(lay, case), dtype, what)
    return lay


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("sampling", [0, 2])
@pytest.mark.parametrize("offsets", [True, False], ids=["mdpool", "dpool-zero-offsets"])
def test_roi_pool_mmdet_heads(hx, offsets, sampling, dtype):
    case = td.mmdet_roi_case(512, sampling_ratio=sampling, offsets=offsets)
    check_roi(hx, case, dtype, what=f"DeformRoIPool 512 RoIs sampling {sampling}")


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
def test_roi_pool_no_rois_and_small_maps(hx, dtype):
    case = td.mmdet_roi_case(0, channels=8)
    lay = check_roi(hx, case, dtype, what="DeformRoIPool R=0")
    assert tuple(lay.output.shape) == (0, 8, 7, 7)
    case = td.mmdet_roi_case(40, channels=3, seed=2)
    case.data = case.data[:, :, :1, :2].contiguous()  # a 1x2 map: every sample clamps to the border
    check_roi(hx, case, dtype, what="DeformRoIPool 1x2 map")


# --------------------------------------------------------------------------- DeformPSROIPool
@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("spec", POOL_SPECS, ids=[s[0] for s in POOL_SPECS])
def test_pool_sweep(hx, spec, dtype):
    check_pool(hx, make_pool_case(spec), dtype, what=f"pool {spec[0]}")


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
def test_rfcn_head_300_rois(hx, dtype):
    check_pool(hx, td.rfcn_case(300), dtype, what="R-FCN head")


def test_pool_no_trans_ignores_any_trans(hx):
    case = make_pool_case(POOL_SPECS[1])
    want = td.run_plugin(hx, td.POOL_OP, "p", dict(case.attrs, no_trans=1), [case.data, case.rois], torch.float32)
    bogus = torch.randn(7, 3, 5, dtype=torch.float64)  # rank 3: ignored with no_trans = 1
    got = td.run_plugin(hx, td.POOL_OP, "p", dict(case.attrs, no_trans=1), [case.data, case.rois, bogus],
                        torch.float32)
    torch.cuda.synchronize()
    torch.testing.assert_close(got.output, want.output, rtol=0, atol=0)


# --------------------------------------------------------------------------- graphs, contexts
def _refill(lay):
    for t in lay.inputs[:1]:  # new X / data values, same buffers
        t.copy_(torch.randn_like(t, dtype=torch.float32).to(t.dtype))


@pytest.mark.parametrize("op", ["conv", "pool", "roi"])
def test_enqueue_captured_in_a_cuda_graph_replays_right(hx, op):
    if op == "roi":
        case = td.mmdet_roi_case(64, channels=16)
        lay = td.run_plugin(hx, td.ROI_OP, "g", case.attrs, td.roi_inputs(case), torch.float32, context=11)
        ref = lambda: td.roi_reference(lay, case)  # noqa: E731
    elif op == "conv":
        case = td.unit_weights(make_conv_case(CONV_SPECS[1]))
        lay = td.run_plugin(hx, td.CONV_OP, "g", case.attrs(), td.conv_inputs(case), torch.float32, context=11)
        ref = lambda: td.conv_reference(lay, case)  # noqa: E731
    else:
        case = make_pool_case(POOL_SPECS[1])
        lay = td.run_plugin(hx, td.POOL_OP, "g", case.attrs, td.pool_inputs(case), torch.float32, context=11)
        ref = lambda: td.pool_reference(lay, case)  # noqa: E731
    torch.cuda.synchronize()
    before = hx.resources()
    graph = torch.cuda.CUDAGraph()
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        with torch.cuda.graph(graph, stream=stream):
            rc = lay.enqueue(stream)
    assert rc == 0, hx.log()
    _refill(lay)
    lay.output.fill_(float("nan"))
    graph.replay()
    torch.cuda.synchronize()
    td.assert_close(lay.output, ref(), torch.float32, f"{op} graph replay")
    after = hx.resources()
    # no handle created or acquired inside enqueue / capture
    assert (after["live"], after["acquires"]) == (before["live"], before["acquires"])


def test_two_contexts_on_two_streams_concurrently(hx):
    case = td.unit_weights(make_conv_case(CONV_SPECS[1], batch=4))
    before = set(hx.resources()["keys"])
    layers = [td.run_plugin(hx, td.CONV_OP, f"ctx{c}", case.attrs(), td.conv_inputs(case), torch.float32,
                            context=c) for c in (21, 22)]
    new = set(hx.resources()["keys"]) - before
    assert len(new) == 2 and all(k.startswith("dcn.cublas.") for k in new), new  # one handle per context
    torch.cuda.synchronize()
    streams = [torch.cuda.Stream() for _ in layers]
    errors = []

    def work(lay, s):
        with torch.cuda.stream(s):
            for _ in range(20):
                lay.output.fill_(float("nan"))
                if lay.enqueue(s) != 0:
                    errors.append(hx.log())

    threads = [threading.Thread(target=work, args=(lay, s)) for lay, s in zip(layers, streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    torch.cuda.synchronize()
    assert not errors, errors
    want = td.conv_reference(layers[0], case)
    for lay in layers:
        td.assert_close(lay.output, want, torch.float32, "two contexts")


def test_layers_of_one_context_share_one_cublas_handle(hx):
    case = td.unit_weights(make_conv_case(CONV_SPECS[0]))
    a = td.run_plugin(hx, td.CONV_OP, "a", case.attrs(), td.conv_inputs(case), torch.float32, context=31)
    live = hx.resources()["live"]
    b = td.run_plugin(hx, td.CONV_OP, "b", case.attrs(), td.conv_inputs(case), torch.float32, context=31)
    assert hx.resources()["live"] == live
    torch.cuda.synchronize()
    td.assert_close(b.output, td.conv_reference(b, case), torch.float32, "shared handle")
    td.assert_close(a.output, td.conv_reference(a, case), torch.float32, "shared handle")
