"""The float16 graph ``dcn-build`` makes for TensorRT 11 (trt_runtime.fp16_convert) keeps every input
an op's contract entry fixes to float32 (``Input(dtype="float32")``: RoIs, locations) float32 (and index
inputs, ``Input(dtype=INDEX)``, integer), for
every registered op: a single-node float32 model of each op (its reference.py ``example_inputs``),
converted, then run on ONNX Runtime with our float16 kernels, which refuse a float16 coordinate input.
The result is held to the float32 run within the float16 row of dcn_base.tolerance.

Each float32 input is also given the ways a real graph gives it: a graph input, an initializer, a
Constant node (both kept bit for bit, not rounded to float16 and cast back) and a value the graph
computes (computed in float32 from the float32 graph input, through moving ops; a learned layer's offsets
cast to float32 once). The conversion reads the entries only: a future op's entry is covered without a
line here (``test_a_future_op_is_covered_by_its_entry``).

Then what real graphs give the conversion (tests/helpers/fp16_models.py): dcn-export's own float32
MSDA layer, the graph's own casts to float32, two readers of one coordinate, a coordinate that is a graph
output, no value_info, unnamed nodes, initializers listed as inputs; and what it refuses in one line
(subgraphs, weights in external files, a model already computing in float16).
"""
from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from dcn_base.errors import DcnError
from dcn_base.tolerance import TOLERANCES, error_ratio, exact_dtype, tolerance
from exporter import contract, ops
from exporter.contract import INDEX, Input, OpSpec, specs
from helpers import fp16_models
from helpers.built_libs import require
from test_ort_ops import make_model
from trt_runtime import build_plan, fp16_convert, plugins
from trt_runtime.fp16_convert import convert_to_float16
from helpers.ci_policy import require_module

require_module("onnxconverter_common", reason="onnxconverter-common (the float16 conversion) not installed")

SOURCES = ("input", "initializer", "constant", "computed")


def _cases():
    for spec in specs():
        for source in SOURCES if spec.float32_inputs else SOURCES[:1]:
            yield pytest.param(spec, source, id=f"{spec.op_type}-{source}")


def _model(spec: OpSpec, inputs: dict, attrs: dict, source: str) -> onnx.ModelProto:
    """One node of the op; its float32 inputs given as ``source`` says."""
    f32 = [spec.inputs[i].name for i in spec.float32_inputs if inputs.get(spec.inputs[i].name) is not None]
    model = onnx.load_from_string(make_model(spec, inputs, attrs,
                                             initializers=f32 if source == "initializer" else ()))
    g = model.graph
    for name in f32 if source in ("constant", "computed") else ():
        g.input.remove(next(i for i in g.input if i.name == name))
        if source == "constant":
            g.node.insert(0, helper.make_node("Constant", [], [name],
                                              value=numpy_helper.from_array(inputs[name].astype(np.float32))))
        else:  # name = name_in * 1 (a float32 value the graph computes)
            g.input.append(helper.make_tensor_value_info(f"{name}_in", onnx.TensorProto.FLOAT, inputs[name].shape))
            g.initializer.append(numpy_helper.from_array(np.ones((), np.float32), f"{name}_one"))
            g.node.insert(0, helper.make_node("Mul", [f"{name}_in", f"{name}_one"], [name]))
    return model


def _types(model: onnx.ModelProto) -> dict[str, int]:
    g = onnx.shape_inference.infer_shapes(model).graph
    return ({vi.name: vi.type.tensor_type.elem_type for vi in list(g.value_info) + list(g.input)}
            | {t.name: t.data_type for t in g.initializer})


