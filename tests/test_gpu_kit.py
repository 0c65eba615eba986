"""The GPU proof kit (scripts/gpu_check.sh) where there is no GPU: it must say so in one line
(exit 2), its device tests must skip naming the missing piece, and every module it imports
must load without onnx, onnxruntime, Polygraphy or TensorRT (the GPU machine has its own
torch, numpy and pytest only)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from helpers.cuda_check import REPO

NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present: the kit runs for real")

BLOCKER = textwrap.dedent("""
    import importlib.abc, sys
    BLOCKED = {"onnx", "onnxruntime", "polygraphy", "tensorrt", "onnxscript"}
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} is blocked: the GPU machine does not have it")
            return None
    sys.meta_path.insert(0, Block())
    sys.path[:0] = PATHS
""")


def _python(code: str, **kw) -> subprocess.CompletedProcess:
    paths = [str(REPO), str(REPO / "tests"), str(REPO / "benchmarks")]
    prelude = BLOCKER.replace("PATHS", repr(paths))
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], cwd=REPO, capture_output=True,
                          text=True, timeout=300, **kw)


def test_kit_modules_import_without_onnx_polygraphy_tensorrt():
    p = _python("""
        import test_trt_device, test_dcnv3_device, bench_plugins_cuda
        from helpers import trt_device, sweep, dcn_sweep, dcn_grid_sample
        from exporter.ops.deform_conv2d.reference import deform_conv2d
        from exporter.ops.deform_psroi_pool.reference import deform_psroi_pool
        from exporter.ops.dcnv3.reference import dcnv3
        from exporter.ops.dcnv4.reference import dcnv4
        from dcn_base.tolerance import tolerance
        import exporter.contract
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        assert not loaded, loaded
        print("ok")
    """)
    assert p.returncode == 0 and p.stdout.strip().endswith("ok"), p.stdout + p.stderr


def test_blocker_blocks():
    p = _python("import onnx")
    assert p.returncode != 0 and "onnx is blocked" in p.stderr


@NO_GPU
def test_gpu_check_without_a_device_exits_2_with_one_line(tmp_path):
    p = subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh"), str(tmp_path / "out")], cwd=REPO,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 2, p.stdout + p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu_check: no CUDA device ("), p.stderr
    assert p.stdout == ""


def test_gpu_check_usage_is_one_line():
    p = subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh")], cwd=REPO, capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.strip().count("\n") == 0 and "usage:" in p.stderr


@NO_GPU
def test_bench_without_a_device_exits_2_with_one_line():
    p = _python("import bench_plugins_cuda; sys.exit(bench_plugins_cuda.main([]))")
    assert p.returncode == 2, p.stdout + p.stderr
    assert p.stderr.strip().startswith("bench_plugins_cuda: no CUDA device (") and p.stderr.strip().count("\n") == 0


@NO_GPU
@pytest.mark.parametrize("path", sorted(p.relative_to(REPO).as_posix() for p in (REPO / "tests").glob("test_*_device.py")))
def test_device_tests_skip_naming_the_device(path):
    """Every device test file scripts/gpu_check.sh runs (tests/test_*_device.py)."""
    p = subprocess.run([sys.executable, "-m", "pytest", path, "-q", "-rs", "-p", "no:cacheprovider"],
                       cwd=REPO, capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONWARNINGS="ignore"))
    assert p.returncode == 0, p.stdout[-2000:]
    assert "passed" not in p.stdout.splitlines()[-1] and "skipped" in p.stdout.splitlines()[-1], p.stdout[-2000:]
    assert "no CUDA device (torch" in p.stdout


def test_bench_table_and_split_know_every_conv_path():
    """The benchmark's table has a column per DeformConv2d path and its split puts both fused
    kernels (one-stage, two-stage) in the "fused" group (pure functions: no device needed)."""
    p = _python("""
        import bench_plugins_cuda as b
        from cuda_profile import group_of
        from helpers.trt_device import PATH_KERNELS
        assert {k: group_of(f"void dcn::cuda::(anonymous namespace)::{v}(const __half *)")
                for k, v in PATH_KERNELS.items()} == {"im2col": "im2col", "fused": "fused", "pipelined": "fused",
                                                       "3xtf32": "tf32-split", "nhwc": "im2col-nhwc"}
        row = dict(layer="c3 128ch 100x167", batch=1, dtype="float16", im2col_ms=0.2, fused_ms=0.15, pipelined_ms=0.1,
                   plan="fused", torchvision_ms=0.3, dense_cudnn_ms=0.08, torchvision_over_ours=2.0,
                   ours_over_dense=1.9, ours_tflops=33.0, im2col_split={"im2col": 0.1}, pipelined_split={"fused": 0.09})
        md = b.table("a GPU", [row], [], [], [], None)
        head = next(l for l in md.splitlines() if l.startswith("| layer | batch | dtype | im2col"))
        line = next(l for l in md.splitlines() if l.startswith("| c3 128ch 100x167 | 1 | float16 | 0.200"))
        assert "| pipelined | 3xtf32 | nhwc |" in head and "| 0.150 | 0.100 | n/a | n/a | fused |" in line, (head, line)
        assert "| pipelined | fused 0.090 (100%) |" in md, md
        print("ok")
    """)
    assert p.returncode == 0 and p.stdout.strip().endswith("ok"), p.stdout + p.stderr


def test_bench_targets_verdict():
    """The benchmark's verdict against issue 20's targets (plan path and fastest path per row) and
    what each off switch would change (pure function: no device needed)."""
    p = _python("""
        import bench_plugins_cuda as b
        rows = [dict(layer="c3 128ch 100x167", batch=1, dtype="float16", im2col_ms=0.177, fused_ms=0.139,
                     pipelined_ms=0.10, plan="fused", ours_ms=0.139, torchvision_ms=0.347, dense_cudnn_ms=0.080),
                dict(layer="c3 128ch 100x167", batch=8, dtype="float32", im2col_ms=1.669, plan="im2col",
                     ours_ms=1.669, torchvision_ms=1.916, dense_cudnn_ms=0.217, **{"3xtf32_ms": 1.1}),
                dict(layer="c5 512ch 25x42", batch=8, dtype="float16", im2col_ms=0.418, fused_ms=0.546,
                     pipelined_ms=0.5, plan="im2col", ours_ms=0.418, torchvision_ms=0.437, dense_cudnn_ms=0.136)]
        md = b.targets(rows)
        lines = md.splitlines()
        assert "| c3 128ch 100x167 | 1 | float16 | fused | 2.50 | pipelined | 3.47 | 1.5 | 1.25 | no | yes |" in lines, md
        assert "| c3 128ch 100x167 | 8 | float32 | im2col | 1.15 | 3xtf32 | 1.74 | n/a | 5.07 | no | yes |" in lines, md
        assert "| c5 512ch 25x42 | 8 | float16 | im2col | 1.05 | im2col | 1.05 | 3.0 | 3.07 | no | no |" in lines, md
        # c5: plan im2col, not counted
        assert "c3 b1 1.39x; faster by at least 3 % on every row: flip kPipelinedDefault" in md, md
        assert "c3 b8 1.52x; faster by at least 3 % on every row: flip k3xTf32Default" in md, md
        rows[1]["3xtf32_ms"] = 1.669 / 1.02  # faster, but within one median's noise
        assert "c3 b8 1.02x; not faster by 3 % everywhere: keep k3xTf32Default" in b.targets(rows)
        rows[1]["3xtf32_ms"] = 2.0
        assert "not faster by 3 % everywhere: keep k3xTf32Default" in b.targets(rows)
        del rows[0]["pipelined_ms"]
        rows[0]["pipelined_error"] = "AssertionError: enqueue returned 1"
        assert "FAILED on c3 b1 float16: keep kPipelinedDefault" in b.targets(rows)
        rows[0].update(fused_error="AssertionError: enqueue returned 1", ours_ms=None)
        del rows[0]["fused_ms"]
        assert "| c3 128ch 100x167 | 1 | float16 | fused | n/a | im2col |" in b.targets(rows)
        # the channels-last im2col: judged on the rows the plan runs on im2col only (c5 here, not c3's fused)
        rows[0]["nhwc_ms"], rows[2]["nhwc_ms"] = 0.01, 0.2
        assert "nhwc vs im2col (im2col ms / nhwc ms): c5 b8 2.09x; faster by at least 3 % on every row: flip " \
               "kNhwcDefault" in b.targets(rows), b.targets(rows)
        assert b.targets([]) == ""
        print("ok")
    """)
    assert p.returncode == 0 and p.stdout.strip().endswith("ok"), p.stdout + p.stderr


def test_bench_cap_verdict():
    """The column cap's verdict (issue 20: the chunk size chosen by measurement): a smaller cap only where it
    is faster than the plan's 256 MiB by the margin in every dtype, then the largest such (pure function)."""
    p = _python("""
        import bench_plugins_cuda as b
        def rows(ms16, ms32):
            return [dict(dtype=dt, cap_mb=mb, ms=ms) for dt, t in (("float16", ms16), ("float32", ms32))
                    for mb, ms in zip(b.CAPS_MB, t)]
        v = b.cap_verdict(rows((0.62, 0.60, 0.66, 0.70), (1.5, 1.45, 1.6, 1.7)))  # 48 MiB: the best worst case
        assert "48 MiB is faster by at least 3 % in every dtype on c3 batch 8: rerun the table with " \
               "DCN_DEFORM_CONV_COLUMNS_MB=48" in v and v.endswith("lower kColumnsCapBytes (deform_conv2d_plan.h) "
                                                                   "to 48 MiB."), v
        assert "float16 16 MiB 1.13x, 48 MiB 1.17x, 128 MiB 1.06x" in v, v
        v = b.cap_verdict(rows((0.60, 0.62, 0.66, 0.70), (1.75, 1.7, 1.69, 1.7)))  # float32: no smaller cap 3 % faster
        assert v.endswith("no smaller cap faster by 3 % in every dtype: keep kColumnsCapBytes."), v
        # float16's 256 MiB not measured: float32 decides; equal speed-ups: the larger cap
        assert b.cap_verdict(rows((0.6, 0.6, 0.6, None), (1.5, 1.5, 1.5, 1.7))).endswith("to 128 MiB."), v
        assert "was not measured" in b.cap_verdict([dict(dtype="float16", cap_mb=16, ms=0.5)])
        md = b.table("a GPU", [], rows((0.62, 0.60, 0.66, 0.70), (1.5, 1.45, 1.6, 1.7)), [], [], None)
        assert "lower kColumnsCapBytes (deform_conv2d_plan.h) to 48 MiB." in md, md
        print("ok")
    """)
    assert p.returncode == 0 and p.stdout.strip().endswith("ok"), p.stdout + p.stderr


