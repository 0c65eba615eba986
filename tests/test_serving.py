"""Serving at scale: ``dcn-serve`` (a real tritonserver through PyTriton, on 127.0.0.1 with free
ports) and ``dcn-triton-repo`` (native model repositories, configs parsed by Triton's own
model-config protobuf from tritonclient).

Bounded: two servers (the tiny ResNet-DCN sample with dynamic batching, the tiny R-FCN sample
without), 8 clients x 50 requests on the first, a few on the second, and two of a few seconds
on a three-node ONNX model (one value per item; Server embedded in this process); every server
is stopped in a ``finally`` (SIGINT, then the whole process tree is killed), also when a test
fails. Options that would make tritonserver fail are refused before it starts (no 120 s waits).
Every response is compared with the PyTorch reference of *its own* input (distinct inputs,
so a response swapped between requests of one dynamic batch fails), within the float32
row of dcn_base/tolerance.py scaled by the output's range (model_tolerance).
"""
from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dcn_base.tolerance import model_tolerance

from helpers.ci_policy import require_module
from helpers.serve_helpers import REPO, ServerProcess, batch_stats, client_for, deviation, export_resnet_tiny, export_rfcn_tiny, \
    infer, run_clients

require_module("tritonclient.http", reason="tritonclient (installed with nvidia-pytriton)")
from tritonclient.utils import InferenceServerException  # noqa: E402

CLIENTS, REQUESTS = 8, 50  # the load test: 8 clients x 50 requests, half HTTP, half gRPC
NUM_INPUTS = 24  # distinct inputs with their PyTorch references


# --------------------------------------------------------------------------- models and references


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("serving")


@pytest.fixture(scope="module")
def resnet(work):
    """(onnx path, inputs [NUM_INPUTS, 3, 64, 64], PyTorch outputs, tolerance (atol, rtol))."""
    from exporter.loading import load_model

    onnx_path = export_resnet_tiny(work)
    model = load_model(work / "resnet_dcn.pt2")
    x = torch.randn(NUM_INPUTS, 3, 64, 64, generator=torch.Generator().manual_seed(13))
    with torch.no_grad():
        ref = torch.cat([model(x[i:i + 4]) for i in range(0, NUM_INPUTS, 4)]).numpy()
    return onnx_path, x.numpy(), ref, model_tolerance("float32", ref)


@pytest.fixture(scope="module")
def rfcn(work):
    """(onnx path, [(images, rois, {output: reference})] with 8 or 5 RoIs)."""
    from exporter.loading import load_model
    from samples.resnet_dcn import model as resnet_model
    from samples.rfcn_dpsroi import model as rfcn_model

    onnx_path = export_rfcn_tiny(work)
    model = load_model(work / "rfcn_dpsroi.pt2")
    cases = []
    for seed in range(6):
        images = resnet_model.example_images(64, seed=100 + seed)
        rois = rfcn_model.example_rois(8 if seed % 2 == 0 else 5, 64, 64, seed=100 + seed)
        with torch.no_grad():
            outs = model(images, rois)
        cases.append((images.numpy(), rois.numpy(), dict(zip(rfcn_model.OUTPUT_NAMES, (o.numpy() for o in outs)))))
    return onnx_path, cases


def _server(request, model, args, logdir: Path, command=None) -> ServerProcess:
    server = ServerProcess(model, args, logdir, command=command)
    request.addfinalizer(server.stop)  # always torn down, also when a test fails
    server.wait_ready()
    return server


