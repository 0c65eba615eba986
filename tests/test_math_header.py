"""The math headers (plugins/common/dcn_math.h, plugins/ops/<op>/<op>_math.h) on the host, element by element
against the PyTorch reference.

The headers' functions run over whole tensors in libdcn_host_tests (plugins/tests/host_math.cpp, <op>_host_math.cpp,
loaded with ctypes) in float64, float32 and float16 storage; they are compared with the float64
reference (exporter.ops) on the same (rounded) inputs, with the tolerances of dcn_base.tolerance,
on the awkward sweep (tests/helpers/sweep.py), the MXNet golden data and extra random cases. Validation
messages are matched letter for letter.
"""
from __future__ import annotations

import ctypes
import math
from typing import Optional

import numpy as np
import pytest
import torch

from helpers.built_libs import require
from exporter.contract import conv_out_size
from exporter.ops import deform_conv2d, deform_psroi_pool
from exporter.ops.common import bilinear_gather
from dcn_base.tolerance import tolerance
from helpers.sweep import CONV_SPECS, POOL_SPECS, make_conv_case, make_pool_case, pool_kwargs
from test_reference import golden_cases
from trt_runtime import plugins

# name -> (dtype code of host_math.cpp, storage dtype, result dtype)
DTYPES = {
    "float64": (0, np.float64, np.float64),
    "float32": (1, np.float32, np.float32),
    "float16": (2, np.float16, np.float32),
}
I64 = ctypes.POINTER(ctypes.c_int64)
P = ctypes.c_void_p


@pytest.fixture(scope="module")
def lib():
    path = require(plugins.host_test_library)
    L = ctypes.CDLL(str(path))
    L.dcn_host_deform_conv2d.restype = ctypes.c_int
    L.dcn_host_deform_conv2d.argtypes = (
        [ctypes.c_int, ctypes.c_int] + [P, I64, ctypes.c_int64] * 5 + [I64, ctypes.c_int64] * 4
        + [ctypes.c_int64, ctypes.c_int64, ctypes.c_char_p, P, I64, ctypes.c_char_p, ctypes.c_size_t]
    )
    L.dcn_host_deform_psroi_pool.restype = ctypes.c_int
    L.dcn_host_deform_psroi_pool.argtypes = (
        [ctypes.c_int] + [P, I64, ctypes.c_int64] * 3
        + [ctypes.c_double, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
           ctypes.c_double, ctypes.c_int64, ctypes.c_int, ctypes.c_char_p, P, ctypes.c_char_p, ctypes.c_size_t]
    )
    L.dcn_host_bilinear.argtypes = [P, ctypes.c_int64, ctypes.c_int64, P, P, ctypes.c_int64, P]
    L.dcn_host_conv_out_size.restype = ctypes.c_int64
    L.dcn_host_conv_out_size.argtypes = [ctypes.c_int64] * 6
    L.dcn_host_float_to_half.argtypes = [P, P, ctypes.c_int64]
    L.dcn_host_half_to_float.argtypes = [P, P, ctypes.c_int64]
    L.dcn_host_round.argtypes = [P, P, ctypes.c_int64]
    return L


# --------------------------------------------------------------------------- ctypes wrappers
def _ptr(a: Optional[np.ndarray]):
    return None if a is None else a.ctypes.data_as(P)


def _ints(v):
    a = np.ascontiguousarray(v if v is not None else [], dtype=np.int64)
    return a, a.ctypes.data_as(I64), a.size


def _tensor(a, dtype):
    """(array, pointer, shape pointer, rank) for an input; (None, None, None, -1) when absent."""
    if a is None:
        return None, None, None, -1
    arr = np.ascontiguousarray(a.numpy() if isinstance(a, torch.Tensor) else a, dtype=dtype)
    shape = np.asarray(arr.shape, dtype=np.int64)
    return (arr, shape), arr.ctypes.data_as(P), shape.ctypes.data_as(I64), arr.ndim


