"""The float16 graph ``dcn-build`` makes for TensorRT 11 (trt_runtime.fp16_convert) keeps every input
an op's contract entry fixes to float32 (``Input(dtype="float32")``: RoIs, locations) float32 (and index
inputs, ``Input(dtype=INDEX)``, integer), for
every registered op: a single-node float32 model of each op (its reference.py ``example_inputs``),
converted, then run on ONNX Runtime with our float16 kernels, which refuse a float16 coordinate input.
The result is held to the float32 run within the float16 row of dcn_base.tolerance.

Each float32 input is also given the ways a real graph gives it: a graph input, an initializer, a
Constant node (both kept bit for bit, not rounded to float16 and cast back) and a value the graph
computes (cast back to float32 before the node). The conversion reads the entries only: a future op's
entry is covered without a line here (``test_a_future_op_is_covered_by_its_entry``).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from dcn_base.tolerance import error_ratio, tolerance
from exporter import contract, ops
from exporter.contract import INDEX, Input, OpSpec, specs
from helpers.built_libs import require
from test_ort_ops import make_model
from trt_runtime import plugins
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
    names = {i.name for i in model.graph.input}
    feed = {n: v for n, v in inputs.items() if v is not None and n in names}
    feed |= {f"{n}_in": inputs[n] for n in inputs if f"{n}_in" in names}
    want = plugins.ort_session(model.SerializeToString()).run(None, feed)[0]
    got = plugins.ort_session(half.SerializeToString()).run(None, feed)[0]  # ONNX Runtime accepts the graph
    assert got.dtype == np.float32 and got.shape == want.shape  # float32 I/O kept
    atol, rtol = tolerance("float16")
    assert error_ratio(got, want, atol * max(1.0, float(np.abs(want).max())), rtol) <= 1.0


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
    cast = producer[node.input[1]]  # the Sigmoid computed in float16, cast back to float32 for the node
    assert cast.op_type == "Cast" and next(a.i for a in cast.attribute if a.name == "to") == onnx.TensorProto.FLOAT
    assert producer[node.input[0]].op_type == "Relu"  # the node's own type: float16


def test_the_conversion_names_no_op():
    src = (Path(__file__).resolve().parents[1] / "trt_runtime" / "fp16_convert.py").read_text()
    for spec in specs():
        assert not re.search(rf"{spec.op_type}|{spec.name}", src), spec.op_type
