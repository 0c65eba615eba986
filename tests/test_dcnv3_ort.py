"""dcn::DCNv3 / dcn::DCNv4 in ONNX Runtime (libdcn_ort, plugins/ops/dcnv3/dcnv3_ort.h) against the float64
reference on the awkward sweep, float32 and float16, 1 and 2 threads (equal bit for bit); errors one
line naming op, node, attribute / input, got and expected; the schemas' shape inference."""
from __future__ import annotations

import re

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from helpers.built_libs import require
from helpers.nonfinite import assert_same_nonfinite
from helpers.dcn_sweep import CASES, by_name, with_infinite_masks
from exporter import schemas
from exporter.ops.dcnv3.reference import dcnv3
from exporter.ops.dcnv4.reference import dcnv4
from dcn_base.tolerance import tolerance
from trt_runtime import plugins
from helpers.ci_policy import require_module

ort = require_module("onnxruntime")
NP = {"float32": np.float32, "float16": np.float16}
ETYPE = {np.float32: TensorProto.FLOAT, np.float16: TensorProto.FLOAT16}


def dcn_model(op: str, attrs: dict, dtype=np.float32, name: str = "blk.dcn", shapes=None) -> bytes:
    names = ["X", "offset", "mask"] if op == "DCNv3" else ["X", "offset_mask"]
    node = helper.make_node(op, names, ["Y"], domain="dcn", name=name, **attrs)
    inputs = [helper.make_tensor_value_info(n, ETYPE[dtype], (shapes or {}).get(n)) for n in names]
    g = helper.make_graph([node], "g", inputs, [helper.make_tensor_value_info("Y", ETYPE[dtype], None)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 19), helper.make_opsetid("dcn", 1)])
    m.ir_version = 10
    return m.SerializeToString()


@pytest.fixture(scope="module")
def lib() -> str:
    return str(require(plugins.ort_library))


def session(lib, model: bytes, threads: int = 1):
    so = ort.SessionOptions()
    so.register_custom_ops_library(lib)
    so.intra_op_num_threads = threads
    so.log_severity_level = 4
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def run_both(lib, case, dtype, threads=1):
    """(DCNv3 output, DCNv4 output, DCNv3 reference, DCNv4 reference) on the inputs rounded to dtype."""
    x, off, m, om = (t.numpy().astype(dtype) for t in (case.x, case.offset, case.mask, case.offset_mask))
    y3 = session(lib, dcn_model("DCNv3", case.attrs(), dtype), threads).run(None, {"X": x, "offset": off,
                                                                                   "mask": m})[0]
    y4 = session(lib, dcn_model("DCNv4", case.attrs(), dtype), threads).run(None, {"X": x, "offset_mask": om})[0]
    t = lambda a: torch.from_numpy(a.astype(np.float64))  # noqa: E731
    r3 = dcnv3(t(x), t(off), t(m), **case.attrs()).numpy()
    r4 = dcnv4(t(x), t(om), **case.attrs()).numpy()
    return y3, y4, r3, r4


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_ort_ops_match_reference(lib, case, dtype):
    y3, y4, r3, r4 = run_both(lib, case, NP[dtype])
    assert y3.dtype == NP[dtype] and y3.shape == r3.shape == y4.shape == (case.N, *case.out_hw, case.C)
    atol, rtol = tolerance(dtype)
    np.testing.assert_allclose(y3.astype(np.float64), r3, atol=atol, rtol=rtol)
    np.testing.assert_allclose(y4.astype(np.float64), r4, atol=atol, rtol=rtol)


def test_infinite_mask_on_a_neighbour_is_inf(lib):
    """mask * bilinear where each sample sits on a neighbour (weights 1, 0, 0, 0): an infinite mask gives
    the reference's +-inf (folded into the weights, 0 * inf had made NaN), and NaN only where the
    reference has it (+inf and -inf summed over a group's points)."""
    case = with_infinite_masks(by_name("k3"), seed=4)
    y3, y4, r3, r4 = run_both(lib, case, np.float32)
    for got, want in ((y3, r3), (y4, r4)):
        assert np.isposinf(want).any() and np.isneginf(want).any() and np.isfinite(want).any()
        assert_same_nonfinite(got, want)
        finite = np.isfinite(want)
        np.testing.assert_allclose(got[finite], want[finite], atol=tolerance("float32")[0],
                                   rtol=tolerance("float32")[1])


@pytest.mark.parametrize("name", ["batch33", "g32-cg4"])
def test_threads_change_nothing(lib, name):
    case = by_name(name)
    one, two = run_both(lib, case, np.float32, 1), run_both(lib, case, np.float32, 2)
    np.testing.assert_array_equal(one[0], two[0])
    np.testing.assert_array_equal(one[1], two[1])