def test_bench_saves_after_each_section(tmp_path):
    """bench.md and report.json are replaced whole (temporary file, rename) after every section, so a run
    stopped at its time limit keeps what it measured (pure function: no device needed)."""
    p = _python(f"""
        import json, pathlib
        import bench_plugins_cuda as b
        out = pathlib.Path({str(tmp_path)!r})
        b.save(out, "first", dict(conv=[1]))
        b.save(out, "second", dict(conv=[1, 2]))
        assert (out / "bench.md").read_text() == "second"
        assert json.loads((out / "report.json").read_text()) == dict(conv=[1, 2])
        assert sorted(x.name for x in out.iterdir()) == ["bench.md", "report.json"]
        print("ok")
    """)
    assert p.returncode == 0 and p.stdout.strip().endswith("ok"), p.stdout + p.stderr


FAKE_PYTHON = r"""#!/usr/bin/env bash
# gpu_check.sh's Python, played: a CUDA device, device tests and a benchmark that take FAKE_SLEEP seconds
case "$*" in
  "-c import torch") exit 0 ;;
  *"torch.cuda.is_available()"*) echo "" ;;
  *get_device_properties*) echo "Fake GPU, sm_90, 132 SMs, 80 GiB, torch 2.11, CUDA 13.0" ;;
  *kernel_lens*) echo "" ;;
  *"-m pytest"*) sleep "${FAKE_SLEEP:-0}"; echo "224 passed in 1.00s" ;;
  *bench_plugins_cuda.py*)
    out="${@: -1}"; [ "$2" = --out ] && out="$3"
    printf 'Plugin enqueue on Fake GPU\n' >"$out/bench.md"; echo '{}' >"$out/report.json"; sleep "${FAKE_SLEEP:-0}" ;;
  *) echo "fake python: unexpected $*" >&2; exit 3 ;;
esac
"""
FAKE_CMAKE = r"""#!/usr/bin/env bash
# configure: nothing; --build DIR --target T: the library T
if [ "$1" = --build ]; then for t in "$@"; do last="$t"; done; mkdir -p "$2/lib"; touch "$2/lib/lib$last.so"; fi
"""
FAKE_SANITIZER = """#!/usr/bin/env bash
# options as CUDA 13's compute-sanitizer reads them: these take a value, any other --option is a switch,
# and the first other word is the program (the kit's "--track-unused-memory no" had made "no" the program)
while [ $# -gt 0 ]; do
  case "$1" in
    --tool|--leak-check|--error-exitcode|--print-limit) shift 2 ;;
    --*) shift ;;
    *) break ;;
  esac
done
[ -x "$1" ] || { echo "========= Error: Target application doesn't exist: $1"; exit 1; }
# FAKE_SAN_FAIL_NEVER_RUN: an error in the pass over the paths no GPU has run yet
case "${FAKE_SAN_FAIL_NEVER_RUN:-}:$*" in
  1:*"and (pipelined or"*) echo "========= ERROR SUMMARY: 1 error"; exit 99 ;;
esac
echo "========= ERROR SUMMARY: 0 errors"
"""