def readme_serving_block(lang: str) -> str:
    """The one ``lang`` block of the README's "Serving" section (``sh``: dcn-serve, ``py``: the client);
    tests/test_readme.py runs only ``bash`` / ``python`` blocks, these two need a server and run here."""
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Serving\n", 1)[1].split("\n## ", 1)[0]
    found = re.findall(rf"```{lang}\n(.*?)```", section, re.S)
    assert len(found) == 1, f"expected one ```{lang} block in the README's Serving section, found {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def resnet_server(request, resnet, work):
    """The README's dcn-serve command, on the exported sample and free loopback ports."""
    lines = [ln for ln in readme_serving_block("sh").splitlines() if ln.strip() and not ln.startswith("#")]
    assert len(lines) == 1 and lines[0].startswith("dcn-serve out/resnet_dcn.onnx "), lines
    command = [str(resnet[0]) if a == "out/resnet_dcn.onnx" else a for a in shlex.split(lines[0])]
    logdir = work / "resnet-server"
    logdir.mkdir()
    return _server(request, None, [], logdir, command=command)


@pytest.fixture(scope="module")
def rfcn_server(request, rfcn, work):
    logdir = work / "rfcn-server"
    logdir.mkdir()
    return _server(request, rfcn[0], ["--name", "rfcn", "--instances", "2", "--threads", "1"], logdir)


# --------------------------------------------------------------------------- dcn-serve


@pytest.mark.parametrize("failures, launches, error", [
    (("race",), 2, None), (("race", "race"), 2, "race"), (("other",), 1, "other"),
], ids=["race-then-up", "race-twice", "other-failure"])
def test_start_again_after_pytritons_handshake_race(monkeypatch, capsys, failures, launches, error):
    """PyTriton's instance handshake race (an instance connecting between the first one's bind and
    listen: "Connection refused" in get_config_from_handshake_server, seen in a full test run): the
    server is launched once more; the race twice, or any other start failure, is the error."""
    from trt_runtime import serve as sv

    made = {
        "race": sv.ServeEnvironmentError(
            "Triton Inference Server did not start: [400] load failed for model 'resnet_dcn': ... File "
            "\"model.py\", line 425, in initialize inference_handler_config = "
            "get_config_from_handshake_server(handshake_socket) ... ConnectionRefusedError: [Errno 111]"),
        "other": sv.ServeEnvironmentError("Triton Inference Server did not start: [400] no such backend"),
    }
    server = object.__new__(sv.Server)
    pending, calls = [made[f] for f in failures], []

    def launch_once():
        calls.append(1)
        if pending:
            raise pending.pop(0)

    monkeypatch.setattr(server, "_start_once", launch_once)
    if error is None:
        server.start()
    else:
        with pytest.raises(sv.ServeEnvironmentError) as caught:
            server.start()
        assert caught.value is made[error]
    assert len(calls) == launches
    again = "dcn-serve: PyTriton's model instances missed their handshake (connection refused); starting Triton again"
    assert capsys.readouterr().err.splitlines() == [again] * (1 if "race" in failures else 0)


def test_startup_prints_endpoints_and_io(resnet_server):
    out = resnet_server.stdout()
    assert re.search(r"input\s+images FP32 \['batch', '3', 'height', 'width'\]", out), out
    assert re.search(r"output\s+\S+ FP32", out), out
    assert f"http://127.0.0.1:{resnet_server.http_port}/v2/models/resnet_dcn/infer" in out
    assert f"grpc://127.0.0.1:{resnet_server.grpc_port}" in out
    assert "2 instance(s), dynamic batching up to 8" in out


