"""What the ops' references and modules share: argument forms (an int or a pair, pads in 1, 2 or 4
values), the contract's bilinear sampling over whole tensors, and C's rounding. Names no op: each
caller passes its op type for the messages."""
from __future__ import annotations

from typing import Sequence, Union

import torch
from torch import Tensor

from dcn_base.errors import ContractError

IntOrSeq = Union[int, Sequence[int]]


def pair(value: IntOrSeq, name: str, op: str) -> tuple[int, int]:
    """int or 1-2 values -> (height, width); ContractError naming ``op`` and ``name`` otherwise."""
    if isinstance(value, int):
        return (value, value)
    vals = tuple(int(v) for v in value)
    if len(vals) == 1:
        return (vals[0], vals[0])
    if len(vals) != 2:
        raise ContractError(f"{op}: {name} has {len(vals)} values {list(vals)}, expected 1 or 2")
    return vals  # type: ignore[return-value]


def normalize_pads(padding: IntOrSeq, op: str) -> tuple[int, int, int, int]:
    """int, (pad_h, pad_w) or (top, left, bottom, right) -> (top, left, bottom, right)."""
    if isinstance(padding, int):
        return (padding,) * 4  # type: ignore[return-value]
    vals = tuple(int(v) for v in padding)
    if len(vals) == 1:
        return (vals[0],) * 4  # type: ignore[return-value]
    if len(vals) == 2:
        return (vals[0], vals[1], vals[0], vals[1])
    if len(vals) == 4:
        return vals  # type: ignore[return-value]
    raise ContractError(
        f"{op}: padding has {len(vals)} values {list(vals)}, expected 1, 2 or 4 (top, left, bottom, right)"
    )


def bilinear_gather(planes: Tensor, h: Tensor, w: Tensor) -> Tensor:
    """Bilinear sampling as the contract states.

    planes: [B, K, H, W]; h, w: [B, P] sample positions shared by the K planes of a row.
    Returns [B, K, P]. Zero when h <= -1, h >= H, w <= -1 or w >= W; otherwise the four
    integer neighbours are weighed, each neighbour outside the map counting as zero.
    """
    B, K, H, W = planes.shape
    flat = planes.reshape(B, K, H * W)
    inside = (h > -1) & (h < H) & (w > -1) & (w < W)
    h0 = torch.floor(h)
    w0 = torch.floor(w)
    lh = h - h0
    lw = w - w0
    h0 = h0.long()
    w0 = w0.long()
    out = None
    for dy, wy in ((0, 1 - lh), (1, lh)):
        for dx, wx in ((0, 1 - lw), (1, lw)):
            y = h0 + dy
            x = w0 + dx
            valid = inside & (y >= 0) & (y < H) & (x >= 0) & (x < W)
            idx = torch.where(valid, y * W + x, torch.zeros_like(y))
            vals = torch.gather(flat, 2, idx.unsqueeze(1).expand(B, K, idx.shape[-1]))
            # a neighbour outside the map reads nothing (0, also next to inf / NaN values)
            term = torch.where(valid.unsqueeze(1), vals * (wy * wx).unsqueeze(1), torch.zeros_like(vals))
            out = term if out is None else out + term
    assert out is not None
    return out


def round_half_away(x: Tensor) -> Tensor:
    """C's round(): halves away from zero (2.5 -> 3, -0.5 -> -1), exactly in x's type: the fraction
    x - trunc(x) is exact, where floor(|x| + 0.5) rounds the sum (float32's 0.49999997 gave 1, odd
    integers from 2^23 on one more)."""
    t = torch.trunc(x)
    return t + torch.sign(x) * (torch.abs(x - t) >= 0.5).to(x.dtype)
