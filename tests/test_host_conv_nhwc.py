"""DeformConv2d's channels-last im2col path (DCN_DEFORM_CONV_IM2COL=nhwc; deform_conv2d_nhwc.h), emulated on
the host: the plugin's enqueue body (deform_conv2d_enqueue.h nhwc_enqueue) with the kernels' own thread bodies
(the channels-last copy, the tap-major weights, the sampling) over their launchers' grids and a host GEMM for
cuBLAS's transposed one. Checked against the float64 reference over awkward shapes (asymmetric stride / pad /
dilation, kernel 3x2, offset groups, points far outside, batch 0 / 1 / 33 in chunks, staged outputs), with every
column and channels-last entry written exactly once and every vector access 16-byte aligned; the plan's choice
and workspace. Written without a GPU: the switch stays off until the kit has run it on one."""
from __future__ import annotations

import ctypes
import math

import numpy as np
import pytest

from helpers.sweep import make_conv_case
from test_host_fused_conv import _dims
from test_host_kernels import DTYPES, I64, assert_matches, conv_reference, emu_conv, load_library

ENV = "DCN_DEFORM_CONV_IM2COL"

# (name, N, C, H, W, M, kH, kW, strides, pads, dilations, group, offset_group, mask, bias, offset scale):
# group 1 and offset groups of whole 8-channel vectors (the path's shapes)
NHWC_SPECS = [
    ("basic3x3-c8", 1, 8, 6, 7, 5, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1, 1, False, True, 1.0),
    ("k3x2-asym-og2", 2, 16, 7, 9, 4, 3, 2, (2, 1), (1, 0, 2, 1), (2, 1), 1, 2, True, True, 2.0),
    ("k2x3-stride12-og3", 1, 24, 8, 5, 6, 2, 3, (1, 2), (0, 2, 1, 0), (1, 2), 1, 3, True, False, 1.5),
    ("far-outside", 1, 16, 5, 5, 3, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1, 1, True, True, 8.0),
    ("batch0", 0, 8, 5, 6, 4, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1, 1, True, True, 1.0),
    ("1x1-og4", 2, 32, 4, 4, 8, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1, 4, False, True, 1.0),
    ("L16-unstaged", 1, 16, 4, 4, 7, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1, 1, True, False, 1.0),
]
IDS = [s[0] for s in NHWC_SPECS]


@pytest.fixture(scope="module")
def lib():
    L = load_library()  # (the workspace of every smaller run: test_host_fused_conv.py's generated test)
    L.dcn_emu_conv_path.restype = ctypes.c_int
    L.dcn_emu_conv_path.argtypes = [I64, ctypes.c_int, ctypes.c_int64]
    return L


@pytest.fixture
def nhwc(monkeypatch):
    monkeypatch.setenv(ENV, "nhwc")


def _spec(name):
    return next(s for s in NHWC_SPECS if s[0] == name)


