"""The one verdict rule (dcn_base.tolerance.passes), shared by dcn-export --check and dcn-compare."""
from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch

import exporter
from helpers import user_path_models as upm
from helpers.built_libs import require
from exporter import verify
from dcn_base.model_io import load_outputs
from dcn_base.model_io import save_inputs, save_outputs
from dcn_base.tolerance import FACTOR, OWN_LIMIT, SHARE_FLOOR, error_ratio, passes, share_beyond
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
    assert error_ratio(np.array([np.nan, 1.0]), np.array([np.nan, 1.0]), 1e-4, 1e-4) == 0.0  # NaN where NaN is
    assert error_ratio(np.array([np.inf]), np.array([-np.inf]), 1e-4, 1e-4) == math.inf


def test_share_beyond_counts_the_elements_past_the_row():
    ref = np.array([0.0, 1.0, -10.0, np.nan, np.inf])
    assert share_beyond(ref, ref, 1e-4, 1e-4) == 0.0
    assert share_beyond(ref + [2e-4, 0, 0, 0, 0], ref, 1e-4, 1e-4) == pytest.approx(0.2)
    assert share_beyond([0.0, 1.0, -10.0, 0.0, np.inf], ref, 1e-4, 1e-4) == pytest.approx(0.2)  # a lost NaN
    assert share_beyond(-ref, ref, 1e-4, 1e-4) == pytest.approx(0.6)  # -0 == 0; NaN stays; -inf != inf
    assert share_beyond(np.zeros(2), np.zeros(3), 1e-4, 1e-4) == 1.0
    assert share_beyond(np.zeros(0), np.zeros(0), 1e-4, 1e-4) == 0.0
    # dcn-compare's table counts the same way: NaN for NaN and inf for inf are not outside
    from trt_runtime.report import error_stats

    st = error_stats([np.array([np.nan, 1.0, np.inf, 2.0])], [np.array([np.nan, 1.0, np.inf, np.nan])], 1e-4, 1e-4)
    assert (st["outside_count"], st["max_abs"]) == (1, 0.0)


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


@pytest.mark.parametrize("target,own,share,own_share,ok", [
    (49.9, 18.3, 1.0, 1 / 256, False),  # one outlier of PyTorch's own widens the bound; every element wrong
    (3.0, 1.0, 0.02, 0.01, True),  # the spread of PyTorch's own: within FACTOR times its share
    (3.0, 1.0, SHARE_FLOOR, 0.0, True),  # the floor
    (3.0, 1.0, 0.05, 0.01, False),
    (0.9, 0.1, 1.0, 1.0, True),  # the row decides (own does not widen the bound): no spread rule
])
def test_passes_with_the_spread_where_own_widens_the_bound(target, own, share, own_share, ok):
    v = passes(target, own, share=share, own_share=own_share)
    assert v.passed is ok, v.text()
    assert ("beyond the row" in v.text()) is (v.bound > 1)


def test_one_outlier_of_pytorchs_own_run_does_not_pass_a_negated_output(tmp_path, capsys):
    """The review's case: PyTorch's own float16 run one element off (a flipped pick) widened the bound to 73
    units, where a model that negates every value passed; the spread rule fails it, the right model passes."""
    import onnx
    from onnx import TensorProto, helper

    for op in ("Neg", "Identity"):
        graph = helper.make_graph([helper.make_node(op, ["x"], ["y"])], "g",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 64])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 64])])
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
        m.ir_version = 9
        onnx.save(m, tmp_path / f"{op}.onnx")
    x = np.random.default_rng(0).uniform(0, 1, (4, 64)).astype(np.float32)
    own = x.astype(np.float16).astype(np.float32)
    own[0, 0] += 0.6
    (tmp_path / "io").mkdir()
    save_inputs(tmp_path / "io" / "inputs.json", [{"x": x}])
    save_outputs(tmp_path / "io" / "outputs.json", {"y": x}, own={"y": own})
    assert compare_main([str(tmp_path / "io"), str(tmp_path / "Neg.onnx"), "--precision", "fp16"]) == 1
    assert "beyond the tolerance row" in capsys.readouterr().out
    assert compare_main([str(tmp_path / "io"), str(tmp_path / "Identity.onnx"), "--precision", "fp16"]) == 0


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


