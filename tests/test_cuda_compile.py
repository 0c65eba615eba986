"""CI compile checks of the CUDA kernels and the TensorRT plugin sources (no GPU needed).

scripts/check_cuda_build.sh compiles every .cu of the op folders (plugins/ops/<op>/) for sm_75 ... sm_121
(what nvcc supports) with -Xptxas -v and every TensorRT plugin source against real TensorRT headers
(kernel-lens: TensorRT 10.14). Here: no kernel spills or uses a stack frame on any
architecture, every kernel exists for every architecture, the plugin sources compiled, and
the spill gate itself works, and the machine code has the vector accesses the host emulation assumes.
"""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from helpers.cpp_ops import op_files
from helpers.cuda_check import REPO, REQUIRED_ARCHS, check_build, sass_opcodes

KERNELS = {
    f"{k}<{t}, {i}>"
    for k in ("dcn_fill_bias_kernel", "dcn_deform_psroi_pool_kernel")
    for t in ("float", "__half")
    for i in ("int32_t", "int64_t")
} | {  # DeformRoIPool: K channels per thread in int32, one in int64 (deform_roi_pool_launch.h)
    f"dcn_deform_roi_pool_kernel<{t}, {i}, {k}>" for t in ("float", "__half")
    for i, k in [("int32_t", 8), ("int32_t", 4), ("int32_t", 2), ("int32_t", 1), ("int64_t", 1)]
} | {
    f"dcn_deform_im2col_kernel<{t}, {i}, {v}>" for t in ("float", "__half") for i in ("int32_t", "int64_t")
    for v in (1, 2, 4)
} | {f"{k}<{i}>" for k in ("dcn_fused_nhwc_kernel", "dcn_fused_weight_kernel", "dcn_split_tf32_kernel",
                          "dcn_nhwc_im2col_kernel")
     for i in ("int32_t", "int64_t")} | {
    "dcn_deform_conv_fused_kernel", "dcn_deform_conv_fused_pipelined_kernel"} | {
    f"{k}<{t}, {v}, {i}>" for k in ("dcn_dcnv3_kernel", "dcn_dcnv4_kernel") for t in ("float", "__half")
    for v in (1, 2, 4, 8) for i in ("int32_t", "int64_t")} | {
    f"dcn_msda_kernel<{v}, {t}, {i}>" for v in (1, 2, 4) for t in ("float", "__half") for i in ("int32_t", "int64_t")} | {
    f"dcn_msda_split_kernel<{v}, {t}>" for v in (1, 2, 4) for t in ("float", "__half")}
# __launch_bounds__ -> register cap (65536 / (threads * minimum blocks per SM)); 64 for the rest. 128: the
# im2col kernel (256 x 2; 4 samples' taps live across its channel loop) and both fused kernels (512 x 1;
# 64 accumulator registers, the two-stage one also the next step's loads); 85: the channels-last im2col
# (256 x 3; four neighbours' vectors in flight).
REGISTER_CAP = {"dcn_deform_im2col_kernel": 128, "dcn_deform_conv_fused_kernel": 128,
                "dcn_deform_conv_fused_pipelined_kernel": 128, "dcn_nhwc_im2col_kernel": 85}


def test_kernels_compile_for_every_arch_without_spills():
    r = check_build(need_trt=False)
    data = r.ptxas
    print("\n" + r.table)  # the register / spill table, in the test log
    assert data["problems"] == []
    entries = data["entries"]
    archs = {e["arch"] for e in entries}
    assert set(REQUIRED_ARCHS) <= archs, f"architectures compiled: {sorted(archs)}"
    assert {e["kernel"] for e in entries} == KERNELS
    for e in entries:
        assert e["spill_stores"] == 0 and e["spill_loads"] == 0 and e["stack"] == 0, e
        assert 0 < e["registers"] <= REGISTER_CAP.get(e["kernel"].split("<")[0], 64), e
    for k in KERNELS:
        assert {e["arch"] for e in entries if e["kernel"] == k} == archs, k


