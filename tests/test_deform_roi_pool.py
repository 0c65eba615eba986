"""dcn::DeformRoIPool (mmcv's deformable RoI pooling; contract: docs/deform_roi_pool.md).

The reference (exporter.ops.deform_roi_pool.reference) is held to two outside anchors:
torchvision's roi_align(aligned=True) with the same sampling ratio at zero offsets, and a
loop transcription of mmcv's kernel (tests/helpers/naive.py) with offsets; every other
implementation (custom op, ONNX Runtime op float32 / float16, host math in float64) is held
to the reference on the same generated sweep of awkward cases.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torchvision

from helpers import naive
from exporter.ops.deform_roi_pool.spec import SPEC as DEFORM_ROI_POOL
from dcn_base.errors import ContractError
from exporter.contract import LIMITS
from exporter.ops import DeformRoIPool, ModulatedDeformRoIPoolPack, deform_roi_pool
from exporter.ops.deform_roi_pool.reference import ROI_POOL_MAX_GRID
from dcn_base.tolerance import tolerance

# (N, C, H, W)
DATA = [(1, 3, 7, 9), (2, 2, 5, 4)]
# (pooled_height, pooled_width, spatial_scale, sampling_ratio)
ATTRS = [(2, 3, 0.25, 0), (7, 7, 0.5, 2), (1, 1, 1.0, 0), (3, 2, 0.125, 3)]
OFFSETS = [None, 0.3, 4.0]  # None, moderate, far outside the map


def _rois(N, H, W, scale, g):
    """Inside, partly outside, zero-size, inverted (x2 < x1), tiny, covering the map, on the map's edge."""
    h, w = H / scale, W / scale
    boxes = [
        [0, 0.2 * w, 0.1 * h, 0.7 * w, 0.9 * h],
        [N - 1, -0.3 * w, -0.2 * h, 0.4 * w, 1.3 * h],
        [0, 0.5 * w, 0.5 * h, 0.5 * w, 0.5 * h],
        [N - 1, 0.8 * w, 0.6 * h, 0.1 * w, 0.2 * h],
        [0, 0.31 * w, 0.42 * h, 0.31 * w + 0.4, 0.42 * h + 0.3],
        [N - 1, 0.0, 0.0, w, h],
        [0, w - 1.0, h - 1.0, w + 3.0, h + 2.0],
    ]
    rois = torch.tensor(boxes, dtype=torch.float64)
    rois[:, 1:] += torch.rand(len(boxes), 4, generator=g, dtype=torch.float64) * 0.01
    return rois.float().double()  # RoIs are float32 values in every implementation


def cases():
    for i, ((N, C, H, W), (PH, PW, scale, sr), off) in enumerate(itertools.product(DATA, ATTRS, OFFSETS)):
        g = torch.Generator().manual_seed(i)
        data = torch.randn(N, C, H, W, generator=g, dtype=torch.float64)
        rois = _rois(N, H, W, scale, g)
        offset = None if off is None else torch.randn(rois.shape[0], 2, PH, PW, generator=g,
                                                      dtype=torch.float64) * off
        attrs = dict(pooled_height=PH, pooled_width=PW, spatial_scale=scale, sampling_ratio=sr, gamma=0.1)
        yield pytest.param(data, rois, offset, attrs, id=f"{N}x{C}x{H}x{W}-p{PH}x{PW}-s{scale}-sr{sr}-off{off}")


CASES = list(cases())


