"""The plain-PyTorch reference of ``dcn::MultiScaleDeformableAttention``, written from the contract
(shared/design/ops.md): the truth every other implementation is tested against.

    Y[n, q, m*D + d] = sum_l sum_p A[n, q, m, l, p] * bilinear(V_l[n, :, :, m, d], y, x)
    V_l = value[n, start_l : start_l + H_l*W_l] viewed [H_l, W_l, M, D]
    y = loc[n, q, m, l, p, 1] * H_l - 0.5,   x = loc[n, q, m, l, p, 0] * W_l - 0.5

``bilinear`` is the contract's zero-outside rule (exporter/ops/common.py): 0 when y <= -1, y >= H, x <= -1, x >= W (or NaN), else the four
integer neighbours weighted, a neighbour outside the map counting 0. Each point's sample is
summed over its neighbours first and then weighted by A (a NaN weight gives NaN, like A * 0).
Vectorised over (n, q, m, p) with one loop over levels; differentiable (gather), any device,
exact in float64. The level table is read on the host (it decides which slices to take).
"""
from __future__ import annotations

import torch
from torch import Tensor

from dcn_base.errors import ContractError

from . import spec


def level_table(value: Tensor, spatial_shapes: Tensor, level_start_index: Tensor, node: str = "") -> list:
    """[(H, W, start)] per level, checked against value's S (ContractError otherwise)."""
    shapes = [(int(h), int(w)) for h, w in spatial_shapes.reshape(-1, 2).tolist()]
    starts = [int(s) for s in level_start_index.reshape(-1).tolist()]
    err = spec.levels_error(node, int(value.shape[1]), shapes, starts)
    if err:
        raise ContractError(err)
    return [(h, w, s) for (h, w), s in zip(shapes, starts)]


def check_shapes(value, spatial_shapes, level_start_index, sampling_locations, attention_weights, node: str = ""):
    err = spec.shape_error(node, list(value.shape), list(spatial_shapes.shape), list(level_start_index.shape),
                           list(sampling_locations.shape), list(attention_weights.shape))
    if err:
        raise ContractError(err)
    for name, t in (("spatial_shapes", spatial_shapes), ("level_start_index", level_start_index)):
        if t.dtype not in (torch.int64, torch.int32):
            raise ContractError(f"{spec.prefix(node)}{name} has type {str(t.dtype).replace('torch.', '')}, "
                                f"expected int64 or int32")
    if level_start_index.dtype != spatial_shapes.dtype:  # the contract: one integer type for both
        want = str(spatial_shapes.dtype).replace("torch.", "")
        raise ContractError(f"{spec.prefix(node)}level_start_index has type "
                            f"{str(level_start_index.dtype).replace('torch.', '')}, expected spatial_shapes' ({want})")


def _sample_level(v_l: Tensor, H: int, W: int, x: Tensor, y: Tensor) -> Tensor:
    """bilinear(v_l, y, x) for every point: v_l [N, H*W, M, D]; x, y [N, Lq, M, P] -> [N, Lq, M, P, D]."""
    N, _, M, D = v_l.shape
    Lq, P = x.shape[1], x.shape[3]
    inside = (y > -1) & (y < H) & (x > -1) & (x < W)  # False for NaN
    y0, x0 = torch.floor(y), torch.floor(x)
    ly, lx = y - y0, x - x0
    table = v_l.permute(0, 2, 1, 3)  # [N, M, H*W, D]
    out = torch.zeros(N, M, Lq * P, D, dtype=v_l.dtype, device=v_l.device)
    for dy, dx, wgt in ((0, 0, (1 - ly) * (1 - lx)), (0, 1, (1 - ly) * lx), (1, 0, ly * (1 - lx)), (1, 1, ly * lx)):
        yc, xc = y0 + dy, x0 + dx
        ok = inside & (yc >= 0) & (yc <= H - 1) & (xc >= 0) & (xc <= W - 1)
        idx = torch.where(ok, yc * W + xc, torch.zeros_like(yc)).to(torch.int64)  # [N, Lq, M, P]
        idx = idx.permute(0, 2, 1, 3).reshape(N, M, Lq * P, 1).expand(N, M, Lq * P, D)
        got = table.gather(2, idx)
        w = torch.where(ok, wgt, torch.zeros_like(wgt)).permute(0, 2, 1, 3).reshape(N, M, Lq * P, 1)
        # a neighbour outside adds nothing (not 0 * value: an inf there must not turn into NaN)
        out = out + torch.where(ok.permute(0, 2, 1, 3).reshape(N, M, Lq * P, 1), w.to(got.dtype) * got,
                                torch.zeros((), dtype=got.dtype, device=got.device))
    return out.view(N, M, Lq, P, D).permute(0, 2, 1, 3, 4)


