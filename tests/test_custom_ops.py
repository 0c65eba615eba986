"""torch.ops.dcn.* custom ops and the modules: same numbers as the reference, fake kernels,
autograd, torch.export, training, repr."""
from __future__ import annotations

import pytest
import torch

from exporter.contract import DEFORM_CONV2D, DEFORM_PSROI_POOL
from exporter.ops import (
    DeformConv2d,
    DeformConv2dPack,
    DeformPSROIPool,
    DeformPSROIPoolPack,
    ModulatedDeformConv2d,
    ModulatedDeformConv2dPack,
    deform_conv2d,
    deform_psroi_pool,
)
from dcn_base.errors import ContractError
from helpers.sweep import CONV_GRAD_SPEC, CONV_SPECS, POOL_GRAD_SPEC, POOL_SPECS, make_conv_case, make_pool_case, pool_kwargs


def op_conv(c, **over):
    args = dict(x=c.x, weight=c.weight, offset=c.offset, bias=c.bias, mask=c.mask)
    args.update(over)
    return torch.ops.dcn.deform_conv2d(args["x"], args["weight"], args["offset"], args["bias"], args["mask"],
                                       list(c.strides), list(c.pads), list(c.dilations), c.group, c.offset_group)


@pytest.mark.parametrize("spec", CONV_SPECS, ids=[s[0] for s in CONV_SPECS])
def test_conv_op_equals_reference(spec):
    c = make_conv_case(spec)
    want = deform_conv2d(c.x, c.offset, c.weight, c.bias, stride=c.strides, padding=c.pads,
                         dilation=c.dilations, mask=c.mask)
    torch.testing.assert_close(op_conv(c), want, rtol=1e-12, atol=1e-12)


def test_conv_op_float32():
    c = make_conv_case(CONV_SPECS[1])
    got = op_conv(c, x=c.x.float(), weight=c.weight.float(), offset=c.offset.float(), bias=c.bias.float(),
                  mask=c.mask.float())
    want = op_conv(c)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-4)


def test_conv_op_gradients_match_reference():
    c = make_conv_case(CONV_SPECS[1], seed=7, batch=2)
    leaves_a = [t.clone().requires_grad_(True) for t in (c.x, c.weight, c.offset, c.bias, c.mask)]
    leaves_b = [t.clone().requires_grad_(True) for t in (c.x, c.weight, c.offset, c.bias, c.mask)]
    out_a = torch.ops.dcn.deform_conv2d(*leaves_a, list(c.strides), list(c.pads), list(c.dilations), c.group,
                                        c.offset_group)
    out_b = deform_conv2d(leaves_b[0], leaves_b[2], leaves_b[1], leaves_b[3], stride=c.strides, padding=c.pads,
                          dilation=c.dilations, mask=leaves_b[4])
    g = torch.randn_like(out_a)
    out_a.backward(g)
    out_b.backward(g)
    for a, b in zip(leaves_a, leaves_b):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-9, atol=1e-9)


def test_conv_op_rejects_wrong_group_attribute():
    c = make_conv_case(CONV_SPECS[1])
    with pytest.raises(ContractError, match=r"DeformConv2d: group is 3, expected X channels / W.shape\[1\] = 6/3 = 2"):
        torch.ops.dcn.deform_conv2d(c.x, c.weight, c.offset, c.bias, c.mask, list(c.strides), list(c.pads),
                                    list(c.dilations), 3, c.offset_group)


@pytest.mark.parametrize("spec", POOL_SPECS, ids=[s[0] for s in POOL_SPECS])
def test_pool_op_equals_reference(spec):
    c = make_pool_case(spec)
    a = c.attrs
    got = torch.ops.dcn.deform_psroi_pool(c.data, c.rois, c.trans, a["spatial_scale"], a["output_dim"],
                                          a["group_size"], a["pooled_size"], a["part_size"], a["sample_per_part"],
                                          a["trans_std"], a["no_trans"])
    torch.testing.assert_close(got, deform_psroi_pool(c.data, c.rois, c.trans, **pool_kwargs(a)), rtol=0, atol=0)


