"""Robustness of the TensorRT plugins where TensorRT's and onnx-tensorrt's sources disagree with
what a plugin may assume, on the host (the harness of scripts/check_cuda_build.sh; no GPU):

- one cuBLAS handle per execution context, shared through the plugin resource registry
  (IPluginRegistry::acquirePluginResource), or a process-local registry when there is none
  (a library built without libnvinfer); none created or acquired in enqueue;
- the workspace asks for 256 bytes of slack and enqueue aligns its base (cublasSetWorkspace);
- an empty optional input (rank 0: the ONNX parser's null tensor for an input named "") is
  absent; trans is not checked when no_trans = 1; a used input with a null pointer is an error;
- registration: on load through getPluginRegistry(), handed over to getCreators(); the
  sources also compile without libnvinfer (DCN_TRT_NO_NVINFER), referencing none of it;
- the engine inspector check reads plugin layers in the JSON spellings TensorRT may use.
The same behaviour on a GPU is tests/test_trt_device.py.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import torch

from helpers.cuda_check import check_build
from exporter import contract
from test_trt_contract import POOL_FIELDS, SHAPES, conv_io, conv_workspace
from helpers.trt_device import DeviceHarness
from trt_runtime.build import check_plugin_layers, plugin_layer_report
from helpers.ci_policy import missing

NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="host-only: enqueue on dummy device pointers")


@pytest.fixture(scope="module")
def dx():
    r = check_build(need_trt=True)
    h = DeviceHarness(r.harness)
    h.build_dir = r.build
    yield h
    h.close()


@pytest.fixture(autouse=False)
def clean(dx):
    dx.log()
    dx.L.dcn_harness_use_registry(1)
    yield
    dx.L.dcn_harness_use_registry(1)


def _conv(dx, layer="c", s=SHAPES[0]):
    shapes, out, fields = conv_io(s)
    h = dx.create("DeformConv2d", layer, fields)
    assert h, dx.log()
    return h, shapes, out


# --------------------------------------------------------------------------- cuBLAS per context
@pytest.mark.parametrize("registry", [1, 0], ids=["trt-registry", "local-registry"])
def test_one_cublas_handle_per_context(dx, clean, registry):
    dx.L.dcn_harness_use_registry(registry)
    h, _, _ = _conv(dx)
    start = dx.resources()
    a = dx.attach_context(h, 101)
    b = dx.attach_context(h, 101)  # a second layer of the same execution context
    mid = dx.resources()
    assert mid["live"] == start["live"] + 1
    c = dx.attach_context(h, 102)  # another execution context: its own handle
    assert dx.resources()["live"] == start["live"] + 2
    if registry:
        new = {k: v for k, v in dx.resources()["keys"].items() if k not in start["keys"]}
        assert sorted(new.values()) == [1, 2] and all(k.startswith("dcn.cublas.") for k in new), new
        assert dx.resources()["acquires"] == start["acquires"] + 3
    else:
        assert dx.resources()["acquires"] == start["acquires"]  # not the TensorRT registry
    for x in (a, b, c):
        dx.destroy(x)
    end = dx.resources()
    assert end["live"] == start["live"] and end["keys"] == start["keys"]


def test_clone_of_an_attached_plugin_shares_its_handle(dx, clean):
    h, _, _ = _conv(dx)
    a = dx.attach_context(h, 108)
    start = dx.resources()
    c = dx.clone(a)
    assert c and dx.resources()["live"] == start["live"] and dx.resources()["acquires"] == start["acquires"] + 1
    dx.destroy(a)
    assert dx.resources()["live"] == start["live"]  # the clone still holds it
    dx.destroy(c)
    assert dx.resources()["live"] == start["live"] - 1


def test_build_phase_plugins_hold_no_handle(dx, clean):
    live = dx.resources()["live"]
    h, shapes, out = _conv(dx)
    assert dx.configure(h, shapes, out)[0] == 0
    assert dx.roundtrip(h, "c")
    assert dx.resources()["live"] == live


def test_enqueue_creates_and_acquires_nothing(dx, clean):
    h, shapes, out = _conv(dx)
    r = dx.attach_context(h, 103)
    before = dx.resources()
    for _ in range(3):
        dx.run(r, shapes, out)  # onShapeChange + enqueue (fails here: null pointers)
    after = dx.resources()
    assert (after["live"], after["acquires"], after["releases"]) == \
        (before["live"], before["acquires"], before["releases"])


def test_enqueue_before_attach_is_an_error(dx, clean):
    h, shapes, out = _conv(dx, "unattached")
    rc, stage = dx.run(h, shapes, out)
    assert rc != 0 and stage == 2
    assert "DeformConv2d 'unattached': enqueue before attachToContext, expected attachToContext first" in dx.log()


@NO_GPU
def test_enqueue_reports_the_cublas_status_of_attach(dx, clean):
    h, shapes, out = _conv(dx, "dcn.layer")
    r = dx.attach_context(h, 104)
    assert dx.shape_change(r, shapes, out, ["FP32"] * len(shapes)) == 0, dx.log()
    fake = [0x10000] * len(shapes)  # never dereferenced: nothing launches before the cuBLAS check
    rc = dx.enqueue(r, shapes, out, ["FP32"] * len(shapes), "FP32", fake, 0x20000, 0x30000, 0)
    log = dx.log()
    assert rc != 0
    assert re.search(r"RECORDER\(\d+\): DeformConv2d 'dcn.layer': cublasCreate \(attachToContext\) failed with "
                     r"CUBLAS_STATUS_\w+", log), log


@NO_GPU
def test_pool_enqueue_reports_the_launch_status(dx, clean):
    p = dx.attach_context(dx.create("DeformPSROIPool", "psroi", POOL_FIELDS), 105)
    shapes, out = [[1, 21 * 49, 10, 12], [4, 5], [4, 2, 7, 7]], [4, 21, 7, 7]
    assert dx.shape_change(p, shapes, out, ["FP32"] * 3) == 0
    rc = dx.enqueue(p, shapes, out, ["FP32"] * 3, "FP32", [0x10000] * 3, 0x20000, 0, 0)
    log = dx.log()
    assert rc != 0
    assert re.search(r"RECORDER\(\d+\): DeformPSROIPool 'psroi': deformable PS-RoI pooling kernel launch failed "
                     r"with cuda\w+", log), log


@NO_GPU
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
def test_device_lifecycle_dry_run(dx, clean, dtype):
    """tests/helpers/trt_device.py's lifecycle on host memory: every step before enqueue passes (types,
    formats, shapes, workspace, serialize, runtime creation, attach, onShapeChange); enqueue then
    fails before touching memory. On a GPU the same runs for real (tests/test_trt_device.py)."""
    from helpers import trt_device as td
    from helpers.sweep import CONV_SPECS, POOL_SPECS, make_conv_case, make_pool_case

    case = make_conv_case(CONV_SPECS[1])
    case.bias = None
    lay = td.run_plugin(dx, td.CONV_OP, "dry", case.attrs(), td.conv_inputs(case, empty_bias=True), dtype,
                        device="cpu", expect_ok=False, misalign=16)
    assert lay.shapes[3] == [] and lay.out_shape == list(td.conv_reference(lay, case).shape)
    assert "cublasCreate (attachToContext) failed" in dx.log()
    pool = make_pool_case(POOL_SPECS[1])
    lay = td.run_plugin(dx, td.POOL_OP, "dry", pool.attrs, td.pool_inputs(pool), dtype, float32_at=(1,),
                        device="cpu", expect_ok=False)
    assert lay.out_shape == list(td.pool_reference(lay, pool).shape)
    assert "kernel launch failed" in dx.log()
    roi = td.mmdet_roi_case(6, channels=4)
    lay = td.run_plugin(dx, td.ROI_OP, "dry", roi.attrs, td.roi_inputs(roi), dtype, float32_at=(1,), device="cpu",
                        expect_ok=False)
    assert lay.out_shape == list(td.roi_reference(lay, roi).shape)
    assert "deformable RoI pooling kernel launch failed" in dx.log()


@NO_GPU
def test_device_dynamic_profile_dry_run(dx, clean):
    """The device test's dynamic profile (tests/test_trt_device.py: built for 1x32x3x3 .. 2x32x8x8, run at
    7x7) on host memory: configured for the range, its workspace reserves the staging a 7x7 run needs (the
    largest area, 64, needs none), the run's shapes pass onShapeChange; enqueue then fails before memory."""
    from helpers import trt_device as td
    from helpers.sweep import make_conv_case

    spec = ("dynamic-profile", 2, 32, 7, 7, 256, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1, 1, True, True, 1.0)
    case = make_conv_case(spec)
    ins = td.conv_inputs(case)
    at = lambda n, h: [[n, 32, h, h], list(ins[1].shape), [n, 18, h, h], [256], [n, 9, h, h]]  # noqa: E731
    lay = td.run_plugin(dx, td.CONV_OP, "dry", case.attrs(), ins, torch.float16, device="cpu", expect_ok=False,
                        profile=(at(1, 3), at(2, 8)), guard=256)
    fixed = td.run_plugin(dx, td.CONV_OP, "dry", case.attrs(), ins, torch.float16, device="cpu", expect_ok=False,
                          profile=(at(2, 8), at(2, 8)))
    staging = 2 * 256 * 64 * 2  # 2 images x M x ld (64) x 2 bytes
    assert lay.workspace_bytes - fixed.workspace_bytes == staging and lay.out_shape == [2, 256, 7, 7]
    assert lay.guard_intact()


