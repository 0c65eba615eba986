"""The TensorRT plugins' CUDA launches, emulated on the host, against the PyTorch reference.

plugins/ops/<op>/<op>_host_kernels.cpp (in libdcn_host_tests, loaded with ctypes) runs, for every
(block, thread) of the grid the launchers would start, the kernels' own per-thread bodies
and index mapping (plugins/ops/<op>/<op>_launch.h), the DeformConv2d plugin's batch chunking,
workspace layout and per-group GEMM descriptors (deform_conv2d_plan.h, with a plain
loop standing in for cuBLAS) and the math header. This is the proof of the kernels'
arithmetic and indexing without a GPU: float64 to the reference's precision, float32 and
float16 storage within dcn_base/tolerance.py, on the awkward sweep (asymmetric stride /
pad / dilation, kernel 3x2, groups and offset groups > 1, batch 33 in chunks, points
outside the map, RoIs off the image), in int32 and int64 indexing and with a capped grid
(grid-stride loop), checking that every output and column entry is written exactly where
it belongs.
"""
from __future__ import annotations

import collections
import ctypes
import math
from typing import Optional

import numpy as np
import pytest
import torch

from helpers.built_libs import require
from exporter.contract import conv_out_size
from exporter.ops import deform_conv2d, deform_psroi_pool
from dcn_base.tolerance import tolerance
from helpers.nonfinite import assert_same_nonfinite
from helpers.sweep import (CONV_SPECS, POOL_SPECS, infinite_mask_conv_case, make_conv_case, make_pool_case,
                           pool_kwargs)
from trt_runtime import plugins

DTYPES = {"float64": (0, np.float64), "float32": (1, np.float32), "float16": (2, np.float16)}
INDEX = {"auto": 0, "int32": 1, "int64": 2}
I64 = ctypes.POINTER(ctypes.c_int64)
P = ctypes.c_void_p
N_STATS = 13


@pytest.fixture(scope="module")
def lib():
    return load_library()


def load_library():
    """libdcn_host_tests with the argument types of this file's entry points."""
    path = require(plugins.host_test_library)
    L = ctypes.CDLL(str(path))
    if not hasattr(L, "dcn_emu_deform_conv2d"):
        pytest.fail(f"{path} has no dcn_emu_deform_conv2d: it was built without plugins/ops/deform_conv2d/deform_conv2d_host_kernels.cpp; "
                    "rebuild it (bash scripts/setup.sh)")
    L.dcn_emu_deform_conv2d.restype = ctypes.c_int
    L.dcn_host_misaligned_vector_accesses.restype = ctypes.c_int64
    L.dcn_emu_deform_conv2d.argtypes = (
        [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64] + [P, I64] * 5 + [I64, I64, I64]
        + [ctypes.c_int64, ctypes.c_int64, P, I64, ctypes.c_char_p, ctypes.c_size_t])
    L.dcn_emu_deform_psroi_pool.restype = ctypes.c_int
    L.dcn_emu_deform_psroi_pool.argtypes = (
        [ctypes.c_int, ctypes.c_int, ctypes.c_int64] + [P, I64] * 3
        + [ctypes.c_double] + [ctypes.c_int64] * 5 + [ctypes.c_double, ctypes.c_int64]
        + [P, I64, ctypes.c_char_p, ctypes.c_size_t])
    L.dcn_emu_im2col_items.argtypes = [ctypes.c_int64] * 5 + [I64]
    L.dcn_emu_set_im2col_target.restype = ctypes.c_int64
    L.dcn_emu_set_im2col_target.argtypes = [ctypes.c_int64]
    L.dcn_emu_psroi_coords.argtypes = [ctypes.c_int64] * 3 + [I64]
    L.dcn_emu_plan.restype = ctypes.c_int
    L.dcn_emu_plan.argtypes = [ctypes.c_int64] * 5 + [I64]
    L.dcn_emu_launch_constants.argtypes = [I64]
    return L


def _arr(t: Optional[torch.Tensor], np_dtype):
    return None if t is None else np.ascontiguousarray(t.numpy().astype(np_dtype))


def _p(a):
    return None if a is None else a.ctypes.data_as(P)


def _shape(a):
    return (ctypes.c_int64 * 4)(*(a.shape if a is not None else ()))


def _ints(v):
    return (ctypes.c_int64 * len(v))(*v)


def as_dtype(t: Optional[torch.Tensor], dtype: str) -> Optional[torch.Tensor]:
    """The input as the implementation stores it (rounded to dtype), in float64 for the reference."""
    return None if t is None else t.to(getattr(torch, dtype)).double()


def emu_conv(lib, dtype, c, *, index="auto", max_blocks=0, cap=0):
    code, npd = DTYPES[dtype]
    x, w, off, b, m = (_arr(t, npd) for t in (c.x, c.weight, c.offset, c.bias, c.mask))
    N, M = x.shape[0], w.shape[0]
    oh = conv_out_size(x.shape[2], c.pads[0], c.pads[2], c.dilations[0], w.shape[2], c.strides[0])
    ow = conv_out_size(x.shape[3], c.pads[1], c.pads[3], c.dilations[1], w.shape[3], c.strides[1])
    y = np.zeros((N, M, oh, ow), dtype=npd)
    stats = (ctypes.c_int64 * N_STATS)()
    msg = ctypes.create_string_buffer(1024)
    rc = lib.dcn_emu_deform_conv2d(
        code, INDEX[index], max_blocks, cap,
        _p(x), _shape(x), _p(w), _shape(w), _p(off), _shape(off), _p(b), _shape(b), _p(m), _shape(m),
        _ints(c.strides), _ints(c.pads), _ints(c.dilations), c.group, c.offset_group,
        _p(y), stats, msg, len(msg))
    return rc, y, list(stats), msg.value.decode()


