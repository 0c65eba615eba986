"""trt_runtime's TensorRT paths without TensorRT or a GPU: the TensorRT 10 vs 11 build-path choice,
the engine inspector check on canned layer JSON, argument parsing, latency statistics, dcn-build's
orchestration with TensorRT faked and the Engine's bookkeeping on a fake engine. The real engines
are tests/test_trt_runtime_gpu.py.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dcn_base.errors import DcnError
from helpers.ci_policy import require_module
from trt_runtime import cuda_env, engine_files, environment, plugin_loader
from trt_runtime.build import (
    PluginLayerCheckFailed,
    build_plan,
    check_plugin_layers,
    check_profile,
    dcn_nodes,
    onnx_float_dtype,
    parse_shapes,
    parse_size,
    plugin_layer_report,
)
from trt_runtime.infer import latency_stats

# =========================================================================== pure: no TensorRT needed


@pytest.mark.parametrize("version, onnx_dtype, fp16, expect", [
    # TensorRT 10: float32 ONNX + FP16 builder flag, weakly typed
    ("10.14.1.48", "float32", True, dict(precision="float16", strongly_typed=False, fp16_flag=True, convert_to_fp16=False)),
    ("10.0.1", "float32", False, dict(precision="float32", strongly_typed=False, fp16_flag=False, convert_to_fp16=False)),
    # a float16 ONNX is always built strongly typed, as its types say
    ("10.9.0", "float16", True, dict(precision="float16", strongly_typed=True, fp16_flag=False, convert_to_fp16=False)),
    ("11.0.0", "float16", True, dict(precision="float16", strongly_typed=True, fp16_flag=False, convert_to_fp16=False)),
    # TensorRT 11: no FP16 flag; a float32 ONNX is converted to float16 first
    ("11.0.0.12", "float32", True, dict(precision="float16", strongly_typed=True, fp16_flag=False, convert_to_fp16=True)),
    ("11.2", "float32", False, dict(precision="float32", strongly_typed=True, fp16_flag=False, convert_to_fp16=False)),
])
def test_build_plan_trt10_vs_trt11(version, onnx_dtype, fp16, expect):
    plan = build_plan(version, onnx_dtype, fp16)
    assert {k: getattr(plan, k) for k in expect} == expect
    assert plan.trt_major == int(version.split(".")[0])
    if plan.trt_major >= 11:
        assert not plan.fp16_flag  # TensorRT 11 has no BuilderFlag.FP16


def test_build_plan_notes_and_errors():
    assert "runs in float16 despite --no-fp16" in build_plan("10.9", "float16", False).note
    assert "dcn-export --fp16" in build_plan("11.0", "float32", True).note
    with pytest.raises(environment.TensorRTNotInstalled, match="too old"):
        build_plan("8.6.1", "float32", True)
    with pytest.raises(DcnError, match="expected 'float32' or 'float16'"):
        build_plan("10.9", "bfloat16", True)
    with pytest.raises(DcnError, match="cannot read a version"):
        build_plan("banana", "float32", True)


def _layer(name, layer_type, *, plugin=None, meta=None, dtype="Half"):
    d = {"Name": name, "LayerType": layer_type,
         "Inputs": [{"Name": f"{name}_in", "Location": "Device", "Dimensions": [1, 16, 8, 8], "Format/Datatype": dtype}],
         "Outputs": [{"Name": f"{name}_out", "Location": "Device", "Dimensions": [1, 16, 8, 8]}],
         "ParameterType": "PluginV3" if plugin else layer_type}
    if plugin:
        d.update(PluginType=plugin, PluginVersion="1", PluginNamespace="")
    if meta:
        d["Metadata"] = meta
    return d


CANNED = {
    "Layers": [
        _layer("stem.conv + stem.relu", "CaskConvolution", meta="[ONNX Layer: stem.conv]\x1e[ONNX Layer: stem.relu]"),
        _layer("layer1.0.conv2", "PluginV3", plugin="DeformConv2d", meta="[ONNX Layer: layer1.0.conv2]"),
        _layer("layer2.0.conv2", "PluginV3", plugin="DeformConv2d", meta="[ONNX Layer: layer2.0.conv2]", dtype="Float"),
        _layer("head.pool", "PluginV3", plugin="DeformPSROIPool", meta="[ONNX Layer: head.pool]"),
        _layer("layer1.0.conv2 [profile 1]", "PluginV3", plugin="DeformConv2d"),
    ],
    "Bindings": ["images", "rois", "out"],
}
NODES = [("layer1.0.conv2", "DeformConv2d"), ("layer2.0.conv2", "DeformConv2d"), ("head.pool", "DeformPSROIPool")]


def test_inspector_report_all_plugin_layers():
    report = check_plugin_layers(json.dumps(CANNED), NODES)
    assert [r["ok"] for r in report] == [True, True, True]
    assert [r["plugin_type"] for r in report] == ["DeformConv2d", "DeformConv2d", "DeformPSROIPool"]
    assert [r["precision"] for r in report] == ["Half", "Float", "Half"]


def test_inspector_tensorrt11_schema_and_reformat_layers():
    """TensorRT 11: 'I/O Tensors' instead of 'Bindings', DataType split from Format; reformat copies ignored."""
    layers = []
    for l in CANNED["Layers"][:4]:
        l = json.loads(json.dumps(l))
        for t in l["Inputs"]:
            t["DataType"] = t.pop("Format/Datatype", "Float")
            t["Format"] = "Row major linear FP16 format (kLINEAR)"
        layers.append(l)
    layers.insert(1, _layer("Reformatting CopyNode for Input Tensor 0 to layer1.0.conv2", "Reformat"))
    info = {"Layers": layers, "I/O Tensors": [{"Name": "images", "IOMode": "Input", "DataType": "Float"}]}
    report = check_plugin_layers(info, NODES)
    assert [r["layer"] for r in report] == ["layer1.0.conv2", "layer2.0.conv2", "head.pool"]
    assert [r["precision"] for r in report] == ["Half", "Float", "Half"]


def test_inspector_fails_loudly_when_tensorrt_imported_the_node_itself():
    info = json.loads(json.dumps(CANNED))
    info["Layers"][2] = _layer("layer2.0.conv2", "CaskConvolution", meta="[ONNX Layer: layer2.0.conv2]")
    with pytest.raises(PluginLayerCheckFailed) as e:
        check_plugin_layers(info, NODES)
    msg = str(e.value)
    assert "1 of 3 dcn node(s)" in msg and "DeformConv2d 'layer2.0.conv2'" in msg
    assert "TensorRT CaskConvolution layer, not our plugin" in msg and e.value.exit_code == 1


def test_inspector_wrong_plugin_and_missing_node():
    info = json.loads(json.dumps(CANNED))
    info["Layers"][3]["PluginType"] = "SomethingElse"
    report = plugin_layer_report(info, NODES + [("neck.dcn", "DeformConv2d")])
    bad = {r["node"]: r["problem"] for r in report if not r["ok"]}
    assert "became plugin 'SomethingElse', not 'DeformPSROIPool'" in bad["head.pool"]
    assert bad["neck.dcn"] == "no layer of the engine comes from this node"
    # an unnamed node claims a plugin layer of its type that no named node accounts for
    info["Layers"].append(_layer("node_of_y7", "PluginV3", plugin="DeformConv2d"))
    report = plugin_layer_report(info, [("", "DeformConv2d"), ("", "DeformConv2d")] + NODES[:2])
    assert [r["ok"] for r in report] == [True, False, True, True]
    assert report[0]["layer"] == "node_of_y7"


def test_inspector_needs_detailed_verbosity():
    with pytest.raises(DcnError, match="ProfilingVerbosity.DETAILED"):
        plugin_layer_report({"Layers": ["layer1.0.conv2", "stem.conv"]}, NODES)
    with pytest.raises(DcnError, match="not JSON"):
        plugin_layer_report("{nope", NODES)


def test_parse_size_and_shapes():
    assert parse_size("512MiB") == 512 << 20 and parse_size("2GiB") == 2 << 30 and parse_size("1.5G") == 3 << 29
    assert parse_size("64") == 64 << 20 and parse_size(None) is None
    assert parse_shapes(["images:1x3x64x64:2x3x64x64:4x3x64x64"]) == {
        "images": ((1, 3, 64, 64), (2, 3, 64, 64), (4, 3, 64, 64))}
    with pytest.raises(DcnError, match="given twice"):
        parse_shapes(["a:1:1:1", "a:1:1:1"])


def test_check_profile():
    inputs = [("images", 1, ("batch", 3, 64, 64)), ("rois", 1, (5, 5))]
    shapes = parse_shapes(["images:1x3x64x64:2x3x64x64:4x3x64x64"])
    assert check_profile(inputs, shapes) == shapes
    with pytest.raises(DcnError, match=r"dynamic shape \[batch, 3, 64, 64\]"):
        check_profile(inputs, {})
    with pytest.raises(DcnError, match="rank 3 does not match"):
        check_profile(inputs, parse_shapes(["images:1x3x64:1x3x64:1x3x64"]))


def test_onnx_float_dtype_and_dcn_nodes():
    from onnx import TensorProto, helper, numpy_helper

    def model(dtype):
        w = numpy_helper.from_array(np.zeros((2, 2), dtype), "w")
        nodes = [helper.make_node("MatMul", ["x", "w"], ["y"]),
                 helper.make_node("DeformPSROIPool", ["y", "r"], ["z"], domain="dcn", name="pool")]
        g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, [2, 2])], [w])
        return helper.make_model(g)

    assert onnx_float_dtype(model(np.float32)) == "float32"
    assert onnx_float_dtype(model(np.float16)) == "float16"
    assert dcn_nodes(model(np.float32)) == [("pool", "DeformPSROIPool")]


def test_latency_stats():
    st = latency_stats([i / 1e3 for i in range(10, 0, -1)], batch=4)
    assert st["median_ms"] == pytest.approx(5.5) and st["p90_ms"] == pytest.approx(9.0)
    assert st["throughput_per_s"] == pytest.approx(1e3 / 5.5) and st["samples_per_s"] == pytest.approx(4e3 / 5.5)
    assert latency_stats([0.002])["p90_ms"] == pytest.approx(2.0)
    with pytest.raises(DcnError):
        latency_stats([])


# =========================================================================== dcn-build's orchestration, TensorRT faked


class _FakeEngine:
    def __init__(self, layer_json):
        self.layer_json = layer_json

    def create_engine_inspector(self):
        eng = self

        class _Inspector:
            def get_engine_information(self, fmt):
                assert fmt == "JSON"
                return eng.layer_json

        return _Inspector()


@pytest.fixture
def fake_build(monkeypatch, tmp_path):
    """Polygraphy's TensorRT loaders replaced by recorders; a fake tensorrt module; one CUDA device."""
    import types

    from polygraphy.backend import onnx as pg_onnx
    from polygraphy.backend import trt as pg_trt

    calls: dict = {}
    trt = types.ModuleType("tensorrt")
    trt.__version__ = "10.9.0.34"
    trt.Logger = type("Logger", (), {"WARNING": 2, "ERROR": 1})
    trt.ProfilingVerbosity = types.SimpleNamespace(DETAILED="DETAILED")
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="WORKSPACE")
    trt.LayerInformationFormat = types.SimpleNamespace(JSON="JSON")
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(cuda_env, "cuda_device_count", lambda: (1, ""))
    monkeypatch.setattr(plugin_loader, "load_plugin_library", lambda t, p: calls.setdefault("plugins_loaded", p))

    def recorder(name):
        def make(*args, **kwargs):
            calls[name] = (args, kwargs)
            return (name, args, kwargs)
        return make

    for name in ("NetworkFromOnnxPath", "NetworkFromOnnxBytes", "LoadPlugins", "CreateConfig"):
        monkeypatch.setattr(pg_trt, name, recorder(name))
    for name in ("OnnxFromPath", "ConvertToFp16", "BytesFromOnnx"):
        monkeypatch.setattr(pg_onnx, name, recorder(name))

    class _Profile(dict):
        def add(self, name, min, opt, max):
            self[name] = (min, opt, max)
            return self

    monkeypatch.setattr(pg_trt, "Profile", _Profile)
    state = {"layers": json.dumps(CANNED)}

    def engine_from_network(network, config=None, save_timing_cache=None):
        calls["engine_from_network"] = (network, config, save_timing_cache)
        if state.get("fail"):
            return None
        if save_timing_cache:  # Polygraphy merges with what the file holds: the old cache's entries
            calls["cache_before"] = Path(save_timing_cache).read_bytes()
            Path(save_timing_cache).write_bytes(b"CACHE")
        return _FakeEngine(state["layers"])

    def save_engine(engine, path):
        calls["save_engine"] = path
        Path(path).write_bytes(b"ENGINE")
        return engine

    monkeypatch.setattr(pg_trt, "engine_from_network", engine_from_network)
    monkeypatch.setattr(pg_trt, "save_engine", save_engine)
    plugin = tmp_path / "libdcn_trt_plugins.so"
    plugin.write_bytes(b"")
    return types.SimpleNamespace(calls=calls, trt=trt, state=state, plugin=plugin, dir=tmp_path)


