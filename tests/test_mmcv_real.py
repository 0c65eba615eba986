"""The real mmcv (2.2.0 with its C++ CPU ops; scripts/setup.sh installs the wheel from
../shared/wheels/ when it is there): exporter.swap and our ops against mmcv's own modules.

* DeformConv2d(Pack) / ModulatedDeformConv2d(Pack): swapped model equal to mmcv's in float64
  on generated awkward configurations (asymmetric stride / padding / dilation, groups, deform
  groups, an input smaller than the kernel), and built the way mmdetection builds them
  (``mmcv.cnn.build_conv_layer(dict(type='DCN' | 'DCNv2'))``), exported with ``check``.
* DeformRoIPool(Pack) / ModulatedDeformRoIPoolPack: mmcv has no CPU kernel for them, so their
  numerics are held to a loop transcription of mmcv's kernel (tests/helpers/naive.py) and to
  torchvision's roi_align (test_deform_roi_pool.py); here: the swap keeps every parameter, the
  swapped head equals mmcv's module graph evaluated with our op, and it exports with check.

Skips name the missing piece where mmcv is absent (a user's machine without the wheel).
mmdetection's own configs: tests/test_mmdet_real.py.
"""
from __future__ import annotations

import copy
import itertools

import pytest
import torch
from torch import nn

from helpers.ci_policy import require_module

mmcv_ops = require_module(
    "mmcv.ops", reason="mmcv with its C++ ops is not installed (bash scripts/setup.sh installs it from "
                       "../shared/wheels/mmcv-2.2.0-*.whl when that wheel is present)")

from exporter import export, ops  # noqa: E402
from dcn_base.errors import DcnError  # noqa: E402
from exporter.swap import swap_modules  # noqa: E402


def _randomize(model: nn.Module, std: float, seed: int = 0) -> nn.Module:
    """Non-zero offset / mask branches (mmcv zero-initialises them)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            for attr in ("conv_offset",):
                conv = getattr(m, attr, None)
                if isinstance(conv, nn.Conv2d):
                    conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * std / conv.weight[0].numel() ** 0.5)
                    conv.bias.copy_(torch.randn(conv.bias.shape, generator=g) * std)
            for attr in ("offset_fc", "mask_fc"):
                seq = getattr(m, attr, None)
                if isinstance(seq, nn.Sequential):
                    for lin in seq:
                        if isinstance(lin, nn.Linear):
                            lin.weight.copy_(torch.randn(lin.weight.shape, generator=g) * std / lin.in_features ** 0.5)
                            lin.bias.copy_(torch.randn(lin.bias.shape, generator=g) * std * 0.1)
    return model


# (in, out, kernel, stride, padding, dilation, groups, deform_groups, input H, W)
GEOMETRIES = [
    (4, 6, (3, 3), 1, 1, 1, 1, 1, 9, 11),
    (4, 4, (3, 2), (2, 1), (1, 2), (2, 1), 2, 2, 8, 7),
    (6, 3, (2, 3), (1, 2), (0, 1), 1, 3, 3, 5, 9),
    (4, 4, (3, 3), 1, 1, 1, 1, 4, 2, 2),  # input smaller than the kernel, padded
    (4, 4, (5, 5), 2, 3, 1, 1, 2, 3, 4),  # input smaller than the kernel, padded
]
CLASSES = ["DeformConv2dPack", "ModulatedDeformConv2dPack", "DeformConv2d", "ModulatedDeformConv2d"]


def _conv_cases():
    for (i, geo), cls in itertools.product(enumerate(GEOMETRIES), CLASSES):
        yield pytest.param(cls, geo, id=f"{cls}-{i}")


class _External(nn.Module):
    """A plain (not pack) deformable conv fed by its own offset / mask conv, as mmdet's heads do."""

    def __init__(self, conv: nn.Module, modulated: bool):
        super().__init__()
        k = conv.weight.shape[2] * conv.weight.shape[3] * conv.deform_groups
        self.conv = conv
        self.modulated = modulated
        self.off = nn.Conv2d(conv.in_channels, (3 if modulated else 2) * k, conv.weight.shape[2:],
                             stride=conv.stride, padding=conv.padding, dilation=conv.dilation)
        self.k = k

    def forward(self, x):
        o = self.off(x)
        if self.modulated:
            return self.conv(x, o[:, :2 * self.k], torch.sigmoid(o[:, 2 * self.k:]))
        return self.conv(x, o)


def _build(cls_name: str, geo, bias: bool) -> nn.Module:
    cin, cout, k, s, p, d, g, dg, _, _ = geo
    cls = getattr(mmcv_ops, cls_name)
    conv = cls(cin, cout, k, stride=s, padding=p, dilation=d, groups=g, deform_groups=dg, bias=bias)
    if cls_name.endswith("Pack"):
        return conv
    return _External(conv, modulated=cls_name.startswith("Modulated"))