def test_concurrent_load_every_response_is_its_own_reference(resnet_server, resnet):
    """8 clients x 50 requests (HTTP and gRPC), batch 1 or 2 each, distinct inputs: nothing lost,
    nothing mixed up, every response within tolerance; Triton's statistics show batches > 1."""
    _, x, ref, tol = resnet
    before = batch_stats(resnet_server, "resnet_dcn")
    out_name = re.search(r"output\s+(\S+) FP32", resnet_server.stdout()).group(1)

    def one(module, client, c: int, j: int) -> tuple[float, bool]:
        k = (c * REQUESTS + j) % NUM_INPUTS
        idx = [k, (k + 7) % NUM_INPUTS] if j % 5 == 4 else [k]  # every 5th request: batch 2
        got = infer(module, client, "resnet_dcn", {"images": x[idx]}, [out_name])[out_name]
        return deviation(got, ref[idx], tol)

    results, errors = run_clients(resnet_server, CLIENTS, REQUESTS, one)
    after = batch_stats(resnet_server, "resnet_dcn")
    formed = {b: n - before.get(b, 0) for b, n in after.items() if n - before.get(b, 0) > 0}
    max_dev = max((dev for dev, _ in results), default=float("nan"))
    summary = {"requests": CLIENTS * REQUESTS, "answered": len(results), "errors": len(errors),
               "outside_tolerance": sum(not ok for _, ok in results), "max_abs_deviation": max_dev,
               "tolerance": {"atol": tol[0], "rtol": tol[1]}, "batches_formed": formed}
    print("serving load test:", json.dumps(summary))
    assert not errors, errors[:5]
    assert len(results) == CLIENTS * REQUESTS
    assert all(ok for _, ok in results), summary
    assert any(b > 1 for b in formed), f"no dynamic batch > 1 was formed: {formed}"
    samples = sum(b * n for b, n in formed.items())
    assert samples == CLIENTS * REQUESTS + CLIENTS * (REQUESTS // 5), (samples, formed)


def test_bad_requests_get_clear_errors_and_the_server_keeps_serving(resnet_server, resnet):
    _, x, ref, tol = resnet
    out_name = re.search(r"output\s+(\S+) FP32", resnet_server.stdout()).group(1)
    for protocol in ("http", "grpc"):
        module, client = client_for(protocol, resnet_server)
        try:
            bad = [
                ({"imgs": x[:1]}, r"imgs"),  # wrong input name
                ({"images": x[:1].astype(np.float64)}, r"FP64|data.?type|datatype"),  # wrong dtype
                ({"images": np.zeros((1, 4, 64, 64), np.float32)}, r"shape|\[.*4.*64.*64"),  # wrong channels
            ]
            for feeds, pattern in bad:
                with pytest.raises(InferenceServerException) as info:
                    infer(module, client, "resnet_dcn", feeds, [out_name])
                message = str(info.value)
                assert re.search(pattern, message, re.I), message
                assert "Traceback" not in message, message
            with pytest.raises(InferenceServerException, match="no_such_model|unknown model|not found"):
                infer(module, client, "no_such_model", {"images": x[:1]}, [out_name])
            got = infer(module, client, "resnet_dcn", {"images": x[3:4]}, [out_name])[out_name]
            assert deviation(got, ref[3:4], tol)[1]
        finally:
            client.close()


def test_readme_client(resnet_server):
    code = readme_serving_block("py").replace("127.0.0.1:8001", resnet_server.grpc_url)
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "(2, 1000)", proc.stdout
    assert re.fullmatch(r"\{.*\}", lines[1]), proc.stdout


def test_psroi_sample_served_without_batching(rfcn_server, rfcn):
    """images [1, 3, H, W] + rois [R, 5]: axis 0 is not one batch axis, so no batching; R varies."""
    _, cases = rfcn
    out = rfcn_server.stdout()
    assert "no batching (axis 0 is not one batch axis" in out, out
    assert re.search(r"input\s+rois FP32 \['num_rois', '5'\]", out), out

    def one(module, client, c: int, j: int) -> list[tuple[str, float, bool]]:
        images, rois, ref = cases[(c + j) % len(cases)]
        got = infer(module, client, "rfcn", {"images": images, "rois": rois}, list(ref))
        return [(name, *deviation(got[name], r, model_tolerance("float32", r))) for name, r in ref.items()]

    results, errors = run_clients(rfcn_server, 4, 5, one)
    devs = [dev for per_output in results for _, dev, _ in per_output]
    errors += [f"{name}: max deviation {dev}" for per_output in results for name, dev, ok in per_output if not ok]
    print("serving PS-RoI sample:", json.dumps({"requests": 20, "errors": len(errors), "max_abs_deviation":
                                                max(devs, default=float("nan"))}))
    assert not errors, errors
    assert len(devs) == 4 * 5 * 2


@pytest.mark.parametrize("which", ["rfcn_server", "resnet_server"])
def test_ctrl_c_stops_cleanly(which, request):
    server = request.getfixturevalue(which)
    code = server.stop()
    assert code == 130, (code, server.stderr())
    assert "Traceback" not in server.stderr(), server.stderr()
    assert "dcn-serve: stopped" in server.stdout()


def test_engine_without_tensorrt_is_one_line_exit_2(tmp_path):
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"not an engine")
    proc = subprocess.run([sys.executable, "-m", "trt_runtime.serve", str(engine), "--http-port", "0",
                           "--grpc-port", "0", "--metrics-port", "0"], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dcn-serve: error:"), proc.stderr


def test_missing_model_is_one_line_exit_2(tmp_path):
    from trt_runtime.serve import main

    assert main([str(tmp_path / "nope.onnx"), "--http-port", "0", "--grpc-port", "0", "--metrics-port", "0"]) == 2


def test_port_in_use_is_one_line_exit_2(resnet, capsys):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        from trt_runtime.serve import main

        assert main([str(resnet[0]), "--http-port", str(port), "--grpc-port", "0", "--metrics-port", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"dcn-serve: error: --http-port {port}: cannot listen on 127.0.0.1:{port} (Address already in use); "
                   "choose another port (0: a free one)"]


# --------------------------------------------------------------------------- dcn-serve: shapes, ports, processes


def _per_item_onnx(path: Path) -> Path:
    """coords [batch, 4] and w [batch] (one value per item) -> box [batch, 4], score [batch] = sum(coords) + w."""
    import onnx
    from onnx import TensorProto, helper

    vi = helper.make_tensor_value_info
    graph = helper.make_graph(
        [helper.make_node("Relu", ["coords"], ["box"]),
         helper.make_node("ReduceSum", ["coords"], ["total"], axes=[1], keepdims=0),
         helper.make_node("Add", ["total", "w"], ["score"])], "g",
        [vi("coords", TensorProto.FLOAT, ["batch", 4]), vi("w", TensorProto.FLOAT, ["batch"])],
        [vi("box", TensorProto.FLOAT, ["batch", 4]), vi("score", TensorProto.FLOAT, ["batch"])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)]), str(path))
    return path


