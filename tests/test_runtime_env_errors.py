"""Every environment error of dcn-build / dcn-infer / dcn-compare: exit code 2 and one line.

TensorRT missing is simulated by an import failure (``sys.modules['tensorrt'] = None``); the
later checks (CUDA device, plugin library, engine from another TensorRT) run against a small
fake ``tensorrt`` module, in process and through subprocess runs of the entry points.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from trt_runtime import cuda_env, engine_files, environment, plugin_loader
from dcn_base import atomic
from trt_runtime.cli import build_main, compare_main, infer_main

REPO = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- fixtures


def _onnx_with_dcn_node(path: Path) -> Path:
    """A one-node model with a dcn::DeformConv2d node (never run here: only read)."""
    w = numpy_helper.from_array(np.zeros((4, 3, 3, 3), np.float32), "w")
    node = helper.make_node("DeformConv2d", ["images", "w", "offset"], ["y"], domain="dcn", name="backbone.dcn",
                            pads=[1, 1, 1, 1])
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 8, 8]),
         helper.make_tensor_value_info("offset", TensorProto.FLOAT, [1, 18, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("dcn", 1)])
    onnx.save(model, str(path))
    return path


def _plain_onnx(path: Path, batch="batch") -> Path:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["images"], ["y"])], "g",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 3, 8, 8])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path


@pytest.fixture
def files(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((1, 3, 8, 8), np.float32))
    (tmp_path / "model.engine").write_bytes(b"not really an engine")
    io = tmp_path / "io"  # saved reference outputs + inputs, as dcn-export --save-io writes them
    io.mkdir()
    from polygraphy.comparator import IterationResult, RunResults
    from polygraphy.json import save_json

    save_json([{"images": np.zeros((1, 3, 8, 8), np.float32)}], str(io / "inputs.json"))
    results = RunResults()
    results.append(("pytorch", [IterationResult({"y": np.zeros((1, 3, 8, 8), np.float32)}, runner_name="pytorch")]))
    from polygraphy.logger import G_LOGGER

    with G_LOGGER.verbosity(G_LOGGER.WARNING):
        results.save(str(io / "outputs.json"))
    return {
        "io": io,
        "dir": tmp_path,
        "dcn": _onnx_with_dcn_node(tmp_path / "dcn.onnx"),
        "plain": _plain_onnx(tmp_path / "plain.onnx"),
        "static": _plain_onnx(tmp_path / "static.onnx", batch=1),
        "npy": tmp_path / "x.npy",
        "engine": tmp_path / "model.engine",
    }


FAKE_TRT_SOURCE = '''
"""A stand-in for TensorRT's Python package: enough for the environment checks, nothing more."""
__version__ = "{version}"

class Logger:
    INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = 0, 1, 2, 3, 4

class ILogger:
    def __init__(self):
        pass

def init_libnvinfer_plugins(logger, namespace):
    return True

class Runtime:
    def __init__(self, logger):
        self.logger = logger

    def deserialize_cuda_engine(self, data):
        self.logger.log(Logger.ERROR, {message!r})
        return None