@pytest.mark.parametrize("spec, source", list(_cases()))
def test_fp16_conversion_keeps_the_contracts_float32_inputs(spec, source):
    require(plugins.ort_library)
    inputs, attrs = ops.part(spec.name, "reference").example_inputs()
    model = _model(spec, inputs, attrs, source)
    half = convert_to_float16(model)
    node = next(n for n in half.graph.node if n.op_type == spec.op_type)
    types = _types(half)
    consts = {t.name: numpy_helper.to_array(t) for t in half.graph.initializer}
    for i, inp in enumerate(spec.inputs):
        if i < len(node.input) and node.input[i]:
            want = {"float32": onnx.TensorProto.FLOAT, INDEX: onnx.TensorProto.INT64}.get(inp.dtype,
                                                                                  onnx.TensorProto.FLOAT16)
            assert types.get(node.input[i]) == want, (spec.op_type, inp.name, types.get(node.input[i]))
            if inp.dtype == "float32" and source in ("initializer", "constant"):  # the original, bit for bit
                assert consts[node.input[i]].dtype == np.float32
                assert consts[node.input[i]].tobytes() == inputs[inp.name].astype(np.float32).tobytes()
    assert not [t.name for t in half.graph.initializer
                if t.name not in {x for n in half.graph.node for x in n.input}], "unused initializers left"
    _assert_runs_like(model, half, _feed(model, inputs))


def _feed(model: onnx.ModelProto, inputs: dict) -> dict:
    """The example inputs by graph input (``<name>_in``: what a computed input is computed from)."""
    names = {i.name for i in model.graph.input}
    feed = {n: v for n, v in inputs.items() if v is not None and n in names}
    return feed | {f"{n}_in": inputs[n] for n in inputs if f"{n}_in" in names}


def _assert_runs_like(model: onnx.ModelProto, half: onnx.ModelProto, feed: dict) -> list[np.ndarray]:
    """ONNX Runtime (our ops library) accepts the float16 graph; its outputs are float32 (I/O kept) and
    within the float16 row of the float32 graph's. Returns the float16 graph's outputs."""
    require(plugins.ort_library)
    want = plugins.ort_session(model.SerializeToString()).run(None, feed)
    got = plugins.ort_session(half.SerializeToString()).run(None, feed)
    atol, rtol = tolerance("float16")
    for g, w in zip(got, want, strict=True):
        assert g.dtype == w.dtype and g.shape == w.shape  # float32 I/O kept
        assert error_ratio(g, w, atol * max(1.0, float(np.abs(w).max(initial=0))), rtol) <= 1.0
    return got


def test_a_future_op_is_covered_by_its_entry(monkeypatch):
    """An op the registry does not have yet: its entry's Input(dtype="float32") is all the conversion reads."""
    future = OpSpec(name="future_op", op_type="FutureOp", inputs=(Input("value"), Input("locations", dtype="float32")),
                    outputs=("Y",), attrs=(), torch_op="dcn::future_op")
    real = contract.ops
    monkeypatch.setattr(contract, "ops", lambda: real() | {future.op_type: future})
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4, 6, 6])
    loc = helper.make_tensor_value_info("loc", onnx.TensorProto.FLOAT, [1, 5, 2])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)
    nodes = [helper.make_node("Relu", ["x"], ["xr"]), helper.make_node("Sigmoid", ["loc"], ["ls"]),
             helper.make_node("FutureOp", ["xr", "ls"], ["y"], domain=contract.DOMAIN, name="f")]
    model = helper.make_model(helper.make_graph(nodes, "g", [x, loc], [y]),
                              opset_imports=[helper.make_opsetid("", 19), helper.make_opsetid(contract.DOMAIN, 1)])
    half = convert_to_float16(model)
    node = next(n for n in half.graph.node if n.op_type == "FutureOp")
    producer = {o: n for n in half.graph.node for o in n.output}
    sigmoid = producer[node.input[1]]  # what the locations are computed from: in float32, from the float32 input
    assert sigmoid.op_type == "Sigmoid" and list(sigmoid.input) == ["loc"]
    assert producer[node.input[0]].op_type == "Relu"  # the node's own type: float16


