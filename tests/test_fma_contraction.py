"""The RoI pools' coordinates do not depend on fused multiply-adds.

nvcc contracts a * b + c into one fma by default while the host libraries are built with -ffp-contract=off,
so one expression rounds once on the GPU and twice on the host (ONNX Runtime, the host emulation, the
reference's float32). Bilinear sums only move in their last bit, but the RoI pools decide whole samples
from their coordinates (RoIAlign's inside test, PS-RoI's skip test, the adaptive grid's ceil): written as
plain a * b + c they took 506 of these values apart by up to 0.21. dcn_math.h's mul_rn / add_rn keep each
product and sum rounded on its own on every side. plugins/tests/pool_coordinates_main.cpp is built here
twice, as the host is and as nvcc builds the device (g++ -mfma -ffp-contract=fast standing in for nvcc,
mul_rn / add_rn opaque to it as __fmul_rn / __fadd_rn are to nvcc), and both must agree to float rounding.
"""
from __future__ import annotations

import platform
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from helpers.ci_policy import missing

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "plugins" / "tests" / "pool_coordinates_main.cpp"
INCLUDES = ["plugins/common", "plugins/ops/deform_roi_pool", "plugins/ops/deform_psroi_pool"]


def _fma_host() -> bool:
    try:
        return platform.machine() in ("x86_64", "AMD64") and " fma " in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def _values(tmp_path: Path, contracted: bool) -> np.ndarray:
    cxx = shutil.which("g++")
    if cxx is None:
        missing("no C++ compiler (g++)")
    flags = ["-mfma", "-ffp-contract=fast", "-DDCN_FMA_CONTRACTION_TEST"] if contracted else ["-ffp-contract=off"]
    exe = tmp_path / ("contracted" if contracted else "host")
    subprocess.run([cxx, "-std=c++17", "-O2", *flags, *(f"-I{REPO / i}" for i in INCLUDES), str(SOURCE), "-o", str(exe)],
                   check=True, capture_output=True, text=True)
    return np.array(subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.split(), dtype=np.float64)


@pytest.mark.skipif(not _fma_host(), reason="needs an x86-64 CPU with FMA to build the contracted twin")
def test_pool_coordinates_agree_with_and_without_fma_contraction(tmp_path):
    host, contracted = _values(tmp_path, False), _values(tmp_path, True)
    assert host.shape == contracted.shape and host.size > 100_000
    diff = np.abs(host - contracted)
    worst = int(np.argmax(diff))
    # float rounding of the bilinear sums only (values up to ~10): no sample moved in or out
    assert diff[worst] <= 1e-5 * max(1.0, abs(host[worst])), (worst, host[worst], contracted[worst])
