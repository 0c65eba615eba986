"""dcn::MultiScaleDeformableAttention's entry in the op contract (../shared/design/ops.md, section
"dcn::MultiScaleDeformableAttention"): Deformable DETR's sampling core, and the shape / level-table
checks every layer shares (the C++ validate_msda / validate_msda_levels say the same words).

Inputs: value [N, S, M, D] (the node's float type), spatial_shapes [L, 2] and level_start_index [L]
(int64 or int32, one type for both: ``Input(dtype="index")``), sampling_locations [N, Lq, M, L, P, 2]
(always float32: coordinates are never half), attention_weights [N, Lq, M, L, P] (the node's float
type). Attribute im2col_step (default 64, no effect on the result). Output [N, Lq, M*D] (rank 3).

Imports nothing but the contract's dataclasses (no torch)."""
from __future__ import annotations

from typing import Sequence

from exporter.contract import INDEX, INT, Attr, Input, OpSpec, Rewrite

SPEC = OpSpec(
    name="multi_scale_deformable_attention",
    op_type="MultiScaleDeformableAttention",
    inputs=(
        Input("value"),
        Input("spatial_shapes", dtype=INDEX),
        Input("level_start_index", dtype=INDEX),
        Input("sampling_locations", dtype="float32"),
        Input("attention_weights"),
    ),
    outputs=("Y",),
    attrs=(Attr("im2col_step", INT, 64),),  # kept for interoperability (mmcv, mmdeploy); no effect
    torch_op="dcn::multi_scale_deformable_attention",
    output_rank=3,
    rewrites=(Rewrite("fuse-msda", "rewrite the GridSample decomposition of multi-scale deformable attention (mmcv's "
                      "multi_scale_deformable_attn_pytorch, RT-DETR's and Deformable DETR's exports) into one dcn node "
                      "each; also for an ONNX file given as the model (checked against the original graph)",
                      "GridSample decomposition of multi-scale deformable attention"),),
    doc="Deformable DETR's multi-scale deformable attention core; see shared/design/ops.md.",
)

LAYOUTS = {
    "value": "[N, S, M, D]",
    "spatial_shapes": "[L, 2]",
    "level_start_index": "[L]",
    "sampling_locations": "[N, Lq, M, L, P, 2]",
    "attention_weights": "[N, Lq, M, L, P]",
}


def prefix(node: str = "") -> str:
    return f"{SPEC.op_type} '{node}': " if node else f"{SPEC.op_type}: "


def shape_error(node: str, value: Sequence[int], shapes: Sequence[int], starts: Sequence[int],
                loc: Sequence[int], weights: Sequence[int]) -> str:
    """'' when the five shapes fit each other, else the contract's one-line message."""
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
