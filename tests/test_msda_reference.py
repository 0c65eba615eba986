"""dcn::MultiScaleDeformableAttention in Python: the float64 reference against mmcv's
``multi_scale_deformable_attn_pytorch`` (real mmcv) and ``torch.nn.functional.grid_sample`` on awkward
cases; the torch.library op (fake kernel, autograd); contract errors; our module against mmcv's
``MultiScaleDeformableAttention`` with the same weights (2-d points, 4-d boxes, batch_first)."""
from __future__ import annotations

import math

import pytest
import torch

from dcn_base.errors import ContractError
from exporter.ops.multi_scale_deformable_attention import custom  # noqa: F401
from exporter.ops.multi_scale_deformable_attention.modules import MultiScaleDeformableAttention
from exporter.ops.multi_scale_deformable_attention.reference import (grid_sample_formulation,
                                                                     multi_scale_deformable_attention as ref)
from helpers.msda_cases import awkward_cases, make_case
from helpers.ci_policy import require_module

CASES = awkward_cases()
IDS = [c.name for c in CASES]


def _mmcv():
    return require_module("mmcv.ops.multi_scale_deform_attn",
                          reason="mmcv with its ops is not installed (bash scripts/setup.sh installs the wheel)")


def _listed_order(v, s, st):
    """value with its levels laid out in the listed order (what grid_sample's and mmcv's formulations assume:
    they split value by the shapes and ignore level_start_index)."""
    parts = [v[:, int(a):int(a) + int(h) * int(w)] for (h, w), a in zip(s.tolist(), st.tolist())]
    return torch.cat(parts, 1)


def _finite_only(c):
    """mmcv / grid_sample give NaN * 0 where our contract gives 0 for a NaN location."""
    return not torch.isnan(c.loc).any()


@pytest.mark.parametrize("c", CASES, ids=IDS)
def test_reference_equals_grid_sample(c):
    v, s, st, loc, w = c.inputs()
    got = ref(v, s, st, loc, w)
    want = grid_sample_formulation(_listed_order(v, s, st), s, torch.nan_to_num(loc, nan=-10.0), w)  # -10: off the map
    assert got.shape == (v.shape[0], loc.shape[1], v.shape[2] * v.shape[3])
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("c", CASES, ids=IDS)
def test_reference_equals_mmcv_pytorch(c):
    mm = _mmcv()
    v, s, st, loc, w = c.inputs()
    got = ref(v, s, st, loc, w)
    v = _listed_order(v, s, st)
    want = mm.multi_scale_deformable_attn_pytorch(v, s.long(), torch.nan_to_num(loc, nan=-10.0), w)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    if _finite_only(c):
        torch.testing.assert_close(got, mm.multi_scale_deformable_attn_pytorch(v, s.long(), loc, w),
                                   rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float16, 2e-3)])
def test_op_in_lower_precision_against_float64(dtype, tol):
    c = make_case("prec", [(16, 12), (8, 6), (4, 3)], N=2, Lq=40, M=4, D=8, P=4, seed=11)
    want = ref(*c.inputs())
    got = torch.ops.dcn.multi_scale_deformable_attention(*c.inputs(dtype), 64)
    assert got.dtype == dtype
    err = (got.double() - want).abs().max().item()
    assert err < tol, err


def test_nan_location_contributes_zero_and_nan_weight_gives_nan():
    c = make_case("nan", [(4, 5)], N=1, Lq=2, M=1, D=3, P=2, seed=12)
    v, s, st, loc, w = c.inputs()
    loc[0, 0, 0, 0, 0] = float("nan")
    base = ref(v, s, st, loc, w)
    w2 = w.clone()
    w2[0, 0, 0, 0, 0] = 0
    torch.testing.assert_close(base, ref(v, s, st, loc, w2))  # the NaN point adds nothing
    w3 = w.clone()
    w3[0, 1, 0, 0, 0] = float("nan")
    assert torch.isnan(ref(v, s, st, loc, w3)[0, 1]).all()


@pytest.mark.parametrize("levels,starts,msg", [
    ([(3, 4), (2, 2)], [0, 13], r"level 1 spans \[13, 17\) .*expected inside value's S = 16"),
    ([(3, 4), (2, 2)], [-1, 12], r"level 0 spans \[-1, 11\)"),
    ([(3, 4), (-2, 2)], [0, 12], r"spatial_shapes\[1\] = \[-2, 2\], expected sizes >= 0"),
    ([(3, 4), (1, 2)], [0, 12], r"spatial_shapes give sum\(H\*W\) = 14, expected value's S = 16"),
    ([(3, 4), (2, 2**40)], [0, 12], r"level 1 spans \[12, "),
])
def test_levels_that_do_not_fit_are_contract_errors(levels, starts, msg):
    v = torch.zeros(1, 16, 1, 2, dtype=torch.float64)
    loc = torch.rand(1, 2, 1, 2, 1, 2, dtype=torch.float64)
    w = torch.ones(1, 2, 1, 2, 1, dtype=torch.float64)
    with pytest.raises(ContractError, match="MultiScaleDeformableAttention: " + msg):
        ref(v, torch.tensor(levels), torch.tensor(starts), loc, w)


