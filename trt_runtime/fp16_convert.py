"""float32 ONNX -> float16 ONNX, as ``dcn-build`` does for TensorRT 11 (strongly typed: FP16 only
from a float16 graph).

``onnxconverter_common.float16.convert_float_to_float16`` is called directly (I/O kept float32),
so the conversion does not depend on which converter a Polygraphy version wraps (older ones went
through ``onnxmltools``). Around it:

* refused with a one-line error naming the thing: weights left in external files, subgraphs (the
  converter's handling of control flow is not reliable), a model that already computes in float16;
* before: initializers dropped from the graph inputs, every node a unique name (the converter names
  its casts after them), implicit float32 made explicit (a Constant's ``value_float(s)``, a
  ConstantOfShape without value), value types inferred (our schemas registered: the converter casts
  around the nodes it keeps float32 by them), an initializer such a node shares with others
  duplicated, the graph's own casts to float32 kept
  float32 and cast to float16 after (their readers are float16 now);
* after: the contract restored. Every input an op's contract entry fixes to float32
  (``Input(dtype="float32")``: coordinates such as RoIs and sampling locations), for every registered
  op, is computed in float32: its backward cone is computed a second time from the float32 graph
  inputs and the original float32 constants (an initializer or a Constant node, which the converter
  rounds to float16), stopping where a value stops being a coordinate (the exporter's rule for
  ``dcn-export --fp16``: followed through every op but those giving a new quantity, a learned layer or
  a normalisation, whose float16 result is cast to float32 once; and non-float values). Float16
  readers of such a value (a position embedding of the reference points) read it cast to float16, a
  graph output reads it in float32. Then unused nodes and initializers are pruned (the converter's
  float16 copies of the cones among them) and the graph's types checked.

No TensorRT needed: the tests run the converted graph on ONNX Runtime.
"""
from __future__ import annotations

import copy
import heapq
from typing import Optional

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from dcn_base.errors import DcnError, describe
from exporter import schemas
from exporter.contract import DOMAIN, NEW_QUANTITY_ONNX, spec_of_node
from exporter.rewrites import prune

from .build_plan import DTYPE_ATTRS, float16_site

REQUIREMENT = "onnxconverter-common>=1.14"
_UNTYPED = f"{DOMAIN}.untyped"  # a domain ONNX has no schemas for: its nodes are left out of shape inference



def convert_to_float16(model: onnx.ModelProto) -> onnx.ModelProto:
    """A float16 copy of ``model`` (float32 I/O), the contract's float32 inputs of our nodes computed and kept
    float32; a DcnError (one line) for what it does not convert."""
    try:
        from onnxconverter_common import float16  # noqa: PLC0415  (optional: the float16 conversion)
    except ImportError as err:
        raise DcnError(
            f"converting a float32 ONNX to float16 needs {REQUIREMENT} (pip install onnxconverter-common): {err}"
        ) from None
    _refuse(model)
    block_ops = set(float16.DEFAULT_OP_BLOCK_LIST)
    model = _prepare(copy.deepcopy(model), block_ops)
    cones = _Cones(model)  # before the split below: the cones read the original initializers
    keep32 = [n.name for n in model.graph.node if _makes_float32(n)]
    _split_shared_initializers(model, block_ops, keep32)
    strict = _type_error(model) is None
    out = float16.convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=True,
                                           node_block_list=keep32)
    cones.restore(out)
    _sort(out.graph)
    prune(out)
    error = _type_error(out) if strict else None
    if error:
        raise DcnError(f"the float16 conversion made a graph ONNX rejects: {error}")
    return out


def _refuse(model: onnx.ModelProto) -> None:
    """One-line errors for what the conversion does not do."""
    g = model.graph
    tensors = [(f"initializer {t.name!r}", t) for t in g.initializer]
    tensors += [(f"the tensor of node {n.name!r}", a.t) for n in g.node for a in n.attribute
                if a.type == onnx.AttributeProto.TENSOR]
    for what, t in tensors:
        if t.data_location == TensorProto.EXTERNAL:
            where = next((e.value for e in t.external_data if e.key == "location"), "?")
            raise DcnError(f"{what} keeps its data in the external file {where!r}: the float16 conversion needs the "
                           "weights in the model (onnx.load(path) loads them; or pass a model without external data)")
    for n in g.node:
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in n.attribute):
            raise DcnError(f"node {n.name!r} ({n.op_type}) has a subgraph: the float16 conversion does not convert "
                           "control flow; give a float16 model (built as it is) or build FP32 with --no-fp16")
        if any(a.type == onnx.AttributeProto.SPARSE_TENSOR and a.sparse_tensor.values.data_type == TensorProto.FLOAT
               for a in n.attribute):
            raise DcnError(f"node {n.name!r} ({n.op_type}) has a sparse float32 tensor: the float16 conversion needs "
                           "a dense one")
    site = float16_site(model)
    if site is not None:
        raise DcnError(f"the model computes in float16 already, at {site}: the float16 conversion takes a float32 "
                       "model; build this one as typed with --no-fp16, or export it in float16 (dcn-export --fp16)")