def test_plugin_sources_compile_against_tensorrt_headers():
    r = check_build(need_trt=True)
    checked = r.trt_checked
    assert checked and checked[0].startswith("TensorRT 10."), checked
    assert r.harness.is_file()


def test_ptxas_gate_fails_on_spills(tmp_path):
    """The gate itself: a log with a spilling dcn_ kernel makes scripts/ptxas_report.py exit 1."""
    log = tmp_path / "x.cu.o.ptxas.log"
    log.write_text(
        "ptxas info    : Compiling entry function '_Z14dcn_hot_kernelPf' for 'sm_80'\n"
        "ptxas info    : Function properties for _Z14dcn_hot_kernelPf\n"
        "    8 bytes stack frame, 4 bytes spill stores, 4 bytes spill loads\n"
        "ptxas info    : Used 40 registers, used 0 barriers, 360 bytes cmem[0]\n"
        "ptxas info    : Compiling entry function '_Z14dcn_hot_kernelPf' for 'sm_90'\n"
        "    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n"
        "ptxas info    : Used 38 registers, used 0 barriers, 360 bytes cmem[0]\n")
    p = subprocess.run([sys.executable, str(REPO / "scripts" / "ptxas_report.py"), str(tmp_path)],
                       capture_output=True, text=True)
    assert p.returncode == 1
    assert "dcn_hot_kernel on sm_80: 4 B spill stores, 4 B spill loads, 8 B stack frame" in p.stderr, p.stderr
    assert "sm_90" not in p.stderr
    p = subprocess.run([sys.executable, str(REPO / "scripts" / "ptxas_report.py"), str(tmp_path),
                        "--expect-archs", "80,90,100"], capture_output=True, text=True)
    assert "no ptxas entry for sm_100" in p.stderr


def test_plugins_cuda_has_no_tensorrt_includes():
    cuda = [*op_files("*.cu"), *op_files("*_kernels.h"), *op_files("*_launch.h"), *op_files("*_plan.h")]
    for f in sorted((REPO / "plugins" / "cuda").glob("*")) + cuda:
        if f.suffix in (".h", ".cu", ".cuh", ".cpp", ".txt"):
            text = f.read_text()
            assert not re.search(r"#\s*include\s*[<\"]NvInfer", text), f"{f.name} includes TensorRT"


def test_math_exists_once():
    """The kernels call the math headers; no bilinear / pooling math of their own."""
    ops = [f for f in op_files("*") if f.is_file() and not f.name.endswith(("_math.h", "_host_math.cpp"))]
    for f in sorted((REPO / "plugins" / "cuda").glob("*")) + sorted((REPO / "plugins" / "trt").rglob("*.[ch]*")) + ops:
        text = f.read_text()
        assert "floor_of(" not in text and "bilinear_taps<" not in text, \
            f"{f}: math outside plugins/common and the ops' <op>_math.h"


def test_every_launch_returns_its_own_status():
    """Every kernel launch goes through plugins/cuda/dcn_launch.cuh's launch_kernel (cudaLaunchKernelEx,
    whose return is that launch's status): no <<<>>> launch and no cudaGetLastError() read after one,
    which would also return an older error that other code on the thread left unread."""
    sources = [*op_files("*.cu"), *sorted((REPO / "plugins" / "cuda").glob("*.cu*"))]
    launcher = REPO / "plugins" / "cuda" / "dcn_launch.cuh"
    assert launcher in sources and "cudaLaunchKernelEx(" in launcher.read_text()
    for f in sources:
        code = re.sub(r"//[^\n]*", "", f.read_text())
        assert "<<<" not in code and "cudaGetLastError" not in code, f"{f.name}: a launch outside launch_kernel"


