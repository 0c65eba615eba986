"""libdcn_ort in ONNX Runtime sessions, against the float64 PyTorch reference.

Single-node ONNX models written with onnx.helper from the contract (exporter.contract), run
through trt_runtime.plugins.ort_session, on the awkward sweep (tests/helpers/sweep.py) in float32 and
float16 (tolerances: dcn_base.tolerance), the MXNet golden data, Polygraphy's Comparator, and
bad input inside a session: a clear error naming op, node, input and values, or a correct
empty output, never a crash.
"""
from __future__ import annotations

import concurrent.futures
import math

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from helpers.built_libs import require
from exporter.contract import DOMAIN, DOMAIN_VERSION, INDEX
from exporter.ops.deform_conv2d.spec import SPEC as DEFORM_CONV2D
from exporter.ops.deform_psroi_pool.spec import SPEC as DEFORM_PSROI_POOL
from exporter.ops import deform_conv2d, deform_psroi_pool
from dcn_base.tolerance import tolerance
from helpers.nonfinite import assert_same_nonfinite
from helpers.sweep import (CONV_SPECS, POOL_SPECS, infinite_mask_conv_case, make_conv_case, make_pool_case,
                           pool_kwargs)
from test_reference import golden_cases
from trt_runtime import plugins

ONNX_TYPE = {"float32": TensorProto.FLOAT, "float16": TensorProto.FLOAT16, "int64": TensorProto.INT64}
NP_TYPE = {"float32": np.float32, "float16": np.float16, "int64": np.int64}
IR_VERSION = 10  # ONNX Runtime 1.20+ reads it
ORT_ERRORS = (ort.capi.onnxruntime_pybind11_state.InvalidArgument, ort.capi.onnxruntime_pybind11_state.Fail,
              ort.capi.onnxruntime_pybind11_state.RuntimeException)


@pytest.fixture(scope="module", autouse=True)
def ort_lib():
    return require(plugins.ort_library)


# --------------------------------------------------------------------------- models
def input_dtype(op, name, dtype):
    """An input's element type in a node of ``dtype``: the contract fixes some (rois) to float32; index
    inputs (level tables) are written int64 here."""
    fixed = next((i.dtype for i in op.inputs if i.name == name), None)
    return "int64" if fixed == INDEX else (fixed or dtype)


def make_model(op, inputs, attrs, dtype="float32", name="n", initializers=()):
    """One dcn node; `inputs` maps the op's input names (contract order) to arrays or None (absent)."""
    names = [n if inputs.get(n) is not None else "" for n in op.input_names]
    while names and names[-1] == "":
        names.pop()
    node = helper.make_node(op.op_type, names, ["Y"], domain=DOMAIN, name=name, **attrs)
    init = [numpy_helper.from_array(np.asarray(inputs[n], dtype=NP_TYPE[input_dtype(op, n, dtype)]), n)
            for n in initializers]
    graph = helper.make_graph(
        [node], f"single_{op.op_type}",
        [helper.make_tensor_value_info(n, ONNX_TYPE[input_dtype(op, n, dtype)], np.shape(inputs[n]))
         for n in names if n and n not in initializers],
        [helper.make_tensor_value_info("Y", ONNX_TYPE[dtype], None)],
        initializer=init,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19),
                                                    helper.make_opsetid(DOMAIN, DOMAIN_VERSION)],
                              ir_version=IR_VERSION)
    return model.SerializeToString()


def run(op, inputs, attrs, dtype="float32", name="n", initializers=(), threads=None):
    so = ort.SessionOptions()
    so.enable_cpu_mem_arena = False  # every tensor its own allocation: AddressSanitizer sees overruns
    if threads:
        so.intra_op_num_threads = threads
    sess = plugins.ort_session(make_model(op, inputs, attrs, dtype, name, initializers), sess_options=so)
    feed = {i.name: np.ascontiguousarray(inputs[i.name], dtype=NP_TYPE[input_dtype(op, i.name, dtype)])
            for i in sess.get_inputs()}
    return sess.run(None, feed)[0]


def rounded(t, dtype):
    """The input as the op sees it (rounded to dtype), in float64 for the reference."""
    return None if t is None else t.to(getattr(torch, dtype)).double()


def assert_matches(got, want, dtype, what=""):
    atol, rtol = tolerance(dtype)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    np.testing.assert_allclose(got.astype(np.float64), want, atol=atol, rtol=rtol, err_msg=what)


def conv_inputs(c):
    return {"X": c.x, "W": c.weight, "offset": c.offset, "B": c.bias, "mask": c.mask}


def conv_ref(c, dtype, **over):
    t = {k: rounded(v, dtype) for k, v in dict(conv_inputs(c), **over).items()}
    return deform_conv2d(t["X"], t["offset"], t["W"], t["B"], stride=c.strides, padding=c.pads,
                         dilation=c.dilations, mask=t["mask"]).numpy()


