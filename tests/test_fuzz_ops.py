"""Fuzz: generated adversarial single-node models (tests/helpers/fuzz_cases.py) through ONNX Runtime + libdcn_ort.

Each case runs in a forked child (the parent imports onnxruntime and torch once) with an
address-space limit (RLIMIT_AS) and an alarm; the parent enforces a wall timeout and
classifies the end. A case passes when the op gives a clear error (an ONNX Runtime
exception, one line, no allocation failure) where the generator expects one, or an output
equal to the float64 / float32 reference (exporter.ops) where it expects a result; never a
signal, a timeout, an allocation failure or an output that differs from the reference.
"""
from __future__ import annotations

import collections
import json
import math
import os
import resource
import signal
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest

from helpers import fuzz_cases
from helpers.cpp_ops import include_flags
from helpers.built_libs import require
from trt_runtime import plugins
from helpers.ci_policy import missing, require_module

ort = require_module("onnxruntime")
torch = require_module("torch")

CHILD_ALARM_S = 30
WALL_TIMEOUT_S = 60
EXTRA_ADDRESS_SPACE = 2 << 30  # bytes a case may map beyond the parent's address space
ALLOCATION_FAILURES = ("bad_alloc", "failed to allocate", "memoryerror", "cannot allocate", "out of memory")


# --------------------------------------------------------------------------- one case, in the child
def _onnx_model(case: dict, feeds: dict[str, np.ndarray] | None = None) -> bytes:
    """The case's single-node model; the inputs the case names "constant" as initializers of their feeds."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from exporter.contract import DOMAIN, DOMAIN_VERSION

    etype = {"float32": TensorProto.FLOAT, "float16": TensorProto.FLOAT16, "float64": TensorProto.DOUBLE,
             "int64": TensorProto.INT64, "int32": TensorProto.INT32}
    names, vis, inits = [], [], []
    for name, spec in case["inputs"].items():
        if spec is None:
            names.append("")
            continue
        shape, dtype = spec
        names.append(name)
        if name in case.get("constant", ()):
            inits.append(numpy_helper.from_array(feeds[name], name))
            continue
        vis.append(helper.make_tensor_value_info(name, etype[dtype], [f"{name}_{i}" for i in range(len(shape))]))
    while names and names[-1] == "":
        names.pop()
    node = helper.make_node(case["op"], names, ["Y"], domain=DOMAIN, name="fuzz")
    for k, v in case["attrs"].items():
        node.attribute.append(helper.make_attribute(k, v, attr_type=onnx.AttributeProto.INTS) if v == [] else
                              helper.make_attribute(k, v))
    out_type = etype[next(s for s in case["inputs"].values() if s is not None)[1]]
    graph = helper.make_graph([node], "fuzz", vis, [helper.make_tensor_value_info("Y", out_type, None)],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19),
                                                    helper.make_opsetid(DOMAIN, DOMAIN_VERSION)])
    model.ir_version = 10
    return model.SerializeToString()


def _feeds(case: dict) -> dict[str, np.ndarray]:
    # the same numbers in every process (str hash() is salted per process: CI would draw other inputs)
    rng = np.random.default_rng(zlib.crc32(case["id"].encode()))
    if "values" in case:  # cases with index inputs of given values (level tables)
        return _poison(case, fuzz_cases.feeds_with_values(case, rng))
    feeds = {}
    for name, spec in case["inputs"].items():
        if spec is None:
            continue
        shape, dtype = spec
        if name == "rois":
            d = case["dims"]
            r = shape[0] if shape else 0
            a = np.zeros(shape, np.float64)
            if len(shape) == 2 and shape[1] >= 5:
                h, w = d["H"] / 0.5, d["W"] / 0.5
                x1 = rng.uniform(-2, w * 0.7, r)
                y1 = rng.uniform(-2, h * 0.7, r)
                a[:, 0] = rng.integers(0, max(d["N"], 1), r)
                a[:, 1], a[:, 2] = x1, y1
                a[:, 3], a[:, 4] = x1 + rng.uniform(0, w * 0.6, r), y1 + rng.uniform(0, h * 0.6, r)
            else:
                a = rng.uniform(0, 4, shape)
        elif name == "mask":
            a = rng.uniform(0, 1, shape)
        elif name == "offset":
            a = rng.normal(0, 2, shape)
        else:
            a = rng.normal(0, 1, shape)
        feeds[name] = a.astype(dtype)
    return _poison(case, feeds)


def _poison(case: dict, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    for name, (where, value) in case["poison"].items():
        a = feeds[name]
        if a.size == 0:
            continue
        if where == "all":
            a[...] = value
        elif where == "one":
            a.reshape(-1)[a.size // 2] = value
        elif where == "box":  # every RoI (x1, y1, x2, y2) = (-value, -value, value, value)
            a[:, 1:3], a[:, 3:5] = -value, value
        else:  # rois column
            a[0, int(where[3:])] = value
    return feeds


def _reference(case: dict, feeds: dict[str, np.ndarray], dtype) -> np.ndarray:
    """The reference of a case in ``dtype``: the one an op folder's generator brings
    (tests/helpers/fuzz_dcn.py), else the op's reference evaluator node."""
    if "reference" in case:
        t = {k: torch.from_numpy(v.astype(np.float64)).to(dtype) for k, v in feeds.items()}
        return case["reference"](case, t, dtype)
    return _evaluate(case, feeds, dtype)


