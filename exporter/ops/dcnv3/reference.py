"""Plain-PyTorch reference of ``dcn::DCNv3`` from the contract (shared/design/ops.md): the truth every
other implementation (ONNX Runtime op, CUDA kernels, TensorRT plugin) is tested against. The sampling is
the aggregation ops' (exporter/ops/aggregation.py: geometry, bilinear, masks, float64 exact, float32 sums
for float32 / float16); here DCNv3's inputs: offsets and masks as two tensors, masks used as given."""
from __future__ import annotations

from typing import Optional, Sequence

from torch import Tensor

from dcn_base.errors import ContractError
from exporter.ops.aggregation import aggregate, checked
from exporter.ops.aggregation_spec import label

from .spec import SPEC


def _check_io(op: str, name: str, t: Tensor, want: list[int], formula: str) -> None:
    if list(t.shape) != want:
        raise ContractError(f"{op}: {name} has shape {list(t.shape)}, expected {want} ({formula})")


def dcnv3(x: Tensor, offset: Tensor, mask: Tensor, *, kernel_shape: Sequence[int], strides: Sequence[int] = (1, 1),
          pads: Sequence[int] = (0, 0, 0, 0), dilations: Sequence[int] = (1, 1), group: int = 1,
          group_channels: Optional[int] = None, offset_scale: float = 1.0, remove_center: int = 0,
          node: str = "") -> Tensor:
    """``dcn::DCNv3``: X [N, H, W, C], offset [N, Ho, Wo, G*P*2], mask [N, Ho, Wo, G*P] -> [N, Ho, Wo, C].

    ``group_channels`` defaults to C / group. The mask is used as given (softmax is the module's)."""
    a, ho, wo, P = checked(SPEC.op_type, x, node, group_channels, kernel_shape=kernel_shape, strides=strides,
                           pads=pads, dilations=dilations, group=group, offset_scale=offset_scale,
                           remove_center=remove_center)
    op = label(SPEC.op_type, node)
    N, G = x.shape[0], a["group"]
    _check_io(op, "offset", offset, [N, ho, wo, G * P * 2], f"N, Ho, Wo, group*P*2 with P = {P}")
    _check_io(op, "mask", mask, [N, ho, wo, G * P], f"N, Ho, Wo, group*P with P = {P}")
    return aggregate(x, offset.reshape(N, ho, wo, G, P, 2), mask.reshape(N, ho, wo, G, P), a, ho, wo)


def example_inputs(seed: int = 0) -> tuple[dict, dict]:
    """A small valid case (float32 arrays by input name, attributes by contract name; stride 2, a 3x3
    kernel, 2 groups of 4 channels, offsets reaching off the map): for generic tests that run every
    registered op (FP16 conversion, fuzz cases)."""
    import numpy as np  # noqa: PLC0415  (tests only)

    rng = np.random.default_rng(seed)
    attrs = {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "dilations": [1, 1], "group": 2,
             "group_channels": 4, "offset_scale": 1.0, "remove_center": 0}
    ho, wo, G, P = 3, 4, 2, 9  # X 5x7
    inputs = {"X": rng.standard_normal((2, 5, 7, 8)).astype(np.float32),
              "offset": (2 * rng.standard_normal((2, ho, wo, G * P * 2))).astype(np.float32),
              "mask": rng.uniform(0, 1, (2, ho, wo, G * P)).astype(np.float32)}
    return inputs, attrs
