"""One assertion for the non-finite values of an output (the kernels' inf / NaN semantics against a reference)."""
from __future__ import annotations

import numpy as np


def assert_same_nonfinite(got, want, what: str = "") -> None:
    """NaN, +inf and -inf exactly where ``want`` has them."""
    for kind in (np.isnan, np.isposinf, np.isneginf):
        np.testing.assert_array_equal(kind(got), kind(want), err_msg=f"{what} {kind.__name__}".strip())