def test_the_conversion_names_no_op():
    src = (Path(__file__).resolve().parents[1] / "trt_runtime" / "fp16_convert.py").read_text()
    for spec in specs():
        assert not re.search(rf"{spec.op_type}|{spec.name}", src), spec.op_type


# --------------------------------------------------------------------------- what real graphs give the conversion
def _float32_specs():
    return [pytest.param(s, id=s.op_type) for s in specs() if s.float32_inputs]


def _example(spec: OpSpec):
    inputs, attrs = ops.part(spec.name, "reference").example_inputs()
    f32 = [spec.inputs[i].name for i in spec.float32_inputs if inputs.get(spec.inputs[i].name) is not None]
    return inputs, attrs, f32


def test_the_projects_own_float32_msda_export_converts(tmp_path):
    """dcn-export's float32 MultiScaleDeformableAttention layer (its offset normaliser: Cast(to=FLOAT) of the
    spatial shapes) converts to a graph ONNX Runtime runs, within the float16 row."""
    import torch

    from exporter.export import export
    from exporter.ops.multi_scale_deformable_attention.modules import MultiScaleDeformableAttention, start_index

    class Layer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = MultiScaleDeformableAttention(32, 4, 2, 2, batch_first=True)

        def forward(self, query, value, reference_points, spatial_shapes, level_start_index):
            return self.attn(query, value=value, reference_points=reference_points, spatial_shapes=spatial_shapes,
                             level_start_index=level_start_index)

    torch.manual_seed(0)
    shapes = torch.tensor([[6, 8], [3, 4]])
    args = (torch.randn(1, 5, 32), torch.randn(1, int((shapes[:, 0] * shapes[:, 1]).sum()), 32),
            torch.rand(1, 5, 2, 2), shapes, start_index(shapes))
    export(Layer().eval(), args, str(tmp_path / "msda.onnx"))
    model = onnx.load(str(tmp_path / "msda.onnx"))
    assert any(n.op_type == "Cast" and n.attribute[0].i == onnx.TensorProto.FLOAT for n in model.graph.node)
    _assert_runs_like(model, convert_to_float16(model), {i.name: a.numpy() for i, a in zip(model.graph.input, args)})


@pytest.mark.parametrize("case", ["cast", "cast_to_blocked", "cast_as_output", "value_float", "value_floats",
                                  "constant_of_shape"])
def test_the_graphs_own_float32_values_become_float16(case):
    """A Cast to float32, a Constant's value_float(s), a ConstantOfShape without value: float32 by an attribute,
    which the converter leaves float32 for float16 readers."""
    model, feed = fp16_models.own_float32(case)
    _assert_runs_like(model, convert_to_float16(model), feed)


def _computed(model: onnx.ModelProto, name: str, shape) -> None:
    """``name`` = name_in * one + name_q @ zeros: a coordinate the graph computes (moved, scaled) from a graph
    input, plus offsets a learned layer (MatMul) gives (zero here, so the values are the same); a learned
    layer reads it too (``name_pos``, a graph output: a position embedding)."""
    g = model.graph
    g.input.remove(next(i for i in g.input if i.name == name))
    g.input.append(helper.make_tensor_value_info(f"{name}_in", onnx.TensorProto.FLOAT, shape))
    g.input.append(helper.make_tensor_value_info(f"{name}_q", onnx.TensorProto.FLOAT, [*shape[:-1], 3]))
    g.initializer.extend([numpy_helper.from_array(np.ones((), np.float32), f"{name}_one"),
                          numpy_helper.from_array(np.zeros((3, shape[-1]), np.float32), f"{name}_w")])
    g.node.insert(0, helper.make_node("Mul", [f"{name}_in", f"{name}_one"], [f"{name}_moved"]))
    g.node.insert(1, helper.make_node("MatMul", [f"{name}_q", f"{name}_w"], [f"{name}_offsets"]))
    g.node.insert(2, helper.make_node("Add", [f"{name}_moved", f"{name}_offsets"], [name]))
    g.initializer.append(numpy_helper.from_array(np.full((shape[-1], 2), 0.25, np.float32), f"{name}_p"))
    g.node.append(helper.make_node("MatMul", [name, f"{name}_p"], [f"{name}_pos"]))
    g.output.append(helper.make_tensor_value_info(f"{name}_pos", onnx.TensorProto.FLOAT, None))