def test_shape_errors_name_the_input():
    c = make_case("s", [(3, 4)], N=1, Lq=2, M=2, D=2, P=2)
    v, s, st, loc, w = c.inputs()
    with pytest.raises(ContractError, match=r"sampling_locations has shape \[1, 2, 2, 1, 2, 3\], expected "
                                            r"\[N, Lq, M, L, P, 2\] = \[1, 2, 2, 1, 2, 2\]"):
        ref(v, s, st, torch.zeros(1, 2, 2, 1, 2, 3, dtype=torch.float64), w)
    with pytest.raises(ContractError, match=r"attention_weights has shape"):
        ref(v, s, st, loc, w[:, :1])
    with pytest.raises(ContractError, match=r"value has rank 3, expected 4 \[N, S, M, D\]"):
        ref(v[0], s, st, loc, w)
    with pytest.raises(ContractError, match=r"spatial_shapes has type float32, expected int64 or int32"):
        ref(v, s.float(), st, loc, w)
    with pytest.raises(ContractError, match=r"level_start_index has type int32, expected spatial_shapes' \(int64\)"):
        ref(v, s.long(), st.int(), loc, w)  # one integer type for both (ops.md), as the C++ ops check


def test_fake_kernel_and_export_trace():
    c = make_case("f", [(5, 6), (3, 3)], N=2, Lq=7, M=2, D=4, P=2)

    class M(torch.nn.Module):
        def forward(self, v, s, st, loc, w):
            return torch.ops.dcn.multi_scale_deformable_attention(v, s, st, loc, w, 64)

    ep = torch.export.export(M(), c.inputs(torch.float32))
    node = [n for n in ep.graph.nodes if "multi_scale" in str(n.target)]
    assert len(node) == 1 and tuple(node[0].meta["val"].shape) == (2, 7, 8)


def test_autograd_through_the_reference():
    c = make_case("g", [(4, 5), (2, 3)], N=1, Lq=3, M=2, D=2, P=2, spread=0.0, seed=13)
    v, s, st, loc, w = (t.clone().requires_grad_(t.is_floating_point()) if t.is_floating_point() else t
                        for t in c.inputs())
    fn = lambda v, loc, w: torch.ops.dcn.multi_scale_deformable_attention(v, s, st, loc, w, 64)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (v, loc, w), eps=1e-6, atol=1e-6)


# --------------------------------------------------------------------------- the module against mmcv's
def _randomize(m, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.3)
    return m


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("ref_dim", [2, 4])
def test_module_equals_mmcv_module(batch_first, ref_dim):
    mm = _mmcv()
    E, M, L, P = 32, 4, 3, 2
    theirs = _randomize(mm.MultiScaleDeformableAttention(E, M, L, P, batch_first=batch_first, dropout=0.0)).double()
    ours = MultiScaleDeformableAttention(E, M, L, P, batch_first=batch_first, dropout=0.0).double()
    ours.load_state_dict(theirs.state_dict())
    g = torch.Generator().manual_seed(1)
    shapes = torch.tensor([[8, 10], [4, 5], [2, 3]])
    starts = torch.tensor([0, 80, 100])
    S, Lq, N = 106, 9, 2
    q = torch.randn(N, Lq, E, generator=g, dtype=torch.float64)
    val = torch.randn(N, S, E, generator=g, dtype=torch.float64)
    pos = torch.randn(N, Lq, E, generator=g, dtype=torch.float64)
    refp = torch.rand(N, Lq, L, ref_dim, generator=g, dtype=torch.float64)
    mask = torch.zeros(N, S, dtype=torch.bool)
    mask[1, -7:] = True
    if not batch_first:
        q, val, pos = q.transpose(0, 1), val.transpose(0, 1), pos.transpose(0, 1)
    kw = dict(value=val, query_pos=pos, key_padding_mask=mask, reference_points=refp, spatial_shapes=shapes,
              level_start_index=starts)
    theirs.eval(), ours.eval()
    torch.testing.assert_close(ours(q, **kw), theirs(q, **kw), rtol=1e-12, atol=1e-12)


def test_module_init_matches_mmcv_layout():
    mm = _mmcv()
    theirs = mm.MultiScaleDeformableAttention(64, 8, 4, 4)
    ours = MultiScaleDeformableAttention(64, 8, 4, 4)
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    torch.testing.assert_close(ours.sampling_offsets.bias, theirs.sampling_offsets.bias)
    assert math.isclose(float(ours.sampling_offsets.bias.detach().abs().max()), 4.0)
