"""dcn::DCNv3 / dcn::DCNv4 in Python: the float64 references (exporter/ops/dcnv3, dcnv4) held to an independent
grid_sample formulation of InternImage's geometry (tests/helpers/dcn_grid_sample.py) on the awkward sweep
(tests/helpers/dcn_sweep.py) and on InternImage-T layer shapes; the contract's details one by one (x-major
points, (dx, dy) order, offset_scale on grid and offset, remove_center, DCNv4's packing and padding, masks
used as given); errors in the contract's words; the torch.library ops (fake kernels, torch.export,
gradients through the reference).
"""
from __future__ import annotations

import pytest
import torch

from helpers.dcn_grid_sample import dcnv3_grid_sample, dcnv4_grid_sample
from helpers.dcn_sweep import CASES, by_name, internimage_case, make_case, softmaxed
from dcn_base.errors import ContractError
from exporter.ops.aggregation import point_grid
from exporter.ops.dcnv3.reference import dcnv3
from exporter.ops.dcnv3.spec import SPEC as DCNV3
from exporter.ops.dcnv4.spec import SPEC as DCNV4, packed_channels
from exporter.ops.dcnv4.reference import dcnv4
from dcn_base.tolerance import tolerance
from exporter import ops

ops.register_torch_ops()  # torch.ops.dcn.*

IDS = [c.name for c in CASES]


def _close(got, want, dtype):
    atol, rtol = tolerance(dtype)
    torch.testing.assert_close(got.double(), want.double(), atol=atol, rtol=rtol)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_reference_equals_grid_sample_float64(case):
    y = dcnv3(case.x, case.offset, case.mask, **case.attrs())
    y4 = dcnv4(case.x, case.offset_mask, **case.attrs())
    assert y.shape == y4.shape == (case.N, *case.out_hw, case.C)
    if case.N == 0:
        return
    _close(y, dcnv3_grid_sample(case.x, case.offset, case.mask, **case.grid_kwargs()), torch.float64)
    _close(y4, dcnv4_grid_sample(case.x, case.offset_mask, **case.grid_kwargs()), torch.float64)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["float32", "float16"])
@pytest.mark.parametrize("case", [c for c in CASES if c.N], ids=[c.name for c in CASES if c.N])
def test_reference_in_lower_precision(case, dtype):
    """float32 / float16 inputs: sampled and summed in float32, stored in the input's type."""
    x, off, m = (t.to(dtype) for t in (case.x, case.offset, case.mask))
    y = dcnv3(x, off, m, **case.attrs())
    assert y.dtype == dtype
    _close(y, dcnv3_grid_sample(x.double(), off.double(), m.double(), **case.grid_kwargs()), dtype)


@pytest.mark.parametrize("stage,size,batch", [(1, 224, 1), (2, 512, 1), (4, 224, 2)])
def test_internimage_t_layers(stage, size, batch):
    c = internimage_case(stage, size, batch, dtype=torch.float64)
    mask = softmaxed(c.mask, c.group)
    _close(dcnv3(c.x, c.offset, mask, **c.attrs()), dcnv3_grid_sample(c.x, c.offset, mask, **c.grid_kwargs()),
           torch.float64)


def test_points_run_x_major_and_remove_center_skips_the_middle():
    gx, gy = point_grid((3, 5), (1, 2), 0, torch.float64, "cpu")
    # i over the width (5, dilation 2: -4..4) outer, j over the height (3: -1..1) inner
    assert gx.tolist() == [-4.0] * 3 + [-2.0] * 3 + [0.0] * 3 + [2.0] * 3 + [4.0] * 3
    assert gy.tolist() == [-1.0, 0.0, 1.0] * 5
    gx, gy = point_grid((3, 3), (1, 1), 1, torch.float64, "cpu")
    assert list(zip(gx.tolist(), gy.tolist())) == [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]


