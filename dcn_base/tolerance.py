"""Tolerances per dtype, in one place: every comparison in the project reads them from here.

(atol, rtol) for comparing an implementation against the float64 PyTorch reference.
Unit tests pass a value when |got - ref| <= atol + rtol * |ref| (numpy.isclose /
torch.testing.assert_close). Whole-model comparisons use the same element rule with atol
scaled by the output's range (``output_scale``, ``model_tolerance``).

Whole models are judged by one rule, ``passes`` (used by ``dcn-export --check`` and
``dcn-compare``): the target's error against the float64 reference, measured in units of
the tolerance (``error_ratio``: max over elements of |got - ref| / (atol * scale + rtol * |ref|),
1 = at the row), must be at most ``max(1, FACTOR * own)``, where ``own`` is PyTorch's own
error in the target's precision (the model run in float32, or float16 for FP16 targets,
against its float64 run) in the same units. Deep networks amplify rounding; a correct
implementation is then about as far from the truth as PyTorch itself, never FACTOR times
farther, while a wrong one (one weight tensor off by 1%) is orders of magnitude farther. The
dtype's row is the floor: where PyTorch's own error is unknown or tiny, the row decides, and
so it does where PyTorch's own error is beyond rounding (over OWN_LIMIT: its runs disagree for
another reason, e.g. random numbers in forward).

The maximum is one element: a single outlier of PyTorch's own run (one flipped rounding before a
threshold) would widen the bound for every element, up to FACTOR * OWN_LIMIT units, where a
negated float16 output passes. So where ``own`` widens the bound, the spread must match too: the
share of the target's elements beyond the row (``share_beyond``) may be at most
``max(SHARE_FLOOR, FACTOR * own's share)``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

TOLERANCES: dict[str, tuple[float, float]] = {
    "float64": (1e-9, 1e-9),
    "float32": (1e-4, 1e-4),
    # FP16 storage, FP32 sampling and accumulation (cuBLAS compute 32F).
    "float16": (2e-2, 2e-2),
}


_ALIASES = {"half": "float16", "float": "float32", "single": "float32", "double": "float64"}


def _dtype_name(dtype) -> str:
    """'float16', 'int64', ... for a numpy dtype or scalar type (np.float16), a torch dtype or a name
    (torch's: 'half', 'float', 'double')."""
    if not isinstance(dtype, str):
        try:
            return np.dtype(dtype).name
        except TypeError:  # a torch dtype
            pass
    name = str(dtype).replace("torch.", "")
    return _ALIASES.get(name, name)


def tolerance(dtype) -> tuple[float, float]:
    """(atol, rtol) for a numpy / torch dtype or its name."""
    name = _dtype_name(dtype)
    try:
        return TOLERANCES[name]
    except KeyError:
        raise KeyError(f"no tolerance for dtype {name!r}; expected one of {sorted(TOLERANCES)}") from None


def exact_dtype(dtype) -> bool:
    """Integer and bool outputs (labels, indices, masks) are compared exactly: tolerance (0, 0), judged by
    the share of differing elements (``passes(exact=True)``)."""
    if hasattr(dtype, "is_floating_point"):  # a torch dtype (bfloat16 and friends: no numpy name)
        return not (dtype.is_floating_point or dtype.is_complex)
    return np.dtype(_dtype_name(dtype)).kind in "biu"


def output_tolerance(precision, ref_dtype) -> tuple[float, float]:
    """(atol, rtol) for one output: exact (0, 0) for integer and bool outputs, else the precision's row."""
    return (0.0, 0.0) if exact_dtype(ref_dtype) else tolerance(precision)


def output_scale(*references) -> float:
    """max(1, max |ref|) over the finite values of one output (all iterations given).

    The table's atol is per op on unit-scale data. Through a whole network rounding grows
    with the activations' scale, so whole-model comparisons (dcn-export's check,
    dcn-compare) take atol relative to the output's range: atol * output_scale(ref).
    """
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


# How much farther from the float64 truth than PyTorch's own run in the same precision a
# target may be (different summation orders and kernels; PyTorch's own error is one sample).
FACTOR = 4.0
# PyTorch's own error above this many tolerance units is not rounding (then the row decides).
OWN_LIMIT = 50.0


# Where PyTorch's own error widens the bound: the share of elements beyond the row that the
# target may always have (a correct target's rounding differs from PyTorch's in detail).
SHARE_FLOOR = 0.01


def equal_elements(g: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Elementwise: the same value on both sides, NaN counting as equal to NaN (the verdict's rule for
    non-finite values; dcn-compare's table reads it too)."""
    return (g == r) | (np.isnan(g) & np.isnan(r))


def same_non_finite(g: np.ndarray, r: np.ndarray) -> bool:
    """Non-finite values in the same places with the same values (NaN equal to NaN, inf of one sign)."""
    finite = np.isfinite(g) & np.isfinite(r)
    return bool(equal_elements(g, r)[~finite].all())


def share_beyond(got, ref, atol: float, rtol: float) -> float:
    """The share of elements beyond the row (|got - ref| > atol + rtol * |ref|, or a non-finite value the
    other side lacks): 0 to 1; 1 for a shape mismatch, 0 for no elements."""
    g = np.asarray(got, dtype=np.float64)
    r = np.asarray(ref, dtype=np.float64)
    if g.shape != r.shape:
        return 1.0
    if not r.size:
        return 0.0
    both = np.isfinite(g) & np.isfinite(r)
    bad = ~both & ~equal_elements(g, r)
    with np.errstate(invalid="ignore"):
        bad |= both & (np.abs(g - r) > atol + rtol * np.abs(r))
    return float(bad.sum()) / r.size


def error_ratio(got, ref, atol: float, rtol: float) -> float:
    """max |got - ref| / (atol + rtol * |ref|) over the finite elements (atol absolute, e.g. scaled
    by ``output_scale``): 1 is the tolerance's edge. inf for a shape mismatch or differing non-finites."""
    g = np.asarray(got, dtype=np.float64)
    r = np.asarray(ref, dtype=np.float64)
    if g.shape != r.shape:
        return math.inf
    if not same_non_finite(g, r):
        return math.inf
    both = np.isfinite(g) & np.isfinite(r)
    if not both.any():
        return 0.0
    d = np.abs(g[both] - r[both])
    den = atol + rtol * np.abs(r[both])
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(d == 0, 0.0, d / den)
    return float(np.nanmax(q)) if q.size else 0.0


@dataclass(frozen=True)
class Verdict:
    """The rule's numbers for one output: ``target`` and ``own`` in units of the tolerance row."""

    target: float
    own: Optional[float]  # PyTorch's own error in the target's precision; None: unknown
    bound: float  # max(1, FACTOR * own)
    factor: float = FACTOR
    share: Optional[float] = None  # the target's share of elements beyond the row; None: not judged
    share_bound: float = 1.0  # max(SHARE_FLOOR, FACTOR * own's share) where own widens the bound, else 1
    exact: bool = False  # integer / bool output: judged by the share of differing elements alone

    @property
    def passed(self) -> bool:
        if self.exact:
            return self.share is not None and self.share <= self.share_bound
        return self.target <= self.bound and (self.share is None or self.share <= self.share_bound)

    def text(self) -> str:
        if self.exact:
            return (f"exact: {100 * (self.share or 0):.3g}% of the elements differ, at most "
                    f"{100 * self.share_bound:.3g}% ({self.factor:g} x PyTorch's own share)")
        own = f"PyTorch's own {self.own:.3g}" if self.own is not None else "PyTorch's own unknown"
        if self.own is not None and self.own > OWN_LIMIT:
            own += f" (beyond rounding, > {OWN_LIMIT:g}: not used)"
        spread = ""
        if self.share is not None and self.share_bound < 1.0:
            spread = f"; {100 * self.share:.3g}% beyond the row, at most {100 * self.share_bound:.3g}%"
        return (f"error {self.target:.3g} x tolerance, {own} -> bound {self.bound:.3g} "
                f"(max(1, {self.factor:g} x own)){spread}")


def passes(target: float, own: Optional[float] = None, factor: float = FACTOR, *, share: Optional[float] = None,
           own_share: Optional[float] = None, exact: bool = False) -> Verdict:
    """The verdict rule (module doc): target <= max(1, factor * own), errors in tolerance units; where own
    widens the bound and both shares are given, share <= max(SHARE_FLOOR, factor * own_share). ``exact``
    (integer and bool outputs, tolerance (0, 0)): the share of differing elements at most factor times
    PyTorch's own (an index that rounding flips in PyTorch's own run too), none where that is unknown."""
    if exact:
        bound = factor * own_share if own_share is not None else 0.0
        return Verdict(float(target), own, 1.0, factor, share, min(1.0, bound), True)
    if own is not None and not math.isfinite(own):
        own = None  # PyTorch itself broke down (NaN / overflow): the row decides
    bound = max(1.0, factor * own) if own is not None and own <= OWN_LIMIT else 1.0
    share_bound = 1.0
    if bound > 1.0 and share is not None and own_share is not None:
        share_bound = min(1.0, max(SHARE_FLOOR, factor * own_share))
    return Verdict(float(target), own, bound, factor, share if share_bound < 1.0 else None, share_bound)
