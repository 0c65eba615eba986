"""exporter.export: every supported module kind, attributes equal to the modules' parameters,
numerics (the ONNX model run independently of the exporter's own check), dynamic axes,
float16, the standard-op mode, Polygraphy I/O and the graph's quality."""
from __future__ import annotations

import copy
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import helper

from helpers import export_models as em
import exporter
from exporter import verify
from exporter.contract import DOMAIN, is_dcn_node
from exporter.ops.deform_conv2d.spec import SPEC as DEFORM_CONV2D
from exporter.ops.deform_psroi_pool.spec import SPEC as DEFORM_PSROI_POOL
from dcn_base.errors import DcnError
from exporter.export import CheckError
from exporter.onnx_post import max_ir_version_for_onnxruntime
from dcn_base.tolerance import tolerance
from helpers.ci_policy import require_module


# --------------------------------------------------------------------------- helpers
def attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def dcn_nodes(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    return {n.name: n for n in model.graph.node if is_dcn_node(n)}


def conv_attrs_of(module, offset_group=None) -> dict:
    """What the node must say, from the module's own parameters (pads as top, left, bottom, right).

    torchvision's module has no offset-group attribute (it follows from the offset): pass it."""
    pair = torch.nn.modules.utils._pair
    padding = module.padding if isinstance(module.padding, tuple) and len(module.padding) == 4 else \
        (*pair(module.padding), *pair(module.padding))
    if offset_group is None:
        offset_group = getattr(module, "deform_groups", getattr(module, "deformable_groups", None))
    return {
        "strides": list(pair(module.stride)), "pads": list(padding), "dilations": list(pair(module.dilation)),
        "group": module.groups, "offset_group": offset_group, "kernel_shape": list(module.weight.shape[2:]),
    }


def torch_out(model, inputs, dtype=torch.float64):
    """The model's outputs in float64 (the reference the tolerance table is stated against)."""
    m = copy.deepcopy(model).to(dtype).eval()
    with torch.no_grad():
        out = m(*[t.to(dtype) if t.is_floating_point() else t for t in inputs])
    out = out if isinstance(out, (tuple, list)) else (out,)
    return [o.numpy() for o in out]


def run_onnx(model: onnx.ModelProto, feed: dict, how: str) -> list[np.ndarray]:
    """Run independently of the exporter: 'reference' (ONNX reference evaluator + our reference ops)
    or 'ort-standard' (ONNX Runtime, dcn::DeformConv2d as the standard DeformConv)."""
    if how == "reference":
        return verify.make_runner(model, prefer="reference").run(feed)
    sess = ort.InferenceSession(verify.as_standard_ops(model).SerializeToString(),
                                providers=["CPUExecutionProvider"])
    return sess.run(None, feed)


def assert_close(got, ref, dtype="float32", name="output"):
    atol, rtol = tolerance(dtype)
    err = verify.compare(name, got, ref, atol, rtol)
    assert err.passed, f"{name}: max abs {err.max_abs:.3g}, {err.worst:.3g} of tolerance"
    return err


def check_numerics(model_proto, torch_model, inputs, names, hows=("reference", "ort-standard"), dtype="float32"):
    refs = torch_out(torch_model, inputs)
    feed = {n: t.numpy() for n, t in zip(names, inputs)}
    for how in hows:
        for i, (got, ref) in enumerate(zip(run_onnx(model_proto, feed, how), refs)):
            assert_close(got, ref, dtype, f"{how} output {i}")


# --------------------------------------------------------------------------- our modules
@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    torch.manual_seed(0)
    model = em.randomize_offsets(em.OursZoo()).eval()
    x = torch.randn(2, 3, 13, 17)
    path = tmp_path_factory.mktemp("zoo") / "zoo.onnx"
    result = exporter.export(model, (x,), path, input_names=["images"], check=True)
    return model, x, result, onnx.load(str(path))


def test_ours_nodes_named_by_module_path_with_module_attributes(zoo):
    model, _, result, proto = zoo
    nodes = dcn_nodes(proto)
    assert set(nodes) == {"v1", "v2", "plain_v1", "plain_v2"} == set(result.dcn_nodes)
    for name, node in nodes.items():
        module = model.get_submodule(name)
        assert node.op_type == DEFORM_CONV2D.op_type and node.domain == DOMAIN
        assert attrs(node) == conv_attrs_of(module), name
        w = next(t for t in proto.graph.initializer if t.name == node.input[1])
        np.testing.assert_array_equal(onnx.numpy_helper.to_array(w), module.weight.detach().numpy())
    # the asymmetric cases, spelled out: the H/W swap is impossible
    assert attrs(nodes["v1"])["strides"] == [2, 1] and attrs(nodes["v1"])["pads"] == [1, 2, 0, 1]
    assert attrs(nodes["v1"])["dilations"] == [1, 2] and attrs(nodes["v1"])["kernel_shape"] == [3, 5]
    assert attrs(nodes["v2"])["kernel_shape"] == [5, 3] and attrs(nodes["v2"])["pads"] == [2, 1, 1, 0]


def test_ours_numerics(zoo):
    model, x, result, proto = zoo
    assert result.check is not None and result.check.passed
    check_numerics(proto, model, (x,), ["images"])


def test_h_w_swap_is_caught_numerically(zoo):
    """The numerics test would see a swapped attribute: swap strides/pads on a copy and it fails."""
    model, x, _, proto = zoo
    bad = copy.deepcopy(proto)
    node = dcn_nodes(bad)["v1"]
    for a in node.attribute:
        if a.name == "dilations":
            a.ints[:] = list(reversed(a.ints))
    refs = torch_out(model, (x,))
    try:
        got = run_onnx(bad, {"images": x.numpy()}, "reference")
    except DcnError as e:  # the swapped geometry no longer fits the offset's shape
        assert "offset has shape" in str(e)
    else:
        atol, rtol = tolerance("float32")
        assert not verify.compare("output", got[0], refs[0], atol, rtol).passed


# --------------------------------------------------------------------------- torchvision
def test_torchvision_modules_and_functional_call(tmp_path):
    torch.manual_seed(1)
    model = em.randomize_offsets(em.TorchvisionNet()).eval()
    x = torch.randn(1, 4, 9, 11)
    result = exporter.export(model, (x,), tmp_path / "tv.onnx", input_names=["x"])
    proto = result.model
    nodes = dcn_nodes(proto)
    assert set(nodes) == {"dcn", "dcn2", "deform_conv2d_2"}
    assert attrs(nodes["dcn"]) == conv_attrs_of(model.dcn, offset_group=2) == {
        "strides": [2, 1], "pads": [1, 2, 1, 2], "dilations": [1, 1], "group": 2, "offset_group": 2,
        "kernel_shape": [3, 5]}
    assert attrs(nodes["dcn2"]) == conv_attrs_of(model.dcn2, offset_group=1)
    assert len(nodes["dcn"].input) == 3  # DCNv1 without bias: torchvision's zero bias dropped
    assert len(nodes["dcn2"].input) == 5  # DCNv2 with bias
    assert len(nodes["deform_conv2d_2"].input) == 3 and attrs(nodes["deform_conv2d_2"])["kernel_shape"] == [1, 3]
    check_numerics(proto, model, (x,), ["x"])


# --------------------------------------------------------------------------- mmcv / detectron2
def test_mmcv_and_detectron2_stand_ins_are_swapped(tmp_path):
    torch.manual_seed(2)
    model = em.randomize_offsets(em.ThirdPartyNet(), std=0.3).eval()
    x = torch.randn(1, 3, 12, 14)
    with pytest.raises(Exception):  # the stand-ins, like the real ones, cannot be traced themselves
        torch.export.export(copy.deepcopy(model), (x,), strict=False)
    result = exporter.export(model, (x,), tmp_path / "tp.onnx", input_names=["x"], check=True)
    assert [s.path for s in result.swaps] == ["backbone.1", "backbone.2", "mmcv_plain", "mmcv_mod", "d2", "d2_mod"]
    nodes = dcn_nodes(result.model)
    assert set(nodes) == {s.path for s in result.swaps}
    for name, node in nodes.items():
        assert attrs(node) == conv_attrs_of(model.get_submodule(name)), name
    assert len(nodes["backbone.1"].input) == 3  # mmcv DCNv1: no bias
    assert len(nodes["mmcv_mod"].input) == 5  # DCNv2 without bias: zeros for B
    assert len(nodes["d2_mod"].input) == 5
    # numerics against the stand-ins themselves (torchvision's kernels), not the swapped copy
    check_numerics(result.model, model, (x,), ["x"])


def test_real_mmcv_swapped(tmp_path):
    ops = require_module("mmcv.ops", reason="mmcv is not installed (bash scripts/setup.sh installs it from ../shared/wheels)")
    model = torch.nn.Sequential(ops.ModulatedDeformConv2dPack(4, 4, 3, padding=1)).eval()
    result = exporter.export(model, torch.randn(1, 4, 8, 8), tmp_path / "mmcv.onnx", check=True)
    assert list(result.dcn_nodes) == ["0"]


def test_real_detectron2_swapped(tmp_path):
    layers = pytest.importorskip("detectron2.layers", reason="detectron2 is not installed (not on PyPI; "
                                                              "built from source with its C++ extension)")

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.off = torch.nn.Conv2d(4, 18, 3, padding=1)
            self.dcn = layers.DeformConv(4, 4, 3, padding=1)

        def forward(self, x):
            return self.dcn(x, self.off(x))

    result = exporter.export(Net().eval(), torch.randn(1, 4, 8, 8), tmp_path / "d2.onnx", check=True)
    assert list(result.dcn_nodes) == ["dcn"]


def test_mmcv_deform_roi_pool_becomes_deform_roi_pool(tmp_path):
    """mmcv's DeformRoIPool (stand-in) is swapped for ours and exported as dcn::DeformRoIPool."""
    result = exporter.export(em.MmcvRoIPoolNet(), (torch.randn(1, 4, 8, 8), em.rois_for(1, 32, 32)),
                             tmp_path / "x.onnx", input_names=["feat", "rois"], check=True)
    assert result.dcn_nodes == {"head.pool": "DeformRoIPool"} and result.check.passed
    node = next(n for n in result.model.graph.node if n.op_type == "DeformRoIPool")
    assert list(node.input) == ["feat", "rois"]


# --------------------------------------------------------------------------- pooling
def test_psroi_pooling_with_rois_input_and_learned_trans(tmp_path):
    torch.manual_seed(3)
    model = em.randomize_offsets(em.PSRoINet(), std=1.0).eval()
    images, rois = torch.randn(2, 4, 10, 12), em.rois_for(2, 40, 48, r=6)
    result = exporter.export(model, (images, rois), tmp_path / "ps.onnx", input_names=["images", "rois"],
                             dynamic={"rois": {0: "num_rois"}}, check=True)
    proto = result.model
    nodes = dcn_nodes(proto)
    assert set(nodes) == {"head/deform_psroi_pool", "head/deform_psroi_pool_1"}
    offsets, main = nodes["head/deform_psroi_pool"], nodes["head/deform_psroi_pool_1"]
    head = model.head
    for node, output_dim, no_trans in ((offsets, 2, 1), (main, head.output_dim, 0)):
        a = attrs(node)
        assert node.op_type == DEFORM_PSROI_POOL.op_type
        assert a["spatial_scale"] == pytest.approx(head.spatial_scale) and a["output_dim"] == output_dim
        assert (a["group_size"], a["pooled_size"], a["part_size"]) == (head.group_size, head.pooled_size,
                                                                      head.part_size)
        assert a["sample_per_part"] == head.sample_per_part and a["trans_std"] == pytest.approx(head.trans_std)
        assert a["no_trans"] == no_trans and len(node.input) == 3 - no_trans
    assert main.input[1] == "rois" and main.input[2] == offsets.output[0]
    rois_in = next(i for i in proto.graph.input if i.name == "rois")
    assert rois_in.type.tensor_type.shape.dim[0].dim_param == "num_rois"
    for r in (6, 11):  # the dynamic RoI count
        check_numerics(proto, model, (images, em.rois_for(2, 40, 48, r=r, seed=r)), ["images", "rois"],
                       hows=("reference",))


def test_plain_deformable_roi_pooling_head(tmp_path):
    model = em.PlainRoINet().eval()
    inputs = (torch.randn(2, 4, 8, 8), em.rois_for(2, 32, 32))
    result = exporter.export(model, inputs, tmp_path / "roi.onnx", input_names=["features", "rois"],
                             runtime="reference", check=True)
    assert [attrs(n)["group_size"] for n in dcn_nodes(result.model).values()] == [1, 1]
    assert "reference evaluator" in result.check.runtime


# --------------------------------------------------------------------------- dynamic axes
def test_dynamic_axes_three_sizes(tmp_path):
    torch.manual_seed(4)
    model = em.randomize_offsets(torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, stride=2, padding=1),
        em.ModulatedDeformConv2dPack(4, 4, 3, stride=(2, 1), padding=(1, 1, 0, 1), deform_groups=2),
        em.DeformConv2dPack(4, 4, (1, 3), padding=(0, 1)),
    )).eval()
    result = exporter.export(model, torch.randn(1, 3, 16, 16), tmp_path / "dyn.onnx", input_names=["images"],
                             dynamic={"images": {0: "batch", 2: "height", 3: "width"}}, check=True)
    proto = result.model
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]
    shapes = {vi.name: vi.type.tensor_type.shape for vi in list(proto.graph.value_info) + list(proto.graph.output)}
    for node in dcn_nodes(proto).values():  # symbolic output shapes of the custom nodes
        d = shapes[node.output[0]].dim
        assert d[0].dim_param == "batch" and d[1].dim_value == 4
        assert "height" in d[2].dim_param and "width" in d[3].dim_param
    for shape in ((1, 3, 16, 16), (3, 3, 21, 13), (2, 3, 9, 30)):
        check_numerics(proto, model, (torch.randn(shape),), ["images"], hows=("ort-standard",))


