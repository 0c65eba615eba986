"""The built C++ libraries for the tests, through trt_runtime.plugins.

A library that is not built skips the tests that need it, with the one-line reason from
trt_runtime.plugins (which library, where it looked, how to build it); under CI (CI set)
it fails them instead, since CI builds everything first (helpers/ci_policy.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from helpers.ci_policy import missing
from trt_runtime import plugins


def require(locate: Callable[[], Path]) -> Path:
    try:
        return locate()
    except plugins.LibraryNotBuiltError as err:
        missing(str(err))
