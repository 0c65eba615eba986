"""dcn-compare on the CPU, for real: PyTorch (or its saved outputs) vs ONNX Runtime.

A small standard-op model (Conv/Relu/ReduceMean written with onnx.helper from the torch
module's own weights) covers the comparator plumbing, report, plots and exit codes without
waiting for anything else; the DCN and PS-RoI pooling models go through dcn-export and our
ONNX Runtime ops, and skip (naming why) only while those are not built.
"""
from __future__ import annotations

import json
import math
from collections import OrderedDict
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from dcn_base.errors import DcnError
from dcn_base.tolerance import TOLERANCES, tolerance
from trt_runtime.cli import compare_main
from trt_runtime.compare import (
    TorchRunner,
    compare,
    error_stats,
    parse_input_shapes,
    parse_per_output,
    parse_val_ranges,
    resolve_tolerances,
)
from helpers.ci_policy import missing, require_module


# --------------------------------------------------------------------------- a small standard-op model


class SmallNet(torch.nn.Module):
    """feat = conv2(relu(conv1(x))) [N,2,H,W]; score = mean_hw(relu(conv1(x))) [N,4]."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.c1 = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.c2 = torch.nn.Conv2d(4, 2, 1)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.rand(p.shape, generator=g) - 0.5)

    def forward(self, x):
        r = torch.relu(self.c1(x))
        return self.c2(r), r.mean(dim=(2, 3))


def small_onnx(net: SmallNet, path: Path, *, dynamic_batch: bool = True) -> Path:
    w = lambda t: t.detach().numpy().copy()  # noqa: E731
    inits = [
        numpy_helper.from_array(w(net.c1.weight), "w1"), numpy_helper.from_array(w(net.c1.bias), "b1"),
        numpy_helper.from_array(w(net.c2.weight), "w2"), numpy_helper.from_array(w(net.c2.bias), "b2"),
        numpy_helper.from_array(np.array([2, 3], np.int64), "axes"),
    ]
    nodes = [
        helper.make_node("Conv", ["images", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="c1"),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["feat"], name="c2"),
        helper.make_node("ReduceMean", ["r1", "axes"], ["score"], keepdims=0, name="mean"),
    ]
    b = "batch" if dynamic_batch else 2
    graph = helper.make_graph(
        nodes, "small",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [b, 3, 8, 8])],
        [helper.make_tensor_value_info("feat", TensorProto.FLOAT, [b, 2, 8, 8]),
         helper.make_tensor_value_info("score", TensorProto.FLOAT, [b, 4])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def corrupt_weight(src: Path, dst: Path, name: str, delta: float = 0.5) -> Path:
    model = onnx.load(str(src))
    for i, init in enumerate(model.graph.initializer):
        if init.name == name:
            arr = numpy_helper.to_array(init).copy()
            arr.flat[0] += delta
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(arr, name))
            break
    else:
        raise AssertionError(f"no initializer {name}")
    onnx.save(model, str(dst))
    return dst


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """SmallNet, its ONNX, and saved Polygraphy inputs/outputs as dcn-export --save-io writes them."""
    from polygraphy.comparator import Comparator

    d = tmp_path_factory.mktemp("small")
    net = SmallNet().eval()
    onnx_path = small_onnx(net, d / "small.onnx")
    io = d / "io"
    io.mkdir()
    rng = np.random.default_rng(3)
    feeds = [OrderedDict(images=rng.standard_normal((2, 3, 8, 8)).astype(np.float32))]
    runner = TorchRunner(net, [("images", np.float32, [None, 3, 8, 8])], output_names=["feat", "score"])
    Comparator.run([runner], data_loader=feeds, save_inputs_path=str(io / "inputs.json"),
                   save_outputs_path=str(io / "outputs.json"))
    return {"net": net, "onnx": onnx_path, "io": io, "dir": d}


# --------------------------------------------------------------------------- tolerance table


def test_tolerances_default_from_the_one_table():
    for prec in ("float32", "float16"):
        tols = resolve_tolerances(["a", "b"], prec)
        assert tols == {"a": TOLERANCES[prec], "b": TOLERANCES[prec]}
        assert tols["a"] == tolerance(prec)
    assert TOLERANCES["float16"][0] > TOLERANCES["float32"][0]


def test_tolerance_overrides_global_and_per_output():
    tols = resolve_tolerances(["feat", "score"], "float16", atol=["1e-3", "score:0.5"], rtol=["feat:0"])
    assert tols["feat"] == (1e-3, 0.0)
    assert tols["score"] == (0.5, TOLERANCES["float16"][1])
    # output names may contain ':'; the value is after the last one
    assert parse_per_output(["a:b:0.25"], "--atol") == (None, {"a:b": 0.25})


@pytest.mark.parametrize("bad, words", [
    (["x"], "expected a number or NAME:NUMBER"),
    (["feat:abc"], "is not a number"),
    (["-1"], ">= 0"),
    (["nope:1e-3"], "names output(s) ['nope']"),
])
def test_tolerance_errors_name_the_problem(bad, words):
    with pytest.raises(DcnError, match=None) as e:
        resolve_tolerances(["feat"], "float32", atol=bad)
    assert words in str(e.value)


def test_input_and_range_parsing():
    assert parse_input_shapes(["images:2x3x8x8", "a:b:1x5"]) == {"images": (2, 3, 8, 8), "a:b": (1, 5)}
    assert parse_val_ranges(["-1,1"]) == (-1.0, 1.0)
    assert parse_val_ranges(["rois:0,60", "0,1"]) == {"rois": (0.0, 60.0), "": (0.0, 1.0)}
    with pytest.raises(DcnError, match="NAME:SHAPE"):
        parse_input_shapes(["2x3"])
    with pytest.raises(DcnError, match="LOW <= HIGH"):
        parse_val_ranges(["2,1"])


# --------------------------------------------------------------------------- error statistics


def test_error_stats_statistics_and_the_verdicts_outside_share():
    ref = np.array([1.0, 2.0, 0.0, 100.0], np.float32)
    got = np.array([1.0, 2.5, 1e-3, 100.5], np.float32)
    st = error_stats([ref], [got], atol=1e-2, rtol=1e-2)
    # abs: 0, .5, 1e-3, .5 ; rel: 0, .25, 1e-3/eps, .005
    assert st["elements"] == 4
    assert st["max_abs"] == pytest.approx(0.5)
    assert st["mean_abs"] == pytest.approx((0 + 0.5 + 1e-3 + 0.5) / 4, rel=1e-5)
    assert st["median_abs"] == pytest.approx((1e-3 + 0.5) / 2, rel=1e-5)
    assert st["max_rel"] > 1e9  # zero reference: Polygraphy's epsilon denominator
    # outside = abs > bound * (atol + rtol*|ref|) (dcn_base.tolerance.passes): only element 1 (2 -> 2.5)
    assert st["outside_count"] == 1 and st["outside"] == 0.25
    assert error_stats([ref], [got], atol=1e-2, rtol=1e-2, bound=10.0)["outside_count"] == 1  # .5 > 10*.03
    assert error_stats([ref], [got], atol=1e-2, rtol=1e-2, bound=20.0)["outside_count"] == 0


def test_error_stats_nan_and_shape_mismatch():
    st = error_stats([np.ones(3, np.float32)], [np.array([1, np.nan, 1], np.float32)], 1e-4, 1e-4)
    assert st["nan_count"] == 1 and st["outside_count"] == 1
    st = error_stats([np.ones((2, 3))], [np.ones((3, 2))], 1e-4, 1e-4)
    assert "reference [2, 3] vs target [3, 2]" in st["shape_mismatch"]


# --------------------------------------------------------------------------- PyTorch vs ONNX Runtime


def test_compare_module_vs_onnx_passes_with_report_and_plots(small, tmp_path):
    report, plots = tmp_path / "report.json", tmp_path / "plots"
    out = compare(small["net"], str(small["onnx"]), input_shapes=["images:2x3x8x8"], seed=7,
                  report=str(report), plot=str(plots), log=lambda *_: None)
    assert out.passed and out.exit_code == 0
    rep = json.loads(report.read_text())
    assert rep["passed"] is True
    assert rep["precision"] == "float32"
    assert rep["reference"]["runner"] == "pytorch" and rep["target"]["runner"] == "onnxruntime"
    assert rep["inputs"]["shapes"] == {"images": [2, 3, 8, 8]} and rep["seed"] == 7
    assert [o["name"] for o in rep["outputs"]] == ["feat", "score"]
    for o in rep["outputs"]:
        assert (o["atol"], o["rtol"]) == TOLERANCES["float32"]
        for key in ("max_abs", "mean_abs", "median_abs", "max_rel", "mean_rel", "median_rel", "outside"):
            assert math.isfinite(o[key])
        assert o["max_abs"] < 1e-5 and o["outside"] == 0.0 and o["passed"] is True
    assert rep["outputs"][0]["shape"] == [2, 2, 8, 8]
    names = sorted(p.name for p in plots.iterdir())
    assert names == ["feat_heatmap.png", "feat_hist.png", "score_heatmap.png", "score_hist.png"]
    for p in plots.iterdir():
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(rep["plots"]) == sorted(str(plots / n) for n in names)


def test_cli_saved_outputs_vs_onnx_passes(small, tmp_path, capsys):
    report = tmp_path / "r.json"
    # REFERENCE is the --save-io directory: outputs.json with its sibling inputs.json
    code = compare_main([str(small["io"]), str(small["onnx"]), "--report", str(report)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "PASS" in out and "feat" in out and "score" in out
    rep = json.loads(report.read_text())
    assert rep["inputs"]["source"].endswith("inputs.json") and rep["seed"] is None
    for col in ("max_abs", "mean_abs", "median_abs", "max_rel", "mean_rel", "median_rel", "outside"):
        assert col in out


def test_cli_corrupted_onnx_fails_naming_the_output(small, tmp_path, capsys):
    bad = corrupt_weight(small["onnx"], tmp_path / "bad.onnx", "w2")  # w2 feeds 'feat' only
    report = tmp_path / "r.json"
    code = compare_main([str(small["io"] / "outputs.json"), str(bad), "--load-inputs",
                         str(small["io"] / "inputs.json"), "--report", str(report)])
    out = capsys.readouterr().out
    assert code == 1, out
    fail_line = [l for l in out.splitlines() if l.startswith("FAIL")]
    assert fail_line and "feat" in fail_line[0] and "score" not in fail_line[0]
    rows = {l.split()[0]: l for l in out.splitlines() if l.split() and l.split()[0] in ("feat", "score")}
    assert rows["feat"].rstrip().endswith("FAIL") and rows["score"].rstrip().endswith("PASS")
    rep = json.loads(report.read_text())
    feat = next(o for o in rep["outputs"] if o["name"] == "feat")
    assert rep["passed"] is False and feat["passed"] is False and 0 < feat["outside"] <= 1
    assert feat["outside_count"] >= 1 and feat["max_abs"] > 1e-3


def test_cli_tolerance_override_turns_fail_into_pass(small, tmp_path, capsys):
    bad = corrupt_weight(small["onnx"], tmp_path / "bad.onnx", "w2")
    code = compare_main([str(small["io"]), str(bad), "--atol", "feat:10"])
    assert code == 0, capsys.readouterr().out


def test_cli_fp16_precision_uses_fp16_row(small, tmp_path, capsys):
    report = tmp_path / "r.json"
    assert compare_main([str(small["io"]), str(small["onnx"]), "--precision", "fp16", "--report", str(report)]) == 0
    rep = json.loads(report.read_text())
    assert rep["precision"] == "float16"
    # whole-model rule: the row's atol times the output's scale (dcn_base.tolerance.output_scale)
    assert all(o["scale"] >= 1.0 for o in rep["outputs"])
    assert all((o["atol"], o["rtol"]) == pytest.approx((TOLERANCES["float16"][0] * o["scale"], TOLERANCES["float16"][1]))
               for o in rep["outputs"])


def test_cli_torch_model_file_reference(small, tmp_path, capsys):
    """REFERENCE as a file loaded by exporter.loading: state dict + --factory, pickle + --trust-pickle."""
    require_module("exporter.loading", reason="exporter.loading (load_model) does not import")
    sd = tmp_path / "small_state.pt"
    torch.save(small["net"].state_dict(), sd)
    code = compare_main([str(sd), str(small["onnx"]), "--factory", "test_compare_cpu:SmallNet",
                         "--input", "images:1x3x8x8", "--seed", "3"])
    assert code == 0, capsys.readouterr()
    pickled = tmp_path / "small_module.pt"
    torch.save(small["net"], pickled)
    assert compare_main([str(pickled), str(small["onnx"]), "--input", "images:1x3x8x8"]) == 2
    assert "--trust-pickle" in capsys.readouterr().err
    assert compare_main([str(pickled), str(small["onnx"]), "--input", "images:1x3x8x8", "--trust-pickle"]) == 0


@pytest.mark.parametrize("argv, code, words", [
    (["{io}", "{dir}/missing.onnx"], 2, "TARGET"),
    (["{io}", "{dir}/model.txt"], 2, "expected an ONNX model (.onnx) or a TensorRT engine"),
    (["{io}/outputs.json", "{onnx}", "--load-inputs", "{dir}/nope.json"], 2, "--load-inputs"),
    (["{dir}/nothing.json", "{onnx}"], 2, "REFERENCE"),
    (["{io}", "{onnx}", "--atol", "banana"], 2, "--atol 'banana'"),
    (["{io}", "{onnx}", "--report", "{dir}/no/such/dir/r.json"], 2, "does not exist"),
    (["{io}", "{onnx}", "--precision", "fp8"], 2, "invalid choice"),
])
def test_cli_usage_errors_exit_2_one_line(small, tmp_path, capsys, argv, code, words):
    (tmp_path / "model.txt").write_text("x")
    fmt = dict(io=small["io"], dir=tmp_path, onnx=small["onnx"])
    rc = compare_main([a.format(**fmt) for a in argv])
    err = capsys.readouterr().err
    assert rc == code
    assert words in err
    assert "Traceback" not in err
    assert len([l for l in err.splitlines() if "error:" in l]) == 1


def test_dynamic_input_without_shape_names_it(small):
    with pytest.raises(DcnError, match=r"input 'images' has dynamic shape \[\?, 3, 8, 8\]; give a shape .* e\.g\. --input images:1x3x8x8"):
        compare(small["net"], str(small["onnx"]), log=lambda *_: None)


def test_saved_outputs_without_inputs_is_a_usage_error(small, tmp_path):
    lone = tmp_path / "outputs.json"
    lone.write_bytes((small["io"] / "outputs.json").read_bytes())
    with pytest.raises(DcnError, match="--load-inputs inputs.json"):
        compare(str(lone), str(small["onnx"]), log=lambda *_: None)


def test_report_write_is_atomic_and_keeps_old_file_on_error(small, tmp_path):
    report = tmp_path / "r.json"
    report.write_text("old")
    with pytest.raises(DcnError):
        compare(small["net"], str(small["onnx"]), input_shapes=["images:2x4x8x8"], report=str(report),
                log=lambda *_: None)
    assert report.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


# --------------------------------------------------------------------------- DCN models through dcn-export + our ORT ops


def _dcn_stack_or_skip():
    """Skip, naming the exact missing piece, unless dcn-export and the ORT op library are there."""
    from trt_runtime import plugins

    try:
        plugins.ort_library()
    except plugins.LibraryNotBuiltError as err:
        missing(f"ONNX Runtime op library not built: {err}")
    try:
        from exporter import export  # noqa: F401
    except (ImportError, AttributeError) as err:
        missing(f"exporter.export (dcn-export) is not available: {err}")
    return export


class DcnNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        from exporter.ops import DeformConv2dPack, ModulatedDeformConv2dPack

        torch.manual_seed(0)
        self.stem = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.dcn1 = DeformConv2dPack(8, 8, 3, padding=1)
        self.dcn2 = ModulatedDeformConv2dPack(8, 4, 3, stride=(2, 1), padding=(1, 2, 1, 0), deform_groups=2)
        with torch.no_grad():  # non-zero offsets, or the deformable part is never exercised
            for m in (self.dcn1, self.dcn2):
                m.conv_offset.weight.normal_(0, 0.2)
                m.conv_offset.bias.normal_(0, 0.5)

    def forward(self, x):
        return self.dcn2(torch.relu(self.dcn1(torch.relu(self.stem(x)))))


def make_dcn_net() -> DcnNet:
    return DcnNet().eval()


def test_dcn_walkthrough_export_then_compare_cli(tmp_path, capsys):
    """The README's CPU half: dcn-export --save-io, then dcn-compare on the saved outputs and on the weights."""
    _dcn_stack_or_skip()
    from exporter.cli import main as export_main

    onnx_path, io = tmp_path / "dcn.onnx", tmp_path / "io"
    rc = export_main(["--factory", "test_compare_cpu:make_dcn_net", "-o", str(onnx_path), "--input", "images:1x3x12x12",
                      "--output-names", "features", "--save-io", str(io), "--no-verify", "-q"])
    assert rc == 0, capsys.readouterr()
    model = onnx.load(str(onnx_path))
    assert sum(n.op_type == "DeformConv2d" and n.domain == "dcn" for n in model.graph.node) == 2
    report = tmp_path / "r.json"
    assert compare_main([str(io), str(onnx_path), "--report", str(report)]) == 0, capsys.readouterr().out
    rep = json.loads(report.read_text())
    assert rep["outputs"][0]["name"] == "features" and rep["outputs"][0]["passed"]
    assert rep["target"]["backend"] == "ONNX Runtime (CPU, dcn ops)"
    weights = tmp_path / "dcn_state.pt"
    torch.save(make_dcn_net().state_dict(), weights)
    assert compare_main([str(weights), str(onnx_path), "--factory", "test_compare_cpu:make_dcn_net", "--seed", "4"]) == 0
    out = capsys.readouterr().out
    assert "PASS: all 1 output(s) within tolerance" in out


class PoolNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        from exporter.ops import DeformPSROIPoolPack

        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 2 * 3 * 3, 1)
        self.pool = DeformPSROIPoolPack(spatial_scale=0.25, output_dim=2, group_size=3, pooled_size=3,
                                        sample_per_part=2, trans_std=0.1)
        with torch.no_grad():
            self.pool.offset_conv.weight.normal_(0, 0.3)

    def forward(self, images, rois):
        return self.pool(self.conv(images), rois)


def test_psroi_pool_model_pytorch_vs_onnxruntime_passes(tmp_path):
    export = _dcn_stack_or_skip()
    from polygraphy.json import save_json

    net = PoolNet().eval()
    images = torch.rand(1, 3, 16, 16)
    rois = torch.tensor([[0, 4.0, 4.0, 40.0, 36.0], [0, 0.0, 10.0, 63.0, 30.0], [0, 30.5, 2.5, 50.5, 60.0]])
    path = tmp_path / "pool.onnx"
    export(net, (images, rois), str(path), input_names=["images", "rois"], output_names=["pooled"], verify=False)
    inputs = tmp_path / "inputs.json"
    save_json([OrderedDict(images=images.numpy(), rois=rois.numpy())], str(inputs))
    out = compare(net, str(path), load_inputs=str(inputs), report=str(tmp_path / "r.json"), log=lambda *_: None)
    assert out.passed, out.report["outputs"]


def test_plot_without_matplotlib_is_a_usage_error_before_running(small, tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)
    with pytest.raises(DcnError, match=r"--plot needs matplotlib .*dcn-deploy\[plot\]"):
        compare(small["net"], str(small["onnx"]), input_shapes=["images:1x3x8x8"], plot=str(tmp_path / "p"),
                log=lambda *_: None)
    assert not (tmp_path / "p").exists()