def test_pool_op_no_trans_ignores_trans():
    c = make_pool_case(POOL_SPECS[1])
    a = c.attrs
    args = (a["spatial_scale"], a["output_dim"], a["group_size"], a["pooled_size"], a["part_size"],
            a["sample_per_part"], a["trans_std"])
    with_flag = torch.ops.dcn.deform_psroi_pool(c.data, c.rois, c.trans, *args, 1)
    without = torch.ops.dcn.deform_psroi_pool(c.data, c.rois, None, *args, 1)
    torch.testing.assert_close(with_flag, without, rtol=0, atol=0)


def test_pool_op_gradcheck():
    c = make_pool_case(POOL_GRAD_SPEC, seed=2)
    a = c.attrs
    d = c.data.clone().requires_grad_(True)
    t = c.trans.clone().requires_grad_(True)

    def f(d, t):
        return torch.ops.dcn.deform_psroi_pool(d, c.rois, t, a["spatial_scale"], a["output_dim"], a["group_size"],
                                               a["pooled_size"], a["part_size"], a["sample_per_part"], a["trans_std"], 0)

    assert torch.autograd.gradcheck(f, (d, t), eps=1e-6, atol=1e-6)


def test_conv_op_gradcheck_through_op():
    c = make_conv_case(CONV_GRAD_SPEC, seed=4)
    leaves = [t.clone().requires_grad_(True) for t in (c.x, c.weight, c.offset, c.mask)]

    def f(x, w, off, m):
        return torch.ops.dcn.deform_conv2d(x, w, off, None, m, list(c.strides), list(c.pads), list(c.dilations),
                                           c.group, c.offset_group)

    assert torch.autograd.gradcheck(f, leaves, eps=1e-6, atol=1e-6)


def test_opcheck_fake_kernels():
    c = make_conv_case(CONV_SPECS[1], batch=1)
    torch.library.opcheck(torch.ops.dcn.deform_conv2d.default,
                          (c.x, c.weight, c.offset, c.bias, c.mask, list(c.strides), list(c.pads),
                           list(c.dilations), c.group, c.offset_group),
                          test_utils=("test_schema", "test_faketensor", "test_autograd_registration"))
    p = make_pool_case(POOL_SPECS[1])
    a = p.attrs
    torch.library.opcheck(torch.ops.dcn.deform_psroi_pool.default,
                          (p.data, p.rois, p.trans, a["spatial_scale"], a["output_dim"], a["group_size"],
                           a["pooled_size"], a["part_size"], a["sample_per_part"], a["trans_std"], 0),
                          test_utils=("test_schema", "test_faketensor", "test_autograd_registration"))


def test_custom_op_signature_follows_contract():
    """Arguments = the contract's inputs in order, then its attributes in order (no kernel_shape: W has it)."""
    conv = torch.ops.dcn.deform_conv2d.default._schema
    names = [a.name for a in conv.arguments]
    assert len(names) == len(DEFORM_CONV2D.inputs) + len(DEFORM_CONV2D.attrs) - 1
    pool = torch.ops.dcn.deform_psroi_pool.default._schema
    assert len(pool.arguments) == len(DEFORM_PSROI_POOL.inputs) + len(DEFORM_PSROI_POOL.attrs)
    assert [a.name for a in pool.arguments][3:] == list(DEFORM_PSROI_POOL.attr_names)
    assert DEFORM_CONV2D.torch_op == "dcn::deform_conv2d" and DEFORM_PSROI_POOL.torch_op == "dcn::deform_psroi_pool"


# ------------------------------------------------------------------------------ modules
def test_modules_forward_and_repr():
    torch.manual_seed(0)
    x = torch.randn(2, 8, 9, 11)
    m1 = DeformConv2d(8, 6, (3, 2), stride=(2, 1), padding=(1, 0, 2, 1), dilation=(1, 2), groups=2, deform_groups=4)
    off = torch.randn(2, m1.num_offset_channels, 5, 10)
    assert m1(x, off).shape == (2, 6, 5, 10)
    r = repr(m1)
    assert "kernel_size=(3, 2)" in r and "padding=(1, 0, 2, 1)" in r and "deform_groups=4" in r and "groups=2" in r
    m2 = ModulatedDeformConv2d(8, 6, 3, padding=1)
    off2 = torch.randn(2, 18, 9, 11)
    assert m2(x, off2, torch.rand(2, 9, 9, 11)).shape == (2, 6, 9, 11)
    p = DeformPSROIPool(0.5, 3, 2, 4, sample_per_part=2, trans_std=0.1)
    assert "output_dim=3" in repr(p) and "group_size=2" in repr(p) and "trans_std=0.1" in repr(p)


