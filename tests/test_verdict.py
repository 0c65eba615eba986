"""The one verdict rule (dcn_base.tolerance.passes), shared by dcn-export --check and dcn-compare."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

import exporter
from helpers import user_path_models as upm
from helpers.built_libs import require
from exporter import verify
from dcn_base.model_io import load_outputs
from dcn_base.tolerance import FACTOR, OWN_LIMIT, error_ratio, passes
from trt_runtime import plugins
from trt_runtime.cli import compare_main


def test_error_ratio_is_in_tolerance_units():
    ref = np.array([0.0, 1.0, -10.0])
    assert error_ratio(ref, ref, 1e-4, 1e-4) == 0.0
    got = ref + np.array([1e-4, 0.0, 0.0])
    assert error_ratio(got, ref, 1e-4, 1e-4) == pytest.approx(1.0)
    got = ref + np.array([0.0, 0.0, 1.1e-3 * 2])  # atol + rtol*10 = 1.1e-3
    assert error_ratio(got, ref, 1e-4, 1e-4) == pytest.approx(2.0)
    assert error_ratio(np.zeros(2), np.zeros(3), 1e-4, 1e-4) == math.inf
    assert error_ratio(np.array([np.nan]), np.array([0.0]), 1e-4, 1e-4) == math.inf
    assert error_ratio(np.array([np.inf]), np.array([np.inf]), 1e-4, 1e-4) == 0.0


@pytest.mark.parametrize("target,own,bound,ok", [
    (0.5, None, 1.0, True),  # unknown own error: the row decides
    (1.5, None, 1.0, False),
    (1.5, 0.1, 1.0, False),  # the row is the floor
    (3.0, 1.0, FACTOR, True),  # deep network: PyTorch itself is 1x the row off
    (FACTOR + 0.1, 1.0, FACTOR, False),
    (2.0, math.nan, 1.0, False),  # PyTorch broke down: the row decides
    (100.0, OWN_LIMIT * 2, 1.0, False),  # own error beyond rounding (random numbers): not used
])
def test_passes(target, own, bound, ok):
    v = passes(target, own)
    assert v.bound == pytest.approx(bound) and v.passed is ok
    assert "bound" in v.text()


def test_perturbed_twin_fails_check_rule_and_dcn_compare(tmp_path, capsys):
    """One weight tensor off by 1%: dcn-compare and the --check rule both FAIL it, the original passes."""
    require(plugins.ort_library)
    model = upm.dcnv2_bn()
    x = torch.randn(1, 3, 24, 24, generator=torch.Generator().manual_seed(3))
    res = exporter.export(model, (x,), tmp_path / "m.onnx", input_names=["images"], save_io=tmp_path / "io",
                          check=True)
    assert res.check.passed
    twin = copy.deepcopy(model)
    with torch.no_grad():
        twin.dcn.weight.mul_(1.01)
    tw = exporter.export(twin, (x,), tmp_path / "twin.onnx", input_names=["images"], verify=False)

    assert compare_main([str(tmp_path / "io"), str(tmp_path / "m.onnx")]) == 0
    assert compare_main([str(tmp_path / "io"), str(tmp_path / "twin.onnx")]) == 1
    out = capsys.readouterr().out
    assert "pytorch_own" in out and "FAIL" in out

    results = load_outputs(tmp_path / "io" / "outputs.json")
    truth = [results["pytorch"][0]["output"]]
    own = [results["pytorch-own"][0]["output"]]
    runner = verify.make_runner(tw.model)
    report = verify.check_outputs(runner, {"images": x.numpy()}, ["output"], truth, "float32", own=own)
    assert not report.passed and "FAIL" in report.summary()
    assert report.outputs[0].worst > report.outputs[0].verdict.bound