def _prepare(model: onnx.ModelProto, block_ops: set[str]) -> onnx.ModelProto:
    """The model as the converter needs it (see the module doc; ``block_ops``: the op types the converter
    keeps float32); value types inferred."""
    g = model.graph
    inits = {t.name for t in g.initializer}
    if any(i.name in inits for i in g.input):  # IR 3 style (keep_initializers_as_inputs): weights, not inputs
        inputs = [i for i in g.input if i.name not in inits]
        del g.input[:]
        g.input.extend(inputs)
        model.ir_version = max(model.ir_version, 4)
    names = _Names(model)
    seen: set[str] = set()
    for n in g.node:
        if not n.name or n.name in seen:
            n.name = names.new(n.name or n.op_type)
        seen.add(n.name)
        if n.domain not in ("", "ai.onnx"):
            continue
        if n.op_type == "Constant":
            for a in list(n.attribute):  # value_float(s): a float32 tensor too (the converter sees tensors only)
                if a.name in ("value_float", "value_floats"):
                    value = np.asarray(a.f if a.name == "value_float" else list(a.floats), np.float32)
                    n.attribute.remove(a)
                    n.attribute.append(helper.make_attribute("value", numpy_helper.from_array(value)))
        if n.op_type == "ConstantOfShape" and not any(a.name == "value" for a in n.attribute):  # float32 0 unsaid
            n.attribute.append(helper.make_attribute("value", numpy_helper.from_array(np.zeros(1, np.float32))))
    _isolate_outputs(model, names, block_ops)
    return _infer(model)