def test_cublas_handles_reduce_in_float():
    """FP16 GEMMs accumulate in float (CUBLAS_COMPUTE_32F) and must reduce in float too: without
    CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION cuBLAS may add a split-K GEMM's partial sums in half. The
    handle's one math-mode call sets it; no other code sets a math mode."""
    calls = {f.name: re.findall(r"cublasSetMathMode\(([^;]*)\);", re.sub(r"//[^\n]*", "", f.read_text()))
             for f in sorted((REPO / "plugins").rglob("*.[ch]*")) if f.suffix in (".cpp", ".h", ".cu", ".cuh")}
    calls = {k: v for k, v in calls.items() if v}
    assert list(calls) == ["cublas_resource.cpp"] and len(calls["cublas_resource.cpp"]) == 1, calls
    assert "CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION" in calls["cublas_resource.cpp"][0], calls

# The kernels templated on a vector width: which template argument it is (the element type is float or __half).
VECTOR_ARG = {"dcn_deform_im2col_kernel": 2, "dcn_msda_kernel": 0, "dcn_msda_split_kernel": 0,
              "dcn_dcnv3_kernel": 1, "dcn_dcnv4_kernel": 1}
# The fused kernels' (and the channels-last im2col's) 16-byte shared stores (A and B tiles: one-stage 2; two-stage 2 in the prologue and 2 in the
# loop) and 16-byte global loads (a weight vector and four neighbours' vectors; the two-stage kernel twice).
FUSED_SASS = {"dcn_deform_conv_fused_kernel": {"STS.128": 2, "LDG.E.128": 5},
              "dcn_deform_conv_fused_pipelined_kernel": {"STS.128": 4, "LDG.E.128": 10},
              # the channels-last im2col (deform_conv2d_nhwc.h): four neighbours' vectors in, one column vector out
              "dcn_nhwc_im2col_kernel": {"LDG.E.128": 4, "STG.E.128": 1}}


def test_vector_accesses_are_vector_instructions():
    """The host emulation checks the kernels' vector accesses (plugins/common/dcn_vector_check.h) and the fused
    tiles' bank layout (fused::tile_slot, test_host_fused_conv.py) on the premise that a vector is one access;
    the compiler may split one into pieces, which no host test sees. In the SASS of every architecture: the fused
    kernels' tile stores and loads are 128-bit, exactly as many as their code has, and every instantiation of a
    vector width V x element size >= 8 bytes accesses global memory that wide (16 bytes at most; sm_100 and later
    may take a 32-byte vector in one access), and stores its outputs that wide."""
    r = check_build(need_trt=False)
    objects = sorted((r.build / "cuda").rglob("*.cu.o"))
    assert objects, f"no kernel objects under {r.build / 'cuda'}"
    seen: set[str] = set()
    for obj in objects:
        for (arch, fn), ops in sass_opcodes(obj).items():
            m = re.search(r"(dcn_\w+)(?:<([^>]*)>)?\(", fn)
            name = m.group(1) if m else ""
            if name in FUSED_SASS:
                seen.add(name)
                for op, n in FUSED_SASS[name].items():
                    got = sum(c for o, c in ops.items() if o == op or o.startswith(op + "."))
                    assert got == n, f"{name} on {arch}: {got} x {op}, expected {n} ({dict(ops)})"
            elif name in VECTOR_ARG:
                seen.add(name)
                args = [a.strip() for a in m.group(2).split(",")]
                size = 4 if "float" in args else 2
                width = min(int(args[VECTOR_ARG[name]]) * size, 16)
                if width >= 8:  # (sm_100 on reads 32-byte vectors as one: LDG.E.ENL2.256)
                    def widest(prefixes):
                        return max((int(b) for o in ops if o.startswith(prefixes) for b in re.findall(r"\.(\d+)", o)),
                                   default=0)
                    assert widest(("LDG.", "STG.")) >= width * 8, \
                        f"{fn} on {arch}: no global access of {width} bytes or more ({sorted(ops)})"
                    # every such kernel writes its V outputs with one store (MSDA's half x 4 once did 4)
                    assert widest(("STG.",)) >= width * 8, \
                        f"{fn} on {arch}: no global store of {width} bytes or more ({sorted(ops)})"
    assert seen == set(FUSED_SASS) | set(VECTOR_ARG), seen