@pytest.mark.parametrize("op,change,feeds_fix,message", [
    ("DCNv3", dict(group=3), None,
     "DCNv3 'blk.dcn': X has 16 channels, expected group*group_channels = 3*4 = 12"),
    ("DCNv3", dict(kernel_shape=[3, 40]), None,
     "DCNv3 'blk.dcn': attribute kernel_shape = [3, 40], expected values <= 32 (limit)"),
    ("DCNv4", dict(remove_center=1, kernel_shape=[4, 4]), None,
     "DCNv4 'blk.dcn': attribute remove_center = 1 with kernel_shape = [4, 4], expected an odd square kernel"),
    ("DCNv3", dict(offset_scale=float("inf")), None,
     "DCNv3 'blk.dcn': attribute offset_scale = inf, expected a finite value"),
    ("DCNv3", {}, dict(offset=lambda a: a[..., :-2]),
     "DCNv3 'blk.dcn': offset has shape [1, 7, 9, 70], expected [1, 7, 9, group*P*2 = 72] (P = 9)"),
    ("DCNv4", {}, dict(offset_mask=lambda a: a[..., :100]),
     "DCNv4 'blk.dcn': offset_mask has shape [1, 7, 9, 100], expected [1, 7, 9, K >= group*P*3 = 108] (P = 9)"),
    ("DCNv3", {}, dict(mask=lambda a: a[:, :-1]),
     "DCNv3 'blk.dcn': mask has shape [1, 6, 9, 36], expected [1, 7, 9, group*P = 36] (P = 9)"),
])
def test_ort_errors_name_op_node_and_thing(lib, op, change, feeds_fix, message):
    case = by_name("k3")
    attrs = {**case.attrs(), **change}
    feeds = {"X": case.x, "offset": case.offset, "mask": case.mask} if op == "DCNv3" else \
        {"X": case.x, "offset_mask": case.offset_mask}
    feeds = {k: v.numpy().astype(np.float32) for k, v in feeds.items()}
    for k, f in (feeds_fix or {}).items():
        feeds[k] = np.ascontiguousarray(f(feeds[k]))
    with pytest.raises(Exception) as e:
        session(lib, dcn_model(op, attrs)).run(None, feeds)
    assert message in str(e.value)
    assert "\n" not in str(e.value).strip()


def test_required_attribute_missing(lib):
    attrs = {k: v for k, v in by_name("k3").attrs().items() if k != "group_channels"}
    with pytest.raises(Exception, match="DCNv3 'blk.dcn': attribute group_channels is missing, expected an INT"):
        session(lib, dcn_model("DCNv3", attrs))


def test_schema_shape_inference():
    schemas.register()
    case = by_name("k3x5-asym-os2")
    ho, wo = case.out_hw
    for op, shapes in (("DCNv3", {"X": ["n", 9, 11, 15], "offset": ["n", ho, wo, 90], "mask": ["n", ho, wo, 45]}),
                       ("DCNv4", {"X": ["n", 9, 11, 15], "offset_mask": ["n", ho, wo, 136]})):
        m = onnx.load_from_string(dcn_model(op, case.attrs(), shapes=shapes))
        inferred = onnx.shape_inference.infer_shapes(m, strict_mode=True, check_type=True)
        dims = inferred.graph.output[0].type.tensor_type.shape.dim
        assert [d.dim_param or d.dim_value for d in dims] == ["n", ho, wo, 15], op
    bad = onnx.load_from_string(dcn_model("DCNv3", case.attrs(), shapes={"X": [1, 9, 11, 15],
                                                                         "offset": [1, ho, wo, 88], "mask": None}))
    with pytest.raises(Exception, match=r"DCNv3 '.*blk.dcn.*': offset has 88 channels, expected group\*P\*2 = 90"):
        onnx.shape_inference.infer_shapes(bad, strict_mode=True)
    # a zero stride or dilation, a negative pad: the contract's words, not a division by zero
    # (DCNv3: named before its channel counts, which a kernel of 0 rows would turn into nonsense)
    for op, name, value, least in (("DCNv4", "strides", [0, 0], 1), ("DCNv4", "dilations", [1, 0], 1),
                                   ("DCNv4", "pads", [1, -1, 0, 1], 0), ("DCNv3", "kernel_shape", [0, 5], 1)):
        given = {"X": [1, 9, 11, 15], "offset_mask": [1, ho, wo, 136]} if op == "DCNv4" else \
            {"X": [1, 9, 11, 15], "offset": [1, ho, wo, 90], "mask": [1, ho, wo, 45]}
        wrong = onnx.load_from_string(dcn_model(op, dict(case.attrs(), **{name: value}), shapes=given))
        said = re.escape(f"attribute {name} = {value}, expected values >= {least}")
        with pytest.raises(onnx.shape_inference.InferenceError, match=rf"{op} '.*blk.dcn.*': {said}"):
            onnx.shape_inference.infer_shapes(wrong, strict_mode=True)