def _infer(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with its value types inferred (our schemas registered). Where our nodes' inference refuses
    the shapes it sees (the contract's checks, which a build meets again), the types the other nodes give."""
    schemas.register()
    try:
        return onnx.shape_inference.infer_shapes(model)
    except Exception as err:  # noqa: BLE001  (onnx's inference errors)
        refused = err
    untyped = copy.deepcopy(model)
    for n in untyped.graph.node:
        if spec_of_node(n) is not None:
            n.domain = _UNTYPED
    untyped.opset_import.append(helper.make_opsetid(_UNTYPED, 1))
    try:
        inferred = onnx.shape_inference.infer_shapes(untyped)
    except Exception:  # noqa: BLE001  (onnx's inference errors)
        raise DcnError(f"ONNX shape inference rejected the model before the float16 conversion: "
                       f"{describe(refused)}") from None
    del model.graph.value_info[:]
    model.graph.value_info.extend(inferred.graph.value_info)
    return model


class _Names:
    """New value and node names, unique in the model."""

    def __init__(self, model: onnx.ModelProto) -> None:
        g = model.graph
        self.used = {n.name for n in g.node} | {o for n in g.node for o in n.output} | {t.name for t in g.initializer}
        self.used |= {vi.name for vi in (*g.input, *g.output, *g.value_info)}

    def new(self, base: str) -> str:
        name, k = base, 0
        while name in self.used:
            k += 1
            name = f"{base}_{k}"
        self.used.add(name)
        return name


def _isolate_outputs(model: onnx.ModelProto, names: _Names, block_ops: set[str]) -> None:
    """A graph output that other nodes also read, an initializer, or made by a node the converter keeps
    float32 gets its own Identity: with keep_io_types the converter casts the first to float32 and then
    feeds the float32 value to its float16 readers (an invalid graph), and leaves the others float16. A
    graph input passed through stays as it is."""
    g = model.graph
    read = {i for n in g.node for i in n.input}
    inputs = {i.name for i in g.input}
    kept32 = {t.name for t in g.initializer}
    kept32 |= {o for n in g.node if n.op_type in block_ops or _makes_float32(n) for o in n.output}
    for out in g.output:
        if out.name in inputs or (out.name not in read and out.name not in kept32):
            continue
        inner = names.new(f"{out.name}__inner")
        for n in g.node:
            n.output[:] = [inner if o == out.name else o for o in n.output]
            n.input[:] = [inner if i == out.name else i for i in n.input]
        for x in (*g.value_info, *g.initializer):
            if x.name == out.name:
                x.name = inner
        g.node.append(helper.make_node("Identity", [inner], [out.name], name=names.new(f"{out.name}/output")))


def _makes_float32(node: onnx.NodeProto) -> bool:
    """Whether the node makes float32 by an attribute (the graph's own Cast to float32, ...): the converter
    would leave it making float32 for float16 readers, so it is kept float32 by name (a cast after it)."""
    return any(a.type == onnx.AttributeProto.INT and a.name in DTYPE_ATTRS and a.i == TensorProto.FLOAT
               for a in node.attribute)


def _split_shared_initializers(model: onnx.ModelProto, block_ops: set[str], block_nodes: list[str]) -> None:
    """A float32 initializer read by a node the converter keeps float32 and by others: the others read a copy
    (the converter leaves an initializer such a node reads float32, for every reader)."""
    g = model.graph
    names = _Names(model)
    readers: dict[str, list[tuple[onnx.NodeProto, bool]]] = {}
    for n in g.node:
        for i in set(n.input):
            readers.setdefault(i, []).append((n, n.op_type in block_ops or n.name in block_nodes))
    for t in list(g.initializer):
        blocked = {b for _, b in readers.get(t.name, ())}
        if t.data_type != TensorProto.FLOAT or blocked != {True, False}:
            continue
        half = copy.deepcopy(t)
        half.name = names.new(f"{t.name}_float16")
        g.initializer.append(half)
        for n, b in readers[t.name]:
            if not b:
                n.input[:] = [half.name if i == t.name else i for i in n.input]


class _Cones:
    """The float32 inputs of our nodes and what they are computed from, read from the float32 graph;
    :meth:`restore` computes them in float32 in the converted graph."""

    def __init__(self, model: onnx.ModelProto) -> None:
        g = model.graph
        self.inputs = {i.name for i in g.input if i.type.tensor_type.elem_type == TensorProto.FLOAT}
        self.types = {vi.name: vi.type.tensor_type.elem_type for vi in (*g.input, *g.value_info, *g.output)}
        self.types |= {t.name: t.data_type for t in g.initializer}
        constants = _float32_constants(model)
        producer = {o: n for n in g.node for o in n.output if o}
        self.reads: list[tuple[str, int, str]] = []  # (our node, input position, value)
        for n in g.node:
            spec = spec_of_node(n)
            for i in spec.float32_inputs if spec is not None else ():
                if i < len(n.input) and n.input[i]:
                    self.reads.append((n.name, i, n.input[i]))
        cone: set[int] = set()
        todo = [(v, node) for node, _, v in self.reads]
        seen: set[str] = set()
        while todo:
            value, reader = todo.pop()
            src = producer.get(value)
            if value in seen or src is None or value in constants:
                continue
            seen.add(value)
            if value not in self.types:
                raise DcnError(f"value {value!r} ({src.op_type} node {src.name!r}), which node {reader!r} reads as "
                               "float32 coordinates, has no element type after ONNX shape inference (op "
                               f"{src.domain or 'ai.onnx'}:{src.op_type}): cannot tell whether to keep it float32")
            if self.types[value] != TensorProto.FLOAT or src.op_type in NEW_QUANTITY_ONNX or spec_of_node(src):
                continue  # not a coordinate (any more): read as it is, or cast to float32 once
            cone.add(id(src))
            todo.extend((i, reader) for i in src.input if i)
        self.cone = [copy.deepcopy(n) for n in g.node if id(n) in cone]  # graph order: topological
        self.produced = {o for n in self.cone for o in n.output if o}
        # a graph output that is such a value too (the RoIs returned with the scores): given in float32
        self.outputs = {o.name: producer[o.name].input[0] for o in g.output
                        if o.name in producer and producer[o.name].op_type == "Identity"
                        and producer[o.name].input[0] in self.produced}
        read = {i for n in self.cone for i in n.input} | {v for _, _, v in self.reads}
        # copies: the converter rounds the model's own to float16 in place
        self.constants = {v: copy.deepcopy(t) for v, t in constants.items() if v in read}

    def restore(self, out: onnx.ModelProto) -> None:
        """Our nodes (and graph outputs of the cones' values) read the cones computed in float32 (added to ``out``)."""
        g = out.graph
        names = _Names(out)
        float32: dict[str, str] = {}  # value -> its float32 value in ``out``

        def border(value: str) -> str:
            """A value computed outside the cones, float32 (a graph input, a constant, or cast once)."""
            if value not in float32:
                if value in self.inputs:
                    float32[value] = value
                elif value in self.constants:  # the original float32 constant, not its float16 rounding
                    t = copy.deepcopy(self.constants[value])
                    t.name = names.new(f"{value}_float32")
                    g.initializer.append(t)
                    float32[value] = t.name
                else:  # a new quantity (a learned layer's offsets), computed in float16: cast once
                    float32[value] = names.new(f"{value}_float32")
                    g.node.append(helper.make_node("Cast", [value], [float32[value]], to=TensorProto.FLOAT,
                                                   name=names.new(f"{value}/float32")))
            return float32[value]

        def read(value: str) -> str:
            if not value or self.types.get(value) != TensorProto.FLOAT:
                return value
            return float32[value] if value in self.produced else border(value)

        converted = list(g.node)
        for n in self.cone:
            node = copy.deepcopy(n)
            node.name = names.new(f"{n.name}/float32")
            node.input[:] = [read(i) for i in n.input]
            for k, o in enumerate(n.output):
                if o:
                    float32[o] = node.output[k] = names.new(f"{o}_float32")
            g.node.append(node)
        half: dict[str, str] = {}  # a cone's value -> the float32 one stored in float16, for float16 readers
        for n in converted:  # (the converter's float16 copies of the cones are then read by none)
            for k, i in enumerate(n.input):
                if i in self.produced:
                    if i not in half:
                        half[i] = names.new(f"{i}_float16")
                        g.node.append(helper.make_node("Cast", [float32[i]], [half[i]], to=TensorProto.FLOAT16,
                                                       name=names.new(f"{i}/float16")))
                    n.input[k] = half[i]
        ours = {n.name: n for n in g.node}
        for name, i, value in self.reads:
            ours[name].input[i] = read(value)
        for output, value in self.outputs.items():  # instead of the converter's cast of the float16 value
            g.node.remove(next(n for n in g.node if output in n.output))
            g.node.append(helper.make_node("Identity", [float32[value]], [output], name=names.new(f"{output}/float32")))


def _float32_constants(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    """The float32 constants of the graph by value name (initializers, Constant nodes' tensors)."""
    out = {t.name: t for t in model.graph.initializer if t.data_type == TensorProto.FLOAT}
    for n in model.graph.node:
        if n.op_type == "Constant" and n.domain in ("", "ai.onnx"):
            value = next((a.t for a in n.attribute if a.name == "value"), None)
            if value is not None and value.data_type == TensorProto.FLOAT:
                out[n.output[0]] = value
    return out


def _sort(graph: onnx.GraphProto) -> None:
    """Topological order, the given order where it is one."""
    nodes = list(graph.node)
    producer = {o: k for k, n in enumerate(nodes) for o in n.output if o}
    needs = [{producer[i] for i in n.input if i in producer} for n in nodes]
    readers: list[list[int]] = [[] for _ in nodes]
    for k, deps in enumerate(needs):
        for d in deps:
            readers[d].append(k)
    left = [len(d) for d in needs]
    ready = [k for k, c in enumerate(left) if not c]
    order: list[int] = []
    while ready:
        k = heapq.heappop(ready)
        order.append(k)
        for r in readers[k]:
            left[r] -= 1
            if not left[r]:
                heapq.heappush(ready, r)
    if len(order) != len(nodes):
        raise AssertionError("the float16 conversion made a cycle")
    del graph.node[:]
    graph.node.extend(nodes[k] for k in order)


def _type_error(model: onnx.ModelProto) -> Optional[str]:
    """ONNX's strict type and shape inference's complaint about the model (naming the node), or None."""
    try:
        onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except Exception as err:  # noqa: BLE001  (onnx's inference errors)
        return describe(err)
    return None