@pytest.mark.parametrize("cls_name, geo", list(_conv_cases()))
def test_swapped_conv_equals_mmcv_float64(cls_name, geo):
    torch.manual_seed(0)
    bias = cls_name.startswith("Modulated")  # mmcv's DCNv1 has no bias
    original = _randomize(_build(cls_name, geo, bias), std=2.0).double().eval()
    swapped, swaps = swap_modules(copy.deepcopy(original))
    assert len(swaps) == 1 and "mmcv.ops" in swaps[0].source and swaps[0].target.startswith("exporter.ops")
    x = torch.randn(2, geo[0], geo[8], geo[9], dtype=torch.float64)
    with torch.no_grad():
        try:
            want = original(x)
        except RuntimeError as e:
            # mmcv's DCNv1 pads an input smaller than the kernel up to the kernel's size (bottom / right)
            # before sampling, so it wants offsets of another size or refuses (its v2 and ours do not)
            assert not cls_name.startswith("Modulated") and (
                "smaller than kernel" in str(e) or "invalid spatial size of offset" in str(e))
            return
        got = swapped(x)
    assert want.dtype == got.dtype == torch.float64
    torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-12)


class _MmdetStage(nn.Module):
    """A bottleneck pair as mmdetection's ResNet builds it with ``dcn=dict(type=..., deform_groups=...)``
    (mmcv.cnn.build_conv_layer -> mmcv.ops packs), small."""

    def __init__(self, dcn_type: str, deform_groups: int):
        super().__init__()
        from mmcv.cnn import build_conv_layer

        cfg = dict(type=dcn_type, deform_groups=deform_groups)  # mmdet pops fallback_on_stride first
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.conv2 = build_conv_layer(cfg, 8, 8, 3, stride=1, padding=1, dilation=1, bias=False)
        self.down = build_conv_layer(cfg, 8, 16, 3, stride=2, padding=1, dilation=1, bias=False)
        self.bn = nn.BatchNorm2d(16)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = torch.relu(self.conv2(x)) + x
        return self.bn(self.down(x))


@pytest.mark.parametrize("dcn_type, deform_groups", [("DCN", 1), ("DCNv2", 4)])
def test_mmdet_style_dcn_backbone_exports_with_check(dcn_type, deform_groups, tmp_path):
    torch.manual_seed(0)
    model = _randomize(_MmdetStage(dcn_type, deform_groups), std=0.5).eval()
    lines = []
    res = export(model, (torch.randn(1, 3, 24, 20),), tmp_path / "m.onnx", input_names=["images"],
                 dynamic={"images": {0: "batch"}}, check=True, log=lines.append)
    assert res.check is not None and res.check.passed
    assert sum("swapped" in s and "mmcv.ops" in s for s in lines) == 2
    assert set(res.dcn_nodes) == {"conv2", "down"}


# --------------------------------------------------------------------------- deformable RoI pooling
def _roi_head(cls_name: str):
    kw = dict(output_size=(3, 2), output_channels=4, deform_fc_channels=8, spatial_scale=0.25, sampling_ratio=0,
              gamma=0.1)
    return _randomize(getattr(mmcv_ops, cls_name)(**kw), std=1.0)


def test_mmcv_roi_pool_has_no_cpu_kernel_but_swaps():
    """The premise: mmcv cannot run its deformable RoI pooling on the CPU; the swap makes it run."""
    head = _roi_head("DeformRoIPoolPack").eval()
    feat = torch.randn(1, 4, 8, 8)
    rois = torch.tensor([[0, 2.0, 3.0, 20.0, 25.0]])
    with pytest.raises(Exception, match="cpu"):
        head(feat, rois)
    swapped, swaps = swap_modules(copy.deepcopy(head))
    assert type(swapped) is ops.DeformRoIPoolPack and swaps[0].source.endswith("DeformRoIPoolPack")
    assert swapped(feat, rois).shape == (1, 4, 3, 2)


@pytest.mark.parametrize("cls_name, target", [
    ("DeformRoIPool", ops.DeformRoIPool),
    ("DeformRoIPoolPack", ops.DeformRoIPoolPack),
    ("ModulatedDeformRoIPoolPack", ops.ModulatedDeformRoIPoolPack),
])
def test_mmcv_roi_pool_swap_keeps_parameters_and_forward(cls_name, target, monkeypatch):
    """Swapped module == mmcv's own forward (its Python, its parameters) with mmcv's missing CPU kernel
    replaced by our reference op (whose numerics test_deform_roi_pool.py holds to mmcv's kernel)."""
    if cls_name == "DeformRoIPool":
        head = mmcv_ops.DeformRoIPool((3, 2), spatial_scale=0.25, sampling_ratio=2, gamma=0.3)
    else:
        head = _roi_head(cls_name)
    head = head.double().eval()
    swapped, _ = swap_modules(copy.deepcopy(head))
    assert type(swapped) is target
    for attr in ("output_size", "spatial_scale", "sampling_ratio", "gamma"):
        assert getattr(swapped, attr) == pytest.approx(getattr(head, attr)), attr
    assert {k: v.shape for k, v in swapped.state_dict().items()} == {k: v.shape for k, v in head.state_dict().items()}

    import importlib

    mod = importlib.import_module("mmcv.ops.deform_roi_pool")

    def ours(input, rois, offset, output_size, spatial_scale, sampling_ratio, gamma):
        return ops.deform_roi_pool(input, rois, offset, pooled_height=output_size[0], pooled_width=output_size[1],
                                   spatial_scale=spatial_scale, sampling_ratio=sampling_ratio, gamma=gamma)

    monkeypatch.setattr(mod, "deform_roi_pool", ours)
    g = torch.Generator().manual_seed(1)
    feat = torch.randn(2, 4, 9, 10, generator=g, dtype=torch.float64)
    rois = torch.tensor([[0, 1.5, 2.0, 30.0, 22.5], [1, -4.0, 3.0, 12.0, 41.0], [1, 8.0, 8.0, 8.5, 9.0]],
                        dtype=torch.float64)
    with torch.no_grad():
        if cls_name == "DeformRoIPool":
            off = torch.randn(3, 2, 3, 2, generator=g, dtype=torch.float64)
            want, got = head(feat, rois, off), swapped(feat, rois, off)
        else:
            want, got = head(feat, rois), swapped(feat, rois)
    torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-12)