def host_conv(lib, dtype, x, w, offset, bias=None, mask=None, strides=(1, 1), pads=(0, 0, 0, 0),
              dilations=(1, 1), group=1, offset_group=1, kernel_shape=None, columns=False, node="n",
              shapes_only=False):
    """(output or None, message). shapes_only: the tensors are shape tuples; validation only."""
    code, store, result = DTYPES[dtype]
    keep, args = [], []
    columns = int(columns)  # 0: output, 1: columns by elements, 2: by taps blocks, 3: the same channels-last
    for t in (x, w, offset, bias, mask):
        if shapes_only and t is not None:
            t = np.zeros(t, dtype=store)
        k, p, s, r = _tensor(t, store)
        keep.append(k)
        args += [p, s, r]
    for v in (strides, pads, dilations, kernel_shape):
        a, p, n = _ints(v)
        keep.append(a)
        args += [p, n]
    dims = np.zeros(19, dtype=np.int64)
    msg = ctypes.create_string_buffer(1024)
    call = lambda out: lib.dcn_host_deform_conv2d(  # noqa: E731
        code, columns, *args, group, offset_group, node.encode(), _ptr(out), dims.ctypes.data_as(I64),
        msg, len(msg))
    if call(None) != 0 or shapes_only:
        return None, msg.value.decode()
    N, C, H, W, M, kH, kW = dims[:7]
    oH, oW = dims[17:19]
    shape = (N, C * kH * kW, oH * oW) if columns else (N, M, oH, oW)
    out = np.full(shape, np.nan, dtype=result)
    assert call(out) == 0
    return out, ""


def host_pool(lib, dtype, data, rois, trans=None, *, spatial_scale, output_dim, group_size, pooled_size,
              part_size=0, sample_per_part=4, trans_std=0.0, no_trans=0, check_batch_indices=True, node="n",
              shapes_only=False):
    code, store, result = DTYPES[dtype]
    keep, args = [], []
    for i, t in enumerate((data, rois, trans)):
        st = store if i != 1 or store == np.float64 else np.float32  # rois: float32 (float64 for float64)
        if shapes_only and t is not None:
            t = np.zeros(t, dtype=st)
        k, p, s, r = _tensor(t, st)
        keep.append(k)
        args += [p, s, r]
    msg = ctypes.create_string_buffer(1024)
    call = lambda out: lib.dcn_host_deform_psroi_pool(  # noqa: E731
        code, *args, spatial_scale, output_dim, group_size, pooled_size, part_size, sample_per_part, trans_std,
        no_trans, int(check_batch_indices), node.encode(), _ptr(out), msg, len(msg))
    if call(None) != 0 or shapes_only:
        return None, msg.value.decode()
    R = keep[1][0].shape[0]
    out = np.full((R, output_dim, pooled_size, pooled_size), np.nan, dtype=result)
    assert call(out) == 0
    return out, ""


def as_dtype(t: Optional[torch.Tensor], dtype: str) -> Optional[torch.Tensor]:
    """The input as the implementation sees it (rounded to dtype), in float64 for the reference."""
    return None if t is None else t.to(getattr(torch, dtype)).double()


def rois_dtype(dtype: str) -> str:
    """RoIs are float32 in float32 and float16 ops (contract), float64 in the float64 builds."""
    return "float64" if dtype == "float64" else "float32"


def assert_matches(got, want, dtype, what=""):
    atol, rtol = tolerance(dtype)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    np.testing.assert_allclose(got.astype(np.float64), want, atol=atol, rtol=rtol, err_msg=what)


# --------------------------------------------------------------------------- scalars
def test_half_conversions_match_numpy(lib):
    bits = np.arange(1 << 16, dtype=np.uint16)
    got = np.empty(bits.size, dtype=np.float32)
    lib.dcn_host_half_to_float(_ptr(bits), _ptr(got), bits.size)
    want = bits.view(np.float16).astype(np.float32)
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan)
    assert np.array_equal(got[~nan].view(np.uint32), want[~nan].view(np.uint32))  # signed zeros too

    rng = np.random.default_rng(1)
    f = np.concatenate([
        rng.standard_normal(20000).astype(np.float32) * np.float32(10.0) ** rng.integers(-9, 6, 20000),
        # halfway cases between neighbouring halves, both parities, normal and subnormal
        (bits[:2048].view(np.float16).astype(np.float32) + bits[1:2049].view(np.float16).astype(np.float32)) / 2,
        (bits[0x3c00:0x3d00].view(np.float16).astype(np.float32)
         + bits[0x3c01:0x3d01].view(np.float16).astype(np.float32)) / 2,
        np.array([0.0, -0.0, 65504, 65519.99, 65520, -65520, 1e9, np.inf, -np.inf, np.nan, 2.0 ** -24,
                  2.0 ** -25, 2.0 ** -25 * 1.0001, 2.0 ** -14, 5.96e-8], dtype=np.float32),
    ]).astype(np.float32)
    out = np.empty(f.size, dtype=np.uint16)
    lib.dcn_host_float_to_half(_ptr(f), _ptr(out), f.size)
    with np.errstate(over="ignore"):
        ref = f.astype(np.float16)
    rnan = np.isnan(ref)
    assert np.array_equal(np.isnan(out.view(np.float16)), rnan)
    assert np.array_equal(out[~rnan], ref.view(np.uint16)[~rnan])


