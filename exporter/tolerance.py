"""Tolerances per dtype, in one place: every comparison in the project reads them from here.

(atol, rtol) for comparing an implementation against the float64 PyTorch reference.
A value passes when |got - ref| <= atol + rtol * |ref| (numpy.isclose semantics).
"""
from __future__ import annotations

TOLERANCES: dict[str, tuple[float, float]] = {
    "float64": (1e-9, 1e-9),
    "float32": (1e-4, 1e-4),
    # FP16 storage, FP32 sampling and accumulation (cuBLAS compute 32F).
    "float16": (2e-2, 2e-2),
}


def tolerance(dtype) -> tuple[float, float]:
    """(atol, rtol) for a numpy / torch dtype or its name."""
    name = str(dtype).replace("torch.", "")
    if name in ("half",):
        name = "float16"
    if name in ("float", "single"):
        name = "float32"
    if name in ("double",):
        name = "float64"
    try:
        return TOLERANCES[name]
    except KeyError:
        raise KeyError(f"no tolerance for dtype {name!r}; expected one of {sorted(TOLERANCES)}") from None
