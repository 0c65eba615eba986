"""dcn::DeformPSROIPool's nn.Modules: ``DeformPSROIPool`` and ``DeformPSROIPoolPack`` (learned offsets:
the paper's Faster R-CNN head or R-FCN's), calling ``torch.ops.dcn.deform_psroi_pool``."""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from . import custom  # noqa: F401  (registers torch.ops.dcn.deform_psroi_pool)


class DeformPSROIPool(nn.Module):
    """Deformable (position-sensitive) RoI pooling: ``forward(data, rois, trans=None)``.

    ``group_size=1``: the paper's deformable RoI pooling; ``group_size=k``: R-FCN's
    position-sensitive variant. rois [R, 5] = (batch_index, x1, y1, x2, y2) in image pixels;
    trans [R, 2*num_classes, part_size, part_size] (normalized offsets, scaled by trans_std).
    """

    def __init__(
        self,
        spatial_scale: float,
        output_dim: int,
        group_size: int,
        pooled_size: int,
        part_size: int = 0,
        sample_per_part: int = 4,
        trans_std: float = 0.0,
    ) -> None:
        super().__init__()
        self.spatial_scale = float(spatial_scale)
        self.output_dim = int(output_dim)
        self.group_size = int(group_size)
        self.pooled_size = int(pooled_size)
        self.part_size = int(part_size) or int(pooled_size)
        self.sample_per_part = int(sample_per_part)
        self.trans_std = float(trans_std)

    def pool(self, data: Tensor, rois: Tensor, trans: Optional[Tensor], output_dim: Optional[int] = None,
             trans_std: Optional[float] = None) -> Tensor:
        # written so that torch.jit.script compiles it (no keyword-only arguments, no `or` on Optional)
        return torch.ops.dcn.deform_psroi_pool(
            data, rois, trans, self.spatial_scale, self.output_dim if output_dim is None else output_dim,
            self.group_size, self.pooled_size, self.part_size, self.sample_per_part,
            self.trans_std if trans_std is None else trans_std, int(trans is None),
        )

    def forward(self, data: Tensor, rois: Tensor, trans: Optional[Tensor] = None) -> Tensor:
        return self.pool(data, rois, trans)

    def extra_repr(self) -> str:
        return (
            f"spatial_scale={self.spatial_scale}, output_dim={self.output_dim}, group_size={self.group_size}, "
            f"pooled_size={self.pooled_size}, part_size={self.part_size}, "
            f"sample_per_part={self.sample_per_part}, trans_std={self.trans_std}"
        )


class DeformPSROIPoolPack(DeformPSROIPool):
    """Deformable (PS-)RoI pooling that learns its own offsets.

    * ``group_size == 1`` — the paper's Faster R-CNN head (sec. 2.2): plain RoI pooling
      (no offsets) -> fc -> ReLU -> fc (zero-initialised) -> normalized offsets
      [R, 2, P, P], then deformable RoI pooling with ``trans_std`` γ = 0.1.
    * ``group_size > 1`` — the R-FCN head: a 1x1 conv offset branch (zero-initialised)
      on ``data`` gives 2*num_offset_classes*group_size² score maps, pooled
      position-sensitively without offsets into trans [R, 2*num_offset_classes, P, P].
      ``num_offset_classes`` = 1 (class-agnostic) or output_dim (class-specific).
    """

    def __init__(
        self,
        spatial_scale: float,
        output_dim: int,
        group_size: int,
        pooled_size: int,
        part_size: int = 0,
        sample_per_part: int = 4,
        trans_std: float = 0.1,
        num_offset_classes: int = 1,
        deform_fc_channels: int = 1024,
    ) -> None:
        super().__init__(spatial_scale, output_dim, group_size, pooled_size, part_size, sample_per_part, trans_std)
        if output_dim % num_offset_classes:
            raise ValueError(
                f"DeformPSROIPoolPack: num_offset_classes {num_offset_classes} must divide output_dim {output_dim}"
            )
        if (part_size or pooled_size) != pooled_size:
            raise ValueError(
                f"DeformPSROIPoolPack: part_size {part_size} must equal pooled_size {pooled_size} "
                "(learned offsets are one per output bin)"
            )
        self.num_offset_classes = num_offset_classes
        in_channels = output_dim * group_size * group_size
        if group_size == 1:
            p2 = pooled_size * pooled_size
            self.offset_fc = nn.Sequential(
                nn.Linear(p2 * in_channels, deform_fc_channels),
                nn.ReLU(inplace=True),
                nn.Linear(deform_fc_channels, p2 * 2 * num_offset_classes),
            )
            nn.init.zeros_(self.offset_fc[-1].weight)
            nn.init.zeros_(self.offset_fc[-1].bias)
            self.offset_conv = None
        else:
            self.offset_fc = None
            self.offset_conv = nn.Conv2d(in_channels, 2 * num_offset_classes * group_size * group_size, 1)
            nn.init.zeros_(self.offset_conv.weight)
            nn.init.zeros_(self.offset_conv.bias)

    def offsets(self, data: Tensor, rois: Tensor) -> Tensor:
        P = self.pooled_size
        if self.offset_fc is not None:
            plain = self.pool(data, rois, None)
            return self.offset_fc(plain.flatten(1)).view(-1, 2 * self.num_offset_classes, P, P)
        assert self.offset_conv is not None
        return self.pool(self.offset_conv(data), rois, None, output_dim=2 * self.num_offset_classes)

    def forward(self, data: Tensor, rois: Tensor) -> Tensor:  # type: ignore[override]
        return self.pool(data, rois, self.offsets(data, rois))

    def extra_repr(self) -> str:
        return super().extra_repr() + f", num_offset_classes={self.num_offset_classes}"


def example_rois_scale(model: nn.Module, image: Sequence[int]) -> Optional[float]:
    """For generated example RoIs (dcn-export --input rois:Rx5): when the 4-D input of shape ``image``
    is this pooling's own feature map (output_dim*group_size^2 channels), RoIs in image pixels are
    1/spatial_scale larger; the scale, else None."""
    pool = next((m for m in model.modules() if isinstance(m, DeformPSROIPool)), None)
    if pool is not None and image[1] == pool.output_dim * pool.group_size ** 2:
        return pool.spatial_scale
    return None
