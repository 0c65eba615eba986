"""DeformConv2d's bf16x3 GEMM on AMX tiles (plugins/ort/ort_amx_gemm.h) in ONNX Runtime sessions.

DCN_ORT_GEMM (read when a session makes the op's kernel): auto (default) takes bf16x3 where the CPU
has AMX and W is a constant, bf16x3 asks for it (an error where it is not available), sgemm keeps ONNX
Runtime's float32 SGEMM. Checked against the float64 reference on the awkward sweep with W an
initializer, on shapes that take every split of the work (runs of positions, runs of filters, rows and
filters that fill no tile), with values the split refuses (inf / NaN in X, W or the offsets: the
SGEMM takes them), and at one, two and four threads. Without AMX the bf16x3 tests skip, naming why.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dcn_base.tolerance import error_ratio, tolerance
from exporter.ops import deform_conv2d
from exporter.ops.deform_conv2d.spec import SPEC as DEFORM_CONV2D
from helpers.nonfinite import assert_same_nonfinite
from helpers.sweep import CONV_SPECS, make_conv_case
from test_ort_ops import ORT_ERRORS, assert_matches, conv_inputs, conv_ref, np_inputs, rounded, run

ENV = "DCN_ORT_GEMM"
KEPT = ("W", "B")  # initializers: W's pieces made once and kept (the bf16x3 path needs a constant W)


@pytest.fixture
def bf16x3(monkeypatch):
    """DCN_ORT_GEMM=bf16x3, or a skip naming why this machine cannot run it."""
    monkeypatch.setenv(ENV, "bf16x3")
    c = make_conv_case(CONV_SPECS[0])
    try:
        run(DEFORM_CONV2D, np_inputs(conv_inputs(c)), c.attrs(), initializers=KEPT)
    except ORT_ERRORS as e:
        if "not available here" in str(e):
            pytest.skip(f"bf16x3 GEMM: {str(e).split('not available here: ')[-1]}")
        raise
    return monkeypatch


def with_gemm(monkeypatch, value, fn):
    monkeypatch.setenv(ENV, value)
    try:
        return fn()
    finally:
        monkeypatch.setenv(ENV, "bf16x3")


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("spec", CONV_SPECS, ids=[s[0] for s in CONV_SPECS])
def test_bf16x3_sweep(bf16x3, spec, dtype):
    c = make_conv_case(spec)
    got = run(DEFORM_CONV2D, np_inputs(conv_inputs(c)), c.attrs(), dtype, initializers=KEPT)
    assert_matches(got, conv_ref(c, dtype), dtype, spec[0])


def layer(N, C, H, W, M, seed, kernel=(3, 3), bias=True):
    g = torch.Generator().manual_seed(seed)
    kh, kw = kernel
    x = torch.randn(N, C, H, W, generator=g, dtype=torch.float64)
    w = torch.randn(M, C, kh, kw, generator=g, dtype=torch.float64) / math.sqrt(C * kh * kw)
    b = torch.randn(M, generator=g, dtype=torch.float64) if bias else None
    pads = [(kh - 1) // 2, (kw - 1) // 2]
    oh, ow = H + 2 * pads[0] - kh + 1, W + 2 * pads[1] - kw + 1
    off = torch.randn(N, 2 * kh * kw, oh, ow, generator=g, dtype=torch.float64) * 2
    mask = torch.rand(N, kh * kw, oh, ow, generator=g, dtype=torch.float64)
    attrs = dict(pads=pads * 2, kernel_shape=[kh, kw])
    return dict(X=x, W=w, offset=off, B=b, mask=mask), attrs, pads


def reference(t, pads, dtype):
    return deform_conv2d(*(rounded(t[k], dtype) for k in ("X", "offset", "W", "B")), padding=tuple(pads),
                         mask=rounded(t["mask"], dtype)).numpy()


@pytest.mark.parametrize("shape", [
    (1, 128, 13, 11, 333, (3, 3)),  # 1152 deep, 333 filters (no multiple of 32): runs of filters at two threads
    (3, 64, 20, 19, 40, (3, 3)),    # 380 positions an image (no multiple of 16), 40 filters: runs of positions
    (2, 5, 9, 7, 3, (3, 2)),        # 30 deep, 3 filters: one partial tile each way
    (1, 300, 6, 6, 64, (3, 3)),     # 2700 deep: 22 depth blocks, the last one short
    (1, 1, 250, 250, 8, (3, 3)),    # 9 deep, 62500 positions: chunks of thousands of rows, 512 at a time
], ids=["filters", "positions", "tiny", "deep", "tall"])
def test_bf16x3_layers_every_split(bf16x3, shape):
    """The work split every way the op splits it; one, two and four threads give the same bytes (each
    output value is the same sum, whichever item computes it); within half of float32's tolerance
    (bf16x3 leaves out ~2^-17 of each product; measured up to 0.27 of it, on the 9-deep layer); not the
    SGEMM's bytes (the tiles ran)."""
    N, C, H, W, M, kernel = shape
    t, attrs, pads = layer(N, C, H, W, M, seed=sum(shape[:5]), kernel=kernel)
    ins = np_inputs(t)
    want = reference(t, pads, "float32")
    got = run(DEFORM_CONV2D, ins, attrs, initializers=KEPT, threads=1)
    assert error_ratio(got, want, *tolerance("float32")) < 0.5
    for threads in (2, 4):
        np.testing.assert_array_equal(run(DEFORM_CONV2D, ins, attrs, initializers=KEPT, threads=threads), got)
    sgemm = with_gemm(bf16x3, "sgemm", lambda: run(DEFORM_CONV2D, ins, attrs, initializers=KEPT, threads=1))
    assert error_ratio(sgemm, want, *tolerance("float32")) < 0.5
    assert not np.array_equal(got, sgemm)
    half = run(DEFORM_CONV2D, ins, attrs, "float16", initializers=KEPT, threads=2)
    assert_matches(half, reference(t, pads, "float16"), "float16")