def _fake_kit(tmp_path, budget: int, sleep: int, **extra_env) -> tuple[subprocess.CompletedProcess, "Path"]:
    """scripts/gpu_check.sh with its Python, CMake and compute-sanitizer played by scripts (no GPU needed):
    its control flow, budget and report."""
    tools = tmp_path / "tools"
    tools.mkdir()
    for name, text in (("python", FAKE_PYTHON), ("cmake", FAKE_CMAKE), ("compute-sanitizer", FAKE_SANITIZER)):
        (tools / name).write_text(text)
        (tools / name).chmod(0o755)
    headers = tmp_path / "trt"
    headers.mkdir()
    (headers / "NvInferRuntime.h").write_text("")
    out = tmp_path / "out"
    env = dict(os.environ, DCN_PYTHON=str(tools / "python"), CMAKE=str(tools / "cmake"), CUDACXX="/bin/true",
               TensorRT_INCLUDE_DIR=str(headers), GPU_CHECK_BUILD_DIR=str(tmp_path / "build"),
               GPU_CHECK_BUDGET_S=str(budget), FAKE_SLEEP=str(sleep), PATH=f"{tools}:{os.environ['PATH']}", **extra_env)
    p = subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh"), str(out)], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=120)
    return p, out


def test_gpu_check_runs_every_step_and_sends_back_at_most_8_files(tmp_path):
    p, out = _fake_kit(tmp_path, budget=480, sleep=0)
    assert p.returncode == 0, p.stdout + p.stderr
    report = (out / "report.md").read_text()
    for st in ("build", "library without libnvinfer", "device tests", "benchmark", "sanitizer memcheck",
               "sanitizer racecheck", "sanitizer initcheck"):
        assert f"| {st} | PASS |" in report, report
    assert "Plugin enqueue on Fake GPU" in report and "of the 480 s budget" in report
    files = sorted(f.name for f in out.iterdir())
    assert len(files) <= 8 and not [f for f in files if f.startswith(".")], files  # a lent machine sends back 8


