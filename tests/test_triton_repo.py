"""dcn-triton-repo: native Triton model repositories (no server here: NVIDIA's containers serve them).

Every config.pbtxt is parsed by Triton's own model-config protobuf (tritonclient's
model_config_pb2, text format): unknown fields, wrong types or enum names fail the parse.
The ONNX repository's model and op library are also loaded together in ONNX Runtime, as
the onnxruntime backend does (RegisterCustomOpsLibrary on the session options).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from helpers.ci_policy import require_module
from trt_runtime.triton_repo import main

model_config_pb2 = require_module("tritonclient.grpc.model_config_pb2",
                                  reason="tritonclient (installed with nvidia-pytriton)")
from google.protobuf import text_format  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def parse_config(path: Path):
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def _relu_onnx(path: Path, batch="batch", rois=None) -> Path:
    """A small model with a batch axis (or, with ``rois``, a second input whose axis 0 is another symbol)."""
    inputs = [helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, 3, "height", "width"])]
    nodes = [helper.make_node("Relu", ["images"], ["features"])]
    outputs = [helper.make_tensor_value_info("features", TensorProto.FLOAT, [batch, 3, "height", "width"])]
    if rois:
        inputs.append(helper.make_tensor_value_info("rois", TensorProto.FLOAT, [rois, 5]))
        nodes.append(helper.make_node("Relu", ["rois"], ["boxes"]))
        outputs.append(helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [rois, 5]))
    graph = helper.make_graph(nodes, "g", inputs, outputs)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)]), str(path))
    return path


def test_onnx_repository(tmp_path, capsys):
    model = _relu_onnx(tmp_path / "relu.onnx")
    repo = tmp_path / "repo"
    assert main([str(model), "-o", str(repo), "--name", "relu", "--instances", "2", "--max-batch", "16",
                 "--max-queue-delay-us", "500", "--mount", "/models"]) == 0
    cfg = parse_config(repo / "relu" / "config.pbtxt")
    assert cfg.name == "relu" and cfg.platform == "onnxruntime_onnx" and cfg.max_batch_size == 16
    assert [(i.name, model_config_pb2.DataType.Name(i.data_type), list(i.dims)) for i in cfg.input] == \
        [("images", "TYPE_FP32", [3, -1, -1])]
    assert [(o.name, list(o.dims)) for o in cfg.output] == [("features", [3, -1, -1])]
    assert cfg.dynamic_batching.max_queue_delay_microseconds == 500
    assert [(g.count, model_config_pb2.ModelInstanceGroup.Kind.Name(g.kind)) for g in cfg.instance_group] == \
        [(2, "KIND_CPU")]
    assert list(cfg.model_operations.op_library_filename) == ["/models/relu/libdcn_ort.so"]
    assert (repo / "relu" / "1" / "model.onnx").read_bytes() == model.read_bytes()
    from trt_runtime.plugins import ort_library

    assert (repo / "relu" / "libdcn_ort.so").read_bytes() == ort_library().read_bytes()
    readme = (repo / "relu" / "README.md").read_text()
    assert "tritonserver --model-repository=/models" in readme
    assert 'op_library_filename: "/models/relu/libdcn_ort.so"' in readme
    assert "serve it with: tritonserver --model-repository=/models" in capsys.readouterr().out
    assert not [p for p in repo.iterdir() if p.name.startswith(".")], "temporary folders left behind"


def test_onnx_repository_of_the_psroi_layout_has_no_batching(tmp_path):
    """images batch and rois count are different axes: max_batch_size 0, full shapes."""
    model = _relu_onnx(tmp_path / "model.onnx", batch=1, rois="num_rois")
    repo = tmp_path / "repo"
    assert main([str(model), "-o", str(repo)]) == 0
    name = tmp_path.name  # model.onnx is named after its folder
    cfg = parse_config(repo / name / "config.pbtxt")
    assert cfg.max_batch_size == 0 and not cfg.HasField("dynamic_batching")
    assert [list(i.dims) for i in cfg.input] == [[1, 3, -1, -1], [-1, 5]]
    assert list(cfg.model_operations.op_library_filename) == [f"{repo.resolve()}/{name}/libdcn_ort.so"]


def test_repository_files_load_together_in_onnx_runtime(tmp_path):
    """The copied model with the copied op library, as the onnxruntime backend loads them."""
    from helpers.export_models import OursZoo  # noqa: PLC0415
    import torch  # noqa: PLC0415

    import exporter  # noqa: PLC0415
    from trt_runtime.plugins import ort_session  # noqa: PLC0415

    torch.manual_seed(0)
    net = OursZoo().eval()
    x = torch.randn(2, 3, 12, 12)
    exporter.export(net, (x,), str(tmp_path / "zoo.onnx"), input_names=["images"], dynamic={"images": {0: "batch"}})
    repo = tmp_path / "repo"
    assert main([str(tmp_path / "zoo.onnx"), "-o", str(repo)]) == 0
    cfg = parse_config(repo / "zoo" / "config.pbtxt")
    assert cfg.max_batch_size == 8
    lib = cfg.model_operations.op_library_filename[0]
    assert Path(lib).is_file()  # the default mount is the repository's own path
    sess = ort_session(str(repo / "zoo" / "1" / "model.onnx"), library=lib)
    with torch.no_grad():
        ref = net(x).numpy()
    got = sess.run(None, {"images": x.numpy()})[0]
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


def _fake_engine(tmp_path, batches):
    """An engine file (bytes: TensorRT is not needed to write a repository), its .build.json with a profile of
    batches (min, opt, max) over the ReLU ONNX, and a plugin library file: (engine, plugins, ONNX path)."""
    onnx_path = _relu_onnx(tmp_path / "relu.onnx")
    engine = tmp_path / "relu.engine"
    engine.write_bytes(b"engine bytes")
    (tmp_path / "relu.engine.build.json").write_text(json.dumps(
        {"onnx": str(onnx_path), "shapes": {"images": [[b, 3, 64, 64] for b in batches]}}))
    plugins = tmp_path / "libdcn_trt_plugins.so"
    plugins.write_bytes(b"plugin library")
    return engine, plugins, onnx_path


def test_engine_repository(tmp_path):
    """An engine (bytes here: TensorRT is not needed to write the repository), its inputs / outputs from the
    ONNX named by its .build.json, max_batch_size capped by the build profile, the plugin library shipped."""
    engine, plugins, _ = _fake_engine(tmp_path, (1, 2, 4))
    repo = tmp_path / "repo"
    assert main([str(engine), "-o", str(repo), "--plugins", str(plugins), "--mount", "/models",
                 "--instances", "3"]) == 0
    cfg = parse_config(repo / "relu" / "config.pbtxt")
    assert cfg.platform == "tensorrt_plan" and cfg.max_batch_size == 4
    assert [(g.count, model_config_pb2.ModelInstanceGroup.Kind.Name(g.kind)) for g in cfg.instance_group] == \
        [(3, "KIND_GPU")]
    assert not cfg.model_operations.op_library_filename
    assert (repo / "relu" / "1" / "model.plan").read_bytes() == b"engine bytes"
    assert (repo / "relu" / "libdcn_trt_plugins.so").read_bytes() == b"plugin library"
    readme = (repo / "relu" / "README.md").read_text()
    assert ("tritonserver --model-repository=/models "
            "--backend-config=tensorrt,plugins=/models/relu/libdcn_trt_plugins.so") in readme
    assert "LD_PRELOAD=/models/relu/libdcn_trt_plugins.so tritonserver --model-repository=/models" in readme


def test_rewrite_is_atomic_and_errors_are_one_line(tmp_path):
    model = _relu_onnx(tmp_path / "relu.onnx")
    repo = tmp_path / "repo"
    assert main([str(model), "-o", str(repo), "--max-batch", "4"]) == 0
    before = (repo / "relu" / "config.pbtxt").read_text()
    # a failure (no op library where it is said to be) leaves the previous version as it was
    proc = subprocess.run([sys.executable, "-m", "trt_runtime.triton_repo", str(model), "-o", str(repo),
                           "--ort-library", str(tmp_path / "missing.so")], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("dcn-triton-repo: error:")
    assert (repo / "relu" / "config.pbtxt").read_text() == before
    # an engine without a way to know its inputs
    engine = tmp_path / "x.engine"
    engine.write_bytes(b"e")
    assert main([str(engine), "-o", str(repo), "--plugins", str(engine)]) == 2
    # a second run replaces the model's folder
    assert main([str(model), "-o", str(repo), "--max-batch", "2"]) == 0
    assert parse_config(repo / "relu" / "config.pbtxt").max_batch_size == 2
    assert not [p for p in repo.iterdir() if p.name.startswith(".")], "temporary folders left behind"


@pytest.mark.parametrize("location", ["../../evil.sh", "ABSOLUTE"])
def test_external_data_outside_the_models_folder_is_refused(tmp_path, location):
    """A hostile model's external data location ('../..' or an absolute path) named files outside the model's
    folder: they were read from there and written outside the repository's model folder (or copied onto
    themselves, a private file made world-readable). Refused in one line, nothing written; data inside the
    model's folder is copied with the model."""
    from onnx import numpy_helper

    secret = tmp_path / "secret"
    secret.write_text("key\n")
    secret.chmod(0o600)
    folder = tmp_path / "dl" / "a" / "b"
    folder.mkdir(parents=True)
    (tmp_path / "dl" / "evil.sh").write_text("echo pwned\n")
    w = numpy_helper.from_array(np.ones((1, 3), np.float32), "w")
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])], [w])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    t = m.graph.initializer[0]
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    e = t.external_data.add()
    e.key, e.value = "location", str(secret) if location == "ABSOLUTE" else location
    onnx.save(m, str(folder / "model.onnx"))
    repo = tmp_path / "repo" / "models"
    proc = subprocess.run([sys.executable, "-m", "trt_runtime.triton_repo", str(folder / "model.onnx"), "-o",
                           str(repo)], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "expected a relative path inside the model's folder" \
        in proc.stderr, proc.stderr
    assert not (tmp_path / "repo" / "evil.sh").exists() and not (repo / "evil.sh").exists()
    assert oct(secret.stat().st_mode & 0o777) == oct(0o600)
    assert not repo.exists() or not any(repo.iterdir())
    # inside the folder: copied with the model
    onnx.save(onnx.load(str(folder / "model.onnx"), load_external_data=False), str(folder / "model.onnx"))
    np.ones((1, 3), np.float32).tofile(folder / "w.bin")
    m2 = onnx.load(str(folder / "model.onnx"), load_external_data=False)
    m2.graph.initializer[0].external_data[0].value = "w.bin"
    onnx.save(m2, str(folder / "model.onnx"))
    assert main([str(folder / "model.onnx"), "-o", str(repo), "--name", "m"]) == 0
    assert (repo / "m" / "1" / "w.bin").read_bytes() == (folder / "w.bin").read_bytes()


def test_engines_seen_through_tensorrt_batch_only_what_is_known_to_be_one_axis(tmp_path):
    """TensorRT names no dynamic axis: images [-1, 3, H, W] and rois [-1, 5] looked like one batch axis, and
    dcn-serve batched requests whose RoI count is not the image count. Several inputs batch only where the
    ONNX model the engine was built from names one axis (dcn-serve reads it from the .build.json)."""
    from trt_runtime.triton_io import ModelSpec, TensorSpec, describe_onnx

    images = TensorSpec("images", "float32", ("", 3, "", ""))
    rois, boxes = TensorSpec("rois", "float32", ("", 5)), TensorSpec("boxes", "float32", ("", 5))
    assert not ModelSpec(tmp_path / "e", "engine", [images, rois], [boxes]).batch_axis
    assert ModelSpec(tmp_path / "e", "engine", [images], [TensorSpec("y", "float32", ("", 3, "", ""))]).batch_axis
    named = describe_onnx(_relu_onnx(tmp_path / "two.onnx", rois="num_rois"))
    unnamed = ModelSpec(tmp_path / "e", "engine", [images, rois], [boxes], onnx_batch_axis=named.batch_axis)
    assert not named.batch_axis and not unnamed.batch_axis
    same = describe_onnx(_relu_onnx(tmp_path / "same.onnx", rois="batch"))
    assert same.batch_axis and ModelSpec(tmp_path / "e", "engine", [images, rois], [boxes],
                                         onnx_batch_axis=same.batch_axis).batch_axis


def test_tensor_names_are_escaped_in_the_config(tmp_path):
    """Names went into config.pbtxt unescaped: 'in"put' ended the string early and the file did not parse
    (exit 0 all the same). Quotes, backslashes and control characters are escaped as the text format has them."""
    names = ['in"put', "back\\slash", "out:0"]
    graph = helper.make_graph([helper.make_node("Add", names[:2], [names[2]])], "g",
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", 3]) for n in names[:2]],
                              [helper.make_tensor_value_info(names[2], TensorProto.FLOAT, ["batch", 3])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)]), str(tmp_path / "odd.onnx"))
    repo = tmp_path / "repo"
    assert main([str(tmp_path / "odd.onnx"), "-o", str(repo)]) == 0
    cfg = parse_config(repo / "odd" / "config.pbtxt")
    assert [i.name for i in cfg.input] + [o.name for o in cfg.output] == names
    from trt_runtime.triton_repo import pbtxt_string

    for text in ["a'b", "tab\there", "new\nline", "\x01\x7f", "é ü"]:
        assert text_format.Parse(f"name: {pbtxt_string(text)}", model_config_pb2.ModelConfig()).name == text


