"""ONNX operator schemas for the ``dcn`` domain, one per registered op, built from its contract entry
(exporter/ops/<op>/spec.py) and its shape inference (its onnx.py ``infer``).

Registering them lets ``onnx.checker.check_model(full_check=True)`` and ``onnx.shape_inference``
understand our nodes: input arity and optionality, attribute names and types, one element type for
the inputs (except those the contract fixes to float32), and output shapes (symbolic where the
graph's shapes are symbolic).

``register()`` is idempotent and process-wide (ONNX keeps one schema registry).
"""
from __future__ import annotations

from onnx import defs, helper
from onnx.defs import OpSchema

from . import onnx_shapes as shapes, ops
from .contract import DOMAIN, DOMAIN_VERSION, FLOAT, INDEX, INT, INTS, OpSpec, specs

# Element types a dcn node may carry; its inputs and output share one, except inputs the contract
# fixes to float32 (coordinates; float64 nodes, for references, may use float64) and index inputs
# (level tables: int64 or int32, one type shared by a node's index inputs).
TYPES = ("tensor(float)", "tensor(float16)", "tensor(double)")
FIXED_TYPES = {"float32": ("tensor(float)", "tensor(double)"), INDEX: ("tensor(int64)", "tensor(int32)")}
FIXED_DOC = {"float32": "float32 (float64 in float64 nodes)", INDEX: "int64 or int32, one type"}


def _type_param(inp) -> str:
    return "T" if inp.dtype is None else ("T_index" if inp.dtype == INDEX else f"T_{inp.name}")


_ATTR_TYPE = {INT: OpSchema.AttrType.INT, INTS: OpSchema.AttrType.INTS, FLOAT: OpSchema.AttrType.FLOAT}


def build_schema(spec: OpSpec) -> OpSchema:
    """The ONNX schema of one contract op (domain ``dcn``, version ``DOMAIN_VERSION``)."""
    opt = OpSchema.FormalParameterOption
    inputs = [
        OpSchema.FormalParameter(i.name, _type_param(i), param_option=opt.Optional if i.optional else opt.Single)
        for i in spec.inputs
    ]
    fixed: dict[str, tuple[str, list[str]]] = {}  # type parameter -> (dtype fact, inputs)
    for i in spec.inputs:
        if i.dtype is not None:
            fixed.setdefault(_type_param(i), (i.dtype, []))[1].append(i.name)
    constraints = [(t, list(FIXED_TYPES[dtype]), f"{', '.join(names)}: {FIXED_DOC[dtype]}")
                   for t, (dtype, names) in fixed.items()]
    outputs = [OpSchema.FormalParameter(name, "T") for name in spec.outputs]
    attributes = []
    for a in spec.attrs:
        if a.default is not None:
            value = list(a.default) if a.kind == INTS else a.default
            attributes.append(OpSchema.Attribute(a.name, helper.make_attribute(a.name, value), ""))
        else:
            attributes.append(OpSchema.Attribute(a.name, _ATTR_TYPE[a.kind], "", required=a.required))
    schema = OpSchema(
        spec.op_type, DOMAIN, DOMAIN_VERSION, spec.doc,
        inputs=inputs, outputs=outputs,
        type_constraints=[("T", list(TYPES), "the inputs and the output of one node share one element type")]
        + constraints,
        attributes=attributes,
    )
    infer = ops.part(spec.name, "onnx").infer

    def checked_infer(ctx) -> None:  # the attributes' minimums (Attr.minimum) first, for every op alike
        shapes.check_minimums(ctx, spec)
        infer(ctx)

    schema.set_type_and_shape_inference_function(checked_infer)
    return schema


_registered = False


def register() -> None:
    """Register the ``dcn`` schemas with ONNX (once per process)."""
    global _registered
    if _registered:
        return
    for spec in specs():
        if not defs.has(spec.op_type, DOMAIN_VERSION, DOMAIN):
            defs.register_schema(build_schema(spec))
    _registered = True