def test_sanitizers_run_the_never_run_paths_in_a_pass_of_their_own(tmp_path):
    """A sanitizer error on a switch's path (never run on a GPU) fails the step and is named, while the pass over
    the paths a GPU has run before still reports its own result (a CUDA fault is sticky: one process would have
    stopped at it)."""
    p, out = _fake_kit(tmp_path, budget=480, sleep=0, FAKE_SAN_FAIL_NEVER_RUN="1")
    assert p.returncode == 1, p.stdout + p.stderr
    report = (out / "report.md").read_text()
    assert ("| sanitizer memcheck | FAIL | run before: ========= ERROR SUMMARY: 0 errors; never run: ========= "
            "ERROR SUMMARY: 1 error (exit 99) (see sanitizer.log) |") in report, report
    log = (out / "sanitizer.log").read_text()
    assert "paths run before (exit 0)" in log and "paths never run (exit 99)" in log, log


def test_gpu_check_keeps_its_budget_and_names_what_it_cut(tmp_path):
    """The device tests outlast the budget: they are cut (INT, so pytest still prints its summary), the later
    steps are named as not run, the report is there, and the kit exits 1."""
    p, out = _fake_kit(tmp_path, budget=20, sleep=60)
    assert p.returncode == 1, p.stdout + p.stderr
    report = (out / "report.md").read_text()
    assert "| device tests | FAIL |" in report and "cut at its time limit" in report, report
    assert "| benchmark | FAIL | not run: the budget was spent" in report, report
    assert "| sanitizer initcheck | FAIL |" in report and "not run: the budget was spent" in report, report


