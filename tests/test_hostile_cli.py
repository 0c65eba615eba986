"""Hostile and careless use of the command lines: one line and exit 2 for every error, 1 only for a
mismatch, 130 for Ctrl-C at any moment, nothing replaced until everything is written, no silent
fallback to another runtime.

Full disks are emulated the CI way: a write that raises ENOSPC (monkeypatched) in process, and
RLIMIT_FSIZE (with SIGXFSZ ignored, so writes fail with EFBIG) in a subprocess.
"""
from __future__ import annotations

import errno
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from helpers import export_models as em
from exporter.cli import main as export_main
from dcn_base.errors import DcnError
from trt_runtime.cli import compare_main
from helpers.ci_policy import require_module

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _one_error_line(err: str, prog: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines and "Traceback" not in err, err
    assert lines[-1].startswith(f"{prog}: "), err
    errors = [ln for ln in lines if ln.startswith(f"{prog}: error:")]
    assert len(errors) <= 1, err
    return lines[-1]


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A TorchScript DCN model, its export with --save-io, and an ONNX model that fails inside ONNX Runtime."""
    d = tmp_path_factory.mktemp("hostile")
    model = em.small_dcn()
    torch.jit.save(torch.jit.trace(model, torch.randn(1, 3, 8, 8)), d / "m.ts")
    assert export_main([str(d / "m.ts"), "-o", str(d / "m.onnx"), "--input", "x:1x3x8x8", "--save-io",
                        str(d / "io"), "-q"]) == 0
    g = helper.make_graph([helper.make_node("Reshape", ["x", "s"], ["output"])], "bad",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 3, 8, 8])],
                          [helper.make_tensor_value_info("output", TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(np.array([7, 7], np.int64), "s")])
    bad = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    bad.ir_version = 9
    onnx.save(bad, d / "bad.onnx")
    return d


# --------------------------------------------------------------------------- dcn-compare
def test_compare_runtime_error_inside_the_target_is_one_line_exit_2(small, capfd):
    rc = compare_main([str(small / "m.ts"), str(small / "bad.onnx"), "--input", "x:1x3x8x8"])
    out, err = capfd.readouterr()
    assert rc == 2
    line = _one_error_line(err, "dcn-compare")
    assert "running the models failed" in line and "Reshape" in line


def test_compare_malformed_inputs_json(small, tmp_path, capfd):
    bad = tmp_path / "inputs.json"
    bad.write_text('[{"x": {"array": "not base64')
    rc = compare_main([str(small / "io" / "outputs.json"), str(small / "m.onnx"), "--load-inputs", str(bad)])
    _, err = capfd.readouterr()
    assert rc == 2
    assert "inputs.json" in _one_error_line(err, "dcn-compare")


def test_compare_full_disk_under_report_and_plot(small, tmp_path, capfd, monkeypatch):
    require_module("matplotlib")
    report = tmp_path / "report.json"
    report.write_text("old report\n")
    args = [str(small / "io"), str(small / "m.onnx"), "--report", str(report)]
    import matplotlib.figure

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", _enospc)
    rc = compare_main(args + ["--plot", str(tmp_path / "plots")])
    _, err = capfd.readouterr()
    assert rc == 2 and "No space left on device" in _one_error_line(err, "dcn-compare")
    assert not (tmp_path / "plots").exists(), "an empty plot folder was left"
    assert report.read_text() == "old report\n"
    monkeypatch.undo()
    monkeypatch.setattr(Path, "write_text", _enospc)
    rc = compare_main(args)
    _, err = capfd.readouterr()
    assert rc == 2 and "No space left on device" in _one_error_line(err, "dcn-compare")
    monkeypatch.undo()
    assert report.read_text() == "old report\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"], "temporaries left behind"


def test_compare_huge_input_refused_before_allocating(small, capfd):
    rc = compare_main([str(small / "m.ts"), str(small / "m.onnx"), "--input", "x:1x3x100000x100000"])
    _, err = capfd.readouterr()
    assert rc == 2 and "GiB" in _one_error_line(err, "dcn-compare")


# --------------------------------------------------------------------------- dcn-export
def test_export_huge_input_refused_before_allocating(small, tmp_path, capfd):
    t0 = time.monotonic()
    rc = export_main([str(small / "m.ts"), "-o", str(tmp_path / "x.onnx"), "--input", "x:1x3x100000x100000"])
    _, err = capfd.readouterr()
    assert rc == 2 and "elements" in _one_error_line(err, "dcn-export")
    assert time.monotonic() - t0 < 30


class DataDependent(torch.nn.Module):
    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow
            return x * 2
        return x - 1


def data_dependent_net():
    return torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1), DataDependent()).eval()


def test_export_failure_names_module_and_source_line_without_graph_dump(tmp_path, capfd, monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))
    rc = export_main(["--factory", "test_hostile_cli:data_dependent_net", "-o", str(tmp_path / "x.onnx"),
                      "--input", "x:1x3x8x8", "--no-verify"])
    out, err = capfd.readouterr()
    assert rc == 2
    line = _one_error_line(err, "dcn-export")
    assert "in module '1'" in line and "test_hostile_cli.py:" in line and "x.sum() > 0" in line, line
    assert "def forward" not in out + err
    rc = export_main(["--factory", "test_hostile_cli:data_dependent_net", "-o", str(tmp_path / "x.onnx"),
                      "--input", "x:1x3x8x8", "--no-verify", "-v"])
    _, err = capfd.readouterr()
    assert rc == 2 and "def forward" in err  # -v: the full detail


def test_export_save_io_failure_replaces_nothing(small, tmp_path, capfd, monkeypatch):
    out = tmp_path / "existing.onnx"
    out.write_bytes(b"old model")
    import polygraphy.json

    monkeypatch.setattr(polygraphy.json, "save_json", _enospc)
    rc = export_main([str(small / "m.ts"), "-o", str(out), "--input", "x:1x3x8x8", "--save-io",
                      str(tmp_path / "io" / "deeper"), "--no-verify"])
    _, err = capfd.readouterr()
    assert rc == 2 and "nothing was replaced" in _one_error_line(err, "dcn-export")
    assert out.read_bytes() == b"old model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing.onnx"], "temporaries or an empty folder left"


def _export_cmd(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from exporter.entry import main; sys.exit(main())",
            "--factory", "helpers.export_models:small_dcn", "-o", str(out), "--input", "x:1x3x8x8", *extra]


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(TESTS)]))


def test_export_full_disk_in_a_subprocess_leaves_the_old_output(tmp_path):
    out = tmp_path / "existing.onnx"
    out.write_bytes(b"old model")

    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))

    r = subprocess.run(_export_cmd(out, "--no-verify", "--save-io", str(tmp_path / "io")), cwd=tmp_path,
                       env=_env(), capture_output=True, text=True, timeout=600, preexec_fn=small_files)
    assert r.returncode == 2, r.stderr
    assert "File too large" in _one_error_line(r.stderr, "dcn-export")
    assert out.read_bytes() == b"old model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing.onnx"]


@pytest.mark.parametrize("delay", [0.3, 1.0, 2.0, 3.0])  # start-up imports, loading, tracing, checking
def test_ctrl_c_at_any_moment_is_130_and_replaces_nothing(tmp_path, delay):
    out = tmp_path / "existing.onnx"
    out.write_bytes(b"old model")
    p = subprocess.Popen(_export_cmd(out, "--save-io", str(tmp_path / "io")), cwd=tmp_path, env=_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=600)
    if p.returncode == 0:  # finished before the signal: nothing to check but the result
        pytest.skip(f"the export finished within {delay}s")
    assert p.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1].endswith("interrupted"), err
    assert out.read_bytes() == b"old model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing.onnx"]


# --------------------------------------------------------------------------- no silent fallback
def test_built_but_broken_op_library_is_an_error(monkeypatch):
    from exporter import export
    from dcn_base import libraries

    def broken(*args, **kwargs):
        raise RuntimeError("libdcn_ort.so: undefined symbol: OrtGetApiBase")

    monkeypatch.setattr(libraries, "ort_session", broken)
    with pytest.raises(DcnError, match="libdcn_ort failed to load the model: RuntimeError: libdcn_ort.so"):
        export(em.small_dcn(), (torch.randn(1, 3, 8, 8),), "unused.onnx", check=True)
    assert not Path("unused.onnx").exists()


def test_not_built_library_falls_back_with_the_runtime_named(tmp_path, monkeypatch):
    from exporter import export
    from dcn_base import libraries

    def not_built(*args, **kwargs):
        raise libraries.LibraryNotBuiltError("libdcn_ort.so not built")

    monkeypatch.setattr(libraries, "ort_session", not_built)
    res = export(em.small_dcn(), (torch.randn(1, 3, 8, 8),), tmp_path / "m.onnx", check=True)
    assert "run as ONNX DeformConv" in res.summary() or "reference evaluator" in res.summary()
