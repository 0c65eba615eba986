"""trt_runtime on a GPU: builds and runs real engines (marked ``trt`` and ``gpu``) and skips, naming
the missing piece, without TensorRT, a CUDA device or the built plugin library. The CPU half of the
runtime's tests is tests/test_trt_runtime_cpu.py.
"""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from dcn_base.errors import DcnError
from dcn_base.tolerance import TOLERANCES
from trt_runtime import cuda_env, engine_files, environment, plugin_loader
from samples.resnet_dcn import model as resnet_sample
from trt_runtime.build import build_plan, check_plugin_layers, dcn_nodes

S = resnet_sample.TINY_SIZE  # the sample's CI image size

# =========================================================================== TensorRT on a GPU


def make_resnet_dcn() -> torch.nn.Module:
    """The ResNet-DCN sample (samples/resnet_dcn), CI size, DCNv2 with offsets of about half a pixel:
    deterministic weights, BatchNorm calibrated."""
    return resnet_sample.build("dcnv2", tiny=True, offset_std=0.5)


@pytest.fixture(scope="module")
def trt_env():
    """(tensorrt, plugin library path), or skip naming the missing piece."""
    try:
        trt = environment.import_tensorrt()
    except environment.TrtEnvironmentError as err:
        pytest.skip(f"TensorRT Python package not usable: {err}")
    count, why = cuda_env.cuda_device_count()
    if count < 1:
        pytest.skip(f"no CUDA device: {why}")
    try:
        lib = plugin_loader.resolve_plugin_path(None, required=True)
    except environment.TrtEnvironmentError as err:
        pytest.skip(f"TensorRT plugin library not built: {err}")
    return trt, lib


@pytest.fixture(scope="module")
def resnet_onnx(tmp_path_factory):
    """The ResNet-DCN sample exported by dcn-export's Python API with a dynamic batch (CPU only)."""
    try:
        from exporter import export
    except (ImportError, AttributeError) as err:
        pytest.skip(f"exporter.export (dcn-export) is not available: {err}")
    out = tmp_path_factory.mktemp("resnet_dcn") / "resnet_dcn.onnx"
    export(make_resnet_dcn(), (torch.rand(2, 3, S, S),), out, input_names=["images"],
           output_names=["logits"], dynamic={"images": {0: "batch"}}, verify=False)
    return out


def test_resnet_dcn_sample_exports_and_matches_on_cpu(resnet_onnx):
    """The engine tests' model, checked on the CPU first: ONNX Runtime + our ops vs PyTorch, two batch sizes."""
    from trt_runtime import plugins
    from trt_runtime.compare import compare

    try:
        plugins.ort_library()
    except plugins.LibraryNotBuiltError as err:
        pytest.skip(f"ONNX Runtime op library not built: {err}")
    for shape in (f"images:1x3x{S}x{S}", f"images:3x3x{S}x{S}"):
        outcome = compare(make_resnet_dcn(), str(resnet_onnx), input_shapes=[shape], log=lambda *_: None)
        assert outcome.passed, outcome.outputs
        assert [o["name"] for o in outcome.outputs] == ["logits"]


SHAPES = [f"images:1x3x{S}x{S}:2x3x{S}x{S}:4x3x{S}x{S}"]


@pytest.fixture(scope="module")
def fp16_engine(trt_env, resnet_onnx, tmp_path_factory):
    from trt_runtime.build import build_engine

    out = tmp_path_factory.mktemp("engines") / "resnet_dcn.engine"
    result = build_engine(resnet_onnx, out, fp16=True, shapes=SHAPES, workspace="1GiB",
                          timing_cache=out.with_suffix(".cache"))
    return out, result


@pytest.mark.trt
@pytest.mark.gpu
def test_build_fp16_engine_dynamic_batch(trt_env, fp16_engine):
    trt, lib = trt_env
    path, result = fp16_engine
    assert path.is_file() and path.stat().st_size > 0
    info = engine_files.read_build_info(path)
    assert info["trt_version"] == trt.__version__ and info["precision"] == "float16"
    assert info["shapes"]["images"] == [[1, 3, S, S], [2, 3, S, S], [4, 3, S, S]]
    assert result.plan == build_plan(trt.__version__, "float32", True)
    assert Path(str(path.with_suffix(".cache"))).is_file()  # timing cache written


@pytest.mark.trt
@pytest.mark.gpu
def test_inspector_shows_our_plugin_layers(trt_env, fp16_engine, resnet_onnx):
    import onnx

    trt, _ = trt_env
    path, result = fp16_engine
    nodes = dcn_nodes(onnx.load(str(resnet_onnx), load_external_data=False))
    assert len(nodes) == 3 and all(op == "DeformConv2d" for _, op in nodes)  # conv2 of layer2-4
    assert [r["node"] for r in result.plugin_layers] == [n for n, _ in nodes]
    assert all(r["ok"] for r in result.plugin_layers), result.plugin_layers
    # and again from the engine file, through the inspector
    engine, _runtime, _ = engine_files.deserialize_engine(trt, str(path))
    layer_json = engine.create_engine_inspector().get_engine_information(trt.LayerInformationFormat.JSON)
    report = check_plugin_layers(layer_json, nodes)
    assert all(r["layer_type"] and "Plugin" in r["layer_type"] for r in report), report


