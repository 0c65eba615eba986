"""The DCNv3 / DCNv4 CUDA kernels' per-thread body and the header's element function, on the host
(plugins/ops/dcnv3/dcnv3_host_kernels.cpp, plugins/ops/dcnv4/dcnv4_host_kernels.cpp in libdcn_host_tests,
ctypes), against the float64 reference.

They call plugins/cuda/dcn_aggregate_launch.h's aggregate_thread -- the body the __global__ kernels wrap -- for every
(block, thread) of the launcher's grid: channels per thread 1, 2, 4, 8 (the vector loads and stores),
int32 and int64 indexing, a capped grid (grid-stride loop); every output written. float64 to the
reference's precision, float32 / float16 storage within dcn_base/tolerance.py (float16: float32
coordinates and sums). The header's validation messages equal the Python contract's checks.
"""
from __future__ import annotations

import ctypes

import numpy as np
import pytest
import torch

from helpers.built_libs import require
from helpers.dcn_sweep import CASES, by_name
from exporter.ops.dcnv3.reference import dcnv3
from exporter.ops.dcnv4.reference import dcnv4
from dcn_base.tolerance import tolerance
from trt_runtime import plugins

DTYPES = {"float64": (0, np.float64), "float32": (1, np.float32), "float16": (2, np.float16)}
P, I64 = ctypes.c_void_p, ctypes.POINTER(ctypes.c_int64)


@pytest.fixture(scope="module")
def lib():
    L = ctypes.CDLL(str(require(plugins.host_test_library)))
    for op in (3, 4):
        f = getattr(L, f"dcn_host_dcnv{op}", None)
        if f is None:
            pytest.fail(f"libdcn_host_tests has no dcn_host_dcnv{op}: rebuild it (bash scripts/setup.sh)")
        f.restype = ctypes.c_int
        f.argtypes = ([ctypes.c_int] * 4 + [ctypes.c_int64] + [P, I64, ctypes.c_int64] * 3 + [I64] * 4
                      + [ctypes.c_int64, ctypes.c_int64, ctypes.c_double, ctypes.c_int64, ctypes.c_char_p,
                         P, I64, ctypes.c_char_p, ctypes.c_size_t])
        getattr(L, f"dcn_host_dcnv{op}_limits").argtypes = [I64]
    L.dcn_host_misaligned_vector_accesses.restype = ctypes.c_int64
    return L


def _ints(v):
    return (ctypes.c_int64 * len(v))(*v)


def host_run(L, op, case_or_arrays, attrs, dtype="float64", mode=1, vec=0, index_mode=0, max_blocks=0, node="n"):
    """Returns (output or None, message, stats)."""
    code, np_dtype = DTYPES[dtype]
    x, off, mask = (None if a is None else np.ascontiguousarray(np.asarray(a).astype(np_dtype, copy=False))
                    for a in case_or_arrays)  # (no copy of an array already so: a misaligned view stays one)
    ho, wo = off.shape[1:3] if off is not None and off.ndim == 4 else (0, 0)
    out = np.zeros((x.shape[0], ho, wo, x.shape[3]), np_dtype) if x.ndim == 4 else None
    stats = (ctypes.c_int64 * 4)()
    msg = ctypes.create_string_buffer(1024)
    shp = lambda a: (_ints(a.shape), a.ndim) if a is not None else (None, -1)  # noqa: E731
    (xs, xr), (os_, orank), (ms, mr) = shp(x), shp(off), shp(mask)
    a = attrs
    entry = getattr(L, f"dcn_host_dcnv{op}")
    rc = entry(code, mode, vec, index_mode, max_blocks,
               x.ctypes.data_as(P), xs, xr, off.ctypes.data_as(P), os_, orank,
               mask.ctypes.data_as(P) if mask is not None else None, ms, mr,
               _ints(a["kernel_shape"]), _ints(a["strides"]), _ints(a["pads"]), _ints(a["dilations"]),
               a["group"], a["group_channels"], a["offset_scale"], a["remove_center"], node.encode(),
               out.ctypes.data_as(P) if out is not None else None, stats, msg, len(msg))
    return (out if rc == 0 else None), msg.value.decode(), list(stats)


def references(case, dtype):
    np_dtype = DTYPES[dtype][1]
    t = lambda a: torch.from_numpy(a.numpy().astype(np_dtype).astype(np.float64))  # noqa: E731
    return (dcnv3(t(case.x), t(case.offset), t(case.mask), **case.attrs()).numpy(),
            dcnv4(t(case.x), t(case.offset_mask), **case.attrs()).numpy())


