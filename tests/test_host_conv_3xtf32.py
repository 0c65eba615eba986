"""DeformConv2d's FP32 GEMM in 3xTF32 mode (DCN_DEFORM_CONV_FP32_GEMM=3xtf32), emulated on the host.

On the GPU the mode splits every column entry (in the im2col kernel) and every weight (a split
kernel) into a TF32 hi half and a float lo half (split_tf32, deform_conv2d_math.h) and runs three
cuBLAS GEMMs with CUBLAS_COMPUTE_32F_FAST_TF32 (lo x hi, hi x lo, hi x hi: plan::kSplitTerms) in
place of one SIMT SGEMM. deform_conv2d_host_kernels.cpp runs the plugin's own code for it (the
layout with the lo halves and the weights' part, the split in the im2col threads and the weight
split threads, the three GEMM descriptors per GEMM) with a plain loop for cuBLAS that reads the
operands as TF32 by truncation (the worst reading). Checked here: the split itself (exact, TF32
hi, non-finite values), float32 results within dcn_base/tolerance.py's float32 row on the awkward
sweep and in chunks, and that plain TF32 (the hi x hi term alone) or hi x lo + hi x hi miss that
row: the terms are needed. Not checked here: cuBLAS's own TF32 kernels and the speed (the GPU kit).

Tensor cores do not accumulate like IEEE float: per block of products they align the addends to the
largest and drop the bits shifted out, then truncate the sum to float (Fasi, Higham, Mikaitis and
Pranesh, PeerJ Computer Science 7:e330, 2021; Khattak and Mikaitis, arXiv 2512.07004, for newer
cards). The emulation can accumulate 3xTF32's GEMMs by that model (dcn_emu_set_tc_accumulation: block
size, extra bits kept below float's 24), so 3xTF32's accuracy is checked here under the variants a
GPU may implement, at c5's depth (K = 4608) as well. Measured with it (error / float32's row, K = 4608,
columns >= 0 as after a ReLU, blocks of 8): zero-mean weights 0.03 (0 extra bits) / 0.14 (3); weights
with a mean of 0.5 / 1 standard deviation 0.42 / 0.70 (0 extra bits), <= 0.20 (3); all weights
positive 1.08 (0 extra bits: over the row, the bias of truncation adds up over 576 blocks) / 0.25 (3).
IEEE accumulation: 0.02-0.03 on all of them.
"""
from __future__ import annotations

import ctypes

import numpy as np
import pytest
import torch

from dcn_base.tolerance import error_ratio, tolerance
from exporter.contract import conv_out_size
from helpers.sweep import CONV_SPECS, ConvCase, make_conv_case
from test_host_kernels import DTYPES, assert_matches, check_conv_stats, conv_reference, emu_conv, load_library

ENV = "DCN_DEFORM_CONV_FP32_GEMM"
F32P = ctypes.POINTER(ctypes.c_float)


@pytest.fixture(scope="module")
def lib():
    L = load_library()
    L.dcn_emu_split_tf32.restype = None
    L.dcn_emu_split_tf32.argtypes = [F32P, ctypes.c_int64, F32P, F32P]
    L.dcn_emu_set_split_terms_skipped.restype = ctypes.c_int
    L.dcn_emu_set_split_terms_skipped.argtypes = [ctypes.c_int]
    return L


@pytest.fixture
def tc_model(lib):
    """set(block_k, extra_bits): 3xTF32's GEMMs accumulate by the tensor-core model; IEEE again after."""
    lib.dcn_emu_set_tc_accumulation.restype = ctypes.c_int
    lib.dcn_emu_set_tc_accumulation.argtypes = [ctypes.c_int, ctypes.c_int]
    yield lambda block_k, extra_bits: lib.dcn_emu_set_tc_accumulation(block_k, extra_bits)
    lib.dcn_emu_set_tc_accumulation(0, 0)


@pytest.fixture
def split_mode(monkeypatch):
    monkeypatch.setenv(ENV, "3xtf32")


def split(lib, values):
    v = np.ascontiguousarray(values, dtype=np.float32)
    hi, lo = np.full_like(v, 7.0), np.full_like(v, 7.0)
    lib.dcn_emu_split_tf32(v.ctypes.data_as(F32P), v.size, hi.ctypes.data_as(F32P), lo.ctypes.data_as(F32P))
    return v, hi, lo