def _magnitude(case: dict, feeds: dict[str, np.ndarray]) -> np.ndarray | None:
    """Per output element, a float64 bound of the sum of its terms' magnitudes, where the case's generator
    knows one: its ``magnitude`` function, or the reference on |``magnitude_inputs``| (the other inputs are
    coordinates and stay as they are); else None."""
    try:
        if "magnitude" in case:
            t = {k: torch.from_numpy(v.astype(np.float64)) for k, v in feeds.items()}
            return case["magnitude"](case, t)
        if "magnitude_inputs" in case:
            absolute = {k: np.abs(v) if k in case["magnitude_inputs"] else v for k, v in feeds.items()}
            return _evaluate(case, absolute, torch.float64)
    except Exception:  # noqa: BLE001 - no bound: the plain rule
        pass
    return None


def _evaluate(case: dict, feeds: dict[str, np.ndarray], dtype) -> np.ndarray:
    """The op's onnx.py ``evaluate`` (the float64 reference behind exporter.verify's evaluator) in ``dtype``:
    floating inputs in ``dtype``, index inputs as given; FLOAT attributes as ONNX stores them (float32),
    absent ones at the contract's defaults."""
    from exporter import ops
    from exporter.contract import FLOAT
    from exporter.contract import ops as contract_ops

    spec = contract_ops()[case["op"]]
    given = [torch.from_numpy(np.ascontiguousarray(feeds[i.name])) if i.name in feeds else None for i in spec.inputs]
    given = [t.to(torch.float64).to(dtype) if t is not None and t.is_floating_point() else t for t in given]
    attrs = spec.defaults() | {k: float(np.float32(v)) if spec.attr(k).kind == FLOAT else v
                               for k, v in case["attrs"].items()}
    return ops.part(spec.name, "onnx").evaluate("fuzz", given, attrs).numpy()


FLOAT32_MAX = float(np.finfo(np.float32).max)


def _same(got: np.ndarray, want: np.ndarray, magnitude: np.ndarray | None = None) -> tuple[bool, str]:
    if got.shape != want.shape:
        return False, f"shape {got.shape} != reference {want.shape}"
    g = got.astype(np.float64)
    w = want.astype(np.float32).astype(np.float64)  # the reference as float32 holds it (overflow -> inf)
    # float32 overflow zone (the reference NaN, inf or beyond 1e36): the order of summation decides
    # between inf and NaN, so any non-finite or huge value is right there; everywhere else equal.
    big = ~np.isfinite(w) | (np.abs(w) > 1e36)
    # where the terms' magnitudes add up past float32's range, a partial sum may overflow in one order
    # and not in another (terms of 1e38 cancelling to 1e35): inf / NaN is right there, or the reference
    may = big if magnitude is None else big | ~(magnitude < FLOAT32_MAX)
    wrong = big & np.isfinite(g) & (np.abs(g) <= 1e36)
    if wrong.any():
        i = np.argwhere(wrong)[0].tolist()
        return False, f"at {i}: got {g[tuple(i)]!r}, reference {w[tuple(i)]!r} (non-finite)"
    if np.any(np.isnan(g) & ~may):
        i = np.argwhere(np.isnan(g) & ~may)[0].tolist()
        return False, f"at {i}: got NaN, reference {w[tuple(i)]!r}"
    fin = ~big & ~(may & ~np.isfinite(g))
    if fin.any():
        scale = max(1.0, float(np.max(np.abs(w[fin]))))
        tol = 1e-4 * scale + 1e-3 * np.abs(w[fin])
        if magnitude is not None:  # float32 cancellation: a few ulps of the terms' sum
            tol = tol + 1e-5 * np.where(np.isfinite(magnitude[fin]), magnitude[fin], 0.0)
        bad = ~(np.abs(g[fin] - w[fin]) <= tol)
        if bad.any():
            i = np.argwhere(fin)[np.argmax(bad)].tolist()
            return False, f"at {i}: got {g[tuple(i)]!r}, reference {w[tuple(i)]!r}"
    return True, ""