def _cone_types(half: onnx.ModelProto, value: str) -> dict[str, set[int]]:
    """{op type: element types of its outputs} over the backward cone of ``value``, stopping at MatMul."""
    types, producer = _types(half), {o: n for n in half.graph.node for o in n.output}
    found: dict[str, set[int]] = {}
    todo = [value]
    while todo:
        node = producer.get(todo.pop())
        if node is None:
            continue
        found.setdefault(node.op_type, set()).update(types.get(o) for o in node.output)
        if node.op_type != "MatMul":
            todo.extend(node.input)
    return found


@pytest.mark.parametrize("spec", _float32_specs())
def test_computed_coordinates_are_computed_in_float32(spec):
    """A float32 input the graph computes is computed in float32 (from the float32 graph input and constant),
    not in float16 and cast back; the learned layer's offsets stay float16 and are cast to float32 once. As a
    graph output too, it is the float32 value; a float16 reader reads it stored in float16."""
    inputs, attrs, f32 = _example(spec)
    model = onnx.load_from_string(make_model(spec, inputs, attrs))
    for name in f32:
        _computed(model, name, inputs[name].shape)
        model.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    half = convert_to_float16(model)
    node = next(n for n in half.graph.node if n.op_type == spec.op_type)
    types = _types(half)
    assert {types[o] for n in half.graph.node if n.op_type in ("Mul", "Add") for o in n.output} == \
        {onnx.TensorProto.FLOAT}  # no float16 copy of the coordinates' computation
    for name in f32:
        cone = _cone_types(half, node.input[spec.input_names.index(name)])
        assert cone.pop("MatMul") == {onnx.TensorProto.FLOAT16}, name
        assert cone.pop("Cast") == {onnx.TensorProto.FLOAT}, name  # the offsets, once
        assert cone == {"Add": {onnx.TensorProto.FLOAT}, "Mul": {onnx.TensorProto.FLOAT}}, (name, cone)
    feed = _feed(model, inputs)
    feed |= {i.name: np.ones([d.dim_value for d in i.type.tensor_type.shape.dim], np.float32)
             for i in model.graph.input if i.name.endswith("_q")}
    got = dict(zip([o.name for o in model.graph.output], _assert_runs_like(model, half, feed)))
    for name in f32:
        assert got[name].tobytes() == inputs[name].astype(np.float32).tobytes(), name


def test_large_rois_keep_their_float32_value():
    """RoIs at x = 1000.3 (a detector's decoded boxes, rois_in * 1): computed in float16 they reach the pooling
    as 1000.5, a quarter of a pixel off, beyond the float16 row."""
    rng = np.random.default_rng(0)
    data = rng.normal(size=(1, 2, 4, 1100)).astype(np.float32)
    rois = np.array([[0, 1000.3, 0.7, 1050.3, 3.2], [0, 700.3, 0.2, 730.6, 2.9]], np.float32)
    nodes = [helper.make_node("Mul", ["rois_in", "one"], ["rois"], name="decode"),
             helper.make_node("DeformRoIPool", ["data", "rois"], ["Y"], domain=contract.DOMAIN, name="pool",
                              pooled_height=2, pooled_width=7, spatial_scale=1.0, sampling_ratio=2, gamma=0.1)]
    model = fp16_models.model(nodes, [("data", data.shape), ("rois_in", rois.shape)], [("Y", None)],
                              [fp16_models.const("one", 1.0)], ours=True)
    _assert_runs_like(model, convert_to_float16(model), {"data": data, "rois_in": rois})


