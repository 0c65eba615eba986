"""Generated adversarial single-node cases for dcn::DCNv3 and dcn::DCNv4 (tests/test_fuzz_dcnv.py), in the
format of tests/helpers/fuzz_cases.py (op, attrs, inputs, poison, expect, category, id) plus ``reference``
(the float64 / float32 truth the fuzz runner calls).

Each category walks the contract (exporter/ops/aggregation_spec.py: attributes, MINIMUM, LIMITS): every bound
and one past it, values that wrap int32 / int64 products (group*group_channels, pads), kernel 0 and huge,
remove_center with even or non-square kernels, group*group_channels not matching C, DCNv4's K one short,
NaN / inf / huge values in every input (offsets included), every dimension off by one or zero, wrong
element types. The expectation comes from the contract itself: a case is 'ok' exactly when its attributes
pass the contract's check and its inputs have the shapes they imply.
"""
from __future__ import annotations

from typing import Any, Iterator, Optional

import numpy as np

from dcn_base.errors import ContractError
from exporter.contract import conv_out_size as out_size
from exporter.ops.aggregation_spec import ATTRS, LIMITS, MINIMUM, check_attrs, points
from exporter.ops.dcnv3.spec import SPEC as DCNV3
from exporter.ops.dcnv4.spec import SPEC as DCNV4
from helpers.fuzz_cases import SPECIAL_FLOATS, WRAPPING

BASE = dict(N=1, H=5, W=6)
ATTR_BASE = dict(kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1], dilations=[1, 1], group=2,
                 group_channels=4, offset_scale=1.0, remove_center=0)
MAX_OUT = 4096  # output positions a case may have (inputs stay small)


def _geometry(attrs: dict, dims: dict) -> Optional[tuple[int, int, int, int]]:
    """(Ho, Wo, G, P) when the attributes pass the contract and the output is small, else None."""
    try:
        a = check_attrs(DCNV3.op_type, "", *(attrs[x.name] for x in ATTRS))
    except ContractError:
        return None
    (kh, kw), (sh, sw), p, (dh, dw) = a["kernel_shape"], a["strides"], a["pads"], a["dilations"]
    ho, wo = out_size(dims["H"], p[0], p[2], dh, kh, sh), out_size(dims["W"], p[1], p[3], dw, kw, sw)
    if not (1 <= ho and 1 <= wo and ho * wo <= MAX_OUT) or a["group"] * a["group_channels"] > 4096:
        return None
    return ho, wo, a["group"], points(a["kernel_shape"], a["remove_center"])


def case(op: str, attrs: dict[str, Any], *, dims: Optional[dict] = None, shape_fix: Optional[dict] = None,
         k_extra: int = 5) -> dict:
    """A case whose inputs fit `attrs` where they can (else small ones: the attribute is the error)."""
    a = {**ATTR_BASE, **attrs}
    d = {**BASE, **(dims or {})}
    geo = _geometry(a, d)
    ok_c = isinstance(a["group"], int) and isinstance(a["group_channels"], int) and \
        0 < a["group"] * a["group_channels"] <= 4096
    C = a["group"] * a["group_channels"] if ok_c else 8
    ho, wo, G, P = geo if geo else (1, 1, 1, 1)
    inputs = {"X": ([d["N"], d["H"], d["W"], C], "float32")}
    if op == DCNV3.op_type:
        inputs["offset"] = ([d["N"], ho, wo, 2 * G * P], "float32")
        inputs["mask"] = ([d["N"], ho, wo, G * P], "float32")
    else:
        inputs["offset_mask"] = ([d["N"], ho, wo, 3 * G * P + k_extra], "float32")
    for name, shape in (shape_fix or {}).items():
        inputs[name] = (shape, inputs[name][1])
    fits = geo is not None and _fits(op, a, d, inputs)
    return {"op": op, "attrs": a, "inputs": inputs, "poison": {}, "dims": d, "expect": "ok" if fits else "error",
            "reference": reference, "magnitude": magnitude}


def _fits(op: str, a: dict, d: dict, inputs: dict) -> bool:
    ho, wo, G, P = _geometry(a, d)
    if any(len(s) != 4 or dt != "float32" for s, dt in inputs.values()):
        return False
    x = inputs["X"][0]
    if x[1:] != [d["H"], d["W"], a["group"] * a["group_channels"]] or x[1] < 1 or x[2] < 1:
        return False
    want = {"offset": 2 * G * P, "mask": G * P} if op == DCNV3.op_type else {"offset_mask": 3 * G * P}
    for name, ch in want.items():
        s = inputs[name][0]
        if s[:3] != [x[0], ho, wo] or (s[3] != ch if op == DCNV3.op_type else s[3] < ch):
            return False
    return True


def reference(case: dict, t: dict, dtype) -> np.ndarray:
    """The op's reference on the case's feeds (offset_scale as float32, as ONNX stores it)."""
    from exporter.ops.dcnv3.reference import dcnv3
    from exporter.ops.dcnv4.reference import dcnv4

    a = dict(case["attrs"], offset_scale=float(np.float32(case["attrs"]["offset_scale"])))
    if case["op"] == DCNV3.op_type:
        return dcnv3(t["X"].to(dtype), t["offset"].to(dtype), t["mask"].to(dtype), **a).numpy()
    return dcnv4(t["X"].to(dtype), t["offset_mask"].to(dtype), **a).numpy()


