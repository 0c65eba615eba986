"""What every op's ONNX shape inference (its onnx.py ``infer``, registered with its schema by
:mod:`exporter.schemas`) shares: dimensions that are a value, a symbol or unknown, input ranks and
types, attribute reads with the contract's defaults, the one element type of a node (inputs the
contract fixes to float32 excepted) and the output written back. Names no op."""
from __future__ import annotations

from typing import Optional

import onnx
from onnx import TypeProto, helper

from .contract import INTS, OpSpec, below_minimum, conv_out_size


class Dim:
    """A dimension: a known value, a symbol, or unknown."""

    def __init__(self, value: Optional[int] = None, param: Optional[str] = None) -> None:
        self.value, self.param = value, param

    @classmethod
    def of(cls, tp: Optional[TypeProto], axis: int) -> "Dim":
        if tp is None or not tp.HasField("tensor_type") or not tp.tensor_type.HasField("shape"):
            return cls()
        dims = tp.tensor_type.shape.dim
        if axis >= len(dims):
            return cls()
        d = dims[axis]
        if d.HasField("dim_value"):
            return cls(value=d.dim_value)
        if d.HasField("dim_param"):
            return cls(param=d.dim_param)
        return cls()

    def write(self, dim) -> None:
        if self.value is not None:
            dim.dim_value = self.value
        elif self.param:
            dim.dim_param = self.param


def rank(tp: Optional[TypeProto]) -> Optional[int]:
    if tp is None or not tp.HasField("tensor_type") or not tp.tensor_type.HasField("shape"):
        return None
    return len(tp.tensor_type.shape.dim)


def attr_ints(ctx, name: str, default) -> list[int]:
    a = ctx.get_attribute(name)
    return list(a.ints) if a is not None else list(default)


def attr_int(ctx, name: str, default) -> int:
    a = ctx.get_attribute(name)
    return int(a.i) if a is not None else int(default)


def set_output(ctx, elem_type: int, dims: list[Dim]) -> None:
    out = TypeProto()
    out.tensor_type.elem_type = elem_type
    shape = out.tensor_type.shape
    for d in dims:
        d.write(shape.dim.add())
    ctx.set_output_type(0, out)


def input_types(ctx, spec: OpSpec) -> list[Optional[TypeProto]]:
    types = []
    for i in range(ctx.get_num_inputs()):
        types.append(ctx.get_input_type(i) if ctx.has_input(i) else None)
    present = [(spec.inputs[i], t.tensor_type.elem_type) for i, t in enumerate(types)
               if t is not None and t.HasField("tensor_type") and t.tensor_type.elem_type]
    shared = [(i.name, e) for i, e in present if i.dtype is None]
    if len({e for _, e in shared}) > 1:
        got = ", ".join(f"{n}={helper.tensor_dtype_to_np_dtype(e).name}" for n, e in shared)
        raise onnx.shape_inference.InferenceError(
            f"{spec.op_type} '{node_name(ctx)}': inputs have different element types ({got}), expected one"
        )
    node_type = shared[0][1] if shared else None
    for inp, e in present:
        if inp.dtype == "float32" and e != onnx.TensorProto.FLOAT and not (
                e == onnx.TensorProto.DOUBLE and node_type == onnx.TensorProto.DOUBLE):
            raise onnx.shape_inference.InferenceError(
                f"{spec.op_type} '{node_name(ctx)}': {inp.name} is "
                f"{helper.tensor_dtype_to_np_dtype(e).name}, expected float32 (also in a float16 node)"
            )
    return types


def node_name(ctx) -> str:
    """The node's name for messages: ONNX's display name is "node <type>[<domain>] (<name>)"."""
    shown = ctx.get_display_name()
    return shown[shown.index(" (") + 2:-1] if shown.endswith(")") and " (" in shown else shown


def check_minimums(ctx, spec: OpSpec) -> None:
    """Every integer attribute the node sets at or above the contract's minimum (Attr.minimum): before
    the op's inference divides by a stride or counts channels with a group."""
    for a in spec.attrs:
        got = ctx.get_attribute(a.name) if a.minimum is not None else None
        low = got is not None and below_minimum(spec.op_type, node_name(ctx), a,
                                                list(got.ints) if a.kind == INTS else [int(got.i)])
        if low:
            raise onnx.shape_inference.InferenceError(low)


def conv_output(ctx, spec: OpSpec, side: str, size: int, pad0: int, pad1: int, dilation: int, kernel: int,
                stride: int) -> int:
    """The output's height or width (`side`) of a convolution-shaped op; >= 1, else the node is named."""
    out = conv_out_size(size, pad0, pad1, dilation, kernel, stride)
    if out < 1:
        raise onnx.shape_inference.InferenceError(
            f"{spec.op_type} '{node_name(ctx)}': X's {side} {size} with pads {pad0}, {pad1}, dilation {dilation} and "
            f"kernel {kernel} gives an output {side} {out}, expected >= 1"
        )
    return out


def check_len(ctx, spec: OpSpec, name: str, values: list[int]) -> None:
    want = spec.attr(name).length
    if len(values) != want:
        raise onnx.shape_inference.InferenceError(
            f"{spec.op_type} '{node_name(ctx)}': attribute {name} has {len(values)} values {values}, "
            f"expected {want}"
        )