def test_dynamic_axis_the_model_fixes_is_an_error(tmp_path):
    class Flat(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.dcn = em.DeformConv2dPack(3, 2, 3, padding=1)
            self.fc = torch.nn.Linear(2 * 8 * 8, 3)

        def forward(self, x):
            return self.fc(self.dcn(x).flatten(1))

    with pytest.raises(DcnError, match=r"dynamic axis 2 \(height\) of input 'x': the model fixes it to 8"):
        exporter.export(Flat().eval(), torch.randn(1, 3, 8, 8), tmp_path / "f.onnx",
                        dynamic={"x": {0: "batch", 2: "height"}})
    assert not list(tmp_path.iterdir())

    class OffsetInput(torch.nn.Module):  # the offset an input of its own: its batch ties X's (the op's shapes)
        def __init__(self):
            super().__init__()
            self.dcn = exporter.ops.DeformConv2d(4, 4, 3, padding=1)

        def forward(self, x, off):
            return self.dcn(x, off)

    with pytest.raises(DcnError, match=r"dynamic axis 0 \(batch\) of input 'x': the model fixes it to 2"):
        exporter.export(OffsetInput().eval(), (torch.randn(2, 4, 8, 8), torch.randn(2, 18, 8, 8)), tmp_path / "o.onnx",
                        dynamic={"x": {0: "batch"}})
    res = exporter.export(OffsetInput().eval(), (torch.randn(2, 4, 8, 8), torch.randn(2, 18, 8, 8)),
                          tmp_path / "o.onnx", dynamic={"x": {0: "batch"}, "off": {0: "batch"}})
    assert [d.dim_param or d.dim_value for d in res.model.graph.input[1].type.tensor_type.shape.dim] == \
        ["batch", 18, 8, 8]


# --------------------------------------------------------------------------- modes and precision
def test_standard_deform_conv_mode(tmp_path):
    model = em.small_dcn()
    x = torch.randn(1, 3, 9, 7)
    result = exporter.export(model, x, tmp_path / "std.onnx", deform_conv="onnx", check=True)
    proto = result.model
    assert not [n for n in proto.graph.node if n.domain == DOMAIN]
    assert DOMAIN not in {o.domain for o in proto.opset_import}
    (node,) = [n for n in proto.graph.node if n.op_type == "DeformConv"]
    assert node.name == "2" and attrs(node) == conv_attrs_of(model[2])
    assert result.check.runtime == "onnxruntime"  # plain ONNX Runtime, no custom op
    with pytest.raises(DcnError, match="needs opset >= 19; got opset 18"):
        exporter.export(model, x, tmp_path / "old.onnx", deform_conv="onnx", opset=18)
    assert not (tmp_path / "old.onnx").exists()


def test_float16_model(tmp_path):
    model = em.small_dcn()
    x = torch.randn(1, 3, 10, 10)
    result = exporter.export(model, x, tmp_path / "half.onnx", fp16=True, check=True)
    proto = result.model
    assert result.check.dtype == "float16" and result.check.passed
    types = {vi.name: vi.type.tensor_type.elem_type for vi in
             list(proto.graph.value_info) + list(proto.graph.input) + list(proto.graph.output)}
    types.update({t.name: t.data_type for t in proto.graph.initializer})
    (node,) = [n for n in proto.graph.node if n.domain == DOMAIN]
    assert node.name == "2"  # the float16 wrapper does not show in names
    assert {types[i] for i in node.input} == {onnx.TensorProto.FLOAT16}
    assert "2.weight" in types and types["2.weight"] == onnx.TensorProto.FLOAT16
    assert [i.type.tensor_type.elem_type for i in proto.graph.input] == [onnx.TensorProto.FLOAT]
    assert [o.type.tensor_type.elem_type for o in proto.graph.output] == [onnx.TensorProto.FLOAT]
    out = run_onnx(proto, {"input": x.numpy()}, "reference")[0]
    assert_close(out, torch_out(model, (x,))[0], "float16")

    result = exporter.export(model, x, tmp_path / "half_io.onnx", fp16_io=True, check=True)
    assert [i.type.tensor_type.elem_type for i in result.model.graph.input] == [onnx.TensorProto.FLOAT16]
    assert [o.type.tensor_type.elem_type for o in result.model.graph.output] == [onnx.TensorProto.FLOAT16]


# --------------------------------------------------------------------------- I/O, quality, failures
def test_save_io_polygraphy_json(tmp_path):
    from polygraphy.comparator import RunResults
    from polygraphy.json import load_json

    model = em.psroi_net()
    images, rois = torch.randn(1, 4, 8, 8), em.rois_for(1, 32, 32)
    exporter.export(model, (images, rois), tmp_path / "m.onnx", input_names=["images", "rois"],
                    save_io=tmp_path / "io")
    feeds = load_json(str(tmp_path / "io" / "inputs.json"))
    assert len(feeds) == 1 and list(feeds[0]) == ["images", "rois"]
    np.testing.assert_array_equal(feeds[0]["rois"], rois.numpy())
    results = RunResults.load(str(tmp_path / "io" / "outputs.json"))
    assert [name for name, _ in results] == ["pytorch", "pytorch-own"]  # float64 truth, float32 PyTorch
    (iteration,) = results["pytorch"]
    assert list(iteration.keys()) == ["output"] and iteration["output"].dtype == np.float32
    np.testing.assert_allclose(iteration["output"], torch_out(model, (images, rois))[0], rtol=1e-6, atol=1e-7)


def test_graph_quality(zoo, tmp_path):
    _, _, result, proto = zoo
    onnx.checker.check_model(str(result.path), full_check=True)
    assert {o.domain: o.version for o in proto.opset_import}[DOMAIN] == 1
    ort_ir = max_ir_version_for_onnxruntime()
    assert proto.ir_version <= ort_ir
    ort.InferenceSession(verify.as_standard_ops(proto).SerializeToString(),
                         providers=["CPUExecutionProvider"])  # ORT loads this IR version
    names = [n.name for n in proto.graph.node]
    assert len(names) == len(set(names))
    shapes = {vi.name for vi in list(proto.graph.value_info) + list(proto.graph.output)}
    assert all(n.output[0] in shapes for n in dcn_nodes(proto).values())
    assert not [p for p in os.listdir(result.path.parent) if p.startswith(".")]  # no temp files left
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(result.path).st_mode & 0o777 == 0o666 & ~umask  # the usual mode, not mkstemp's 0600


def test_check_failure_writes_nothing(tmp_path):
    out = tmp_path / "noisy.onnx"
    out.write_bytes(b"previous")
    with pytest.raises(CheckError, match=r"check \(.*\) FAIL: output: max abs .*; nothing written") as e:
        exporter.export(em.noisy_net(), torch.randn(1, 3, 6, 6), out, check=True)
    assert e.value.exit_code == 1
    assert out.read_bytes() == b"previous" and sorted(p.name for p in tmp_path.iterdir()) == ["noisy.onnx"]


def test_scripted_model_with_dcn_ops(tmp_path):
    model = em.small_dcn()
    scripted = torch.jit.script(model)
    x = torch.randn(1, 3, 8, 8)
    result = exporter.export(scripted, x, tmp_path / "ts.onnx", check=True)
    assert list(result.dcn_nodes) == ["2"]  # named by its parameter's module path
    assert attrs(dcn_nodes(result.model)["2"]) == conv_attrs_of(model[2])


def test_api_argument_errors(tmp_path):
    model, x = em.small_dcn(), torch.randn(1, 3, 8, 8)
    cases = [
        (dict(deform_conv="trt"), "deform_conv is 'trt', expected one of plugin, onnx"),
        (dict(opset=9), "opset 9 is not supported"),
        (dict(input_names=["a", "b"]), r"input names \['a', 'b'\]: expected 1 distinct names"),
        (dict(dynamic={"nope": {0: "b"}}), "dynamic axes for input 'nope': no such input; inputs are input"),
        (dict(dynamic={"input": {7: "b"}}), "dynamic axis 7 of input 'input': out of range for rank 4"),
        (dict(output_names=["a", "b"]), "the model returns 1 tensors"),
    ]
    for kwargs, message in cases:
        with pytest.raises(DcnError, match=message):
            exporter.export(model, x, tmp_path / "m.onnx", **kwargs)
    with pytest.raises(DcnError, match="output 'm_dir' is a directory|is a directory, expected a file path"):
        (tmp_path / "m_dir").mkdir()
        exporter.export(model, x, tmp_path / "m_dir")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m_dir"]


def test_an_ops_contract_error_in_the_pytorch_run_names_the_module(tmp_path):
    """An op's own check during the PyTorch run (a 9-channel offset, a stride past the limit) said only
    'DeformConv2d: ...' (or "DeformConv2d '': ..."): now the module path and class as well, one line."""
    from exporter.ops import DeformConv2d

    class Net(torch.nn.Module):
        def __init__(self, stride):
            super().__init__()
            self.backbone = torch.nn.Module()
            self.backbone.dcn = DeformConv2d(4, 4, 3, stride=stride, padding=1)

        def forward(self, x, off):
            return self.backbone.dcn(x, off)

    x = torch.randn(1, 4, 8, 8)
    cases = [(1, torch.randn(1, 9, 8, 8), r"in module 'backbone.dcn' \(exporter\.ops\..*DeformConv2d\): "
                                           r"DeformConv2d: offset has 9 channels"),
             (2000, torch.randn(1, 18, 1, 1), r"in module 'backbone.dcn' .*: DeformConv2d: attribute strides = "
                                               r"\[2000, 2000\], expected values <= 1024 \(limit\)$")]
    for stride, off, message in cases:
        with pytest.raises(DcnError, match=message) as e:
            exporter.export(Net(stride).eval(), (x, off), tmp_path / "m.onnx")
        assert "\n" not in str(e.value) and "''" not in str(e.value)
    assert not (tmp_path / "m.onnx").exists()


def test_float16_keeps_reference_points_float32_unless_a_learned_layer_takes_them(tmp_path):
    """The float32 probe follows an input to the sampling locations through the ops that move, scale or
    reshape it: an MSDA layer's reference points stay float32 in FP16. DINO / Deformable DETR decoders also
    embed them (sine, then Linear) into the query: a half layer must take them there, so they stay in the
    run's precision and the FP16 export passes (kept float32, the export failed ONNX shape inference)."""
    from helpers import user_path_models as upm
    from exporter.reference_runs import rois_positions

    class Dino(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = upm.msda_layer()
            self.ref_head = torch.nn.Linear(4, 16)

        def forward(self, query, value, reference_points):
            return self.inner(query + self.ref_head(reference_points.flatten(2)), value, reference_points)

    g = torch.Generator().manual_seed(0)
    ins = (torch.randn(1, 6, 16, generator=g), torch.randn(1, 100, 16, generator=g), torch.rand(1, 6, 2, 2, generator=g))
    names = ["query", "value", "reference_points"]
    assert rois_positions(upm.msda_layer(), ins, names) == [2]
    dino = Dino().eval()
    assert rois_positions(dino, ins, names) == []
    res = exporter.export(dino, ins, tmp_path / "d.onnx", input_names=names, fp16=True, check=True)
    assert res.check.passed


def test_dcn_node_named_after_its_weight_without_the_float16_wrappers_prefix():
    """A node without module scope (a TorchScript input) is named after its weight's path; in a float16 export
    that name still carries the float16 wrapper's prefix 'model.', which names no module of the user's model."""
    from onnx import helper

    from exporter.onnx_post import _name_dcn_nodes

    for weight, strip in (("layer1.conv.weight", None), ("model.layer1.conv.weight", "model")):
        node = helper.make_node("DeformConv2d", ["x", weight, "off"], ["y"], domain="dcn", name="node_deform_conv2d")
        assert _name_dcn_nodes(helper.make_model(helper.make_graph([node], "g", [], [])), strip) == \
            {"layer1.conv": "DeformConv2d"}


def test_an_onnxruntime_too_old_for_the_opset_is_named(monkeypatch):
    """An onnxruntime that reads an IR below what the model's opsets need: named in one line, not a model written
    with an IR that claims less than its opsets need (it was lowered silently)."""
    from onnx import TensorProto, helper

    from exporter import onnx_post

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)], ir_version=11)
    monkeypatch.setattr(onnx_post, "max_ir_version_for_onnxruntime", lambda: 10)
    with pytest.raises(DcnError, match=r"opsets \(ai.onnx 23\) need ONNX IR 11, but the installed onnxruntime .* "
                                       r"reads at most IR 10: upgrade onnxruntime, or export with a lower opset"):
        onnx_post.check_graph(model)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)], ir_version=11)
    assert onnx_post.check_graph(model).ir_version == 10  # lowered where the opsets allow it (opset 19: IR 9)
