"""The TensorRT plugin of dcn::MultiScaleDeformableAttention through the host harness (the real plugin
sources and CUDA kernels compiled against TensorRT 10.14 headers, no libnvinfer, no GPU): creator fields
and round trip, symbolic output shape, formats (value FP32/FP16, index inputs INT32/INT64 of one type,
locations FP32 always), type errors, shape validation with the common messages, enqueue errors."""
from __future__ import annotations

import re

import pytest

from exporter import contract
from helpers.cuda_check import check_build
from test_trt_contract import Harness

OP = "MultiScaleDeformableAttention"
# value, spatial_shapes, level_start_index, sampling_locations, attention_weights
SHAPES = [[2, 106, 4, 8], [3, 2], [3], [2, 300, 4, 3, 4, 2], [2, 300, 4, 3, 4]]
OUT = [2, 300, 32]


@pytest.fixture(scope="module")
def hx():
    h = Harness(check_build(need_trt=True).harness)
    yield h
    h.close()


@pytest.fixture()
def clean(hx):
    hx.log()
    yield


def test_creator_fields_and_roundtrip(hx, clean):
    spec = contract.OPS[OP]
    h = hx.create(OP, "decoder.layers.0.cross_attn", {"im2col_step": 128})
    assert h, hx.log()
    ser = hx.serialize(h)
    assert (ser["name"], ser["version"], ser["namespace"]) == (OP, "1", "")
    assert {f["name"]: (f["type"], f["values"]) for f in ser["fields"]} == {"im2col_step": ("kINT32", [128])}
    assert [a.name for a in spec.attrs] == ["im2col_step"]
    assert hx.serialize(hx.roundtrip(h, "decoder.layers.0.cross_attn")) == ser
    d = hx.create(OP, "d", {})
    assert {f["name"]: f["values"] for f in hx.serialize(d)["fields"]} == {"im2col_step": [64]}
    assert not hx.create(OP, "bad", {"im2col_step": 1.5})
    assert "MultiScaleDeformableAttention 'bad': attribute im2col_step has the wrong type, expected an INT (kINT32)" \
        in hx.log()


def test_output_shape_is_symbolic(hx, clean):
    h = hx.create(OP, "a", {})
    sym = [[True, True, False, False], [False, False], [False], [True, True, False, False, False, False],
           [True, True, False, False, False]]
    rc, got, const = hx.output_shape(h, SHAPES, sym)
    assert rc == 0, hx.log()
    assert got == OUT and const == [False, False, True]
    sh = [list(s) for s in SHAPES]
    sh[0][0] = sh[3][0] = sh[4][0] = 8
    sh[3][1] = sh[4][1] = 22223
    rc, got, _ = hx.output_shape(h, sh, sym)
    assert got == [8, 22223, 32]


def test_formats(hx, clean):
    h = hx.create(OP, "a", {})
    lin = ["LINEAR"] * 6
    for t in ("FP32", "FP16"):
        for it in ("INT32", "INT64"):
            types = [t, it, it, "FP32", t, t]
            for pos in range(6):
                assert hx.supports(h, pos, types, lin, 5), (t, it, pos)
            assert hx.output_type(h, types[:5]) == (0, hx.enum(t))
    assert not hx.supports(h, 2, ["FP32", "INT64", "INT32", "FP32", "FP32", "FP32"], lin, 5)  # one index type
    assert not hx.supports(h, 3, ["FP16", "INT64", "INT64", "FP16", "FP16", "FP16"], lin, 5)  # half locations
    assert not hx.supports(h, 4, ["FP16", "INT64", "INT64", "FP32", "FP32", "FP16"], lin, 5)  # weights follow value
    assert not hx.supports(h, 1, ["FP32", "FP32", "FP32", "FP32", "FP32", "FP32"], lin, 5)
    assert not hx.supports(h, 0, ["INT32", "INT64", "INT64", "FP32", "INT32", "INT32"], lin, 5)
    assert not hx.supports(h, 0, ["FP16"] * 6, ["CHW32"] * 6, 5)


@pytest.mark.parametrize("types,message", [
    (["FP16", "INT64", "INT64", "FP16", "FP16"],
     "MultiScaleDeformableAttention 'a': sampling_locations has type FP16, expected FP32 (sampling coordinates are "
     "never FP16)"),
    (["FP32", "INT64", "INT32", "FP32", "FP32"],
     "MultiScaleDeformableAttention 'a': level_start_index has type INT32, expected INT64 like spatial_shapes"),
    (["FP32", "FP32", "FP32", "FP32", "FP32"],
     "MultiScaleDeformableAttention 'a': spatial_shapes has type FP32, expected INT32 or INT64"),
    (["FP16", "INT32", "INT32", "FP32", "FP32"],
     "MultiScaleDeformableAttention 'a': attention_weights has type FP32, expected FP16 like value"),
])
def test_type_errors_name_the_input(hx, clean, types, message):
    h = hx.create(OP, "a", {})
    rc, _ = hx.output_type(h, types)
    assert rc != 0
    assert message in hx.log()


def test_configure_rejects_bad_shapes_with_the_common_messages(hx, clean):
    h = hx.create(OP, "dec.0.attn", {})
    rc, ws = hx.configure(h, SHAPES, OUT)
    assert rc == 0 and ws == 0, hx.log()
    bad = [list(s) for s in SHAPES]
    bad[3][3] = 2
    rc, _ = hx.configure(h, bad, OUT)
    assert rc != 0
    assert ("MultiScaleDeformableAttention 'dec.0.attn': sampling_locations has shape [2, 300, 4, 2, 4, 2], expected "
            "[N, Lq, M, L, P, 2] = [2, 300, 4, 3, 4, 2] [configurePlugin]") in hx.log()
    rc, _ = hx.configure(h, SHAPES[:4], OUT)
    assert rc != 0
    assert "got 4 inputs, expected 5 to 5" in hx.log()


def test_enqueue_without_gpu_reports_and_empty_output_does_nothing(hx, clean):
    h = hx.attach(hx.create(OP, "dec.0.attn", {}))
    rc, stage = hx.run(h, SHAPES, OUT)
    log = hx.log()
    assert stage == 2 and rc != 0, log
    assert re.search(r"RECORDER\(\d+\): MultiScaleDeformableAttention 'dec.0.attn': value has shape "
                     r"\[2,106,4,8\] and a null device pointer", log), log
    empty = [list(s) for s in SHAPES]
    for i in (0, 3, 4):
        empty[i][0] = 0
    assert hx.run(h, empty, [0, 300, 32]) == (0, 2)


def test_onshapechange_validates(hx, clean):
    h = hx.attach(hx.create(OP, "x", {}))
    bad = [list(s) for s in SHAPES]
    bad[2] = [4]
    rc, stage = hx.run(h, bad, OUT)
    assert stage == 1 and rc != 0
    assert "MultiScaleDeformableAttention 'x': level_start_index has shape [4], expected [L] = [3] [onShapeChange]" \
        in hx.log()
