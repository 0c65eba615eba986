"""InternImage's DCNv3 / DCNv3_pytorch and the DCNv4 package's DCNv4 -> ours (exporter/ops/dcnv3/swap.py, exporter/ops/dcnv4/swap.py).

The real packages are CUDA-only and not installed, so the tests define stand-ins with those class names,
constructor arguments and parameter layouts (dw_conv = Sequential(depth-wise conv, norm, activation),
offset / mask / input_proj / output_proj, center_feature_scale_proj_*, DCNv4's offset_mask_dw /
offset_mask / value_proj / output_proj), computing with the grid_sample formulation
(tests/helpers/dcn_grid_sample.py). dcn-export must swap them by class name wherever they are defined,
keep every weight, compute the same function and write one dcn node per module, named by its path.
"""
from __future__ import annotations

import math

import onnx
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from helpers.dcn_grid_sample import dcnv3_grid_sample, dcnv4_grid_sample
from dcn_base.errors import DcnError
from exporter.export import export
from exporter.ops import DCNv3 as OurDCNv3, DCNv4 as OurDCNv4
from exporter.swap import swap_modules


class _Last(nn.Module):
    def forward(self, x):
        return x.permute(0, 2, 3, 1)


def _internimage_class(name: str):
    def __init__(self, channels=64, kernel_size=3, dw_kernel_size=None, stride=1, pad=1, dilation=1, group=4,
                 offset_scale=1.0, act_layer="GELU", norm_layer="LN", center_feature_scale=False, remove_center=False):
        nn.Module.__init__(self)
        dw = dw_kernel_size or kernel_size
        self.channels, self.kernel_size, self.dw_kernel_size = channels, kernel_size, dw
        self.stride, self.pad, self.dilation, self.group = stride, pad, dilation, group
        self.group_channels, self.offset_scale = channels // group, offset_scale
        self.center_feature_scale, self.remove_center = center_feature_scale, int(remove_center)
        norm = (nn.Sequential(_Last(), nn.LayerNorm(channels, eps=1e-6)) if norm_layer == "LN"
                else nn.Sequential(nn.BatchNorm2d(channels), _Last()))
        act = {"GELU": nn.GELU(), "ReLU": nn.ReLU(inplace=True), "SiLU": nn.SiLU(inplace=True)}[act_layer]
        self.dw_conv = nn.Sequential(nn.Conv2d(channels, channels, dw, 1, (dw - 1) // 2, groups=channels), norm, act)
        P = kernel_size * kernel_size - int(remove_center)
        self.offset, self.mask = nn.Linear(channels, group * P * 2), nn.Linear(channels, group * P)
        self.input_proj, self.output_proj = nn.Linear(channels, channels), nn.Linear(channels, channels)
        if center_feature_scale:
            self.center_feature_scale_proj_weight = nn.Parameter(torch.zeros(group, channels))
            self.center_feature_scale_proj_bias = nn.Parameter(torch.zeros(group))

    def forward(self, input):
        N, H, W, _ = input.shape
        x = self.input_proj(input)
        x_proj = x
        x1 = self.dw_conv(input.permute(0, 3, 1, 2))
        offset = self.offset(x1)
        mask = F.softmax(self.mask(x1).reshape(N, H, W, self.group, -1), -1).reshape(N, H, W, -1)
        k, s, p, d = self.kernel_size, self.stride, self.pad, self.dilation
        x = dcnv3_grid_sample(x, offset, mask, (k, k), (s, s), (p, p, p, p), (d, d), self.group, self.offset_scale,
                              self.remove_center)
        if self.center_feature_scale:
            sc = F.linear(x1, self.center_feature_scale_proj_weight, self.center_feature_scale_proj_bias).sigmoid()
            sc = sc[..., None].repeat(1, 1, 1, 1, self.channels // self.group).flatten(-2)
            x = x * (1 - sc) + x_proj * sc
        return self.output_proj(x)

    return type(name, (nn.Module,), {"__init__": __init__, "forward": forward})


DCNv3 = _internimage_class("DCNv3")  # InternImage's CUDA-op module (ops_dcnv3.modules.dcnv3.DCNv3)
DCNv3_pytorch = _internimage_class("DCNv3_pytorch")  # its grid_sample one


class DCNv4(nn.Module):
    """The DCNv4 package's module layout."""

    def __init__(self, channels=64, kernel_size=3, stride=1, pad=1, dilation=1, group=4, offset_scale=1.0,
                 dw_kernel_size=None, center_feature_scale=False, remove_center=False, output_bias=True,
                 without_pointwise=False, **kwargs):
        super().__init__()
        self.channels, self.kernel_size, self.stride = channels, kernel_size, stride
        self.pad, self.dilation = pad, dilation
        self.group, self.group_channels, self.offset_scale = group, channels // group, offset_scale
        self.dw_kernel_size, self.center_feature_scale = dw_kernel_size, center_feature_scale
        self.remove_center, self.without_pointwise = int(remove_center), without_pointwise
        self.K = group * (kernel_size * kernel_size - self.remove_center)
        if dw_kernel_size is not None:
            self.offset_mask_dw = nn.Conv2d(channels, channels, dw_kernel_size, 1, (dw_kernel_size - 1) // 2,
                                            groups=channels)
        self.offset_mask = nn.Linear(channels, int(math.ceil(self.K * 3 / 8) * 8))
        if not without_pointwise:
            self.value_proj = nn.Linear(channels, channels)
            self.output_proj = nn.Linear(channels, channels, bias=output_bias)
        if center_feature_scale:
            self.center_feature_scale_proj_weight = nn.Parameter(torch.zeros(group, channels))
            self.center_feature_scale_proj_bias = nn.Parameter(torch.zeros(group))

    def forward(self, input, shape=None):
        N, L, C = input.shape
        H, W = shape if shape is not None else (int(L ** 0.5), int(L ** 0.5))
        x = input if self.without_pointwise else self.value_proj(input)
        x = x.reshape(N, H, W, -1)
        om_in = input
        if self.dw_kernel_size is not None:
            om_in = self.offset_mask_dw(input.view(N, H, W, C).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        om = self.offset_mask(om_in).reshape(N, H, W, -1)
        x_proj = x
        k, s, p, d = self.kernel_size, self.stride, self.pad, self.dilation
        x = dcnv4_grid_sample(x, om, (k, k), (s, s), (p, p, p, p), (d, d), self.group, self.offset_scale,
                              self.remove_center)
        if self.center_feature_scale:
            sc = F.linear(x, self.center_feature_scale_proj_weight, self.center_feature_scale_proj_bias).sigmoid()
            sc = sc[..., None].repeat(1, 1, 1, 1, self.channels // self.group).flatten(-2)
            x = x * (1 - sc) + x_proj * sc
        x = x.view(N, L, -1)
        return x if self.without_pointwise else self.output_proj(x)


class Backbone(nn.Module):
    """Two blocks as InternImage / FlashInternImage nest them: a DCNv3-family block, then a DCNv4 block."""

    def __init__(self, v3_cls, v3_kwargs, v4_kwargs, C=16):
        super().__init__()
        self.levels = nn.ModuleList([nn.ModuleDict({"dcn": v3_cls(channels=C, **v3_kwargs)}),
                                     nn.ModuleDict({"dcn": DCNv4(channels=C, **v4_kwargs)})])
        g = torch.Generator().manual_seed(3)
        for p in self.parameters():
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)

    def forward(self, x):
        x = x + self.levels[0]["dcn"](x)
        N, H, W, C = x.shape
        return x + self.levels[1]["dcn"](x.reshape(N, H * W, C), (H, W)).reshape(N, H, W, C)


VARIANTS = {
    "defaults": (DCNv3, dict(group=2), dict(group=2)),
    "pytorch-bn-relu-cfs": (DCNv3_pytorch, dict(group=4, norm_layer="BN", act_layer="ReLU", center_feature_scale=True,
                                                offset_scale=0.5), dict(group=4, dw_kernel_size=3, output_bias=False)),
    "remove-center-k5-dw": (DCNv3, dict(group=2, kernel_size=5, pad=2, dw_kernel_size=3, remove_center=True,
                                        act_layer="SiLU"),
                            dict(group=2, kernel_size=5, pad=2, remove_center=True, center_feature_scale=True)),
    "dilation-without-pointwise": (DCNv3_pytorch, dict(group=1, dilation=2, pad=2),
                                   dict(group=8, dilation=2, pad=2, without_pointwise=True, offset_scale=2.0)),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_swap_keeps_weights_and_function(variant):
    v3_cls, kw3, kw4 = VARIANTS[variant]
    model = Backbone(v3_cls, kw3, kw4).double().eval()
    x = torch.randn(2, 6, 7, 16, dtype=torch.float64)
    with torch.no_grad():
        want = model(x)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    swapped, swaps = swap_modules(model)
    assert [s.path for s in swaps] == ["levels.0.dcn", "levels.1.dcn"]
    assert type(swapped.levels[0]["dcn"]) is OurDCNv3 and type(swapped.levels[1]["dcn"]) is OurDCNv4
    after = swapped.state_dict()
    assert set(after) == set(before)
    for k, v in before.items():
        assert torch.equal(after[k], v), k
    with torch.no_grad():
        torch.testing.assert_close(swapped(x), want, rtol=1e-9, atol=1e-9)


def test_ours_are_not_swapped_and_a_bad_layout_is_named():
    m = nn.Sequential(OurDCNv3(channels=8, group=2), OurDCNv4(channels=8, group=2))
    _, swaps = swap_modules(m)
    assert swaps == []
    bad = nn.ModuleDict({"blk": DCNv4(channels=16, group=2)})
    bad.blk.offset_mask = nn.Linear(16, 50)
    with pytest.raises(DcnError, match=r"module 'blk' \(DCNv4\): offset_mask has 50 outputs, expected "
                                       r"ceil\(group\*P\*3 / 8\)\*8 = 56"):
        swap_modules(bad)


def test_dcn_export_writes_one_node_per_module(tmp_path):
    model = Backbone(*VARIANTS["pytorch-bn-relu-cfs"]).eval()
    x = torch.randn(1, 6, 7, 16)
    r = export(model, (x,), tmp_path / "m.onnx", dynamic={"x": {0: "batch"}})
    assert r.check is not None and r.check.passed, r.check
    m = onnx.load(tmp_path / "m.onnx")
    nodes = [(n.op_type, n.name) for n in m.graph.node if n.domain == "dcn"]
    assert nodes == [("DCNv3", "levels.0.dcn"), ("DCNv4", "levels.1.dcn")]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in m.graph.node[[n.op_type for n in m.graph.node]
                                                                               .index("DCNv4")].attribute}
    assert attrs["kernel_shape"] == [3, 3] and attrs["group"] == 4 and attrs["group_channels"] == 4
    assert not any(n.op_type == "GridSample" for n in m.graph.node)