def test_one_value_per_item_is_served_as_batch_by_1(request, work):
    """A [batch]-shaped input / output left PyTriton dims [] and Triton refused the model ("model input 'w'
    must specify 'dims'"); it is declared [1] per item, sent as [n, 1] (as dcn-triton-repo's dims [1] +
    reshape []), and the callable hands the model its [n]."""
    model = _per_item_onnx(work / "per_item.onnx")
    logdir = work / "per-item-server"
    logdir.mkdir()
    server = _server(request, model, ["--threads", "1"], logdir)
    out = server.stdout()
    assert re.search(r"input\s+w FP32 \['batch'\] \(sent as \[batch, 1\]", out), out
    assert re.search(r"output\s+score FP32 \['batch'\] \(sent as \[batch, 1\]", out), out
    coords = np.arange(12, dtype=np.float32).reshape(3, 4) - 5
    w = np.array([[1], [2], [3]], np.float32)
    for protocol in ("http", "grpc"):
        module, client = client_for(protocol, server)
        try:
            got = infer(module, client, "per_item", {"coords": coords, "w": w}, ["box", "score"])
        finally:
            client.close()
        np.testing.assert_array_equal(got["box"], np.maximum(coords, 0))
        np.testing.assert_array_equal(got["score"], coords.sum(axis=1, keepdims=True) + w)
    assert server.stop() == 130, server.stderr()