def test_unknown_rank_is_refused(tmp_path, capsys):
    """A tensor without a shape in the ONNX model was written as a scalar (dims [1] reshaped to [])."""
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)]), str(tmp_path / "norank.onnx"))
    assert main([str(tmp_path / "norank.onnx"), "-o", str(tmp_path / "repo")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["dcn-triton-repo: error: tensor 'x' has unknown rank (no shape in the ONNX model); expected a "
                   "shape on every input and output (dims may be symbols), as dcn-export writes them"], err
    assert not (tmp_path / "repo").exists()


def test_relative_mount_is_refused(tmp_path, capsys):
    """--mount models put op_library_filename relative to wherever the server runs."""
    model = _relu_onnx(tmp_path / "relu.onnx")
    assert main([str(model), "-o", str(tmp_path / "repo"), "--mount", "models"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dcn-triton-repo: error: --mount 'models': expected an absolute path"), \
        err
    assert not (tmp_path / "repo").exists()


@pytest.mark.parametrize("engine", [False, True], ids=["onnx", "engine"])
def test_command_lines_quote_paths(tmp_path, capsys, engine):
    """A repository path with a space: the printed tritonserver line and the README's shell lines split
    into the right arguments."""
    import shlex

    model = _relu_onnx(tmp_path / "relu.onnx")
    argv = [str(model), "-o", str(tmp_path / "my repo"), "--name", "relu"]
    if engine:
        (tmp_path / "relu.engine").write_bytes(b"engine bytes")
        plugins = tmp_path / "libdcn_trt_plugins.so"
        plugins.write_bytes(b"plugin library")
        argv = [str(tmp_path / "relu.engine"), *argv[1:], "--onnx", str(model), "--plugins", str(plugins)]
    assert main(argv) == 0
    where = str((tmp_path / "my repo").resolve())
    lib = f"{where}/relu/{'libdcn_trt_plugins.so' if engine else 'libdcn_ort.so'}"
    want = ["tritonserver", f"--model-repository={where}"] + ([f"--backend-config=tensorrt,plugins={lib}"]
                                                             if engine else [])
    [line] = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("serve it with: ")]
    assert shlex.split(line.removeprefix("serve it with: ")) == want
    readme = (tmp_path / "my repo" / "relu" / "README.md").read_text()
    shell = [ln for ln in readme.splitlines() if ln.startswith(("tritonserver", "LD_PRELOAD", "docker", "  nvcr"))]
    assert [shlex.split(ln) for ln in shell if ln.startswith("tritonserver")] == [want]
    docker = shlex.split(" ".join(ln.rstrip("\\") for ln in shell if ln.startswith(("docker", "  nvcr"))))
    assert docker[docker.index("-v") + 1] == f"$PWD:{where}" and docker[-len(want):] == want
    if engine:
        [preload] = [shlex.split(ln) for ln in shell if ln.startswith("LD_PRELOAD")]
        assert preload == [f"LD_PRELOAD={lib}", "tritonserver", f"--model-repository={where}"]
    assert list(parse_config(tmp_path / "my repo" / "relu" / "config.pbtxt").model_operations.op_library_filename) \
        == ([] if engine else [lib])


def test_engine_whose_profile_starts_above_batch_1_is_not_batched(tmp_path, capsys):
    """An engine built for batch 2..8 got max_batch_size 8: Triton's batcher forms batches of 1 too, which the
    engine refuses. No batching (full shapes), and the printed line and the README say why."""
    engine, plugins, _ = _fake_engine(tmp_path, (2, 4, 8))
    repo = tmp_path / "repo"
    assert main([str(engine), "-o", str(repo), "--plugins", str(plugins)]) == 0
    cfg = parse_config(repo / "relu" / "config.pbtxt")
    assert cfg.max_batch_size == 0 and not cfg.HasField("dynamic_batching")
    assert [list(i.dims) for i in cfg.input] == [[-1, 3, -1, -1]]
    why = ("no batching (the engine's optimization profile starts at batch 2, and Triton's batcher forms smaller "
           "batches too; requests carry their whole batch): full shapes")
    assert f"(max_batch_size 0: {why})" in capsys.readouterr().out
    assert why in (repo / "relu" / "README.md").read_text()
