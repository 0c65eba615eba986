"""The DCNv3 / DCNv4 TensorRT plugins on the host (plugins/ops/dcnv3/dcnv3_plugin.cpp, plugins/ops/dcnv4/
dcnv4_plugin.cpp), compiled against TensorRT 10.14 headers into the host harness of
scripts/check_cuda_build.sh and driven through TensorRT's interfaces (tests/test_trt_contract.py's Harness):
the creators' fields equal the contract, createPlugin / getFieldsToSerialize / createPlugin (runtime)
round-trip, errors name op, layer, attribute / input, got and expected, getOutputShapes gives the contract's
[N, Ho, Wo, C] as expressions of X's dynamic dims, one FP32 / FP16 linear type for every tensor, configure
rejects inconsistent shapes, enqueue without a GPU reports and returns its status, empty batches do nothing.
"""
from __future__ import annotations

import json
import re

import pytest

from helpers.cuda_check import check_build
from helpers.dcn_sweep import CASES, by_name
from exporter.ops.dcnv3.spec import SPEC as DCNV3
from exporter.ops.dcnv4.spec import SPEC as DCNV4
from test_trt_contract import Harness

OPS = {"DCNv3": DCNV3, "DCNv4": DCNV4}


@pytest.fixture(scope="module")
def hx():
    h = Harness(check_build(need_trt=True).harness)
    yield h
    h.close()


@pytest.fixture
def clean_log(hx):
    hx.log()
    yield


def io(case, op):
    ho, wo = case.out_hw
    shapes = [[case.N, case.H, case.W, case.C]]
    if op == "DCNv3":
        shapes += [[case.N, ho, wo, case.group * case.P * 2], [case.N, ho, wo, case.group * case.P]]
    else:
        shapes += [list(case.offset_mask.shape)]
    return shapes, [case.N, ho, wo, case.C]


def fields(case):
    return {k: (float(v) if k == "offset_scale" else v) for k, v in case.attrs().items()}


@pytest.mark.parametrize("op", list(OPS))
def test_creators_report_the_contract_fields(hx, op):
    c = next(c for c in json.loads(hx.text(hx.L.dcn_harness_describe)) if c["name"] == op)
    assert c["interface"] == "PLUGIN CREATOR_V3ONE" and c["version"] == "1" and c["namespace"] == ""
    assert [(f["name"], f["type"], f["length"]) for f in c["fields"]] == \
        [(a.name, a.trt_type, a.length) for a in OPS[op].attrs]


@pytest.mark.parametrize("op", list(OPS))
def test_serialize_roundtrip_and_defaults(hx, clean_log, op):
    f = fields(by_name("k3x5-asym-os2"))
    h = hx.create(op, "stages.1.blocks.0.dcn", f)
    assert h, hx.log()
    ser = hx.serialize(h)
    got = {x["name"]: x["values"] for x in ser["fields"]}
    assert got["offset_scale"] == pytest.approx([2.0])
    assert {k: v for k, v in got.items() if k != "offset_scale"} == \
        {k: (v if isinstance(v, list) else [v]) for k, v in f.items() if k != "offset_scale"}
    assert hx.serialize(hx.roundtrip(h, "stages.1.blocks.0.dcn")) == ser
    h2 = hx.create(op, "d", {"kernel_shape": [3, 3], "group_channels": 16})
    vals = {x["name"]: x["values"] for x in hx.serialize(h2)["fields"]}
    assert vals["strides"] == [1, 1] and vals["pads"] == [0, 0, 0, 0] and vals["group"] == [1]
    assert vals["offset_scale"] == pytest.approx([1.0]) and vals["remove_center"] == [0]


