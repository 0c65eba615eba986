"""The PyTorch reference (exporter.ops) against naive loops from the contract, torchvision,
the original authors' golden outputs, gradcheck and hand-computed cases."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from helpers import naive
from dcn_base.errors import ContractError
from exporter.ops import deform_conv2d, deform_psroi_pool
from helpers.sweep import CONV_GRAD_SPEC, CONV_SPECS, POOL_GRAD_SPEC, POOL_SPECS, make_conv_case, make_pool_case, pool_kwargs
from helpers.ci_policy import missing

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def ref_conv(case, x=None, offset=None, weight=None, mask=None, bias=None):
    return deform_conv2d(
        case.x if x is None else x, case.offset if offset is None else offset,
        case.weight if weight is None else weight, case.bias if bias is None else bias,
        stride=case.strides, padding=case.pads, dilation=case.dilations,
        mask=case.mask if mask is None else mask,
    )


@pytest.mark.parametrize("spec", CONV_SPECS, ids=[s[0] for s in CONV_SPECS])
def test_conv_vs_naive(spec):
    c = make_conv_case(spec)
    got = ref_conv(c)
    want = naive.deform_conv2d(c.x, c.offset, c.weight, c.bias, c.mask, c.strides, c.pads, c.dilations,
                               c.group, c.offset_group)
    assert got.shape == want.shape
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("spec", CONV_SPECS, ids=[s[0] for s in CONV_SPECS])
@pytest.mark.parametrize("batch", [None, 33])
def test_conv_vs_torchvision(spec, batch):
    c = make_conv_case(spec, batch=batch)
    top, left, bottom, right = c.pads
    x = torch.nn.functional.pad(c.x, (left, right, top, bottom))
    want = torchvision.ops.deform_conv2d(x, c.offset, c.weight, c.bias, stride=c.strides, padding=0,
                                         dilation=c.dilations, mask=c.mask)
    torch.testing.assert_close(ref_conv(c), want, rtol=1e-12, atol=1e-12)


def test_conv_noncontiguous_inputs():
    c = make_conv_case(CONV_SPECS[1])
    x_nc = c.x.transpose(2, 3).contiguous().transpose(2, 3)
    off_nc = torch.flip(torch.flip(c.offset, [0]), [0])[..., ::1]
    off_nc = c.offset.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
    w_nc = c.weight.permute(1, 0, 2, 3).contiguous().permute(1, 0, 2, 3)
    assert not x_nc.is_contiguous() and not off_nc.is_contiguous() and not w_nc.is_contiguous()
    torch.testing.assert_close(ref_conv(c, x=x_nc, offset=off_nc, weight=w_nc), ref_conv(c), rtol=0, atol=0)


@pytest.mark.parametrize("pads,strides,dil", [((1, 1, 1, 1), (1, 1), (1, 1)), ((0, 2, 1, 0), (2, 1), (1, 2))])
def test_zero_offset_unit_mask_is_conv2d(pads, strides, dil):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 6, 9, 8, generator=g, dtype=torch.float64)
    w = torch.randn(4, 3, 3, 2, generator=g, dtype=torch.float64)
    b = torch.randn(4, generator=g, dtype=torch.float64)
    top, left, bottom, right = pads
    want = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (left, right, top, bottom)), w, b, strides,
                                      0, dil, groups=2)
    off = torch.zeros(2, 2 * 3 * 6, *want.shape[2:], dtype=torch.float64)
    mask = torch.ones(2, 3 * 6, *want.shape[2:], dtype=torch.float64)
    for m in (None, mask):
        got = deform_conv2d(x, off, w, b, stride=strides, padding=pads, dilation=dil, mask=m)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_conv_gradcheck():
    c = make_conv_case(CONV_GRAD_SPEC, seed=3)
    inputs = [t.clone().requires_grad_(True) for t in (c.x, c.offset, c.weight, c.mask, c.bias)]

    def f(x, off, w, m, b):
        return deform_conv2d(x, off, w, b, stride=c.strides, padding=c.pads, dilation=c.dilations, mask=m)

    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-6)


# ------------------------------------------------------------------------------ PS-RoI pooling
def ref_pool(case, data=None, trans=None):
    return deform_psroi_pool(case.data if data is None else data, case.rois,
                             case.trans if trans is None else trans, **pool_kwargs(case.attrs))


@pytest.mark.parametrize("spec", POOL_SPECS, ids=[s[0] for s in POOL_SPECS])
def test_pool_vs_naive(spec):
    c = make_pool_case(spec)
    got = ref_pool(c)
    want = naive.deform_psroi_pool(c.data.numpy(), c.rois.numpy(), None if c.trans is None else c.trans.numpy(),
                                   **c.attrs)
    assert tuple(got.shape) == want.shape
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)


def golden_cases():
    if not (SHARED / "deform_psroi_pool_golden.json").exists():
        missing(f"golden data not found at {SHARED} (the shared/ folder beside the repo)")
    attrs = json.loads((SHARED / "deform_psroi_pool_golden.json").read_text())
    arrays = np.load(SHARED / "deform_psroi_pool_golden.npz")
    for i, a in enumerate(attrs):
        trans = arrays.get(f"case{i}_trans") if not a["no_trans"] else None
        yield i, a, arrays[f"case{i}_data"], arrays[f"case{i}_rois"], trans, arrays[f"case{i}_out"]


def test_pool_vs_golden_mxnet():
    n = 0
    for i, a, data, rois, trans, out in golden_cases():
        got = deform_psroi_pool(torch.from_numpy(data), torch.from_numpy(rois),
                                None if trans is None else torch.from_numpy(trans), **pool_kwargs(a))
        # MXNet keeps trans_std / spatial_scale as float32: ~1e-7 where offsets are used.
        atol = 1e-12 if trans is None else 2e-7
        np.testing.assert_allclose(got.numpy(), out, rtol=0, atol=atol, err_msg=f"golden case {i}")
        n += 1
    assert n == 6


def test_pool_float32_follows_float64():
    c64 = make_pool_case(POOL_SPECS[1])
    got = deform_psroi_pool(c64.data.float(), c64.rois.float(), c64.trans.float(), **pool_kwargs(c64.attrs))
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), ref_pool(c64), rtol=1e-5, atol=1e-5)


def test_pool_gradcheck():
    c = make_pool_case(POOL_GRAD_SPEC, seed=5)
    d = c.data.clone().requires_grad_(True)
    t = c.trans.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda d, t: ref_pool(c, data=d, trans=t), (d, t), eps=1e-6, atol=1e-6)


def test_no_trans_group1_hand_average():
    # One RoI covering exactly pixels [0, 1] x [0, 1] at scale 1: roi = (-0.5, 1.5) both ways, one bin,
    # sample_per_part 2 -> samples at -0.5 and 0.5 -> clamped to 0 and 0.5.
    data = torch.arange(16, dtype=torch.float64).reshape(1, 1, 4, 4)
    rois = torch.tensor([[0, 0, 0, 1, 1]], dtype=torch.float64)
    out = deform_psroi_pool(data, rois, None, spatial_scale=1.0, output_dim=1, group_size=1, pooled_size=1,
                            sample_per_part=2)
    # samples (h, w) in {0, 0.5}^2: values 0, 0.5, 2, 2.5 -> mean 1.25
    assert out.item() == pytest.approx(1.25, abs=1e-15)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_c_round_is_exact_in_the_type(dtype):
    """C's round() of each value, as C computes it (roundf / round: exact), in float32 and float64: no sum
    rounded on the way (float32's 0.49999997 + 0.5 is 1.0; odd integers from 2^23 on are exact)."""
    from exporter.ops.common import round_half_away

    x = torch.tensor([0.49999997, -0.49999997, 0.5, -0.5, 1.5, 2.5, -2.5, 8388609.0, -8388609.0, 16777215.0, 3e9,
                      0.0, math.inf, -math.inf], dtype=dtype)
    want = [float(np.round(v)) if abs(v) % 1 != 0.5 else math.copysign(math.floor(abs(v)) + 1, v) for v in x.tolist()]
    assert round_half_away(x).tolist() == want
    assert math.isnan(round_half_away(torch.tensor([math.nan], dtype=dtype)).item())


def test_c_round_halves_away_from_zero():
    # x1 = 2.5 -> 3 (not 2 as round-half-to-even would give); -0.5 -> -1.
    data = torch.arange(64, dtype=torch.float64).reshape(1, 1, 8, 8)
    a = deform_psroi_pool(data, torch.tensor([[0, 2.5, 0, 5, 5.]], dtype=torch.float64), None,
                          spatial_scale=1.0, output_dim=1, group_size=1, pooled_size=2)
    b = deform_psroi_pool(data, torch.tensor([[0, 3, 0, 5, 5.]], dtype=torch.float64), None,
                          spatial_scale=1.0, output_dim=1, group_size=1, pooled_size=2)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


# ------------------------------------------------------------------------------ errors
def _conv_args(**over):
    c = make_conv_case(CONV_SPECS[0])
    args = dict(input=c.x, offset=c.offset, weight=c.weight, bias=c.bias, stride=1, padding=1, dilation=1, mask=None)
    args.update(over)
    return args


@pytest.mark.parametrize(
    "over,pattern",
    [
        (dict(offset=torch.zeros(1, 17, 6, 7, dtype=torch.float64)),
         r"DeformConv2d: offset has 17 channels, expected a non-zero multiple of 2\*kH\*kW = 18"),
        (dict(mask=torch.zeros(1, 8, 6, 7, dtype=torch.float64)),
         r"DeformConv2d: mask has shape \[1, 8, 6, 7\], expected \[1, 9, 6, 7\] \(offset_group\*kH\*kW = 9 channels\)"),
        (dict(weight=torch.zeros(5, 3, 3, 3, dtype=torch.float64)),
         r"DeformConv2d: X has 4 channels, expected a multiple of W.shape\[1\] = C/group = 3"),
        (dict(offset=torch.zeros(1, 18, 5, 7, dtype=torch.float64)),
         r"DeformConv2d: offset has shape \[1, 18, 5, 7\], expected \[1, 18, 6, 7\]"),
        (dict(bias=torch.zeros(4, dtype=torch.float64)), r"DeformConv2d: B has shape \[4\], expected \[5\]"),
        (dict(padding=(1, 2, 3)), r"DeformConv2d: padding has 3 values \[1, 2, 3\], expected 1, 2 or 4"),
        (dict(stride=0), r"DeformConv2d: strides is \[0, 0\], expected every value >= 1"),
    ],
)
def test_conv_errors(over, pattern):
    with pytest.raises(ContractError, match=pattern):
        deform_conv2d(**_conv_args(**over))


def test_conv_offset_group_divisibility_error():
    x = torch.zeros(1, 4, 5, 5, dtype=torch.float64)
    w = torch.zeros(2, 4, 1, 1, dtype=torch.float64)
    with pytest.raises(ContractError, match=r"X has 4 channels, expected a multiple of offset_group = 3"):
        deform_conv2d(x, torch.zeros(1, 6, 5, 5, dtype=torch.float64), w)


@pytest.mark.parametrize(
    "over,pattern",
    [
        (dict(data=torch.zeros(1, 5, 4, 4)), r"DeformPSROIPool: data has 5 channels, expected output_dim\*group_size\^2 = 8"),
        (dict(rois=torch.zeros(3, 4)), r"DeformPSROIPool: rois has shape \[3, 4\], expected \[R, 5\]"),
        (dict(trans=torch.zeros(1, 3, 2, 2)), r"DeformPSROIPool: trans has shape \[1, 3, 2, 2\], expected \[R, 2\*num_classes"),
        (dict(trans=torch.zeros(1, 2, 3, 3)), r"DeformPSROIPool: trans has shape \[1, 2, 3, 3\], expected \[1, 2, 2, 2\] \(part_size = 2\)"),
        (dict(trans=torch.zeros(1, 6, 2, 2)), r"trans has 6 channels = 2\*3 classes, expected num_classes to divide output_dim = 2"),
        (dict(rois=torch.tensor([[1.0, 0, 0, 2, 2]])), r"DeformPSROIPool: rois\[0, 0\] = 1.0, expected a batch index in \[0, N\) = \[0, 1\)"),
        # the C++ validation's rules (deform_psroi_pool_math.h), not only theirs
        (dict(spatial_scale=0.0), r"DeformPSROIPool: spatial_scale is 0.0, expected a finite value > 0"),
        (dict(spatial_scale=-0.0625), r"spatial_scale is -0.0625, expected a finite value > 0"),
        (dict(spatial_scale=math.nan), r"spatial_scale is nan, expected a finite value > 0"),
        (dict(trans_std=math.inf), r"DeformPSROIPool: trans_std is inf, expected a finite value"),
    ],
)
def test_pool_errors(over, pattern):
    args = dict(data=torch.zeros(1, 8, 4, 4), rois=torch.tensor([[0.0, 0, 0, 2, 2]]), trans=None, spatial_scale=1.0,
                trans_std=0.0)
    args.update(over)
    with pytest.raises(ContractError, match=pattern):
        deform_psroi_pool(args["data"], args["rois"], args["trans"], spatial_scale=args["spatial_scale"], output_dim=2,
                          group_size=2, pooled_size=2, trans_std=args["trans_std"])