def conv_reference(c, dtype):
    return deform_conv2d(as_dtype(c.x, dtype), as_dtype(c.offset, dtype), as_dtype(c.weight, dtype),
                         as_dtype(c.bias, dtype), stride=c.strides, padding=c.pads, dilation=c.dilations,
                         mask=as_dtype(c.mask, dtype)).numpy()


def assert_matches(got, want, dtype, what=""):
    atol, rtol = tolerance(dtype)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    np.testing.assert_allclose(got.astype(np.float64), want, atol=atol, rtol=rtol, err_msg=what)


def check_conv_stats(c, stats, *, chunk_expected=None):
    chunks, gemms, batches, blocks, bits, uncovered, outside, unwritten, chunk, ws, vec, cpt, split = stats
    N, group = c.x.shape[0], c.group
    assert uncovered == 0, "im2col left column entries unwritten"
    assert outside == 0, "im2col wrote past the chunk's columns"
    assert unwritten == 0, "output entries left unwritten"
    if N == 0 or c.weight.shape[0] == 0:
        return
    if c.x.shape[1] == 0:  # no input channels: the output is the bias (or zeros), no chunk, no GEMM
        assert (chunks, gemms, batches) == (0, 0, 0)
        return
    L = c.offset.shape[2] * c.offset.shape[3]
    assert vec == (4 if L % 4 == 0 else 2 if L % 2 == 0 else 1), (vec, L)  # pixels per item: the widest dividing L
    assert 1 <= cpt <= c.x.shape[1] // c.offset_group
    if chunk_expected is not None:
        assert chunk == chunk_expected
    assert chunks == math.ceil(N / chunk)
    # GEMMs: per chunk of nb images, `group` calls batched over images (group <= nb) or nb calls batched over
    # groups; each of them three times in 3xTF32 mode (split)
    terms = 3 if split else 1
    sizes = [min(chunk, N - n0) for n0 in range(0, N, chunk)]
    assert gemms == terms * sum(group if group <= nb else nb for nb in sizes)
    assert batches == terms * sum(group * nb for nb in sizes)


# --------------------------------------------------------------------------- DeformConv2d
CONV_IDS = [s[0] for s in CONV_SPECS]


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("hw", [(4, 4), (5, 3)], ids=["L16", "L15-staged"])
def test_conv_without_input_channels_gives_the_bias(lib, hw, dtype, bias):
    """C = 0 (W [M, 0, kH, kW]): Y is B broadcast, or zeros, without columns or a GEMM (cuBLAS refuses k = 0
    with ldb = 0): the plan's bias_only, as the plugin runs it; with and without a padded leading dimension."""
    c = make_conv_case(("c0", 2, 0, *hw, 5, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1, 1, True, bias, 1.0))
    rc, y, stats, msg = emu_conv(lib, dtype, c)
    assert rc == 0, msg
    check_conv_stats(c, stats)
    want = np.broadcast_to((c.bias.numpy() if bias else np.zeros(5))[None, :, None, None], y.shape)
    np.testing.assert_array_equal(y.astype(np.float64), want.astype(DTYPES[dtype][1]).astype(np.float64))


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("spec", CONV_SPECS, ids=CONV_IDS)
def test_conv_launch_matches_reference(lib, spec, dtype):
    c = make_conv_case(spec)
    lib.dcn_host_misaligned_vector_accesses()
    rc, y, stats, msg = emu_conv(lib, dtype, c)
    assert rc == 0, msg
    check_conv_stats(c, stats)
    # the im2col stores of V columns (float4 / float2 / 8- and 4-byte half stores on a GPU) at aligned
    # addresses: the padded leading dimension and the items' starts
    assert lib.dcn_host_misaligned_vector_accesses() == 0
    assert_matches(y, conv_reference(c, dtype), dtype, spec[0])