def test_integer_outputs_are_compared_exactly(tmp_path, capsys):
    """Labels and indices: one index off by one fails (float tolerances scaled by the largest index let
    8398 for 8399 pass); --atol naming the output loosens it; dcn-export's check takes its tolerance from
    the first floating-point output (an integer first output made it fail with 'no tolerance for int64')."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("ArgMax", ["x"], ["idx"], axis=1, keepdims=0),
                               helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 9000])],
                              [helper.make_tensor_value_info("idx", TensorProto.INT64, [2]),
                               helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 9000])])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 9
    onnx.save(m, tmp_path / "m.onnx")
    x = np.random.default_rng(1).uniform(0, 1, (2, 9000)).astype(np.float32)
    x[0, 8399], x[1, 5000] = 2.0, 2.0
    (tmp_path / "io").mkdir()
    save_inputs(tmp_path / "io" / "inputs.json", [{"x": x}])
    for idx, want in (([8399, 5000], 0), ([8398, 5000], 1)):
        save_outputs(tmp_path / "io" / "outputs.json", {"idx": np.array(idx, dtype=np.int64), "y": x})
        assert compare_main([str(tmp_path / "io"), str(tmp_path / "m.onnx"), "--report", str(tmp_path / "r.json")]) \
            == want, idx
    # the report is strict JSON (an infinite error as a string, not a bare Infinity other parsers reject)
    rep = json.loads((tmp_path / "r.json").read_text(), parse_constant=lambda c: pytest.fail(f"bare {c} in JSON"))
    assert [(o["name"], o["error"]) for o in rep["outputs"]] == [("idx", "Infinity"), ("y", 0.0)]
    assert compare_main([str(tmp_path / "io"), str(tmp_path / "m.onnx"), "--atol", "idx:1"]) == 0
    capsys.readouterr()
    save_outputs(tmp_path / "io" / "outputs.json", {"y": x})  # a target output the reference lacks: said
    assert compare_main([str(tmp_path / "io"), str(tmp_path / "m.onnx")]) == 0
    assert "note: target output(s) ['idx'] have no reference output and were not compared" in capsys.readouterr().out

    class LabelsFirst(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3)

        def forward(self, x):
            y = self.conv(x)
            return y.argmax(1), y

    res = exporter.export(LabelsFirst(), (torch.randn(1, 3, 8, 8),), tmp_path / "l.onnx", check=True)
    assert res.check.passed and res.check.dtype == "float32"


def test_integer_outputs_flipped_by_rounding_as_pytorchs_own_pass(tmp_path):
    """An argmax that float16 rounding flips in PyTorch's own float16 run too: the exact rule judges the share
    of differing elements against PyTorch's own (it failed every correct FP16 segmentation head with 'inf');
    none may differ where PyTorch's own share is unknown or zero."""
    assert passes(math.inf, math.inf, share=0.002, own_share=0.001, exact=True).passed
    assert not passes(math.inf, math.inf, share=0.01, own_share=0.001, exact=True).passed
    assert not passes(math.inf, None, share=0.001, own_share=None, exact=True).passed
    assert not passes(math.inf, 0.0, share=0.001, own_share=0.0, exact=True).passed
    v = passes(0.0, 0.0, share=0.0, own_share=0.0, exact=True)
    assert v.passed and "exact: 0% of the elements differ" in v.text()

    class Seg(torch.nn.Module):  # a segmentation head: scores and their argmax (the review's case)
        def __init__(self):
            super().__init__()
            self.b = torch.nn.Conv2d(3, 16, 3, padding=1)
            self.d = exporter.ops.ModulatedDeformConv2dPack(16, 21, 3, padding=1)

        def forward(self, x):
            y = self.d(torch.relu(self.b(x)))
            return y, y.argmax(1)

    torch.manual_seed(0)
    res = exporter.export(Seg().eval(), (torch.randn(1, 3, 64, 64),), tmp_path / "s.onnx", fp16=True, check=True)
    assert res.check.passed, res.check.summary()
