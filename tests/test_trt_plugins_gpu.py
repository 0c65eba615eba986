"""The TensorRT plugins on a GPU: one-layer networks per plugin and an exported DCN model
through TensorRT's ONNX parser, FP32 and FP16, dynamic shapes over an optimization
profile, compared with the float64 PyTorch reference (tolerances: dcn_base/tolerance.py);
serialize, deserialize, run again; the engine inspector shows our plugin layers.

Needs the `tensorrt` Python package, a CUDA device (torch's CUDA build) and the built
plugin library (trt_runtime.plugins.trt_library(): DCN_TRT_LIBRARY, trt_runtime/lib or
build/**). Each missing piece skips these tests, naming it. TensorRT 10 and 11 alike:
networks are strongly typed (FP16 = FP16 tensors), which TensorRT 11 requires.
"""
from __future__ import annotations

import ctypes
import json
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from typing import Optional

import numpy as np
import pytest
import torch

from exporter import contract
from exporter.contract import FLOAT, conv_out_size
from exporter.ops import deform_conv2d, deform_psroi_pool
from dcn_base.tolerance import tolerance
from trt_runtime import plugins

pytestmark = [pytest.mark.gpu, pytest.mark.trt]

TORCH_DTYPE = {"float32": torch.float32, "float16": torch.float16}


# --------------------------------------------------------------------------- environment
@dataclass
class Env:
    trt: object
    logger: object
    library: str

    @property
    def major(self) -> int:
        return int(self.trt.__version__.split(".")[0])


@pytest.fixture(scope="module")
def env() -> Env:
    try:
        import tensorrt as trt  # noqa: PLC0415
    except Exception as err:  # noqa: BLE001  (ImportError, or OSError from its libraries)
        pytest.skip(f"tensorrt Python package not importable ({type(err).__name__}: {err})")
    if not hasattr(trt, "Builder"):
        pytest.skip(f"tensorrt Python package not importable (placeholder package at {trt.__file__})")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device (torch.cuda.is_available() is False)")
    try:
        lib = str(plugins.trt_library())
    except plugins.LibraryNotBuiltError as err:
        pytest.skip(f"TensorRT plugin library not built: {err}")
    ctypes.CDLL(lib, mode=ctypes.RTLD_GLOBAL)  # registers the creators on load (Polygraphy --plugins does this)

    class Logger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.messages: list[str] = []

        def log(self, severity, msg):
            self.messages.append(f"{severity}: {msg}")

    e = Env(trt, Logger(), lib)
    for op in contract.OPS:
        assert creator(e, op) is not None, f"{op} creator not registered after loading {lib}"
    return e


def creator(env: Env, name: str):
    reg = env.trt.get_plugin_registry()
    return reg.get_creator(name, contract.PLUGIN_VERSION, contract.PLUGIN_NAMESPACE)


def field_collection(env: Env, spec: contract.OpSpec, values: dict):
    trt = env.trt
    fields = []
    for a in spec.attrs:
        if a.name not in values:
            continue
        v = values[a.name]
        if a.kind == FLOAT:
            fields.append(trt.PluginField(a.name, np.array([v], dtype=np.float32), trt.PluginFieldType.FLOAT32))
        else:
            arr = np.array(v if isinstance(v, (list, tuple)) else [v], dtype=np.int32)
            fields.append(trt.PluginField(a.name, arr, trt.PluginFieldType.INT32))
    return trt.PluginFieldCollection(fields)


def new_network(env: Env, builder):
    trt = env.trt
    flags = 0
    if env.major < 11 and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)  # TensorRT 11: always
    return builder.create_network(flags)


def trt_dtype(env: Env, dtype: str):
    return {"float32": env.trt.float32, "float16": env.trt.float16}[dtype]


def build(env: Env, builder, network, profile_shapes: dict):
    trt = env.trt
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 1 << 30)
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    profile = builder.create_optimization_profile()
    for name, (mn, opt, mx) in profile_shapes.items():
        profile.set_shape(name, mn, opt, mx)
    config.add_optimization_profile(profile)
    blob = builder.build_serialized_network(network, config)
    assert blob is not None, "engine build failed:\n" + "\n".join(env.logger.messages[-30:])
    return bytes(blob)


