"""Tolerances per dtype, in one place: every comparison in the project reads them from here.

(atol, rtol) for comparing an implementation against the float64 PyTorch reference.
Unit tests pass a value when |got - ref| <= atol + rtol * |ref| (numpy.isclose /
torch.testing.assert_close). Polygraphy comparisons (dcn-compare, dcn-export --check)
use Polygraphy's element-wise rule with the same numbers: an element fails only when
|got - ref| > atol and |got - ref| / |ref| > rtol, i.e. it passes when
|got - ref| <= max(atol, rtol * |ref|) -- never looser than the unit tests' rule.
Whole-model comparisons scale atol by the output's range (``model_tolerance``).
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


def output_scale(*references) -> float:
    """max(1, max |ref|) over the finite values of one output (all iterations given).

    The table's atol is per op on unit-scale data. Through a whole network rounding grows
    with the activations' scale, so whole-model comparisons (dcn-export's check,
    dcn-compare) take atol relative to the output's range: atol * output_scale(ref).
    """
    import numpy as np

    scale = 1.0
    for ref in references:
        a = np.abs(np.asarray(ref, dtype=np.float64))
        a = a[np.isfinite(a)]
        if a.size:
            scale = max(scale, float(a.max()))
    return scale


def model_tolerance(dtype, *references) -> tuple[float, float]:
    """(atol, rtol) for one output of a whole model: the dtype's row, atol times output_scale."""
    atol, rtol = tolerance(dtype)
    return atol * output_scale(*references), rtol
