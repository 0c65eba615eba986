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

from . import ops
from .contract import DOMAIN, DOMAIN_VERSION, FLOAT, INT, INTS, OpSpec, specs

# Element types a dcn node may carry; its inputs and output share one, except inputs the contract
# fixes to float32 (coordinates; float64 nodes, for references, may use float64).
TYPES = ("tensor(float)", "tensor(float16)", "tensor(double)")
FIXED_TYPES = {"float32": ("tensor(float)", "tensor(double)")}

_ATTR_TYPE = {INT: OpSchema.AttrType.INT, INTS: OpSchema.AttrType.INTS, FLOAT: OpSchema.AttrType.FLOAT}


def build_schema(spec: OpSpec) -> OpSchema:
    """The ONNX schema of one contract op (domain ``dcn``, version ``DOMAIN_VERSION``)."""
    opt = OpSchema.FormalParameterOption
    inputs = [
        OpSchema.FormalParameter(i.name, "T" if i.dtype is None else f"T_{i.name}",
                                 param_option=opt.Optional if i.optional else opt.Single)
        for i in spec.inputs
    ]
    fixed = [(f"T_{i.name}", list(FIXED_TYPES[i.dtype]), f"{i.name}: {i.dtype} (float64 in float64 nodes)")
             for i in spec.inputs if i.dtype is not None]
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
        + fixed,
        attributes=attributes,
    )
    schema.set_type_and_shape_inference_function(ops.part(spec.name, "onnx").infer)
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
