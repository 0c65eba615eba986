"""The TensorRT plugin of dcn::DeformRoIPool on the host harness (plugins/trt/testing, see
tests/test_trt_contract.py): the creator's fields against the contract, serialize round trip,
rejections naming layer / attribute / got / expected, the symbolic output shape (dynamic RoI
count), types (data / offset / output FP32 or FP16, rois FP32 always), onShapeChange validation,
enqueue without a GPU reporting the kernel's launch status. The kernel's launch, item mapping and
per-thread body (deform_roi_pool_launch.h, on deform_roi_pool_math.h) run on the host in
tests/test_host_kernels.py, bit for bit equal to deform_roi_pool_element (tests/test_deform_roi_pool.py).
"""
from __future__ import annotations

import ctypes
import re

import pytest

from exporter import contract
from exporter.ops.deform_roi_pool.spec import SPEC as DEFORM_ROI_POOL
from helpers.cpp_ops import OPS_DIR
from test_trt_contract import Harness, _values, hx  # noqa: F401  (the harness fixture)

FIELDS = dict(pooled_height=7, pooled_width=5, spatial_scale=0.0625, sampling_ratio=2, gamma=0.1)
OP = "DeformRoIPool"


@pytest.fixture
def log_cleared(hx):  # noqa: F811
    hx.log()
    yield


def _run(hx, h, shapes, out_shape, types):  # noqa: F811
    ranks, dims = Harness._flat(shapes)
    stage = ctypes.c_int32()
    rc = hx.L.dcn_harness_run(h, len(shapes), ranks, dims, (ctypes.c_int32 * len(types))(*[hx.enum(t) for t in types]),
                              len(out_shape), (ctypes.c_int64 * 8)(*out_shape), ctypes.byref(stage))
    return rc, stage.value


def test_serialize_roundtrip_and_defaults(hx, log_cleared):  # noqa: F811
    h = hx.create(OP, "roi_head.pool", FIELDS)
    assert h, hx.log()
    ser = hx.serialize(h)
    assert (ser["name"], ser["version"], ser["namespace"]) == (OP, "1", "")
    got = _values(ser)
    assert got["pooled_height"] == [7] and got["pooled_width"] == [5] and got["sampling_ratio"] == [2]
    assert got["spatial_scale"] == pytest.approx([0.0625]) and got["gamma"] == pytest.approx([0.1])
    assert {f["name"]: f["type"] for f in ser["fields"]} == {a.name: a.trt_type for a in DEFORM_ROI_POOL.attrs}
    assert hx.serialize(hx.roundtrip(h, "roi_head.pool")) == ser
    h2 = hx.create(OP, "p", {a.name: FIELDS[a.name] for a in DEFORM_ROI_POOL.attrs if a.required})
    assert h2, hx.log()
    vals = _values(hx.serialize(h2))
    assert vals["sampling_ratio"] == [0] and vals["gamma"] == pytest.approx([0.1])


@pytest.mark.parametrize("fields, message", [
    ({k: v for k, v in FIELDS.items() if k != "pooled_width"},
     "DeformRoIPool 'head': attribute pooled_width is missing, expected an INT (kINT32)"),
    (dict(FIELDS, sampling_ratio=-1), "DeformRoIPool 'head': attribute sampling_ratio = -1, expected >= 0"),
    (dict(FIELDS, pooled_height=0), "DeformRoIPool 'head': attribute pooled_height = 0, expected >= 1"),
    (dict(FIELDS, spatial_scale=0.0), "DeformRoIPool 'head': attribute spatial_scale = 0, expected a finite value > 0"),
    (dict(FIELDS, gamma=float("inf")), "DeformRoIPool 'head': attribute gamma = inf, expected a finite value"),
    (dict(FIELDS, pooled_height=257), "DeformRoIPool 'head': attribute pooled_height = 257, expected <= 256 (limit)"),
    (dict(FIELDS, pooled_width=65536),
     "DeformRoIPool 'head': attribute pooled_width = 65536, expected <= 256 (limit)"),
    (dict(FIELDS, pooled_height=2**31 - 1),
     "DeformRoIPool 'head': attribute pooled_height = 2147483647, expected <= 256 (limit)"),
    (dict(FIELDS, sampling_ratio=65), "DeformRoIPool 'head': attribute sampling_ratio = 65, expected <= 64 (limit)"),
])
@pytest.mark.parametrize("phase", [0, 1], ids=["build", "runtime"])  # createPlugin at build and deserialization
def test_create_rejects_naming_everything(hx, log_cleared, fields, message, phase):  # noqa: F811
    assert not hx.create(OP, "head", fields, phase=phase)
    log = hx.log()
    assert message in log, log


def test_limits_at_their_bound_are_accepted(hx, log_cleared):  # noqa: F811
    lim = contract.LIMITS[OP]
    h = hx.create(OP, "p", dict(FIELDS, pooled_height=lim["pooled_height"], pooled_width=lim["pooled_width"],
                                sampling_ratio=lim["sampling_ratio"]))
    assert h, hx.log()
    rc, got, _ = hx.output_shape(h, [[1, 4, 8, 8], [3, 5]], [[False] * 4, [True, False]])
    assert rc == 0 and got == [3, 4, lim["pooled_height"], lim["pooled_width"]]