# --------------------------------------------------------------------------- the anchors
@pytest.mark.parametrize("data, rois, offset, attrs", [c for c in CASES if c.values[2] is None])
def test_zero_offsets_equal_torchvision_roi_align(data, rois, offset, attrs):
    got = deform_roi_pool(data, rois, None, **attrs)
    want = torchvision.ops.roi_align(data, rois, (attrs["pooled_height"], attrs["pooled_width"]),
                                     attrs["spatial_scale"], attrs["sampling_ratio"], aligned=True)
    torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-12)
    zeros = torch.zeros(rois.shape[0], 2, attrs["pooled_height"], attrs["pooled_width"], dtype=torch.float64)
    torch.testing.assert_close(deform_roi_pool(data, rois, zeros, **attrs), want, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("data, rois, offset, attrs", CASES[::2])
def test_reference_equals_mmcv_kernel_loops(data, rois, offset, attrs):
    want = naive.deform_roi_pool(data.numpy(), rois.numpy(), None if offset is None else offset.numpy(), **attrs)
    got = deform_roi_pool(data, rois, offset, **attrs).numpy()
    np.testing.assert_allclose(got, want, atol=1e-12, rtol=1e-12)


def test_gamma_scales_offsets_by_the_roi_size():
    """A bin moved by offset dx = 1 / (gamma * roi_w) * k pixels equals sampling k pixels to the right."""
    data = torch.arange(2 * 8 * 12, dtype=torch.float64).reshape(1, 2, 8, 12)  # linear in x: shifts are exact
    rois = torch.tensor([[0, 2.0, 1.0, 6.0, 5.0]], dtype=torch.float64)
    attrs = dict(pooled_height=2, pooled_width=2, spatial_scale=1.0, sampling_ratio=2, gamma=0.5)
    off = torch.zeros(1, 2, 2, 2, dtype=torch.float64)
    off[0, 0] = 1.0 / (0.5 * 4.0)  # one pixel in x
    off[0, 1] = 2.0 / (0.5 * 4.0)  # two pixels in y
    base = deform_roi_pool(data, rois, None, **attrs)
    moved = deform_roi_pool(data, rois, off, **attrs)
    torch.testing.assert_close(moved - base, torch.full_like(base, 1.0 + 2.0 * 12.0))


# --------------------------------------------------------------------------- the custom op and modules
def test_custom_op_equals_reference_and_has_gradients():
    data, rois, offset, attrs = CASES[4].values
    got = torch.ops.dcn.deform_roi_pool(data, rois, offset, attrs["pooled_height"], attrs["pooled_width"],
                                        attrs["spatial_scale"], attrs["sampling_ratio"], attrs["gamma"])
    torch.testing.assert_close(got, deform_roi_pool(data, rois, offset, **attrs))
    d = data[:1, :1, :4, :5].clone().requires_grad_(True)
    r = torch.tensor([[0, 1.3, 2.1, 14.2, 11.7]], dtype=torch.float64)
    o = (torch.randn(1, 2, 2, 2, dtype=torch.float64) * 0.2).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda d, o: torch.ops.dcn.deform_roi_pool(d, r, o, 2, 2, 0.25, 2, 0.1),
                                    (d, o))


def test_modules_mmcv_layout():
    m = ModulatedDeformRoIPoolPack((7, 7), 256, deform_fc_channels=1024, spatial_scale=1 / 16, sampling_ratio=2)
    shapes = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert shapes == {
        "offset_fc.0.weight": (1024, 7 * 7 * 256), "offset_fc.0.bias": (1024,),
        "offset_fc.2.weight": (1024, 1024), "offset_fc.2.bias": (1024,),
        "offset_fc.4.weight": (7 * 7 * 2, 1024), "offset_fc.4.bias": (7 * 7 * 2,),
        "mask_fc.0.weight": (1024, 7 * 7 * 256), "mask_fc.0.bias": (1024,),
        "mask_fc.2.weight": (7 * 7, 1024), "mask_fc.2.bias": (7 * 7,),
    }
    # zero-initialised branches: offsets 0, mask 0.5 -> half of plain RoIAlign
    small = ModulatedDeformRoIPoolPack(2, 3, deform_fc_channels=4, spatial_scale=0.5)
    x, rois = torch.randn(1, 3, 6, 6), torch.tensor([[0, 1.0, 1.0, 9.0, 8.0]])
    torch.testing.assert_close(small(x, rois), 0.5 * torchvision.ops.roi_align(x, rois, 2, 0.5, 0, aligned=True))
    assert DeformRoIPool(2, 0.5)(x, rois.half()).dtype == torch.float32  # float16 RoIs used as float32


