"""Gradients at the border (issue 22): ``dcn::deform_conv2d``'s offset and mask gradients follow the contract
(a sample with h <= -1, h >= H, w <= -1 or w >= W reads 0, so it has no offset / mask gradient) also for
samples lying exactly on h = -1 / w = -1 / H / W, whichever forward kernel runs (torchvision's, whose
backward takes the derivative from the inner neighbour at exactly -1, or the reference).

Held to two anchors:
* the float64 reference's own autograd (exporter.ops.deform_conv2d, called directly), on generated
  configurations whose samples lie on the border: zero offsets with padding 1, integer offsets that put
  samples on -1 / 0 / H - 1 / H (and W alike), kernels 2x2 / 3x2 / 3x3, groups and offset groups 2,
  asymmetric padding, DCNv1 and v2;
* mmcv's fixed expected gradients of ``ModulatedDeformConv2dPack`` (1 -> 1 channel, kernel 2x2, padding 1,
  zero-initialised ``conv_offset``, weight 1, input rows [1, 2, 3]), the values of open-mmlab/mmcv
  ``tests/test_ops/test_modulated_deform_conv.py`` (``output_t``, ``input_grad``, ``dcn_w_grad``,
  ``dcn_offset_w_grad``, ``dcn_offset_b_grad``), and mmcv's own CPU op where it is installed.
"""
from __future__ import annotations

import itertools

import pytest
import torch

from exporter.ops import DeformConv2dPack, ModulatedDeformConv2dPack, deform_conv2d, deform_conv2d_op
from exporter.ops.deform_conv2d import custom
from helpers.ci_policy import missing, require_module

# mmcv's expected values (open-mmlab/mmcv, tests/test_ops/test_modulated_deform_conv.py): output, input
# gradient, weight gradient, conv_offset's weight [12, 1, 2, 2] and bias [12] gradients.
MMCV_OUTPUT = [[[[0.5, 1.5, 2.5, 1.5], [1.0, 3.0, 5.0, 3.0], [1.0, 3.0, 5.0, 3.0], [0.5, 1.5, 2.5, 1.5]]]]
MMCV_INPUT_GRAD = [[[[2.0] * 3] * 3]]
MMCV_WEIGHT_GRAD = [[[[9.0, 9.0], [9.0, 9.0]]]]
MMCV_OFFSET_W_GRAD = [[[[-7.0, -4.0], [0.0, 0.0]]], [[[-9.0, 7.5], [-6.0, 5.0]]], [[[-4.0, -7.0], [0.0, 0.0]]],
                      [[[-7.5, -9.0], [-5.0, -6.0]]], [[[-7.0, -4.0], [-7.0, -4.0]]], [[[-6.0, 5.0], [-9.0, 7.5]]],
                      [[[-4.0, -7.0], [-4.0, -7.0]]], [[[-5.0, -6.0], [-7.5, -9.0]]], [[[10.5, 6.0], [7.0, 4.0]]],
                      [[[6.0, 10.5], [4.0, 7.0]]], [[[7.0, 4.0], [10.5, 6.0]]], [[[4.0, 7.0], [6.0, 10.5]]]]
MMCV_OFFSET_B_GRAD = [-3.0, -1.5, -3.0, -1.5, -3.0, -1.5, -3.0, -1.5, 4.5, 4.5, 4.5, 4.5]

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=["torchvision", "reference"])
def kernel(request, monkeypatch):
    """Which forward kernel dcn::deform_conv2d runs (torchvision's where it is importable, else the reference)."""
    if request.param == "torchvision":
        if custom._torchvision_deform() is None:
            missing("torchvision's deform_conv2d is not importable here")
    else:
        monkeypatch.setattr(custom, "_torchvision_deform", lambda: None)
    return request.param


def _mmcv_setup(cls, dtype, device):
    x = torch.tensor([[[[1.0, 2.0, 3.0]] * 3]], dtype=dtype, device=device, requires_grad=True)
    m = cls(1, 1, kernel_size=(2, 2), stride=1, padding=1, deform_groups=1, bias=False)
    m.weight.data.fill_(1.0)
    return x, m.to(device=device, dtype=dtype)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_modulated_pack_equals_mmcvs_expected_gradients(kernel, dtype, device):
    x, m = _mmcv_setup(ModulatedDeformConv2dPack, dtype, device)
    y = m(x)
    y.sum().backward()
    exact = dict(atol=1e-6, rtol=0)  # every value is a small multiple of 0.5: exact in float32
    torch.testing.assert_close(y.detach().cpu(), torch.tensor(MMCV_OUTPUT, dtype=dtype), **exact)
    torch.testing.assert_close(x.grad.cpu(), torch.tensor(MMCV_INPUT_GRAD, dtype=dtype), **exact)
    torch.testing.assert_close(m.weight.grad.cpu(), torch.tensor(MMCV_WEIGHT_GRAD, dtype=dtype), **exact)
    w_grad, b_grad = m.conv_offset.weight.grad.cpu(), m.conv_offset.bias.grad.cpu()
    assert w_grad[0, 0, 1, 0] == 0 and b_grad[0] == -3  # the samples on h = -1 (issue 22)
    torch.testing.assert_close(w_grad, torch.tensor(MMCV_OFFSET_W_GRAD, dtype=dtype), **exact)
    torch.testing.assert_close(b_grad, torch.tensor(MMCV_OFFSET_B_GRAD, dtype=dtype), **exact)