def test_infer_callable_reshapes_one_value_per_item():
    """The callable behind the [1] declarations: requests of one batch stacked ([n, 1] -> the model's [n]) and
    split back ([n] -> [n, 1]); unbatched, a rank-0 tensor travels as [1]."""
    from types import SimpleNamespace

    from trt_runtime.serve import _tensors, infer_callable
    from trt_runtime.triton_io import ModelSpec, TensorSpec

    seen = []

    def runner(feeds):
        seen.append({k: v.shape for k, v in feeds.items()})
        return {"score": feeds["coords"].sum(axis=-1) + feeds["w"]}

    coords, w, score = (TensorSpec("coords", "float32", ("batch", 4)), TensorSpec("w", "float32", ("batch",)),
                        TensorSpec("score", "float32", ("batch",)))
    spec = ModelSpec(Path("m.onnx"), "onnx", [coords, w], [score])
    mc = SimpleNamespace(Tensor=lambda **kw: (kw["name"], tuple(kw["shape"])))
    assert _tensors(mc, spec.inputs + spec.outputs, True) == [("coords", (4,)), ("w", (1,)), ("score", (1,))]
    requests = [{"coords": np.ones((n, 4), np.float32), "w": np.full((n, 1), n, np.float32)} for n in (1, 2)]
    responses = infer_callable(runner, spec, True, "m")(requests)
    assert seen == [{"coords": (3, 4), "w": (3,)}]
    assert [r["score"].tolist() for r in responses] == [[[5.0]], [[6.0], [6.0]]]

    scalar = ModelSpec(Path("s.onnx"), "onnx", [TensorSpec("s", "float32", ())], [TensorSpec("t", "float32", ())])
    assert _tensors(mc, scalar.inputs, False) == [("s", (1,))]
    [response] = infer_callable(lambda f: {"t": f["s"] * 2}, scalar, False, "s")([{"s": np.array([1.5], np.float32)}])
    assert response["t"].shape == (1,) and response["t"][0] == 3.0


def test_stop_leaves_the_host_programs_children_alone(work):
    """A program embedding Server: stop() reaped every descendant of the process, the host's own
    children with them (SIGKILL); now only the tritonserver it started and that server's backend stubs."""
    import signal

    from trt_runtime.serve import ServeOptions, Server
    from trt_runtime.serve_processes import _start_time, descendants

    model = _per_item_onnx(work / "embedded.onnx")
    worker = subprocess.Popen(["sleep", "600"])  # the host program's own child
    try:
        before = set(_child_ids())
        server = Server(str(model), ServeOptions(http_port=0, grpc_port=0, metrics_port=0, threads=1))
        try:
            server.start()
            roots = [p for p in _child_ids() if p not in before and _comm(p) == "tritonserver"]
            started = {p: _start_time(p) for root in roots for p in [root, *descendants(root)]}
            assert len(roots) == 1 and len(started) > 1, started  # the server and its Python backend stub(s)
        finally:
            server.stop()
        assert worker.poll() is None, f"the host's child was killed (exit {worker.returncode})"
        alive = [p for p, t in started.items() if t is not None and _start_time(p) == t]
        assert not alive, f"server processes left running: {alive}"
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()


def _child_ids() -> list[int]:
    import os

    from trt_runtime.serve_processes import _children_table

    return _children_table().get(os.getpid(), [])


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


@pytest.mark.parametrize("ports, message", [
    (("P", "P", "0"), "--grpc-port P: the same port as --http-port"),
    (("0", "P", "P"), "--metrics-port P: the same port as --grpc-port"),
    (("P", "0", "P"), "--metrics-port P: the same port as --http-port"),
], ids=["http-grpc", "grpc-metrics", "http-metrics"])
def test_one_port_for_two_endpoints_is_one_line_exit_2(tmp_path, capsys, ports, message):
    """tritonserver printed its usage and dcn-serve waited 120 s; refused before anything starts."""
    from trt_runtime.serve import main
    from trt_runtime.serve_processes import free_port

    port = str(free_port())
    argv = [str(_per_item_onnx(tmp_path / "m.onnx"))]
    for flag, value in zip(("--http-port", "--grpc-port", "--metrics-port"), ports):
        argv += [flag, port if value == "P" else value]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"dcn-serve: error: {message.replace('P', port)}; expected a different port for each endpoint "
                   "(0: a free one)"], err


