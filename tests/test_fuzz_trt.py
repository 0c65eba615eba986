"""The fuzz's attribute cases (tests/helpers/fuzz_cases.py) through the TensorRT creators and configurePlugin
(the host harness of tests/test_trt_contract.py), and dcn-build's check before TensorRT's parser.

TensorRT's ONNX parser hands INT / INTS attributes to a creator as int32, wrapping larger
values: the creator sees the wrapped value. So a value that fits int32 must be accepted by the
creator exactly when the contract accepts it, and configurePlugin must accept exactly the
cases whose inputs fit; a value beyond int32 must be refused before the parser by dcn-build
(exporter.contract.check_node_attributes), one line in the contract's style.
"""
from __future__ import annotations

import pytest

from helpers import fuzz_cases
from exporter.contract import OPS, check_node_attributes
from dcn_base.errors import ContractError
from test_trt_contract import hx  # noqa: F401  (the harness fixture)

ATTR_CATEGORIES = ("conv attribute bounds", "pool attribute bounds", "wrapped products", "conv attribute type",
                   "pool attribute type", "roi pool attribute bounds", "past the limits")
I32 = 2**31
SCALARS = {a.name for op in OPS.values() for a in op.attrs if a.kind != "INTS"}


def _fits_int32(value) -> bool:
    vals = value if isinstance(value, list) else [value]
    return all(isinstance(v, int) and -I32 <= v < I32 for v in vals)


def _attribute_cases() -> list[dict]:
    return [c for c in fuzz_cases.all_cases() if c["category"] in ATTR_CATEGORIES]


def _int_attrs(case: dict) -> dict:
    return {k: v for k, v in case["attrs"].items() if not isinstance(v, float)}


def test_values_beyond_int32_are_refused_before_the_parser():
    n = 0
    for case in _attribute_cases():
        attrs = case["attrs"]
        if all(_fits_int32(v) for v in _int_attrs(case).values() if not isinstance(v, str)):
            continue
        if any(isinstance(v, (str, float)) or (isinstance(v, list) and not v) for v in attrs.values()):
            continue
        n += 1
        with pytest.raises(ContractError) as err:
            check_node_attributes(case["op"], "fuzz", attrs)
        msg = str(err.value)
        assert msg.startswith(f"{case['op']} 'fuzz': attribute ") and "\n" not in msg, msg
    assert n >= 50


def test_creators_and_configure_follow_the_contract(hx):
    checked = 0
    failures = []
    for case in _attribute_cases():
        attrs = case["attrs"]
        if any(isinstance(v, str) or (isinstance(v, list) and not all(isinstance(x, int) for x in v))
               for v in attrs.values()):
            continue
        if not all(_fits_int32(v) for v in _int_attrs(case).values()):
            continue  # refused before the parser (test above)
        if any(isinstance(v, list) and (not v or (len(v) == 1 and k in SCALARS)) for k, v in attrs.items()):
            continue  # an empty INTS is no field (= absent); [v] for an INT is the same kINT32 field as v
        checked += 1
        hx.log()
        h = hx.create(case["op"], "fuzz", attrs)
        log = hx.log()
        if case["expect"] == "ok":
            if not h:
                failures.append(f"{case['id']} {attrs}: creator refused a valid case: {log}")
                continue
        elif not h:
            if f"{case['op']} 'fuzz': " not in log:
                failures.append(f"{case['id']} {attrs}: refused without the contract's message: {log!r}")
            continue
        shapes = [s for s, _ in (v for v in case["inputs"].values() if v is not None)]
        rc, _ = hx.configure(h, shapes, [1, 1, 1, 1])
        if (rc == 0) != (case["expect"] == "ok"):
            failures.append(f"{case['id']} {attrs}: configurePlugin rc {rc}, expected "
                            f"{'success' if case['expect'] == 'ok' else 'a refusal'}: {hx.log()}")
    assert checked >= 150
    assert not failures, "\n".join(failures[:30])
