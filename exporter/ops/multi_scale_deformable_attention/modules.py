"""nn.Modules on ``dcn::multi_scale_deformable_attention``.

* :class:`MultiScaleDeformableAttention`: mmcv's module (mmdet's Deformable DETR / DINO layers):
  same constructor, parameter names and shapes (value_proj, sampling_offsets, attention_weights,
  output_proj), ``batch_first``, 2-d reference points and 4-d reference boxes, so mmcv's weights load
  unchanged and the output equals mmcv's.
* :class:`MsdaCore`: the parameter-free core with the forward of Hugging Face transformers' core
  module (DeformableDetr, RT-DETR): ``(value, spatial_shapes, spatial_shapes_list, level_start_index,
  sampling_locations, attention_weights, im2col_step)``.
* :class:`RTDetrV2Attention`: RT-DETRv2's deformable attention ("default" method, the same number of
  points on every level), its parameters and buffer by the same names.

Sampling locations are computed and passed in float32 also in a float16 model (float64 in a float64
one): the contract never takes coordinates in half.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor, nn

from . import custom  # noqa: F401  (registers torch.ops.dcn.multi_scale_deformable_attention)


def coordinate_dtype(t: Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def start_index(spatial_shapes: Tensor) -> Tensor:
    """level_start_index from spatial_shapes: [0, H0*W0, H0*W0 + H1*W1, ...]."""
    areas = spatial_shapes[:, 0] * spatial_shapes[:, 1]
    return torch.cat([areas.new_zeros(1), areas.cumsum(0)[:-1]])


def msda(value: Tensor, spatial_shapes: Tensor, level_start_index: Optional[Tensor], sampling_locations: Tensor,
         attention_weights: Tensor, im2col_step: int = 64) -> Tensor:
    """The op with the contract's types: float32 (float64) locations, weights in value's type."""
    if level_start_index is None:
        level_start_index = start_index(spatial_shapes)
    return torch.ops.dcn.multi_scale_deformable_attention(
        value, spatial_shapes, level_start_index.to(spatial_shapes.dtype),
        sampling_locations.to(coordinate_dtype(value)), attention_weights.to(value.dtype), int(im2col_step))


def locations(reference_points: Tensor, offsets: Tensor, spatial_shapes: Tensor, num_points: int) -> Tensor:
    """Sampling locations [N, Lq, M, L, P, 2] in float32 (float64) from reference points
    [N, Lq, L, 2] (offsets in pixels of each level) or boxes [N, Lq, L, 4] (offsets in halves of the
    box over num_points), offsets [N, Lq, M, L, P, 2]."""
    dt = coordinate_dtype(offsets)
    ref, off = reference_points.to(dt), offsets.to(dt)
    if ref.shape[-1] == 2:
        normalizer = torch.stack([spatial_shapes[..., 1], spatial_shapes[..., 0]], -1).to(dt)
        return ref[:, :, None, :, None, :] + off / normalizer[None, None, None, :, None, :]
    if ref.shape[-1] == 4:
        return ref[:, :, None, :, None, :2] + off / num_points * ref[:, :, None, :, None, 2:] * 0.5
    raise ValueError(f"reference_points has {ref.shape[-1]} coordinates in its last dimension, expected 2 or 4")


class MultiScaleDeformableAttention(nn.Module):
    """mmcv's ``MultiScaleDeformableAttention`` on ``dcn::MultiScaleDeformableAttention``.

    forward(query, key=None, value=None, identity=None, query_pos=None, key_padding_mask=None,
    reference_points=None, spatial_shapes=None, level_start_index=None) -> query + attention
    ([num_query, bs, embed_dims], or [bs, num_query, embed_dims] with batch_first)."""

    def __init__(self, embed_dims: int = 256, num_heads: int = 8, num_levels: int = 4, num_points: int = 4,
                 im2col_step: int = 64, dropout: float = 0.1, batch_first: bool = False,
                 norm_cfg: Optional[dict] = None, init_cfg=None, value_proj_ratio: float = 1.0) -> None:
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f"MultiScaleDeformableAttention: embed_dims {embed_dims} must be divisible by "
                             f"num_heads {num_heads}")
        self.embed_dims, self.num_heads = embed_dims, num_heads
        self.num_levels, self.num_points = num_levels, num_points
        self.im2col_step, self.batch_first, self.norm_cfg = im2col_step, batch_first, norm_cfg
        self.dropout = nn.Dropout(dropout)
        self.sampling_offsets = nn.Linear(embed_dims, num_heads * num_levels * num_points * 2)
        self.attention_weights = nn.Linear(embed_dims, num_heads * num_levels * num_points)
        value_size = int(embed_dims * value_proj_ratio)
        self.value_proj = nn.Linear(embed_dims, value_size)
        self.output_proj = nn.Linear(value_size, embed_dims)
        self.init_weights()

    def init_weights(self) -> None:
        """Offsets start on a ring per head (point i at radius i+1, head h at angle 2*pi*h/M), uniform
        attention, Xavier-uniform projections (Deformable DETR, sec. A.2)."""
        nn.init.zeros_(self.sampling_offsets.weight)
        angle = torch.arange(self.num_heads, dtype=torch.float32) * (2.0 * math.pi / self.num_heads)
        ring = torch.stack([angle.cos(), angle.sin()], -1)
        ring = ring / ring.abs().max(-1, keepdim=True)[0]
        radius = torch.arange(1, self.num_points + 1, dtype=torch.float32).view(1, 1, -1, 1)
        bias = ring.view(self.num_heads, 1, 1, 2).expand(-1, self.num_levels, self.num_points, -1) * radius
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(bias.reshape(-1))
        for lin in (self.attention_weights,):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)
        for lin in (self.value_proj, self.output_proj):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, query: Tensor, key: Optional[Tensor] = None, value: Optional[Tensor] = None,
                identity: Optional[Tensor] = None, query_pos: Optional[Tensor] = None,
                key_padding_mask: Optional[Tensor] = None, reference_points: Optional[Tensor] = None,
                spatial_shapes: Optional[Tensor] = None, level_start_index: Optional[Tensor] = None,
                **kwargs) -> Tensor:
        if value is None:
            value = query
        if identity is None:
            identity = query
        if query_pos is not None:
            query = query + query_pos
        if not self.batch_first:
            query, value = query.permute(1, 0, 2), value.permute(1, 0, 2)
        bs, num_query, _ = query.shape
        num_value = value.shape[1]
        value = self.value_proj(value)
        if key_padding_mask is not None:
            value = value.masked_fill(key_padding_mask[..., None], 0.0)
        value = value.view(bs, num_value, self.num_heads, -1)
        M, L, P = self.num_heads, self.num_levels, self.num_points
        offsets = self.sampling_offsets(query).view(bs, num_query, M, L, P, 2)
        weights = self.attention_weights(query).view(bs, num_query, M, L * P).softmax(-1).view(bs, num_query, M, L, P)
        loc = locations(reference_points, offsets, spatial_shapes, P)
        output = self.output_proj(msda(value, spatial_shapes, level_start_index, loc, weights, self.im2col_step))
        if not self.batch_first:
            output = output.permute(1, 0, 2)
        return self.dropout(output) + identity


class MsdaCore(nn.Module):
    """The core module of Hugging Face's DeformableDetr / RT-DETR (no parameters), on our op."""

    def forward(self, value: Tensor, value_spatial_shapes: Tensor, value_spatial_shapes_list=None,
                level_start_index: Optional[Tensor] = None, sampling_locations: Optional[Tensor] = None,
                attention_weights: Optional[Tensor] = None, im2col_step: int = 64) -> Tensor:
        return msda(value, value_spatial_shapes, level_start_index, sampling_locations, attention_weights, im2col_step)