def deserialize(env: Env, blob: bytes):
    runtime = env.trt.Runtime(env.logger)
    engine = runtime.deserialize_cuda_engine(blob)
    assert engine is not None, "\n".join(env.logger.messages[-30:])
    return runtime, engine


def run(env: Env, engine, feeds: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    trt = env.trt
    context = engine.create_execution_context()
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    keep = {}
    for name, t in feeds.items():
        t = t.contiguous().cuda()
        keep[name] = t
        assert context.set_input_shape(name, tuple(t.shape)), name
        context.set_tensor_address(name, t.data_ptr())
    outs = {}
    for name in names:
        if engine.get_tensor_mode(name) != trt.TensorIOMode.OUTPUT:
            continue
        shape = tuple(context.get_tensor_shape(name))
        dt = {trt.float32: torch.float32, trt.float16: torch.float16}[engine.get_tensor_dtype(name)]
        outs[name] = torch.empty(shape, dtype=dt, device="cuda")
        context.set_tensor_address(name, outs[name].data_ptr())
    stream = torch.cuda.Stream()
    assert context.execute_async_v3(stream.cuda_stream), "\n".join(env.logger.messages[-30:])
    stream.synchronize()
    return {k: v.cpu() for k, v in outs.items()}


def layer_infos(env: Env, engine) -> list[dict]:
    inspector = engine.create_engine_inspector()
    infos = []
    for i in range(engine.num_layers):
        text = inspector.get_layer_information(i, env.trt.LayerInformationFormat.JSON)
        try:
            infos.append(json.loads(text))
        except json.JSONDecodeError:
            infos.append({"Name": text})
    return infos


def _strings(obj) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in _strings(v)]
    if isinstance(obj, list):
        return [s for v in obj for s in _strings(v)]
    return []


def our_plugin_layers(infos: list[dict], op: str) -> list[dict]:
    """Layers whose information names our plugin (exactly `op`, or its metadata 'op v1: ...')."""
    exact = re.compile(rf"(?<![A-Za-z]){op}(?![A-Za-z0-9])")
    hits = []
    for info in infos:
        texts = _strings(info)
        if any(t == op or t.startswith(f"{op} v{contract.PLUGIN_VERSION}:") for t in texts) or \
                any(exact.search(t) and "Plugin" in t for t in texts):
            hits.append(info)
    return hits


def assert_close(got: torch.Tensor, want: torch.Tensor, dtype: str, what: str):
    atol, rtol = tolerance(dtype)
    np.testing.assert_allclose(got.double().numpy(), want.double().numpy(), atol=atol, rtol=rtol, err_msg=what)


def rounded(t: Optional[torch.Tensor], dtype: str) -> Optional[torch.Tensor]:
    return None if t is None else t.to(TORCH_DTYPE[dtype]).double()


# --------------------------------------------------------------------------- DeformConv2d
CONV = dict(C=6, M=4, kH=3, kW=2, strides=(2, 1), pads=(1, 0, 2, 1), dilations=(2, 1), group=2, offset_group=3)
N_RANGE, H_RANGE, W_RANGE = (1, 3, 5), (7, 12, 20), (9, 13, 24)


def conv_out(H, W):
    c = CONV
    return (conv_out_size(H, c["pads"][0], c["pads"][2], c["dilations"][0], c["kH"], c["strides"][0]),
            conv_out_size(W, c["pads"][1], c["pads"][3], c["dilations"][1], c["kW"], c["strides"][1]))