@pytest.mark.parametrize("change, message", [
    (dict(pooled_height=0), "pooled_height is 0, expected >= 1"),
    (dict(sampling_ratio=-1), "sampling_ratio is -1, expected >= 0"),
    (dict(spatial_scale=float("nan")), "spatial_scale is nan, expected a finite value > 0"),
    (dict(gamma=float("inf")), "gamma is inf, expected a finite value"),
    (dict(rois=torch.zeros(2, 4)), r"rois has shape \[2, 4\], expected \[R, 5\]"),
    (dict(offset=torch.zeros(7, 2, 3, 3)), r"offset has shape \[7, 2, 3, 3\], expected \[7, 2, 2, 3\]"),
    (dict(rois=torch.tensor([[2.0, 0, 0, 4, 4]])), "rois has batch index 2.0, expected 0 <= batch_index < N = 1"),
])
def test_reference_errors(change, message):
    args = dict(data=torch.randn(1, 3, 7, 9), rois=_rois(1, 7, 9, 0.25, torch.Generator().manual_seed(0)).float(),
                offset=None, pooled_height=2, pooled_width=3, spatial_scale=0.25, sampling_ratio=0, gamma=0.1)
    args.update(change)
    with pytest.raises(ContractError, match=rf"^DeformRoIPool: {message}"):
        deform_roi_pool(args.pop("data"), args.pop("rois"), args.pop("offset"), **args)


@pytest.mark.parametrize("change, message", [
    (dict(pooled_height=257), "pooled_height = 257, expected <= 256"),
    (dict(pooled_width=2**24), "pooled_width = 16777216, expected <= 256"),
    (dict(sampling_ratio=65), "sampling_ratio = 65, expected <= 64"),
])
def test_reference_limits(change, message):
    """The contract's limits (spec LIMITS), in the contract's words, before anything is allocated."""
    args = dict(dict(pooled_height=2, pooled_width=3, spatial_scale=0.25, sampling_ratio=0, gamma=0.1), **change)
    with pytest.raises(ContractError, match=rf"^DeformRoIPool: attribute {message} \(limit\)$"):
        deform_roi_pool(torch.randn(1, 3, 7, 9), torch.tensor([[0.0, 1, 1, 5, 5]]), None, **args)
    lim = LIMITS["DeformRoIPool"]
    out = deform_roi_pool(torch.randn(1, 1, 3, 3), torch.tensor([[0.0, 0, 0, 2, 2]]), None,
                          pooled_height=lim["pooled_height"], pooled_width=1, spatial_scale=1.0,
                          sampling_ratio=lim["sampling_ratio"])
    assert out.shape == (1, 1, lim["pooled_height"], 1) and torch.isfinite(out).all()


@pytest.mark.parametrize("shape", [(2, 3, 0, 5), (2, 3, 4, 0), (2, 3, 0, 0), (2, 0, 4, 5)])
def test_reference_empty_map_gives_zeros_after_the_batch_check(shape):
    """An empty map (H or W = 0) or no channels: zeros, as the kernels (deform_roi_pool_element); batch indices
    are checked first all the same, as the ONNX Runtime op does."""
    rois = torch.tensor([[1.0, 0, 0, 3, 3], [0, -1, -1, 0.5, 0.5]])
    out = deform_roi_pool(torch.randn(*shape), rois, torch.randn(2, 2, 2, 3), pooled_height=2, pooled_width=3,
                          spatial_scale=1.0)
    assert out.shape == (2, shape[1], 2, 3) and torch.all(out == 0)
    with pytest.raises(ContractError, match="rois has batch index 2.0"):
        deform_roi_pool(torch.randn(*shape), rois + torch.tensor([1.0, 0, 0, 0, 0]), None, pooled_height=2,
                        pooled_width=3, spatial_scale=1.0)


def test_hostile_rois_bounded_and_finite():
    """Huge / non-finite RoIs and offsets: the grid is capped (ROI_POOL_MAX_GRID), values finite or 0."""
    data = torch.randn(1, 2, 4, 4, dtype=torch.float64)
    rois = torch.tensor([[0, 0, 0, 1e30, 1e30], [0, float("nan"), 0, 3, 3], [0, 0, 0, float("inf"), 3]],
                        dtype=torch.float64)
    out = deform_roi_pool(data, rois, None, pooled_height=1, pooled_width=1, spatial_scale=1.0, sampling_ratio=0)
    assert torch.isfinite(out).all() and ROI_POOL_MAX_GRID == 1024