@pytest.mark.parametrize("spec", _float32_specs())
def test_two_nodes_reading_one_computed_coordinate(spec):
    """Two of our nodes (a box and a mask head) read one computed float32 input: one float32 value for both."""
    inputs, attrs, _ = _example(spec)
    model = _model(spec, inputs, attrs, "computed")
    g = model.graph
    second = copy.deepcopy(next(n for n in g.node if n.op_type == spec.op_type))
    second.name, second.output[0] = "n2", "Y2"
    g.node.append(second)
    g.output.append(helper.make_tensor_value_info("Y2", onnx.TensorProto.FLOAT, None))
    half = convert_to_float16(model)
    first, second = (n for n in half.graph.node if n.op_type == spec.op_type)
    for i in spec.float32_inputs:
        if i < len(first.input) and first.input[i]:
            assert first.input[i] == second.input[i]
    _assert_runs_like(model, half, _feed(model, inputs))  # ONNX Runtime: no duplicate definition


@pytest.mark.parametrize("spec", _float32_specs())
def test_a_float32_input_that_is_a_graph_output_too(spec):
    """The RoIs returned with the scores: a graph input that is a graph output stays one value, not renamed."""
    inputs, attrs, f32 = _example(spec)
    model = onnx.load_from_string(make_model(spec, inputs, attrs))
    model.graph.output.extend(i for i in model.graph.input if i.name in f32)
    half = convert_to_float16(model)
    assert [o.name for o in half.graph.output] == [o.name for o in model.graph.output]
    got = _assert_runs_like(model, half, _feed(model, inputs))
    for k, name in enumerate(f32, start=1):
        assert got[k].tobytes() == inputs[name].astype(np.float32).tobytes()


@pytest.mark.parametrize("case", ["resize", "shared_initializer"])
@pytest.mark.parametrize("inferred", [False, True], ids=["no_value_info", "value_info"])
def test_graphs_without_value_info_and_shared_initializers(case, inferred):
    model, feed = fp16_models.no_value_info(case)
    if inferred:
        model = onnx.shape_inference.infer_shapes(model)
    _assert_runs_like(model, convert_to_float16(model), feed)


def test_unnamed_nodes():
    model, feed = fp16_models.unnamed()
    half = convert_to_float16(model)
    names = [n.name for n in half.graph.node]
    assert all(names) and len(set(names)) == len(names)
    _assert_runs_like(model, half, feed)


def test_initializers_listed_as_graph_inputs():
    model, feed = fp16_models.initializer_as_input()
    half = convert_to_float16(model)
    assert [i.name for i in half.graph.input] == ["x"]
    _assert_runs_like(model, half, feed)


@pytest.mark.parametrize("ours", [False, True], ids=["standard", "ours"])
def test_subgraphs_are_refused_naming_the_node(ours):
    """Control flow: the converter leaves outer-scope values float32 inside branches (and our nodes' float32
    inputs float16), so a model with a subgraph is refused, one line naming its node."""
    if ours:
        inputs, attrs = ops.part("deform_roi_pool", "reference").example_inputs()
        inner = [helper.make_node("Mul", ["rois", "w"], ["r"]),
                 helper.make_node("DeformRoIPool", ["data", "r"], ["y"], domain=contract.DOMAIN, **attrs)]
        outer = [("data", inputs["data"].shape), ("rois", inputs["rois"].shape)]
    else:
        inner, outer = [helper.make_node("Mul", ["x", "w"], ["y"])], [("x", [2, 3])]
    model = fp16_models.with_subgraph(inner, outer, [fp16_models.const("w", 3.0)], ours)
    with pytest.raises(DcnError, match=r"^node 'if' \(If\) has a subgraph: [^\n]*--no-fp16$"):
        convert_to_float16(model)


