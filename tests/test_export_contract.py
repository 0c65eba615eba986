"""The exporter's nodes and schemas equal exporter/contract.py: names, types, input order, defaults."""
from __future__ import annotations

import inspect
import re

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from dcn_base.errors import ContractError
from helpers import export_models as em
import exporter
from exporter import contract, schemas
from exporter.contract import DOMAIN, DOMAIN_VERSION
from exporter.ops.deform_conv2d.spec import SPEC as DEFORM_CONV2D
from exporter.ops.deform_psroi_pool.spec import SPEC as DEFORM_PSROI_POOL
from exporter.translate import translation_table

ONNX_KIND = {contract.INT: onnx.AttributeProto.INT, contract.INTS: onnx.AttributeProto.INTS,
             contract.FLOAT: onnx.AttributeProto.FLOAT}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One graph with DCNv1 (with/without bias), DCNv2 (with/without bias) and both pooling calls."""

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.zoo = em.OursZoo()
            self.pool = em.PSRoINet()

        def forward(self, x, rois):
            return self.zoo(x), self.pool(torch.cat([x, x[:, :1]], 1), rois)

    torch.manual_seed(0)
    model = em.randomize_offsets(Net()).eval()
    x = torch.randn(1, 3, 16, 20)
    path = tmp_path_factory.mktemp("contract") / "net.onnx"
    result = exporter.export(model, (x, em.rois_for(1, 64, 80)), path, input_names=["x", "rois"], verify=False)
    return model, result, onnx.load(str(path))


def _value_shapes(model: onnx.ModelProto) -> dict[str, list]:
    out = {}
    for vi in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        out[vi.name] = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in vi.type.tensor_type.shape.dim]
    for t in model.graph.initializer:
        out[t.name] = list(t.dims)
    return out


def test_dcn_nodes_attribute_names_and_types_equal_contract(exported):
    _, _, model = exported
    dcn = [n for n in model.graph.node if n.domain == DOMAIN]
    assert {n.op_type for n in dcn} == {DEFORM_CONV2D.op_type, DEFORM_PSROI_POOL.op_type}
    for n in dcn:
        spec = contract.OPS[n.op_type]
        got = {a.name: a.type for a in n.attribute}
        # every contract attribute written explicitly (kernel_shape too: W is static here)
        assert sorted(got) == sorted(spec.attr_names), n.name
        for a in spec.attrs:
            assert got[a.name] == ONNX_KIND[a.kind], (n.name, a.name)
            if a.kind == contract.INTS:
                assert len(helper.get_attribute_value(next(x for x in n.attribute if x.name == a.name))) == a.length


def test_dcn_nodes_input_order_equals_contract(exported):
    _, _, model = exported
    shapes = _value_shapes(model)
    inits = {t.name for t in model.graph.initializer}
    for n in model.graph.node:
        if n.domain != DOMAIN:
            continue
        spec = contract.OPS[n.op_type]
        assert len(n.input) <= len(spec.inputs)
        assert all(n.input), f"{n.name}: empty optional input in the middle"
        s = {name: shapes[i] for name, i in zip(spec.input_names, n.input)}
        if n.op_type == DEFORM_CONV2D.op_type:
            X, W, off = s["X"], s["W"], s["offset"]
            assert n.input[1] in inits and len(W) == 4
            kh, kw = W[2], W[3]
            og = next(a.i for a in n.attribute if a.name == "offset_group")
            assert off[1] == 2 * og * kh * kw, n.name  # offset is input 2
            if "B" in s:
                assert s["B"] == [W[0]]
            if "mask" in s:
                assert "B" in s, "mask without B: the contract writes zeros for B"
                assert s["mask"][1] == og * kh * kw
            assert X[1] == W[1] * next(a.i for a in n.attribute if a.name == "group")
        else:
            assert s["rois"][1] == 5
            if "trans" in s:
                assert s["trans"][1] % 2 == 0
            no_trans = next(a.i for a in n.attribute if a.name == "no_trans")
            assert no_trans == (0 if "trans" in s else 1)


def test_optional_inputs_follow_the_contract(exported):
    _, result, model = exported
    nodes = {n.name: n for n in model.graph.node if n.domain == DOMAIN}
    assert len(nodes["zoo.v1"].input) == 4 and nodes["zoo.v1"].input[3] == "zoo.v1.bias"  # v1 + bias
    assert len(nodes["zoo.plain_v1"].input) == 3  # v1 without bias: 3 inputs
    assert len(nodes["zoo.plain_v2"].input) == 5  # v2 + bias
    v2 = nodes["zoo.v2"]  # v2 without bias: zeros for B
    assert len(v2.input) == 5
    b = next(t for t in model.graph.initializer if t.name == v2.input[3])
    assert not np.any(onnx.numpy_helper.to_array(b)) and list(b.dims) == [12]
    assert {o.domain: o.version for o in model.opset_import}[DOMAIN] == DOMAIN_VERSION
    assert not [n for n in model.graph.node if n.domain == DOMAIN and n.op_type in contract.FORBIDDEN_OP_TYPES]


def test_schemas_equal_contract():
    schemas.register()
    schemas.register()  # idempotent
    for spec in (DEFORM_CONV2D, DEFORM_PSROI_POOL):
        s = onnx.defs.get_schema(spec.op_type, DOMAIN_VERSION, DOMAIN)
        assert [i.name for i in s.inputs] == list(spec.input_names)
        opt = onnx.defs.OpSchema.FormalParameterOption.Optional
        assert [i.option == opt for i in s.inputs] == [i.optional for i in spec.inputs]
        assert [o.name for o in s.outputs] == list(spec.outputs)
        assert sorted(s.attributes) == sorted(spec.attr_names)
        for a in spec.attrs:
            sa = s.attributes[a.name]
            assert sa.type == {contract.INT: sa.type.INT, contract.INTS: sa.type.INTS, contract.FLOAT: sa.type.FLOAT}[a.kind]
            if a.default is not None:
                assert helper.get_attribute_value(sa.default_value) == (list(a.default) if a.kind == contract.INTS else a.default)
            assert sa.required == a.required
    for bad in contract.FORBIDDEN_OP_TYPES:
        assert not onnx.defs.has(bad, DOMAIN_VERSION, DOMAIN)


def test_translation_functions_take_torch_ops_arguments_in_contract_order():
    table = translation_table("plugin")
    for spec, op in ((DEFORM_CONV2D, torch.ops.dcn.deform_conv2d.default),
                     (DEFORM_PSROI_POOL, torch.ops.dcn.deform_psroi_pool.default)):
        torch_args = [a.name for a in op._schema.arguments]
        fn_args = list(inspect.signature(table[op]).parameters)
        assert fn_args == torch_args  # FX may bind by keyword
        # the torch op = contract inputs then contract attributes (kernel_shape comes from W)
        n_attrs = len(torch_args) - len(spec.inputs)
        assert n_attrs == len([a for a in spec.attrs if a.name != "kernel_shape"])
    tv = torch.ops.torchvision.deform_conv2d.default
    assert list(inspect.signature(table[tv]).parameters) == [a.name for a in tv._schema.arguments]


def _single_conv_model(x_shape, w_shape, off_shape, **attrs):
    node = helper.make_node(DEFORM_CONV2D.op_type, ["X", "W", "offset"], ["Y"], domain=DOMAIN, name="conv", **attrs)
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, x_shape),
                                        helper.make_tensor_value_info("W", TensorProto.FLOAT, w_shape),
                                        helper.make_tensor_value_info("offset", TensorProto.FLOAT, off_shape)],
                          [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 19), helper.make_opsetid(DOMAIN, 1)],
                             ir_version=10)


def test_shape_inference_concrete_and_symbolic():
    schemas.register()
    # oH = (11 + 1 + 0 - 1*2 - 1) // 2 + 1 = 5, oW = (13 + 2 + 1 - 2*4 - 1) // 1 + 1 = 8
    m = _single_conv_model([2, 4, 11, 13], [6, 2, 3, 5], [2, 60, 5, 8], strides=[2, 1], pads=[1, 2, 0, 1],
                           dilations=[1, 2], group=2, offset_group=2, kernel_shape=[3, 5])
    y = onnx.shape_inference.infer_shapes(m, strict_mode=True).graph.output[0]
    assert [d.dim_value for d in y.type.tensor_type.shape.dim] == [2, 6, 5, 8]
    m = _single_conv_model(["N", 4, "H", "W"], [6, 2, 3, 5], ["N", 60, "oh", "ow"], group=2, offset_group=2)
    y = onnx.shape_inference.infer_shapes(m, strict_mode=True).graph.output[0]
    dims = y.type.tensor_type.shape.dim
    assert [dims[0].dim_param, dims[1].dim_value, dims[2].dim_param, dims[3].dim_param] == ["N", 6, "oh", "ow"]


def test_shape_inference_rejects_contract_violations():
    schemas.register()
    m = _single_conv_model([1, 4, 8, 8], [6, 4, 3, 3], [1, 18, 8, 8], pads=[1, 1, 1, 1], kernel_shape=[3, 5])
    with pytest.raises(Exception, match="kernel_shape is \\[3, 5\\], expected W's spatial shape \\[3, 3\\]"):
        onnx.shape_inference.infer_shapes(m, strict_mode=True)
    m = _single_conv_model([1, 4, 8, 8], [6, 4, 3, 3], [1, 18, 8, 8], pads=[1, 1])
    with pytest.raises(Exception, match="pads has 2 values \\[1, 1\\], expected 4"):
        onnx.shape_inference.infer_shapes(m, strict_mode=True)
    m = _single_conv_model([1, 4, 8, 8], [6, 4, 3, 3], [1, 36, 8, 8], pads=[1, 1, 1, 1])
    with pytest.raises(Exception, match="offset has 36 channels, expected 2\\*offset_group\\*kH\\*kW = 18"):
        onnx.shape_inference.infer_shapes(m, strict_mode=True)
    m = _single_conv_model([1, 4, 8, 8], [6, 4, 3, 3], [1, 18, 7, 8], pads=[1, 1, 1, 1])
    with pytest.raises(Exception, match="offset has height 7, expected the output's 8"):
        onnx.shape_inference.infer_shapes(m, strict_mode=True)
    m = _single_conv_model([1, 4, 8, 8], [6, 4, 3, 3], [1, 18, 8, 8])
    m.graph.input[1].type.tensor_type.elem_type = TensorProto.FLOAT16
    with pytest.raises(Exception, match="different element types"):
        onnx.shape_inference.infer_shapes(m, strict_mode=True)


def _below_minimum_cases():
    for spec in contract.specs():
        for a in spec.attrs:
            if a.minimum is not None:
                yield pytest.param(spec, a, id=f"{spec.op_type}-{a.name}")


@pytest.mark.parametrize("spec,attr", list(_below_minimum_cases()))
def test_shape_inference_names_an_attribute_below_its_minimum(spec, attr):
    """Every integer attribute the contract bounds below (Attr.minimum), generated from the specs: one value under
    the minimum is named with the node before the op's inference divides by it or counts with it."""
    schemas.register()
    valid = {contract.INT: 1, contract.FLOAT: 0.0625}  # every required attribute's minimum is at most 1
    attrs = {a.name: [1] * a.length if a.kind == contract.INTS else valid[a.kind] for a in spec.attrs if a.required}
    attrs[attr.name] = ([attr.minimum - 1] + [attr.minimum] * (attr.length - 1) if attr.kind == contract.INTS
                        else attr.minimum - 1)
    elem = {None: TensorProto.FLOAT, "float32": TensorProto.FLOAT, contract.INDEX: TensorProto.INT64}
    ins = [helper.make_tensor_value_info(i.name, elem[i.dtype], None) for i in spec.inputs]
    node = helper.make_node(spec.op_type, [i.name for i in spec.inputs], list(spec.outputs), domain=DOMAIN,
                            name="n1", **attrs)
    g = helper.make_graph([node], "g", ins, [helper.make_tensor_value_info(o, TensorProto.FLOAT, None)
                                             for o in spec.outputs])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 19), helper.make_opsetid(DOMAIN, DOMAIN_VERSION)],
                          ir_version=10)
    shown = attrs[attr.name]
    want = f"{spec.op_type} 'n1': attribute {attr.name} = {shown}, expected {'values ' if attr.kind == contract.INTS else ''}" \
           f">= {attr.minimum}"
    with pytest.raises(onnx.shape_inference.InferenceError, match=re.escape(want)):
        onnx.shape_inference.infer_shapes(m, strict_mode=True)
    with pytest.raises(ContractError, match=re.escape(want)):  # dcn-build's check before TensorRT's parser too
        contract.check_node_attributes(spec.op_type, "n1", attrs)


def test_shape_inference_names_impossible_convolution_shapes():
    schemas.register()
    cases = [
        (([1, 4, 2, 9], [6, 4, 5, 3], [1, 30, "oh", "ow"], {}),
         "DeformConv2d 'conv': X's height 2 with pads 0, 0, dilation 1 and kernel 5 gives an output height -2, expected >= 1"),
        (([1, 4, 7, 9], [6, 3, 3, 3], [1, 18, 5, 7], {}), "W has 3 input channels, expected X's 4 / group 1"),
        (([1, 4, 7, 9], [5, 2, 3, 3], [1, 18, 5, 7], dict(group=2)), "W has 5 output channels, expected a multiple of group 2"),
        (([1, 4, 7, 9], [6, 4, 3, 3], [1, 54, 5, 7], dict(offset_group=3)), "X has 4 channels, expected a multiple of offset_group 3"),
    ]
    for (x, w, off, attrs), want in cases:
        with pytest.raises(onnx.shape_inference.InferenceError, match=re.escape(want)):
            onnx.shape_inference.infer_shapes(_single_conv_model(x, w, off, **attrs), strict_mode=True)