# --------------------------------------------------------------------------- ONNX Runtime
ORT_DTYPES = ["float32", "float16"]


def _ort(data, rois, offset, attrs, dtype, name="head.pool"):
    """One dcn::DeformRoIPool node in ONNX Runtime with libdcn_ort: data / offset in dtype, rois float32."""
    from onnx import TensorProto, helper

    from helpers.built_libs import require
    from exporter.contract import DOMAIN, DOMAIN_VERSION
    from trt_runtime import plugins

    require(plugins.ort_library)
    np_t, onnx_t = (np.float16, TensorProto.FLOAT16) if dtype == "float16" else (np.float32, TensorProto.FLOAT)
    feed = {"data": np.asarray(data, dtype=np_t), "rois": np.asarray(rois, dtype=np.float32)}
    if offset is not None:
        feed["offset"] = np.asarray(offset, dtype=np_t)
    types = {"data": onnx_t, "rois": TensorProto.FLOAT, "offset": onnx_t}
    node = helper.make_node(DEFORM_ROI_POOL.op_type, list(feed), ["Y"], domain=DOMAIN, name=name, **attrs)
    graph = helper.make_graph([node], "roi_pool", [helper.make_tensor_value_info(k, types[k], v.shape)
                                                   for k, v in feed.items()],
                              [helper.make_tensor_value_info("Y", onnx_t, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19),
                                                    helper.make_opsetid(DOMAIN, DOMAIN_VERSION)], ir_version=10)
    return plugins.ort_session(model.SerializeToString()).run(None, feed)[0]


@pytest.mark.parametrize("dtype", ORT_DTYPES)
@pytest.mark.parametrize("data, rois, offset, attrs", CASES)
def test_ort_op_matches_reference(data, rois, offset, attrs, dtype):
    got = _ort(data.numpy(), rois.numpy(), None if offset is None else offset.numpy(), attrs, dtype)
    tdt = torch.float16 if dtype == "float16" else torch.float32
    # the reference on the values the op sees (float16-rounded data / offsets), in float64
    want = deform_roi_pool(data.to(tdt).double(), rois.float().double(),
                           None if offset is None else offset.to(tdt).double(), **attrs).numpy()
    atol, rtol = tolerance(dtype)
    np.testing.assert_allclose(got.astype(np.float64), want, atol=atol, rtol=rtol)


@pytest.mark.parametrize("change, message", [
    (dict(rois=np.array([[1.0, 0, 0, 4, 4]])), r"rois\[0, 0\] = 1, expected a batch index in \[0, N\) = \[0, 1\)"),
    (dict(offset=np.zeros((1, 2, 3, 2))), r"offset has shape \[1, 2, 3, 2\], expected \[1, 2, 2, 3\]"),
    (dict(attrs=dict(sampling_ratio=-2)), "attribute sampling_ratio = -2, expected >= 0"),
    (dict(attrs=dict(pooled_width=0)), "attribute pooled_width = 0, expected >= 1"),
    (dict(attrs=dict(pooled_width=257)), r"attribute pooled_width = 257, expected <= 256 \(limit\)"),
    (dict(attrs=dict(pooled_height=2**31)), r"attribute pooled_height = 2147483648, expected <= 256 \(limit\)"),
    (dict(attrs=dict(sampling_ratio=1024)), r"attribute sampling_ratio = 1024, expected <= 64 \(limit\)"),
])
def test_ort_op_errors_name_the_node(change, message):
    from test_ort_ops import ORT_ERRORS

    args = dict(data=np.zeros((1, 2, 5, 5)), rois=np.array([[0.0, 0, 0, 4, 4]]), offset=None,
                attrs=dict(pooled_height=2, pooled_width=3, spatial_scale=0.5))
    attrs = dict(args["attrs"], **change.pop("attrs", {}))
    args.update(change)
    with pytest.raises(ORT_ERRORS, match=rf"DeformRoIPool 'head.pool': {message}"):
        _ort(args["data"], args["rois"], args["offset"], attrs, "float32")