def magnitude(case: dict, t: dict) -> np.ndarray:
    """Per output element, the float64 sum of its terms' magnitudes (the fuzz runner's overflow zone): the
    reference on |X| and |mask| with the same offsets (bilinear weights are >= 0)."""
    import torch

    t = dict(t, X=t["X"].abs())
    if case["op"] == DCNV3.op_type:
        t["mask"] = t["mask"].abs()
    else:  # offset_mask: the channels the op's own unpack reads as masks
        from exporter.ops.dcnv4.reference import unpack

        a = case["attrs"]
        channels = torch.arange(t["offset_mask"].shape[-1])
        _, masks = unpack(channels.reshape(1, 1, 1, -1), a["group"], points(a["kernel_shape"], a["remove_center"]))
        is_mask = torch.isin(channels, masks.flatten())
        t["offset_mask"] = torch.where(is_mask, t["offset_mask"].abs(), t["offset_mask"])
    return reference(case, t, t["X"].dtype)


def _bounds(name: str) -> list[int]:
    lo, hi = MINIMUM[name], LIMITS.get(name)
    vals = [lo - 1, lo, lo + 1, -1] + ([hi - 1, hi, hi + 1] if hi else []) + list(WRAPPING)
    return list(dict.fromkeys(vals))


def attribute_cases(op: str) -> Iterator[dict]:
    for name in ("kernel_shape", "strides", "pads", "dilations"):
        for pos in range(len(ATTR_BASE[name])):
            for v in _bounds(name):
                vals = list(ATTR_BASE[name])
                vals[pos] = v
                yield dict(case(op, {name: vals}), category="attribute bounds")
        for n in (0, 1, len(ATTR_BASE[name]) + 1):
            yield dict(case(op, {name: [1] * n}), category="attribute bounds")
    for name in ("group", "group_channels"):
        for v in _bounds(name) + [3, 5]:
            yield dict(case(op, {name: v}), category="attribute bounds")
    for v in (-1, 0, 1, 2, 2**32):
        for k in ([3, 3], [2, 2], [4, 4], [3, 5], [1, 1], [5, 5]):
            yield dict(case(op, {"remove_center": v, "kernel_shape": k, "pads": [k[0] // 2, k[1] // 2] * 2}),
                       category="remove_center")
    for label, v in SPECIAL_FLOATS + (("zero", 0.0), ("negative", -1.5)):
        yield dict(case(op, {"offset_scale": v}), category="offset_scale")
    for name, bad in (("kernel_shape", 3), ("group", 2.0), ("offset_scale", 1), ("pads", "same"),
                      ("remove_center", [0])):
        c = case(op, {})
        c["attrs"] = dict(c["attrs"], **{name: bad})
        yield dict(c, category="attribute type", expect="error")
    for name in ("kernel_shape", "group_channels"):
        c = case(op, {})
        del c["attrs"][name]
        yield dict(c, category="attribute missing", expect="error")


def product_cases(op: str) -> Iterator[dict]:
    """group*group_channels (and with P) wrapping int64 to what the inputs have; pads near int64's end."""
    for g, gc in ((2**62, 4), (2**32, 2**32), (2**63 - 1, 2), (4, 2**62 + 2)):
        c = case(op, {"group": g, "group_channels": gc}, shape_fix={"X": [1, 5, 6, (g * gc) % 2**64 % 64 or 8]})
        yield dict(c, category="wrapped products", expect="error")
    for pad in (2**63 - 1, 2**62, -(2**63)):
        yield dict(case(op, {"pads": [pad, 0, 0, 0]}), category="wrapped products", expect="error")


def channel_cases(op: str) -> Iterator[dict]:
    for g, gc in ((2, 3), (3, 4), (1, 16), (4, 2), (8, 1)):  # C = 8 always: matches only when g*gc == 8
        c = case(op, {"group": g, "group_channels": gc}, shape_fix={"X": [1, 5, 6, 8]})
        yield dict(c, category="group*group_channels vs C")
    if op == DCNV4.op_type:
        for extra in (-1, 0, 1, 7, 500):  # K = 3GP + extra: one short is an error
            yield dict(case(op, {}, k_extra=extra), category="DCNv4 K")


def value_cases(op: str) -> Iterator[dict]:
    names = ["X", "offset", "mask"] if op == DCNV3.op_type else ["X", "offset_mask"]
    for name in names:
        for label, v in SPECIAL_FLOATS:
            for where in ("one", "all"):
                c = case(op, {"pads": [2, 1, 0, 3], "offset_scale": 0.5})
                c["poison"] = {name: (where, v)}
                yield dict(c, category="NaN/inf/huge values")


def shape_cases(op: str) -> Iterator[dict]:
    base = case(op, {})
    for name, (shape, _) in base["inputs"].items():
        for axis in range(4):
            for delta in (+1, -shape[axis]):
                s = list(shape)
                s[axis] += delta
                yield dict(case(op, {}, shape_fix={name: s}), category="wrong shapes")
        for s in (shape[:3], shape + [1]):
            yield dict(case(op, {}, shape_fix={name: s}), category="wrong shapes")
    yield dict(case(op, {}, dims={"N": 0}), category="empty tensors")
    yield dict(case(op, {}, dims={"N": 3, "H": 1, "W": 1}), category="empty tensors")
    for name, (shape, _) in base["inputs"].items():
        for dtype in ("float64", "int64", "float16"):
            c = case(op, {})
            c["inputs"] = dict(c["inputs"], **{name: (shape, dtype)})
            yield dict(c, category="wrong dtypes", expect="error")


def all_cases() -> list[dict]:
    cases = [c for op in (DCNV3.op_type, DCNV4.op_type)
             for gen in (attribute_cases, product_cases, channel_cases, value_cases, shape_cases) for c in gen(op)]
    for i, c in enumerate(cases):
        c["id"] = f"{i:03d}-{c['op']}-{c['category'].replace(' ', '_').replace('/', '_')}"
    return cases