def test_external_data(tmp_path, monkeypatch):
    """A model whose weights lie in an external file: the conversion refuses the graph alone (weights not read),
    naming the tensor; dcn-build's TensorRT 11 FP16 path reads the weights in and converts them."""
    from polygraphy.backend import onnx as pg_onnx
    from polygraphy.backend import trt as pg_trt

    from trt_runtime import build

    w = np.arange(4096, dtype=np.float32).reshape(64, 64) / 4096
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")]
    model = fp16_models.model(nodes, [("x", [1, 64])], [("y", [1, 64])], [fp16_models.const("w", w)])
    path = tmp_path / "model.onnx"
    onnx.save(copy.deepcopy(model), str(path), save_as_external_data=True, location="weights.bin", size_threshold=0)
    with pytest.raises(DcnError, match=r"^initializer 'w' keeps its data in the external file 'weights.bin'"):
        convert_to_float16(build.load_onnx(path))
    seen = {}
    monkeypatch.setattr(pg_onnx, "BytesFromOnnx", lambda m: seen.setdefault("model", m))
    monkeypatch.setattr(pg_trt, "NetworkFromOnnxBytes", lambda m, strongly_typed: m)
    monkeypatch.setattr(pg_trt, "LoadPlugins", lambda plugins, obj: obj)
    plan = build.build_plan("11.0.0", "float32", True)
    build._network(build._read(path, tmp_path / "m.engine", None, None, None), plan, None)
    assert not any(t.external_data for t in seen["model"].graph.initializer)
    _assert_runs_like(model, seen["model"], {"x": np.linspace(-1, 1, 64, dtype=np.float32)[None]})


def test_a_model_computing_in_float16_already():
    """A float32 model that casts a branch to float16 itself stays a float32 model for dcn-build (TensorRT 10:
    FP16 by the builder flag; float32's tolerance in dcn-compare, PyTorch's float32 run having the same casts);
    TensorRT 11's conversion refuses it naming the node and what to do, not with the converter's ValueError."""
    model = fp16_models.mixed()
    assert build_plan.onnx_float_dtype(model) == "float32"
    assert build_plan.build_plan("10.14.0", "float32", True).fp16_flag
    assert build_plan.build_plan("11.0.0", build_plan.onnx_float_dtype(model), True).convert_to_fp16
    with pytest.raises(DcnError, match=r"^the model computes in float16 already, at node 'to_half' \(Cast\): .*"
                                       r"build this one as typed with --no-fp16"):
        convert_to_float16(model)


def test_the_coordinate_rule_is_the_exporters():
    """dcn-build's float16 conversion and dcn-export --fp16 stop at the same new quantities (one table in the
    contract, torch's names and ONNX's op types), and the conversion imports no torch."""
    from exporter.contract import NEW_QUANTITY_ONNX, NEW_QUANTITY_TORCH

    assert {"linear", "conv2d", "softmax"} <= NEW_QUANTITY_TORCH
    assert {"MatMul", "Gemm", "Conv", "Softmax"} <= NEW_QUANTITY_ONNX
    code = "import sys, trt_runtime.fp16_convert; print('torch' in sys.modules)"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert p.stdout.strip() == "False", p.stdout + p.stderr


def test_tolerance_takes_numpy_dtypes():
    """tolerance / exact_dtype take what their docstrings promise: numpy dtypes and scalar types too."""
    import torch

    for dtype in (np.float16, np.dtype(np.float16), torch.float16, "float16", "half"):
        assert tolerance(dtype) == TOLERANCES["float16"], dtype
    for dtype in (np.int64, np.dtype(np.int32), np.bool_, torch.int64, torch.bool, "int64"):
        assert exact_dtype(dtype), dtype
    for dtype in (np.float32, np.float16, torch.float32, torch.bfloat16, "float", "float16"):
        assert not exact_dtype(dtype), dtype
