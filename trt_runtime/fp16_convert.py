"""float32 ONNX -> float16 ONNX, as ``dcn-build`` does for TensorRT 11 (strongly typed: FP16 only
from a float16 graph).

``onnxconverter_common.float16.convert_float_to_float16`` is called directly (I/O kept float32),
so the conversion does not depend on which converter a Polygraphy version wraps (older ones went
through ``onnxmltools``). Then the contract is restored: ``DeformPSROIPool``'s rois are float32
also in a float16 graph, so each pooling node reads its rois from before the converter's cast to
float16 (or through a cast back to float32 where they were computed in the graph).
No TensorRT needed: the tests run the converted graph on ONNX Runtime.
"""
from __future__ import annotations

import copy

import onnx
from onnx import TensorProto, helper

from exporter.contract import DEFORM_PSROI_POOL, DOMAIN, MULTI_SCALE_DEFORMABLE_ATTENTION

# (op type, input index) of the inputs that stay float32 in a float16 graph
_FLOAT32_INPUTS = {DEFORM_PSROI_POOL.op_type: 1, MULTI_SCALE_DEFORMABLE_ATTENTION.op_type: 3}
from exporter.errors import DcnError

REQUIREMENT = "onnxconverter-common>=1.14"


def convert_to_float16(model: onnx.ModelProto) -> onnx.ModelProto:
    """A float16 copy of ``model`` (float32 I/O), rois of DeformPSROIPool kept float32."""
    try:
        from onnxconverter_common import float16  # noqa: PLC0415
    except ImportError as err:
        raise DcnError(
            f"converting a float32 ONNX to float16 needs {REQUIREMENT} (pip install onnxconverter-common): {err}"
        ) from None
    model = copy.deepcopy(model)
    _isolate_outputs(model)
    out = float16.convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=True)
    _rois_float32(out)
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


def _rois_float32(model: onnx.ModelProto) -> None:
    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    types = {vi.name: vi.type.tensor_type.elem_type for vi in list(g.input) + list(g.value_info) + list(g.output)}
    new_nodes: list[tuple[int, onnx.NodeProto]] = []
    for idx, node in enumerate(g.node):
        pos = _FLOAT32_INPUTS.get(node.op_type, -1)
        if node.domain != DOMAIN or pos < 0 or len(node.input) <= pos:
            continue
        rois = node.input[pos]
        src = producer.get(rois)
        if src is not None and src.op_type == "Cast" and types.get(src.input[0]) == TensorProto.FLOAT:
            node.input[pos] = src.input[0]  # the float32 value before the converter's cast
            continue
        if types.get(rois) == TensorProto.FLOAT:
            continue
        cast_out = f"{rois}_float32"
        new_nodes.append((idx, helper.make_node("Cast", [rois], [cast_out], to=TensorProto.FLOAT,
                                                name=f"{node.name}/input{pos}_float32")))
        node.input[pos] = cast_out
    for idx, cast in reversed(new_nodes):
        g.node.insert(idx, cast)
    used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    keep = [n for n in g.node if not (n.op_type == "Cast" and all(o not in used for o in n.output))]
    if len(keep) != len(g.node):
        del g.node[:]
        g.node.extend(keep)