# --------------------------------------------------------------------------- workspace
@pytest.mark.parametrize("s", SHAPES[:3])
def test_workspace_has_slack_for_aligning_its_base(dx, clean, s):
    shapes, out, fields = conv_io(s)
    h = dx.create("DeformConv2d", "c", fields)
    _, ws = dx.configure(h, shapes, out)
    assert ws == conv_workspace(s, out, 4)


# --------------------------------------------------------------------------- empty / unused inputs
def test_conv_empty_bias_with_mask_is_no_bias(dx, clean):
    shapes, out, fields = conv_io(SHAPES[0])  # 5 inputs: X, W, offset, B, mask
    assert len(shapes) == 5
    shapes[3] = []  # the ONNX node's B is "": TensorRT hands the plugin an empty input
    h = dx.create("DeformConv2d", "nobias", fields)
    rc, got, _ = dx.output_shape(h, shapes, [[False] * len(x) for x in shapes])
    assert rc == 0 and got == out, dx.log()
    rc, ws = dx.configure(h, shapes, out)
    assert rc == 0, dx.log()
    r = dx.attach_context(h, 106)
    assert dx.shape_change(r, shapes, out, ["FP32"] * 5) == 0, dx.log()
    if not torch.cuda.is_available():
        # B's pointer may be null; every other input has data: enqueue gets past the input checks
        fake = [0x10000, 0x10000, 0x10000, 0, 0x10000]
        assert dx.enqueue(r, shapes, out, ["FP32"] * 5, "FP32", fake, 0x20000, 0x30000, 0) != 0
        log = dx.log()
        assert "null device pointer" not in log and "cublasCreate (attachToContext) failed" in log, log