def _check(got, want, dtype):
    atol, rtol = tolerance(dtype)
    np.testing.assert_allclose(got.astype(np.float64), want, atol=atol, rtol=rtol)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_element_function_float64(lib, case):
    r3, r4 = references(case, "float64")
    y3, msg, _ = host_run(lib, 3, (case.x, case.offset, case.mask), case.attrs(), mode=0)
    assert msg == ""
    _check(y3, r3, "float64")
    y4, msg, _ = host_run(lib, 4, (case.x, case.offset_mask, None), case.attrs(), mode=0)
    _check(y4, r4, "float64")


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_kernel_thread_bodies(lib, case, dtype):
    """The launcher's choice of channels per thread, then every width that divides group_channels."""
    r3, r4 = references(case, dtype)
    widths = [0] + [v for v in (1, 2, 4, 8) if case.group_channels % v == 0]
    for vec in widths:
        lib.dcn_host_misaligned_vector_accesses()
        y3, msg, st = host_run(lib, 3, (case.x, case.offset, case.mask), case.attrs(), dtype, vec=vec)
        assert msg == "" and st[3] == 0, (vec, msg, st)  # every output written
        _check(y3, r3, dtype)
        y4, msg, st = host_run(lib, 4, (case.x, case.offset_mask, None), case.attrs(), dtype, vec=vec)
        assert msg == "" and st[3] == 0, (vec, msg, st)
        _check(y4, r4, dtype)
        if vec == 0:  # the launcher's width: no vector access a GPU would fault on
            assert lib.dcn_host_misaligned_vector_accesses() == 0, (case.name, dtype)


@pytest.mark.parametrize("index_mode,max_blocks", [(1, 0), (2, 0), (0, 1), (2, 3)])
def test_indexing_and_grid_stride(lib, index_mode, max_blocks):
    case = by_name("batch33")
    r3, _ = references(case, "float32")
    y, msg, st = host_run(lib, 3, (case.x, case.offset, case.mask), case.attrs(), "float32", vec=4,
                          index_mode=index_mode, max_blocks=max_blocks)
    assert msg == "" and st[3] == 0 and st[1] == 4
    assert st[2] == (index_mode != 2)
    if max_blocks:
        assert st[0] == max_blocks
    _check(y, r3, "float32")


def test_kernel_equals_element_function_bit_for_bit_in_float32(lib):
    """The vector path sums in the same order as the header's element function (the ORT op's)."""
    case = by_name("g1-cg32")
    e, _, _ = host_run(lib, 3, (case.x, case.offset, case.mask), case.attrs(), "float32", mode=0)
    for vec in (1, 8):
        k, _, _ = host_run(lib, 3, (case.x, case.offset, case.mask), case.attrs(), "float32", vec=vec)
        np.testing.assert_array_equal(k, e)