def run_case(case: dict, lib: str) -> dict:
    feeds = _feeds(case)
    model = _onnx_model(case, feeds)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 4
    so.register_custom_ops_library(lib)
    try:
        sess = ort.InferenceSession(model, sess_options=so, providers=["CPUExecutionProvider"])
        got = sess.run(None, {k: v for k, v in feeds.items() if k not in case.get("constant", ())})[0]
    except Exception as e:  # noqa: BLE001 - an ONNX Runtime error is the op's answer
        return {"result": "error", "message": str(e)}
    out = {"result": "ok", "shape": list(got.shape)}
    reasons = []
    magnitude = _magnitude(case, feeds)
    for dtype in (torch.float64, torch.float32):
        try:
            want = _reference(case, feeds, dtype)
        except Exception as e:  # noqa: BLE001
            reasons.append(f"reference ({dtype}) raised {type(e).__name__}: {str(e)[:200]}")
            continue
        same, why = _same(got, want, magnitude)
        if same:
            return out | {"same": True}
        reasons.append(f"{dtype}: {why}")
    return out | {"same": False, "why": "; ".join(reasons)}


# --------------------------------------------------------------------------- the parent
def _address_space() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * resource.getpagesize()


def _preload(lib: str) -> None:
    """What every child needs, imported / loaded once in the parent (fork shares it)."""
    import onnx  # noqa: F401
    from onnx import helper  # noqa: F401

    from exporter import ops
    from exporter.contract import specs

    for spec in specs():  # every op's reference evaluator node, run once (its first call imports more of torch)
        arrays, attrs = ops.part(spec.name, "reference").example_inputs()
        inputs = [None if arrays.get(i.name) is None else torch.from_numpy(arrays[i.name]) for i in spec.inputs]
        ops.part(spec.name, "onnx").evaluate("warm-up", inputs, spec.defaults() | attrs)

    so = ort.SessionOptions()
    so.register_custom_ops_library(lib)  # dlopen once
    torch.set_num_threads(1)