'''

VERSION_MESSAGE = ("IRuntime::deserializeCudaEngine: Error Code 6: API Usage Error (The engine plan file is not "
                   "compatible with this version of TensorRT, expecting library version 10.9.0.34 got 10.3.0.26, "
                   "please rebuild.)")


def fake_trt(version="10.9.0", message=VERSION_MESSAGE) -> types.ModuleType:
    mod = types.ModuleType("tensorrt")
    exec(FAKE_TRT_SOURCE.format(version=version, message=message), mod.__dict__)  # noqa: S102
    return mod


@pytest.fixture
def no_trt(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)


@pytest.fixture
def with_fake_trt(monkeypatch):
    """A fake TensorRT 10 that imports, a CUDA device count of 1 and no default plugin library."""
    monkeypatch.setitem(sys.modules, "tensorrt", fake_trt())
    monkeypatch.setattr(cuda_env, "cuda_device_count", lambda: (1, ""))
    monkeypatch.setenv("DCN_TRT_LIBRARY", "/nonexistent/libdcn_trt_plugins.so")
    plugin_loader._LOADED.clear()


def _one_error_line(err: str, prog: str) -> str:
    lines = [l for l in err.splitlines() if l.strip()]
    errors = [l for l in lines if l.startswith(f"{prog}: error:")]
    assert len(errors) == 1, err
    assert "Traceback" not in err, err
    return errors[0]


# --------------------------------------------------------------------------- TensorRT not installed


def test_import_tensorrt_missing(no_trt):
    with pytest.raises(environment.TensorRTNotInstalled) as e:
        environment.import_tensorrt()
    msg = str(e.value)
    assert msg.startswith("TensorRT is not installed") and "pip install 'dcn-deploy[tensorrt]'" in msg
    assert "\n" not in msg and environment.TensorRTNotInstalled.exit_code == 2


def test_tensorrt_placeholder_and_too_old(monkeypatch):
    stub = types.ModuleType("tensorrt")  # the PyPI placeholder: no version, no Logger
    monkeypatch.setitem(sys.modules, "tensorrt", stub)
    with pytest.raises(environment.TensorRTNotInstalled, match="placeholder"):
        environment.import_tensorrt()
    monkeypatch.setitem(sys.modules, "tensorrt", fake_trt(version="8.6.1"))
    with pytest.raises(environment.TensorRTNotInstalled, match=r"TensorRT 8.6.1 is too old.*>= 10"):
        environment.import_tensorrt()


@pytest.mark.parametrize("tool", ["build", "infer", "compare"])
def test_cli_tensorrt_missing(tool, no_trt, files, capsys):
    d = files["dir"]
    out = d / "out.engine"
    out.write_bytes(b"old")
    if tool == "build":
        rc, prog = build_main([str(files["static"]), "-o", str(out)]), "dcn-build"
    elif tool == "infer":
        rc, prog = infer_main([str(files["engine"]), "--input", f"images={files['npy']}", "-o", str(d / "o.npz")]), "dcn-infer"
    else:
        rc, prog = compare_main([str(files["io"]), str(files["engine"])]), "dcn-compare"
    line = _one_error_line(capsys.readouterr().err, prog)
    assert rc == 2
    assert "TensorRT is not installed" in line and "pip install" in line
    assert out.read_bytes() == b"old" and not (d / "o.npz").exists()


def test_cli_tensorrt_missing_subprocess(files):
    code = textwrap.dedent(f"""
        import sys
        sys.modules["tensorrt"] = None          # simulate: TensorRT not installed
        from trt_runtime.cli import main
        sys.exit(main(["build", {str(files["static"])!r}, "-o", {str(files["dir"] / "x.engine")!r}]))
    """)
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 2, r.stderr
    line = _one_error_line(r.stderr, "dcn-build")
    assert "TensorRT is not installed" in line
    assert not (files["dir"] / "x.engine").exists()


def test_module_entry_point_usage(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-m", "trt_runtime.cli"], cwd=REPO, capture_output=True, text=True,
                       timeout=120, env=env)
    assert r.returncode == 2 and "expected a command: build, infer, compare" in r.stderr
    r = subprocess.run([sys.executable, "-m", "trt_runtime.cli", "compare", "--help"], cwd=REPO,
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0 and "Exit code 0" in r.stdout


# --------------------------------------------------------------------------- no CUDA device


def test_cuda_device_count_reports_a_reason():
    count, why = cuda_env.cuda_device_count()
    assert isinstance(count, int) and count >= 0
    if count == 0:
        assert why  # e.g. "CUDA driver version is insufficient ... (cudaErrorInsufficientDriver)"


def test_cli_no_cuda_device(monkeypatch, files, capsys):
    monkeypatch.setitem(sys.modules, "tensorrt", fake_trt())
    monkeypatch.setattr(cuda_env, "cuda_device_count", lambda: (0, "no CUDA-capable device is detected (cudaErrorNoDevice)"))
    out = files["dir"] / "out.engine"
    assert build_main([str(files["static"]), "-o", str(out)]) == 2
    line = _one_error_line(capsys.readouterr().err, "dcn-build")
    assert "no CUDA device: no CUDA-capable device is detected (cudaErrorNoDevice)" in line
    assert infer_main([str(files["engine"]), "--input", f"images={files['npy']}"]) == 2
    assert "dcn-infer: error: no CUDA device" in capsys.readouterr().err
    assert not out.exists()


def test_cli_no_cuda_device_subprocess(files, tmp_path):
    """Real cuda-python call with CUDA_VISIBLE_DEVICES='' and a fake tensorrt package first on the path."""
    fake = tmp_path / "fake_site" / "tensorrt"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(FAKE_TRT_SOURCE.format(version="10.9.0", message=VERSION_MESSAGE))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake.parent), str(REPO)]), "CUDA_VISIBLE_DEVICES": ""}
    r = subprocess.run([sys.executable, "-m", "trt_runtime.cli", "build", str(files["static"]), "-o",
                        str(tmp_path / "x.engine")], cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 2, r.stderr
    assert "no CUDA device" in _one_error_line(r.stderr, "dcn-build")


# --------------------------------------------------------------------------- plugin library not built


def test_cli_plugin_library_not_built(with_fake_trt, files, capsys):
    out = files["dir"] / "out.engine"
    assert build_main([str(files["dcn"]), "-o", str(out)]) == 2
    line = _one_error_line(capsys.readouterr().err, "dcn-build")
    assert "TensorRT plugin library" in line and "--plugins PATH" in line
    assert "DCN_TRT_LIBRARY='/nonexistent/libdcn_trt_plugins.so' is not a file" in line  # where it looked
    assert not out.exists()


def test_cli_plugin_path_missing(with_fake_trt, files, capsys):
    assert build_main([str(files["dcn"]), "-o", str(files["dir"] / "o.engine"), "--plugins", "/nonexistent/lib.so"]) == 2
    assert "plugin library '/nonexistent/lib.so' does not exist" in _one_error_line(capsys.readouterr().err, "dcn-build")


def test_plugin_library_not_required_without_dcn_nodes(with_fake_trt):
    assert plugin_loader.resolve_plugin_path(None, required=False) is None


# --------------------------------------------------------------------------- engine from another TensorRT


@pytest.mark.parametrize("message, kind", [
    (VERSION_MESSAGE, "version"),
    ("Serialization assertion stdVersionRead == serializationVersion failed.Version tag does not match. "
     "Note: Current Version: 236, Serialized Engine Version: 228", "version"),
    ("The engine plan file is generated on an incompatible device, expecting compute 9.0 got compute 8.6, "
     "please rebuild.", "device"),
    ("getPluginCreator could not find plugin: DeformConv2d version: 1", "plugin"),
    ("Cannot deserialize plugin since corresponding IPluginCreator not found in Plugin Registry", "plugin"),
    ("Serialization assertion magicTagRead == kMAGIC_TAG failed.Magic tag does not match", "format"),
    ("something else entirely", "unknown"),
])
def test_classify_deserialize_failure(message, kind):
    got, msg = engine_files.classify_deserialize_failure(["[W] unrelated warning", message] if kind != "unknown" else [message])
    assert got == kind and (msg == message or kind == "unknown")


def test_cli_engine_from_other_tensorrt_version(with_fake_trt, files, capsys):
    atomic.write_json_atomic(engine_files.build_info_path(files["engine"]), {"trt_version": "10.3.0.26", "precision": "float16"})
    assert infer_main([str(files["engine"]), "--input", f"images={files['npy']}"]) == 2
    line = _one_error_line(capsys.readouterr().err, "dcn-infer")
    assert "was built by another TensorRT version (built with TensorRT 10.3.0.26)" in line
    assert "installed TensorRT 10.9.0" in line and "rebuild it with dcn-build" in line
    assert compare_main([str(files["io"]), str(files["engine"])]) == 2
    assert "was built by another TensorRT version" in _one_error_line(capsys.readouterr().err, "dcn-compare")


def test_engine_not_an_engine(monkeypatch, with_fake_trt, files):
    monkeypatch.setitem(sys.modules, "tensorrt", fake_trt(message="Serialization assertion magicTagRead == kMAGIC_TAG failed."
                                                                   "Magic tag does not match"))
    trt = environment.import_tensorrt()
    with pytest.raises(environment.EngineIncompatible, match="is not a TensorRT engine or is corrupted"):
        engine_files.deserialize_engine(trt, str(files["engine"]))
    with pytest.raises(Exception, match="does not exist"):
        engine_files.deserialize_engine(trt, str(files["dir"] / "missing.engine"))


# --------------------------------------------------------------------------- dcn-build input errors (before TensorRT)


@pytest.mark.parametrize("args, words", [
    (["{dir}/missing.onnx", "-o", "{out}"], "does not exist"),
    (["{dir}/garbage.onnx", "-o", "{out}"], "is not a readable ONNX model"),
    (["{plain}", "-o", "{out}"], "input 'images' has dynamic shape [batch, 3, 8, 8]; give its range with --shapes images:MIN:OPT:MAX"),
    (["{plain}", "-o", "{out}", "--shapes", "images:1x3x8x8"], "expected NAME:MIN:OPT:MAX"),
    (["{plain}", "-o", "{out}", "--shapes", "imgs:1x3x8x8:2x3x8x8:4x3x8x8"], "the model's inputs are ['images']"),
    (["{plain}", "-o", "{out}", "--shapes", "images:4x3x8x8:2x3x8x8:1x3x8x8"], "0 < MIN <= OPT <= MAX"),
    (["{plain}", "-o", "{out}", "--shapes", "images:1x3x9x8:2x3x9x8:4x3x9x8"], "dimension 2 is fixed to 8"),
    (["{static}", "-o", "{out}", "--workspace", "lots"], "--workspace 'lots'"),
    (["{static}", "-o", "{dir}/no/such/dir/x.engine"], "does not exist"),
    (["{static}", "-o", "{dir}"], "is a directory, expected a file path"),
    (["{static}", "-o", "{static}"], "output -o"),  # the engine over the model
    (["{static}", "-o", "{out}", "--timing-cache", "{static}"], "output --timing-cache"),  # read, then written
    (["{static}", "-o", "{out}", "--timing-cache", "{out}"], "output --timing-cache"),
])
def test_build_input_errors_leave_files_untouched(files, capsys, args, words, no_trt):
    d = files["dir"]
    (d / "garbage.onnx").write_bytes(b"\x00garbage")
    out = d / "out.engine"
    out.write_bytes(b"old engine")
    fmt = dict(dir=d, out=out, plain=files["plain"], static=files["static"])
    rc = build_main([a.format(**fmt) for a in args])
    line = _one_error_line(capsys.readouterr().err, "dcn-build")
    assert rc == 2 and words in line
    assert out.read_bytes() == b"old engine"
    assert not [p for p in d.iterdir() if ".tmp" in p.name]


def test_infer_input_errors(files, capsys, no_trt):
    assert infer_main([str(files["engine"])]) == 2
    assert "no inputs" in _one_error_line(capsys.readouterr().err, "dcn-infer")
    assert infer_main([str(files["engine"]), "--input", "images=/nonexistent.npy"]) == 2
    assert "does not exist" in _one_error_line(capsys.readouterr().err, "dcn-infer")
    bad = files["dir"] / "bad.npy"
    bad.write_bytes(b"nope")
    assert infer_main([str(files["engine"]), "--input", f"images={bad}"]) == 2
    assert "is not a .npy/.npz file" in _one_error_line(capsys.readouterr().err, "dcn-infer")


# --------------------------------------------------------------------------- ONNX Runtime op library not built


def test_compare_onnx_with_dcn_nodes_needs_the_ort_library(files, monkeypatch, capsys):
    import torch

    from trt_runtime.compare import compare

    class Stub(torch.nn.Module):  # stands in for the PyTorch reference; never compared
        def forward(self, images, offset):
            return torch.zeros(images.shape[0], 4, 8, 8)

    monkeypatch.setenv("DCN_ORT_LIBRARY", "/nonexistent/libdcn_ort.so")
    with pytest.raises(environment.PluginLibraryError) as e:
        compare(Stub(), str(files["dcn"]), log=lambda *_: None)
    msg = str(e.value)
    assert msg.startswith("ONNX Runtime op library not built, needed for the dcn nodes of")
    assert "DCN_ORT_LIBRARY='/nonexistent/libdcn_ort.so' is not a file" in msg and e.value.exit_code == 2
