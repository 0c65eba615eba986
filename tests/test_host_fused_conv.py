"""The fused FP16 DeformConv2d path (plugins/ops/deform_conv2d/deform_conv2d_fused.cu), emulated on the host.

deform_conv2d_host_fused.cpp runs the kernels' own per-thread code from deform_conv2d_fused.h
(channels-last X and tap-major W copies over the launch grid; per block: taps, A / B tile loaders
for every thread, epilogue), in the one-stage kernel's order and in the two-stage (pipelined)
kernel's schedule, with a plain loop standing in for the tensor cores' 16x16x16 products. Against
the float64 reference: float64 storage to the reference's precision (every index right), float16
within dcn_base/tolerance.py's row; every tile entry and output written; partial pixel and channel
tiles, offset groups, asymmetric stride / pad / dilation, points outside the map, bias and mask
present or not, batch 0. Also the plan's choice of path (DCN_DEFORM_CONV_FUSED, applicability, one
block per SM at least).
"""
from __future__ import annotations

import ctypes

import numpy as np
import pytest

from helpers.built_libs import require
from helpers.sweep import FUSED_CASES as CASES, make_fused_case as make_case
from test_host_kernels import DTYPES, I64, P, _arr, _ints, _p, _shape, assert_matches, conv_reference
from trt_runtime import plugins


@pytest.fixture(scope="module")
def lib():
    L = ctypes.CDLL(str(require(plugins.host_test_library)))
    L.dcn_emu_deform_conv2d_fused.restype = ctypes.c_int
    L.dcn_emu_deform_conv2d_fused.argtypes = (
        [ctypes.c_int, ctypes.c_int] + [P, I64] * 5
        + [I64, I64, I64, ctypes.c_int64, ctypes.c_int64, P, I64, ctypes.c_char_p, ctypes.c_size_t])
    L.dcn_emu_conv_path.restype = ctypes.c_int
    L.dcn_emu_conv_path.argtypes = [I64, ctypes.c_int, ctypes.c_int64]
    L.dcn_emu_fused_kernel.restype = ctypes.c_int
    L.dcn_emu_fused_kernel.argtypes = []
    L.dcn_emu_conv_workspace.restype = ctypes.c_int64
    L.dcn_emu_conv_workspace.argtypes = [I64, ctypes.c_int, ctypes.c_int64]
    L.dcn_emu_conv_im2col_need.restype = ctypes.c_int64
    L.dcn_emu_conv_im2col_need.argtypes = [I64, ctypes.c_int, ctypes.c_int]
    L.dcn_emu_conv_nhwc_need.restype = ctypes.c_int64
    L.dcn_emu_conv_nhwc_need.argtypes = [I64]
    L.dcn_emu_conv_min_out_area.restype = ctypes.c_int64
    L.dcn_emu_conv_min_out_area.argtypes = [I64, ctypes.c_int64, ctypes.c_int64]
    L.dcn_emu_fused_workspace.restype = ctypes.c_int64
    L.dcn_emu_fused_workspace.argtypes = [I64]
    L.dcn_host_misaligned_vector_accesses.restype = ctypes.c_int64
    L.dcn_emu_fused_store_offsets.restype = ctypes.c_int
    L.dcn_emu_fused_store_offsets.argtypes = [ctypes.c_int, I64]
    return L


KERNELS = {"one-stage": 0, "pipelined": 1}


def fused(lib, dtype, c, kernel="one-stage"):
    code, npd = DTYPES[dtype]
    x, w, off, b, m = (_arr(t, npd) for t in (c.x, c.weight, c.offset, c.bias, c.mask))
    oh, ow = c.offset.shape[2], c.offset.shape[3]
    y = np.zeros((x.shape[0], w.shape[0], oh, ow), dtype=npd)
    stats = (ctypes.c_int64 * 6)()
    msg = ctypes.create_string_buffer(1024)
    lib.dcn_host_misaligned_vector_accesses()
    rc = lib.dcn_emu_deform_conv2d_fused(
        code, KERNELS.get(kernel, kernel), _p(x), _shape(x), _p(w), _shape(w), _p(off), _shape(off), _p(b), _shape(b),
        _p(m), _shape(m), _ints(c.strides), _ints(c.pads), _ints(c.dilations), c.group, c.offset_group, _p(y), stats,
        msg, len(msg))
    # stats, then the 16-byte copies at addresses a GPU would fault on
    return rc, y, list(stats) + [lib.dcn_host_misaligned_vector_accesses()], msg.value.decode()


