"""Small float32 ONNX models (onnx.helper) the float16 conversion (trt_runtime.fp16_convert) has to get right
(the cases return ``(model, feed)``; ``model``, ``with_subgraph`` and ``mixed`` the model alone). Opset 19,
IR 10 (ONNX Runtime 1.20+)."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from exporter.contract import DOMAIN, DOMAIN_VERSION

F32 = TensorProto.FLOAT
RNG_SEED = 0


def model(nodes, inputs, outputs, initializers=(), ours: bool = False) -> onnx.ModelProto:
    """``inputs``/``outputs``: value infos or (name, shape) for float32 ones."""
    def info(v):
        return v if isinstance(v, onnx.ValueInfoProto) else helper.make_tensor_value_info(v[0], F32, v[1])

    opsets = [helper.make_opsetid("", 19)] + ([helper.make_opsetid(DOMAIN, DOMAIN_VERSION)] if ours else [])
    graph = helper.make_graph(nodes, "g", [info(v) for v in inputs], [info(v) for v in outputs],
                              initializer=list(initializers))
    return helper.make_model(graph, opset_imports=opsets, ir_version=10)


def const(name: str, value, dtype=np.float32) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype), name)


def own_float32(case: str):
    """The graph's own ways of making float32 that the converter misses: a Cast to float32 (of an integer,
    read by a float16 node, by a node the converter keeps float32, or a graph output), Constant
    value_float / value_floats, ConstantOfShape without a value."""
    x = np.linspace(-2, 2, 6, dtype=np.float32).reshape(2, 3)
    feed = {"x": x}
    k = helper.make_tensor_value_info("k", TensorProto.INT64, [2, 3])
    if case.startswith("cast"):
        feed["k"] = np.arange(6, dtype=np.int64).reshape(2, 3)
        reader = {"cast": "Mul", "cast_to_blocked": "Max"}.get(case)
        nodes = [helper.make_node("Cast", ["k"], ["kf"], to=F32, name="cast")]
        if reader is None:  # the cast is a graph output too
            nodes.append(helper.make_node("Mul", ["x", "x"], ["y"], name="mul"))
            return model(nodes, [("x", [2, 3]), k], [("y", [2, 3]), ("kf", [2, 3])]), feed
        nodes.append(helper.make_node(reader, ["x", "kf"], ["y"], name="reader"))
        return model(nodes, [("x", [2, 3]), k], [("y", [2, 3])]), feed
    if case == "value_float":
        c = helper.make_node("Constant", [], ["c"], value_float=2.5, name="c")
    elif case == "value_floats":
        c = helper.make_node("Constant", [], ["c"], value_floats=[0.5, 1.5, 2.5], name="c")
    else:  # ConstantOfShape without a value: float32 zeros
        c = helper.make_node("ConstantOfShape", ["shape"], ["c"], name="c")
    nodes = [c, helper.make_node("Add", ["x", "c"], ["y"], name="add")]
    inits = [const("shape", [2, 3], np.int64)] if case == "constant_of_shape" else []
    return model(nodes, [("x", [2, 3])], [("y", [2, 3])], inits), feed


def no_value_info(case: str):
    """Graphs as onnx.helper, many exporters and onnx-simplifier give them (no value_info), with a node the
    converter keeps float32 (its op block list): an FPN upsample (Resize), and an initializer that such a node
    (Max) shares with a float16 one (Mul)."""
    if case == "resize":
        nodes = [helper.make_node("Resize", ["c5", "", "scales"], ["up"], mode="nearest", name="up"),
                 helper.make_node("Add", ["up", "c4"], ["p4"], name="lateral")]
        rng = np.random.default_rng(RNG_SEED)
        feed = {"c5": rng.normal(size=(1, 4, 3, 3)).astype(np.float32),
                "c4": rng.normal(size=(1, 4, 6, 6)).astype(np.float32)}
        return model(nodes, [("c5", [1, 4, 3, 3]), ("c4", [1, 4, 6, 6])], [("p4", [1, 4, 6, 6])],
                     [const("scales", [1, 1, 2, 2])]), feed
    nodes = [helper.make_node("Max", ["x", "two"], ["a"], name="max"),
             helper.make_node("Mul", ["a", "two"], ["y"], name="mul")]
    return model(nodes, [("x", [2, 3])], [("y", [2, 3])], [const("two", 2.0)]), \
        {"x": np.linspace(0, 4, 6, dtype=np.float32).reshape(2, 3)}


def unnamed():
    """Unnamed nodes reading one float32 graph input (onnx.helper and many converters leave names empty)."""
    nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Sigmoid", ["x"], ["b"]),
             helper.make_node("Add", ["a", "b"], ["y"])]
    return model(nodes, [("x", [2, 3])], [("y", [2, 3])]), {"x": np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)}


def initializer_as_input():
    """An initializer also listed as a graph input (keep_initializers_as_inputs=True exports, IR 3 style)."""
    w = np.arange(9, dtype=np.float32).reshape(3, 3) / 8
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")]
    return model(nodes, [("x", [2, 3]), ("w", [3, 3])], [("y", [2, 3])], [const("w", w)]), \
        {"x": np.ones((2, 3), np.float32)}


def with_subgraph(inner_nodes, outer_inputs, initializers=(), ours: bool = False):
    """An If whose branches both run ``inner_nodes`` (making ``y``), reading outer-scope values."""
    branch = helper.make_graph(inner_nodes, "branch", [], [helper.make_tensor_value_info("y", F32, None)])
    node = helper.make_node("If", ["cond"], ["out"], then_branch=branch, else_branch=branch, name="if")
    cond = helper.make_tensor_value_info("cond", TensorProto.BOOL, [])
    return model([node], [cond, *outer_inputs], [("out", None)], initializers, ours)


def mixed():
    """A float32 model (float32 weights and inputs) that computes one branch in float16 itself."""
    nodes = [helper.make_node("Cast", ["x"], ["xh"], to=TensorProto.FLOAT16, name="to_half"),
             helper.make_node("Relu", ["xh"], ["rh"], name="relu"),
             helper.make_node("Cast", ["rh"], ["y"], to=F32, name="to_float")]
    return model(nodes, [("x", [2])], [("y", [2])])