def test_configure_refuses_an_output_past_2_to_the_58(hx, log_cleared):  # noqa: F811
    """R * C * pooled_height * pooled_width is formed with overflow checks (the kernel's index space)."""
    h = hx.create(OP, "p", FIELDS)
    rc, _ = hx.configure(h, [[1, 2**31, 8, 8], [2**31, 5]], [2**31, 2**31, 7, 5])
    assert rc != 0
    assert ("DeformRoIPool 'p': output size R*C*pooled_height*pooled_width overflows (R = 2147483648, "
            "C = 2147483648), expected at most 2^58 elements [configurePlugin]") in hx.log()


def test_output_shape_has_a_dynamic_roi_count(hx, log_cleared):  # noqa: F811
    h = hx.create(OP, "p", FIELDS)
    rc, got, const = hx.output_shape(h, [[2, 256, 38, 50], [300, 5], [300, 2, 7, 5]],
                                     [[True, False, True, True], [True, False], [True, False, False, False]])
    assert rc == 0 and got == [300, 256, 7, 5] and const == [False, True, True, True]


def test_types_rois_fp32_data_fp32_or_fp16(hx, log_cleared):  # noqa: F811
    h = hx.create(OP, "p", FIELDS)
    for t in ("FP32", "FP16"):
        types = [t, "FP32", t, t]  # data, rois, offset, Y
        for pos in range(4):
            assert hx.supports(h, pos, types, ["LINEAR"] * 4, 3), (t, pos)
        assert hx.output_type(h, types[:3]) == (0, hx.enum(t))
        assert hx.output_type(h, types[:2]) == (0, hx.enum(t))
    assert not hx.supports(h, 1, ["FP16", "FP16", "FP16", "FP16"], ["LINEAR"] * 4, 3)
    assert not hx.supports(h, 2, ["FP16", "FP32", "FP32", "FP16"], ["LINEAR"] * 4, 3)
    assert not hx.supports(h, 1, ["FP32", "FP32", "FP32", "FP32"], ["LINEAR", "CHW32", "LINEAR", "LINEAR"], 3)
    rc, _ = hx.output_type(h, ["FP16", "FP16"])
    assert rc != 0
    assert "DeformRoIPool 'p': rois has type FP16, expected FP32 (RoI coordinates are never FP16)" in hx.log()


def test_enqueue_without_gpu_reports_and_returns_the_status(hx, log_cleared):  # noqa: F811
    p = hx.attach(hx.create(OP, "roi_head.pool", FIELDS))
    rc, stage = _run(hx, p, [[1, 8, 10, 12], [4, 5], [4, 2, 7, 5]], [4, 8, 7, 5], ["FP16", "FP32", "FP16"])
    log = hx.log()
    assert stage == 2 and rc != 0, log
    # the harness hands null pointers: refused before the launch, reported (the launch's own status on host
    # memory: tests/test_trt_robustness.py's dry run)
    assert re.search(r"RECORDER\(\d+\): DeformRoIPool 'roi_head.pool': data has shape \[1,8,10,12\] and a null "
                     r"device pointer, expected its data \[enqueue\]", log), log
    # no RoIs: nothing to launch
    assert _run(hx, p, [[1, 8, 10, 12], [0, 5]], [0, 8, 7, 5], ["FP32", "FP32"]) == (0, 2)


def test_onshapechange_validates_runtime_shapes(hx, log_cleared):  # noqa: F811
    p = hx.attach(hx.create(OP, "p", FIELDS))
    rc, stage = _run(hx, p, [[1, 8, 10, 12], [4, 5], [4, 2, 5, 7]], [4, 8, 7, 5], ["FP32"] * 3)
    assert stage == 1 and rc != 0
    assert ("DeformRoIPool 'p': offset has shape [4, 2, 5, 7], expected [4, 2, 7, 5] "
            "([R, 2, pooled_height, pooled_width]) [onShapeChange]") in hx.log()


def test_ort_op_reads_attributes_from_the_table():
    src = (OPS_DIR / "deform_roi_pool" / "deform_roi_pool_ort.cpp").read_text()
    for a in DEFORM_ROI_POOL.attrs:
        assert f"attrs_.field(f[dcn::kRP_{a.name.upper()}]" in src, a.name


def test_an_empty_offset_counts_as_absent(hx, log_cleared):  # noqa: F811
    """An ONNX input named "" reaches the plugin as a rank-0 tensor: DeformRoIPool's offset then is absent, as
    the other ops' optional inputs (it was refused: 'offset has rank 0, expected 4')."""
    h = hx.create(OP, "rp", FIELDS)
    shapes = [[2, 64, 32, 32], [10, 5], []]
    rc, out, _ = hx.output_shape(h, shapes, [[True, False, True, True], [True, False], []])
    assert rc == 0 and out == [10, 64, 7, 5], hx.log()
    rc, _ = hx.configure(h, shapes, out)
    assert rc == 0, hx.log()
    rc, stage = _run(hx, hx.roundtrip(h, "rp"), shapes, out, ["FP32", "FP32", "FP32"])
    assert stage == 2, hx.log()  # onShapeChange took it; enqueue then fails here (no GPU), reported
