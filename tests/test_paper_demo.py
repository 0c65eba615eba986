"""samples/paper_demo end to end at --quick: the README's command, its claims and its files."""
from __future__ import annotations

import json
import re
import shlex
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.ci_policy import require_module

REPO = Path(__file__).resolve().parent.parent
README = REPO / "samples" / "paper_demo" / "README.md"
SEED = 0  # the README's seed (the default); the deformable model must win on it with a margin
MARGIN = 0.02  # accuracy points (of 1000 test images), so the win is not a coin flip

require_module("matplotlib")
require_module("onnxruntime")


def _readme_quick_command() -> list[str]:
    """The README's --quick command line, as argv after the interpreter."""
    text = README.read_text()
    m = re.search(r"^\.venv/bin/python (-m samples\.paper_demo\.run --quick[^\n]*)$", text, re.M)
    assert m, "samples/paper_demo/README.md has no `.venv/bin/python -m samples.paper_demo.run --quick ...` line"
    return shlex.split(m.group(1), comments=True)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("paper_demo")
    argv = _readme_quick_command()
    assert "--out" not in argv and "--seed" not in argv, "the README's --quick command runs the default seed and out"
    proc = subprocess.run([sys.executable, *argv, "--out", str(out)], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc.stdout, json.loads((out / "results.json").read_text())


def test_deformable_beats_plain(demo):
    _, stdout, res = demo
    plain = res["models"]["plain"]["accuracy"]
    dcn = res["models"]["deformable"]["accuracy"]
    assert res["seed"] == SEED and res["mode"] == "quick"
    assert dcn > plain + MARGIN, f"deformable {dcn:.3f} vs plain {plain:.3f}"
    assert res["deformable_beats_plain"] is True
    assert plain > 0.4  # both learned something (4 classes: chance 0.25)
    assert f"accuracy: plain {plain:.3f}, deformable {dcn:.3f}" in stdout
    # the grid_sample training path computes what torch.ops.dcn.deform_conv2d computes
    assert res["models"]["deformable"]["fast_vs_dcn_op_max_abs"] < 1e-4


def test_sampling_locations_png(demo):
    out, _, _ = demo
    png = out / "sampling_locations.png"
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert 600 <= width <= 4000 and 200 <= height <= 2000, (width, height)
    assert len(data) > 20_000  # an image with content, not an empty canvas
    assert not list(out.glob(".*"))  # atomic writes leave no temp files


def test_export_check(demo):
    import numpy as np
    import torch

    from dcn_base.tolerance import model_tolerance
    from samples.paper_demo.model import build_dcn
    from trt_runtime.plugins import ort_session

    out, stdout, res = demo
    exp = res["export"]
    assert exp["passed"] is True and exp["dcn_nodes"] == 3 and exp["node_types"] == ["DeformConv2d"]
    assert "ONNX Runtime" in exp["runtime"] or "onnxruntime" in exp["runtime"]
    assert exp["max_abs_error"] <= exp["atol"]
    # independently: the written ONNX model in ONNX Runtime with our ops vs the saved PyTorch weights
    model = build_dcn()
    model.load_state_dict(torch.load(out / "model_dcn.pt", weights_only=True))
    model.eval()
    x = torch.rand(3, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = model(x).numpy()
    got = ort_session(out / "model_dcn.onnx").run(None, {"images": x.numpy()})[0]
    atol, rtol = model_tolerance("float32", ref)
    np.testing.assert_allclose(got, ref, atol=atol, rtol=rtol)
    cmd = res["dcn_compare_command"]
    assert cmd.startswith("dcn-compare ") and "--factory samples.paper_demo.model:build_dcn" in cmd
    assert cmd in stdout


def test_readme_compare_command(demo, capsys):
    """The README's re-check (``.venv/bin/dcn-compare out/paper_demo/model_dcn.pt ...``), as written, on the
    files the run wrote (its --out in place of out/paper_demo): PASS."""
    from trt_runtime.cli import compare_main

    out, _, _ = demo
    text = README.read_text().replace("\\\n", " ")
    m = re.search(r"^\.venv/bin/dcn-compare (out/paper_demo/model_dcn\.pt [^\n]*)$", text, re.M)
    assert m, "samples/paper_demo/README.md has no `.venv/bin/dcn-compare out/paper_demo/model_dcn.pt ...` line"
    argv = [a.replace("out/paper_demo", str(out)) for a in shlex.split(m.group(1))]
    assert compare_main(argv) == 0
    assert "PASS" in capsys.readouterr().out


def test_results_json(demo):
    out, _, res = demo
    assert set(res) >= {"seed", "mode", "schedule", "data", "models", "export", "dcn_compare_command",
                        "deformable_beats_plain", "seconds"}
    for name in ("plain", "deformable"):
        m = res["models"][name]
        assert 0.0 <= m["accuracy"] <= 1.0 and m["train_seconds"] > 0 and m["parameters"] > 0
    assert res["models"]["deformable"]["parameters"] > res["models"]["plain"]["parameters"]  # offset branches
    assert Path(res["export"]["onnx"]) == out / "model_dcn.onnx"
    assert res["seconds"] > 0  # ~35 s on 2 idle cores; not asserted tighter (shared CI machines vary 3x)