def _dcn_onnx(path: Path, dtype=np.float32, names=("layer1.0.conv2", "layer2.0.conv2")):
    from onnx import TensorProto, helper, numpy_helper

    elem = TensorProto.FLOAT16 if dtype == np.float16 else TensorProto.FLOAT
    nodes, prev = [], "images"
    for i, n in enumerate(names):
        nodes.append(helper.make_node("DeformConv2d", [prev, f"w{i}", "offset"], [f"y{i}"], domain="dcn", name=n))
        prev = f"y{i}"
    inits = [numpy_helper.from_array(np.zeros((3, 3, 3, 3), dtype), f"w{i}") for i in range(len(names))]
    g = helper.make_graph(nodes, "g",
                          [helper.make_tensor_value_info("images", elem, ["batch", 3, 8, 8]),
                           helper.make_tensor_value_info("offset", elem, ["batch", 18, 8, 8])],
                          [helper.make_tensor_value_info(prev, elem, ["batch", 3, 8, 8])], inits)
    import onnx

    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("dcn", 1)]), str(path))
    return path


SHAPES_2 = ["images:1x3x8x8:2x3x8x8:4x3x8x8", "offset:1x18x8x8:2x18x8x8:4x18x8x8"]


def test_build_orchestration_trt10_fp16(fake_build, capsys):
    from trt_runtime.cli import build_main

    onnx_path = _dcn_onnx(fake_build.dir / "m.onnx")
    out = fake_build.dir / "m.engine"
    rc = build_main([str(onnx_path), "-o", str(out), "--plugins", str(fake_build.plugin), "--workspace", "256MiB",
                     "--timing-cache", str(fake_build.dir / "tc.cache"), "--no-progress"] +
                    sum((["--shapes", s] for s in SHAPES_2), []))
    text = capsys.readouterr()
    assert rc == 0, text.err
    calls = fake_build.calls
    assert calls["plugins_loaded"] == str(fake_build.plugin.resolve())
    assert calls["NetworkFromOnnxPath"][1] == {"strongly_typed": False}  # TensorRT 10: weakly typed + FP16 flag
    cfg = calls["CreateConfig"][1]
    assert cfg["fp16"] is True and cfg["profiling_verbosity"] == "DETAILED"
    assert cfg["memory_pool_limits"] == {"WORKSPACE": 256 << 20}
    assert cfg["profiles"][0]["images"] == ((1, 3, 8, 8), (2, 3, 8, 8), (4, 3, 8, 8))
    assert calls["LoadPlugins"][1]["plugins"] == [str(fake_build.plugin.resolve())]
    cache = fake_build.dir / "tc.cache"
    assert ".tmp" in calls["engine_from_network"][2] and cache.read_bytes() == b"CACHE"  # temp file, then renamed
    # the old cache's entries are there for Polygraphy to merge with; its rename is not the command's commit
    # (final_commit: Ctrl-C must still stop the build before the engine is written)
    cache.write_bytes(b"OLD")
    from dcn_base import atomic

    committed = []
    real_committed = atomic._committed
    atomic._committed = lambda: committed.append(1)
    try:
        assert build_main([str(onnx_path), "-o", str(out), "--plugins", str(fake_build.plugin), "--timing-cache",
                           str(cache), "--no-progress"] + sum((["--shapes", s] for s in SHAPES_2), [])) == 0
    finally:
        atomic._committed = real_committed
    assert calls["cache_before"] == b"OLD" and cache.read_bytes() == b"CACHE"
    assert len(committed) == 2  # the engine and its side file, not the timing cache
    # a failed build leaves the timing cache as it was (and no temporary)
    cache.write_bytes(b"OLD")
    fake_build.state["fail"] = True
    assert build_main([str(onnx_path), "-o", str(out), "--plugins", str(fake_build.plugin), "--timing-cache",
                       str(cache), "--no-progress"] + sum((["--shapes", s] for s in SHAPES_2), [])) == 2
    assert cache.read_bytes() == b"OLD" and not list(fake_build.dir.glob(".tc.cache*"))
    fake_build.state["fail"] = False
    assert out.read_bytes() == b"ENGINE" and ".tmp" in calls["save_engine"]  # temp file, then renamed
    info = engine_files.read_build_info(out)
    assert info["trt_version"] == "10.9.0.34" and info["precision"] == "float16"
    assert [r["node"] for r in info["plugin_layers"]] == ["layer1.0.conv2", "layer2.0.conv2"]
    assert "2 dcn node(s) run as our plugin layers (1x Half, 1x Float)" in text.out


