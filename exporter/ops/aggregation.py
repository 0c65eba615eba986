"""What the channels-last deformable aggregation ops (InternImage's and FlashInternImage's; their folders'
reference.py, custom.py and modules.py) share, written from the contract (shared/design/ops.md): the
sampling itself, their checks of X, the torch.library plumbing (fake output, backward through the
reference) and the modules' centre feature scale. Names no op: callers pass their op type.

    cw = floor(dw*(kw-1)/2),  ch = floor(dh*(kh-1)/2)
    points p: i over the kernel's width (outer), j over its height (inner), centre skipped with remove_center
    x = wo*sw - left + cw + offset_scale*(i*dw - cw + dx_p)
    y = ho*sh - top  + ch + offset_scale*(j*dh - ch + dy_p)
    Y[n, ho, wo, g*Cg + c] = sum_p m_p * bilinear(X[n, :, :, g*Cg + c], y, x)

A sample outside the map (y <= -1, y >= H, x <= -1, x >= W, or NaN) adds nothing whatever its mask;
inside, each of the four neighbours outside the map counts zero (DeformConv2d's bilinear). float64 inputs
are computed in float64; float32 / float16 ones are sampled and summed in float32, stored in their type.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
from torch import Tensor
from torch.nn import functional as F

from dcn_base.errors import ContractError
from exporter.contract import conv_out_size

from .aggregation_spec import ATTRS, check_attrs, label, points
from .common import bilinear_gather

N_ATTRS = len(ATTRS)  # the torch ops' arguments after their tensors


def point_grid(kernel_shape: Sequence[int], dilations: Sequence[int], remove_center: int, dtype, device):
    """The kernel grid of the P points, x-major: (gx, gy) = (i*dw - cw, j*dh - ch), each [P]."""
    kh, kw = kernel_shape
    dh, dw = dilations
    i = torch.arange(kw, device=device).repeat_interleave(kh)  # outer: the kernel's width
    j = torch.arange(kh, device=device).repeat(kw)  # inner: its height
    if remove_center:
        keep = ~((i == kw // 2) & (j == kh // 2))
        i, j = i[keep], j[keep]
    cw, ch = (dw * (kw - 1)) // 2, (dh * (kh - 1)) // 2
    return (i * dw - cw).to(dtype), (j * dh - ch).to(dtype)


def check_x(op_type: str, x: Tensor, attrs: dict, node: str = "") -> tuple[int, int, int]:
    """X against the (checked) attributes; returns (Ho, Wo, P)."""
    op = label(op_type, node)
    if x.dim() != 4:
        raise ContractError(f"{op}: X has rank {x.dim()} (shape {list(x.shape)}), expected 4 [N, H, W, C]")
    N, H, W, C = x.shape
    g, gc = attrs["group"], attrs["group_channels"]
    if C != g * gc:
        raise ContractError(f"{op}: X has {C} channels, expected group*group_channels = {g}*{gc} = {g * gc}")
    if H < 1 or W < 1:
        raise ContractError(f"{op}: X has spatial size {H}x{W}, expected >= 1x1")
    (kh, kw), (sh, sw), pads, (dh, dw) = attrs["kernel_shape"], attrs["strides"], attrs["pads"], attrs["dilations"]
    ho, wo = conv_out_size(H, pads[0], pads[2], dh, kh, sh), conv_out_size(W, pads[1], pads[3], dw, kw, sw)
    if ho < 1 or wo < 1:
        raise ContractError(f"{op}: output size is {ho}x{wo} for input {H}x{W} (kernel {kh}x{kw}, pads "
                            f"{list(pads)}, strides [{sh}, {sw}], dilations [{dh}, {dw}]), expected >= 1x1")
    return ho, wo, points(attrs["kernel_shape"], attrs["remove_center"])


def checked(op_type: str, x: Tensor, node: str, group_channels: Optional[int], **attrs) -> tuple[dict, int, int, int]:
    """The attributes checked (``group_channels`` defaults to C / group) and X against them: (attrs, Ho, Wo, P)."""
    if group_channels is None:
        group_channels = x.shape[-1] // max(int(attrs["group"]), 1) if x.dim() == 4 else 0
    a = check_attrs(op_type, node, group_channels=group_channels, **attrs)
    return (a, *check_x(op_type, x, a, node))


def aggregate(x: Tensor, off: Tensor, mask: Tensor, attrs: dict, ho: int, wo: int) -> Tensor:
    """The sampling. x [N, H, W, C]; off [N, Ho, Wo, G, P, 2] (dx, dy); mask [N, Ho, Wo, G, P] -> [N, Ho, Wo, C]."""
    N, H, W, C = x.shape
    G, Cg = attrs["group"], attrs["group_channels"]
    cdt = torch.float64 if x.dtype == torch.float64 else torch.float32
    dev = x.device
    (kh, kw), (sh, sw), pads, (dh, dw) = attrs["kernel_shape"], attrs["strides"], attrs["pads"], attrs["dilations"]
    s = attrs["offset_scale"]
    P = off.shape[4]
    if N == 0 or P == 0:
        return x.new_zeros((N, ho, wo, C))
    gx, gy = point_grid(attrs["kernel_shape"], attrs["dilations"], attrs["remove_center"], cdt, dev)
    cw, ch = (dw * (kw - 1)) // 2, (dh * (kh - 1)) // 2
    bx = (torch.arange(wo, device=dev, dtype=cdt) * sw + (cw - pads[1])).view(1, 1, wo, 1, 1)
    by = (torch.arange(ho, device=dev, dtype=cdt) * sh + (ch - pads[0])).view(1, ho, 1, 1, 1)
    off = off.to(cdt)
    px = bx + s * (gx.view(1, 1, 1, 1, P) + off[..., 0])  # [N, Ho, Wo, G, P]
    py = by + s * (gy.view(1, 1, 1, 1, P) + off[..., 1])
    px, py = torch.broadcast_tensors(px, py)
    # sample per (n, g): planes [N*G, Cg, H, W], positions [N*G, Ho*Wo*P]
    planes = x.to(cdt).reshape(N, H, W, G, Cg).permute(0, 3, 4, 1, 2).reshape(N * G, Cg, H, W)
    pos_x = px.permute(0, 3, 1, 2, 4).reshape(N * G, ho * wo * P)
    pos_y = py.permute(0, 3, 1, 2, 4).reshape(N * G, ho * wo * P)
    cols = bilinear_gather(planes, pos_y, pos_x).reshape(N, G, Cg, ho, wo, P)
    m = mask.to(cdt).permute(0, 3, 1, 2, 4).reshape(N, G, 1, ho, wo, P)
    inside = ((pos_y > -1) & (pos_y < H) & (pos_x > -1) & (pos_x < W)).reshape(N, G, 1, ho, wo, P)
    # a sample outside the map adds nothing, whatever its mask (inf / NaN too)
    y = torch.where(inside, cols * m, torch.zeros((), dtype=cdt, device=dev)).sum(-1)  # [N, G, Cg, Ho, Wo]
    return y.permute(0, 3, 4, 1, 2).reshape(N, ho, wo, C).to(x.dtype)


# --------------------------------------------------------------------------- torch.library plumbing
def attr_kwargs(kernel_shape, strides, pads, dilations, group, group_channels, offset_scale, remove_center) -> dict:
    """The torch op's attribute arguments (contract order) -> the references' keywords."""
    return dict(kernel_shape=list(kernel_shape), strides=list(strides), pads=list(pads), dilations=list(dilations),
                group=int(group), group_channels=int(group_channels), offset_scale=float(offset_scale),
                remove_center=int(remove_center))


def fake_output(x: Tensor, kernel_shape, strides, pads, dilations) -> Tensor:
    """[N, Ho, Wo, C] (symbolic sizes stay symbolic)."""
    n, h, w, c = x.shape
    ho = conv_out_size(h, pads[0], pads[2], dilations[0], kernel_shape[0], strides[0])
    wo = conv_out_size(w, pads[1], pads[3], dilations[1], kernel_shape[1], strides[1])
    return x.new_empty((n, ho, wo, c))


def register_backward(op, forward: Callable, n_tensors: int) -> None:
    """Backward of an op with ``n_tensors`` tensor inputs then the N_ATTRS attributes: the vector-Jacobian
    product of ``forward`` (the reference) recomputed under autograd."""

    def setup(ctx, inputs, output):
        ctx.save_for_backward(*inputs[:n_tensors])
        ctx.attrs = inputs[n_tensors:]

    def backward(ctx, grad):
        leaves = [t.detach().requires_grad_(True) for t in ctx.saved_tensors]
        with torch.enable_grad():
            out = forward(*leaves, *ctx.attrs)
        need = ctx.needs_input_grad[:n_tensors]
        want = [t for t, n in zip(leaves, need) if n]
        grads = iter(torch.autograd.grad(out, want, grad, allow_unused=True) if want else [])
        result = []
        for t, n in zip(leaves, need):
            g = next(grads) if n else None
            result.append(torch.zeros_like(t) if n and g is None else g)
        return (*result, *([None] * N_ATTRS))

    op.register_autograd(backward, setup_context=setup)


# --------------------------------------------------------------------------- modules
def center_feature_scale(query: Tensor, weight: Tensor, bias: Tensor, channels: int, group: int) -> Tensor:
    """sigmoid(query . weight^T + bias) per group, repeated over the group's channels: [..., C]."""
    s = F.linear(query, weight, bias).sigmoid()
    return s[..., None].repeat_interleave(channels // group, dim=-1).flatten(-2)


def module_attrs(m) -> list:
    """A module's op attributes after its tensors (square kernel, one stride / pad / dilation, as the modules)."""
    k, s, p, d = m.kernel_size, m.stride, m.pad, m.dilation
    return [[k, k], [s, s], [p, p, p, p], [d, d], m.group, m.group_channels, m.offset_scale, m.remove_center]
