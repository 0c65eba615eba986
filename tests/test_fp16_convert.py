"""The float16 graph ``dcn-build`` makes for TensorRT 11 (trt_runtime.fp16_convert) keeps every input
an op's contract entry fixes to float32 (``Input(dtype="float32")``: RoIs, locations) float32 (and index
inputs, ``Input(dtype=INDEX)``, integer), for
every registered op: a single-node float32 model of each op (its reference.py ``example_inputs``),
converted, then run on ONNX Runtime with our float16 kernels, which refuse a float16 coordinate input.
The result is held to the float32 run within the float16 row of dcn_base.tolerance."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

from dcn_base.tolerance import error_ratio, tolerance
from exporter import ops
from exporter.contract import INDEX, specs
from helpers.built_libs import require
from test_ort_ops import make_model
from trt_runtime import plugins
from trt_runtime.fp16_convert import convert_to_float16

pytest.importorskip("onnxconverter_common", reason="onnxconverter-common (the float16 conversion) not installed")


@pytest.mark.parametrize("spec", specs(), ids=lambda s: s.op_type)
def test_fp16_conversion_keeps_the_contracts_float32_inputs(spec):
    require(plugins.ort_library)
    inputs, attrs = ops.part(spec.name, "reference").example_inputs()
    model = onnx.load_from_string(make_model(spec, inputs, attrs))
    half = convert_to_float16(model)
    node = next(n for n in half.graph.node if n.op_type == spec.op_type)
    types = {vi.name: vi.type.tensor_type.elem_type
             for vi in onnx.shape_inference.infer_shapes(half).graph.value_info} | \
            {vi.name: vi.type.tensor_type.elem_type for vi in half.graph.input}
    for i, inp in enumerate(spec.inputs):
        if i < len(node.input) and node.input[i]:
            want = {"float32": onnx.TensorProto.FLOAT, INDEX: onnx.TensorProto.INT64}.get(inp.dtype,
                                                                                  onnx.TensorProto.FLOAT16)
            assert types.get(node.input[i]) == want, (spec.op_type, inp.name, types.get(node.input[i]))
    feed = {n: v for n, v in inputs.items() if v is not None}
    want = plugins.ort_session(model.SerializeToString()).run(None, feed)[0]
    got = plugins.ort_session(half.SerializeToString()).run(None, feed)[0]  # ONNX Runtime accepts the graph
    assert got.dtype == np.float32 and got.shape == want.shape  # float32 I/O kept
    atol, rtol = tolerance("float16")
    assert error_ratio(got, want, atol * max(1.0, float(np.abs(want).max())), rtol) <= 1.0