def test_split_is_exact_with_a_tf32_hi_half(lib):
    rng = np.random.default_rng(0)
    f = np.finfo(np.float32)
    special = [0.0, -0.0, 1.0, -1.0, 1 + 2.0 ** -11, 1 + 3 * 2.0 ** -11, 2 - 2.0 ** -23, -(2 - 2.0 ** -23),
               f.max, -f.max, f.tiny, f.smallest_subnormal, 2.0 ** -137, 3 * 2.0 ** -138, 65504.0, 1e-30, -3.3e38]
    rand = np.clip(rng.standard_normal(4000) * np.exp2(rng.integers(-140, 127, 4000)), -f.max, f.max)  # finite
    v, hi, lo = split(lib, np.concatenate([special, rand]).astype(np.float32))
    assert np.all(hi.view(np.uint32) & 0x1FFF == 0), "hi has more than TF32's 10 mantissa bits"
    np.testing.assert_array_equal(hi.astype(np.float64) + lo.astype(np.float64), v.astype(np.float64))
    assert np.all(np.isfinite(hi)) and np.all(np.isfinite(lo))
    # hi is the nearest TF32 value (half a TF32 step of v's binade, at most), but where rounding
    # would overflow (then truncated: less than one step)
    _, e = np.frexp(v.astype(np.float64))
    half_step = np.maximum(np.exp2(e.astype(np.float64) - 12), 2.0 ** -137)
    near_max = np.abs(v.astype(np.float64)) > f.max * (1 - 2.0 ** -12)
    bound = np.where(near_max, 2 * half_step, half_step)
    assert np.all(np.abs(lo.astype(np.float64)) <= bound)
    assert np.all(np.signbit(hi[v != 0]) == np.signbit(v[v != 0]))


def test_split_of_non_finite_values_puts_them_in_the_lo_half(lib):
    odd_nan = np.array([0x7F800001], dtype=np.uint32).view(np.float32)[0]  # NaN that a TF32 read would make inf
    v, hi, lo = split(lib, [np.inf, -np.inf, np.nan, odd_nan])
    np.testing.assert_array_equal(hi, 0.0)
    assert lo[0] == np.inf and lo[1] == -np.inf
    assert np.isnan(lo[2]) and np.isnan(lo[3])
    assert lo[3].view(np.uint32) & 0xFFFFE000 != 0x7F800000, "the NaN must stay a NaN when read as TF32"


@pytest.mark.parametrize("spec", CONV_SPECS, ids=[s[0] for s in CONV_SPECS])
def test_conv_3xtf32_within_float32_tolerance(lib, split_mode, spec):
    c = make_conv_case(spec)
    rc, y, stats, msg = emu_conv(lib, "float32", c)
    assert rc == 0, msg
    assert stats[12] == 1 or c.x.shape[0] == 0, "the 3xTF32 mode did not run"  # batch 0: nothing runs
    check_conv_stats(c, stats)
    assert_matches(y, conv_reference(c, "float32"), "float32", spec[0])