@pytest.mark.parametrize("op,change,types,message", [
    ("DCNv3", dict(kernel_shape=None), None, "DCNv3 'head': attribute kernel_shape is missing, expected an INTS"),
    ("DCNv4", dict(group_channels=None), None, "DCNv4 'head': attribute group_channels is missing, expected an INT"),
    ("DCNv3", dict(offset_scale=1), dict(offset_scale="kINT32"),
     "DCNv3 'head': attribute offset_scale has the wrong type, expected a FLOAT (kFLOAT32); got kINT32"),
    ("DCNv4", dict(kernel_shape=[3, 64]), None,
     "DCNv4 'head': attribute kernel_shape = [3, 64], expected values <= 32 (limit)"),
    ("DCNv3", dict(remove_center=1, kernel_shape=[2, 2]), None,
     "DCNv3 'head': attribute remove_center = 1 with kernel_shape = [2, 2], expected an odd square kernel"),
    ("DCNv4", dict(group=0), None, "DCNv4 'head': attribute group = 0, expected >= 1"),
])
def test_create_rejects_with_one_line(hx, clean_log, op, change, types, message):
    f = {**fields(by_name("k3")), **change}
    f = {k: v for k, v in f.items() if v is not None}
    assert not hx.create(op, "head", f, types=types)
    assert message in hx.log()


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("case", [c for c in CASES if c.N], ids=[c.name for c in CASES if c.N])
def test_output_shape_follows_x_symbolically(hx, clean_log, op, case):
    shapes, want = io(case, op)
    h = hx.create(op, "d", fields(case))
    symbolic = [[True, True, True, False]] + [[True, True, True, False]] * (len(shapes) - 1)
    rc, got, const = hx.output_shape(h, shapes, symbolic)
    assert rc == 0, hx.log()
    assert got == want and const == [False, False, False, True]
    for H2, W2 in ((case.H + 7, case.W + 3), (64, 48)):
        sh = [list(s) for s in shapes]
        sh[0][1:3] = [H2, W2]
        _, got, _ = hx.output_shape(h, sh, symbolic)
        from exporter.contract import conv_out_size as out_size

        k, s, p, d = case.kernel, case.strides, case.pads, case.dilations
        assert got[1:3] == [out_size(H2, p[0], p[2], d[0], k[0], s[0]), out_size(W2, p[1], p[3], d[1], k[1], s[1])]


@pytest.mark.parametrize("op", list(OPS))
def test_formats_one_linear_type(hx, clean_log, op):
    n = len(OPS[op].inputs)
    h = hx.create(op, "d", fields(by_name("k3")))
    for t in ("FP32", "FP16"):
        for pos in range(n + 1):
            assert hx.supports(h, pos, [t] * (n + 1), ["LINEAR"] * (n + 1), n)
        assert hx.output_type(h, [t] * n) == (0, hx.enum(t))
    assert not hx.supports(h, 1, ["FP16", "FP32"] + ["FP16"] * (n - 1), ["LINEAR"] * (n + 1), n)
    assert not hx.supports(h, 0, ["INT8"] * (n + 1), ["LINEAR"] * (n + 1), n)
    assert not hx.supports(h, 0, ["FP16"] * (n + 1), ["CHW32"] * (n + 1), n)


@pytest.mark.parametrize("op", list(OPS))
def test_configure_and_shape_errors(hx, clean_log, op):
    case = by_name("k3")
    shapes, out = io(case, op)
    h = hx.create(op, "blk", fields(case))
    assert hx.configure(h, shapes, out) == (0, 0)  # no workspace
    bad = [list(s) for s in shapes]
    bad[1][3] = 70 if op == "DCNv3" else 100
    rc, _ = hx.configure(h, bad, out)
    assert rc != 0
    want = ("DCNv3 'blk': offset has shape [1, 7, 9, 70], expected [1, 7, 9, group*P*2 = 72] (P = 9) [configurePlugin]"
            if op == "DCNv3" else "DCNv4 'blk': offset_mask has shape [1, 7, 9, 100], expected [1, 7, 9, "
                                  "K >= group*P*3 = 108] (P = 9) [configurePlugin]")
    assert want in hx.log()
    bad = [list(s) for s in shapes]
    bad[0][3] = 12
    rc, _ = hx.configure(h, bad, out)
    assert rc != 0 and "X has 12 channels, expected group*group_channels = 4*4 = 16" in hx.log()


@pytest.mark.parametrize("op", list(OPS))
def test_enqueue_without_gpu_reports_and_empty_batch_does_nothing(hx, clean_log, op):
    case = by_name("k3")
    shapes, out = io(case, op)
    h = hx.attach(hx.create(op, "dcn.layer", fields(case)))
    rc, stage = hx.run(h, shapes, out)
    log = hx.log()
    assert stage == 2 and rc != 0, log
    assert re.search(rf"RECORDER\(\d+\): {op} 'dcn.layer': X has shape \[1,7,9,16\] and a null device pointer", log)
    for s in shapes:
        s[0] = 0
    out[0] = 0
    assert hx.run(h, shapes, out) == (0, 2)
