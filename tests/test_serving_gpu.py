"""The engine routes of serving, on a GPU machine: ``dcn-serve`` on a TensorRT FP16 engine of the tiny
ResNet-DCN sample (our plugins), under concurrent load with dynamic batching, and
``dcn-triton-repo`` on the real engine (inputs / outputs and batch limit from its .build.json).

Marked ``trt`` and ``gpu``: without TensorRT, a CUDA device or the built plugin library every test
skips naming the missing piece. Not run on the CPU-only CI machine.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dcn_base.tolerance import model_tolerance
from test_trt_runtime_gpu import trt_env  # noqa: F401  (the fixture: skips naming what is missing)

from helpers.ci_policy import require_module
from helpers.serve_helpers import ServerProcess, batch_stats, deviation, export_resnet_tiny, infer, run_clients

require_module("tritonclient.http", reason="tritonclient (installed with nvidia-pytriton)")
pytestmark = [pytest.mark.trt, pytest.mark.gpu]


@pytest.fixture(scope="module")
def engine(trt_env, tmp_path_factory):
    """(engine path, onnx path, inputs, PyTorch outputs) or skip naming what is missing."""
    from exporter.loading import load_model
    from trt_runtime.build import build_engine

    work = tmp_path_factory.mktemp("serving-gpu")
    onnx_path = export_resnet_tiny(work)
    out = work / "resnet_dcn.engine"
    build_engine(onnx_path, out, fp16=True, shapes=["images:1x3x64x64:4x3x64x64:8x3x64x64"])
    x = torch.randn(16, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        ref = load_model(work / "resnet_dcn.pt2")(x).numpy()
    return out, onnx_path, x.numpy(), ref


def test_engine_served_under_load(engine, tmp_path, request):
    path, _, x, ref = engine
    server = ServerProcess(path, ["--name", "resnet_dcn_trt", "--instances", "2", "--max-batch", "8",
                                  "--max-queue-delay-us", "5000"], tmp_path)
    request.addfinalizer(server.stop)
    server.wait_ready()
    tol = model_tolerance("float16", ref)

    def one(module, client, c: int, j: int) -> tuple[float, bool]:
        k = (c * 20 + j) % len(x)
        got = infer(module, client, "resnet_dcn_trt", {"images": x[k:k + 1]}, ["output"])["output"]
        return deviation(got, ref[k:k + 1], tol)

    results, errors = run_clients(server, 8, 20, one)
    devs = [dev for dev, _ in results]
    errors += [f"deviation {dev} outside {tol}" for dev, ok in results if not ok]
    stats = batch_stats(server, "resnet_dcn_trt")
    print("serving engine:", {"requests": 160, "errors": len(errors), "max_abs_deviation": max(devs, default=None),
                              "batches": stats})
    assert not errors, errors[:5]
    assert len(devs) == 160
    assert any(b > 1 for b in stats), stats
    assert server.stop() == 130
    assert "Traceback" not in server.stderr()


def test_engine_repository_from_the_real_engine(engine, tmp_path):
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    from trt_runtime.triton_repo import main

    path = engine[0]
    assert main([str(path), "-o", str(tmp_path / "repo"), "--mount", "/models"]) == 0
    cfg = text_format.Parse((tmp_path / "repo" / "resnet_dcn" / "config.pbtxt").read_text(),
                            model_config_pb2.ModelConfig())
    assert cfg.platform == "tensorrt_plan" and cfg.max_batch_size == 8
    assert [list(i.dims) for i in cfg.input] == [[3, -1, -1]]
    assert (tmp_path / "repo" / "resnet_dcn" / "1" / "model.plan").read_bytes() == path.read_bytes()
    assert np.asarray(list(cfg.output[0].dims)).tolist() == [1000]