@pytest.mark.parametrize("where", ["X", "offset"])
def test_bf16x3_nonfinite_columns_take_the_sgemm(bf16x3, where):
    """inf / NaN reaching the columns (from X, or an infinite mask): the items holding them take the
    SGEMM, which gives inf and NaN their float32 meaning (split, inf would give inf - inf = NaN in its
    lo piece); the rest stays bf16x3. Finite outputs within the tolerance, non-finite ones where the
    reference has them, and each inf, -inf and NaN where DCN_ORT_GEMM=sgemm puts it."""
    t, attrs, pads = layer(2, 64, 12, 12, 96, seed=5)
    if where == "X":
        t["X"][1, 7, 3, 4], t["X"][1, 9, 8, 8] = math.inf, math.nan
    else:
        t["mask"][0, 4, 5, 5] = math.inf  # an infinite weight on a sample inside the map
    ins = np_inputs(t)
    want = reference(t, pads, "float32")
    finite = np.isfinite(want)
    assert not finite.all() and finite.mean() > 0.5
    for threads in (1, 2):
        got = run(DEFORM_CONV2D, ins, attrs, initializers=KEPT, threads=threads)
        assert np.array_equal(np.isfinite(got), finite)
        assert_matches(np.where(finite, got, 0), np.where(finite, want, 0), "float32")
        sgemm = with_gemm(bf16x3, "sgemm", lambda: run(DEFORM_CONV2D, ins, attrs, initializers=KEPT, threads=threads))
        assert_same_nonfinite(got, sgemm)


def test_bf16x3_weights_the_split_refuses(bf16x3):
    """W holding inf, a magnitude of 2^126 and more, or a non-zero one below 2^-100 (a subnormal, or a
    normal value whose lo piece would be: bfloat16 and the tiles flush those to zero) is not split: the
    layer runs the SGEMM, bit for bit what DCN_ORT_GEMM=sgemm gives."""
    for bad in (math.inf, 2.0 ** 126, 1e-38, 3e-37, -(2.0 ** -101)):
        t, attrs, _ = layer(1, 16, 10, 10, 32, seed=9)
        t["W"][3, 2, 1, 1] = bad
        ins = np_inputs(t)
        got = run(DEFORM_CONV2D, ins, attrs, initializers=KEPT)
        np.testing.assert_array_equal(got, with_gemm(bf16x3, "sgemm", lambda: run(DEFORM_CONV2D, ins, attrs,
                                                                                   initializers=KEPT)))


