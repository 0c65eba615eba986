"""dcn::MultiScaleDeformableAttention in C++: the CUDA kernel's launch emulated on the host (its
launcher choices, block prologue and thread bodies: plugins/ops/multi_scale_deformable_attention/
multi_scale_deformable_attention_launch.h) and the ONNX Runtime CPU op (libdcn_ort), against the float64 reference and mmcv, on
awkward cases; validation messages equal the Python contract's; int32 / int64 index inputs."""
from __future__ import annotations

import ctypes

import numpy as np
import pytest
import torch

from exporter.ops.multi_scale_deformable_attention import spec
from exporter.ops.multi_scale_deformable_attention.reference import multi_scale_deformable_attention as ref
from helpers.built_libs import require
from helpers.msda_cases import awkward_cases, make_case
from trt_runtime import plugins
from helpers.ci_policy import require_module

CASES = awkward_cases()
IDS = [c.name for c in CASES]
DTYPES = {"float64": (0, np.float64, torch.float64), "float32": (1, np.float32, torch.float32),
          "float16": (2, np.float16, torch.float16)}
TOL = {"float64": 1e-12, "float32": 2e-5, "float16": 2e-3}


@pytest.fixture(scope="module")
def lib():
    L = ctypes.CDLL(str(require(plugins.host_test_library)))
    P, I64 = ctypes.c_void_p, ctypes.POINTER(ctypes.c_int64)
    L.dcn_emu_msda.argtypes = [ctypes.c_int, ctypes.c_int, P, P, P, ctypes.c_int, P, P, I64, ctypes.c_int,
                               ctypes.c_int, ctypes.c_int64, P, I64]
    L.dcn_msda_elements.argtypes = [ctypes.c_int, P, P, P, ctypes.c_int, P, P, I64, P]
    L.dcn_msda_validate.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_int32), I64, P, P, ctypes.c_int, I64,
                                    ctypes.c_char_p, ctypes.c_size_t]
    L.dcn_host_misaligned_vector_accesses.restype = ctypes.c_int64
    L.dcn_emu_msda_fits_int32.argtypes = [I64, ctypes.c_int]
    return L


def _np_inputs(c, dtype):
    code, np_t, torch_t = DTYPES[dtype]
    v, s, st, loc, w = c.inputs(torch_t)
    loc_np = loc.numpy().astype(np.float64 if dtype == "float64" else np.float32)
    return [np.ascontiguousarray(a) for a in (v.numpy(), s.numpy(), st.numpy(), loc_np, w.numpy())]


def _dims(c):
    N, S, M, D = c.value.shape
    return (ctypes.c_int64 * 7)(N, S, M, D, c.shapes.shape[0], c.loc.shape[1], c.loc.shape[4])


def _ptr(a):
    return a.ctypes.data_as(ctypes.c_void_p)


def emulate(lib, c, dtype, *, index_mode=0, vector=0, max_blocks=0, offset_value=False, split=0):
    code, np_t, _ = DTYPES[dtype]
    v, s, st, loc, w = _np_inputs(c, dtype)
    if offset_value:  # value one element past an aligned address: the launcher must drop to V = 1
        buf = np.zeros(v.size + 1, dtype=np_t)
        buf[1:] = v.reshape(-1)
        v = buf[1:].reshape(v.shape)
    N, S, M, D = c.value.shape
    y = np.full((N, c.loc.shape[1], M * D), np.nan, dtype=np_t)
    stats = (ctypes.c_int64 * 5)()
    lib.dcn_host_misaligned_vector_accesses()
    rc = lib.dcn_emu_msda(code, index_mode, _ptr(v), _ptr(s), _ptr(st), s.itemsize, _ptr(loc), _ptr(w), _dims(c),
                          vector, split, max_blocks, _ptr(y), stats)
    assert rc == 0
    misaligned = lib.dcn_host_misaligned_vector_accesses()  # value loads / Y stores a GPU would fault on
    assert vector != 0 or misaligned == 0, f"the launcher's width: {misaligned} misaligned vector accesses"
    return y, list(stats) + [misaligned]


def _want(c):
    return ref(*c.inputs()).numpy()


def _close(got, want, dtype, scale_from=None):
    g = got.astype(np.float64)
    tol = TOL[dtype]
    scale = max(1.0, float(np.abs(want).max())) if want.size else 1.0
    np.testing.assert_allclose(g, want, rtol=tol, atol=tol * scale)


@pytest.mark.parametrize("split", [1, 0, 8], ids=["plain", "launcher", "split8"])
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("c", CASES, ids=IDS)
def test_emulated_kernel_equals_reference(lib, c, dtype, split):
    """The plain kernel, the launcher's choice (the split kernel for these small cases) and a forced split."""
    y, stats = emulate(lib, c, dtype, split=split)
    _close(y, _want(c), dtype)


