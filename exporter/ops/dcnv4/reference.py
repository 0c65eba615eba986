"""Plain-PyTorch reference of ``dcn::DCNv4`` (FlashInternImage), from the contract: DCNv3's sampling
(exporter/ops/dcnv3/reference.py) with one packed input.

offset_mask [N, Ho, Wo, K], K >= group*P*3: group g reads channels [g*3P, g*3P + 3P) as
dx_0, dy_0, ..., dx_{P-1}, dy_{P-1}, m_0, ..., m_{P-1}; channels from group*3P on are padding
(DCNv4 pads K to a multiple of 8) and ignored. Masks are used raw (no softmax).
"""
from __future__ import annotations

from typing import Optional, Sequence

from torch import Tensor

from ...errors import ContractError
from ..dcnv3.reference import check_shapes, dcn_core
from ..dcnv3.spec import DCNV4, check_attrs


def unpack(offset_mask: Tensor, group: int, P: int) -> tuple[Tensor, Tensor]:
    """offset_mask [N, Ho, Wo, K] -> offsets [N, Ho, Wo, G, P, 2] (dx, dy) and masks [N, Ho, Wo, G, P]."""
    N, ho, wo, _ = offset_mask.shape
    packed = offset_mask[..., : group * 3 * P].reshape(N, ho, wo, group, 3 * P)
    return packed[..., : 2 * P].reshape(N, ho, wo, group, P, 2), packed[..., 2 * P:]


def dcnv4(x: Tensor, offset_mask: Tensor, *, kernel_shape: Sequence[int], strides: Sequence[int] = (1, 1),
          pads: Sequence[int] = (0, 0, 0, 0), dilations: Sequence[int] = (1, 1), group: int = 1,
          group_channels: Optional[int] = None, offset_scale: float = 1.0, remove_center: int = 0,
          node: str = "") -> Tensor:
    """``dcn::DCNv4``: X [N, H, W, C], offset_mask [N, Ho, Wo, K >= group*P*3] -> [N, Ho, Wo, C]."""
    if group_channels is None:
        group_channels = x.shape[-1] // max(int(group), 1) if x.dim() == 4 else 0
    a = check_attrs(DCNV4.op_type, node, kernel_shape, strides, pads, dilations, group, group_channels, offset_scale,
                    remove_center)
    ho, wo, P = check_shapes(DCNV4.op_type, x, a, node)
    op = f"{DCNV4.op_type}{f' {node!r}' if node else ''}"
    N, G = x.shape[0], a["group"]
    om = offset_mask
    if om.dim() != 4 or list(om.shape[:3]) != [N, ho, wo] or om.shape[3] < 3 * G * P:
        raise ContractError(f"{op}: offset_mask has shape {list(om.shape)}, expected [{N}, {ho}, {wo}, K] with "
                            f"K >= group*P*3 = {3 * G * P} (P = {P})")
    off, mask = unpack(om, G, P)
    return dcn_core(x, off, mask, a, ho, wo)