def conv_network(env: Env, dtype: str, builder, weight: np.ndarray, bias: np.ndarray, layer_name: str):
    trt, c = env.trt, CONV
    net = new_network(env, builder)
    K = c["kH"] * c["kW"]
    x = net.add_input("X", trt_dtype(env, dtype), (-1, c["C"], -1, -1))
    off = net.add_input("offset", trt_dtype(env, dtype), (-1, 2 * c["offset_group"] * K, -1, -1))
    mask = net.add_input("mask", trt_dtype(env, dtype), (-1, c["offset_group"] * K, -1, -1))
    w = net.add_constant(weight.shape, trt.Weights(weight)).get_output(0)
    b = net.add_constant(bias.shape, trt.Weights(bias)).get_output(0)
    fields = field_collection(env, contract.DEFORM_CONV2D, dict(
        strides=c["strides"], pads=c["pads"], dilations=c["dilations"], group=c["group"],
        offset_group=c["offset_group"], kernel_shape=(c["kH"], c["kW"])))
    plugin = creator(env, "DeformConv2d").create_plugin(layer_name, fields, trt.TensorRTPhase.BUILD)
    assert plugin is not None, "\n".join(env.logger.messages[-10:])
    layer = net.add_plugin_v3([x, w, off, b, mask], [], plugin)
    layer.name = layer_name
    layer.get_output(0).name = "Y"
    net.mark_output(layer.get_output(0))
    profile = {}
    K = c["kH"] * c["kW"]
    for name, ch in (("X", c["C"]), ("offset", 2 * c["offset_group"] * K), ("mask", c["offset_group"] * K)):
        triple = []
        for n, h, w_ in zip(N_RANGE, H_RANGE, W_RANGE):
            oh, ow = conv_out(h, w_)
            triple.append((n, ch, h, w_) if name == "X" else (n, ch, oh, ow))
        profile[name] = tuple(triple)
    return net, profile


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_deform_conv2d_plugin_dynamic_shapes_and_serialization(env, dtype):
    trt, c = env.trt, CONV
    g = torch.Generator().manual_seed(0)
    K = c["kH"] * c["kW"]
    weight64 = torch.randn(c["M"], c["C"] // c["group"], c["kH"], c["kW"], generator=g, dtype=torch.float64) * 0.3
    bias64 = torch.randn(c["M"], generator=g, dtype=torch.float64)
    np_dt = {"float32": np.float32, "float16": np.float16}[dtype]
    weight, bias = weight64.numpy().astype(np_dt), bias64.numpy().astype(np_dt)
    builder = trt.Builder(env.logger)
    net, profile = conv_network(env, dtype, builder, weight, bias, "backbone.layer3.0.conv2")
    blob = build(env, builder, net, profile)
    _, engine = deserialize(env, blob)
    assert our_plugin_layers(layer_infos(env, engine), "DeformConv2d"), layer_infos(env, engine)

    first = {}
    for n, h, w_ in [(3, 12, 13), (1, 7, 9), (5, 20, 24), (2, 9, 17), (4, 15, 10)]:
        oh, ow = conv_out(h, w_)
        x = torch.randn(n, c["C"], h, w_, generator=g, dtype=torch.float64)
        off = torch.randn(n, 2 * c["offset_group"] * K, oh, ow, generator=g, dtype=torch.float64) * 2.5
        mask = torch.rand(n, c["offset_group"] * K, oh, ow, generator=g, dtype=torch.float64)
        feeds = {"X": x.to(TORCH_DTYPE[dtype]), "offset": off.to(TORCH_DTYPE[dtype]),
                 "mask": mask.to(TORCH_DTYPE[dtype])}
        got = run(env, engine, feeds)["Y"]
        want = deform_conv2d(rounded(x, dtype), rounded(off, dtype), torch.from_numpy(weight.astype(np.float64)),
                             torch.from_numpy(bias.astype(np.float64)), stride=c["strides"], padding=c["pads"],
                             dilation=c["dilations"], mask=rounded(mask, dtype))
        assert tuple(got.shape) == tuple(want.shape)
        assert_close(got, want, dtype, f"DeformConv2d {dtype} N={n} H={h} W={w_}")
        first[(n, h, w_)] = (feeds, got)

    # serialize the deserialized engine, deserialize it with a new runtime, run again
    blob2 = bytes(engine.serialize())
    _, engine2 = deserialize(env, blob2)
    for key, (feeds, got) in first.items():
        again = run(env, engine2, feeds)["Y"]
        torch.testing.assert_close(again, got, atol=0, rtol=0, msg=f"re-deserialized engine differs at {key}")


# --------------------------------------------------------------------------- DeformPSROIPool
POOL = dict(spatial_scale=0.25, output_dim=4, group_size=3, pooled_size=3, part_size=2, sample_per_part=2,
            trans_std=0.1, no_trans=0, classes=2)


def pool_network(env: Env, dtype: str, builder):
    trt, p = env.trt, POOL
    net = new_network(env, builder)
    C = p["output_dim"] * p["group_size"] ** 2
    data = net.add_input("data", trt_dtype(env, dtype), (-1, C, -1, -1))
    rois = net.add_input("rois", trt_dtype(env, "float32"), (-1, 5))  # contract: rois float32 in FP16 too
    trans = net.add_input("trans", trt_dtype(env, dtype), (-1, 2 * p["classes"], p["part_size"], p["part_size"]))
    fields = field_collection(env, contract.DEFORM_PSROI_POOL, {k: v for k, v in p.items() if k != "classes"})
    plugin = creator(env, "DeformPSROIPool").create_plugin("rfcn.psroi", fields, trt.TensorRTPhase.BUILD)
    assert plugin is not None, "\n".join(env.logger.messages[-10:])
    layer = net.add_plugin_v3([data, rois, trans], [], plugin)
    layer.name = "rfcn.psroi"
    layer.get_output(0).name = "Y"
    net.mark_output(layer.get_output(0))
    t = (2 * p["classes"], p["part_size"], p["part_size"])
    profile = {"data": ((1, C, 8, 8), (2, C, 20, 24), (3, C, 40, 40)),
               "rois": ((0, 5), (50, 5), (300, 5)),
               "trans": ((0,) + t, (50,) + t, (300,) + t)}
    return net, profile


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_deform_psroi_pool_plugin_dynamic_rois_and_serialization(env, dtype):
    trt, p = env.trt, POOL
    builder = trt.Builder(env.logger)
    net, profile = pool_network(env, dtype, builder)
    blob = build(env, builder, net, profile)
    _, engine = deserialize(env, blob)
    assert our_plugin_layers(layer_infos(env, engine), "DeformPSROIPool"), layer_infos(env, engine)
    g = torch.Generator().manual_seed(1)
    C = p["output_dim"] * p["group_size"] ** 2
    kwargs = {k: v for k, v in p.items() if k not in ("classes", "no_trans")}
    results = []
    for n, h, w, R in [(2, 20, 24, 50), (1, 8, 8, 1), (3, 40, 40, 300), (2, 13, 31, 7), (1, 9, 9, 0)]:
        data = torch.randn(n, C, h, w, generator=g, dtype=torch.float64)
        xy = torch.rand(R, 4, generator=g, dtype=torch.float64) * torch.tensor([w, h, w, h]) * 6 - 20  # some off the image
        rois = torch.cat([torch.randint(0, n, (R, 1), generator=g).double(), xy], dim=1)
        trans = torch.randn(R, 2 * p["classes"], p["part_size"], p["part_size"], generator=g, dtype=torch.float64)
        feeds = {"data": data.to(TORCH_DTYPE[dtype]), "rois": rois.float(),
                 "trans": trans.to(TORCH_DTYPE[dtype])}
        got = run(env, engine, feeds)["Y"]
        want = deform_psroi_pool(rounded(data, dtype), rounded(rois, "float32"), rounded(trans, dtype), **kwargs)
        assert tuple(got.shape) == (R, p["output_dim"], p["pooled_size"], p["pooled_size"])
        assert_close(got, want, dtype, f"DeformPSROIPool {dtype} N={n} {h}x{w} R={R}")
        results.append((feeds, got))
    _, engine2 = deserialize(env, bytes(engine.serialize()))
    for feeds, got in results:
        torch.testing.assert_close(run(env, engine2, feeds)["Y"], got, atol=0, rtol=0)


# --------------------------------------------------------------------------- through the ONNX parser
def small_dcn_model():
    from exporter.ops import DeformConv2dPack, ModulatedDeformConv2dPack  # noqa: PLC0415

    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
        ModulatedDeformConv2dPack(8, 8, 3, padding=1), torch.nn.ReLU(),
        DeformConv2dPack(8, 4, (3, 2), stride=(2, 1), padding=(1, 0)),
    ).eval()


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_onnx_parser_uses_our_plugin(env, dtype, tmp_path):
    """dcn::DeformConv2d nodes through TensorRT's ONNX parser become our plugin layers
    (not TensorRT's DeformConv importer), dynamic batch / H / W, output = PyTorch's."""
    import onnx  # noqa: PLC0415

    from exporter.export import export  # noqa: PLC0415

    trt = env.trt
    model = small_dcn_model()
    x = torch.randn(2, 3, 16, 20)
    path = tmp_path / "dcn.onnx"
    fp16_model = dtype == "float16" and not hasattr(trt.BuilderFlag, "FP16")  # TensorRT 11: strongly typed
    export(model, x, path, input_names=["images"], output_names=["out"],
           dynamic={"images": {0: "batch", 2: "height", 3: "width"}}, verify=False, fp16=fp16_model)
    onnx_model = onnx.load(str(path))
    dcn_nodes = [n.name for n in onnx_model.graph.node if n.domain == contract.DOMAIN]
    assert len(dcn_nodes) == 2 and all(n.op_type == "DeformConv2d" for n in onnx_model.graph.node
                                       if n.domain == contract.DOMAIN)

    builder = trt.Builder(env.logger)
    flags = 0
    if env.major < 11 and dtype == "float32" and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    net = builder.create_network(flags)
    parser = trt.OnnxParser(net, env.logger)
    ok = parser.parse(path.read_bytes(), str(path))
    assert ok, [str(parser.get_error(i)) for i in range(parser.num_errors)]
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 1 << 30)
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    if dtype == "float16" and hasattr(trt.BuilderFlag, "FP16") and not fp16_model:
        config.set_flag(trt.BuilderFlag.FP16)  # TensorRT 10, weakly typed network
    profile = builder.create_optimization_profile()
    profile.set_shape("images", (1, 3, 8, 8), (2, 3, 16, 20), (4, 3, 40, 48))
    config.add_optimization_profile(profile)
    blob = builder.build_serialized_network(net, config)
    assert blob is not None, "\n".join(env.logger.messages[-30:])
    _, engine = deserialize(env, bytes(blob))
    infos = layer_infos(env, engine)
    ours = our_plugin_layers(infos, "DeformConv2d")
    assert len(ours) >= len(dcn_nodes), infos
    for info in infos:
        texts = " ".join(_strings(info))
        assert "ModulatedDeformConv2d" not in texts, f"TensorRT's own deformable convolution plugin in {info}"
        assert info.get("LayerType") != "DeformConv", info

    for shape in [(2, 3, 16, 20), (1, 3, 8, 8), (4, 3, 40, 48), (3, 3, 21, 33)]:
        xi = torch.randn(*shape)
        feed_dtype = torch.float32 if engine.get_tensor_dtype("images") == trt.float32 else torch.float16
        got = run(env, engine, {"images": xi.to(feed_dtype)})["out"]
        with torch.no_grad():
            want = model.double()(xi.double())
        model.float()
        assert_close(got, want, dtype, f"exported model {dtype} {shape}")


# --------------------------------------------------------------------------- library loading
LOADER = textwrap.dedent("""
    import ctypes, json, sys
    import tensorrt as trt
    path, first_cdll = sys.argv[1], sys.argv[2] == "1"
    if first_cdll:
        ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)   # static registration on load
    reg = trt.get_plugin_registry()
    handle = reg.load_library(path)                  # getCreators / setLoggerFinder (trtexec --dynamicPlugins)
    found = [reg.get_creator(n, "1", "") is not None for n in ("DeformConv2d", "DeformPSROIPool")]
    print(json.dumps({"handle": handle is not None, "found": found}))
""")


@pytest.mark.parametrize("first_cdll", [False, True], ids=["load_library", "cdll-then-load_library"])
def test_registry_load_library(env, first_cdll):
    """IPluginRegistry.load_library (getCreators) works on its own and after a plain dlopen."""
    p = subprocess.run([sys.executable, "-c", LOADER, env.library, "1" if first_cdll else "0"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out == {"handle": True, "found": [True, True]}, p.stderr[-3000:]