def test_build_orchestration_trt11_converts_float32(fake_build, monkeypatch, capsys):
    from trt_runtime.build import build_engine, onnx_float_dtype

    # the real conversion: onnxconverter-common called directly (trt_runtime.fp16_convert), whatever
    # converter a Polygraphy version wraps
    require_module("onnxconverter_common", reason="onnxconverter-common not installed")

    fake_build.trt.__version__ = "11.0.0.8"
    onnx_path = _dcn_onnx(fake_build.dir / "m.onnx")
    build_engine(onnx_path, fake_build.dir / "m.engine", shapes=SHAPES_2, plugins=str(fake_build.plugin), progress=False)
    assert "NetworkFromOnnxBytes" in fake_build.calls and fake_build.calls["NetworkFromOnnxBytes"][1] == {"strongly_typed": True}
    (converted,), _ = fake_build.calls["BytesFromOnnx"]
    assert onnx_float_dtype(converted) == "float16"
    assert "ConvertToFp16" not in fake_build.calls and fake_build.calls["CreateConfig"][1]["fp16"] is False


def test_build_orchestration_trt11_without_converter_says_how(fake_build, monkeypatch):
    from trt_runtime.build import build_engine

    fake_build.trt.__version__ = "11.0.0.8"
    monkeypatch.setitem(sys.modules, "onnxconverter_common", None)
    with pytest.raises(DcnError, match="export it with `dcn-export --fp16`"):
        build_engine(_dcn_onnx(fake_build.dir / "m.onnx"), fake_build.dir / "m.engine", shapes=SHAPES_2,
                     plugins=str(fake_build.plugin), progress=False)
    # a float16 ONNX needs no conversion on TensorRT 11: strongly typed, no FP16 flag
    build_engine(_dcn_onnx(fake_build.dir / "h.onnx", np.float16), fake_build.dir / "h.engine", shapes=SHAPES_2,
                 plugins=str(fake_build.plugin), progress=False)
    assert fake_build.calls["NetworkFromOnnxPath"][1] == {"strongly_typed": True}
    assert fake_build.calls["CreateConfig"][1]["fp16"] is False