def test_ort_op_hostile_rois_finite():
    data = np.random.default_rng(0).standard_normal((1, 2, 4, 4))
    rois = np.array([[0, 0, 0, 1e30, 1e30], [0, np.nan, 0, 3, 3], [0, 0, 0, np.inf, 3], [0, -1e30, -1e30, 2, 2]])
    got = _ort(data, rois, None, dict(pooled_height=1, pooled_width=1, spatial_scale=1.0), "float32")
    want = deform_roi_pool(torch.tensor(data), torch.tensor(rois).float(), None, pooled_height=1, pooled_width=1,
                           spatial_scale=1.0).numpy()
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("data, rois, offset, attrs", [c for c in CASES if c.values[2] is None])
def test_ort_op_float32_equals_torchvision_roi_align_bit_for_bit(data, rois, offset, attrs):
    """At zero offsets the float32 op computes torchvision's roi_align(aligned=True) float32 terms in its
    order (per-RoI taps, RoIAlign's clamping): the same bits, not just within tolerance."""
    d32, r32 = data.float(), rois.float()
    got = _ort(d32.numpy(), r32.numpy(), None, attrs, "float32")
    want = torchvision.ops.roi_align(d32, r32, (attrs["pooled_height"], attrs["pooled_width"]),
                                     attrs["spatial_scale"], attrs["sampling_ratio"], aligned=True).numpy()
    assert np.array_equal(got, want)


def test_ort_op_nonfinite_data_as_the_reference():
    """inf / NaN in the map: each bin is what the reference gives (a sample outside the map reads nothing,
    so the inf at every plane's (0, 0) reaches only the bins that sample it)."""
    g = torch.Generator().manual_seed(3)
    N, C, H, W = 2, 3, 6, 7
    data = torch.randn(N, C, H, W, generator=g, dtype=torch.float64)
    data[:, :, 0, 0] = math.inf
    data[0, 1, 3, 4] = math.nan
    data[1, 2, H - 1, W - 1] = -math.inf
    rois = torch.cat([_rois(N, H, W, 0.5, g), torch.tensor([[0, -40.0, -40.0, -20.0, -10.0],
                                                            [1, 2.0, 3.0, 40.0, 30.0]], dtype=torch.float64)])
    for offset in (None, torch.randn(rois.shape[0], 2, 3, 2, generator=g, dtype=torch.float64)):
        attrs = dict(pooled_height=3, pooled_width=2, spatial_scale=0.5, sampling_ratio=2, gamma=0.1)
        got = _ort(data.numpy(), rois.numpy(), None if offset is None else offset.numpy(), attrs, "float32")
        want = deform_roi_pool(data.float().double(), rois.float().double(),
                               None if offset is None else offset.float().double(), **attrs).numpy()
        np.testing.assert_allclose(got.astype(np.float64), want, atol=1e-5, rtol=1e-5)  # NaN where NaN


# --------------------------------------------------------------------------- the math header in float64
def _host(data, rois, offset, attrs, node="head.pool"):
    import ctypes

    from helpers.built_libs import require
    from trt_runtime import plugins

    L = ctypes.CDLL(str(require(plugins.host_test_library)))
    P, I64 = ctypes.c_void_p, ctypes.POINTER(ctypes.c_int64)
    f = L.dcn_host_deform_roi_pool
    f.restype = ctypes.c_int
    f.argtypes = [P, I64, ctypes.c_int64] * 3 + [ctypes.c_int64, ctypes.c_int64, ctypes.c_double, ctypes.c_int64,
                                                 ctypes.c_double, ctypes.c_char_p, P, ctypes.c_char_p, ctypes.c_size_t]
    arrays = [None if a is None else np.ascontiguousarray(a, dtype=np.float64) for a in (data, rois, offset)]
    args = []
    for a in arrays:
        shape = (ctypes.c_int64 * 4)(*(a.shape if a is not None else ()))
        args += [a.ctypes.data if a is not None else None, shape, a.ndim if a is not None else -1]
    R, C = arrays[1].shape[0], arrays[0].shape[1]
    out = np.zeros((R, C, attrs["pooled_height"], attrs["pooled_width"]))
    msg = ctypes.create_string_buffer(1024)
    rc = f(*args, attrs["pooled_height"], attrs["pooled_width"], attrs["spatial_scale"], attrs.get("sampling_ratio", 0),
           attrs.get("gamma", 0.1), node.encode(), out.ctypes.data, msg, len(msg))
    return rc, out, msg.value.decode()