@pytest.mark.parametrize("host", ["::1", "localhost"])
def test_host_that_is_not_ipv4_is_one_line_exit_2(tmp_path, capsys, host):
    """IPv6 failed with a raw gaierror or blamed the port; a host name passed the checks and Triton's HTTP
    server (inet_addr) never became ready (120 s)."""
    from trt_runtime.serve import main

    argv = [str(_per_item_onnx(tmp_path / "m.onnx")), "--host", host, "--http-port", "0", "--grpc-port", "0",
            "--metrics-port", "0"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"dcn-serve: error: --host {host!r}: expected an IPv4 address such as 127.0.0.1 (0.0.0.0: every "
                   "interface); host names and IPv6 are not supported"], err


@pytest.mark.parametrize("suffix", [".pt2", ".pt"])
def test_pytorch_file_is_named_as_one(tmp_path, capsys, suffix):
    """dcn-serve m.pt2 took it for an engine ("TensorRT is not installed"), as dcn-triton-repo no longer does."""
    from trt_runtime.serve import main

    model = tmp_path / f"m{suffix}"
    model.write_bytes(b"PK")
    assert main([str(model), "--http-port", "0", "--grpc-port", "0", "--metrics-port", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"dcn-serve: error: model {str(model)!r} is a PyTorch file; expected an ONNX model (from "
                   "dcn-export) or a TensorRT engine (from dcn-build)"], err


def test_unknown_rank_is_refused_before_the_server_starts(tmp_path):
    """A tensor without a shape was taken for a scalar. (Server() only: were it accepted, main() would serve.)"""
    import onnx
    from onnx import TensorProto, helper

    from dcn_base.errors import DcnError
    from trt_runtime.serve import ServeOptions, Server

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)]), str(tmp_path / "m.onnx"))
    with pytest.raises(DcnError) as caught:
        Server(str(tmp_path / "m.onnx"), ServeOptions(http_port=0, grpc_port=0, metrics_port=0))
    assert str(caught.value) == ("tensor 'x' has unknown rank (no shape in the ONNX model); expected a shape on every "
                                 "input and output (dims may be symbols), as dcn-export writes them")
    assert getattr(caught.value, "exit_code", 2) == 2


def test_engine_whose_profile_starts_above_batch_1_is_served_unbatched():
    """An engine built for batch 2..8: Triton's batcher would form batches of 1 the engine refuses; no
    batching (full shapes), and the startup line says why."""
    from types import SimpleNamespace

    from trt_runtime.serve import ServeOptions, Server
    from trt_runtime.triton_io import describe_engine_object

    class FakeEngine:
        path, input_names, output_names = "m.engine", ["images"], ["features"]
        dtypes = {"images": np.dtype("float32"), "features": np.dtype("float32")}

        def input_shape(self, name):
            return (-1, 3, 8, 8)

        def profile_shapes(self, name):
            return ((2, 3, 8, 8), (4, 3, 8, 8), (8, 3, 8, 8))

    spec = describe_engine_object(FakeEngine())
    assert spec.batch_axis and spec.batch_size(8) == 0
    server = object.__new__(Server)
    server.model, server.name, server.spec, server.opts = "m.engine", "m", spec, ServeOptions()
    server.runners = [SimpleNamespace(what="TensorRT + libdcn_trt_plugins")]
    server.max_batch, server.batching = 0, False
    assert server.describe()[0] == (
        "model 'm' from m.engine: TensorRT + libdcn_trt_plugins, 1 instance(s), no batching (the engine's "
        "optimization profile starts at batch 2, and Triton's batcher forms smaller batches too; requests carry "
        "their whole batch)")
    spec.min_profile_batch = 1
    assert spec.batch_size(16) == 8