def one_product(a: float, b: float) -> tuple[dict, dict]:
    """A 1x1 layer whose one non-zero output is the float32 product a * b (X holds a at one pixel, W is b)."""
    X = np.zeros((1, 1, 4, 4), np.float32)
    X[0, 0, 1, 1] = a
    ins = dict(X=X, W=np.full((1, 1, 1, 1), b, np.float32), offset=np.zeros((1, 2, 4, 4), np.float32))
    return ins, dict(kernel_shape=[1, 1])


def bf16_hi(v) -> np.float32:
    """v's bfloat16 piece (rounded to nearest even), in float32."""
    u = int(np.array(v, np.float32).view(np.uint32))
    return np.array((u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000, np.uint32).view(np.float32)


def test_bf16x3_products_that_overflow_take_the_sgemm(bf16x3):
    """Where the pieces' float32 sums overflow, the item takes the SGEMM: a product past float32's
    largest value is +inf (split: hi*hi = +inf and hi*lo = -inf, NaN), and a product just below it is
    finite (split: hi*hi rounded up overflows), each what DCN_ORT_GEMM=sgemm and float32 give."""
    lo_neg = next(v for v in np.linspace(1e21, 1.01e21, 2000, dtype=np.float32) if v - bf16_hi(v) < -1.5e-3 * v)
    below = next(v for v in np.linspace(1.80e19, 1.85e19, 5000, dtype=np.float32)
                 if float(v) ** 2 < float(np.finfo(np.float32).max) < float(bf16_hi(v)) ** 2)
    for a, b, want in ((np.float32(1e21), lo_neg, math.inf), (below, below, float(np.float32(float(below) ** 2)))):
        ins, attrs = one_product(a, b)
        got = run(DEFORM_CONV2D, ins, attrs, initializers=("W",))
        sgemm = with_gemm(bf16x3, "sgemm", lambda: run(DEFORM_CONV2D, ins, attrs, initializers=("W",)))
        assert got[0, 0, 1, 1] == want, (a, b, got[0, 0, 1, 1], want)
        np.testing.assert_array_equal(got, sgemm)


def test_bf16x3_tiny_columns_take_the_sgemm(bf16x3):
    """Columns holding a non-zero magnitude below 2^-100 are not split (a subnormal times 5e37 gave 0
    for 0.5): the item takes the SGEMM, which keeps the product."""
    for a, b in ((1e-38, 5e37), (3e-37, 1e36)):
        ins, attrs = one_product(a, b)
        got = run(DEFORM_CONV2D, ins, attrs, initializers=("W",))
        sgemm = with_gemm(bf16x3, "sgemm", lambda: run(DEFORM_CONV2D, ins, attrs, initializers=("W",)))
        np.testing.assert_array_equal(got, sgemm)
        assert got[0, 0, 1, 1] == np.float32(np.float32(a) * np.float32(b)), (a, b, got[0, 0, 1, 1])


def test_gemm_choice_errors(monkeypatch):
    c = make_conv_case(CONV_SPECS[0])
    ins = np_inputs(conv_inputs(c))
    monkeypatch.setenv(ENV, "fp64")
    with pytest.raises(ORT_ERRORS) as err:
        run(DEFORM_CONV2D, ins, c.attrs(), initializers=KEPT)
    assert "DCN_ORT_GEMM: got 'fp64', expected auto, bf16x3 or sgemm" in str(err.value)
    for value in ("sgemm", "auto", ""):  # every valid choice runs, with or without AMX
        monkeypatch.setenv(ENV, value)
        assert_matches(run(DEFORM_CONV2D, ins, c.attrs(), initializers=KEPT), conv_ref(c, "float32"), "float32")