BENCH_STUBS = """
    import json, pathlib, types
    import torch
    import bench_plugins_cuda as b
    from helpers import trt_device as td
    td.cuda_missing = lambda: None
    td.DeviceHarness = lambda path: object()
    td.device_harness_path = lambda: "x"
    torch.cuda.get_device_properties = lambda i: types.SimpleNamespace(name="Fake", major=9, minor=0,
                                                                       multi_processor_count=132)
    torch.cuda.synchronize = lambda: None
    calls = []

    def conv_row(hx, td_, torch_, stage, C, H, W, batch, dtype, it, tv):
        calls.append(batch)
        if len(calls) == FAIL_AT:
            raise FAILURE
        return dict(op="DeformConv2d", layer=f"{stage} {C}ch {H}x{W}", batch=batch, dtype=str(dtype)[6:], stage=stage,
                    C=C, H=H, W=W, plan="im2col", im2col_ms=1.0, ours_ms=1.0, torchvision_ms=None, dense_cudnn_ms=0.5,
                    torchvision_over_ours=None, ours_over_dense=2.0, ours_tflops=1.0, im2col_split={})

    b.conv_row = conv_row
    b.conv_paths = lambda *a, **k: (None, None)
    out = pathlib.Path(OUT)
"""


def test_bench_a_failing_row_is_named_and_the_others_run(tmp_path):
    """One DeformConv2d row that fails (the plugin's enqueue) is named under Errors; the rows after it still run
    (no GPU needed: the rows are played)."""
    p = _python(BENCH_STUBS.replace("FAIL_AT", "2").replace("FAILURE", "RuntimeError('enqueue returned 1')")
                .replace("OUT", repr(str(tmp_path))) + """
    rc = b.main(["--ops", "conv", "--quick", "--out", str(out)])
    rep = json.loads((out / "report.json").read_text())
    assert rc == 1 and len(calls) == 4 and len(rep["conv"]) == 3, (rc, calls, rep["conv"])
    assert rep["errors"] == ["DeformConv2d c3 b1 float16: RuntimeError: enqueue returned 1"], rep["errors"]
    assert "Errors:" in (out / "bench.md").read_text()
    print("ok")
    """)
    assert p.returncode == 0 and p.stdout.strip().endswith("ok"), p.stdout + p.stderr


def test_bench_interrupted_keeps_what_it_measured(tmp_path):
    """The kit's timeout -s INT while the third row runs: the two measured rows are saved before it stops."""
    p = _python(BENCH_STUBS.replace("FAIL_AT", "3").replace("FAILURE", "KeyboardInterrupt")
                .replace("OUT", repr(str(tmp_path))) + """
    try:
        b.main(["--ops", "conv", "--quick", "--out", str(out)])
    except KeyboardInterrupt:
        rep = json.loads((out / "report.json").read_text())
        assert len(rep["conv"]) == 2 and rep["errors"] == ["DeformConv2d (interrupted): KeyboardInterrupt"], rep
        print("ok")
    """)
    assert p.returncode == 0 and p.stdout.strip().endswith("ok"), p.stdout + p.stderr


def test_gpu_check_runs_the_steps_asked(tmp_path):
    """GPU_CHECK_STEPS=sanitizers: a second call on the same machine runs what a first call's budget left out."""
    p, out = _fake_kit(tmp_path, budget=480, sleep=0, GPU_CHECK_STEPS="sanitizers")
    assert p.returncode == 0, p.stdout + p.stderr
    report = (out / "report.md").read_text()
    assert "| build | PASS |" in report and "| sanitizer racecheck | PASS |" in report, report
    assert "device tests" not in report and "| benchmark |" not in report, report
    assert not (out / "tests.log").exists() and not (out / "bench.txt").exists()