def test_modulated_pack_equals_mmcvs_own_op():
    """mmcv's CPU op itself (the wheel in the venv), same module, same weights, gradients of every parameter."""
    mmcv_ops = require_module("mmcv.ops", reason="mmcv with its C++ ops is not installed")
    x, theirs = _mmcv_setup(mmcv_ops.ModulatedDeformConv2dPack, torch.float64, "cpu")
    x2, ours = _mmcv_setup(ModulatedDeformConv2dPack, torch.float64, "cpu")
    ours.load_state_dict(theirs.state_dict())
    theirs(x).sum().backward()
    ours(x2).sum().backward()
    torch.testing.assert_close(x2.grad, x.grad, atol=1e-12, rtol=0)
    for (name, a), (_, b) in zip(ours.named_parameters(), theirs.named_parameters()):
        torch.testing.assert_close(a.grad, b.grad, atol=1e-12, rtol=0, msg=name)


# --------------------------------------------------------------------------- against the reference's autograd
def _border_cases():
    """(N, C, H, W, M, kH, kW, stride, pads, dilation, groups, offset groups, offsets, modulated)."""
    geometries = [
        (1, 1, 3, 3, 1, 2, 2, (1, 1), (1, 1, 1, 1), (1, 1), 1, 1),
        (2, 4, 5, 4, 6, 3, 2, (1, 2), (1, 0, 2, 1), (1, 1), 2, 2),
        (1, 2, 4, 6, 2, 3, 3, (2, 1), (1, 1, 1, 1), (2, 1), 1, 2),
    ]
    offsets = ["zero", "integer", "mixed"]
    for geo, off, modulated in itertools.product(geometries, offsets, (False, True)):
        yield pytest.param(*geo, off, modulated, id=f"{geo[:4]}-k{geo[5]}x{geo[6]}-{off}-{'v2' if modulated else 'v1'}")


def _offsets(kind, shape, gen):
    if kind == "zero":
        return torch.zeros(shape, dtype=torch.float64)
    ints = torch.randint(-3, 4, shape, generator=gen).double()  # samples on -1 / 0 / H-1 / H and beyond
    if kind == "integer":
        return ints
    frac = torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1
    return torch.where(torch.rand(shape, generator=gen) < 0.5, ints, frac)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("N, C, H, W, M, kH, kW, stride, pads, dil, groups, og, offsets, modulated",
                         list(_border_cases()))
def test_gradients_equal_the_references_autograd_on_the_border(kernel, device, N, C, H, W, M, kH, kW, stride,
                                                               pads, dil, groups, og, offsets, modulated):
    from exporter.contract import conv_out_size

    gen = torch.Generator().manual_seed(N * 100 + H * 10 + kH)
    oh = conv_out_size(H, pads[0], pads[2], dil[0], kH, stride[0])
    ow = conv_out_size(W, pads[1], pads[3], dil[1], kW, stride[1])
    x = torch.randn(N, C, H, W, generator=gen, dtype=torch.float64)
    weight = torch.randn(M, C // groups, kH, kW, generator=gen, dtype=torch.float64)
    bias = torch.randn(M, generator=gen, dtype=torch.float64)
    offset = _offsets(offsets, (N, 2 * og * kH * kW, oh, ow), gen)
    mask = torch.rand(N, og * kH * kW, oh, ow, generator=gen, dtype=torch.float64) if modulated else None
    grad_y = torch.randn(N, M, oh, ow, generator=gen, dtype=torch.float64)
    tensors = [x, weight, offset, bias] + ([mask] if modulated else [])

    def grads(fn, dev):
        leaves = [t.to(dev).requires_grad_(True) for t in tensors]
        y = fn(*leaves)
        return [g.cpu() for g in torch.autograd.grad(y, leaves, grad_y.to(dev))]

    want = grads(lambda x_, w_, o_, b_, *m_: deform_conv2d(x_, o_, w_, b_, stride=stride, padding=pads,
                                                           dilation=dil, mask=m_[0] if m_ else None), "cpu")
    got = grads(lambda x_, w_, o_, b_, *m_: deform_conv2d_op(x_, w_, o_, b_, m_[0] if m_ else None, stride, pads,
                                                             dil, groups, og), device)
    for name, g, w in zip(("X", "W", "offset", "B", "mask"), got, want):
        torch.testing.assert_close(g, w, atol=1e-10, rtol=1e-10, msg=lambda m: f"{name}: {m}")


def test_dcnv1_pack_zero_offsets_padding_1_equals_the_reference(kernel):
    """DCNv1's pack at its first training step (conv_offset zero-initialised): conv_offset's gradients are the
    reference's (samples on h = -1 / w = -1 count nothing)."""
    import copy

    torch.manual_seed(0)
    m = DeformConv2dPack(3, 4, 3, padding=1).double()
    twin = copy.deepcopy(m)
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64)
    m(x).square().sum().backward()
    offset = twin._branch(x)  # the pack's own offset branch, then the float64 reference instead of the op
    assert not offset.any()  # zero-initialised
    deform_conv2d(x, offset, twin.weight, twin.bias, padding=1).square().sum().backward()
    for name in ("conv_offset.weight", "conv_offset.bias", "weight", "bias"):
        got, want = m.get_parameter(name).grad, twin.get_parameter(name).grad
        torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-10, msg=name)
    assert m.conv_offset.bias.grad.abs().sum() > 0