def test_round_is_c_round(lib):
    v = np.array([2.5, -2.5, 0.5, -0.5, 1.5, 0.49999999999999994, -0.49999999999999994, 3.4999, 1e300, -7.0])
    out = np.empty_like(v)
    lib.dcn_host_round(_ptr(v), _ptr(out), v.size)
    assert out.tolist() == [3.0, -3.0, 1.0, -1.0, 2.0, 0.0, -0.0, 3.0, 1e300, -7.0]


def test_conv_out_size_matches_contract(lib):
    for size in range(0, 7):
        for pb, pe in ((0, 0), (1, 0), (2, 3)):
            for dil in (1, 2, 3):
                for k in (1, 2, 3, 5):
                    for s in (1, 2, 3):
                        want = conv_out_size(size, pb, pe, dil, k, s)
                        assert lib.dcn_host_conv_out_size(size, pb, pe, dil, k, s) == want


def test_bilinear_matches_reference(lib):
    H, W = 4, 5
    plane = np.random.default_rng(2).standard_normal((H, W))
    edges = [-1.5, -1.0, -0.999, -0.5, -1e-9, 0.0, 0.25, 1.0, 2.5, H - 1.0, H - 0.5, H - 1e-9, H, H + 0.5,
             W - 1.0, W - 1e-9, W, 1e30, -1e30, math.inf, -math.inf, math.nan]
    hh, ww = np.meshgrid(np.array(edges), np.array(edges), indexing="ij")
    rand = np.random.default_rng(3).uniform(-2, 7, size=(2, 2000))
    h = np.ascontiguousarray(np.concatenate([hh.ravel(), rand[0]]))
    w = np.ascontiguousarray(np.concatenate([ww.ravel(), rand[1]]))
    got = np.empty_like(h)
    lib.dcn_host_bilinear(_ptr(plane), H, W, _ptr(h), _ptr(w), h.size, _ptr(got))
    want = bilinear_gather(torch.from_numpy(plane)[None, None], torch.from_numpy(h)[None],
                           torch.from_numpy(w)[None])[0, 0].numpy()
    assert_matches(got, want, "float64", "bilinear")
    assert np.all(got[~np.isfinite(h) | ~np.isfinite(w)] == 0)


# --------------------------------------------------------------------------- DeformConv2d
def conv_args(c, dtype):
    return dict(strides=c.strides, pads=c.pads, dilations=c.dilations, group=c.group,
                offset_group=c.offset_group, kernel_shape=tuple(c.weight.shape[2:]))


def conv_reference(c, dtype, weight=None, bias="case"):
    return deform_conv2d(as_dtype(c.x, dtype), as_dtype(c.offset, dtype),
                         as_dtype(c.weight, dtype) if weight is None else weight,
                         as_dtype(c.bias, dtype) if bias == "case" else bias,
                         stride=c.strides, padding=c.pads, dilation=c.dilations, mask=as_dtype(c.mask, dtype))


CONV_IDS = [s[0] for s in CONV_SPECS]


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("spec", CONV_SPECS, ids=CONV_IDS)
def test_conv_output_matches_reference(lib, spec, dtype):
    c = make_conv_case(spec)
    got, msg = host_conv(lib, dtype, c.x, c.weight, c.offset, c.bias, c.mask, **conv_args(c, dtype))
    assert msg == ""
    assert_matches(got, conv_reference(c, dtype).numpy(), dtype, spec[0])