def test_build_fails_loudly_and_writes_nothing_when_a_node_is_not_our_plugin(fake_build, capsys):
    from trt_runtime.cli import build_main

    bad = json.loads(json.dumps(CANNED))
    bad["Layers"][2] = _layer("layer2.0.conv2", "CaskConvolution", meta="[ONNX Layer: layer2.0.conv2]")
    fake_build.state["layers"] = json.dumps(bad)
    out = fake_build.dir / "m.engine"
    out.write_bytes(b"old")
    rc = build_main([str(_dcn_onnx(fake_build.dir / "m.onnx")), "-o", str(out), "--plugins", str(fake_build.plugin),
                     "--no-progress"] + sum((["--shapes", s] for s in SHAPES_2), []))
    err = capsys.readouterr().err
    assert rc == 1
    assert "dcn-build: error: 1 of 2 dcn node(s) did not become our plugin layers: DeformConv2d 'layer2.0.conv2'" in err
    assert out.read_bytes() == b"old" and not engine_files.build_info_path(out).exists()
    assert "save_engine" not in fake_build.calls


# =========================================================================== Engine's bookkeeping, TensorRT faked


class _FakeMemory:
    """A host-memory stand-in for a device backend: 'pointers' index byte arrays."""

    name = "fake"

    def __init__(self):
        self.mem: dict[int, bytearray] = {}
        self.allocs = 0

    def stream(self):
        return "stream"

    def handle(self, stream):
        return 0

    def alloc(self, nbytes):
        self.allocs += 1
        key = 4096 * self.allocs
        self.mem[key] = bytearray(max(nbytes, 256))
        return key

    def ptr(self, buf):
        return buf

    def free(self, buf):
        self.mem.pop(buf, None)

    def htod(self, buf, host, stream):
        self.mem[buf][: host.nbytes] = host.tobytes()

    def dtoh(self, host, buf, stream):
        host[...] = np.frombuffer(bytes(self.mem[buf][: host.nbytes]), dtype=host.dtype).reshape(host.shape)

    def sync(self, stream):
        pass

    def close(self, stream):
        pass