@pytest.mark.parametrize("split", [1, 2, 4])
@pytest.mark.parametrize("vector", [1, 2, 4])
@pytest.mark.parametrize("index_mode,max_blocks", [(1, 0), (2, 0), (0, 1), (2, 3)])
def test_every_vector_width_and_index_type(lib, vector, index_mode, max_blocks, split):
    c = make_case("v", [(9, 7), (4, 5), (2, 2)], N=2, Lq=37, M=3, D=8, P=3, seed=21, spread=0.5)
    y, stats = emulate(lib, c, "float32", vector=vector, index_mode=index_mode, max_blocks=max_blocks, split=split)
    assert stats[0] == vector and stats[1] == min(8 // vector, 32) and stats[4] == split
    _close(y, _want(c), "float32")


def test_split_choice_and_limits(lib):
    """The launcher splits few groups (RT-DETR's decoder at batch 1: 2400 groups of 8 threads -> 8 slices
    of its 12 points) and not many (batch 8); never past L*P points, the block, or one chunk a lane."""
    rt = make_case("rt", [(10, 10), (5, 5), (3, 3)], N=1, Lq=300, M=8, D=32, P=4, seed=24)
    assert emulate(lib, rt, "float32")[1][4] == 8
    rt8 = make_case("rt8", [(4, 4), (2, 2), (1, 1)], N=8, Lq=300, M=8, D=32, P=4, seed=25)
    assert emulate(lib, rt8, "float32")[1][4] == 1  # 153600 threads: enough
    one = make_case("p1", [(4, 4)], N=1, Lq=3, M=2, D=8, P=1, seed=26)
    assert emulate(lib, one, "float32", split=8)[1][4] == 1  # one point: nothing to split
    wide = make_case("d200", [(3, 3)], N=1, Lq=2, M=1, D=200, P=4)
    y, stats = emulate(lib, wide, "float32", split=4)
    assert stats[4] == 1  # 50 chunks over 32 lanes: the plain kernel
    _close(y, _want(wide), "float32")
    y, stats = emulate(lib, rt, "float32", split=8, max_blocks=3)  # 200 rounds of 4 groups a block, 3 blocks
    assert stats[4] == 8 and stats[2] == 3
    _close(y, _want(rt), "float32")


def test_launcher_choices(lib):
    c = make_case("d32", [(6, 5)], N=1, Lq=3, M=2, D=32, P=2)
    assert emulate(lib, c, "float32")[1][:2] == [4, 8]  # 16-byte float loads, 8 threads a group
    assert emulate(lib, c, "float16")[1][:2] == [4, 8]  # 8-byte half loads
    assert emulate(lib, c, "float32", offset_value=True)[1][:2] == [1, 32]  # misaligned value: scalar
    assert emulate(lib, c, "float32", offset_value=True, vector=4)[1][5] > 0  # forced: the check counts them
    c3 = make_case("d6", [(6, 5)], N=1, Lq=3, M=2, D=6, P=2)
    y, stats = emulate(lib, c3, "float32")
    assert stats[:2] == [2, 4]
    _close(y, _want(c3), "float32")
    big = make_case("d200", [(3, 3)], N=1, Lq=2, M=1, D=200, P=1)
    y, stats = emulate(lib, big, "float32")
    assert stats[:2] == [4, 32]  # 50 chunks over 32 lanes
    _close(y, _want(big), "float32")


@pytest.mark.parametrize("N,Lq,M,D,V,want", [
    (2, 300, 8, 32, 4, 1),                  # Deformable DETR's decoder: int32
    (1, 1, 1, 2**31 - 1 - 32, 1, 1),       # a lane's chunk loop ends at D + 32 = INT32_MAX
    (1, 1, 1, 2**31 - 32, 1, 0),           # ... one past it: int64 though the grid is one block
    (1, 1, 1, 2**33, 4, 0),                # 2**31 chunks of 4 channels
    (1, 1, 1, 2**33 - 4 * 64, 4, 1),
    (2**23, 64, 8, 4, 4, 0),               # the grid-stride loop itself past int32 (2**32 groups)
])
def test_index_type_covers_the_chunk_loop(lib, N, Lq, M, D, V, want):
    """The plain kernel's int32 instance only where every index it forms in int32 fits: the grid-stride
    loop (fits_int32) and a lane's loop over D / V chunks in steps of G (it ends at D / V + G)."""
    dims = (ctypes.c_int64 * 7)(N, 1, M, D, 1, Lq, 1)
    assert lib.dcn_emu_msda_fits_int32(dims, V) == want


def test_element_function_equals_emulation_bit_for_bit(lib):
    c = make_case("e", [(8, 6), (4, 3)], N=2, Lq=9, M=2, D=4, P=3, seed=22, spread=0.6, nan=5)
    for dtype in ("float32", "float16"):
        code, np_t, _ = DTYPES[dtype]
        v, s, st, loc, w = _np_inputs(c, dtype)
        y = np.zeros((2, 9, 8), dtype=np_t)
        lib.dcn_msda_elements(code, _ptr(v), _ptr(s), _ptr(st), 8, _ptr(loc), _ptr(w), _dims(c), _ptr(y))
        emu, _ = emulate(lib, c, dtype, vector=1, split=1)
        np.testing.assert_array_equal(y, emu)


def test_levels_that_do_not_fit_read_nothing(lib):
    """The kernel cannot report: a level outside value's S (26 here) contributes 0 and reads nothing."""
    c = make_case("bad", [(4, 5), (2, 3)], N=1, Lq=4, M=1, D=2, P=2, seed=23)
    v, s, st, loc, w = c.inputs()
    level0 = ref(v[:, :20], s[:1], st[:1], loc[:, :, :, :1].contiguous(), w[:, :, :, :1].contiguous()).numpy()
    for bad_starts, bad_shapes in (([0, 21], None), ([0, -5], None), ([0, 20], [[4, 5], [2, 2**40]]),
                                   ([0, 20], [[4, 5], [-2, 3]]), ([0, 2**62], None)):
        c.starts = torch.tensor(bad_starts)
        c.shapes = torch.tensor(bad_shapes or [[4, 5], [2, 3]])
        y, _ = emulate(lib, c, "float64")
        np.testing.assert_allclose(y, level0, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- validation messages
def _validate(lib, shapes, index=None, node=b"dec.0.attn"):
    ranks = (ctypes.c_int32 * 5)(*[len(s) for s in shapes])
    dims = (ctypes.c_int64 * 40)()
    for i, s in enumerate(shapes):
        for k, v in enumerate(s):
            dims[8 * i + k] = v
    msg = ctypes.create_string_buffer(1024)
    out = (ctypes.c_int64 * 7)()
    if index is None:
        rc = lib.dcn_msda_validate(node, ranks, dims, None, None, 8, out, msg, len(msg))
    else:
        sh, st = (np.ascontiguousarray(np.asarray(a, dtype=np.int64)) for a in index)
        rc = lib.dcn_msda_validate(node, ranks, dims, _ptr(sh), _ptr(st), 8, out, msg, len(msg))
    return rc, msg.value.decode()


SHAPE_CASES = [
    [[2, 16, 2, 4], [2, 2], [2], [2, 3, 2, 2, 2, 2], [2, 3, 2, 2, 2]],  # fine
    [[2, 16, 2], [2, 2], [2], [2, 3, 2, 2, 2, 2], [2, 3, 2, 2, 2]],
    [[2, 16, 2, 4], [2, 3], [2], [2, 3, 2, 2, 2, 2], [2, 3, 2, 2, 2]],
    [[2, 16, 2, 4], [2, 2], [3], [2, 3, 2, 2, 2, 2], [2, 3, 2, 2, 2]],
    [[2, 16, 2, 4], [2, 2], [2], [2, 3, 1, 2, 2, 2], [2, 3, 2, 2, 2]],
    [[2, 16, 2, 4], [2, 2], [2], [2, 3, 2, 2, 2, 2], [2, 3, 2, 2, 3]],
    [[2, 16, 2, 4], [2, 2], [2], [2, 3, 2, 2, 2, 2, 1], [2, 3, 2, 2, 2]],
]


@pytest.mark.parametrize("shapes", SHAPE_CASES)
def test_shape_messages_equal_python(lib, shapes):
    rc, msg = _validate(lib, shapes)
    want = spec.shape_error("dec.0.attn", *shapes)
    assert msg == want and rc == (1 if want else 0)


@pytest.mark.parametrize("levels,starts", [([[3, 4], [2, 2]], [0, 12]), ([[3, 4], [2, 2]], [0, 13]),
                                           ([[3, 4], [2, 2]], [-1, 12]), ([[3, 4], [-2, 2]], [0, 12]),
                                           ([[3, 4], [1, 2]], [0, 12]), ([[2, 2], [3, 4]], [12, 0])])
def test_level_messages_equal_python(lib, levels, starts):
    shapes = [[1, 16, 1, 2], [2, 2], [2], [1, 3, 1, 2, 1, 2], [1, 3, 1, 2, 1]]
    rc, msg = _validate(lib, shapes, (levels, starts))
    want = spec.levels_error("dec.0.attn", 16, levels, starts)
    assert msg == want and rc == (1 if want else 0)


# --------------------------------------------------------------------------- ONNX Runtime op
def _ort_session(dtype, index="int64", threads=1):
    import onnx
    from onnx import TensorProto, helper

    ort = require_module("onnxruntime")
    lib_path = str(require(plugins.ort_library))
    ft = {"float32": TensorProto.FLOAT, "float16": TensorProto.FLOAT16}[dtype]
    it = {"int64": TensorProto.INT64, "int32": TensorProto.INT32}
    shapes_t, starts_t = (index.split("/") * 2)[:2]  # "int64/int32": mixed (an error of the op)
    ins = [helper.make_tensor_value_info("value", ft, None),
           helper.make_tensor_value_info("spatial_shapes", it[shapes_t], None),
           helper.make_tensor_value_info("level_start_index", it[starts_t], None),
           helper.make_tensor_value_info("sampling_locations", TensorProto.FLOAT, None),
           helper.make_tensor_value_info("attention_weights", ft, None)]
    node = helper.make_node("MultiScaleDeformableAttention", [i.name for i in ins], ["Y"], domain="dcn",
                            name="dec.0.attn", im2col_step=64)
    g = helper.make_graph([node], "g", ins, [helper.make_tensor_value_info("Y", ft, None)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 19), helper.make_opsetid("dcn", 1)])
    m.ir_version = 10
    so = ort.SessionOptions()
    so.register_custom_ops_library(lib_path)
    so.intra_op_num_threads = threads
    return ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _ort_feed(c, dtype, index):
    v, s, st, loc, w = _np_inputs(c, dtype)
    return {"value": v, "spatial_shapes": s.astype(index), "level_start_index": st.astype(index),
            "sampling_locations": loc, "attention_weights": w}


@pytest.mark.parametrize("index", ["int64", "int32"])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("c", CASES, ids=IDS)
def test_ort_op_equals_reference(c, dtype, index):
    sess = _ort_session(dtype, index, threads=2)
    got = sess.run(None, _ort_feed(c, dtype, index))[0]
    assert got.dtype == DTYPES[dtype][1]
    _close(got, _want(c), dtype)


def test_ort_op_equals_mmcv():
    mm = require_module("mmcv.ops.multi_scale_deform_attn")
    c = make_case("mmcv", [(20, 25), (10, 13), (5, 7), (3, 4)], N=2, Lq=50, M=8, D=8, P=4, seed=24)
    got = _ort_session("float32").run(None, _ort_feed(c, "float32", "int64"))[0]
    v, s, st, loc, w = c.inputs()
    want = mm.multi_scale_deformable_attn_pytorch(v, s, loc, w).numpy()
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("what,match", [
    ("starts", r"MultiScaleDeformableAttention 'dec.0.attn': level 1 spans \[13, 17\) .* expected inside value's S = 16"),
    ("sum", r"MultiScaleDeformableAttention 'dec.0.attn': spatial_shapes give sum\(H\*W\) = 14, expected value's S = 16"),
    ("loc", r"MultiScaleDeformableAttention 'dec.0.attn': sampling_locations has shape \[1, 3, 1, 2, 1, 3\]"),
    ("mixed", r"MultiScaleDeformableAttention 'dec.0.attn': level_start_index has element type int32, expected "
              r"spatial_shapes' \(int64\)"),
])
def test_ort_op_rejects_with_one_line(what, match):
    ort = require_module("onnxruntime")
    feed = {"value": np.zeros((1, 16, 1, 2), np.float32), "spatial_shapes": np.array([[3, 4], [2, 2]], np.int64),
            "level_start_index": np.array([0, 12], np.int64),
            "sampling_locations": np.zeros((1, 3, 1, 2, 1, 2), np.float32),
            "attention_weights": np.zeros((1, 3, 1, 2, 1), np.float32)}
    if what == "starts":
        feed["level_start_index"] = np.array([0, 13], np.int64)
    elif what == "sum":
        feed["spatial_shapes"] = np.array([[3, 4], [1, 2]], np.int64)
    elif what == "loc":
        feed["sampling_locations"] = np.zeros((1, 3, 1, 2, 1, 3), np.float32)
    sess = _ort_session("float32", "int64/int32" if what == "mixed" else "int64")
    if what == "mixed":
        feed["level_start_index"] = feed["level_start_index"].astype(np.int32)
    with pytest.raises(Exception, match=match) as err:
        sess.run(None, feed)
    assert "\n" not in str(err.value).strip()