@pytest.mark.parametrize("kernel", list(KERNELS))
@pytest.mark.parametrize("dtype", ["float64", "float16"])
@pytest.mark.parametrize("name", list(CASES))
def test_fused_path_matches_reference(lib, name, dtype, kernel):
    c = make_case(**CASES[name])
    rc, y, stats, msg = fused(lib, dtype, c, kernel)
    assert rc == 0, msg
    blocks, unwritten, untiled, ws, fused_bytes, hazards, misaligned = stats
    assert misaligned == 0, "16-byte copies at addresses a GPU's 16-byte loads / stores fault on"
    assert unwritten == 0, "output entries left unwritten"
    assert untiled == 0, "tile / copy entries left unwritten"
    assert hazards == 0, "a taps buffer read before it held its pair, or written while read"
    assert ws >= fused_bytes, "the workspace the plugin asks for does not hold the fused path's copies"
    pixels = c.offset.shape[0] * c.offset.shape[2] * c.offset.shape[3]
    assert blocks == -(-pixels // 128) * -(-c.weight.shape[0] // 128)
    assert_matches(y, conv_reference(c, dtype), dtype, f"fused {name}")


@pytest.mark.parametrize("kernel", list(KERNELS))
def test_fused_path_batch0(lib, kernel):
    c = make_case(N=0, C=32, H=5, W=5, M=8)
    rc, y, stats, msg = fused(lib, "float16", c, kernel)
    assert rc == 0, msg
    assert y.shape == (0, 8, 5, 5) and stats[0] == 0


@pytest.mark.parametrize("perKg", [1, 2, 3])
@pytest.mark.parametrize("pairs", [1, 2, 3, 6])
def test_pipelined_schedule_edges(lib, pairs, perKg):
    """The two-stage schedule where a pair is one step long (its taps are needed the very next
    iteration), where there is a single pair (no taps ahead) or step, and odd counts of both."""
    k = {1: (1, 1), 2: (2, 1), 3: (3, 1), 6: (3, 2)}[pairs]
    c = make_case(N=1, C=32 * perKg, H=4, W=5, M=12, k=k, pads=(0, 0, 0, 0), spread=2.0)
    ref = conv_reference(c, "float64")
    for kernel in KERNELS:
        rc, y, stats, msg = fused(lib, "float64", c, kernel)
        assert rc == 0, msg
        assert stats[1:3] == [0, 0] and stats[5:] == [0, 0], (kernel, stats)
        assert_matches(y, ref, "float64", f"fused {kernel} pairs {pairs} steps/pair {perKg}")


def test_fused_kernel_choice(lib, monkeypatch):
    monkeypatch.delenv("DCN_DEFORM_CONV_FUSED_KERNEL", raising=False)
    assert lib.dcn_emu_fused_kernel() == 0  # the one-stage kernel until the two-stage one has run on a GPU
    monkeypatch.setenv("DCN_DEFORM_CONV_FUSED_KERNEL", "pipelined")
    assert lib.dcn_emu_fused_kernel() == 1
    monkeypatch.setenv("DCN_DEFORM_CONV_FUSED_KERNEL", "one-stage")
    assert lib.dcn_emu_fused_kernel() == 0


def test_fused_refuses_an_unknown_kernel_code(lib):
    rc, _, _, msg = fused(lib, "float16", make_case(N=1, C=32, H=5, W=5, M=8), kernel=7)
    assert rc == 1 and msg == "kernel code 7, expected 0 or 1"


def test_fused_path_refuses_shapes_it_does_not_take(lib):
    c = make_case(N=1, C=24, H=5, W=5, M=8)  # 24 channels: not a multiple of 32
    rc, _, _, msg = fused(lib, "float16", c)
    assert rc == 1 and "fused path not applicable" in msg and "multiple of 32" in msg


def _dims(N, C, H, W, M, group=1, offset_group=1):
    return (ctypes.c_int64 * 20)(N, C, H, W, M, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, group, offset_group, H, W, 1)


def test_plan_chooses_fused_only_when_on_applicable_and_it_pays(lib, monkeypatch):
    c3 = _dims(8, 128, 100, 167, 128)  # 1044 pixel tiles, M 128: one M tile
    monkeypatch.delenv("DCN_DEFORM_CONV_FUSED", raising=False)
    assert lib.dcn_emu_conv_path(c3, 1, 132) == 1  # on by default (it has run right on a GPU)
    monkeypatch.setenv("DCN_DEFORM_CONV_FUSED", "1")
    assert lib.dcn_emu_conv_path(c3, 1, 132) == 1
    assert lib.dcn_emu_conv_path(_dims(1, 128, 100, 167, 128), 1, 132) == 1  # 131 blocks: a full wave
    assert lib.dcn_emu_conv_path(_dims(1, 128, 20, 30, 128), 1, 132) == 0  # 5 blocks: im2col
    assert lib.dcn_emu_conv_path(c3, 0, 132) == 0  # float32: im2col
    assert lib.dcn_emu_conv_path(_dims(8, 128, 100, 167, 128, group=2), 1, 132) == 0
    assert lib.dcn_emu_conv_path(_dims(8, 96, 100, 167, 128, offset_group=2), 1, 132) == 0  # 48 per group
    assert lib.dcn_emu_conv_path(_dims(8, 256, 50, 84, 256), 1, 132) == 0  # M 256: two M tiles
    monkeypatch.setenv("DCN_DEFORM_CONV_FUSED", "force")  # tests and measurements: wherever it applies
    assert lib.dcn_emu_conv_path(_dims(1, 512, 25, 42, 512), 1, 132) == 1
    assert lib.dcn_emu_conv_path(_dims(1, 512, 25, 42, 512), 0, 132) == 0  # still FP16 only
    monkeypatch.setenv("DCN_DEFORM_CONV_FUSED", "0")
    assert lib.dcn_emu_conv_path(c3, 1, 132) == 0


@pytest.mark.parametrize("largest,run", [
    ((256, 256, 200, 200, 256), (64, 256, 200, 200, 256)),  # largest: X of 2.6e9 elements, over int32
    ((1, 32, 47000, 47000, 32), (1, 32, 8000, 8000, 32)),  # one huge image: its pixels and X over int32
    ((2, 64, 300, 300, 64), (1, 64, 120, 90, 64)),  # within int32: the plain layout
], ids=["batch-over-int32", "image-over-int32", "within-int32"])
def test_workspace_holds_the_fused_copies_of_any_smaller_run(lib, monkeypatch, largest, run):
    """The workspace is sized once, for the largest shapes, and the path chosen per run: a run that the
    fused path takes must find its copies' room even where the largest shapes are past the kernels'
    int32 limits (so the fused path would not take those)."""
    monkeypatch.setenv("DCN_DEFORM_CONV_FUSED", "force")
    ws = lib.dcn_emu_conv_workspace(_dims(*largest), 2, 0)
    need = lib.dcn_emu_fused_workspace(_dims(*run))
    assert lib.dcn_emu_conv_path(_dims(*run), 1, 132) == 1 and need > 0
    assert ws >= need, f"workspace {ws} for {largest}, the fused path at {run} needs {need}"


def _dims_at(N, C, H, W, M, k=(3, 3), strides=(1, 1), pads=(1, 1, 1, 1), dilations=(1, 1), group=1):
    """dims_from's 20 values for any kernel and attributes (pads t, l, b, r); None where the output is empty."""
    oh = (H + pads[0] + pads[2] - dilations[0] * (k[0] - 1) - 1) // strides[0] + 1
    ow = (W + pads[1] + pads[3] - dilations[1] * (k[1] - 1) - 1) // strides[1] + 1
    if oh <= 0 or ow <= 0:
        return None
    return (ctypes.c_int64 * 20)(N, C, H, W, M, *k, *strides, *pads, *dilations, group, 1, oh, ow, 1)


def test_workspace_holds_the_im2col_parts_of_a_smaller_unaligned_run(lib):
    """The review's case: the largest output area (68x80) a multiple of 8 halves, so it needs no staging, while
    a smaller run (67x79) is staged at ld 5296; sizing for the largest shapes' own layout handed cuBLAS a
    workspace 38 MB past TensorRT's allocation. The workspace reserves the staging unless the profile fixes
    the output area."""
    largest, run = _dims(8, 256, 68, 80, 512), _dims(8, 256, 67, 79, 512)
    need = lib.dcn_emu_conv_im2col_need(run, 2, 0)
    assert lib.dcn_emu_conv_workspace(largest, 2, 0) >= need
    assert lib.dcn_emu_conv_workspace(largest, 2, 68 * 80) < need  # a fixed area: no staging, none reserved
    assert lib.dcn_emu_conv_min_out_area(largest, 68, 80) == 68 * 80
    assert lib.dcn_emu_conv_min_out_area(largest, 67, 79) == 67 * 79
    assert lib.dcn_emu_conv_min_out_area(largest, -1, 79) == 0  # unknown: any area


def test_workspace_holds_the_im2col_parts_of_every_smaller_run(lib):
    """Generated: the profile's largest shapes and a run at smaller ones (batch, height, width each no larger,
    the profile's minimum between them), awkward kernels and attributes, FP16 and FP32 (SGEMM and 3xTF32), up
    to past the column cap: what the run's enqueue lays out (plan::im2col_parts, with the base's alignment
    slack) fits in what getWorkspaceSize asked for at the largest shapes and the profile's minimum area; so does
    the FP16 channels-last im2col's (plan::nhwc_parts, where it applies: the switch may be set at run time only)."""
    rng = np.random.default_rng(20)
    checked = nhwc_checked = 0
    while checked < 3000:
        k = tuple(int(v) for v in rng.integers(1, 4, 2))
        strides, dilations = tuple(int(v) for v in rng.integers(1, 3, 2)), tuple(int(v) for v in rng.integers(1, 3, 2))
        pads = tuple(int(v) for v in rng.integers(0, 3, 4))
        group = int(rng.choice([1, 2]))
        C, M = group * int(rng.integers(1, 65)), group * int(rng.choice([1, 3, 8, 64, 256]))
        H, W, N = int(rng.integers(1, 120)), int(rng.integers(1, 120)), int(rng.integers(1, 34))
        if rng.random() < 0.2:  # past the 256 MiB cap of a chunk's columns
            C, H, W = 256 * group, int(rng.integers(60, 200)), int(rng.integers(60, 200))
        h, w, n = int(rng.integers(1, H + 1)), int(rng.integers(1, W + 1)), int(rng.integers(0, N + 1))
        hmin, wmin = int(rng.integers(1, h + 1)), int(rng.integers(1, w + 1))
        largest = _dims_at(N, C, H, W, M, k, strides, pads, dilations, group)
        run = _dims_at(n, C, h, w, M, k, strides, pads, dilations, group)
        lowest = _dims_at(1, C, hmin, wmin, M, k, strides, pads, dilations, group)
        if largest is None or run is None or lowest is None:
            continue
        min_area = lib.dcn_emu_conv_min_out_area(largest, hmin, wmin)
        assert min_area == lowest[17] * lowest[18]
        for es, splits in ((2, (0,)), (4, (0, 1))):
            for ws in (lib.dcn_emu_conv_workspace(largest, es, 0), lib.dcn_emu_conv_workspace(largest, es, min_area)):
                for split in splits:
                    need = lib.dcn_emu_conv_im2col_need(run, es, split)
                    assert need <= ws, (list(largest), list(run), (hmin, wmin), es, split, need, ws)
                if es == 2 and (nhwc := lib.dcn_emu_conv_nhwc_need(run)) > 0:
                    assert nhwc <= ws, (list(largest), list(run), (hmin, wmin), "nhwc", nhwc, ws)
                    nhwc_checked += 1
        checked += 1
    assert nhwc_checked > 100, nhwc_checked


def test_fused_path_refuses_no_channels_and_too_many_filter_tiles(lib, monkeypatch):
    """C == 0 (its output is the bias: the two-stage kernel's schedule would have no step) and more than
    65535 tiles of 128 filters (the grid's y limit; reachable with a 1x1 kernel) take im2col, even when
    forced."""
    monkeypatch.setenv("DCN_DEFORM_CONV_FUSED", "force")
    assert lib.dcn_emu_fused_workspace(_dims(2, 0, 9, 9, 32)) == -1
    assert lib.dcn_emu_conv_path(_dims(2, 0, 9, 9, 32), 1, 132) == 0
    def one_by_one(M):  # 1x1 kernel: M * C within int32 up to 67M filters
        return (ctypes.c_int64 * 20)(1, 32, 2, 2, M, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 1)

    assert lib.dcn_emu_conv_path(one_by_one(65535 * 128), 1, 132) == 1
    assert lib.dcn_emu_conv_path(one_by_one(65535 * 128 + 1), 1, 132) == 0


THREADS, ROW_HALVES, TILE_ROWS = 512, 40, 128  # deform_conv2d_fused.h: kThreads, kLdA = kLdB, kBM = kBN


@pytest.mark.parametrize("tile", ["A", "B"])
def test_tile_stores_are_free_of_bank_conflicts(lib, tile):
    """The A and B tiles' 16-byte shared stores, as the kernels' own store code places them: each
    quarter-warp (the unit a 128-bit shared store is served in) writes eight different 16-byte bank
    groups (no conflict); together the threads write every vector of the tile once; and a warp's
    vectors are 8 whole rows, so its global loads cover the bytes row-major order would."""
    out = (ctypes.c_int64 * (THREADS * 4))()
    per = lib.dcn_emu_fused_store_offsets(0 if tile == "A" else 1, out)
    assert per == 1
    elems = np.array(out[:THREADS])
    assert sorted(elems.tolist()) == [r * ROW_HALVES + 8 * v for r in range(TILE_ROWS) for v in range(4)]
    groups = (elems * 2 // 16) % 8
    for q in range(THREADS // 8):
        assert len(set(groups[8 * q: 8 * q + 8].tolist())) == 8, (tile, q, elems[8 * q: 8 * q + 8])
    rows = elems // ROW_HALVES
    for w in range(THREADS // 32):
        assert sorted(set(rows[32 * w: 32 * w + 32].tolist())) == list(range(8 * w, 8 * w + 8)), w