def np_inputs(d):
    return {k: (v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in d.items()}


# --------------------------------------------------------------------------- DeformConv2d
@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("spec", CONV_SPECS, ids=[s[0] for s in CONV_SPECS])
def test_conv_sweep(spec, dtype):
    c = make_conv_case(spec)
    got = run(DEFORM_CONV2D, np_inputs(conv_inputs(c)), c.attrs(), dtype)
    assert got.dtype == NP_TYPE[dtype]
    assert_matches(got, conv_ref(c, dtype), dtype, spec[0])


def test_conv_bigger_batch_and_threads():
    """Batch 5 of the asymmetric 3x2 case at 40x45: work enough (162000 column values per chunk) that the
    op's loops use the pool's threads, which must change nothing (on two CPUs: batches of 2, 2 and 1
    images side by side, one per thread)."""
    c = make_conv_case(("k3x2-asym-big", 5, 6, 40, 45, 4, 3, 2, (2, 1), (1, 0, 2, 1), (2, 1), 2, 3, True, True, 2.0),
                       seed=3)
    ins = np_inputs(conv_inputs(c))
    one = run(DEFORM_CONV2D, ins, c.attrs(), threads=1)
    two = run(DEFORM_CONV2D, ins, c.attrs(), threads=2)
    assert_matches(one, conv_ref(c, "float32"), "float32")
    np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("gemm", ["auto", "sgemm"])
@pytest.mark.parametrize("group", [1, 2], ids=["pixel-major", "planes"])
def test_conv_small_layer_in_runs_side_by_side(group, gemm, monkeypatch):
    """A small layer of one image (24 channels, 15x13, 20 filters: 42120 column values, between
    kSerialWork and kSmallLayerValues) takes one run of positions per CPU, the runs side by side (on
    two CPUs: 112 and 83 positions, neither a multiple of the 128-position taps block); one plane
    with inf, one with NaN. Matches the reference; one, two and four threads give the same bytes."""
    monkeypatch.setenv("DCN_ORT_GEMM", gemm)
    g = torch.Generator().manual_seed(31)
    C, H, W, M = 24, 15, 13, 20
    x = torch.randn(1, C, H, W, generator=g, dtype=torch.float64)
    x[0, 3, 7, 7], x[0, 11, 2, 9] = math.inf, math.nan
    w = torch.randn(M, C // group, 3, 3, generator=g, dtype=torch.float64) / 8
    b = torch.randn(M, generator=g, dtype=torch.float64)
    off = torch.randn(1, 18, H, W, generator=g, dtype=torch.float64) * 2
    mask = torch.rand(1, 9, H, W, generator=g, dtype=torch.float64)
    ins = np_inputs({"X": x, "W": w, "offset": off, "B": b, "mask": mask})
    attrs = dict(pads=[1, 1, 1, 1], kernel_shape=[3, 3], group=group)
    want = deform_conv2d(*(rounded(t, "float32") for t in (x, off, w, b)), padding=(1, 1),
                         mask=rounded(mask, "float32")).numpy()
    finite = np.isfinite(want)
    assert not finite.all() and finite.mean() > 0.5
    got = run(DEFORM_CONV2D, ins, attrs, initializers=("W", "B"), threads=2)
    assert np.array_equal(np.isfinite(got), finite)
    assert_matches(np.where(finite, got, 0), np.where(finite, want, 0), "float32")
    for threads in (1, 4):
        np.testing.assert_array_equal(run(DEFORM_CONV2D, ins, attrs, initializers=("W", "B"), threads=threads), got)


# The op's two column layouts, chosen by shape (deform_conv2d_ort.cpp): pixel-major (channels-last
# sampling, Gemm) for group 1 with at least kPixelMajorPositionsPerFilter = 4 output positions (all
# images) per filter, planes (runs of channels, MatMul) otherwise.
@pytest.mark.parametrize("group", [1, 2], ids=["pixel-major", "planes"])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_conv_columns_in_chunks_of_positions(dtype, group):
    """Columns over the op's largest chunk (8 MiB; C*kH*kW*outH*outW = 288*8190 floats, 9.4 MB): runs of
    output positions of one image (several chunks, the last one shorter, whatever the machine's L2 size),
    both column layouts (group 1: pixel-major; 2: planes), offset groups, mask, bias, one plane with
    inf / NaN (the element path) and one sample far outside; each chunk lands where it belongs. The two images run side by side where the process has
    two CPUs (each on one thread with its own scratch and its own MatMul call from a pool thread, its
    chunks one after the other), else one after the other, their chunks side by side or not: one and
    two threads give the same bytes; four (more threads than this machine has cores) match too (held to
    the tolerance: ONNX Runtime's MatMul may sum in another order at more threads, library or not)."""
    g = torch.Generator().manual_seed(21)
    N, C, H, W, M = 2, 32, 90, 91, 6
    x = torch.randn(N, C, H, W, generator=g, dtype=torch.float64)
    # row 1 and row H-2: read with weight 0 by the clamped windows of samples just outside the map
    # (0 * inf is NaN there, the element function reads nothing): the element path must take them
    x[1, 5, 1, 4], x[1, 5, 88, 9] = math.inf, math.nan
    w = torch.randn(M, C // group, 3, 3, generator=g, dtype=torch.float64) / 10
    b = torch.randn(M, generator=g, dtype=torch.float64)
    off = torch.randn(N, 2 * 2 * 9, H, W, generator=g, dtype=torch.float64) * 3
    off[0, 0, 20, 20] = 3e4
    mask = torch.rand(N, 2 * 9, H, W, generator=g, dtype=torch.float64)
    ins = np_inputs({"X": x, "W": w, "offset": off, "B": b, "mask": mask})
    attrs = dict(strides=[1, 1], pads=[1, 1, 1, 1], dilations=[1, 1], kernel_shape=[3, 3], group=group, offset_group=2)
    got = run(DEFORM_CONV2D, ins, attrs, dtype, threads=2)
    want = deform_conv2d(*(rounded(t, dtype) for t in (x, off, w, b)), padding=(1, 1), mask=rounded(mask, dtype))
    finite = torch.isfinite(want).numpy()
    assert not finite.all() and finite.mean() > 0.5  # the inf / NaN plane reaches some outputs, not all
    assert_matches(np.where(finite, got, 0), np.where(finite, want.numpy(), 0), dtype)
    assert np.array_equal(np.isfinite(got), finite)
    np.testing.assert_array_equal(run(DEFORM_CONV2D, ins, attrs, dtype, threads=1), got)
    four = run(DEFORM_CONV2D, ins, attrs, dtype, threads=4)
    assert_matches(np.where(finite, four, 0), np.where(finite, want.numpy(), 0), dtype)
    assert np.array_equal(np.isfinite(four), finite)


@pytest.mark.parametrize("M", [5, 50], ids=["pixel-major", "planes"])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_conv_channels_sampled_in_runs(dtype, M):
    """Channels are sampled four at a time from one taps block: two offset groups of 7 channels, a
    non-finite plane (channel 9) and channel 13 with one, two images; every channel lands in its own
    rows. 5 filters (198 positions): pixel-major, each group's channels from the image channels-last
    (apply_taps_block_channels: a vector of 4 and a tail of 3), the non-finite planes' entries then by the
    element function; 50 filters: planes (apply_taps_block_run: runs of 4 and 3; a run holding a
    non-finite plane samples channel by channel, the element path for that plane)."""
    g = torch.Generator().manual_seed(31)
    N, C, H, W = 2, 14, 9, 11
    x = torch.randn(N, C, H, W, generator=g, dtype=torch.float64)
    x[1, 9, 1, 3] = math.inf  # row 1, column W-2: read with weight 0 by the clamped windows of samples
    x[0, 13, 4, 9] = math.nan  # just outside the map, where the element function reads nothing
    w = torch.randn(M, C, 3, 3, generator=g, dtype=torch.float64) / 6
    b = torch.randn(M, generator=g, dtype=torch.float64)
    off = torch.randn(N, 2 * 2 * 9, H, W, generator=g, dtype=torch.float64) * 2
    mask = torch.rand(N, 2 * 9, H, W, generator=g, dtype=torch.float64)
    ins = np_inputs({"X": x, "W": w, "offset": off, "B": b, "mask": mask})
    attrs = dict(pads=[1, 1, 1, 1], kernel_shape=[3, 3], offset_group=2)
    want = deform_conv2d(*(rounded(t, dtype) for t in (x, off, w, b)), padding=(1, 1), mask=rounded(mask, dtype))
    finite = torch.isfinite(want).numpy()
    assert not finite.all() and finite.mean() > 0.3
    for threads in (1, 2):
        got = run(DEFORM_CONV2D, ins, attrs, dtype, threads=threads)
        assert_matches(np.where(finite, got, 0), np.where(finite, want.numpy(), 0), dtype)
        assert np.array_equal(np.isfinite(got), finite)
    x[1, 9, 1, 3], x[0, 13, 4, 9] = 0.5, -0.5  # all finite: every run sampled together
    clean = dict(ins, X=x.numpy())
    got = run(DEFORM_CONV2D, clean, attrs, dtype)
    want = deform_conv2d(*(rounded(t, dtype) for t in (x, off, w, b)), padding=(1, 1), mask=rounded(mask, dtype))
    assert_matches(got, want.numpy(), dtype)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_conv_constant_weights_kept_pixel_major(dtype, monkeypatch):
    """W as an initializer: pixel-major columns at any batch, W's pixel-major float form made once (by
    the first run) and kept. W fed as an input: made per run, and pixel-major only from 4 positions per
    filter on: batch 1 (8x8 map: 64 positions for 32 filters) takes planes, batch 2 (128) pixel-major,
    bit for bit what the kept form gives (with DCN_ORT_GEMM=sgemm: a kept W otherwise takes the bf16x3
    GEMM where the CPU has AMX, tests/test_ort_amx_gemm.py). Four runs at once on a fresh session (they
    race to make it): the same bytes. Every result matches the reference."""
    monkeypatch.setenv("DCN_ORT_GEMM", "sgemm")
    g = torch.Generator().manual_seed(43)
    C, H, W, M = 12, 8, 8, 32
    x = torch.randn(2, C, H, W, generator=g, dtype=torch.float64)
    w = torch.randn(M, C, 3, 3, generator=g, dtype=torch.float64) / 6
    b = torch.randn(M, generator=g, dtype=torch.float64)
    off = torch.randn(2, 18, H, W, generator=g, dtype=torch.float64) * 2
    mask = torch.rand(2, 9, H, W, generator=g, dtype=torch.float64)
    ins = np_inputs({"X": x, "W": w, "offset": off, "B": b, "mask": mask})
    attrs = dict(pads=[1, 1, 1, 1], kernel_shape=[3, 3])
    one = {k: (v[:1] if k in ("X", "offset", "mask") else v) for k, v in ins.items()}

    def session(initializers):
        model = onnx.load_from_string(make_model(DEFORM_CONV2D, ins, attrs, dtype, initializers=initializers))
        for i in model.graph.input:
            if i.name in ("X", "offset", "mask"):
                i.type.tensor_type.shape.dim[0].dim_param = "N"  # batch 1 and 2
        sess = plugins.ort_session(model.SerializeToString(), sess_options=ort.SessionOptions())
        return sess, lambda feeds: sess.run(None, {i.name: np.ascontiguousarray(feeds[i.name], dtype=NP_TYPE[dtype])
                                                   for i in sess.get_inputs()})[0]

    want = deform_conv2d(*(rounded(t, dtype) for t in (x, off, w, b)), padding=(1, 1), mask=rounded(mask, dtype))
    _, plain = session(())
    _, kept = session(("W", "B"))
    for y in (kept(one), plain(one)):
        assert_matches(y, want.numpy()[:1], dtype)
    got = kept(ins)
    np.testing.assert_array_equal(got, plain(ins))
    assert_matches(got, want.numpy(), dtype)
    np.testing.assert_array_equal(kept(ins), got)
    _, fresh = session(("W", "B"))
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        for y in pool.map(lambda _: fresh(ins), range(4)):
            np.testing.assert_array_equal(y, got)


# The pixel-major GEMM's two orientations (positions_major_gemm in deform_conv2d_ort_layout.h):
# columns x W^T, transposed into Y by 4x4 blocks with the bias, where a chunk has more positions than
# there are filters; W x columns^T straight into Y otherwise.
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("M,N", [(7, 3), (53, 8)], ids=["positions-major", "filters-major"])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_conv_pixel_major_gemm_orientations(dtype, M, N, bias):
    """A 7x7 map (49 positions: twelve 4-position blocks and a tail of one) for 7 filters (a 4x4 block
    row and a tail of three): columns x W^T, then transposed into Y; 53 filters, more than the 49
    positions (pixel-major all the same: 8 images, 392 positions for 53 filters, W fed as an input):
    W x columns^T. With and without a bias, one and two threads (the same bytes), against the
    reference."""
    g = torch.Generator().manual_seed(47)
    C, H, W = 10, 7, 7
    x = torch.randn(N, C, H, W, generator=g, dtype=torch.float64)
    w = torch.randn(M, C, 3, 3, generator=g, dtype=torch.float64) / 6
    b = torch.randn(M, generator=g, dtype=torch.float64) if bias else None
    off = torch.randn(N, 18, H, W, generator=g, dtype=torch.float64) * 2
    mask = torch.rand(N, 9, H, W, generator=g, dtype=torch.float64)
    ins = np_inputs({"X": x, "W": w, "offset": off, "B": b, "mask": mask})
    attrs = dict(pads=[1, 1, 1, 1], kernel_shape=[3, 3])
    want = deform_conv2d(*(rounded(t, dtype) for t in (x, off, w, b)), padding=(1, 1), mask=rounded(mask, dtype)).numpy()
    one = run(DEFORM_CONV2D, ins, attrs, dtype, threads=1)
    assert_matches(one, want, dtype)
    np.testing.assert_array_equal(run(DEFORM_CONV2D, ins, attrs, dtype, threads=2), one)


def test_conv_deep_input_in_wide_chunks():
    """A deep input (C*kH*kW = 9216 column rows) whose columns outgrow any L2 budget: runs of output
    positions as wide as 8 MiB of columns allow (kWideChunkPositions capped: 227 -> 240 of 900,
    on every machine), four chunks, the last one shorter, at two threads (side by side, one per thread,
    where the process has at most four CPUs); W and B as initializers. One and four threads match the
    reference too (held to the tolerance, not to the bytes: ONNX Runtime's MatMul sums this shape, 4 rows
    of 9216, in another order at three or more threads, with or without this library)."""
    g = torch.Generator().manual_seed(23)
    N, C, H, W, M = 1, 1024, 30, 30, 4
    x = torch.randn(N, C, H, W, generator=g, dtype=torch.float64)
    w = torch.randn(M, C, 3, 3, generator=g, dtype=torch.float64) / 96
    b = torch.randn(M, generator=g, dtype=torch.float64)
    off = torch.randn(N, 18, H, W, generator=g, dtype=torch.float64) * 2
    mask = torch.rand(N, 9, H, W, generator=g, dtype=torch.float64)
    ins = np_inputs({"X": x, "W": w, "offset": off, "B": b, "mask": mask})
    attrs = dict(pads=[1, 1, 1, 1], kernel_shape=[3, 3])
    got = run(DEFORM_CONV2D, ins, attrs, threads=2, initializers=("W", "B"))
    want = deform_conv2d(*(rounded(t, "float32") for t in (x, off, w, b)), padding=(1, 1),
                         mask=rounded(mask, "float32"))
    assert_matches(got, want.numpy(), "float32")
    for threads in (1, 4):
        assert_matches(run(DEFORM_CONV2D, ins, attrs, threads=threads, initializers=("W", "B")), want.numpy(), "float32")


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("present", [("B",), ("mask",), ()], ids=["v1-bias", "v2-no-bias", "v1-no-bias"])
def test_conv_optional_inputs(present, dtype):
    """B and mask each optional; mask without B leaves input 3 empty ("")."""
    c = make_conv_case(CONV_SPECS[1])
    ins = conv_inputs(c)
    for opt in ("B", "mask"):
        if opt not in present:
            ins[opt] = None
    got = run(DEFORM_CONV2D, np_inputs(ins), c.attrs(), dtype)
    assert_matches(got, conv_ref(c, dtype, **{k: ins[k] for k in ("B", "mask")}), dtype)


def test_conv_default_attributes_and_initializers():
    """No attributes at all (contract defaults), W and B as initializers (as exported models have them)."""
    g = torch.Generator().manual_seed(4)
    x = torch.randn(1, 3, 6, 5, generator=g, dtype=torch.float64)
    w = torch.randn(2, 3, 3, 3, generator=g, dtype=torch.float64)
    b = torch.randn(2, generator=g, dtype=torch.float64)
    off = torch.randn(1, 18, 4, 3, generator=g, dtype=torch.float64) * 2
    ins = np_inputs({"X": x, "W": w, "offset": off, "B": b})
    got = run(DEFORM_CONV2D, ins, {}, initializers=("W", "B"))
    want = deform_conv2d(*(rounded(t, "float32") for t in (x, off, w, b))).numpy()
    assert_matches(got, want, "float32")


def test_conv_nonfinite_offsets_read_nothing():
    """NaN / inf / huge offsets: samples outside the map count zero; no crash, no stray reads."""
    c = make_conv_case(CONV_SPECS[3])
    off = c.offset.clone()
    flat = off.view(-1)
    flat[::7] = math.nan
    flat[1::11] = math.inf
    flat[2::13] = -math.inf
    flat[3::5] = 1e30
    flat[4::17] = -3e9
    ins = dict(conv_inputs(c), offset=off)
    got = run(DEFORM_CONV2D, np_inputs(ins), c.attrs())
    assert np.all(np.isfinite(got))
    assert_matches(got, conv_ref(c, "float32", offset=off), "float32")


def same_kinds(got, want):
    """Equal non-finite patterns (NaN, +inf, -inf where the reference has them) and finite values alike."""
    assert_same_nonfinite(got, want)
    finite = np.isfinite(want)
    assert_matches(np.where(finite, got, 0), np.where(finite, want, 0), "float32")


@pytest.mark.parametrize("kept", [(), ("W",)], ids=["W-fed", "W-kept"])
def test_conv_infinite_mask_on_a_neighbour_is_inf(kept):
    """mask * bilinear (the contract) where the sample sits on a neighbour (integer offsets: weights 1,
    0, 0, 0): an infinite mask gives +-inf as the reference does (folded into the weights, 0 * inf had
    made the other three NaN); on a sample outside the map, 0; on a zero value, NaN."""
    c = infinite_mask_conv_case()
    want = conv_ref(c, "float32")
    assert np.isposinf(want).any() and np.isneginf(want).any() and np.isnan(want).any() and np.isfinite(want).any()
    for threads in (1, 2):
        same_kinds(run(DEFORM_CONV2D, np_inputs(conv_inputs(c)), c.attrs(), initializers=kept, threads=threads), want)


@pytest.mark.parametrize("rows", [2**12, 2**16])
def test_conv_tall_maps_keep_the_offsets_fraction(rows):
    """A sampling position is the grid point plus the offset, exactly (dcn_math.h bilinear_taps_split): a float
    sum would keep the offset's fraction only to 2^-12 of a pixel at 4096 rows and 2^-8 at 65536 (torchvision's
    float32 op is that far off: 5e-4 and 1e-2 here). float32 within the float32 row of the float64 reference, on
    both of the op's ways of sampling (taps blocks, four positions at a time, and one by one past 2^22)."""
    g = torch.Generator().manual_seed(11)
    x = torch.randn(1, 1, rows, 2, generator=g, dtype=torch.float64) * 100
    w = torch.ones(1, 1, 1, 1, dtype=torch.float64)
    off = torch.rand(1, 2, rows, 2, generator=g, dtype=torch.float64) * 4 - 2  # fractions of every size
    off[:, 1] = 0.25
    x32, off32 = x.float(), off.float()
    want = deform_conv2d.deform_conv2d(x32.double(), off32.double(), w)
    got = run(DEFORM_CONV2D, {"X": x32.numpy(), "W": w.float().numpy(), "offset": off32.numpy()}, {})
    assert_matches(got, want.numpy(), "float32", f"{rows} rows")


def test_conv_past_2_24_rows_reads_every_row():
    """2^24 + 64 rows (float cannot hold every row index): a 1x1 identity convolution returns X exactly."""
    rows = 2**24 + 64
    x = np.arange(rows, dtype=np.float32).reshape(1, 1, rows, 1) % 1000
    got = run(DEFORM_CONV2D, {"X": x, "W": np.ones((1, 1, 1, 1), np.float32),
                              "offset": np.zeros((1, 2, rows, 1), np.float32)}, {})
    np.testing.assert_array_equal(got, x)


def test_conv_batch0_is_empty():
    c = make_conv_case([s for s in CONV_SPECS if s[0] == "batch0"][0])
    for dtype in ("float32", "float16"):
        got = run(DEFORM_CONV2D, np_inputs(conv_inputs(c)), c.attrs(), dtype)
        assert got.shape == (0, c.weight.shape[0], *c.offset.shape[2:])


# --------------------------------------------------------------------------- DeformPSROIPool
def pool_inputs(c):
    return {"data": c.data, "rois": c.rois, "trans": c.trans}


def pool_ref(c, dtype, attrs=None, **over):
    t = {k: rounded(v, input_dtype(DEFORM_PSROI_POOL, k, dtype)) for k, v in dict(pool_inputs(c), **over).items()}
    a = attrs or c.attrs
    return deform_psroi_pool(t["data"], t["rois"], None if a.get("no_trans") else t["trans"],
                             **pool_kwargs(a)).numpy()


def pool_attrs(a):
    """The attribute dict as ONNX node attributes (floats as FLOAT)."""
    out = dict(a)
    out["spatial_scale"] = float(out["spatial_scale"])
    out["trans_std"] = float(out["trans_std"])
    return out


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("spec", POOL_SPECS, ids=[s[0] for s in POOL_SPECS])
def test_pool_sweep(spec, dtype):
    c = make_pool_case(spec)
    got = run(DEFORM_PSROI_POOL, np_inputs(pool_inputs(c)), pool_attrs(c.attrs), dtype)
    assert got.dtype == NP_TYPE[dtype]
    assert_matches(got, pool_ref(c, dtype), dtype, spec[0])


def test_pool_golden_mxnet():
    n = 0
    for i, a, data, rois, trans, out in golden_cases():
        ins = {"data": data, "rois": rois, "trans": trans}
        got = run(DEFORM_PSROI_POOL, ins, pool_attrs(a))
        want = deform_psroi_pool(*(rounded(torch.from_numpy(v), "float32") if v is not None else None
                                   for v in (data, rois, None if a["no_trans"] else trans)), **pool_kwargs(a))
        assert_matches(got, want.numpy(), "float32", f"golden case {i} vs reference")
        assert_matches(got, out, "float32", f"golden case {i} vs MXNet")
        n += 1
    assert n == 6


def test_pool_no_trans_attribute_and_empty():
    c = make_pool_case(POOL_SPECS[1])
    a = dict(c.attrs, no_trans=1)
    got = run(DEFORM_PSROI_POOL, np_inputs(pool_inputs(c)), pool_attrs(a))
    assert_matches(got, pool_ref(c, "float32", attrs=a), "float32")
    empty = make_pool_case([s for s in POOL_SPECS if s[0] == "no-rois"][0])
    got = run(DEFORM_PSROI_POOL, np_inputs(pool_inputs(empty)), pool_attrs(empty.attrs))
    P = empty.attrs["pooled_size"]
    assert got.shape == (0, empty.attrs["output_dim"], P, P)


# --------------------------------------------------------------------------- Polygraphy
def test_polygraphy_comparator_ort_vs_pytorch():
    from polygraphy.backend.onnxrt import OnnxrtRunner
    from polygraphy.comparator import Comparator, DataLoader, SimpleCompareFunc

    from trt_runtime.compare import TorchRunner

    c = make_conv_case(CONV_SPECS[1])
    attrs = c.attrs()
    weight, bias = c.weight.float(), c.bias.float()

    class Net(torch.nn.Module):
        def forward(self, x, offset, mask):
            return deform_conv2d(x, offset, weight.to(x.dtype), bias.to(x.dtype), stride=attrs["strides"],
                                 padding=attrs["pads"], dilation=attrs["dilations"], mask=mask).contiguous()

    ins = {"X": c.x, "W": weight, "offset": c.offset, "B": bias, "mask": c.mask}
    model = make_model(DEFORM_CONV2D, np_inputs(ins), attrs, initializers=("W", "B"))
    meta = [(n, np.float32, tuple(ins[n].shape)) for n in ("X", "offset", "mask")]
    runners = [TorchRunner(Net(), meta, output_names=["Y"], dtype=torch.float64),
               OnnxrtRunner(lambda: plugins.ort_session(model))]
    results = Comparator.run(runners, data_loader=DataLoader(iterations=2, val_range=(-2.0, 2.0)))
    atol, rtol = tolerance("float32")
    assert bool(Comparator.compare_accuracy(results, compare_func=SimpleCompareFunc(atol=atol, rtol=rtol)))


# --------------------------------------------------------------------------- bad input
def expect_error(fn, message):
    with pytest.raises(ORT_ERRORS) as err:
        fn()
    assert message in str(err.value), str(err.value)


def test_conv_mismatched_offset_channels_names_everything():
    c = make_conv_case(CONV_SPECS[0])  # 3x3, offset_group 1
    ins = np_inputs(conv_inputs(c))
    ins["offset"] = np.concatenate([ins["offset"], ins["offset"]], axis=1)  # 36 channels
    expect_error(lambda: run(DEFORM_CONV2D, ins, c.attrs(), name="backbone.layer3.0.conv2"),
                 "DeformConv2d 'backbone.layer3.0.conv2': offset has 36 channels, expected 2*offset_group*kH*kW = 18")


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_conv_shape_errors(dtype):
    c = make_conv_case(CONV_SPECS[1])
    base = np_inputs(conv_inputs(c))
    cases = [
        (dict(mask=base["mask"][:, :9]), "mask has 9 channels, expected offset_group*kH*kW = 18"),
        (dict(offset=base["offset"][:, :, :-1]), "offset has spatial size"),
        (dict(B=base["B"][:3]), "B has 3 values, expected M = 4"),
        (dict(X=base["X"][0]), "X has rank 3, expected 4 ([N, C, H, W])"),
        (dict(W=base["W"][:, :2]), "W has 2 input channels, expected C/group = 3"),
    ]
    for change, message in cases:
        expect_error(lambda: run(DEFORM_CONV2D, dict(base, **change), c.attrs(), dtype, name="c1"),
                     f"DeformConv2d 'c1': {message}")


def test_conv_attribute_errors_at_session_creation():
    c = make_conv_case(CONV_SPECS[1])
    ins = np_inputs(conv_inputs(c))
    cases = [
        (dict(group=0), "attribute group = 0, expected >= 1"),
        (dict(strides=[0, 1]), "attribute strides = [0, 1], expected values >= 1"),
        (dict(pads=[1, 1]), "attribute pads has 2 values, expected 4"),
        (dict(strides=[1.0, 1.0]), "attribute strides has the wrong type, expected an INTS list"),
        (dict(dilations=2), "attribute dilations has the wrong type, expected an INTS list"),
        (dict(group=2.0), "attribute group has the wrong type, expected an INT"),
        (dict(kernel_shape=[3, 3]), "attribute kernel_shape = [3, 3], expected W's kernel size [3, 2]"),
    ]
    for change, message in cases:
        expect_error(lambda: run(DEFORM_CONV2D, ins, dict(c.attrs(), **change), name="c2"),
                     f"DeformConv2d 'c2': {message}")


def test_pool_errors():
    c = make_pool_case(POOL_SPECS[1])  # N = 2, R = 3, output_dim 4, 2 classes
    base = np_inputs(pool_inputs(c))
    attrs = pool_attrs(c.attrs)
    bad_batch = base["rois"].copy()
    bad_batch[2, 0] = 2
    cases = [
        (dict(rois=base["rois"][:, :4]), attrs, "rois has shape [3, 4], expected [R, 5]"),
        (dict(rois=bad_batch), attrs, "rois[2, 0] = 2, expected a batch index in [0, N) = [0, 2)"),
        (dict(trans=base["trans"][:, :3]), attrs, "trans has 3 channels, expected an even number >= 2"),
        (dict(trans=base["trans"][:2]), attrs, "trans has 2 RoIs, expected R = 3"),
        (dict(data=base["data"][:, :10]), attrs, "data has 10 channels, expected output_dim*group_size^2 = 36"),
        ({}, {k: v for k, v in attrs.items() if k != "spatial_scale"},
         "attribute spatial_scale is missing, expected a FLOAT"),
        ({}, dict(attrs, output_dim=4.0), "attribute output_dim has the wrong type, expected an INT"),
        ({}, dict(attrs, sample_per_part=0), "attribute sample_per_part = 0, expected >= 1"),
    ]
    for change, a, message in cases:
        expect_error(lambda: run(DEFORM_PSROI_POOL, dict(base, **change), a, name="head.psroi"),
                     f"DeformPSROIPool 'head.psroi': {message}")


def test_mismatched_dtypes_are_rejected():
    """float32 X with float16 W: no kernel matches; ONNX Runtime says so instead of running."""
    c = make_conv_case(CONV_SPECS[0])
    ins = np_inputs(conv_inputs(c))
    model = onnx.load_from_string(make_model(DEFORM_CONV2D, ins, c.attrs()))
    model.graph.input[1].type.tensor_type.elem_type = TensorProto.FLOAT16
    with pytest.raises(ORT_ERRORS):
        sess = plugins.ort_session(model.SerializeToString())
        sess.run(None, {"X": ins["X"].astype(np.float32), "W": ins["W"].astype(np.float16),
                        "offset": ins["offset"].astype(np.float32), "B": ins["B"].astype(np.float32)})


def test_ort_session_accepts_paths(tmp_path):
    c = make_conv_case(CONV_SPECS[0])
    ins = np_inputs(conv_inputs(c))
    path = tmp_path / "m.onnx"
    path.write_bytes(make_model(DEFORM_CONV2D, ins, c.attrs()))
    sess = plugins.ort_session(path)
    got = sess.run(None, {k: v.astype(np.float32) for k, v in ins.items() if v is not None})[0]
    assert_matches(got, conv_ref(c, "float32"), "float32")


# --------------------------------------------------------------------------- benchmark smoke test
def test_benchmark_quick(capsys):
    """benchmarks/bench_ort_ops.py --quick runs end to end and prints its three tables."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_ort_ops.py"
    spec = importlib.util.spec_from_file_location("bench_ort_ops", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--quick", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "| layer | DCN | ours ms | ORT DeformConv ms | ours/ORT |" in out
    assert "| DeformPSROIPool (R-FCN head) | ours ms | PyTorch reference ms | ours/reference |" in out
    assert "| DeformRoIPool (mmdet dpool head) | ours ms | torchvision roi_align ms | ours/roi_align |" in out
    assert "(!)" not in out  # ours agrees with ORT's DeformConv, the reference and roi_align


# --------------------------------------------------------------------------- exported models
@pytest.mark.parametrize("precision", ["float32", "float16"])
def test_exported_models_match_pytorch(tmp_path, precision):
    """Models written by exporter.export (every conv variant, a PS-RoI head) run with our ops and
    match the float64 PyTorch forward; float16 exports run our float16 kernels."""
    import copy

    from helpers import export_models as em
    import exporter

    torch.manual_seed(0)
    zoo = em.randomize_offsets(em.OursZoo()).eval()
    x = torch.randn(2, 3, 17, 19)
    head = em.psroi_net()
    images, rois = torch.randn(2, 4, 16, 16), em.rois_for(2, 64, 64, r=6)
    fp16 = precision == "float16"
    for name, model, inputs in (("zoo", zoo, (x,)), ("psroi", head, (images, rois))):
        path = tmp_path / f"{name}.onnx"
        result = exporter.export(model, inputs, path, fp16=fp16, verify=False)
        sess = plugins.ort_session(path)
        got = sess.run(None, {n: t.numpy() for n, t in zip(result.input_names, inputs)})[0]
        # a float16 model sees its inputs rounded to float16, RoIs excepted (float32 by the contract)
        seen = [t.half().double() if fp16 and not (name == "psroi" and i == 1) else t.double()
                for i, t in enumerate(inputs)]
        with torch.no_grad():
            want = copy.deepcopy(model).double()(*seen).numpy()
        assert_matches(got.astype(np.float64), want, precision, f"exported {name}")
