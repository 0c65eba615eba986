"""Fuzz dcn::DCNv3 and dcn::DCNv4 through ONNX Runtime + libdcn_ort: the generated adversarial cases of
tests/helpers/fuzz_dcn.py, each in a forked child with an address-space limit and an alarm (the runner of
tests/test_fuzz_ops.py). A case passes with a clear one-line error where the contract expects one, or an
output equal to the float64 / float32 reference where it expects a result; never a signal, a timeout, an
allocation failure or an output that differs."""
from __future__ import annotations

import collections
import time

import pytest

from helpers import fuzz_dcn
from helpers.built_libs import require
from test_fuzz_ops import _preload, run_forked, verdict
from trt_runtime import plugins
from helpers.ci_policy import require_module

torch = require_module("torch")


@pytest.fixture(scope="module")
def lib() -> str:
    path = str(require(plugins.ort_library))
    _preload(path)
    return path


def test_fuzz_dcnv3_dcnv4(lib):
    torch.set_num_threads(1)
    cases = fuzz_dcn.all_cases()
    assert len(cases) >= 300
    ok = sum(c["expect"] == "ok" for c in cases)
    assert 60 <= ok <= len(cases) - 100, ok  # both kinds well represented
    failures, counts = [], collections.Counter()
    t0 = time.monotonic()
    for case in cases:
        res = run_forked(case, lib)
        counts[case["category"]] += 1
        why = verdict(case, res)
        if why:
            failures.append(f"{case['id']} {case['attrs']} {case['poison']} {case['inputs']}: {why}")
    print(f"fuzz dcnv3/v4: {len(cases)} cases ({ok} ok) in {time.monotonic() - t0:.1f}s; "
          + ", ".join(f"{k} {v}" for k, v in counts.items()))
    assert not failures, f"{len(failures)} of {len(cases)} cases misbehaved:\n" + "\n".join(failures[:40])


@pytest.mark.parametrize("change,message", [
    (dict(kernel_shape=[0, 3]), "DCNv4 'fuzz': attribute kernel_shape = [0, 3], expected values >= 1"),
    (dict(kernel_shape=[3, 1 << 20]), "DCNv4 'fuzz': attribute kernel_shape = [3, 1048576], expected values <= 32 "
                                      "(limit)"),
    (dict(remove_center=1, kernel_shape=[4, 4]),
     "DCNv4 'fuzz': attribute remove_center = 1 with kernel_shape = [4, 4], expected an odd square kernel"),
])
def test_errors_are_one_line_and_name_the_node(lib, change, message):
    c = fuzz_dcn.case("DCNv4", change)
    c.update(id="msg", category="x")
    res = run_forked(c, lib)
    assert res["result"] == "error" and message in res["message"], res