@pytest.fixture
def fake_engine(monkeypatch):
    """Engine over a fake TensorRT engine computing out = 2 * images, dynamic batch 1..4."""
    import types

    from trt_runtime import infer

    trt = types.ModuleType("tensorrt")
    trt.__version__ = "10.9.0"
    trt.Logger = type("Logger", (), {"WARNING": 2, "ERROR": 1})
    trt.TensorIOMode = types.SimpleNamespace(INPUT="in", OUTPUT="out")
    trt.nptype = lambda dt: np.float32
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(cuda_env, "cuda_device_count", lambda: (1, ""))
    memory = _FakeMemory()
    monkeypatch.setattr(infer, "_make_backend", lambda name, device: memory)

    class Context:
        def __init__(self):
            self.shapes, self.addr = {}, {}

        def set_input_shape(self, name, shape):
            self.shapes[name] = tuple(shape)
            return True

        def get_tensor_shape(self, name):
            return self.shapes["images"]

        def set_tensor_address(self, name, ptr):
            self.addr[name] = ptr

        def execute_async_v3(self, stream):
            shape = self.shapes["images"]
            n = int(np.prod(shape)) * 4
            x = np.frombuffer(bytes(memory.mem[self.addr["images"]][:n]), np.float32)
            memory.mem[self.addr["out"]][:n] = (2 * x).tobytes()
            return True

    class FakeEngine:
        num_io_tensors = 2

        def get_tensor_name(self, i):
            return ["images", "out"][i]

        def get_tensor_mode(self, name):
            return trt.TensorIOMode.INPUT if name == "images" else trt.TensorIOMode.OUTPUT

        def get_tensor_dtype(self, name):
            return "float32"

        def get_tensor_shape(self, name):
            return (-1, 3, 4, 4)

        def get_tensor_profile_shape(self, name, profile):
            return [(1, 3, 4, 4), (2, 3, 4, 4), (4, 3, 4, 4)]

        def create_execution_context(self):
            return Context()

    monkeypatch.setattr(engine_files, "deserialize_engine", lambda t, path, plugins=None: (FakeEngine(), None, None))
    return memory


