"""Runs scripts/check_cuda_build.sh once per test session and hands its results to the tests
(tests/test_cuda_compile.py, tests/test_trt_contract.py).

No GPU or TensorRT library needed: nvcc (CUDA toolkit) for the kernels, TensorRT headers
(PyPI's kernel-lens, or TensorRT_INCLUDE_DIR) for the plugin sources and the host harness.
A missing tool skips the tests that need it, naming it (under CI it fails them:
helpers/ci_policy.py); a failing build fails them.
"""
from __future__ import annotations

import collections
import functools
import importlib.util
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers.ci_policy import missing

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "check_cuda_build.sh"
BUILD = Path(os.environ.get("DCN_CHECK_BUILD_DIR", REPO / "build" / "cuda-check"))
# Architectures CI must cover (the brief's list); newer ones are checked when nvcc has them.
REQUIRED_ARCHS = ("sm_75", "sm_80", "sm_86", "sm_89", "sm_90")


def nvcc() -> str | None:
    for c in (os.environ.get("CUDACXX"), shutil.which("nvcc"), "/usr/local/cuda/bin/nvcc"):
        if c and Path(c).is_file():
            return c
    return None


def trt_headers_available() -> bool:
    if os.environ.get("TensorRT_INCLUDE_DIR"):
        return True
    spec = importlib.util.find_spec("kernel_lens")
    return bool(spec and spec.origin and (Path(spec.origin).parent / "include" / "tensorrt" / "NvInferRuntime.h").is_file())


@dataclass
class CheckResult:
    rc: int
    output: str
    build: Path
    with_trt: bool

    @property
    def ptxas(self) -> dict:
        return json.loads((self.build / "ptxas.json").read_text())

    @property
    def table(self) -> str:
        return (self.build / "ptxas_table.md").read_text()

    @property
    def harness(self) -> Path:
        return Path((self.build / "harness_path.txt").read_text().strip())

    @property
    def trt_checked(self) -> list[str]:
        return (self.build / "trt_checked.txt").read_text().splitlines()


@functools.lru_cache(maxsize=None)
def _run(with_trt: bool) -> CheckResult:
    env = dict(os.environ, DCN_CHECK_BUILD_DIR=str(BUILD))
    if not with_trt:
        env["DCN_CHECK_SKIP_TRT"] = "1"
    p = subprocess.run(["bash", str(SCRIPT)], cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    return CheckResult(p.returncode, p.stdout + p.stderr, BUILD, with_trt)


def check_build(*, need_trt: bool) -> CheckResult:
    """The check build's result; skips naming what is missing, fails when the build fails."""
    if nvcc() is None:
        missing("nvcc (CUDA toolkit) not found: install it or set CUDACXX")
    with_trt = trt_headers_available()
    if need_trt and not with_trt:
        missing("TensorRT headers not found: kernel-lens not installed (pip install kernel-lens) "
                    "and TensorRT_INCLUDE_DIR not set")
    r = _run(with_trt)
    if r.rc != 0:
        pytest.fail(f"scripts/check_cuda_build.sh failed (exit {r.rc}):\n" + r.output[-6000:])
    return r


def cuobjdump() -> str | None:
    """CUDA's cuobjdump: beside nvcc, else the copy in triton's wheel (a dependency of torch's)."""
    n = nvcc()
    cands = [Path(n).parent / "cuobjdump"] if n else []
    spec = importlib.util.find_spec("triton")  # finds, does not import
    if spec and spec.origin:
        cands.append(Path(spec.origin).parent / "backends" / "nvidia" / "bin" / "cuobjdump")
    return next((str(c) for c in cands if c.is_file() and os.access(c, os.X_OK)), None)


def sass_opcodes(obj: Path) -> dict[tuple[str, str], collections.Counter]:
    """{(architecture, demangled kernel): Counter of its SASS instructions (opcode with modifiers, e.g.
    STS.128)} of a check-build object; skips naming cuobjdump or c++filt where missing."""
    tool, filt = cuobjdump(), shutil.which("c++filt")
    if tool is None or filt is None:
        missing(f"{'cuobjdump (CUDA toolkit, or triton)' if tool is None else 'c++filt (binutils)'} not found: "
                    "cannot read the kernels' machine code")
    text = subprocess.run([tool, "-sass", str(obj)], capture_output=True, text=True, check=True).stdout
    table: dict[tuple[str, str], collections.Counter] = {}
    arch = fn = None
    for line in text.splitlines():
        if m := re.match(r"\s*arch = (sm_\d+)", line):
            arch = m.group(1)
        elif m := re.search(r"Function : (\S+)", line):
            fn = m.group(1)
            table[(arch, fn)] = collections.Counter()
        elif fn and (m := re.search(r"/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_]*(?:\.[A-Z0-9_]+)*)",
                                    line)):
            table[(arch, fn)][m.group(1)] += 1
    names = sorted({f for _, f in table})
    plain = subprocess.run([filt], input="\n".join(names), capture_output=True, text=True,
                           check=True).stdout.split("\n")
    demangled = dict(zip(names, plain))
    return {(a, demangled[f]): c for (a, f), c in table.items()}