class _MdpoolHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.neck = nn.Conv2d(3, 4, 3, stride=4, padding=1)
        self.roi_extractor = _roi_head("ModulatedDeformRoIPoolPack")
        self.fc = nn.Linear(4 * 3 * 2, 5)

    def forward(self, images, rois):
        return self.fc(self.roi_extractor(self.neck(images), rois).flatten(1))


def test_mmcv_mdpool_head_exports_with_check(tmp_path):
    """The issue's "done when": an mmcv ModulatedDeformRoIPoolPack head swaps and exports with check,
    the reference being the swapped model since mmcv cannot run the original on the CPU."""
    torch.manual_seed(0)
    model = _MdpoolHead().eval()
    rois = torch.tensor([[0, 1.5, 2.0, 30.0, 22.5], [0, 4.0, 3.0, 12.0, 31.0], [0, 0.0, 0.0, 39.0, 35.0]])
    lines = []
    res = export(model, (torch.randn(1, 3, 36, 40), rois), tmp_path / "head.onnx", input_names=["images", "rois"],
                 dynamic={"rois": {0: "num_rois"}}, check=True, log=lines.append)
    assert res.check.passed
    assert sorted(res.dcn_nodes.values()) == ["DeformRoIPool", "DeformRoIPool"]
    assert any("does not run here" in s for s in lines), lines


def test_unexportable_module_named_before_any_run(tmp_path):
    """Swap before the reference run: a subclass we cannot swap is named, not mmcv's CPU-kernel error."""

    class Custom(mmcv_ops.DeformRoIPoolPack):
        def forward(self, input, rois):
            return super().forward(input, rois) * 2

    Custom.__module__ = "mmdet.models.custom"
    model = nn.Sequential()
    model.add_module("pool", Custom((2, 2), 4, deform_fc_channels=8))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = model

        def forward(self, feat, rois):
            return self.head.pool(feat, rois)

    with pytest.raises(DcnError, match=r"^module 'head.pool' \(mmdet.models.custom.*Custom\) subclasses "
                                       r"mmcv.ops.deform_roi_pool.DeformRoIPoolPack and overrides forward"):
        export(Net(), (torch.randn(1, 4, 8, 8), torch.tensor([[0, 1.0, 1.0, 6.0, 6.0]])), tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_mmcv_roi_pool_fp16_keeps_boxes_float32_whatever_their_name(tmp_path):
    """RoIs are found on the swapped model: mmcv's DeformRoIPool reaches our op only after the swap, so a
    probe of the original found nothing and RoIs named 'boxes' (not '*roi*') became half in the graph, and a
    float16 ONNX input with --fp16-io (contract: coordinates never in half)."""
    import onnx

    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.pool = mmcv_ops.DeformRoIPool(7, spatial_scale=1 / 16, sampling_ratio=2, gamma=0.1)

        def forward(self, feats, boxes):
            return self.pool(feats, boxes)

    g = torch.Generator().manual_seed(0)
    R = 6
    x1, y1 = torch.rand(R, generator=g) * 1000 + 200.3, torch.rand(R, generator=g) * 500 + 100.3
    boxes = torch.stack([torch.zeros(R), x1, y1, x1 + 37.3, y1 + 41.7], 1)
    res = export(Head().eval(), (torch.randn(1, 8, 50, 84, generator=g), boxes), tmp_path / "h.onnx",
                 input_names=["feats", "boxes"], fp16=True, fp16_io=True, check=True)
    m = onnx.load(str(tmp_path / "h.onnx"))
    types = {i.name: onnx.TensorProto.DataType.Name(i.type.tensor_type.elem_type) for i in m.graph.input}
    assert types == {"feats": "FLOAT16", "boxes": "FLOAT"}
    assert not [n for n in m.graph.node if n.op_type == "Cast" and "boxes" in n.input]
    assert res.check.passed
