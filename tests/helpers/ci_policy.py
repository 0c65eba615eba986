"""What a missing piece does to a test: it skips here and fails under CI (CI set).

CI runs `bash .ci/run` on this project's machine image, which has nvcc, g++, binutils and git, with
shared/ (golden data, the mmcv wheel) beside the clone; scripts/setup.sh installs everything else
(the C++ libraries, kernel-lens's TensorRT headers, onnxruntime, onnxconverter-common, transformers,
matplotlib, nvidia-pytriton, mmcv and mmdet). There a missing piece is a broken set-up, and a skip
would report it as green. Pieces CI never has (a GPU, TensorRT's libraries, detectron2, AMX on
another CPU) are not asked for through this module: they stay skips everywhere.
"""
from __future__ import annotations

import os
from types import ModuleType
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return bool(os.environ.get("CI"))


def missing(reason: str) -> NoReturn:
    """Skips naming `reason`; under CI fails with it (module level too: a collection error there)."""
    if in_ci():
        pytest.fail(f"{reason} [CI has this: scripts/setup.sh or the machine image should provide it]",
                    pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def require_module(name: str, reason: str | None = None) -> ModuleType:
    """pytest.importorskip, except that under CI a module that does not import fails the test."""
    try:
        return pytest.importorskip(name, reason=reason)
    except pytest.skip.Exception as skipped:
        missing(str(skipped.msg) if reason is None else reason)
