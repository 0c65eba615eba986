"""trt_runtime.plugins: where the libraries are looked for, in which order, what a missing one
says, and the dcn-plugins command."""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import time
import tomllib
from pathlib import Path

import pytest

from dcn_base import libraries
from trt_runtime import plugins

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def world(monkeypatch, tmp_path):
    """Every place the locator looks, moved under tmp_path and empty (the package: the repository's trt_runtime)."""
    places = {name: tmp_path / name for name in ("repo", "site", "user")}
    places["pkg"] = places["repo"] / "trt_runtime"
    for p in places.values():
        p.mkdir()
    for lib in (plugins.ORT, plugins.TRT, plugins.HOST_TESTS):
        monkeypatch.delenv(lib.env, raising=False)
    monkeypatch.setattr(libraries, "REPO", places["repo"])
    monkeypatch.setattr(sysconfig, "get_paths", lambda *a, **k: {"platlib": str(places["site"]),
                                                                 "purelib": str(places["site"])})
    monkeypatch.setattr(libraries.site, "getsitepackages", lambda: [])
    monkeypatch.setattr(libraries.site, "getusersitepackages", lambda: str(places["user"]))
    return places


def put(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x7fELF")
    return path


def test_missing_library_says_what_where_and_how(world):
    with pytest.raises(plugins.LibraryNotBuiltError) as err:
        plugins.ort_library()
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("ONNX Runtime op library libdcn_ort.so is not built (looked in $DCN_ORT_LIBRARY, ")
    for place in (world["pkg"] / "lib", world["site"] / "trt_runtime" / "lib", world["repo"] / "build" / "**"):
        assert str(place) in msg
    assert msg.endswith("build it with `bash scripts/setup.sh`")
    with pytest.raises(plugins.LibraryNotBuiltError) as err:
        plugins.trt_library()
    assert "TensorRT plugin library libdcn_trt_plugins.so is not built" in str(err.value)
    assert "GPU machine" in str(err.value) and "`bash scripts/build_trt_plugins.sh" in str(err.value)  # as the README


def test_order_argument_env_package_site_build(world, monkeypatch, tmp_path):
    build = put(world["repo"] / "build" / "dev" / "ort" / "libdcn_ort.so")
    assert plugins.ort_library() == build.resolve()
    site_lib = put(world["site"] / "trt_runtime" / "lib" / "libdcn_ort.so")
    assert plugins.ort_library() == site_lib.resolve()
    pkg_lib = put(world["pkg"] / "lib" / "libdcn_ort.so")
    assert plugins.ort_library() == pkg_lib.resolve()
    env_lib = put(tmp_path / "env" / "libdcn_ort.so")
    monkeypatch.setenv("DCN_ORT_LIBRARY", str(env_lib))
    assert plugins.ort_library() == env_lib.resolve()
    arg_lib = put(tmp_path / "arg" / "custom.so")
    assert plugins.ort_library(arg_lib) == arg_lib.resolve()
    assert plugins.ort_library(str(arg_lib)) == arg_lib.resolve()


def test_user_site_packages_and_newest_build(world):
    user_lib = put(world["user"] / "trt_runtime" / "lib" / "libdcn_trt_plugins.so")
    assert plugins.trt_library() == user_lib.resolve()
    user_lib.unlink()
    old = put(world["repo"] / "build" / "a" / "libdcn_trt_plugins.so")
    new = put(world["repo"] / "build" / "b" / "trt" / "libdcn_trt_plugins.so")
    now = time.time()
    os.utime(old, (now - 100, now - 100))
    os.utime(new, (now, now))
    assert plugins.trt_library() == new.resolve()


def test_a_wrong_explicit_path_or_env_is_an_error_not_a_fallback(world, monkeypatch, tmp_path):
    put(world["pkg"] / "lib" / "libdcn_ort.so")
    with pytest.raises(plugins.LibraryNotBuiltError, match=r"ONNX Runtime op library: '.*nope\.so' \(given as path\) is not a file"):
        plugins.ort_library(tmp_path / "nope.so")
    monkeypatch.setenv("DCN_ORT_LIBRARY", str(tmp_path / "gone.so"))
    with pytest.raises(plugins.LibraryNotBuiltError, match=r"DCN_ORT_LIBRARY='.*gone\.so' is not a file; unset it or"):
        plugins.ort_library()


def test_dcn_plugins_command(world, monkeypatch, tmp_path, capsys):
    lib = put(tmp_path / "libdcn_ort.so")
    monkeypatch.setenv("DCN_ORT_LIBRARY", str(lib))
    assert plugins.main(["--ort"]) == 0
    out, err = capsys.readouterr()
    assert out == f"{lib.resolve()}\n" and err == ""
    assert plugins.main(["--trt"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("dcn-plugins: TensorRT plugin library libdcn_trt_plugins.so is not built")
    assert plugins.main([]) == 1  # both by default: the found one printed, the missing one reported
    out, err = capsys.readouterr()
    assert out == f"{lib.resolve()}\n" and "libdcn_trt_plugins.so is not built" in err
    trt = put(tmp_path / "libdcn_trt_plugins.so")
    monkeypatch.setenv("DCN_TRT_LIBRARY", str(trt))
    assert plugins.main(["--ort", "--trt"]) == 0
    out, _ = capsys.readouterr()
    assert out.splitlines() == [str(lib.resolve()), str(trt.resolve())]


def test_console_script_and_lazy_imports():
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["dcn-plugins"] == "trt_runtime.entry:plugins_main"  # the Ctrl-C shim, then trt_runtime.plugins:main
    code = ("import sys, trt_runtime.entry, trt_runtime.plugins; "
            "bad = [m for m in ('tensorrt', 'onnxruntime') if m in sys.modules]; "
            "sys.exit(str(bad) if bad else 0)")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def _one_psroi_node():
    """(a one-node DeformPSROIPool model, serialized; its feed): RoI (1,1)-(1,1) samples once at its top-left
    edge (0.5, 0.5), between all four pixels 0 .. 3: Y = 1.5."""
    from helpers.built_libs import require

    require(plugins.ort_library)
    import numpy as np
    from onnx import TensorProto, helper

    node = helper.make_node("DeformPSROIPool", ["data", "rois"], ["Y"], domain="dcn", spatial_scale=1.0,
                            output_dim=1, group_size=1, pooled_size=1, sample_per_part=1)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 1, 2, 2]),
                                            helper.make_tensor_value_info("rois", TensorProto.FLOAT, [1, 5])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19), helper.make_opsetid("dcn", 1)],
                              ir_version=10)
    feed = {"data": np.arange(4, dtype=np.float32).reshape(1, 1, 2, 2),
            "rois": np.array([[0, 1, 1, 1, 1]], dtype=np.float32)}
    return model.SerializeToString(), feed


def test_ort_session_registers_our_ops():
    model, feed = _one_psroi_node()
    y = plugins.ort_session(model).run(None, feed)[0]
    assert y.shape == (1, 1, 1, 1) and y[0, 0, 0, 0] == 1.5


def test_ort_session_options_serve_many_sessions():
    """One SessionOptions for two sessions: the library is registered on it once (twice, ONNX Runtime refuses the
    second session: "Domain already set in registry")."""
    import onnxruntime as ort

    model, feed = _one_psroi_node()
    so = ort.SessionOptions()
    for _ in range(2):
        assert plugins.ort_session(model, sess_options=so).run(None, feed)[0][0, 0, 0, 0] == 1.5
