"""exporter.swap: mmcv / detectron2 modules (stand-ins with the real class names and modules)
become ours with the same geometry, the same weights and the same outputs."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from helpers import export_models as em
from exporter import ops
from dcn_base.errors import DcnError
from dcn_base.tolerance import tolerance
from exporter.ops.deform_conv2d.swap import Detectron2DeformConv, Detectron2ModulatedDeformConv
from exporter.swap import match, swap_modules
from helpers.ci_policy import require_module


def _same_outputs(original: nn.Module, swapped: nn.Module, *inputs):
    with torch.no_grad():
        want, got = original(*inputs), swapped(*inputs)
    atol, rtol = tolerance(torch.float32)
    torch.testing.assert_close(got, want, atol=atol, rtol=rtol)


@pytest.mark.parametrize("cls, target, kwargs", [
    (em.MmcvDeformConv2dPack, ops.DeformConv2dPack,
     dict(in_channels=4, out_channels=6, kernel_size=(3, 5), stride=(2, 1), padding=(1, 2), groups=2,
          deform_groups=2)),
    (em.MmcvModulatedDeformConv2dPack, ops.ModulatedDeformConv2dPack,
     dict(in_channels=4, out_channels=4, kernel_size=3, stride=(1, 2), padding=(2, 1), dilation=(2, 1),
          deform_groups=4, bias=True)),
    (em.MmcvModulatedDeformConv2dPack, ops.ModulatedDeformConv2dPack,
     dict(in_channels=4, out_channels=4, kernel_size=3, padding=1, bias=False)),
])
def test_mmcv_packs(cls, target, kwargs):
    torch.manual_seed(0)
    original = em.randomize_offsets(nn.Sequential(cls(**kwargs)), std=0.5).eval()
    swapped, swaps = swap_modules(copy.deepcopy(original))
    new = swapped[0]
    assert type(new) is target and [str(s) for s in swaps] == [f"0: {cls.__module__}.{cls.__name__} -> "
                                                               f"{target.__module__}.{target.__name__}"]
    old = original[0]
    assert new.stride == tuple(old.stride) and new.dilation == tuple(old.dilation)
    assert new.padding == (*old.padding, *old.padding) and new.groups == old.groups
    assert new.deform_groups == old.deform_groups and new.kernel_size == old.kernel_size
    assert (new.bias is None) == (getattr(old, "bias", None) is None)
    torch.testing.assert_close(new.weight, old.weight)
    torch.testing.assert_close(new.conv_offset.weight, old.conv_offset.weight)
    _same_outputs(original, swapped, torch.randn(2, 4, 9, 11))


def test_plain_mmcv_and_detectron2_modules():
    torch.manual_seed(0)
    original = em.randomize_offsets(em.ThirdPartyNet(), std=0.3).eval()
    swapped, swaps = swap_modules(copy.deepcopy(original))
    assert {s.path: s.target.rsplit(".", 1)[1] for s in swaps} == {
        "backbone.1": "DeformConv2dPack", "backbone.2": "ModulatedDeformConv2dPack",
        "mmcv_plain": "DeformConv2d", "mmcv_mod": "ModulatedDeformConv2d",
        "d2": "Detectron2DeformConv", "d2_mod": "Detectron2ModulatedDeformConv",
    }
    assert isinstance(swapped.d2, Detectron2DeformConv) and isinstance(swapped.d2.norm, nn.BatchNorm2d)
    assert swapped.d2.activation is torch.relu
    assert isinstance(swapped.d2_mod, Detectron2ModulatedDeformConv) and swapped.d2_mod.stride == (2, 2)
    assert set(swapped.state_dict()) == set(original.state_dict())  # weights keep their names
    _same_outputs(original, swapped, torch.randn(1, 3, 12, 14))
    assert swap_modules(swapped)[1] == []  # nothing left to swap


def test_root_module_swapped():
    original = em.MmcvDeformConv2dPack(3, 3, 3, padding=1).eval()
    swapped, swaps = swap_modules(copy.deepcopy(original))
    assert isinstance(swapped, ops.DeformConv2dPack) and swaps[0].path == ""


def test_match_by_library_module_not_by_name_alone():
    class DeformConv2d(nn.Module):  # same name, another library: left alone
        pass

    DeformConv2d.__module__ = "mypkg.layers"
    assert match(DeformConv2d()) is None
    assert match(ops.DeformConv2d(2, 2, 3)) is None  # ours are not swapped
    assert match(em.MmcvDeformConv2d(2, 2, 3)) is not None


def test_subclass_overriding_forward_is_refused():
    class Custom(em.MmcvDeformConv2dPack):
        def forward(self, x):
            return super().forward(x) * 2

    Custom.__module__ = "mmdet.models.custom"
    model = nn.Sequential(nn.Identity(), Custom(3, 3, 3, padding=1))
    with pytest.raises(DcnError, match=r"module '1' \(mmdet.models.custom.*Custom\) subclasses "
                                       r"mmcv.ops.deform_conv.DeformConv2dPack and overrides forward"):
        swap_modules(model)


def test_subclass_keeping_forward_is_swapped():
    class Registered(em.MmcvModulatedDeformConv2dPack):
        pass

    Registered.__module__ = "mmdet.models.layers"
    _, swaps = swap_modules(nn.Sequential(Registered(3, 3, 3, padding=1)))
    assert swaps[0].target.endswith("ModulatedDeformConv2dPack")


def test_offset_branch_with_other_geometry_is_refused():
    m = em.MmcvDeformConv2dPack(3, 3, 3, padding=1)
    m.conv_offset = nn.Conv2d(3, 18, 3, padding=2, dilation=2)
    with pytest.raises(DcnError, match=r"module '' .*conv_offset has stride/padding/dilation/kernel"):
        swap_modules(m)


def test_mmcv_roi_pooling_swapped_for_deform_roi_pool():
    """mmcv's DeformRoIPool (stand-in: roi_align(aligned=True), its zero-offset function) -> ours."""
    original = em.MmcvRoIPoolNet().eval()
    swapped, swaps = swap_modules(copy.deepcopy(original))
    assert [str(s) for s in swaps] == ["head.pool: mmcv.ops.deform_roi_pool.DeformRoIPool -> "
                                       "exporter.ops.deform_roi_pool.modules.DeformRoIPool"]
    assert type(swapped.head.pool) is ops.DeformRoIPool and swapped.head.pool.spatial_scale == 0.25
    _same_outputs(original, swapped, torch.randn(2, 3, 10, 12), em.rois_for(2, 40, 48))


def test_real_libraries_match():
    mmcv_ops = require_module("mmcv.ops", reason="mmcv is not installed (bash scripts/setup.sh installs it from ../shared/wheels)")
    assert match(mmcv_ops.DeformConv2dPack(4, 4, 3, padding=1)) is not None
    assert match(mmcv_ops.ModulatedDeformConv2dPack(4, 4, 3, padding=1)) is not None


def test_real_detectron2_matches():
    layers = pytest.importorskip("detectron2.layers", reason="detectron2 is not installed (not on PyPI; built "
                                                              "from source with its C++ extension)")
    assert match(layers.DeformConv(4, 4, 3, padding=1)) is not None
    assert match(layers.ModulatedDeformConv(4, 4, 3, padding=1)) is not None