def test_engine_bookkeeping_numpy_torch_dynamic_shapes(fake_engine, tmp_path):
    from trt_runtime import Engine

    with Engine(tmp_path / "fake.engine") as eng:
        assert eng.input_names == ["images"] and eng.output_names == ["out"]
        assert eng.profile_shapes("images") == ((1, 3, 4, 4), (2, 3, 4, 4), (4, 3, 4, 4))
        for batch in (1, 4, 2):
            x = np.arange(batch * 48, dtype=np.float64).reshape(batch, 3, 4, 4)  # float64 in: cast to the engine's type
            out = eng(images=x)
            assert list(out) == ["out"] and out["out"].dtype == np.float32
            np.testing.assert_array_equal(out["out"], 2 * x.astype(np.float32))
        t = eng({"images": torch.ones(2, 3, 4, 4)})
        assert isinstance(t["out"], torch.Tensor) and torch.equal(t["out"], torch.full((2, 3, 4, 4), 2.0))
        assert fake_engine.allocs == 4  # buffers grow once for batch 4, then are reused
        with pytest.raises(DcnError, match=r"shape \[5, 3, 4, 4\] is outside the engine's profile min \[1, 3, 4, 4\]"):
            eng(images=np.zeros((5, 3, 4, 4), np.float32))
        with pytest.raises(DcnError, match=r"got shape \[1, 3, 4, 5\], the engine expects \[-1, 3, 4, 4\]"):
            eng(images=np.zeros((1, 3, 4, 5), np.float32))
        with pytest.raises(DcnError, match=r"takes inputs \['images'\]; missing \['images'\]; unknown \['x'\]"):
            eng(x=np.zeros(1))
    with pytest.raises(DcnError, match="is closed"):
        eng(images=np.zeros((1, 3, 4, 4), np.float32))


def test_engine_backend_name_checked(fake_engine, tmp_path):
    from trt_runtime import Engine

    with pytest.raises(DcnError, match="backend 'opencl'"):
        Engine(tmp_path / "fake.engine", backend="opencl")