def test_conv_empty_mask_is_dcnv1(dx, clean):
    shapes, out, fields = conv_io(SHAPES[0])
    shapes[4] = []
    h = dx.create("DeformConv2d", "nomask", fields)
    assert dx.output_shape(h, shapes, [[False] * len(x) for x in shapes])[0] == 0, dx.log()
    assert dx.configure(h, shapes, out)[0] == 0, dx.log()


def test_used_input_with_a_null_pointer_is_an_error(dx, clean):
    h, shapes, out = _conv(dx, "nulls")
    r = dx.attach_context(h, 107)
    rc, stage = dx.run(r, shapes, out)  # every pointer null
    log = dx.log()
    assert rc != 0 and stage == 2
    assert re.search(r"RECORDER\(\d+\): DeformConv2d 'nulls': X has shape \[2,6,7,9\] and a null device pointer, "
                     r"expected its data \[enqueue\]", log), log


@pytest.mark.parametrize("trans", [[], [4, 2, 7], [4, 2, 7, 7, 1]], ids=["empty", "rank3", "rank5"])
def test_pool_trans_not_checked_with_no_trans(dx, clean, trans):
    h = dx.create("DeformPSROIPool", "p", dict(POOL_FIELDS, no_trans=1))
    shapes = [[1, 21 * 49, 10, 12], [4, 5], trans]
    rc, got, _ = dx.output_shape(h, shapes, [[False] * len(x) for x in shapes])
    assert rc == 0 and got == [4, 21, 7, 7], dx.log()
    assert dx.configure(h, shapes, got)[0] == 0, dx.log()


def test_pool_empty_trans_is_no_trans(dx, clean):
    h = dx.create("DeformPSROIPool", "p", POOL_FIELDS)  # no_trans = 0, but trans is ""
    shapes = [[1, 21 * 49, 10, 12], [4, 5], []]
    assert dx.output_shape(h, shapes, [[False] * len(x) for x in shapes])[0] == 0, dx.log()
    assert dx.configure(h, shapes, [4, 21, 7, 7])[0] == 0, dx.log()
    # a non-empty trans is still checked
    rc, _ = dx.configure(h, [[1, 21 * 49, 10, 12], [4, 5], [4, 2, 7]], [4, 21, 7, 7])
    assert rc != 0 and "trans has rank 3, expected 4" in dx.log()


