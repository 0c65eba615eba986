"""float32 ONNX -> float16 ONNX, as ``dcn-build`` does for TensorRT 11 (strongly typed: FP16 only
from a float16 graph).

``onnxconverter_common.float16.convert_float_to_float16`` is called directly (I/O kept float32),
so the conversion does not depend on which converter a Polygraphy version wraps (older ones went
through ``onnxmltools``). Then the contract is restored: every input an op's contract entry fixes to
float32 (``Input(dtype="float32")``: coordinates such as RoIs) stays float32 also in a float16 graph,
for every registered op: each node of ours reads it from before the converter's cast to float16 (a
graph input), as the original float32 constant (an initializer or a Constant node, which the converter
would round to float16), or through a cast back to float32 (a value computed in the float16 graph).
No TensorRT needed: the tests run the converted graph on ONNX Runtime.
"""
from __future__ import annotations

import copy

import onnx
from onnx import TensorProto, helper

from exporter.contract import spec_of_node
from dcn_base.errors import DcnError

REQUIREMENT = "onnxconverter-common>=1.14"


def convert_to_float16(model: onnx.ModelProto) -> onnx.ModelProto:
    """A float16 copy of ``model`` (float32 I/O), the contract's float32 inputs of our nodes kept float32."""
    try:
        from onnxconverter_common import float16  # noqa: PLC0415  (optional: the float16 conversion)
    except ImportError as err:
        raise DcnError(
            f"converting a float32 ONNX to float16 needs {REQUIREMENT} (pip install onnxconverter-common): {err}"
        ) from None
    model = copy.deepcopy(model)
    _isolate_outputs(model)
    constants = _float32_constants(model)
    out = float16.convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=True)
    _float32_inputs(out, constants)
    return out


def _float32_constants(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    """The float32 constants of the graph by value name (initializers, Constant nodes' tensors), before the
    converter rounds them to float16."""
    out = {t.name: copy.deepcopy(t) for t in model.graph.initializer if t.data_type == TensorProto.FLOAT}
    for n in model.graph.node:
        if n.op_type == "Constant" and n.domain in ("", "ai.onnx"):
            value = next((a.t for a in n.attribute if a.name == "value"), None)
            if value is not None and value.data_type == TensorProto.FLOAT:
                out[n.output[0]] = copy.deepcopy(value)
    return out


def _isolate_outputs(model: onnx.ModelProto) -> None:
    """A graph output that other nodes also read gets its own Identity: with keep_io_types the
    converter casts such an output to float32 and then feeds the float32 value to its float16
    readers (an invalid graph)."""
    g = model.graph
    read = {i for n in g.node for i in n.input}
    for out in g.output:
        if out.name not in read:
            continue
        inner = f"{out.name}__inner"
        for n in g.node:
            n.output[:] = [inner if o == out.name else o for o in n.output]
            n.input[:] = [inner if i == out.name else i for i in n.input]
        for vi in g.value_info:
            if vi.name == out.name:
                vi.name = inner
        g.node.append(helper.make_node("Identity", [inner], [out.name], name=f"{out.name}/output"))


def _float32_inputs(model: onnx.ModelProto, constants: dict[str, onnx.TensorProto]) -> None:
    """Every input our contract entries fix to float32 reads a float32 value again (``constants``: the
    original float32 constants by value name)."""
    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    types = {vi.name: vi.type.tensor_type.elem_type for vi in list(g.input) + list(g.value_info) + list(g.output)}
    new_nodes: list[tuple[int, onnx.NodeProto]] = []
    kept = {t.name for t in g.initializer}
    for idx, node in enumerate(g.node):
        spec = spec_of_node(node)
        for i in spec.float32_inputs if spec is not None else ():
            if i >= len(node.input) or not node.input[i]:
                continue
            value = node.input[i]
            if value in constants:  # the original float32 constant, not its float16 rounding
                name = f"{value}_float32"
                if name not in kept:
                    g.initializer.append(copy.deepcopy(constants[value]))
                    g.initializer[-1].name = name
                    kept.add(name)
                node.input[i] = name
                continue
            src = producer.get(value)
            if src is not None and src.op_type == "Cast" and types.get(src.input[0]) == TensorProto.FLOAT:
                node.input[i] = src.input[0]  # the float32 value before the converter's cast
                continue
            if types.get(value) == TensorProto.FLOAT:
                continue
            cast_out = f"{value}_float32"
            new_nodes.append((idx, helper.make_node("Cast", [value], [cast_out], to=TensorProto.FLOAT,
                                                    name=f"{node.name}/{spec.inputs[i].name}_float32")))
            node.input[i] = cast_out
    for idx, cast in reversed(new_nodes):
        g.node.insert(idx, cast)
    used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    keep = [n for n in g.node if not (n.op_type in ("Cast", "Constant") and all(o not in used for o in n.output))]
    if len(keep) != len(g.node):
        del g.node[:]
        g.node.extend(keep)
    used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    unused = [t for t in g.initializer if t.name not in used]
    for t in unused:  # the float16 roundings nothing reads any more
        g.initializer.remove(t)