@pytest.mark.parametrize("data, rois, offset, attrs", CASES)
def test_math_header_float64_matches_reference(data, rois, offset, attrs):
    rc, got, msg = _host(data.numpy(), rois.numpy(), None if offset is None else offset.numpy(), attrs)
    assert rc == 0, msg
    want = deform_roi_pool(data, rois, offset, **attrs).numpy()
    np.testing.assert_allclose(got, want, atol=1e-12, rtol=1e-12)


def test_math_header_messages():
    rc, _, msg = _host(np.zeros((1, 2, 4, 4)), np.array([[0.0, 0, 0, 3, 3]]), np.zeros((1, 2, 2, 2)),
                       dict(pooled_height=2, pooled_width=3, spatial_scale=1.0))
    assert rc == 1 and msg == ("DeformRoIPool 'head.pool': offset has shape [1, 2, 2, 2], expected [1, 2, 2, 3] "
                               "([R, 2, pooled_height, pooled_width])")


def test_math_header_limits_and_empty_map():
    rc, _, msg = _host(np.zeros((1, 2, 4, 4)), np.array([[0.0, 0, 0, 3, 3]]), None,
                       dict(pooled_height=257, pooled_width=3, spatial_scale=1.0))
    assert rc == 1 and msg == "DeformRoIPool 'head.pool': attribute pooled_height = 257, expected <= 256 (limit)"
    data, rois = np.zeros((1, 2, 0, 4)), np.array([[0.0, 0, 0, 3, 3]])
    rc, got, msg = _host(data, rois, None, dict(pooled_height=2, pooled_width=3, spatial_scale=1.0))
    want = deform_roi_pool(torch.tensor(data), torch.tensor(rois), None, pooled_height=2, pooled_width=3,
                           spatial_scale=1.0)
    assert rc == 0 and np.array_equal(got, want.numpy()) and not got.any(), msg


def test_cli_generates_rois_on_the_image_of_a_roi_pack():
    """dcn-export's generated RoIs lie in image pixels: feature map size / spatial_scale for a pack's feature map."""
    from exporter.cli import InputSpec, make_inputs

    model = torch.nn.Sequential(ModulatedDeformRoIPoolPack(2, 6, deform_fc_channels=4, spatial_scale=0.125))
    _, rois = make_inputs([InputSpec("features", (1, 6, 5, 7)), InputSpec("rois", (9, 5))], model)
    assert (rois[:, 3] <= 7 / 0.125).all() and (rois[:, 4] <= 5 / 0.125).all() and (rois[:, 3] > 7).any()


# --------------------------------------------------------------------------- the limits at export
def test_export_refuses_a_node_past_the_limits(tmp_path):
    """dcn-export: the module's run (the reference) refuses first; a node of ours written some other way
    (a program exported without running it) is refused by the post-processing (and dcn-build), naming the node."""
    import onnx
    from onnx import helper

    from exporter import export
    from exporter.contract import DOMAIN
    from exporter.contract import check_graph_attributes

    class Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.pool = DeformRoIPool((300, 7), spatial_scale=0.5, sampling_ratio=2)

        def forward(self, x, rois):
            return self.pool(x, rois)

    with pytest.raises(ContractError, match=r"attribute pooled_height = 300, expected <= 256 \(limit\)"):
        export(Head(), (torch.randn(1, 2, 8, 8), torch.tensor([[0, 1.0, 1, 9, 9]])), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()
    node = helper.make_node("DeformRoIPool", ["x", "rois"], ["y"], domain=DOMAIN, name="roi_head.pool",
                            pooled_height=7, pooled_width=7, spatial_scale=0.25, sampling_ratio=65)
    model = helper.make_model(helper.make_graph([node], "g", [], []))
    with pytest.raises(ContractError, match=r"^DeformRoIPool 'roi_head.pool': attribute sampling_ratio = 65, "
                                            r"expected <= 64 \(limit\)$"):
        check_graph_attributes(model)
    next(a for a in node.attribute if a.name == "sampling_ratio").i = 64
    check_graph_attributes(onnx.ModelProto(graph=helper.make_graph([node], "g", [], [])))