def check_stats(c, stats, *, chunk_expected=None):
    chunks, gemms, batches, blocks, bits, uncovered, outside, unwritten, chunk, ws, vec, cpt, split = stats
    N = c.x.shape[0]
    assert uncovered == 0, "the sampling left column entries (or the copy channels-last entries) unwritten"
    assert outside == 0, "a kernel wrote past the chunk's columns / channels-last copy (staging, padding)"
    assert unwritten == 0, "output entries left unwritten"
    if N == 0:  # an empty output: nothing launched
        assert (chunks, gemms) == (0, 0)
        return
    assert (vec, cpt, split) == (8, c.x.shape[1] // c.offset_group, 0), "not the channels-last path"
    if chunk_expected is not None:
        assert chunk == chunk_expected
    assert chunks == math.ceil(N / chunk) and gemms == chunks and batches == N  # one GEMM a chunk, over its images


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("spec", NHWC_SPECS, ids=IDS)
def test_nhwc_path_matches_reference(lib, nhwc, spec, dtype):
    c = make_conv_case(spec)
    lib.dcn_host_misaligned_vector_accesses()
    rc, y, stats, msg = emu_conv(lib, dtype, c)
    assert rc == 0, msg
    check_stats(c, stats)
    # the 16-byte loads of Xt and stores of columns (half) at aligned addresses
    assert lib.dcn_host_misaligned_vector_accesses() == 0
    assert_matches(y, conv_reference(c, dtype), dtype, spec[0])


@pytest.mark.parametrize("dtype", ["float64", "float16"])
@pytest.mark.parametrize("chunk", [1, 4, 33])
def test_nhwc_batch33_in_chunks(lib, nhwc, chunk, dtype):
    """Batch 33 in chunks (the last one partial) under a small column cap; a staged output (L = 15)."""
    c = make_conv_case(_spec("k3x2-asym-og2"), batch=33)
    size = np.dtype(DTYPES[dtype][1]).itemsize
    N, C, H, W = c.x.shape
    M, _, kH, kW = c.weight.shape
    oh, ow = c.offset.shape[2:]
    L = oh * ow
    ld = -(-L // (16 // size)) * (16 // size)
    per_image = (L * kH * kW * C + (M * ld if ld != L else 0) + H * W * C) * size  # columns, staging, Xt
    rc, y, stats, msg = emu_conv(lib, dtype, c, cap=per_image * chunk + per_image // 2)
    assert rc == 0, msg
    check_stats(c, stats, chunk_expected=chunk)
    assert_matches(y, conv_reference(c, dtype), dtype, f"batch 33 in chunks of {chunk}")


@pytest.mark.parametrize("index,max_blocks", [("int32", 0), ("int64", 0), ("auto", 1), ("int64", 3)])
def test_nhwc_index_types_and_grid_stride(lib, nhwc, index, max_blocks):
    c = make_conv_case(_spec("k3x2-asym-og2"), batch=3)
    rc, y, stats, msg = emu_conv(lib, "float64", c, index=index, max_blocks=max_blocks)
    assert rc == 0, msg
    check_stats(c, stats)
    assert stats[4] == (64 if index == "int64" else 32)
    if max_blocks:
        assert stats[3] == max_blocks
    assert_matches(y, conv_reference(c, "float64"), "float64", f"{index} {max_blocks}")


def test_nhwc_columns_equal_the_nchw_path_in_float64(lib, monkeypatch):
    """The same column entries, only the GEMM's order of K differs: the two paths agree to float64 rounding."""
    c = make_conv_case(_spec("k2x3-stride12-og3"), batch=2)
    monkeypatch.delenv(ENV, raising=False)
    rc, y_nchw, stats, msg = emu_conv(lib, "float64", c)
    assert rc == 0 and stats[10] in (1, 2, 4), msg  # the NCHW im2col (V pixels an item)
    monkeypatch.setenv(ENV, "nhwc")
    rc, y_nhwc, stats, msg = emu_conv(lib, "float64", c)
    assert rc == 0 and stats[10] == 8, msg
    np.testing.assert_allclose(y_nhwc, y_nchw, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("on", [False, True], ids=["off", "nhwc"])
def test_plan_takes_nhwc_only_where_switched_on_and_applicable(lib, monkeypatch, on):
    """choose_path: the channels-last im2col only with the switch (off by default), for FP16, group 1 and offset
    groups of whole 8-channel vectors; the fused kernel keeps its shapes (c3: 128 output channels); float, groups,
    odd channel counts take the NCHW im2col. 0 im2col, 1 fused, 2 nhwc."""
    if on:
        monkeypatch.setenv(ENV, "nhwc")
    else:
        monkeypatch.delenv(ENV, raising=False)
    monkeypatch.delenv("DCN_DEFORM_CONV_FUSED", raising=False)
    c4 = _dims(8, 256, 50, 84, 256)
    assert lib.dcn_emu_conv_path(c4, 1, 132) == (2 if on else 0)
    assert lib.dcn_emu_conv_path(c4, 0, 132) == 0                       # float32
    assert lib.dcn_emu_conv_path(_dims(8, 256, 50, 84, 256, group=2), 1, 132) == 0
    assert lib.dcn_emu_conv_path(_dims(8, 12, 50, 84, 256), 1, 132) == 0  # 12 channels: not whole vectors
    assert lib.dcn_emu_conv_path(_dims(8, 32, 50, 84, 64, offset_group=2), 1, 132) == (2 if on else 0)
    assert lib.dcn_emu_conv_path(_dims(8, 128, 100, 167, 128), 1, 132) == 1  # c3: the fused kernel's
    monkeypatch.setenv("DCN_DEFORM_CONV_FUSED", "0")
    assert lib.dcn_emu_conv_path(_dims(8, 128, 100, 167, 128), 1, 132) == (2 if on else 0)

