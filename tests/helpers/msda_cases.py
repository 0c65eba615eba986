"""Inputs of dcn::MultiScaleDeformableAttention for the tests: awkward level tables (levels stored out of
their listed order too), locations on and off the map, NaN locations, batch 0, queries 1 and 900, int32 /
int64 shapes."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class MsdaCase:
    name: str
    value: torch.Tensor          # [N, S, M, D]
    shapes: torch.Tensor         # [L, 2]
    starts: torch.Tensor         # [L]
    loc: torch.Tensor            # [N, Lq, M, L, P, 2]
    weights: torch.Tensor        # [N, Lq, M, L, P]

    def inputs(self, dtype=None, index_dtype=None):
        v, w = self.value, self.weights
        if dtype is not None:
            v, w = v.to(dtype), w.to(dtype)
        s, st = self.shapes, self.starts
        if index_dtype is not None:
            s, st = s.to(index_dtype), st.to(index_dtype)
        loc = self.loc.to(torch.float64 if v.dtype == torch.float64 else torch.float32)
        return v, s, st, loc, w


def make_case(name: str, levels, N=2, Lq=5, M=2, D=4, P=3, seed=0, spread=0.3, nan=0, dtype=torch.float64,
              index_dtype=torch.int64, storage=None) -> MsdaCase:
    """Random inputs; ``spread``: how far locations stray outside [0, 1] (0.3: about a third of the
    points near or off the border); ``nan``: how many locations to set NaN; ``storage``: the order the
    levels lie in ``value`` (default: as listed), which level_start_index then tells."""
    g = torch.Generator().manual_seed(seed)
    shapes = torch.tensor(levels, dtype=index_dtype).reshape(-1, 2)
    areas = shapes[:, 0] * shapes[:, 1]
    order = list(storage) if storage is not None else list(range(len(levels)))
    starts = torch.zeros(len(levels), dtype=index_dtype)
    at = 0
    for lvl in order:
        starts[lvl] = at
        at += int(areas[lvl])
    S, L = int(areas.sum()), shapes.shape[0]
    value = torch.randn(N, S, M, D, generator=g, dtype=dtype)
    loc = torch.rand(N, Lq, M, L, P, 2, generator=g, dtype=dtype) * (1 + 2 * spread) - spread
    weights = torch.rand(N, Lq, M, L, P, generator=g, dtype=dtype)
    weights = weights / weights.sum(dim=(-1, -2), keepdim=True).clamp_min(1e-6)
    if nan:
        flat = loc.view(-1)
        idx = torch.randperm(flat.numel(), generator=g)[:nan]
        flat[idx] = float("nan")
    return MsdaCase(name, value, shapes, starts, loc, weights)


def awkward_cases() -> list[MsdaCase]:
    return [
        make_case("one level", [(7, 9)]),
        make_case("many levels", [(13, 11), (7, 6), (4, 3), (2, 2), (1, 1), (1, 5)], M=3, D=5, P=2, seed=1),
        make_case("points off the map", [(6, 8), (3, 4)], spread=2.0, seed=2),
        make_case("NaN locations", [(6, 8), (3, 4)], nan=17, seed=3),
        make_case("batch 0", [(5, 5), (3, 3)], N=0, seed=4),
        make_case("query 1", [(5, 6), (3, 2)], Lq=1, seed=5),
        make_case("queries 900", [(20, 20), (10, 10), (5, 5)], N=1, Lq=900, M=8, D=4, P=4, seed=6),
        make_case("int32 shapes", [(9, 4), (5, 2)], index_dtype=torch.int32, seed=7),
        make_case("1x1 and 1xW maps", [(1, 1), (1, 7), (6, 1)], seed=8, spread=0.6),
        make_case("D 1, M 1, P 1", [(4, 4), (2, 2)], M=1, D=1, P=1, seed=9),
        # the levels stored in another order than listed: only level_start_index says where each is
        make_case("levels stored out of order", [(3, 4), (2, 2), (5, 3)], seed=10, storage=[2, 0, 1]),
    ]
