"""Small work on the pool or on the calling thread (plugins/ort/ort_pool_probe.h, PoolProbe), driven
over scripted run times through libdcn_host_tests (plugins/tests/host_pool_probe.cpp).

ONNX Runtime's idle workers spin by default (small work side by side pays) or sleep
(session.intra_op.allow_spinning = 0: waking one costs more than a small layer saves); an op cannot
read which, so it measures both ways and takes the faster. Run numbers below count from 1, as the
probe does: the pool for runs 1-4, the calling thread for 5-8 (the first of each not counted: a
switch), then the faster, the other way on the two runs from every 32nd. DCN_ORT_SMALL_WORK=pool /
serial fixes the way; another value is a one-line error naming the variable.
"""
from __future__ import annotations

import ctypes

import numpy as np
import onnxruntime as ort
import pytest
from exporter.ops.deform_conv2d.spec import SPEC as DEFORM_CONV2D
from helpers.built_libs import require
from helpers.sweep import CONV_SPECS, make_conv_case
from test_ort_amx_gemm import layer, reference
from test_ort_ops import ORT_ERRORS, assert_matches, conv_inputs, make_model, np_inputs, run
from trt_runtime import plugins

ENV = "DCN_ORT_SMALL_WORK"
EVERY = 32  # PoolProbe::kProbeEvery


@pytest.fixture(scope="module")
def lib():
    L = ctypes.CDLL(str(require(plugins.host_test_library)))
    f = getattr(L, "dcn_host_pool_probe", None)
    if f is None:
        pytest.fail("libdcn_host_tests has no dcn_host_pool_probe: rebuild it (bash scripts/setup.sh)")
    P = ctypes.POINTER(ctypes.c_double)
    f.restype = ctypes.c_int
    f.argtypes = [P, P, ctypes.c_double, ctypes.c_int64, ctypes.POINTER(ctypes.c_uint8), ctypes.c_char_p,
                  ctypes.c_size_t]
    return L


def ways(lib, pool, serial, wake=0.0):
    """The way each run took (True: the calling thread), run i timed pool[i] / serial[i] ns."""
    pool, serial = (np.ascontiguousarray(a, dtype=np.float64) for a in (pool, serial))
    out = np.zeros(len(pool), dtype=np.uint8)
    msg = ctypes.create_string_buffer(512)
    dp = ctypes.POINTER(ctypes.c_double)
    rc = lib.dcn_host_pool_probe(pool.ctypes.data_as(dp), serial.ctypes.data_as(dp), wake, len(pool),
                                 out.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8)), msg, len(msg))
    if rc != 0:
        raise RuntimeError(msg.value.decode())
    return out.astype(bool)


def probes(runs: int) -> np.ndarray:
    """Runs (1-based numbers, as a mask over 0-based indices) that try the other way: 32, 33, 64, 65, ..."""
    r = np.arange(1, runs + 1)
    return (r % EVERY < 2) & (r > 8)


def expected(runs: int, serial_faster: bool) -> np.ndarray:
    want = np.zeros(runs, dtype=bool)
    want[4:8] = True  # runs 5-8: the calling thread measured
    want[8:] = serial_faster
    want[probes(runs)] = not serial_faster
    return want


@pytest.mark.parametrize("serial_faster", [False, True], ids=["pool-faster", "serial-faster"])
def test_takes_the_faster_way_and_probes_the_other(lib, monkeypatch, serial_faster):
    monkeypatch.delenv(ENV, raising=False)
    runs = 200
    pool = np.full(runs, 100.0 if serial_faster else 50.0)
    got = ways(lib, pool, np.full(runs, 75.0))
    np.testing.assert_array_equal(got, expected(runs, serial_faster))


def test_auto_is_the_default_spelled_out(lib, monkeypatch):
    monkeypatch.setenv(ENV, "auto")
    runs = 100
    np.testing.assert_array_equal(ways(lib, np.full(runs, 100.0), np.full(runs, 75.0)), expected(runs, True))


def test_follows_workers_going_to_sleep_at_once(lib, monkeypatch):
    """The way taken is measured on every run: the pool turning slow (workers asleep from run 301 on)
    shows on the next runs (the median of three: two runs)."""
    monkeypatch.delenv(ENV, raising=False)
    runs = 400
    pool = np.where(np.arange(runs) < 300, 50.0, 100.0)
    got = ways(lib, pool, np.full(runs, 75.0))
    assert not got[8:300][~probes(runs)[8:300]].any()
    assert got[302:][~probes(runs)[302:]].all()