def test_single_point_reads_where_the_contract_says():
    """One channel, X[y, x] = 10x + y (bilinear is exact on it): each point's (dx, dy), offset_scale, stride,
    dilation and asymmetric pads land where the contract's formula says."""
    H, W = 6, 8
    x = (torch.arange(W).view(1, W) * 10 + torch.arange(H).view(H, 1)).double().view(1, H, W, 1)
    attrs = dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 2, 1, 2], dilations=[2, 1], group=1,
                 group_channels=1, offset_scale=0.5)
    ho, wo = 1, 3  # output 2x5
    for p in range(9):
        i, j = divmod(p, 3)  # x-major: i over the kernel's width (outer), j over its height
        off = torch.zeros(1, 2, 5, 18, dtype=torch.float64)
        off[0, ho, wo, 2 * p:2 * p + 2] = torch.tensor([0.6, -0.2], dtype=torch.float64)  # (dx, dy)
        mask = torch.zeros(1, 2, 5, 9, dtype=torch.float64)
        mask[0, ho, wo, p] = 1.0
        y = dcnv3(x, off, mask, **attrs)
        cw, ch = 1, 2  # floor(dw*(kw-1)/2), floor(dh*(kh-1)/2)
        px = wo * 2 - 2 + cw + 0.5 * (i * 1 - cw + 0.6)
        py = ho * 2 - 1 + ch + 0.5 * (j * 2 - ch - 0.2)
        assert float(y[0, ho, wo, 0]) == pytest.approx(px * 10 + py, abs=1e-12), p
        assert float(y.abs().sum()) == pytest.approx(abs(px * 10 + py), abs=1e-12)


def test_masks_are_used_as_given_and_outside_samples_add_nothing():
    c = by_name("far-off-map")
    m = c.mask.clone()
    m[..., 0] = float("nan")  # point 0 of group 0
    y = dcnv3(c.x, c.offset, m, **c.attrs())
    # NaN only where point 0 of group 0 lands on the map
    ref = dcnv3(c.x, c.offset, torch.where(torch.isnan(m), torch.zeros_like(m), m), **c.attrs())
    bad = torch.isnan(y)
    assert torch.equal(bad[..., c.group_channels:], torch.zeros_like(bad[..., c.group_channels:]))
    assert torch.equal(y[~bad], ref[~bad])
    assert bool((~bad).any())
    # raw DCNv4 masks: scaling the masks scales the output (no softmax inside)
    om = c.offset_mask.clone()
    P = c.P
    for g in range(c.group):
        om[..., g * 3 * P + 2 * P: g * 3 * P + 3 * P] *= 3.0
    _close(dcnv4(c.x, om, **c.attrs()), 3 * dcnv4(c.x, c.offset_mask, **c.attrs()), torch.float64)


def test_dcnv4_padding_channels_are_ignored_and_k_may_be_larger():
    c = by_name("k3")
    want = dcnv4(c.x, c.offset_mask, **c.attrs())
    K = c.offset_mask.shape[-1]
    assert K == packed_channels(c.group, c.kernel, 0) == 112  # 4*9*3 = 108 -> 112
    exact = c.offset_mask[..., : c.group * 3 * c.P]
    torch.testing.assert_close(dcnv4(c.x, exact, **c.attrs()), want, rtol=0, atol=0)
    wider = torch.cat([c.offset_mask, torch.full_like(c.offset_mask[..., :5], float("nan"))], -1)
    torch.testing.assert_close(dcnv4(c.x, wider, **c.attrs()), want, rtol=0, atol=0)


@pytest.mark.parametrize("change,message", [
    (dict(group=3), "DCNv3: X has 16 channels, expected group*group_channels = 3*4 = 12"),
    (dict(kernel_shape=[0, 3]), "DCNv3: attribute kernel_shape = [0, 3], expected values >= 1"),
    (dict(kernel_shape=[33, 3]), "DCNv3: attribute kernel_shape = [33, 3], expected values <= 32 (limit)"),
    (dict(remove_center=1, kernel_shape=[2, 2]),
     "DCNv3: attribute remove_center = 1 with kernel_shape = [2, 2], expected an odd square kernel"),
    (dict(remove_center=1, kernel_shape=[3, 5]),
     "DCNv3: attribute remove_center = 1 with kernel_shape = [3, 5], expected an odd square kernel"),
    (dict(remove_center=2), "DCNv3: attribute remove_center = 2, expected 0 or 1"),
    (dict(offset_scale=float("nan")), "DCNv3: attribute offset_scale = nan, expected a finite FLOAT"),
    (dict(strides=[1, 0]), "DCNv3: attribute strides = [1, 0], expected values >= 1"),
    (dict(pads=[1, 1, 1]), "DCNv3: attribute pads has 3 values, expected 4"),
    (dict(kernel_shape=[3, 3], pads=[0, 0, 0, 0], dilations=[5, 1]),
     "DCNv3: output size is -3x7 for input 7x9 (kernel 3x3, pads [0, 0, 0, 0], strides [1, 1], "
     "dilations [5, 1]), expected >= 1x1"),
])
def test_reference_errors(change, message):
    c = by_name("k3")
    with pytest.raises(ContractError) as e:
        dcnv3(c.x, c.offset, c.mask, **{**c.attrs(), **change})
    assert str(e.value) == message