def _fp16_close(ref, got):
    from trt_runtime.compare import error_stats

    atol, rtol = TOLERANCES["float16"]
    st = error_stats([np.asarray(ref)], [np.asarray(got)], atol, rtol)
    assert st["outside_count"] == 0, st


@pytest.mark.trt
@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["cuda-python", "torch", "pycuda"])
def test_engine_numpy_and_torch_inputs(trt_env, fp16_engine, backend):
    from trt_runtime import Engine

    if backend == "pycuda":
        pytest.importorskip("pycuda.driver", reason="pycuda (optional extra [pycuda]) is not installed")
    path, _ = fp16_engine
    model = make_resnet_dcn()
    with Engine(path, backend=backend) as eng:
        assert eng.input_names == ["images"] and eng.output_names == ["logits"]
        for batch in (1, 3):  # dynamic batch, set per call
            x = np.random.default_rng(batch).random((batch, 3, S, S), dtype=np.float32)
            with torch.no_grad():
                ref = [model(torch.from_numpy(x)).numpy()]
            out = eng(images=x)  # numpy in, numpy out
            assert all(isinstance(v, np.ndarray) for v in out.values())
            for r, name in zip(ref, eng.output_names):
                assert out[name].shape == r.shape
                _fp16_close(r, out[name])
            out_cpu = eng({"images": torch.from_numpy(x)})  # CPU tensor in, CPU tensor out
            assert all(isinstance(v, torch.Tensor) and not v.is_cuda for v in out_cpu.values())
            xc = torch.from_numpy(x).cuda()  # CUDA tensor: zero-copy, outputs on the GPU
            out_gpu = eng(images=xc)
            assert all(v.is_cuda for v in out_gpu.values())
            for r, name in zip(ref, eng.output_names):
                _fp16_close(r, out_gpu[name].cpu().numpy())
        with pytest.raises(DcnError, match="outside the engine's profile"):
            eng(images=np.zeros((5, 3, S, S), np.float32))
        with pytest.raises(DcnError, match="missing"):
            eng({})


@pytest.mark.trt
@pytest.mark.gpu
def test_dcn_compare_pytorch_vs_engine_fp16(trt_env, fp16_engine, tmp_path, capsys):
    from polygraphy.comparator import Comparator

    from trt_runtime.cli import compare_main
    from trt_runtime.compare import TorchRunner, compare

    path, _ = fp16_engine
    model = make_resnet_dcn()
    outcome = compare(model, str(path), input_shapes=[f"images:2x3x{S}x{S}"], seed=5, report=str(tmp_path / "r.json"))
    assert outcome.passed, outcome.outputs
    assert outcome.report["precision"] == "float16" and outcome.report["target"]["runner"] == "tensorrt"
    # the CLI on saved PyTorch outputs, as dcn-export --save-io writes them
    io = tmp_path / "io"
    io.mkdir()
    feeds = [OrderedDict(images=np.random.default_rng(0).random((4, 3, S, S), dtype=np.float32))]
    import onnx

    names = [o.name for o in onnx.load(str(fp16_engine[1].info["onnx"]), load_external_data=False).graph.output]
    Comparator.run([TorchRunner(model, [("images", np.float32, [None, 3, S, S])], output_names=names)],
                   data_loader=feeds, save_inputs_path=str(io / "inputs.json"), save_outputs_path=str(io / "outputs.json"))
    assert compare_main([str(io), str(path), "--plot", str(tmp_path / "plots")]) == 0, capsys.readouterr().out
    assert any(p.suffix == ".png" for p in (tmp_path / "plots").iterdir())


@pytest.mark.trt
@pytest.mark.gpu
def test_dcn_infer_cli_with_timing(trt_env, fp16_engine, tmp_path, capsys):
    from trt_runtime.cli import infer_main

    path, _ = fp16_engine
    x = np.random.default_rng(1).random((2, 3, S, S), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "out.npz"
    assert infer_main([str(path), "--input", f"images={tmp_path / 'x.npy'}", "-o", str(out), "--iterations", "20"]) == 0
    text = capsys.readouterr().out
    assert "median" in text and "p90" in text and "throughput" in text
    with np.load(out) as z:
        assert len(z.files) == 1 and all(z[k].shape[0] == 2 for k in z.files)


@pytest.mark.trt
@pytest.mark.gpu
def test_fp32_engine_within_fp32_tolerance(trt_env, resnet_onnx, tmp_path):
    from trt_runtime.build import build_engine
    from trt_runtime.compare import compare

    out = tmp_path / "fp32.engine"
    result = build_engine(resnet_onnx, out, fp16=False, shapes=SHAPES)
    assert result.plan.precision == "float32"
    outcome = compare(make_resnet_dcn(), str(out), input_shapes=[f"images:2x3x{S}x{S}"])
    assert outcome.report["precision"] == "float32"
    assert outcome.passed, outcome.outputs


