"""FP16 done right, measured in half-precision ulps: float16 data is sampled and accumulated in float32 and
stored once in half, so every float16 output is within about one half ulp of the float64 reference on the
same (half) inputs. dcn_base.tolerance's float16 row (2e-2 + 2e-2 |ref|) is about twenty ulps wide and
cannot tell that from accumulating in half (an accumulator rounded to half after every sampling point
stayed within 22 % of the row on the DCNv3 sweep): this file holds each float16 path to 2 ulps (at least
the output's RMS ulp), with long reductions (K >= 512) where the path has a GEMM. Also: every cuBLAS GEMM
computes in float32.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers.dcn_sweep import CASES as DCN_CASES
from helpers.sweep import make_conv_case
from test_dcnv3_ort import lib as dcn_ort_lib  # noqa: F401  (fixture)
from test_dcnv3_ort import run_both
from test_host_kernels import conv_reference, emu_conv
from test_host_kernels import lib as host_lib  # noqa: F401  (fixture)
from test_ort_ops import DEFORM_CONV2D, conv_inputs, conv_ref, np_inputs, run

REPO = Path(__file__).resolve().parents[1]
ULPS = 2.0
# a long reduction: C*kH*kW = 64*9 = 576 products per output; groups 2 and offset groups 2 too
LONG_CONV = ("long-k576", 2, 64, 9, 11, 24, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1, 2, True, True, 1.5)
LONG_CONV_G2 = ("long-k576-g2", 1, 128, 7, 8, 16, 3, 3, (1, 2), (1, 0, 2, 1), (2, 1), 2, 2, True, False, 1.5)


def assert_within_half_ulps(got, ref64, what=""):
    """|got - ref| <= ULPS half ulps of |ref|, an ulp being at least the ulp of the output's RMS: an output
    near 0 is a cancellation of larger terms, whose rounding (a sampled value stored in half, as the im2col
    columns are) is in their units, not the small result's. Measured: float32 accumulation then one
    rounding 0.50, im2col's half columns 1.26 at K = 576; an accumulator rounded to half after every term
    6 at K = 36, 19 at K = 576."""
    got = np.asarray(got).astype(np.float64)
    ref64 = np.asarray(ref64, dtype=np.float64)
    assert got.shape == ref64.shape, what
    if not ref64.size:
        return
    rms = float(np.sqrt((ref64 ** 2).mean()))
    ulp = np.maximum(np.spacing(np.abs(ref64).astype(np.float16)).astype(np.float64),
                     float(np.spacing(np.float16(rms))))
    ratio = np.abs(got - ref64) / ulp
    bad = ratio > ULPS
    assert not bad.any(), (f"{what}: {int(bad.sum())} of {bad.size} outputs beyond {ULPS:g} half ulps, worst "
                           f"{float(ratio.max()):.1f} ulps")


@pytest.mark.parametrize("spec", [LONG_CONV, LONG_CONV_G2], ids=lambda s: s[0])
def test_onnx_runtime_deform_conv2d_float16(spec):
    c = make_conv_case(spec)
    got = run(DEFORM_CONV2D, np_inputs(conv_inputs(c)), c.attrs(), "float16")
    assert_within_half_ulps(got, conv_ref(c, "float16"), spec[0])


@pytest.mark.parametrize("spec", [LONG_CONV, LONG_CONV_G2], ids=lambda s: s[0])
def test_cuda_path_emulation_deform_conv2d_float16(host_lib, spec):  # noqa: F811
    """The host emulation of the plugin's float16 enqueue: im2col, then the GEMM as cuBLAS runs it with
    CUBLAS_COMPUTE_32F (float32 accumulation; test_cublas_gemms_compute_in_float32 checks the calls)."""
    c = make_conv_case(spec)
    rc, y, _, msg = emu_conv(host_lib, "float16", c)
    assert rc == 0, msg
    assert_within_half_ulps(y, conv_reference(c, "float16"), spec[0])


@pytest.mark.parametrize("case", DCN_CASES, ids=[c.name for c in DCN_CASES])
def test_onnx_runtime_dcnv3_dcnv4_float16(dcn_ort_lib, case):  # noqa: F811
    y3, y4, r3, r4 = run_both(dcn_ort_lib, case, np.float16)
    assert_within_half_ulps(y3, r3, f"DCNv3 {case.name}")
    assert_within_half_ulps(y4, r4, f"DCNv4 {case.name}")


def test_cublas_gemms_compute_in_float32():
    """Every cuBLAS GEMM of the plugins names a float32 compute type (CUBLAS_COMPUTE_32F, or 3xTF32's
    CUBLAS_COMPUTE_32F_FAST_TF32); no half compute type and no cublasHgemm anywhere."""
    sources = [p for p in (REPO / "plugins").rglob("*") if p.suffix in (".cpp", ".cu", ".h", ".cuh")]
    text = {p: re.sub(r"//[^\n]*|/\*.*?\*/", "", p.read_text(), flags=re.S) for p in sources}
    types = {t for s in text.values() for t in re.findall(r"\bCUBLAS_COMPUTE_\w+", s)}
    assert types and types <= {"CUBLAS_COMPUTE_32F", "CUBLAS_COMPUTE_32F_FAST_TF32"}, types
    assert not [p for p, s in text.items() if re.search(r"\bcublas[HS]?[Hh]gemm|CUDA_R_16F\s*,\s*CUBLAS_GEMM", s)]
    assert [p for p, s in text.items() if "cublasGemm" in s], "no cuBLAS GEMM found: the check checks nothing"


def test_the_check_tells_half_accumulation_apart():
    """The 2-ulp check itself: a float32 sum stored once in half passes it; the same sum with its
    accumulator rounded to half after every term fails it (the mutation the float16 row let through)."""
    g = torch.Generator().manual_seed(0)
    terms = (torch.randn(256, 576, generator=g, dtype=torch.float64).half() *
             torch.randn(576, generator=g, dtype=torch.float64).half()).double()  # half columns x half weights
    ref = terms.sum(1).numpy()
    once = terms.float().sum(1).half().numpy()
    acc = torch.zeros(256, dtype=torch.float16)
    for k in range(terms.shape[1]):
        acc = (acc.float() + terms[:, k].float()).half()
    assert_within_half_ulps(once, ref, "float32 accumulation")
    with pytest.raises(AssertionError, match="beyond 2 half ulps"):
        assert_within_half_ulps(acc.numpy(), ref, "half accumulation")