def test_conv_3xtf32_batch33_in_chunks(lib, split_mode):
    """Chunks of 4 images with the lo halves in the chunk (twice the columns per image)."""
    c = make_conv_case(next(s for s in CONV_SPECS if s[0] == "k3x2-asym"), batch=33)
    oh = conv_out_size(c.x.shape[2], c.pads[0], c.pads[2], c.dilations[0], c.weight.shape[2], c.strides[0])
    ow = conv_out_size(c.x.shape[3], c.pads[1], c.pads[3], c.dilations[1], c.weight.shape[3], c.strides[1])
    L = oh * ow
    ld = -(-L // 4) * 4
    per_image = (2 * c.x.shape[1] * c.weight.shape[2] * c.weight.shape[3] + (c.weight.shape[0] if ld != L else 0)) * ld * 4
    rc, y, stats, msg = emu_conv(lib, "float32", c, cap=per_image * 4 + per_image // 2)
    assert rc == 0, msg
    check_conv_stats(c, stats, chunk_expected=4)
    assert stats[12] == 1
    assert_matches(y, conv_reference(c, "float32"), "float32", "3xtf32 batch 33")


@pytest.mark.parametrize("index,max_blocks", [("int32", 2), ("int64", 3)])
def test_conv_3xtf32_index_types_and_grid_stride(lib, split_mode, index, max_blocks):
    """Both index instantiations and a grid smaller than the work, for the im2col's split stores and
    the weight split kernel (grid-stride loops)."""
    c = make_conv_case(next(s for s in CONV_SPECS if s[0] == "k3x2-asym"), batch=5)
    rc, y, stats, msg = emu_conv(lib, "float32", c, index=index, max_blocks=max_blocks)
    assert rc == 0, msg
    assert stats[12] == 1 and stats[3] == max_blocks and stats[4] == (64 if index == "int64" else 32), stats
    check_conv_stats(c, stats)
    assert_matches(y, conv_reference(c, "float32"), "float32", f"3xtf32 {index} max_blocks={max_blocks}")


def deep_case(seed=11):
    """A detection-like layer: 64 channels x 3x3 (K = 576), unit-scale data, mask, bias."""
    g = torch.Generator().manual_seed(seed)
    N, C, H, W, M = 2, 64, 9, 10, 24
    x = torch.randn(N, C, H, W, generator=g, dtype=torch.float64)
    w = torch.randn(M, C, 3, 3, generator=g, dtype=torch.float64) / 12
    off = torch.randn(N, 18, H, W, generator=g, dtype=torch.float64) * 1.5
    mask = torch.rand(N, 9, H, W, generator=g, dtype=torch.float64)
    b = torch.randn(M, generator=g, dtype=torch.float64)
    return ConvCase(x, w, off, b, mask, (1, 1), (1, 1, 1, 1), (1, 1), 1, 1)


def test_each_term_is_needed(lib, split_mode):
    """Plain TF32 (hi x hi) and hi x lo + hi x hi miss float32's row; all three terms pass it.
    (The split's worth; and the row tells float32 accuracy from TF32's.)"""
    c = deep_case()
    want = conv_reference(c, "float32")
    atol, rtol = tolerance("float32")
    errors = {}
    try:
        for skipped in (0, 1, 2):
            lib.dcn_emu_set_split_terms_skipped(skipped)
            rc, y, stats, msg = emu_conv(lib, "float32", c)
            assert rc == 0, msg
            assert stats[1] == 3 - skipped, stats
            errors[skipped] = error_ratio(y, want, atol, rtol)
    finally:
        lib.dcn_emu_set_split_terms_skipped(0)
    assert errors[0] <= 1.0, errors
    assert errors[1] > 1.0 and errors[2] > 1.0, errors


def test_non_finite_input_gives_what_sgemm_gives(lib, monkeypatch):
    """inf / NaN in X (and a weight exactly a TF32 value, whose lo half is 0): the same inf / NaN
    pattern as the SGEMM path, not inf x 0 = NaN."""
    c = deep_case(seed=12)
    c.x[0, 3, 4, 5] = float("inf")
    c.x[1, 7, 2, 2] = float("-inf")
    c.x[1, 9, 6, 1] = float("nan")
    c.weight[:, 3] = 0.5  # exactly TF32: lo halves 0
    monkeypatch.delenv(ENV, raising=False)
    rc, y_sgemm, stats, msg = emu_conv(lib, "float32", c)
    assert rc == 0 and stats[12] == 0, msg
    monkeypatch.setenv(ENV, "3xtf32")
    rc, y_split, stats, msg = emu_conv(lib, "float32", c)
    assert rc == 0 and stats[12] == 1, msg
    assert np.isinf(y_sgemm).any() and np.isnan(y_sgemm).any()
    np.testing.assert_array_equal(np.isnan(y_split), np.isnan(y_sgemm))
    np.testing.assert_array_equal(np.isposinf(y_split), np.isposinf(y_sgemm))
    np.testing.assert_array_equal(np.isneginf(y_split), np.isneginf(y_sgemm))
    fin = np.isfinite(y_sgemm)
    assert_matches(y_split[fin], y_sgemm[fin].astype(np.float64), "float32", "finite outputs")


@pytest.mark.parametrize("value,split_on", [("3xtf32", 1), ("", 0), ("sgemm", 0), ("3XTF32", 0), ("tf32", 0)])
def test_switch_values(lib, monkeypatch, value, split_on):
    """Only "3xtf32" selects the mode (off by default until it has run on a GPU); float64 and
    float16 never split."""
    monkeypatch.setenv(ENV, value)
    c = make_conv_case(CONV_SPECS[0])
    for dtype in DTYPES:
        rc, _, stats, msg = emu_conv(lib, dtype, c)
        assert rc == 0, msg
        assert stats[12] == (split_on if dtype == "float32" else 0), (dtype, value)


def c5_case(columns="any", weight_mean=0.0, seed=3):
    """c5's depth: 512 channels x 3x3 (K = 4608), unit-scale data, weights ~ N(0, 1/K) shifted by
    weight_mean standard deviations; columns="relu": X >= 0 (so are the columns: masks in [0, 1])."""
    g = torch.Generator().manual_seed(seed)
    N, C, H, W, M = 2, 512, 6, 7, 16
    x = torch.randn(N, C, H, W, generator=g, dtype=torch.float64)
    if columns == "relu":
        x = x.abs()
    w = torch.randn(M, C, 3, 3, generator=g, dtype=torch.float64) / (C * 9) ** 0.5
    w = w + weight_mean * w.std()
    off = torch.randn(N, 18, H, W, generator=g, dtype=torch.float64) * 1.5
    mask = torch.rand(N, 9, H, W, generator=g, dtype=torch.float64)
    b = torch.randn(M, generator=g, dtype=torch.float64)
    return ConvCase(x, w, off, b, mask, (1, 1), (1, 1, 1, 1), (1, 1), 1, 1)


def error_in_rows(lib, c):
    rc, y, stats, msg = emu_conv(lib, "float32", c)
    assert rc == 0 and stats[12] == 1, msg
    return error_ratio(y, conv_reference(c, "float32"), *tolerance("float32")), y


TC_MODELS = [(4, 0), (8, 0), (16, 0), (8, 3)]
DATA = {"K576": lambda: deep_case(), "K4608": lambda: c5_case(), "K4608-relu": lambda: c5_case("relu"),
        "K4608-relu-mean-half-std": lambda: c5_case("relu", 0.5)}


@pytest.mark.parametrize("data", DATA)
@pytest.mark.parametrize("block_k,extra_bits", TC_MODELS)
def test_3xtf32_within_float32_row_under_tensor_core_accumulation(lib, split_mode, tc_model, data, block_k,
                                                                 extra_bits):
    """3xTF32 keeps float32's row when each GEMM accumulates as a tensor core may (truncated alignment
    and normalisation), not only with IEEE adds, on detection-like layers up to c5's depth."""
    c = DATA[data]()
    tc_model(block_k, extra_bits)
    error, _ = error_in_rows(lib, c)
    assert error <= 1.0, (data, block_k, extra_bits, error)


def test_tensor_core_model_is_used_and_truncates(lib, split_mode, tc_model):
    """The model runs (other bytes than IEEE accumulation) and carries truncation's bias: all-positive
    terms drift far more than with IEEE adds; three extra bits keep that drift inside the row."""
    c = c5_case("relu", 100.0)  # every weight positive (as no trained layer has): the worst drift
    ieee, y_ieee = error_in_rows(lib, c)
    tc_model(8, 0)
    bare, y_bare = error_in_rows(lib, c)
    tc_model(8, 3)
    guarded, _ = error_in_rows(lib, c)
    assert not np.array_equal(y_bare, y_ieee)
    assert ieee < 0.1 and bare > 10 * ieee and guarded <= 0.5, (ieee, bare, guarded)


@pytest.mark.parametrize("acc,terms,extra_bits,want", [
    (1.0, [1.5 * 2.0 ** -24], 0, 1.0),                      # below the grid of the largest: lost (IEEE: 1 + 2**-23)
    (-1.0, [-1.5 * 2.0 ** -24], 0, -1.0),                   # ... toward zero either sign
    (1.0, [1.5 * 2.0 ** -24], 3, 1.0),                      # kept on the finer grid, then truncated to float
    (1.0, [1.5 * 2.0 ** -24, 1.5 * 2.0 ** -24], 3, 1.0 + 2.0 ** -23),  # two of them reach float's last bit
    (1.0, [1.5 * 2.0 ** -24, 1.5 * 2.0 ** -24], 0, 1.0),   # each cut alone first
    (0.0, [3.0, -1.0, 0.25], 0, 2.25),                      # on the grid: exact
    (1.0, [float("inf")], 0, float("inf")),                 # non-finite: IEEE
])
def test_tensor_core_model_block(lib, acc, terms, extra_bits, want):
    f = lib.dcn_emu_tc_block
    f.restype = ctypes.c_float
    f.argtypes = [ctypes.c_float, ctypes.POINTER(ctypes.c_double), ctypes.c_int, ctypes.c_int]
    t = (ctypes.c_double * len(terms))(*terms)
    assert f(acc, t, len(terms), extra_bits) == np.float32(want)