def multi_scale_deformable_attention(value: Tensor, spatial_shapes: Tensor, level_start_index: Tensor,
                                     sampling_locations: Tensor, attention_weights: Tensor, node: str = "") -> Tensor:
    """value [N, S, M, D], spatial_shapes [L, 2] (H, W), level_start_index [L], sampling_locations
    [N, Lq, M, L, P, 2] (x, y in [0, 1] for in-map points), attention_weights [N, Lq, M, L, P]
    -> [N, Lq, M*D] in value's type; the arithmetic in value's type (exact in float64), coordinates
    in sampling_locations' type. Raises ContractError for shapes or levels that do not fit."""
    check_shapes(value, spatial_shapes, level_start_index, sampling_locations, attention_weights, node)
    N, S, M, D = value.shape
    Lq = sampling_locations.shape[1]
    acc = torch.zeros(N, Lq, M, D, dtype=value.dtype, device=value.device)
    for lvl, (H, W, start) in enumerate(level_table(value, spatial_shapes, level_start_index, node)):
        if H * W == 0 or N * Lq * M == 0:
            continue
        loc = sampling_locations[:, :, :, lvl]  # [N, Lq, M, P, 2]
        x = loc[..., 0] * W - 0.5
        y = loc[..., 1] * H - 0.5
        sample = _sample_level(value[:, start:start + H * W], H, W, x, y)  # [N, Lq, M, P, D]
        a = attention_weights[:, :, :, lvl].to(value.dtype).unsqueeze(-1)  # [N, Lq, M, P, 1]
        acc = acc + (a * sample).sum(dim=3)
    return acc.reshape(N, Lq, M * D)


def grid_sample_formulation(value: Tensor, spatial_shapes, sampling_locations: Tensor,
                            attention_weights: Tensor) -> Tensor:
    """The same function through ``torch.nn.functional.grid_sample`` (bilinear, zeros,
    align_corners=False): the formulation Deformable DETR's PyTorch path and its ONNX exports use
    (written here from the contract; the benchmark's baseline and a test's second opinion).
    spatial_shapes: a tensor or a list of (H, W); levels taken in order from S."""
    N, S, M, D = value.shape
    _, Lq, _, L, P, _ = sampling_locations.shape
    shapes = [(int(h), int(w)) for h, w in (spatial_shapes.tolist() if isinstance(spatial_shapes, Tensor)
                                            else spatial_shapes)]
    grids = 2 * sampling_locations - 1  # [N, Lq, M, L, P, 2]
    start, samples = 0, []
    for lvl, (H, W) in enumerate(shapes):
        v = value[:, start:start + H * W].permute(0, 2, 3, 1).reshape(N * M, D, H, W)
        g = grids[:, :, :, lvl].permute(0, 2, 1, 3, 4).reshape(N * M, Lq, P, 2).to(v.dtype)
        samples.append(torch.nn.functional.grid_sample(v, g, mode="bilinear", padding_mode="zeros",
                                                       align_corners=False))  # [N*M, D, Lq, P]
        start += H * W
    a = attention_weights.permute(0, 2, 1, 3, 4).reshape(N * M, 1, Lq, L * P).to(value.dtype)
    y = (torch.stack(samples, dim=-2).flatten(-2) * a).sum(-1)  # [N*M, D, Lq]
    return y.view(N, M * D, Lq).transpose(1, 2).contiguous()


def example_inputs(seed: int = 0) -> tuple[dict, dict]:
    """A small valid case (arrays by input name, attributes by contract name; two levels, points partly
    off the map, int64 level table): for generic tests that run every registered op (FP16 conversion,
    fuzz cases)."""
    import numpy as np  # noqa: PLC0415  (tests only)

    rng = np.random.default_rng(seed)
    levels = np.array([[3, 4], [2, 3]], np.int64)
    N, Lq, M, D, P = 2, 3, 2, 4, 2
    S = int((levels[:, 0] * levels[:, 1]).sum())
    inputs = {"value": rng.standard_normal((N, S, M, D)).astype(np.float32), "spatial_shapes": levels,
              "level_start_index": np.array([0, 12], np.int64),
              "sampling_locations": rng.uniform(-0.2, 1.2, (N, Lq, M, len(levels), P, 2)).astype(np.float32),
              "attention_weights": rng.uniform(0, 1, (N, Lq, M, len(levels), P)).astype(np.float32)}
    return inputs, {"im2col_step": 64}