def run_forked(case: dict, lib: str) -> dict:
    r, w = os.pipe()
    limit = _address_space() + EXTRA_ADDRESS_SPACE
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            os.close(r)
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            signal.alarm(CHILD_ALARM_S)
            res = run_case(case, lib)
            data = json.dumps(res).encode()
            with os.fdopen(w, "wb") as f:
                f.write(data)
        except BaseException as e:  # noqa: BLE001
            try:
                os.write(w, json.dumps({"result": "child-exception", "message": repr(e)[:500]}).encode())
            except Exception:  # noqa: BLE001
                pass
            code = 3
        os._exit(code)
    os.close(w)
    deadline = time.monotonic() + WALL_TIMEOUT_S
    chunks = []
    os.set_blocking(r, False)
    status = None
    while True:
        try:
            chunk = os.read(r, 1 << 16)
            if chunk:
                chunks.append(chunk)
        except BlockingIOError:
            pass
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(r)
            return {"result": "timeout"}
        time.sleep(0.002)
    try:
        while True:
            chunk = os.read(r, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    except BlockingIOError:
        pass
    os.close(r)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return {"result": "timeout" if sig == signal.SIGALRM else f"signal {signal.Signals(sig).name}"}
    try:
        return json.loads(b"".join(chunks).decode())
    except ValueError:
        return {"result": f"exit {os.WEXITSTATUS(status)} without a result"}


def verdict(case: dict, res: dict) -> str:
    """'' when the case behaved, else why not."""
    kind = res["result"]
    if kind == "error":
        msg = res["message"]
        if any(s in msg.lower() for s in ALLOCATION_FAILURES):
            return f"allocation failure: {msg[:300]}"
        if not msg.strip():
            return "an error without a message"
        if case["expect"] == "ok":
            return f"error where a result was expected: {msg[:300]}"
        return ""
    if kind == "ok":
        if case["expect"] == "error":
            return f"a result of shape {res['shape']} where an error was expected"
        return "" if res["same"] else f"output differs from the reference: {res['why']}"
    return kind + (f": {res.get('message', '')}" if res.get("message") else "")


@pytest.fixture(scope="module")
def lib() -> str:
    path = str(require(plugins.ort_library))
    _preload(path)
    return path


def test_fuzz_ort_ops(lib):
    torch.set_num_threads(1)
    cases = fuzz_cases.all_cases()
    assert len(cases) >= 300
    failures, counts = [], collections.Counter()
    t0 = time.monotonic()
    for case in cases:
        res = run_forked(case, lib)
        counts[case["category"]] += 1
        why = verdict(case, res)
        if why:
            failures.append(f"{case['id']} {case['attrs']} {case['poison']} "
                            f"{ {k: v for k, v in case['inputs'].items()} }: {why}")
    took = time.monotonic() - t0
    print(f"fuzz: {len(cases)} cases in {took:.1f}s; " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    assert not failures, f"{len(failures)} of {len(cases)} cases misbehaved:\n" + "\n".join(failures[:40])


def test_error_messages_are_one_line_and_name_the_node(lib):
    """The contract's style: op type, node name, attribute / input, got, expected."""
    torch.set_num_threads(1)
    case = fuzz_cases.pool_case({"sample_per_part": 65536})
    case.update(id="spp", category="x", expect="error")
    res = run_forked(case, lib)
    assert res["result"] == "error"
    assert "DeformPSROIPool 'fuzz': attribute sample_per_part = 65536, expected <= 16 (limit)" in res["message"]
    case = fuzz_cases.conv_case({"pads": [2**63 - 1, 0, 0, 0]})
    case.update(id="pads", category="x", expect="error")
    res = run_forked(case, lib)
    assert "DeformConv2d 'fuzz': attribute pads = [9223372036854775807, 0, 0, 0], expected values <= 1024" \
        in res["message"]
    case = fuzz_cases.roi_pool_case({"pooled_height": 65536}, offset=False)
    case.update(id="ph", category="x", expect="error")
    res = run_forked(case, lib)
    assert "DeformRoIPool 'fuzz': attribute pooled_height = 65536, expected <= 256 (limit)" in res["message"]


@pytest.mark.parametrize("data", ["float32", "float16"])
def test_float16_rois_are_refused_saying_rois_are_float32(lib, data):
    """RoIs are float32 also in a float16 node: float16 RoIs get the contract's one line, not ONNX Runtime's
    type error."""
    for op in ("DeformRoIPool", "DeformPSROIPool"):
        case = fuzz_cases.roi_pool_case({}) if op == "DeformRoIPool" else fuzz_cases.pool_case({})
        case["inputs"] = {k: (v[0], "float32" if k == "rois" else data) for k, v in case["inputs"].items()}
        case.update(id="f16", category="x", expect="error")
        ok = run_forked(case, lib)
        assert ok["result"] == "ok", ok  # float32 RoIs: fine in a float32 and a float16 node
        case["inputs"]["rois"] = (case["inputs"]["rois"][0], "float16")
        res = run_forked(case, lib)
        assert res["result"] == "error" and "\n" not in res["message"].strip(), res
        assert f"{op} 'fuzz': rois has element type float16, expected float32 (RoIs" in res["message"]


# every limit of the contract (exporter.contract.LIMITS) and the C++ constant that holds it
HEADER_LIMITS = {
    ("DeformConv2d", "strides"): "kMaxConvStride", ("DeformConv2d", "pads"): "kMaxConvPad",
    ("DeformConv2d", "dilations"): "kMaxConvDilation",
    ("DeformPSROIPool", "output_dim"): "kMaxPoolOutputDim", ("DeformPSROIPool", "group_size"): "kMaxPoolGroupSize",
    ("DeformPSROIPool", "pooled_size"): "kMaxPoolPooledSize", ("DeformPSROIPool", "part_size"): "kMaxPoolPartSize",
    ("DeformPSROIPool", "sample_per_part"): "kMaxPoolSamplePerPart",
    ("DeformRoIPool", "pooled_height"): "kMaxRoIPoolPooledSize",
    ("DeformRoIPool", "pooled_width"): "kMaxRoIPoolPooledSize",
    ("DeformRoIPool", "sampling_ratio"): "kMaxRoIPoolSamplingRatio",
    **{(op, name): const for op in ("DCNv3", "DCNv4") for name, const in (
        ("kernel_shape", "kMaxAggregateKernel"), ("strides", "kMaxAggregateStride"), ("pads", "kMaxAggregatePad"),
        ("dilations", "kMaxAggregateDilation"))},
}


def test_limits_in_header_equal_contract(tmp_path):
    """The kMax* constants of the ops' math headers (plugins/ops/<op>/<op>_math.h) == exporter.contract.LIMITS,
    every limit of the contract included (a new one needs its row in HEADER_LIMITS); kMaxElements and
    DeformRoIPool's adaptive grid cap (kRoIPoolMaxGrid == spec.MAX_GRID) too."""
    import shutil
    import subprocess

    from exporter.contract import LIMITS, MAX_ELEMENTS, specs
    from exporter.ops.deform_roi_pool.spec import MAX_GRID

    assert {(op, name) for op, limits in LIMITS.items() for name in limits} == set(HEADER_LIMITS)
    if shutil.which("g++") is None:
        missing("no C++ compiler (g++)")
    names = [*HEADER_LIMITS.values(), "kMaxElements", "kRoIPoolMaxGrid"]
    includes = "".join(f'#include "{s.name}_math.h"\n' for s in specs())
    prints = "".join(f'std::printf("%lld\\n", (long long)dcn::{n}); ' for n in names)
    src = tmp_path / "limits.cpp"
    src.write_text(f"{includes}#include <cstdio>\nint main() {{ {prints}}}\n")
    exe = tmp_path / "limits"
    subprocess.run(["g++", "-std=c++17", *include_flags(), str(src), "-o", str(exe)], check=True)
    got = [int(v) for v in subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split()]
    want = [LIMITS[op][name] for op, name in HEADER_LIMITS] + [MAX_ELEMENTS, MAX_GRID]
    labels = [f"{op}.{name}" for op, name in HEADER_LIMITS] + names[-2:]
    assert dict(zip(labels, got)) == dict(zip(labels, want))


@pytest.mark.parametrize("what", ["nan batch", "inf batch", "nan box", "inf box", "nan trans", "empty map"])
def test_reference_on_non_finite_rois_and_empty_maps(what):
    """The reference: a clear ContractError or the documented value, never an IndexError."""
    from dcn_base.errors import ContractError
    from exporter import ops as ref  # exporter.ops.<op>(...) is the op's float64 reference

    data = torch.randn(2, 8, 6, 7, dtype=torch.float64)
    rois = torch.tensor([[0, 1, 1, 8, 9], [1, 2, 0, 6, 5]], dtype=torch.float64)
    trans = torch.randn(2, 2, 3, 3, dtype=torch.float64)
    kw = dict(spatial_scale=0.5, output_dim=2, group_size=2, pooled_size=3, sample_per_part=2, trans_std=0.1)
    if what.endswith("batch"):
        rois[1, 0] = math.nan if what.startswith("nan") else math.inf
        with pytest.raises(ContractError, match=r"rois\[1, 0\] = (nan|inf), expected a batch index in \[0, N\)"):
            ref.deform_psroi_pool(data, rois, trans, **kw)
        return
    if what.endswith("box"):
        rois[1, 3] = math.nan if what.startswith("nan") else math.inf
        y = ref.deform_psroi_pool(data, rois, trans, **kw)
        assert torch.all(y[1] == 0) and torch.isfinite(y[0]).all() and torch.any(y[0] != 0)
    elif what == "nan trans":
        trans[0, :, 0, 0] = math.nan
        y = ref.deform_psroi_pool(data, rois, trans, **kw)
        assert torch.all(y[0, :, 0, 0] == 0) and torch.isfinite(y).all()
    else:
        y = ref.deform_psroi_pool(data[:, :, :0], rois, trans, **kw)
        assert y.shape == (2, 2, 3, 3) and torch.all(y == 0)


def test_overflow_zone_of_the_verdict():
    """Terms of 1e38 that cancel to 1e35: a float32 sum overflows in one order and not in another, so inf
    is right where the terms' magnitudes pass float32's range; a wrong finite value is still wrong, and
    without a bound the plain rule holds (the flaky case of CI: DCNv3, mask = -3e38 everywhere)."""
    want = np.array([-1.1e35, 2.0])
    bound = np.array([3e39, 4.0])
    assert _same(np.array([-np.inf, 2.0]), want, bound)[0]
    assert _same(np.array([np.nan, 2.0]), want, bound)[0]
    assert _same(np.array([-1.1e35, 2.0]), want, bound)[0]
    assert not _same(np.array([-1.1e35, np.inf]), want, bound)[0]  # 2.0 is no overflow
    assert not _same(np.array([5.0, 2.0]), want, bound)[0]
    assert not _same(np.array([-np.inf, 2.0]), want)[0]


def test_fuzz_inputs_are_the_same_in_every_process():
    """The cases' numbers come from their ids, not from Python's per-process salted hash()."""
    code = ("import sys, hashlib; sys.path.insert(0, 'tests'); import test_fuzz_ops as t; "
            "from helpers import fuzz_cases; c = fuzz_cases.all_cases()[0]; "
            "print(hashlib.sha256(b''.join(v.tobytes() for v in t._feeds(c).values())).hexdigest())")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    got = {subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True,
                          env=dict(os.environ, PYTHONHASHSEED=seed)).stdout for seed in ("1", "2")}
    assert len(got) == 1, got