def test_reference_input_shape_errors():
    c = by_name("k3")
    with pytest.raises(ContractError, match=r"DCNv3: offset has shape \[1, 7, 9, 70\], expected \[1, 7, 9, 72\] "
                                            r"\(N, Ho, Wo, group\*P\*2 with P = 9\)"):
        dcnv3(c.x, c.offset[..., :70], c.mask, **c.attrs())
    with pytest.raises(ContractError, match=r"DCNv4: offset_mask has shape \[1, 7, 9, 100\], expected \[1, 7, 9, K\] "
                                            r"with K >= group\*P\*3 = 108 \(P = 9\)"):
        dcnv4(c.x, c.offset_mask[..., :100], **c.attrs())


# --------------------------------------------------------------------------- torch.library ops
def _args(c):
    a = c.attrs()
    return [a["kernel_shape"], a["strides"], a["pads"], a["dilations"], a["group"], a["group_channels"],
            a["offset_scale"], a["remove_center"]]


@pytest.mark.parametrize("name", ["k3x5-asym-os2", "remove-center-k3", "batch0"])
def test_custom_ops_equal_reference_and_fake_shapes(name):
    c = by_name(name)
    y = torch.ops.dcn.dcnv3(c.x, c.offset, c.mask, *_args(c))
    torch.testing.assert_close(y, dcnv3(c.x, c.offset, c.mask, **c.attrs()), rtol=0, atol=0)
    y4 = torch.ops.dcn.dcnv4(c.x, c.offset_mask, *_args(c))
    torch.testing.assert_close(y4, dcnv4(c.x, c.offset_mask, **c.attrs()), rtol=0, atol=0)
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode() as mode:
        fx, fo, fm, fom = (mode.from_tensor(t) for t in (c.x, c.offset, c.mask, c.offset_mask))
        assert torch.ops.dcn.dcnv3(fx, fo, fm, *_args(c)).shape == y.shape
        assert torch.ops.dcn.dcnv4(fx, fom, *_args(c)).shape == y.shape


def test_custom_ops_gradients():
    c = make_case(("grad", 1, 4, 5, 2, 2, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 0.7, 0, 0.8))
    # no sample on an integer position (bilinear has a kink there, finite differences would straddle it)
    c.offset = c.offset + 0.137
    c.offset_mask[..., :2 * c.P] += 0.137
    c.offset_mask[..., 3 * c.P:5 * c.P] += 0.137
    x, off, m = (t.clone().requires_grad_(True) for t in (c.x, c.offset, c.mask))
    assert torch.autograd.gradcheck(lambda a, b, d: torch.ops.dcn.dcnv3(a, b, d, *_args(c)), (x, off, m),
                                     eps=1e-6, atol=1e-5)
    om = c.offset_mask[..., : c.group * 3 * c.P].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: torch.ops.dcn.dcnv4(a, b, *_args(c)), (x, om), eps=1e-6, atol=1e-5)


def test_torch_export_keeps_one_call_with_dynamic_batch_and_size():
    c = by_name("k5-os0.5")  # batch 2, kernel 5, pads 2: Ho, Wo = H, W

    class M(torch.nn.Module):
        def forward(self, x, off, m):
            return torch.ops.dcn.dcnv3(x, off, m, *_args(c))

    b, h, w = torch.export.Dim("b", min=1), torch.export.Dim("h", min=2), torch.export.Dim("w", min=2)
    ep = torch.export.export(M(), (c.x.float(), c.offset.float(), c.mask.float()),
                             dynamic_shapes=({0: b, 1: h, 2: w}, {0: b, 1: h, 2: w}, {0: b, 1: h, 2: w}))
    calls = [n for n in ep.graph.nodes if n.op == "call_function" and "dcnv3" in str(n.target)]
    assert len(calls) == 1
    shape = calls[0].meta["val"].shape
    assert all(not isinstance(s, int) for s in shape[:3]) and shape[3] == 16  # N, Ho, Wo symbolic


def test_specs_are_registered_in_the_contract():
    from exporter import contract

    assert contract.OPS["DCNv3"] is DCNV3 and contract.OPS["DCNv4"] is DCNV4
    assert [a.name for a in DCNV3.attrs] == ["kernel_shape", "strides", "pads", "dilations", "group",
                                             "group_channels", "offset_scale", "remove_center"]
    assert DCNV3.input_names == ("X", "offset", "mask") and DCNV4.input_names == ("X", "offset_mask")
    assert contract.LIMITS["DCNv4"]["kernel_shape"] == 32