def _spec(name):
    return next(s for s in CONV_SPECS if s[0] == name)


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16"])
@pytest.mark.parametrize("name,chunk", [
    ("k3x2-asym", 4),      # group 2 <= 4 images: one GEMM per group, batched over the chunk's images
    ("k2x3-stride12", 2),  # group 3 > 2 images: one GEMM per image, batched over the groups
    ("basic3x3", 33),      # the whole batch in one chunk
])
def test_conv_batch33_in_chunks(lib, name, chunk, dtype):
    """Batch 33 split into chunks (last one partial) by a small column cap, as the plugin does."""
    c = make_conv_case(_spec(name), batch=33)
    _, npd = DTYPES[dtype]
    x = c.x
    w = c.weight
    oh = conv_out_size(x.shape[2], c.pads[0], c.pads[2], c.dilations[0], w.shape[2], c.strides[0])
    ow = conv_out_size(x.shape[3], c.pads[1], c.pads[3], c.dilations[1], w.shape[3], c.strides[1])
    # the plan's bytes per image: columns with rows padded to 16 bytes, and where that padding
    # exists the GEMM's staged output (M rows of the same width)
    size = np.dtype(npd).itemsize
    L = oh * ow
    ld = -(-L // (16 // size)) * (16 // size)
    per_image = (x.shape[1] * w.shape[2] * w.shape[3] + (w.shape[0] if ld != L else 0)) * ld * size
    rc, y, stats, msg = emu_conv(lib, dtype, c, cap=per_image * chunk + per_image // 2)
    assert rc == 0, msg
    check_conv_stats(c, stats, chunk_expected=chunk)
    assert_matches(y, conv_reference(c, dtype), dtype, f"{name} batch 33")


@pytest.mark.parametrize("index,max_blocks", [("int32", 0), ("int64", 0), ("auto", 1), ("int32", 2), ("int64", 3)])
def test_conv_index_types_and_grid_stride(lib, index, max_blocks):
    """int32 and int64 kernel instantiations, and a grid smaller than the work (grid-stride loop)."""
    c = make_conv_case(_spec("k3x2-asym"), batch=5)
    rc, y, stats, msg = emu_conv(lib, "float64", c, index=index, max_blocks=max_blocks)
    assert rc == 0, msg
    check_conv_stats(c, stats)
    assert stats[4] == (64 if index == "int64" else 32)
    if max_blocks:
        assert stats[3] == max_blocks
    assert_matches(y, conv_reference(c, "float64"), "float64", f"{index} max_blocks={max_blocks}")


def test_conv_int32_and_int64_instances_sample_alike_at_the_edges(lib):
    """The int32 instance decides and splits sampling positions in float (bilinear_taps_split: comparisons with
    exact integers), the int64 one in int64: the same samples, bit for bit, with positions exactly on -1, 0, H - 1
    and H, just inside and outside them, far away, infinite and NaN, in float64, float32 and float16; inf and NaN
    on the map's border rows and columns make every decision at the border show."""
    from helpers.sweep import ConvCase
    g = torch.Generator().manual_seed(5)
    N, C, H, W, M, kH, kW = 2, 3, 7, 9, 2, 3, 2
    strides, pads, dil = (1, 2), (1, 0, 2, 1), (2, 1)
    oh, ow = conv_out_size(H, 1, 2, 2, kH, 1), conv_out_size(W, 0, 1, 1, kW, 2)
    base_h = ((torch.arange(oh) * strides[0] - pads[0]).view(1, 1, oh, 1)
              + (torch.arange(kH * kW) // kW * dil[0]).view(1, -1, 1, 1))
    base_w = ((torch.arange(ow) * strides[1] - pads[1]).view(1, 1, 1, ow)
              + (torch.arange(kH * kW) % kW * dil[1]).view(1, -1, 1, 1))
    points = torch.tensor([-1.0, -0.9999, -0.5, 0.0, 0.25, H - 1.0, H - 0.5, H - 1e-4, float(H), W - 1.0, float(W),
                           W - 1e-4, 1e6, -1e6, 3e9, math.nan, math.inf, -math.inf], dtype=torch.float64)
    pick = lambda: points[torch.randint(len(points), (N, kH * kW, oh, ow), generator=g)]  # noqa: E731
    off = torch.stack([pick() - base_h, pick() - base_w], dim=2).reshape(N, 2 * kH * kW, oh, ow)
    x = torch.randn(N, C, H, W, generator=g, dtype=torch.float64)
    x[:, 0, 0, :], x[:, 1, :, -1], x[:, 2, -1, 2] = math.inf, -math.inf, math.nan  # a neighbour read by a sample
    w = torch.randn(M, C, kH, kW, generator=g, dtype=torch.float64)  # that should count zero shows (0 * inf)
    mask = torch.rand(N, kH * kW, oh, ow, generator=g, dtype=torch.float64)
    c = ConvCase(x, w, off, None, mask, strides, pads, dil, 1, 1)
    for dtype in DTYPES:
        with np.errstate(over="ignore"):  # float16: the far points' offsets are inf
            (rc32, y32, s32, m32), (rc64, y64, s64, m64) = (emu_conv(lib, dtype, c, index=i)
                                                            for i in ("int32", "int64"))
        assert rc32 == 0 and rc64 == 0, (m32, m64)
        assert (s32[4], s64[4]) == (32, 64)
        assert np.array_equal(y32, y64, equal_nan=True) and np.array_equal(np.signbit(y32), np.signbit(y64)), dtype
        want = conv_reference(c, dtype)
        fin = np.isfinite(want)
        assert np.array_equal(np.isfinite(y64.astype(np.float64)), fin) and 0.2 < fin.mean() < 1, dtype
        assert_matches(np.where(fin, y64, 0), np.where(fin, want, 0), dtype, f"edges {dtype}")


def test_conv_points_outside_and_partial_corners(lib):
    """Offsets that put samples beyond the map, on its border and in partial corners."""
    g = torch.Generator().manual_seed(3)
    N, C, H, W, M, kH, kW = 2, 4, 5, 6, 3, 3, 2
    x = torch.randn(N, C, H, W, generator=g, dtype=torch.float64)
    w = torch.randn(M, C, kH, kW, generator=g, dtype=torch.float64)
    oh, ow = conv_out_size(H, 1, 2, 2, kH, 1), conv_out_size(W, 0, 1, 1, kW, 2)
    choices = torch.tensor([-7.0, -1.5, -1.0, -0.75, -0.25, 0.0, 0.5, 1.0, H - 0.5, W - 0.25, 9.0])
    off = choices[torch.randint(len(choices), (N, 2 * kH * kW, oh, ow), generator=g)].double()
    mask = torch.rand(N, kH * kW, oh, ow, generator=g, dtype=torch.float64)
    from helpers.sweep import ConvCase
    c = ConvCase(x, w, off, None, mask, (1, 2), (1, 0, 2, 1), (2, 1), 1, 1)
    for dtype in DTYPES:
        rc, y, stats, msg = emu_conv(lib, dtype, c)
        assert rc == 0, msg
        check_conv_stats(c, stats)
        assert_matches(y, conv_reference(c, dtype), dtype, f"outside {dtype}")


@pytest.mark.parametrize("index", ["int32", "int64"])
def test_conv_infinite_mask_on_a_neighbour_is_inf(lib, index):
    """The kernels' taps (mask folded into the bilinear weights) where each sample sits on a neighbour:
    an infinite mask gives the reference's +-inf, not inf * 0 = NaN from the three zero weights."""
    c = infinite_mask_conv_case()
    for dtype in DTYPES:
        rc, y, stats, msg = emu_conv(lib, dtype, c, index=index)
        assert rc == 0, msg
        want = conv_reference(c, dtype)
        assert np.isposinf(want).any() and np.isneginf(want).any() and np.isnan(want).any()
        assert_same_nonfinite(y, want, dtype)
        finite = np.isfinite(want)
        assert_matches(np.where(finite, y, 0), np.where(finite, want, 0), dtype, f"infinite mask {dtype}")


def test_conv_tall_map_keeps_the_offsets_fraction(lib):
    """The CUDA im2col path on 65536 rows: sampling positions split exactly (bilinear_taps_split), so float32 stays
    within its row of the float64 reference (a float sum of grid point and offset was 1e-2 off here)."""
    from helpers.sweep import ConvCase
    g = torch.Generator().manual_seed(12)
    rows = 2**16
    x = torch.randn(1, 2, rows, 2, generator=g, dtype=torch.float64) * 100
    w = torch.randn(3, 2, 1, 1, generator=g, dtype=torch.float64)
    off = torch.rand(1, 2, rows, 2, generator=g, dtype=torch.float64) * 4 - 2
    c = ConvCase(x, w, off, None, None, (1, 1), (0, 0, 0, 0), (1, 1), 1, 1)
    rc, y, stats, msg = emu_conv(lib, "float32", c)
    assert rc == 0, msg
    check_conv_stats(c, stats)
    assert_matches(y, conv_reference(c, "float32"), "float32", f"{rows} rows")


def test_conv_validation_message_from_header(lib):
    c = make_conv_case(_spec("k3x2-asym"))
    c.offset = c.offset[:, :-2]
    rc, _, _, msg = emu_conv(lib, "float32", c)
    assert rc == 1
    assert msg == "DeformConv2d 'emu': offset has 34 channels, expected 2*offset_group*kH*kW = 36"


def test_im2col_item_mapping(lib):
    """Items run pixels fastest, then kernel point, channel block, offset group, image."""
    nb, G, nCb, kk, Lv = 3, 2, 3, 6, 7
    total = nb * G * nCb * kk * Lv
    out = np.zeros((total, 5), dtype=np.int64)
    lib.dcn_emu_im2col_items(Lv, kk, nCb, G, total, out.ctypes.data_as(I64))
    np.testing.assert_array_equal(out, np.stack(np.unravel_index(np.arange(total), (nb, G, nCb, kk, Lv)), axis=1))


@pytest.mark.parametrize("target", [1, 1000, 5000])
@pytest.mark.parametrize("dtype", ["float64", "float16"])
def test_conv_im2col_channel_blocks(lib, target, dtype):
    """Channel blocks of the coordinates-once im2col: a small item target splits each offset group's
    channels into blocks (the last one partial where they do not divide), every column entry written once."""
    from helpers.sweep import ConvCase

    g = torch.Generator().manual_seed(5)
    N, C, H, W, M = 2, 18, 7, 9, 4  # offset groups 2: 9 channels each -> blocks of 5 + 4 (or 9)
    x = torch.randn(N, C, H, W, generator=g, dtype=torch.float64)
    w = torch.randn(M, C, 3, 3, generator=g, dtype=torch.float64) / 9
    oh, ow = conv_out_size(H, 1, 1, 1, 3, 1), conv_out_size(W, 1, 0, 1, 3, 1)  # 7 x 8: L % 4 == 0
    off = torch.randn(N, 2 * 2 * 9, oh, ow, generator=g, dtype=torch.float64) * 2
    mask = torch.rand(N, 2 * 9, oh, ow, generator=g, dtype=torch.float64)
    c = ConvCase(x, w, off, None, mask, (1, 1), (1, 1, 1, 0), (1, 1), 1, 2)
    old = lib.dcn_emu_set_im2col_target(target)
    try:
        rc, y, stats, msg = emu_conv(lib, dtype, c)
    finally:
        lib.dcn_emu_set_im2col_target(old)
    assert rc == 0, msg
    check_conv_stats(c, stats)
    assert stats[10] == 4
    assert stats[11] == {1: 9, 1000: 5, 5000: 3}[target], stats[11]
    assert_matches(y, conv_reference(c, dtype), dtype, f"target {target}")


def test_psroi_index_mapping(lib):
    R, D, P_ = 4, 3, 5
    total = R * D * P_ * P_
    out = np.zeros((total, 4), dtype=np.int64)
    lib.dcn_emu_psroi_coords(D, P_, total, out.ctypes.data_as(I64))
    np.testing.assert_array_equal(out, np.stack(np.unravel_index(np.arange(total), (R, D, P_, P_)), axis=1))


def test_workspace_plan_fits_every_smaller_problem(lib):
    """getWorkspaceSize (max shapes) is enough for any shapes of the profile at enqueue."""
    consts = (ctypes.c_int64 * 4)()
    lib.dcn_emu_launch_constants(consts)
    rng = np.random.default_rng(0)
    out = (ctypes.c_int64 * 4)()
    for cap in (int(consts[2]), 1000, 4096, 1 << 20):
        for _ in range(400):
            pmax = int(rng.integers(1, 3 * cap))
            nmax = int(rng.integers(1, 70))
            p = int(rng.integers(1, pmax + 1))
            n = int(rng.integers(0, nmax + 1))
            assert lib.dcn_emu_plan(pmax, nmax, p, n, cap, out) == 0, (pmax, nmax, p, n, cap, list(out))


# --------------------------------------------------------------------------- DeformPSROIPool
POOL_IDS = [s[0] for s in POOL_SPECS]


def emu_pool(lib, dtype, case, *, index="auto", max_blocks=0):
    code, npd = DTYPES[dtype]
    data, trans = (_arr(t, npd) for t in (case.data, case.trans))
    rois = _arr(case.rois, np.float64 if npd == np.float64 else np.float32)  # contract: rois float32
    a = case.attrs
    R = rois.shape[0]
    y = np.zeros((R, a["output_dim"], a["pooled_size"], a["pooled_size"]), dtype=npd)
    stats = (ctypes.c_int64 * 3)()
    msg = ctypes.create_string_buffer(1024)
    rois_shape = (ctypes.c_int64 * 2)(*rois.shape) if rois.ndim == 2 else (ctypes.c_int64 * 2)(0, 5)
    rc = lib.dcn_emu_deform_psroi_pool(
        code, INDEX[index], max_blocks, _p(data), _shape(data), _p(rois), rois_shape, _p(trans), _shape(trans),
        a["spatial_scale"], a["output_dim"], a["group_size"], a["pooled_size"], a["part_size"],
        a["sample_per_part"], a["trans_std"], a["no_trans"], _p(y), stats, msg, len(msg))
    return rc, y, list(stats), msg.value.decode()


def pool_reference(case, dtype):
    return deform_psroi_pool(as_dtype(case.data, dtype), as_dtype(case.rois, "float64" if dtype == "float64" else "float32"),
                             as_dtype(case.trans, dtype),
                             **pool_kwargs(case.attrs)).numpy()


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("spec", POOL_SPECS, ids=POOL_IDS)
def test_pool_launch_matches_reference(lib, spec, dtype):
    case = make_pool_case(spec)
    rc, y, stats, msg = emu_pool(lib, dtype, case)
    assert rc == 0, msg
    assert stats[2] == 0, "output entries left unwritten"
    assert_matches(y, pool_reference(case, dtype), dtype, spec[0])


@pytest.mark.parametrize("index,max_blocks", [("int32", 0), ("int64", 0), ("auto", 1), ("int64", 2)])
def test_pool_index_types_and_grid_stride(lib, index, max_blocks):
    case = make_pool_case(next(s for s in POOL_SPECS if s[0] == "ps2-pooled5-offimage"))
    rc, y, stats, msg = emu_pool(lib, "float64", case, index=index, max_blocks=max_blocks)
    assert rc == 0, msg
    assert stats[1] == (64 if index == "int64" else 32)
    assert stats[2] == 0
    assert_matches(y, pool_reference(case, "float64"), "float64")


def test_pool_many_rois_off_image_and_bad_batch_index(lib):
    """300 RoIs, many off the image or degenerate, some with a batch index outside [0, N) (-> 0)."""
    g = torch.Generator().manual_seed(7)
    N, D, G, P_, H, W = 2, 3, 3, 3, 9, 11
    data = torch.randn(N, D * G * G, H, W, generator=g, dtype=torch.float64)
    R = 300
    xy = torch.rand(R, 4, generator=g, dtype=torch.float64) * 80 - 30
    b = torch.randint(0, N, (R, 1), generator=g).double()
    b[::37] = N + 1  # not a batch index: output 0
    rois = torch.cat([b, xy], dim=1)
    trans = torch.randn(R, 2, 2, 2, generator=g, dtype=torch.float64)
    from helpers.sweep import PoolCase
    attrs = dict(spatial_scale=0.5, output_dim=D, group_size=G, pooled_size=P_, part_size=2, sample_per_part=2,
                 trans_std=0.2, no_trans=0)
    case = PoolCase(data, rois, trans, attrs)
    rc, y, stats, msg = emu_pool(lib, "float64", case)
    assert rc == 0, msg
    good = np.ones(R, dtype=bool)
    good[::37] = False  # the reference rejects these; the kernel writes 0 for them
    want = deform_psroi_pool(data, rois[good], trans[good], **pool_kwargs(attrs)).numpy()
    assert_matches(y[good], want, "float64", "300 rois")
    assert np.all(y[~good] == 0)


def test_pool_validation_message_from_header(lib):
    case = make_pool_case(POOL_SPECS[1])
    case.attrs = dict(case.attrs, output_dim=case.attrs["output_dim"] + 1)
    rc, _, _, msg = emu_pool(lib, "float32", case)
    assert rc == 1
    assert msg.startswith("DeformPSROIPool 'emu': data has ") and "expected output_dim*group_size^2" in msg


# --------------------------------------------------------------------------- DeformRoIPool
# The kernel: one thread per (RoI, block of K channels, bin), the bin and each sample's taps once, applied
# to the K channels (deform_roi_pool_launch.h). Each output is checked against the float64 reference
# and, bit for bit, against deform_roi_pool_element (the old one-thread-per-output kernel's body).
ROI_STATS = 7  # blocks, bits, unwritten, writes outside Y, K, items, outputs differing from the element


def emu_roi(lib, dtype, data, rois, offset, attrs, *, index="auto", max_blocks=0, target=0):
    code, npd = DTYPES[dtype]
    d, o = (_arr(t, npd) for t in (data, offset))
    r = _arr(rois, np.float64 if npd == np.float64 else np.float32)  # contract: rois float32
    PH, PW = attrs["pooled_height"], attrs["pooled_width"]
    y = np.zeros((r.shape[0], d.shape[1], PH, PW), dtype=npd)
    stats = (ctypes.c_int64 * ROI_STATS)()
    msg = ctypes.create_string_buffer(1024)
    rc = lib.dcn_emu_deform_roi_pool(
        code, INDEX[index], max_blocks, target, _p(d), _shape(d), _p(r), (ctypes.c_int64 * 2)(*r.shape), _p(o),
        _shape(o), PH, PW, attrs["spatial_scale"], attrs.get("sampling_ratio", 0), attrs.get("gamma", 0.1),
        _p(y), stats, msg, len(msg))
    assert rc == 0, msg.value.decode()
    return y, dict(zip(("blocks", "bits", "unwritten", "outside", "K", "items", "differ"), stats))


def roi_reference(data, rois, offset, attrs, dtype):
    from exporter.ops import deform_roi_pool

    return deform_roi_pool(as_dtype(data, dtype), as_dtype(rois, "float64" if dtype == "float64" else "float32"),
                           as_dtype(offset, dtype), **attrs).numpy()


def check_roi(lib, dtype, data, rois, offset, attrs, what="", **kw):
    y, s = emu_roi(lib, dtype, data, rois, offset, attrs, **kw)
    assert s["unwritten"] == 0 and s["outside"] == 0, (what, s)
    assert s["differ"] == 0, f"{what}: {s['differ']} outputs differ from deform_roi_pool_element's bits"
    assert_matches(y, roi_reference(data, rois, offset, attrs, dtype), dtype, what)
    return s


def _roi_cases():
    import test_deform_roi_pool as t

    return t.CASES


def _roi_lib(lib):
    for name, res, args in (
            ("dcn_emu_deform_roi_pool", ctypes.c_int,
             [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64] + [P, I64] * 3
             + [ctypes.c_int64, ctypes.c_int64, ctypes.c_double, ctypes.c_int64, ctypes.c_double]
             + [P, I64, ctypes.c_char_p, ctypes.c_size_t]),
            ("dcn_emu_roi_pool_items", None, [ctypes.c_int64] * 4 + [I64]),
            ("dcn_emu_roi_pool_plan", None, [ctypes.c_int64] * 5 + [I64]),
            ("dcn_emu_roi_pool_launch_choice", None, [ctypes.c_int64] * 7 + [I64])):
        f = getattr(lib, name)
        f.restype, f.argtypes = res, args
    return lib


def widest_k(C: int) -> int:
    """The plan's K where items are plenty: 8 channels, or C rounded up to a power of two where that is less."""
    return min(8, 1 << (C - 1).bit_length()) if C > 0 else 1


@pytest.mark.parametrize("target", [0, 1], ids=["launcher-K1", "Kmax"])
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("data, rois, offset, attrs", _roi_cases())
def test_roi_pool_launch_matches_reference(lib, data, rois, offset, attrs, dtype, target):
    """The awkward sweep of test_deform_roi_pool (RoIs inside / off the image / zero-size / inverted, offsets far
    outside, adaptive grids), as the launcher runs it (few items: K = 1) and in the widest blocks the plan takes,
    C rounded up to a power of two (C = 3: K = 4, the block partial; C = 2: K = 2)."""
    s = check_roi(_roi_lib(lib), dtype, data, rois, offset, attrs, target=target)
    assert s["bits"] == 32 and s["K"] == (1 if target == 0 else widest_k(data.shape[1])), s


@pytest.mark.parametrize("target, K", [(1, 8), (100, 4), (200, 2), (10 ** 9, 1)])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_roi_pool_channel_blocks(lib, target, K, dtype):
    """C = 11 channels in blocks of K = 8, 4, 2, 1 (the last block partial), with offsets and an adaptive grid."""
    g = torch.Generator().manual_seed(5)
    data = torch.randn(2, 11, 9, 13, generator=g, dtype=torch.float64)
    rois = torch.tensor([[1, 2.0, 3.0, 40.0, 30.0], [0, -10.0, -4.0, 12.0, 50.0], [1, 30.0, 20.0, 31.0, 20.5]],
                        dtype=torch.float64)
    offset = torch.randn(3, 2, 3, 4, generator=g, dtype=torch.float64) * 0.5
    attrs = dict(pooled_height=3, pooled_width=4, spatial_scale=0.25, sampling_ratio=0, gamma=0.1)
    s = check_roi(_roi_lib(lib), dtype, data, rois, offset, attrs, target=target)
    assert s["K"] == K and s["items"] == 3 * 12 * -(-11 // K)


@pytest.mark.parametrize("index, max_blocks", [("int32", 0), ("int64", 0), ("auto", 1), ("int32", 1), ("int64", 2)])
def test_roi_pool_index_types_and_grid_stride(lib, index, max_blocks):
    data, rois, offset, attrs = _roi_cases()[10].values
    for dtype in ("float64", "float32"):
        s = check_roi(_roi_lib(lib), dtype, data, rois, offset, attrs, index=index, max_blocks=max_blocks, target=1)
        assert s["bits"] == (64 if index == "int64" else 32)
        assert s["K"] == (1 if index == "int64" else widest_k(data.shape[1]))
        if max_blocks:
            assert s["blocks"] == min(max_blocks, -(-s["items"] // 256))


def test_roi_pool_many_rois_off_image_bad_batch_index_and_nonfinite_map(lib):
    """300 RoIs, many off the image or degenerate, some with a batch index outside [0, N) (-> 0); inf / NaN in
    the map: the element's values, bit for bit (a sample outside the map reads nothing)."""
    g = torch.Generator().manual_seed(7)
    N, C, H, W = 2, 13, 9, 11
    data = torch.randn(N, C, H, W, generator=g, dtype=torch.float64)
    R = 300
    xy = torch.rand(R, 4, generator=g, dtype=torch.float64) * 80 - 30
    b = torch.randint(0, N, (R, 1), generator=g).double()
    b[::37] = N + 1  # not a batch index: output 0
    rois = torch.cat([b, xy], dim=1)
    offset = torch.randn(R, 2, 2, 3, generator=g, dtype=torch.float64)
    attrs = dict(pooled_height=2, pooled_width=3, spatial_scale=0.5, sampling_ratio=0, gamma=0.2)
    L = _roi_lib(lib)
    good = np.ones(R, dtype=bool)
    good[::37] = False  # the reference rejects these; the kernel writes 0 for them
    for dtype in ("float64", "float32", "float16"):
        y, s = emu_roi(L, dtype, data, rois, offset, attrs)
        assert s["unwritten"] == 0 and s["outside"] == 0 and s["differ"] == 0, s
        assert_matches(y[good], roi_reference(data, rois[good], offset[good], attrs, dtype), dtype, "300 rois")
        assert np.all(y[~good] == 0)
    data[:, :, 0, 0] = math.inf
    data[0, 3, 4, 5] = math.nan
    data[1, 12, H - 1, W - 1] = -math.inf
    for dtype in ("float32", "float16"):
        y, s = emu_roi(L, dtype, data, rois, offset, attrs)
        assert s["outside"] == 0 and s["differ"] == 0, s  # NaN outputs count as unwritten: not checked here
        want = roi_reference(data, rois[good], offset[good], attrs, dtype)
        got = y[good].astype(np.float64)
        assert np.array_equal(np.isnan(got), np.isnan(want)) and np.array_equal(np.isinf(got), np.isinf(want))
        assert 0 < np.isfinite(want).mean() < 1
        fin = np.isfinite(want)
        assert_matches(np.where(fin, got, 0), np.where(fin, want, 0), dtype, "inf / NaN map")


def test_roi_pool_item_mapping_and_plan(lib):
    L = _roi_lib(lib)
    R, nCb, PH, PW = 4, 3, 2, 5
    total = R * nCb * PH * PW
    out = np.zeros((total, 5), dtype=np.int64)
    L.dcn_emu_roi_pool_items(PH * PW, nCb, PW, total, out.ctypes.data_as(I64))
    r, cb, ph, pw = np.unravel_index(np.arange(total), (R, nCb, PH, PW))
    np.testing.assert_array_equal(out, np.stack([r, cb, ph * PW + pw, ph, pw], axis=1))
    plan = (ctypes.c_int64 * 4)()
    for (R, C, P_, target), K in [((512, 256, 7, 0), 8), ((128, 256, 7, 0), 4), ((64, 256, 7, 0), 2), ((1, 256, 7, 0), 1), ((0, 5, 2, 0), 1),
                                  ((3, 0, 2, 0), 1), ((100, 3, 7, 1), 4), ((100, 8, 7, 1), 8), ((100, 5, 7, 1), 8),
                                  ((6000, 1, 7, 0), 1), ((6000, 2, 7, 0), 2), ((6000, 9, 7, 0), 8)]:
        L.dcn_emu_roi_pool_plan(R, C, P_, P_, target, plan)
        assert list(plan) == [K, -(-C // K), P_ * P_, R * -(-C // K) * P_ * P_], (R, C, P_, target, list(plan))


DIRECT_SAMPLES = 16  # deform_roi_pool_math.h kRoIPoolDirectSamples


def test_roi_pool_sample_runs_hold_exactly_the_samples_inside(lib):
    """The RoI pools' loops walk only the samples whose coordinate can be inside the map (roi_pool_rows /
    roi_pool_cols: bisection on the very coordinates the taps compute), so a huge RoI costs what its samples on the
    map cost. Against every sample's own inside test, in float and double: grids past kRoIPoolDirectSamples and
    within it, sizes of either sign and zero, runs beginning and ending before, inside and after the map,
    coordinates landing on -1 and on the extent, huge, infinite and NaN starts and sizes."""
    f = lib.dcn_emu_roi_pool_inside_run
    f.restype, f.argtypes = None, [ctypes.c_int, ctypes.c_double, ctypes.c_double, ctypes.c_int64, ctypes.c_int64, I64]
    rng = np.random.default_rng(3)
    cases = [(float(a), float(b), int(c), int(e)) for a, b, c, e in zip(
        rng.uniform(-3000, 3000, 300), rng.uniform(-5000, 5000, 300), rng.integers(1, 1025, 300),
        rng.integers(1, 200, 300))]
    for count in (16, 17, 1024):
        for extent in (1, 6, 7):
            step = (extent + 1) / count  # samples from -1 + step / 2: the last one on the extent - step / 2
            cases += [(-1.0 - 0.5 * step, float(extent + 1) + 0.0, count, extent),  # the first sample exactly on -1
                      (-1.0, float(extent + 1), count, extent), (float(extent), -float(extent + 1), count, extent),
                      (-1.0, 0.0, count, extent), (float(extent), 0.0, count, extent), (-1.0000001, 0.0, count, extent),
                      (float(extent) + 1e-4, 0.0, count, extent), (-1e7, 2e7, count, extent),
                      (1e7, -2e7, count, extent),
                      (-1e30, 2e30, count, extent), (3e38, -3e38, count, extent), (-3e38, 3e38, count, extent)]
            cases += [(a, b, count, extent) for a in (math.nan, math.inf, -math.inf, 0.5)
                      for b in (math.nan, math.inf, -math.inf, 2.0)]
    out = (ctypes.c_int64 * 4)()
    kinds = collections.Counter()
    for dtype in (0, 1):
        for start, size, count, extent in cases:
            f(dtype, start, size, count, extent, out)
            lo, hi, extra, missed = list(out)
            where = (dtype, start, size, count, extent, list(out))
            assert missed == 0 and 0 <= lo <= hi <= count, where
            if count <= DIRECT_SAMPLES:  # the whole grid: each sample's own test decides
                assert (lo, hi) == (0, count), where
                continue
            assert extra == 0, where
            kind = "empty" if lo == hi else "all" if hi - lo == count else "inner" if 0 < lo and hi < count else "edge"
            kinds[kind] += 1
    assert min(kinds[k] for k in ("empty", "all", "inner", "edge")) >= 20, kinds


def test_roi_pool_index_type_where_sizes_fit(lib):
    """int32 (K as planned) only while the outputs, the data, a plane (H*W, even with no images) and H, W <=
    2^24 fit; else int64 with K = 1."""
    L = _roi_lib(lib)
    out = (ctypes.c_int64 * 2)()
    big = 2 ** 31
    for (N, C, H, W, R, P_), want in [
            ((1, 256, 50, 84, 512, 7), [8, 32]),               # the mmdet dpool head
            ((1, 256, 50, 84, 1, 7), [1, 32]),                 # few items: K = 1
            ((1, 127, 4096, 4096, 1, 1), [1, 32]),             # data just fits (127 * 2^24) ...
            ((1, 128, 4096, 4096, 1, 1), [1, 64]),             # ... and not (2^31)
            ((1, 1, 2 ** 24, 2, 1, 1), [1, 32]), ((1, 1, 2 ** 24 + 1, 1, 1, 1), [1, 64]),  # H exact in float
            ((1, 1, 2, 2 ** 24 + 1, 1, 1), [1, 64]),
            ((1, 2 ** 16, 2, 2, 2 ** 11, 4), [1, 64]),         # outputs R*C*bins = 2^31
            ((1, 2 ** 16, 2, 2, 2 ** 11 - 1, 4), [8, 32]),
            ((0, 1, 2 ** 16, 2 ** 15, 1, 1), [1, 64]),         # no images, but H*W = 2^31: the plane size
            ((0, 1, 2 ** 16, 2 ** 15 - 1, 1, 1), [1, 32])]:
        L.dcn_emu_roi_pool_launch_choice(N, C, H, W, R, P_, P_, out)
        assert list(out) == want, ((N, C, H, W, R, P_), list(out))


def test_psroi_int32_where_sizes_fit(lib):
    """DeformPSROIPool's element indexes in int32 only while data, RoIs and trans offsets and H, W <= 2^24 fit."""
    f = lib.dcn_emu_psroi_fits_int32
    f.restype, f.argtypes = ctypes.c_int, [ctypes.c_int64] * 7
    big = 2 ** 31
    assert f(1, 1029, 38, 63, 300, 1, 7) == 1  # an R-FCN head
    assert f(1, 127, 4096, 4096, 1, 1, 1) == 1 and f(1, 128, 4096, 4096, 1, 1, 1) == 0
    assert f(1, 1, 2 ** 24, 2, 1, 1, 1) == 1 and f(1, 1, 2 ** 24 + 1, 1, 1, 1, 1) == 0
    assert f(1, 1, 2, 2, (big - 1) // 5, 1, 1) == 1 and f(1, 1, 2, 2, (big - 1) // 5 + 1, 1, 1) == 0
    assert f(1, 1, 2, 2, 2 ** 21, 2 ** 5, 4) == 0 and f(1, 1, 2, 2, 2 ** 21 - 1, 2 ** 5, 4) == 1  # trans: 2^31


def test_im2col_int32_only_where_the_output_area_fits(lib):
    """The im2col launcher indexes in int32 only while the output positions fit too: an output area
    outH*outW past INT32_MAX (X 46340x46340, H*W within int32, kernel 1x1 with pads 1: 46342x46342) made
    the int32 kernel's p0 negative, reading offset / mask before their plane and writing before the columns."""
    f = lib.dcn_emu_im2col_fits_int32
    f.restype, f.argtypes = ctypes.c_int, [ctypes.POINTER(ctypes.c_int64)]

    def fits(H, W, pad, k=1):
        v = (ctypes.c_int64 * 17)(1, 1, H, W, 1, k, k, 1, 1, pad, pad, pad, pad, 1, 1, 1, 1)
        return f(v)

    assert fits(46340, 46340, 0) == 1       # H*W = 2147395600 and the output area both fit
    assert fits(46340, 46340, 1) == 0       # output 46342 x 46342 = 2147580964 > INT32_MAX
    assert fits(200, 336, 1, k=3) == 1      # a detection backbone's layer