@pytest.mark.parametrize("cls", [DeformConv2dPack, ModulatedDeformConv2dPack])
def test_packs_zero_init_equal_conv2d(cls):
    torch.manual_seed(0)
    m = cls(6, 4, 3, stride=(1, 2), padding=(1, 2, 0, 1), groups=2, deform_groups=3).double()
    x = torch.randn(2, 6, 8, 9, dtype=torch.float64)
    want = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (2, 1, 1, 0)), m.weight, m.bias, (1, 2), groups=2)
    got = m(x)
    if cls is ModulatedDeformConv2dPack:
        want = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (2, 1, 1, 0)), m.weight, None, (1, 2),
                                          groups=2) * 0.5 + m.bias.view(1, -1, 1, 1)  # sigmoid(0) = 0.5
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_modulated_pack_mmcv_layout():
    torch.manual_seed(1)
    m = ModulatedDeformConv2dPack(4, 4, 3, padding=1, deform_groups=2).double()
    torch.nn.init.normal_(m.conv_offset.weight, std=0.1)
    x = torch.randn(1, 4, 6, 6, dtype=torch.float64)
    branch = torch.nn.functional.conv2d(x, m.conv_offset.weight, m.conv_offset.bias, padding=1)
    o1, o2, mk = branch.chunk(3, dim=1)
    want = deform_conv2d(x, torch.cat([o1, o2], 1), m.weight, m.bias, padding=1, mask=torch.sigmoid(mk))
    torch.testing.assert_close(m(x), want, rtol=1e-10, atol=1e-10)


def test_deformable_models_train():
    torch.manual_seed(0)
    model = torch.nn.Sequential(ModulatedDeformConv2dPack(3, 8, 3, padding=1), torch.nn.ReLU(),
                                DeformConv2dPack(8, 4, 3, padding=1, stride=2))
    torch.nn.init.normal_(model[0].conv_offset.weight, std=0.01)
    x = torch.randn(4, 3, 12, 12)
    target = torch.randn(4, 4, 6, 6)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert model[2].conv_offset.weight.grad.abs().sum() > 0  # offsets learn


@pytest.mark.parametrize("group_size,ncls", [(1, 1), (3, 4)])
def test_pool_pack_learns_offsets(group_size, ncls):
    torch.manual_seed(0)
    pack = DeformPSROIPoolPack(0.5, 4, group_size, 3, sample_per_part=2, num_offset_classes=ncls,
                               deform_fc_channels=16)
    data = torch.randn(1, 4 * group_size ** 2, 10, 10, requires_grad=True)
    rois = torch.tensor([[0, 1.0, 2.0, 15.0, 14.0], [0, 4.0, 0.0, 9.0, 19.0]])
    out = pack(data, rois)
    assert out.shape == (2, 4, 3, 3)
    # zero-initialised offset branch: equals pooling without offsets
    torch.testing.assert_close(out, pack.pool(data, rois, None), rtol=0, atol=0)
    out.square().sum().backward()
    last = pack.offset_fc[-1] if group_size == 1 else pack.offset_conv
    assert last.weight.grad.abs().sum() > 0
    assert "num_offset_classes" in repr(pack)


def test_torch_export_keeps_custom_ops():
    m = torch.nn.Sequential(ModulatedDeformConv2dPack(3, 4, 3, padding=(1, 0, 1, 2), stride=(2, 1)))
    ep = torch.export.export(m, (torch.randn(2, 3, 9, 10),),
                             dynamic_shapes=({0: torch.export.Dim("batch", max=64)},))
    targets = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert "dcn.deform_conv2d.default" in targets
    out = ep.module()(torch.randn(5, 3, 9, 10))
    assert out.shape == (5, 4, 5, 10)
