"""``dcn::MultiScaleDeformableAttention``: the contract entry (shared/design/ops.md, section
"dcn::MultiScaleDeformableAttention"), its fixed-type inputs and the checks every layer shares.

Inputs: value [N, S, M, D] (the node's float type), spatial_shapes [L, 2] and level_start_index [L]
(int64 or int32, one type for both), sampling_locations [N, Lq, M, L, P, 2] (always float32: coordinates
are never half), attention_weights [N, Lq, M, L, P] (the node's float type). Attribute im2col_step
(default 64, no effect on the result). Output [N, Lq, M*D].

Imported by exporter/contract.py at its end (OPS): this module imports only the contract's dataclasses.
"""
from __future__ import annotations

from typing import Sequence

from ...contract import INT, Attr, Input, OpSpec

OP_TYPE = "MultiScaleDeformableAttention"
TORCH_OP = "dcn::multi_scale_deformable_attention"
INDEX = "int64|int32"  # Input.dtype of the two index inputs: int64 or int32, one type for both

SPEC = OpSpec(
    op_type=OP_TYPE,
    inputs=(
        Input("value"),
        Input("spatial_shapes", dtype=INDEX),
        Input("level_start_index", dtype=INDEX),
        Input("sampling_locations", dtype="float32"),
        Input("attention_weights"),
    ),
    outputs=("Y",),
    attrs=(Attr("im2col_step", INT, 64),),
    torch_op=TORCH_OP,
)

# Positions of the inputs that stay float32 in a float16 graph (FP16 conversion) and of the index inputs.
FLOAT32_INPUTS = (3,)
INDEX_INPUTS = (1, 2)

LAYOUTS = {
    "value": "[N, S, M, D]",
    "spatial_shapes": "[L, 2]",
    "level_start_index": "[L]",
    "sampling_locations": "[N, Lq, M, L, P, 2]",
    "attention_weights": "[N, Lq, M, L, P]",
}


def prefix(node: str = "") -> str:
    return f"{OP_TYPE} '{node}': " if node else f"{OP_TYPE}: "


def shape_error(node: str, value: Sequence[int], shapes: Sequence[int], starts: Sequence[int],
                loc: Sequence[int], weights: Sequence[int]) -> str:
    """'' when the five shapes fit each other, else the contract's one-line message (the C++
    validate_msda says the same words)."""
    p = prefix(node)
    for name, s, rank in (("value", value, 4), ("spatial_shapes", shapes, 2), ("level_start_index", starts, 1),
                          ("sampling_locations", loc, 6), ("attention_weights", weights, 5)):
        if len(s) != rank:
            return f"{p}{name} has rank {len(s)}, expected {rank} {LAYOUTS[name]}"
    N, S, M, D = value
    L = shapes[0]
    if shapes[1] != 2:
        return f"{p}spatial_shapes has shape {list(shapes)}, expected [L, 2]"
    if list(starts) != [L]:
        return f"{p}level_start_index has shape {list(starts)}, expected [L] = [{L}]"
    want = [N, loc[1], M, L, loc[4], 2]
    if list(loc) != want:
        return f"{p}sampling_locations has shape {list(loc)}, expected [N, Lq, M, L, P, 2] = {want}"
    if list(weights) != want[:5]:
        return f"{p}attention_weights has shape {list(weights)}, expected [N, Lq, M, L, P] = {want[:5]}"
    return ""


def levels_error(node: str, S: int, shapes: Sequence[Sequence[int]], starts: Sequence[int]) -> str:
    """'' when every level lies inside value's S and the levels sum to S, else the message. Values are
    Python ints (any size: no wrap)."""
    p = prefix(node)
    total = 0
    for lvl, ((h, w), st) in enumerate(zip(shapes, starts)):
        if h < 0 or w < 0:
            return f"{p}spatial_shapes[{lvl}] = [{h}, {w}], expected sizes >= 0"
        if st < 0 or st + h * w > S:
            return (f"{p}level {lvl} spans [{st}, {st + h * w}) (level_start_index[{lvl}] = {st}, spatial_shapes"
                    f"[{lvl}] = [{h}, {w}]), expected inside value's S = {S}")
        total += h * w
    if total != S:
        return f"{p}spatial_shapes give sum(H*W) = {total}, expected value's S = {S}"
    return ""