def test_infer_cli_with_fake_engine(fake_engine, tmp_path, capsys):
    from trt_runtime.cli import infer_main

    x = np.ones((2, 3, 4, 4), np.float32)
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "fake.engine").write_bytes(b"fake")  # dcn-infer names a model file that is not there
    out = tmp_path / "out.npz"
    rc = infer_main([str(tmp_path / "fake.engine"), "--input", f"images={tmp_path / 'x.npy'}", "-o", str(out),
                     "--iterations", "5", "--warmup", "1"])
    text = capsys.readouterr().out
    assert rc == 0, text
    lines = [ln.split() for ln in text.splitlines()]
    assert ["out", "2x3x4x4", "float32", "2", "2", "2"] in lines, text  # the outputs table: name, shape, dtype, values
    head = ["runs", "batch", "median_ms", "p90_ms", "mean_ms", "min_ms", "inferences/s", "samples/s"]
    assert head in lines, text
    assert lines[lines.index(head) + 1][:2] == ["5", "2"], text  # 5 timed runs of batch 2
    with np.load(out) as z:
        np.testing.assert_array_equal(z["out"], 2 * x)
    # a single-input engine takes a bare FILE.npy too
    assert infer_main([str(tmp_path / "fake.engine"), "--input", str(tmp_path / "x.npy")]) == 0


def test_device_buffers_forget_a_buffer_before_freeing_it():
    """A failed grow (one oversized request: cudaMalloc fails) must not leave the freed pointer in use: the
    next call of normal size allocates anew instead of handing out freed memory (dcn-serve's engines live
    across requests)."""
    from trt_runtime.device_memory import DeviceBuffers

    class Mem:
        def __init__(self):
            self.live, self.next = set(), 1

        def alloc(self, n):
            if n > 1 << 20:
                raise MemoryError(f"cudaMalloc({n}) failed")
            self.next += 1
            self.live.add(self.next)
            return self.next

        def free(self, p):
            self.live.remove(p)

    mem = Mem()
    bufs = DeviceBuffers(mem)
    first = bufs.get("x", 1000)
    with pytest.raises(MemoryError):
        bufs.get("x", 1 << 30)
    again = bufs.get("x", 1000)
    assert again in mem.live and again != first
    bufs.free_all()
    assert not mem.live


def test_generated_inputs_of_the_models_own_shapes_are_size_checked():
    """--input shapes were refused past half the memory, but a model's fixed shape (or an engine profile's OPT
    shape) went straight to the data generator (MemoryError: Unable to allocate 24.0 GiB); both are checked
    now, in float64 (what the generator may make), and the message says float64."""
    from trt_runtime.feeds import parse_input_shapes, resolve_input_metadata
    from trt_runtime.targets import TargetInfo

    big = TargetInfo("onnx", "big.onnx", [("x", np.float32, (3, 2 ** 30))], ["y"], "float32", lambda: None, "ort")
    with pytest.raises(DcnError, match=r"input 'x' of shape \[3, 1073741824\]: .* GiB as float64\), expected at most"):
        resolve_input_metadata(big, {})
    with pytest.raises(DcnError, match="as float64"):
        parse_input_shapes(["x:3x1073741824"])
    small = TargetInfo("onnx", "s.onnx", [("x", np.float32, (3, 4))], ["y"], "float32", lambda: None, "ort")
    assert resolve_input_metadata(small, {})["x"].shape == [3, 4]


def test_engine_inputs_and_outputs_follow_the_onnx_models_order(tmp_path):
    """The PyTorch reference takes inputs by position and names outputs in the target's order; an engine's
    tensors are put in the order of the ONNX model it was built from (TensorRT does not promise it)."""
    from trt_runtime.targets import onnx_order

    onnx_path = _dcn_onnx(tmp_path / "m.onnx")
    engine_in = [("offset", np.float32, (None, 18, 8, 8)), ("images", np.float32, (None, 3, 8, 8))]
    ins, outs = onnx_order(str(onnx_path), engine_in, ["y1"])
    assert [n for n, _, _ in ins] == ["images", "offset"] and outs == ["y1"]
    assert onnx_order(str(tmp_path / "gone.onnx"), engine_in, ["y1"]) == (engine_in, ["y1"])
    assert onnx_order(None, engine_in, ["y1"]) == (engine_in, ["y1"])