# --------------------------------------------------------------------------- registration
def test_creators_registered_on_load_and_handed_to_getcreators(dx, clean):
    creators = json.loads(dx.text(dx.L.dcn_harness_describe))
    res = dx.resources()
    # the static initializer registered every creator with getPluginRegistry(); the first
    # getCreators() (TensorRT's loadLibrary) took them out again before handing them over
    assert res["registered"] == len(creators) == res["deregistered"]


def test_library_builds_without_libnvinfer(dx):
    """-DDCN_TRT_LINK_NVINFER=OFF: linked with --no-undefined, needs no libnvinfer, exports exactly
    TensorRT's plugin-library entry points (loadLibrary: getCreators, setLoggerFinder)."""
    libs = sorted(dx.build_dir.glob("trt/**/libdcn_trt_plugins_no_nvinfer.so"))
    assert libs, "libdcn_trt_plugins_no_nvinfer.so not built by scripts/check_cuda_build.sh"
    readelf, nm = shutil.which("readelf"), shutil.which("nm")
    if readelf is None or nm is None:
        missing("readelf / nm (binutils) not found")
    needed = subprocess.run([readelf, "-d", str(libs[0])], capture_output=True, text=True, check=True).stdout
    assert "libnvinfer" not in needed and "libcublas" in needed, needed
    exported = subprocess.run([nm, "-D", "--defined-only", str(libs[0])], capture_output=True, text=True,
                              check=True).stdout.split()
    assert {"getCreators", "setLoggerFinder"} <= set(exported)
    assert not {"getPluginRegistry", "getLogger", "getPluginCreators"} & set(exported)
    undefined = subprocess.run([nm, "-D", "--undefined-only", str(libs[0])], capture_output=True, text=True,
                               check=True).stdout
    assert not re.search(r"\b(getLogger|getPluginRegistry)\b", undefined), undefined


# --------------------------------------------------------------------------- inspector spellings
def _plugin_layer(name, **fields):
    d = {"Name": name, "Inputs": [{"Name": "x", "Format/Datatype": "Half"}], "Outputs": []}
    d.update(fields)
    return d


@pytest.mark.parametrize("fields", [
    dict(LayerType="PluginV3", ParameterType="PluginV3", PluginType="DeformConv2d"),
    dict(LayerType="PluginV2", ParameterType="PluginV2", Plugin="DeformConv2d"),
    dict(LayerType="kPLUGIN_V3", **{"Plugin Type": "DeformConv2d", "Plugin Version": "1"}),
    dict(LayerType="Plugin", plugin_name="dcn::DeformConv2d"),
    dict(LayerType="PluginV3", PluginCreator={"Name": "DeformConv2d", "Version": "1", "Namespace": ""}),
    dict(LayerType="PluginV3", PluginType="DeformConv2d_1"),
    dict(LayerType="PluginV3", PluginName="deformconv2d v1"),
    dict(LayerType="PluginV3"),  # no plugin type at all: accepted by name
    dict(LayerType="Myelin", Metadata="DeformConv2d v1: strides=[1, 1] pads=[1, 1, 1, 1]"),
], ids=["v3", "v2-plugin", "spaced-keys", "namespace", "nested", "version-suffix", "case", "untyped", "metadata"])
def test_inspector_reads_plugin_layer_spellings(fields):
    info = {"Layers": [_plugin_layer("layer3.0.conv2", **fields)]}
    (r,) = check_plugin_layers(info, [("layer3.0.conv2", "DeformConv2d")])
    assert r["ok"] and r["plugin_type"] == "DeformConv2d", r


def test_inspector_still_rejects_another_plugin_and_tensorrt_layers():
    bad = {"Layers": [_plugin_layer("a", LayerType="PluginV3", PluginType="nv::ModulatedDeformConv2d_2"),
                      _plugin_layer("b", LayerType="CaskConvolution", ParameterType="Convolution")]}
    report = plugin_layer_report(bad, [("a", "DeformConv2d"), ("b", "DeformConv2d")])
    assert not report[0]["ok"] and "became plugin 'ModulatedDeformConv2d'" in report[0]["problem"]
    assert not report[1]["ok"] and "not our plugin" in report[1]["problem"]
    assert set(contract.OPS) >= {"DeformConv2d"}