class RTDetrV2Attention(nn.Module):
    """RT-DETRv2's ``RTDetrV2MultiscaleDeformableAttention`` ("default" sampling, n_points on every
    level) on our op; forward returns (output, attention_weights) like the original."""

    def __init__(self, d_model: int, n_heads: int, n_levels: int, n_points: int, offset_scale: float) -> None:
        super().__init__()
        self.d_model, self.n_heads, self.n_levels, self.n_points = d_model, n_heads, n_levels, n_points
        self.offset_scale, self.im2col_step = offset_scale, 64
        self.sampling_offsets = nn.Linear(d_model, n_heads * n_levels * n_points * 2)
        self.attention_weights = nn.Linear(d_model, n_heads * n_levels * n_points)
        self.value_proj = nn.Linear(d_model, d_model)
        self.output_proj = nn.Linear(d_model, d_model)
        self.n_points_scale = nn.Buffer(torch.full((n_levels * n_points,), 1.0 / n_points))

    def forward(self, hidden_states: Tensor, attention_mask: Optional[Tensor] = None, encoder_hidden_states=None,
                encoder_attention_mask=None, position_embeddings: Optional[Tensor] = None, reference_points=None,
                spatial_shapes=None, spatial_shapes_list=None, level_start_index=None, **kwargs):
        if position_embeddings is not None:
            hidden_states = hidden_states + position_embeddings
        bs, num_queries, _ = hidden_states.shape
        seq = encoder_hidden_states.shape[1]
        M, L, P = self.n_heads, self.n_levels, self.n_points
        value = self.value_proj(encoder_hidden_states)
        if attention_mask is not None:
            value = value.masked_fill(~attention_mask[..., None], 0.0)
        value = value.view(bs, seq, M, self.d_model // M)
        offsets = self.sampling_offsets(hidden_states).view(bs, num_queries, M, L * P, 2)
        weights = nn.functional.softmax(self.attention_weights(hidden_states).view(bs, num_queries, M, L * P), -1)
        dt = coordinate_dtype(offsets)
        ref = reference_points.to(dt)
        if ref.shape[-1] == 2:
            loc = locations(ref, offsets.view(bs, num_queries, M, L, P, 2), spatial_shapes, P)
        elif ref.shape[-1] == 4:
            scale = self.n_points_scale.to(dt).unsqueeze(-1)
            off = offsets.to(dt) * scale * ref[:, :, None, :, 2:] * self.offset_scale
            loc = (ref[:, :, None, :, :2] + off).view(bs, num_queries, M, L, P, 2)
        else:
            raise ValueError(f"reference_points has {ref.shape[-1]} coordinates, expected 2 or 4")
        out = msda(value, spatial_shapes, level_start_index, loc, weights.view(bs, num_queries, M, L, P),
                   self.im2col_step)
        return self.output_proj(out), weights
