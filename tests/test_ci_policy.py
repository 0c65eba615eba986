"""helpers/ci_policy.py: a piece that set-up or the machine image provides skips here when missing,
and fails under CI, where a skip would report a broken set-up as green."""
from __future__ import annotations

import pytest

from helpers.ci_policy import missing, require_module


@pytest.mark.parametrize("ci", ["", "true"])
def test_missing_skips_here_and_fails_under_ci(monkeypatch, ci):
    monkeypatch.setenv("CI", ci)
    expected = pytest.fail.Exception if ci else pytest.skip.Exception
    with pytest.raises(expected, match="nvcc"):
        missing("nvcc (CUDA toolkit) not found")


@pytest.mark.parametrize("ci", ["", "true"])
def test_require_module(monkeypatch, ci):
    monkeypatch.setenv("CI", ci)
    assert require_module("json").__name__ == "json"
    expected = pytest.fail.Exception if ci else pytest.skip.Exception
    with pytest.raises(expected, match="no_such_module_dcn"):
        require_module("no_such_module_dcn")
    with pytest.raises(expected, match="the reason given"):
        require_module("no_such_module_dcn", reason="the reason given")
