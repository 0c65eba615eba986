"""Run a traced graph (TorchScript, torch.export program) in another float precision.

Tracing fixes the dtype of constants a deformable op's Python wrapper creates -- torchvision's
``deform_conv2d`` makes a float32 zero bias / mask when none is given -- so the graph converted
with ``.double()`` / ``.half()`` hands the op mixed dtypes and PyTorch refuses it. Inside
``LikeData()`` every floating tensor argument of ``torchvision::deform_conv2d`` and
``dcn::deform_conv2d`` takes the input's dtype, and the pooling ops (``dcn::deform_psroi_pool``,
``dcn::deform_roi_pool``) get trans / offset in the data's dtype and rois in float32 (float64 with float64 data), as the exported ONNX graph does
with its casts. Used for the float64 reference and PyTorch's own float16 run.
"""
from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode


def _targets():
    out = {torch.ops.dcn.deform_conv2d.default: "conv", torch.ops.dcn.deform_psroi_pool.default: "pool",
           torch.ops.dcn.deform_roi_pool.default: "pool",
           torch.ops.dcn.multi_scale_deformable_attention.default: "msda"}
    try:
        import torchvision  # noqa: F401

        out[torch.ops.torchvision.deform_conv2d.default] = "conv"
    except Exception:  # noqa: BLE001
        pass
    return out


class LikeData(TorchDispatchMode):
    """Casts the floating arguments of the deformable ops to their data's dtype (module doc)."""

    def __init__(self) -> None:
        super().__init__()
        from . import ops  # noqa: F401  (registers torch.ops.dcn.*)

        self._targets = _targets()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        kind = self._targets.get(func)
        if kind is not None and args and isinstance(args[0], torch.Tensor) and args[0].is_floating_point():
            dtype = args[0].dtype
            rois_dtype = torch.float64 if dtype == torch.float64 else torch.float32

            def fix(i, a):
                if not isinstance(a, torch.Tensor) or not a.is_floating_point():
                    return a
                want = rois_dtype if (kind == "pool" and i == 1) or (kind == "msda" and i == 3) else dtype
                return a if a.dtype == want else a.to(want)

            args = tuple(fix(i, a) for i, a in enumerate(args))
        return func(*args, **kwargs)


def cast_constants(module: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """``module.to(dtype)`` misses plain tensor attributes: the constants of a converted TorchScript
    graph (frozen parameters) or a torch.export program. Cast the floating ones too; in place."""
    for m in module.modules():
        for name, value in list(vars(m).items()):
            if isinstance(value, torch.Tensor) and not isinstance(value, torch.nn.Parameter) \
                    and value.is_floating_point() and value.dtype != dtype:
                try:
                    setattr(m, name, value.to(dtype))
                except (AttributeError, RuntimeError, TypeError):  # e.g. a ScriptModule's typed attribute
                    pass
    return module