@pytest.mark.parametrize("op", [3, 4])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_launcher_narrows_the_width_for_a_misaligned_input(lib, op, dtype):
    """X one element past an aligned address: the launcher takes one channel a thread (every access
    aligned, the right values); forcing four channels on that X, the check counts the accesses a GPU
    would fault on (the check itself works)."""
    case = by_name("g1-cg32")
    npd = DTYPES[dtype][1]
    x = case.x.numpy().astype(npd)
    buf = np.empty(x.size + 16, npd)
    start = (-buf.ctypes.data // buf.itemsize) % 16 + 1  # one element past a 64-byte boundary
    shifted = buf[start:start + x.size].reshape(x.shape)
    shifted[...] = x
    inputs = (shifted, case.offset, case.mask) if op == 3 else (shifted, case.offset_mask, None)
    want = references(case, dtype)[op - 3]
    lib.dcn_host_misaligned_vector_accesses()
    y, msg, st = host_run(lib, op, inputs, case.attrs(), dtype)
    assert msg == "" and st[1] == 1 and lib.dcn_host_misaligned_vector_accesses() == 0, (msg, st)
    _check(y, want, dtype)
    y, msg, st = host_run(lib, op, inputs, case.attrs(), dtype, vec=4)
    assert msg == "" and st[1] == 4 and lib.dcn_host_misaligned_vector_accesses() > 0, (msg, st)
    _check(y, want, dtype)  # the host reads it right all the same: only the count shows the fault


def test_launcher_picks_eight_channels_for_internimage_groups(lib):
    case = by_name("remove-center-k3")  # group_channels 4 -> 4; g1-cg32 -> 8
    _, _, st = host_run(lib, 3, (case.x, case.offset, case.mask), case.attrs(), "float16")
    assert st[1] == 4
    case = by_name("g1-cg32")
    _, _, st = host_run(lib, 3, (case.x, case.offset, case.mask), case.attrs(), "float16")
    assert st[1] == 8


@pytest.mark.parametrize("change,message", [
    (dict(group=3), "DCNv3 'n': X has 16 channels, expected group*group_channels = 3*4 = 12"),
    (dict(kernel_shape=[0, 3]), "DCNv3 'n': attribute kernel_shape = [0, 3], expected values >= 1"),
    (dict(pads=[1, 1, 1, 2000]), "DCNv3 'n': attribute pads = [1, 1, 1, 2000], expected values <= 1024 (limit)"),
    (dict(remove_center=1, kernel_shape=[3, 5]),
     "DCNv3 'n': attribute remove_center = 1 with kernel_shape = [3, 5], expected an odd square kernel"),
    (dict(group=2**62, group_channels=8), "DCNv3 'n': X has 16 channels, expected group*group_channels = "
                                          "4611686018427387904*8 (overflows int64)"),
])
def test_header_messages(lib, change, message):
    case = by_name("k3")
    _, msg, _ = host_run(lib, 3, (case.x, case.offset, case.mask), {**case.attrs(), **change})
    assert msg == message


@pytest.mark.parametrize("op", [3, 4])
def test_limits_equal_the_contract(lib, op):
    from exporter.contract import OPS

    limits = OPS[f"DCNv{op}"].limits
    out = (ctypes.c_int64 * 4)()
    getattr(lib, f"dcn_host_dcnv{op}_limits")(out)
    assert list(out) == [limits["kernel_shape"], limits["strides"], limits["pads"], limits["dilations"]]


_HUGE_IMAGE = r"""
import ctypes, mmap, sys
import numpy as np

lib = ctypes.CDLL(sys.argv[1])
N, H, W, S = 2, 46341, 46341, 32  # an image of H*W = 2147488281 > 2**31 - 1 pixels, strided by 32
Ho = Wo = (H - 1) // S + 1
NORESERVE = getattr(mmap, "MAP_NORESERVE", 0x4000 if sys.platform.startswith("linux") else 0)  # Python < 3.12
try:  # float16 X, 8.6 GB of address space, never touched but where written below
    if not NORESERVE:
        raise OSError("no MAP_NORESERVE")
    buf = mmap.mmap(-1, N * H * W * 2, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | NORESERVE)
except (OSError, ValueError, AttributeError) as e:
    print("SKIP", e)
    sys.exit(0)
x = np.frombuffer(buf, dtype=np.float16).reshape(N, H, W, 1)
spots = [(0, 0, 0), (1, 0, 0), (1, Ho - 1, Wo - 1), (1, 700, 1000)]
for i, (n, ho, wo) in enumerate(spots):
    x[n, ho * S, wo * S, 0] = i + 1
off = np.zeros((N, Ho, Wo, 2), np.float16)
mask = np.ones((N, Ho, Wo, 1), np.float16)
y = np.full((N, Ho, Wo, 1), np.nan, np.float16)
I64 = ctypes.POINTER(ctypes.c_int64)
ints = lambda v: (ctypes.c_int64 * len(v))(*v)
stats, msg = (ctypes.c_int64 * 4)(), ctypes.create_string_buffer(1024)
f = lib.dcn_host_dcnv3
f.restype = ctypes.c_int
P = ctypes.c_void_p
f.argtypes = ([ctypes.c_int] * 4 + [ctypes.c_int64] + [P, I64, ctypes.c_int64] * 3 + [I64] * 4
              + [ctypes.c_int64, ctypes.c_int64, ctypes.c_double, ctypes.c_int64, ctypes.c_char_p, P, I64,
                 ctypes.c_char_p, ctypes.c_size_t])
rc = f(2, 1, 0, 0, 0, x.ctypes.data, ints(x.shape), 4, off.ctypes.data, ints(off.shape), 4, mask.ctypes.data,
       ints(mask.shape), 4, ints([1, 1]), ints([S, S]), ints([0, 0, 0, 0]), ints([1, 1]), 1, 1, 1.0, 0, b"huge",
       y.ctypes.data, stats, msg, len(msg))
assert rc == 0, msg.value
assert stats[2] == 1 and stats[3] == 0, list(stats)  # int32 items, every output written
want = np.zeros_like(y)
for i, (n, ho, wo) in enumerate(spots):
    want[n, ho, wo, 0] = i + 1
assert np.array_equal(y, want), [(s, float(y[s][0])) for s in spots]
print("OK")
"""


def test_kernel_thread_body_on_an_image_past_int32(lib, tmp_path):
    """Outputs that fit int32 indexing (2 x 1449 x 1449 items) from images that do not (46341 x 46341 =
    2147488281 pixels, read at stride 32): the thread body's input offsets stay int64 (int32 ones had
    wrapped and read before X: a crash on the host, an illegal address on a GPU). A float16 X of 8.6 GB
    address space, never touched but where written; in a subprocess (a crash must not take the suite)."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", _HUGE_IMAGE, str(require(plugins.host_test_library))],
                       capture_output=True, text=True, timeout=300)
    if r.stdout.startswith("SKIP"):
        pytest.skip(f"no 8.6 GB of address space without reserve here: {r.stdout.strip()}")
    assert r.returncode == 0 and r.stdout.strip() == "OK", (r.returncode, r.stdout[-500:], r.stderr[-1500:])