def test_follows_workers_waking_up_within_two_probes(lib, monkeypatch):
    """The other way is measured by the probes only: the pool turning fast from run 301 on is taken
    once two probes have seen it (runs 321 and 353 counted), before run 360."""
    monkeypatch.delenv(ENV, raising=False)
    runs = 500
    pool = np.where(np.arange(runs) < 300, 100.0, 50.0)
    got = ways(lib, pool, np.full(runs, 75.0))
    assert got[8:300][~probes(runs)[8:300]].all()
    late = np.arange(runs) >= 359
    assert not got[late & ~probes(runs)].any()


def test_run_after_a_switch_not_counted(lib, monkeypatch):
    """Workers that spin between runs but slept through runs on the calling thread: the first pool
    run after those pays the wake (here 150 ns a value on top of 50). Not counted, the pool stays the
    faster way (counted, each probe would add a slow sample and the calling thread would win)."""
    monkeypatch.delenv(ENV, raising=False)
    runs = 300
    got = ways(lib, np.full(runs, 50.0), np.full(runs, 75.0), wake=150.0)
    np.testing.assert_array_equal(got, expected(runs, False))


@pytest.mark.parametrize("value,serial", [("pool", False), ("serial", True)])
def test_env_fixes_the_way(lib, monkeypatch, value, serial):
    monkeypatch.setenv(ENV, value)
    runs = 80
    got = ways(lib, np.full(runs, 100.0 if not serial else 50.0), np.full(runs, 75.0))
    assert (got == serial).all()


def test_env_error_names_the_variable(lib, monkeypatch):
    monkeypatch.setenv(ENV, "threads")
    with pytest.raises(RuntimeError) as err:
        ways(lib, np.full(4, 1.0), np.full(4, 1.0))
    assert str(err.value) == "DCN_ORT_SMALL_WORK: got 'threads', expected auto, pool or serial"


# ---- the DeformConv2d op: either way, the same bytes -------------------------------------------
@pytest.mark.parametrize("images", [1, 2], ids=["runs-of-positions", "images"])
def test_conv_small_layer_same_bytes_either_way(images, monkeypatch):
    """A small layer (24 channels, 15x13, 20 filters: 42120 column values an image, under
    kSmallLayerValues) whose runs of positions (one image) or images (two) go side by side at two
    threads: DCN_ORT_SMALL_WORK=pool and =serial give the same bytes, and auto over 40 runs of one
    session (the pool for 4 runs, the calling thread for 4, then the faster, the other on a probe)
    gives them on every run; one plane with inf. Matches the reference."""
    t, attrs, pads = layer(images, 24, 15, 13, 20, seed=32)
    t["X"][0, 5, 3, 4] = float("inf")
    ins = np_inputs(t)
    got = {}
    for value in ("pool", "serial"):
        monkeypatch.setenv(ENV, value)
        got[value] = run(DEFORM_CONV2D, ins, attrs, initializers=("W", "B"), threads=2)
    np.testing.assert_array_equal(got["pool"], got["serial"])
    want = reference(t, pads, "float32")
    finite = np.isfinite(want)
    assert not finite.all()
    assert np.array_equal(np.isfinite(got["pool"]), finite)
    assert_matches(np.where(finite, got["pool"], 0), np.where(finite, want, 0), "float32")

    monkeypatch.setenv(ENV, "auto")
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = plugins.ort_session(make_model(DEFORM_CONV2D, ins, attrs, initializers=("W", "B")), sess_options=so)
    feed = {i.name: np.ascontiguousarray(ins[i.name], dtype=np.float32) for i in sess.get_inputs()}
    for _ in range(40):
        np.testing.assert_array_equal(sess.run(None, feed)[0], got["pool"])


def test_conv_small_work_env_error(monkeypatch):
    """A DCN_ORT_SMALL_WORK the op does not know: an error at session creation, naming it."""
    c = make_conv_case(CONV_SPECS[0])
    monkeypatch.setenv(ENV, "threads")
    with pytest.raises(ORT_ERRORS) as err:
        run(DEFORM_CONV2D, np_inputs(conv_inputs(c)), c.attrs(), initializers=("W",))
    assert "DCN_ORT_SMALL_WORK: got 'threads', expected auto, pool or serial" in str(err.value)
