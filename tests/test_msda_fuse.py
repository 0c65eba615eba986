"""``dcn-export --fuse-msda``: the GridSample decomposition of multi-scale deformable attention, as mmcv's
``multi_scale_deformable_attn_pytorch`` is written to ONNX by torch's exporters (TorchScript-based, as
RT-DETR's and mmdeploy's tools use it, and dynamo), rewritten to one dcn::MultiScaleDeformableAttention
node and checked by the export's comparison: an ONNX file against the original graph (dcn-export
MODEL.onnx), a PyTorch model against PyTorch (exporter.export(rewrites=...)); dcn-compare on the saved
I/O; dynamic batch and queries; float16; level shapes computed in the graph; what does not match is left
alone and named."""
from __future__ import annotations

import copy

import numpy as np
import onnx
import pytest
import torch

from dcn_base.errors import DcnError
from exporter import export, rewrites
from exporter.cli import main as export_main
from exporter.ops.multi_scale_deformable_attention import fuse
from helpers.built_libs import require
from trt_runtime import plugins
from trt_runtime.cli import compare_main
from helpers.ci_policy import require_module

mmcv_msda = require_module("mmcv.ops.multi_scale_deform_attn",
                           reason="mmcv (scripts/setup.sh installs it from ../shared/wheels)")

pytestmark = pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript-based ONNX export",
                                        "ignore:The feature will be removed", "ignore:Exporting a model while it is in")

SHAPES = [(6, 8), (3, 4), (2, 2)]
N, M, D, LQ, P = 2, 4, 8, 5, 2
S = sum(h * w for h, w in SHAPES)
NAMES = ["value", "sampling_locations", "attention_weights"]
DYNAMIC = {"value": {0: "N"}, "sampling_locations": {0: "N", 1: "Lq"}, "attention_weights": {0: "N", 1: "Lq"}}


@pytest.fixture(scope="module", autouse=True)
def lib():
    return require(plugins.ort_library)


class Core(torch.nn.Module):
    def forward(self, value, loc, w):
        return mmcv_msda.multi_scale_deformable_attn_pytorch(value, SHAPES, loc, w)


class Layer(torch.nn.Module):
    """A decoder cross-attention computing its core with mmcv's PyTorch function (nothing to swap)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.value_proj, self.output_proj = torch.nn.Linear(32, 32), torch.nn.Linear(32, 32)
        self.offsets, self.weights = torch.nn.Linear(32, M * 3 * P * 2), torch.nn.Linear(32, M * 3 * P)

    def forward(self, query, feat, ref):
        n, lq, _ = query.shape
        value = self.value_proj(feat).view(n, -1, M, D)
        loc = ref[:, :, None, None, None, :] + self.offsets(query).view(n, lq, M, 3, P, 2) * 0.1
        w = self.weights(query).view(n, lq, M, 3 * P).softmax(-1).view(n, lq, M, 3, P)
        return self.output_proj(mmcv_msda.multi_scale_deformable_attn_pytorch(value, SHAPES, loc, w))


def inputs(n=N, lq=LQ, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    return {"value": rng.standard_normal((n, S, M, D)).astype(dtype),
            "sampling_locations": rng.uniform(-0.2, 1.2, (n, lq, M, 3, P, 2)).astype(dtype),
            "attention_weights": rng.uniform(0, 1, (n, lq, M, 3, P)).astype(dtype)}


def write_core(path, *, dynamo=False, opset=16, dynamic=True, half=False):
    model = Core().half() if half else Core()
    args = tuple(torch.from_numpy(a) for a in inputs(dtype=np.float16 if half else np.float32).values())
    kw = dict(input_names=NAMES, output_names=["out"], opset_version=opset, dynamo=dynamo)
    if dynamic and not dynamo:
        kw["dynamic_axes"] = DYNAMIC
    torch.onnx.export(model, args, str(path), **kw)
    return path


def save_feeds(tmp_path, feed):
    args = []
    for name, a in feed.items():
        np.save(tmp_path / f"{name}.npy", a)
        args += ["--input", f"{name}={tmp_path / f'{name}.npy'}"]
    return args


def op_types(path):
    return [n.op_type for n in onnx.load(str(path)).graph.node]


@pytest.mark.parametrize("dynamo, opset", [(False, 16), (False, 17), (True, 18)], ids=["ts16", "ts17", "dynamo18"])
def test_onnx_file_of_mmcv_core_is_fused_and_checked(tmp_path, capsys, dynamo, opset):
    src = write_core(tmp_path / "core.onnx", dynamo=dynamo, opset=opset)
    assert op_types(src).count("GridSample") == 3
    out = tmp_path / "fused.onnx"
    argv = [str(src), "--fuse-msda", "-o", str(out), "--save-io", str(tmp_path / "io"), "--check",
            *save_feeds(tmp_path, inputs())]
    assert export_main(argv) == 0
    text = capsys.readouterr().out
    assert "check (onnxruntime + dcn ops vs the original graph on onnxruntime) PASS" in text, text
    assert op_types(out) == ["MultiScaleDeformableAttention"]  # the whole core is one node
    assert compare_main([str(tmp_path / "io"), str(out)]) == 0
    assert "PASS: all 1 output(s) within tolerance" in capsys.readouterr().out
    if not dynamo:  # dynamic batch and queries survive
        feed = inputs(n=3, lq=7, seed=1)
        got = plugins.ort_session(str(out)).run(None, feed)[0]
        want = Core()(*(torch.from_numpy(a) for a in feed.values())).numpy()
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-4)


def test_pytorch_model_with_the_decomposition_is_fused_and_checked_against_pytorch(tmp_path):
    args = (torch.randn(2, 5, 32), torch.randn(2, S, 32), torch.rand(2, 5, 2))
    dyn = {"query": {0: "N", 1: "Lq"}, "feat": {0: "N"}, "ref": {0: "N", 1: "Lq"}}
    r = export(Layer().eval(), args, tmp_path / "layer.onnx", rewrites=["fuse-msda"], check=True, dynamic=dyn)
    assert r.check.passed and r.check.reference == "PyTorch float64"
    assert list(r.dcn_nodes.values()) == ["MultiScaleDeformableAttention"]
    types = op_types(tmp_path / "layer.onnx")
    assert "GridSample" not in types and types.count("MultiScaleDeformableAttention") == 1
    with pytest.raises(DcnError, match=r"--fuse-msda: found no GridSample decomposition"):
        export(torch.nn.Linear(4, 4), torch.randn(2, 4), tmp_path / "x.onnx", rewrites=["fuse-msda"])


def test_level_shapes_computed_in_the_graph(tmp_path, monkeypatch):
    """Where the maps' sizes are not static, spatial_shapes / level_start_index come from Shape and CumSum."""
    monkeypatch.setattr(fuse, "_static_hw", lambda g, x: None)
    model, written = rewrites.apply(onnx.load(str(write_core(tmp_path / "core.onnx"))), ["fuse-msda"])
    assert len(written) == 1 and "CumSum" in [n.op_type for n in model.graph.node]
    feed = inputs(n=3, lq=4)
    got = plugins.ort_session(model.SerializeToString()).run(None, feed)[0]
    want = Core()(*(torch.from_numpy(a) for a in feed.values())).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-4)