@pytest.mark.parametrize("dtype", ["float64", "float16"])
@pytest.mark.parametrize("spec", CONV_SPECS, ids=CONV_IDS)
def test_conv_columns_match_reference(lib, spec, dtype):
    """Each column entry (deform_im2col_element) = the reference with an identity weight, group 1."""
    c = make_conv_case(spec)
    C, (kH, kW) = c.x.shape[1], c.weight.shape[2:]
    K = kH * kW
    eye = torch.zeros(C * K, C, kH, kW, dtype=torch.float64)
    for ch in range(C):
        for k in range(K):
            eye[ch * K + k, ch, k // kW, k % kW] = 1.0
    args = conv_args(c, dtype)
    args.update(group=1, kernel_shape=None)
    got, msg = host_conv(lib, dtype, c.x, eye, c.offset, None, c.mask, columns=True, **args)
    assert msg == ""
    want = conv_reference(c, dtype, weight=eye, bias=None).reshape(got.shape)
    assert_matches(got, want.numpy(), dtype, spec[0])


# offset groups of 7 and 9 channels: runs of 4 + 3 and 4 + 4 + 1 planes per taps block
RUN_SPECS = [("og7-runs", 1, 14, 6, 9, 3, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1, 2, True, False, 2.0),
             ("og9-runs", 2, 9, 5, 7, 2, 3, 2, (2, 1), (0, 1, 1, 0), (1, 2), 1, 1, False, False, 1.5)]


# the ONNX Runtime op's two ways of sampling columns from taps blocks (host library codes)
BLOCK_WAYS = {"planes": 2, "channels-last": 3}


@pytest.mark.parametrize("way", list(BLOCK_WAYS))
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("spec", CONV_SPECS + RUN_SPECS, ids=CONV_IDS + [s[0] for s in RUN_SPECS])
def test_conv_taps_blocks_equal_elements(lib, spec, dtype, way):
    """The ONNX Runtime op's sampling (taps blocks, then apply_taps_block_planes over runs of up to
    four channels, or apply_taps_block_channels over an offset group's channels stored
    channels-last; vectorised for float) gives exactly the element function's columns on finite
    inputs, borders and far points included (offset groups of 7 and 9 channels: vector tails)."""
    c = make_conv_case(spec, seed=11)
    args = conv_args(c, dtype)
    by_element, msg = host_conv(lib, dtype, c.x, c.weight, c.offset, None, c.mask, columns=1, **args)
    assert msg == ""
    by_block, msg = host_conv(lib, dtype, c.x, c.weight, c.offset, None, c.mask, columns=BLOCK_WAYS[way], **args)
    assert msg == ""
    assert np.array_equal(by_block, by_element)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast")  # 1e6 in float16: inf, one more edge
@pytest.mark.parametrize("way", list(BLOCK_WAYS))
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("shape", [(7, 13, (1, 1), (1, 1, 1, 1), (1, 1)), (9, 30, (2, 3), (0, 2, 1, 0), (2, 1)),
                                   (2, 2, (1, 1), (1, 1, 1, 1), (1, 1))], ids=["13-wide", "stride23", "2x2"])
def test_conv_taps_blocks_at_the_edges(lib, dtype, shape, way):
    """deform_taps_block (four positions of a row at a time for float on the host) against the
    element function where sampling is decided: samples exactly on the map's borders (-1, -0, 0,
    H-1, H), just inside and outside them, halves, far points, NaN / inf offsets, and a mask with
    zeros, negatives, inf and NaN; rows of 13 and of 10 (tails of 1-3 positions, blocks of 48
    starting inside rows), strides 2x3, asymmetric pads, a 2x2 map; the blocks applied both of the
    op's ways (planes, channels-last). Columns bit for bit; the host library also compares every
    block byte for byte with set_taps per position (a message if not)."""
    H, W, strides, pads, dil = shape
    kH, kW, og, C = 3, 2, 2, 10  # 5 channels an offset group: a vector of 4 and a tail
    rng = np.random.default_rng(41)
    oH = conv_out_size(H, pads[0], pads[2], dil[0], kH, strides[0])
    oW = conv_out_size(W, pads[1], pads[3], dil[1], kW, strides[1])
    x = torch.from_numpy(rng.standard_normal((2, C, H, W)))
    w = torch.from_numpy(rng.standard_normal((3, C, kH, kW)))
    # offsets that land the sample (before the offset: ho*stride - pad + i*dil) on chosen points
    base_h = (np.arange(oH) * strides[0] - pads[0])[None, None, :, None] + \
        (np.arange(kH * kW) // kW * dil[0])[None, :, None, None]
    base_w = (np.arange(oW) * strides[1] - pads[1])[None, None, None, :] + \
        (np.arange(kH * kW) % kW * dil[1])[None, :, None, None]
    points_h = np.array([-1.0, -0.9999, -0.5, -0.0, 0.0, 0.25, 1.0, H - 2.0, H - 1.5, H - 1.0, H - 0.5, H - 1e-4,
                         float(H), H + 0.5, 1e6, -1e6, np.nan, np.inf, -np.inf])
    points_w = np.array([-1.0, -0.9999, -0.5, -0.0, 0.0, 0.25, 1.0, W - 2.0, W - 1.5, W - 1.0, W - 0.5, W - 1e-4,
                         float(W), W + 0.5, 1e6, -1e6, np.nan, np.inf, -np.inf])
    shape_o = (2, og, kH * kW, oH, oW)
    th = rng.choice(points_h, size=shape_o)
    tw = rng.choice(points_w, size=shape_o)
    off = np.empty((2, og, kH * kW, 2, oH, oW))
    off[:, :, :, 0] = th - base_h[:, None]
    off[:, :, :, 1] = tw - base_w[:, None]
    off = torch.from_numpy(off.reshape(2, og * kH * kW * 2, oH, oW))
    mask = rng.choice(np.array([0.0, -0.0, 1.0, 0.5, -2.0, np.inf, np.nan, 0.3]), size=(2, og * kH * kW, oH, oW),
                      p=[0.1, 0.05, 0.3, 0.2, 0.1, 0.05, 0.05, 0.15])
    args = dict(strides=strides, pads=pads, dilations=dil, offset_group=og, kernel_shape=(kH, kW))
    by_element, msg = host_conv(lib, dtype, x, w, off, None, torch.from_numpy(mask), columns=1, **args)
    assert msg == ""
    by_block, msg = host_conv(lib, dtype, x, w, off, None, torch.from_numpy(mask), columns=BLOCK_WAYS[way], **args)
    assert msg == ""
    assert np.isnan(by_element).any() and (by_element == 0).mean() > 0.1  # the edges were reached
    assert np.array_equal(by_block, by_element, equal_nan=True)
    assert np.array_equal(np.signbit(by_block), np.signbit(by_element))


@pytest.mark.parametrize("spec", [CONV_SPECS[1], CONV_SPECS[3]], ids=[CONV_SPECS[1][0], CONV_SPECS[3][0]])
def test_conv_bigger_batch(lib, spec):
    c = make_conv_case(spec, batch=5, seed=7)
    got, msg = host_conv(lib, "float64", c.x, c.weight, c.offset, c.bias, c.mask, **conv_args(c, "float64"))
    assert msg == ""
    assert_matches(got, conv_reference(c, "float64").numpy(), "float64", spec[0])


def test_conv_partial_corners_and_far_points(lib):
    """Offsets placing samples exactly on and around the map's edges and corners, and far outside."""
    N, C, H, W, kH, kW = 1, 2, 4, 5, 2, 2
    rng = np.random.default_rng(5)
    x = torch.from_numpy(rng.standard_normal((N, C, H, W)))
    w = torch.from_numpy(rng.standard_normal((3, C, kH, kW)))
    oH, oW = conv_out_size(H, 1, 1, 1, kH, 1), conv_out_size(W, 1, 1, 1, kW, 1)
    choices = np.array([-1.0, -0.999, -0.5, 0.0, 0.5, 0.999, 1.0, H - 1.0, H - 0.5, H, 50.0, -50.0, 1e6])
    off = torch.from_numpy(rng.choice(choices, size=(N, 2 * kH * kW, oH, oW)) - rng.integers(-1, 2, (N, 8, oH, oW)))
    got, msg = host_conv(lib, "float64", x, w, off, pads=(1, 1, 1, 1))
    assert msg == ""
    want = deform_conv2d(x, off, w, padding=(1, 1, 1, 1)).numpy()
    assert_matches(got, want, "float64", "edges")


CONV_BASE = dict(x=(2, 6, 7, 9), w=(4, 3, 3, 2), offset=(2, 36, 3, 9), bias=(4,), mask=(2, 18, 3, 9),
                 strides=(2, 1), pads=(1, 0, 2, 1), dilations=(2, 1), group=2, offset_group=3, kernel_shape=(3, 2))

CONV_ERRORS = [
    (dict(), ""),
    (dict(offset=(2, 18, 3, 9), mask=None), "offset has 18 channels, expected 2*offset_group*kH*kW = 36"),
    (dict(x=(2, 6, 7)), "X has rank 3, expected 4 ([N, C, H, W])"),
    (dict(w=(4, 3, 3)), "W has rank 3, expected 4 ([M, C/group, kH, kW])"),
    (dict(offset=(36, 3, 9)), "offset has rank 3, expected 4 ([N, 2*offset_group*kH*kW, oH, oW])"),
    (dict(bias=(4, 1)), "B has rank 2, expected 1 ([M])"),
    (dict(mask=(18, 3, 9)), "mask has rank 3, expected 4 ([N, offset_group*kH*kW, oH, oW])"),
    (dict(group=4), "X has 6 channels, expected a multiple of group = 4"),
    (dict(offset_group=4), "X has 6 channels, expected a multiple of offset_group = 4"),
    (dict(w=(4, 2, 3, 2)), "W has 2 input channels, expected C/group = 3"),
    (dict(w=(5, 3, 3, 2), bias=(5,)), "W has 5 output channels, expected a multiple of group = 2"),
    (dict(kernel_shape=(3, 3)), "attribute kernel_shape = [3, 3], expected W's kernel size [3, 2]"),
    (dict(kernel_shape=(3,)), "attribute kernel_shape has 1 values, expected 2"),
    (dict(offset=(1, 36, 3, 9)), "offset has batch 1, expected N = 2"),
    (dict(offset=(2, 36, 4, 9)), "offset has spatial size 4x9, expected oH x oW = 3x9"),
    (dict(mask=(2, 6, 3, 9)), "mask has 6 channels, expected offset_group*kH*kW = 18"),
    (dict(mask=(2, 18, 3, 8)), "mask has spatial size 3x8, expected oH x oW = 3x9"),
    (dict(mask=(1, 18, 3, 9)), "mask has batch 1, expected N = 2"),
    (dict(bias=(5,)), "B has 5 values, expected M = 4"),
    (dict(strides=(0, 1)), "attribute strides = [0, 1], expected values >= 1"),
    (dict(dilations=(1, -2)), "attribute dilations = [1, -2], expected values >= 1"),
    (dict(pads=(1, 0, -1, 0)), "attribute pads = [1, 0, -1, 0], expected values >= 0"),
    (dict(pads=(1, 1)), "attribute pads has 2 values, expected 4"),
    (dict(strides=(1, 1, 1)), "attribute strides has 3 values, expected 2"),
    (dict(group=0), "attribute group = 0, expected >= 1"),
    (dict(offset_group=-1), "attribute offset_group = -1, expected >= 1"),
    (dict(x=(2, 6, 2, 1), offset=(2, 36, 1, 1), mask=None, pads=(0, 0, 0, 0), strides=(1, 1), dilations=(1, 1)),
     "output size 0x0 (input 2x1, kernel 3x2, pads [0, 0, 0, 0], strides [1, 1], dilations [1, 1]), "
     "expected >= 1x1"),
    (dict(w=(4, 3, 0, 2), kernel_shape=None), "W has kernel size 0x2, expected >= 1x1"),
]


@pytest.mark.parametrize("change,message", CONV_ERRORS, ids=[m or "valid" for _, m in CONV_ERRORS])
def test_conv_validation_messages(lib, change, message):
    a = dict(CONV_BASE, **change)
    _, got = host_conv(lib, "float32", a["x"], a["w"], a["offset"], a["bias"], a["mask"], strides=a["strides"],
                       pads=a["pads"], dilations=a["dilations"], group=a["group"], offset_group=a["offset_group"],
                       kernel_shape=a["kernel_shape"], node="backbone.layer3.0.conv2", shapes_only=True)
    assert got == (f"DeformConv2d 'backbone.layer3.0.conv2': {message}" if message else "")


def test_conv_contract_example_message(lib):
    _, got = host_conv(lib, "float32", (1, 8, 5, 5), (4, 8, 3, 3), (1, 36, 5, 5), pads=(1, 1, 1, 1),
                       node="backbone.layer3.0.conv2", shapes_only=True)
    assert got == "DeformConv2d 'backbone.layer3.0.conv2': offset has 36 channels, expected 2*offset_group*kH*kW = 18"


# --------------------------------------------------------------------------- DeformPSROIPool
def pool_reference(c, dtype, data=None, rois=None, trans="case", attrs=None):
    a = attrs or c.attrs
    t = as_dtype(c.trans, dtype) if isinstance(trans, str) else trans
    return deform_psroi_pool(as_dtype(c.data, dtype) if data is None else data,
                             as_dtype(c.rois, rois_dtype(dtype)) if rois is None else rois,
                             None if a.get("no_trans") else t, **pool_kwargs(a))


POOL_IDS = [s[0] for s in POOL_SPECS]


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("spec", POOL_SPECS, ids=POOL_IDS)
def test_pool_matches_reference(lib, spec, dtype):
    c = make_pool_case(spec)
    got, msg = host_pool(lib, dtype, c.data, c.rois, c.trans, **c.attrs)
    assert msg == ""
    assert_matches(got, pool_reference(c, dtype).numpy(), dtype, spec[0])


def random_pool_case(seed):
    """Random RoIs on, across, off and tiny inside the image; random sizes and classes."""
    g = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    N, H, W = int(rng.integers(1, 4)), int(rng.integers(1, 12)), int(rng.integers(1, 12))
    G, P = int(rng.integers(1, 4)), int(rng.integers(1, 8))
    ncls = int(rng.choice([0, 1, 2, 3]))
    D = max(ncls, 1) * int(rng.integers(1, 3))
    part = int(rng.choice([0, 1, 2, P + 1]))
    S = int(rng.integers(1, 5))
    scale = float(rng.choice([1.0, 0.5, 0.25, 1 / 16]))
    R = int(rng.integers(0, 12))
    img_w, img_h = W / scale, H / scale
    x1 = rng.uniform(-0.5 * img_w, 1.2 * img_w, R)
    y1 = rng.uniform(-0.5 * img_h, 1.2 * img_h, R)
    size = rng.choice([0.0, 0.5, 3.0, img_w / 2, img_w * 2], R)
    rois = np.stack([rng.integers(0, N, R), x1, y1, x1 + size * rng.uniform(0, 1.5, R),
                     y1 + size * rng.uniform(0, 1.5, R)], axis=1).reshape(R, 5)
    data = torch.randn(N, D * G * G, H, W, generator=g, dtype=torch.float64)
    psz = part or P
    trans = torch.randn(R, 2 * ncls, psz, psz, generator=g, dtype=torch.float64) * 2 + 0.0123 if ncls else None
    attrs = dict(spatial_scale=scale, output_dim=D, group_size=G, pooled_size=P, part_size=part,
                 sample_per_part=S, trans_std=float(rng.choice([0.0, 0.1, 0.5])), no_trans=int(trans is None))
    return data, torch.from_numpy(rois), trans, attrs


@pytest.mark.parametrize("seed", range(12))
def test_pool_random_sweep(lib, seed):
    data, rois, trans, attrs = random_pool_case(seed)
    got, msg = host_pool(lib, "float64", data, rois, trans, **attrs)
    assert msg == ""
    want = deform_psroi_pool(data, rois, trans, **pool_kwargs(attrs)).numpy()
    assert_matches(got, want, "float64", f"seed {seed}")


def test_pool_zero_count_bins_are_zero(lib):
    """A RoI wholly outside the image: no sample counts, every bin is exactly 0."""
    c = make_pool_case(POOL_SPECS[2])  # "ps2-pooled5-offimage": its first RoI lies off the image
    got, _ = host_pool(lib, "float64", c.data, c.rois, c.trans, **dict(c.attrs, trans_std=0.0))
    assert np.all(got[0] == 0.0)
    assert np.any(got[1:] != 0.0)


def test_pool_samples_on_the_half_pixel_edges_count(lib):
    """Samples exactly at -0.5 and W - 0.5 (H - 0.5) are kept (the skip is strict) and clamped."""
    H = W = 4
    data = torch.arange(H * W, dtype=torch.float64).reshape(1, 1, H, W) ** 2
    rois = torch.tensor([[0.0, 0.0, 0.0, 2 * W - 1, 2 * H - 1]])  # samples at -0.5 and 3.5, both axes
    attrs = dict(spatial_scale=1.0, output_dim=1, group_size=1, pooled_size=1, sample_per_part=2)
    got, msg = host_pool(lib, "float64", data, rois, **attrs)
    assert msg == ""
    corners = data[0, 0, [0, 0, -1, -1], [0, -1, 0, -1]].mean().item()
    assert got[0, 0, 0, 0] == pytest.approx(corners, abs=1e-12)
    assert_matches(got, deform_psroi_pool(data, rois, **attrs).numpy(), "float64")


def test_pool_golden_mxnet(lib):
    n = 0
    for i, a, data, rois, trans, out in golden_cases():
        got, msg = host_pool(lib, "float64", data, rois, trans, **a)
        assert msg == ""
        # MXNet keeps trans_std / spatial_scale as float32: ~1e-7 where offsets are used (shared/data/README.md).
        atol = 1e-12 if trans is None else 2e-7
        np.testing.assert_allclose(got, out, rtol=0, atol=atol, err_msg=f"golden case {i}")
        n += 1
    assert n == 6


def test_pool_no_trans_ignores_trans(lib):
    c = make_pool_case(POOL_SPECS[1])
    got, _ = host_pool(lib, "float64", c.data, c.rois, c.trans, **dict(c.attrs, no_trans=1))
    want = pool_reference(c, "float64", trans=None, attrs=dict(c.attrs, no_trans=1))
    assert_matches(got, want.numpy(), "float64")


def test_pool_bad_batch_index_reads_nothing(lib):
    """Batch indices outside [0, N) (and NaN) give 0 when not checked, and a message when checked."""
    c = make_pool_case(POOL_SPECS[1])  # N = 2
    rois = c.rois.clone()
    rois[0, 0], rois[1, 0], rois[2, 0] = 2.0, -1.0, math.nan
    got, msg = host_pool(lib, "float64", c.data, rois, c.trans, check_batch_indices=False, **c.attrs)
    assert msg == "" and np.all(got == 0.0)
    _, msg = host_pool(lib, "float64", c.data, rois, c.trans, node="head.psroi", **c.attrs)
    assert msg == "DeformPSROIPool 'head.psroi': rois[0, 0] = 2, expected a batch index in [0, N) = [0, 2)"
    rois[0, 0] = 0.7  # truncated to 0, as the original operator's int cast
    _, msg = host_pool(lib, "float64", c.data, rois, c.trans, **c.attrs)
    assert msg == "DeformPSROIPool 'n': rois[1, 0] = -1, expected a batch index in [0, N) = [0, 2)"


POOL_BASE = dict(data=(2, 36, 9, 11), rois=(3, 5), trans=(3, 4, 2, 2), spatial_scale=0.5, output_dim=4,
                 group_size=3, pooled_size=3, part_size=2, sample_per_part=2, trans_std=0.1, no_trans=0)

POOL_ERRORS = [
    (dict(), ""),
    (dict(rois=(3, 4)), "rois has shape [3, 4], expected [R, 5]"),
    (dict(rois=(15,)), "rois has shape [15], expected [R, 5]"),
    (dict(data=(2, 36, 9)), "data has rank 3, expected 4 ([N, output_dim*group_size^2, H, W])"),
    (dict(data=(2, 10, 9, 11)), "data has 10 channels, expected output_dim*group_size^2 = 36"),
    (dict(trans=(3, 3, 2, 2)), "trans has 3 channels, expected an even number >= 2 (2*num_classes)"),
    (dict(trans=(3, 0, 2, 2)), "trans has 0 channels, expected an even number >= 2 (2*num_classes)"),
    (dict(trans=(3, 6, 2, 2)), "trans has 6 channels (num_classes = 3), expected num_classes dividing output_dim = 4"),
    (dict(trans=(3, 4, 3, 3)), "trans has spatial size 3x3, expected part_size x part_size = 2x2"),
    (dict(trans=(3, 4, 3, 3), part_size=0), ""),
    (dict(trans=(2, 4, 2, 2)), "trans has 2 RoIs, expected R = 3"),
    (dict(trans=(3, 4, 2)), "trans has rank 3, expected 4 ([R, 2*num_classes, part_size, part_size])"),
    (dict(trans=(3, 3, 2, 2), no_trans=1), ""),
    (dict(spatial_scale=0.0), "attribute spatial_scale = 0, expected a finite value > 0"),
    (dict(spatial_scale=math.nan), "attribute spatial_scale = nan, expected a finite value > 0"),
    (dict(output_dim=0), "attribute output_dim = 0, expected >= 1"),
    (dict(group_size=0), "attribute group_size = 0, expected >= 1"),
    (dict(pooled_size=0), "attribute pooled_size = 0, expected >= 1"),
    (dict(part_size=-1), "attribute part_size = -1, expected >= 0"),
    (dict(sample_per_part=0), "attribute sample_per_part = 0, expected >= 1"),
    (dict(trans_std=math.inf), "attribute trans_std = inf, expected a finite value"),
    (dict(no_trans=2), "attribute no_trans = 2, expected 0 or 1"),
    (dict(rois=(0, 5), trans=(0, 4, 2, 2)), ""),
]


@pytest.mark.parametrize("change,message", POOL_ERRORS, ids=[m or "valid" for _, m in POOL_ERRORS])
def test_pool_validation_messages(lib, change, message):
    a = dict(POOL_BASE, **change)
    _, got = host_pool(lib, "float32", a.pop("data"), a.pop("rois"), a.pop("trans"), node="rfcn.psroi",
                       shapes_only=True, check_batch_indices=False, **a)
    assert got == (f"DeformPSROIPool 'rfcn.psroi': {message}" if message else "")
