"""Plain-PyTorch reference of ``dcn::DCNv4`` from the contract (shared/design/ops.md): the truth every other
implementation is tested against. The sampling is the aggregation ops' (exporter/ops/aggregation.py);
here DCNv4's input: one packed offset_mask [N, Ho, Wo, K], K >= group*P*3, group g reading channels
[g*3P, g*3P + 3P) as dx_0, dy_0, ..., dx_{P-1}, dy_{P-1}, m_0, ..., m_{P-1}; channels from group*3P on
are padding and ignored. Masks are used raw (no softmax)."""
from __future__ import annotations

from typing import Optional, Sequence

from torch import Tensor

from dcn_base.errors import ContractError
from exporter.ops.aggregation import aggregate, checked
from exporter.ops.aggregation_spec import label

from .spec import SPEC, packed_channels


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
    a, ho, wo, P = checked(SPEC.op_type, x, node, group_channels, kernel_shape=kernel_shape, strides=strides,
                           pads=pads, dilations=dilations, group=group, offset_scale=offset_scale,
                           remove_center=remove_center)
    N, G = x.shape[0], a["group"]
    om = offset_mask
    if om.dim() != 4 or list(om.shape[:3]) != [N, ho, wo] or om.shape[3] < 3 * G * P:
        raise ContractError(f"{label(SPEC.op_type, node)}: offset_mask has shape {list(om.shape)}, expected "
                            f"[{N}, {ho}, {wo}, K] with K >= group*P*3 = {3 * G * P} (P = {P})")
    off, mask = unpack(om, G, P)
    return aggregate(x, off, mask, a, ho, wo)


def example_inputs(seed: int = 0) -> tuple[dict, dict]:
    """A small valid case (float32 arrays by input name, attributes by contract name; a 3x3 kernel with
    dilation 2, offset_scale 0.5, 2 groups of 8 channels, K = 54 padded to 56 as the DCNv4 package pads
    it): for generic tests that run every registered op (FP16 conversion, fuzz cases)."""
    import numpy as np  # noqa: PLC0415  (tests only)

    rng = np.random.default_rng(seed)
    attrs = {"kernel_shape": [3, 3], "strides": [1, 1], "pads": [2, 2, 2, 2], "dilations": [2, 2], "group": 2,
             "group_channels": 8, "offset_scale": 0.5, "remove_center": 0}
    K = packed_channels(2, (3, 3), 0)
    inputs = {"X": rng.standard_normal((2, 5, 6, 16)).astype(np.float32),
              "offset_mask": (2 * rng.standard_normal((2, 5, 6, K))).astype(np.float32)}
    return inputs, attrs