def test_float16_graph_keeps_locations_float32(tmp_path, capsys):
    src = write_core(tmp_path / "half.onnx", half=True, dynamic=False)
    out = tmp_path / "fused.onnx"
    assert export_main([str(src), "--fuse-msda", "-o", str(out), "--check",
                        *save_feeds(tmp_path, inputs(dtype=np.float16))]) == 0
    assert "float16 tolerance" in capsys.readouterr().out
    m = onnx.load(str(out))
    node = next(n for n in m.graph.node if n.op_type == "MultiScaleDeformableAttention")
    cast = next(n for n in m.graph.node if n.output[0] == node.input[3])
    assert cast.op_type == "Cast" and cast.attribute[0].i == onnx.TensorProto.FLOAT


def test_a_graph_that_differs_is_left_alone(tmp_path, capsys):
    """align_corners=1 is not the op: nothing fused, one-line error, exit 2; and the options that mean
    nothing for an ONNX file are refused."""
    src = write_core(tmp_path / "core.onnx")
    m = onnx.load(str(src))
    for n in m.graph.node:
        if n.op_type == "GridSample":
            next(a for a in n.attribute if a.name == "align_corners").i = 1
    onnx.save(m, str(tmp_path / "corners.onnx"))
    assert rewrites.apply(copy.deepcopy(m), [])[1] == {}
    feeds = save_feeds(tmp_path, inputs())
    assert export_main([str(tmp_path / "corners.onnx"), "--fuse-msda", "-o", str(tmp_path / "x.onnx"), *feeds]) == 2
    assert "--fuse-msda: found no GridSample decomposition of multi-scale deformable attention" in capsys.readouterr().err
    assert export_main([str(src), "-o", str(tmp_path / "x.onnx")]) == 2
    assert "rewrites one only with an opt-in pass (--fuse-msda)" in capsys.readouterr().err
    assert export_main([str(src), "--fuse-msda", "--fp16", "-o", str(tmp_path / "x.onnx")]) == 2
    assert "--fp16: not for an ONNX model" in capsys.readouterr().err
    assert export_main([str(src), "--fuse-msda", "-o", str(tmp_path / "x.onnx")]) == 2  # symbolic dims
    assert "give --input value:SHAPE" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()


def test_a_wrong_rewrite_fails_the_check_and_writes_nothing(tmp_path, capsys, monkeypatch):
    """The check is the safety net: a rewrite that computed something else (here: levels swapped) is a
    mismatch, exit 1, nothing written."""
    real = fuse._Writer.levels

    def swapped(self):
        shapes, starts = real(self)
        init = {t.name: t for t in self.inits}
        if shapes in init:
            a = onnx.numpy_helper.to_array(init[shapes])[::-1].copy()
            init[shapes].CopyFrom(onnx.numpy_helper.from_array(a, shapes))
            st = np.concatenate([[0], np.cumsum(a[:, 0] * a[:, 1])[:-1]]).astype(np.int64)
            init[starts].CopyFrom(onnx.numpy_helper.from_array(st, starts))
        return shapes, starts

    monkeypatch.setattr(fuse._Writer, "levels", swapped)
    src = write_core(tmp_path / "core.onnx", dynamic=False)
    assert export_main([str(src), "--fuse-msda", "-o", str(tmp_path / "x.onnx"), "--check",
                        *save_feeds(tmp_path, inputs())]) == 1
    out = capsys.readouterr()
    assert "FAIL" in out.out and "nothing written" in out.err
    assert not (tmp_path / "x.onnx").exists()
