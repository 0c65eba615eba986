"""Generated adversarial single-node cases for the dcn ops (tests/test_fuzz_ops.py, test_fuzz_trt.py).

Nothing here is a hand list of cases: each category walks the contract (the ops' entries,
exporter/ops/<op>/spec.py: attributes, their kinds, minimums and limits, input ranks) and derives
the hostile values from it — every bound and one past it, values that wrap int32 / int64 products,
NaN / inf / huge values in every input, every dimension of every input off by one or zero, wrong
element types. What needs no op knowledge is generated from every registered op's entry and its
small valid case (reference.py ``example_inputs``): wrong element types and ranks of every input,
attributes of the wrong kind or missing, values past every limit (:func:`spec_cases`); the rest
knows its op (which hostile values must still give the reference's answer).

A case is a dict: op, attrs (name -> value; absent = default), inputs (name -> (shape, dtype)
or None when left out), poison (input -> (where, value)), expect ('ok': output equal to the
reference; 'error': a clear error), category, id.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Iterator, Optional

from exporter import ops
import numpy as np

from exporter.contract import FLOAT, INDEX, INT, INTS, LIMITS, MAX_ELEMENTS, OpSpec, conv_out_size, specs
from exporter.contract import ops as contract_ops
from exporter.ops.deform_conv2d.spec import SPEC as DEFORM_CONV2D
from exporter.ops.deform_psroi_pool.spec import SPEC as DEFORM_PSROI_POOL
from exporter.ops.deform_roi_pool.spec import SPEC as DEFORM_ROI_POOL

I32 = 2**31
I64_MAX = 2**63 - 1
I64_MIN = -(2**63)
# values that wrap int32 fields or int64 products, whatever the bound
WRAPPING = (I32 - 1, I32, 2**32, 2**32 + 1, 2**62, I64_MAX, I64_MIN)
SPECIAL_FLOATS = (("nan", math.nan), ("inf", math.inf), ("-inf", -math.inf), ("huge", 3e38), ("-huge", -3e38),
                  ("1e30", 1e30), ("denormal", 1e-45))

# contract minimum of each integer attribute (the specs' Attr.minimum; one value per name across the ops)
MINIMUM = {a.name: a.minimum for s in specs() for a in s.attrs if a.minimum is not None}
assert all(a.minimum == MINIMUM[a.name] for s in specs() for a in s.attrs if a.minimum is not None), MINIMUM

# ---------------------------------------------------------------------------- DeformConv2d
CONV_BASE = dict(N=1, C=2, H=5, W=6, M=2, kH=2, kW=3)


def conv_case(attrs: dict[str, Any], *, dims: Optional[dict] = None, mask: bool = True, bias: bool = True,
              shape_fix: Optional[dict] = None) -> dict:
    """A DeformConv2d case whose inputs fit `attrs` (when they can) and `dims`."""
    d = {**CONV_BASE, **(dims or {})}
    st = attrs.get("strides", [1, 1])
    pd = attrs.get("pads", [0, 0, 0, 0])
    dl = attrs.get("dilations", [1, 1])
    g = attrs.get("group", 1)
    og = attrs.get("offset_group", 1)
    try:
        oh = conv_out_size(d["H"], pd[0], pd[2], dl[0], d["kH"], st[0])
        ow = conv_out_size(d["W"], pd[1], pd[3], dl[1], d["kW"], st[1])
    except (IndexError, ZeroDivisionError, TypeError):
        oh = ow = 1
    if not (1 <= oh <= 4096 and 1 <= ow <= 4096):
        oh = ow = 1  # inputs stay small; the attribute is the error
    kk = d["kH"] * d["kW"]
    g_in = g if isinstance(g, int) and 1 <= g <= d["C"] and d["C"] % g == 0 else 1
    og_in = og if isinstance(og, int) and 1 <= og <= 64 else 1
    inputs = {
        "X": ([d["N"], d["C"], d["H"], d["W"]], "float32"),
        "W": ([d["M"], d["C"] // g_in, d["kH"], d["kW"]], "float32"),
        "offset": ([d["N"], 2 * og_in * kk, oh, ow], "float32"),
        "B": ([d["M"]], "float32") if bias or mask else None,
        "mask": ([d["N"], og_in * kk, oh, ow], "float32") if mask else None,
    }
    for name, shape in (shape_fix or {}).items():
        inputs[name] = (shape, inputs[name][1] if inputs[name] else "float32")
    return {"op": DEFORM_CONV2D.op_type, "attrs": dict(attrs), "inputs": inputs, "poison": {}}


def _conv_valid(attrs: dict[str, Any]) -> bool:
    for name, value in attrs.items():
        vals = value if isinstance(value, list) else [value]
        limit = LIMITS[DEFORM_CONV2D.op_type].get(name, I64_MAX)
        if any(not isinstance(v, int) or v < MINIMUM[name] or v > limit for v in vals):
            return False
    d = CONV_BASE
    if "group" in attrs and (d["C"] % attrs["group"] or d["M"] % attrs["group"]):
        return False
    if "offset_group" in attrs and d["C"] % attrs["offset_group"]:
        return False
    if "kernel_shape" in attrs and attrs["kernel_shape"] != [d["kH"], d["kW"]]:
        return False
    st, pd, dl = attrs.get("strides", [1, 1]), attrs.get("pads", [0] * 4), attrs.get("dilations", [1, 1])
    oh = conv_out_size(d["H"], pd[0], pd[2], dl[0], d["kH"], st[0])
    ow = conv_out_size(d["W"], pd[1], pd[3], dl[1], d["kW"], st[1])
    return 1 <= oh <= 4096 and 1 <= ow <= 4096


def bound_values(name: str, op: str) -> list[int]:
    lo = MINIMUM[name]
    hi = LIMITS[op].get(name)
    vals = [lo - 1, lo, lo + 1, -1]
    if hi is not None:
        vals += [hi - 1, hi, hi + 1]
    vals += list(WRAPPING)
    return sorted(set(vals), key=vals.index)


def conv_attribute_cases() -> Iterator[dict]:
    defaults = {"strides": [1, 1], "pads": [0, 0, 0, 0], "dilations": [1, 1], "kernel_shape": [2, 3]}
    op = DEFORM_CONV2D.op_type
    for name in ("strides", "pads", "dilations", "kernel_shape"):
        for pos in range(len(defaults[name])):
            for v in bound_values(name, op):
                vals = list(defaults[name])
                vals[pos] = v
                attrs = {name: vals}
                c = conv_case(attrs)
                c.update(category="conv attribute bounds", expect="ok" if _conv_valid(attrs) else "error")
                yield c
        for n in (0, 1, len(defaults[name]) + 1):  # wrong value count (kernel_shape [] = absent: fine)
            attrs = {name: [1] * n}
            c = conv_case({}) | {"attrs": attrs}
            c.update(category="conv attribute bounds", expect="ok" if name == "kernel_shape" and n == 0 else "error")
            yield c
    for name in ("group", "offset_group"):
        for v in bound_values(name, op) + [2, 3, CONV_BASE["C"] + 1]:
            attrs = {name: v}
            c = conv_case(attrs)
            c.update(category="conv attribute bounds", expect="ok" if _conv_valid(attrs) else "error")
            yield c
    for name, bad in (("strides", 1.5), ("pads", "same"), ("group", [1, 1]), ("offset_group", 1.0),
                      ("dilations", 2)):
        c = conv_case({}) | {"attrs": {name: bad}}
        c.update(category="conv attribute type", expect="error")
        yield c


def conv_wrapped_product_cases() -> Iterator[dict]:
    """Attributes whose products with real (small or empty) dimensions wrap int64 to a size that fits."""
    kk = CONV_BASE["kH"] * CONV_BASE["kW"]
    for og in (2**61, 2**62, 2**63 // kk, 2**64 // (2 * kk) + 1, 2**32 + 1):
        og = min(og, I64_MAX)
        wrapped = (2 * og * kk) % 2**64
        channels = wrapped if wrapped < 64 else 0
        c = conv_case({"offset_group": og}, dims={"C": 0, "M": 0},
                      shape_fix={"offset": [1, channels, 4, 4], "mask": [1, (og * kk) % 2**64 % 64, 4, 4],
                                 "W": [0, 0, 2, 3], "B": [0]})
        c.update(category="wrapped products", expect="error")
        yield c
    for pad in (I64_MAX, I64_MAX - 5, 2**62, I64_MIN):
        for pos in range(4):
            pads = [0, 0, 0, 0]
            pads[pos] = pad
            c = conv_case({"pads": pads})
            c.update(category="wrapped products", expect="error")
            yield c
    for dil in (I64_MAX, 2**62, 2**61 + 1):
        c = conv_case({"dilations": [dil, 1]})
        c.update(category="wrapped products", expect="error")
        yield c


def poisoned_inputs(make: Callable[[], dict], names, category: str, values=()) -> Iterator[dict]:
    """A case of ``make()`` per input of ``names`` x SPECIAL_FLOATS x one / every element poisoned; every
    such case must give the reference's answer. ``values``: for an op whose output is a plain sum of
    products of these inputs with bilinear weights (>= 0; the other inputs are coordinates), the reference
    on their |values| bounds each output's terms (``magnitude_inputs``: where that bound passes float32's
    range, an inf is as right as the reference, tests/test_fuzz_ops.py). Averaging ops give none."""
    for name in names:
        for _, v in SPECIAL_FLOATS:
            for where in ("one", "all"):
                c = make()
                c["poison"] = {name: (where, v)}
                c.update(category=category, expect="ok")
                if values:
                    c["magnitude_inputs"] = tuple(values)
                yield c


def conv_value_cases() -> Iterator[dict]:
    yield from poisoned_inputs(lambda: conv_case({"pads": [1, 1, 1, 1]}), ("X", "W", "offset", "B", "mask"),
                               "conv NaN/inf/huge values", values=("X", "W", "B", "mask"))


def conv_constant_weight_cases() -> Iterator[dict]:
    """conv_value_cases' poisons of X, W and the offsets with W and B initializers ("constant"): the op
    keeps W's prepared forms (its pixel-major float copy and, where the CPU has AMX, the bf16x3 GEMM's
    pieces, which refuse inf, NaN and huge values); held to the reference as the fed-W cases are."""
    for c in poisoned_inputs(lambda: conv_case({"pads": [1, 1, 1, 1]}), ("X", "W", "offset"),
                             "conv constant W NaN/inf/huge values", values=("X", "W", "B", "mask")):
        c["constant"] = ("W", "B")
        yield c


def conv_shape_cases() -> Iterator[dict]:
    base = conv_case({})
    for name, spec in base["inputs"].items():
        if spec is None:
            continue
        shape, _ = spec
        for axis in range(len(shape)):
            for delta in (+1, -shape[axis]):  # one more, zero
                s = list(shape)
                s[axis] = shape[axis] + delta
                if s == shape:
                    continue
                c = conv_case({}, shape_fix={name: s})
                # zero batch (X and offset / mask together) is an empty, valid output; alone it is an error
                c.update(category="conv wrong shapes", expect="error")
                yield c
        for rank in (len(shape) - 1, len(shape) + 1):
            s = (list(shape) + [1])[:rank] if rank > 0 else []
            c = conv_case({}, shape_fix={name: s})
            c.update(category="conv wrong shapes", expect="error")
            yield c
    for dims, expect in (({"N": 0}, "ok"), ({"M": 0}, "ok"), ({"H": 0}, "error"), ({"W": 0}, "error")):
        c = conv_case({}, dims=dims)
        c.update(category="conv empty tensors", expect=expect)
        yield c


def dtype_cases(base: dict, category: str) -> Iterator[dict]:
    for name, spec in base["inputs"].items():
        if spec is None:
            continue
        for dtype in ("float64", "int64", "float16", "float32"):
            if dtype == spec[1] or (dtype == "float32" and "values" not in base):
                continue
            c = {**base, "inputs": dict(base["inputs"]), "poison": {}}
            c["inputs"][name] = (spec[0], dtype)
            c.update(category=category, expect="error")
            yield c


# ---------------------------------------------------------------------------- DeformPSROIPool
POOL_ATTRS = dict(spatial_scale=0.5, output_dim=2, group_size=2, pooled_size=3, part_size=0, sample_per_part=2,
                  trans_std=0.1, no_trans=0)
POOL_DIMS = dict(N=2, H=6, W=7, R=3)


def pool_case(attrs: dict[str, Any], *, dims: Optional[dict] = None, trans: bool = True,
              shape_fix: Optional[dict] = None) -> dict:
    a = {**POOL_ATTRS, **attrs}
    d = {**POOL_DIMS, **(dims or {})}
    if isinstance(a["output_dim"], int) and 64 < a["output_dim"] <= LIMITS[DEFORM_PSROI_POOL.op_type]["output_dim"]:
        # a valid, large output_dim: everything else minimal, so that the case stays small
        attrs = {**attrs, "group_size": 1, "pooled_size": 1, "sample_per_part": 1}
        a = {**POOL_ATTRS, **attrs}
        d.update(N=1, H=2, W=2, R=1)
    od, gs, ps = a["output_dim"], a["group_size"], a["pooled_size"]
    ok = all(isinstance(v, int) and v >= 1 for v in (od, gs, ps)) and od * gs * gs <= 2**21 and ps <= 64
    c_in = od * gs * gs if ok else 8
    part = a["part_size"] if isinstance(a["part_size"], int) and 1 <= a["part_size"] <= 64 else \
        (ps if ok else 3)
    inputs = {
        "data": ([d["N"], c_in, d["H"], d["W"]], "float32"),
        "rois": ([d["R"], 5], "float32"),
        "trans": ([d["R"], 2, part, part], "float32") if trans else None,
    }
    for name, shape in (shape_fix or {}).items():
        inputs[name] = (shape, "float32")
    return {"op": DEFORM_PSROI_POOL.op_type, "attrs": {k: v for k, v in attrs.items()} | {
        k: v for k, v in POOL_ATTRS.items() if k not in attrs}, "inputs": inputs, "poison": {}, "dims": d}


def _pool_valid(attrs: dict[str, Any]) -> bool:
    limits = LIMITS[DEFORM_PSROI_POOL.op_type]
    for name, v in attrs.items():
        if name in ("spatial_scale", "trans_std"):
            if not (isinstance(v, float) and math.isfinite(v) and (v > 0 or name == "trans_std")):
                return False
            continue
        hi = 1 if name == "no_trans" else limits.get(name, I64_MAX)
        if not isinstance(v, int) or v < MINIMUM[name] or v > hi:
            return False
    return True


def pool_attribute_cases() -> Iterator[dict]:
    op = DEFORM_PSROI_POOL.op_type
    for name in ("output_dim", "group_size", "pooled_size", "part_size", "sample_per_part", "no_trans"):
        for v in bound_values(name, op) + ([2] if name == "no_trans" else []):
            c = pool_case({name: v})
            c.update(category="pool attribute bounds", expect="ok" if _pool_valid({name: v}) else "error")
            yield c
    for name in ("spatial_scale", "trans_std"):
        for label, v in SPECIAL_FLOATS + (("zero", 0.0), ("negative", -1.0)):
            c = pool_case({name: v})
            c.update(category="pool attribute bounds", expect="ok" if _pool_valid({name: v}) else "error")
            yield c
    for name in ("spatial_scale", "output_dim"):
        c = pool_case({})
        del c["attrs"][name]
        c.update(category="pool attribute type", expect="error")
        yield c
    for name, bad in (("pooled_size", 3.0), ("spatial_scale", 1), ("group_size", [2]), ("no_trans", "no")):
        c = pool_case({}) | {}
        c["attrs"] = dict(c["attrs"], **{name: bad})
        c.update(category="pool attribute type", expect="error")
        yield c


def pool_wrapped_product_cases() -> Iterator[dict]:
    """output_dim * group_size^2 wrapping int64 to a channel count that fits the data."""
    for gs in (2**31, 2**32, 2**32 + 1, 2**33, 2**62):
        for od in (1, 2, 4):
            wrapped = (od * gs * gs) % 2**64
            channels = wrapped if wrapped < 2**63 and wrapped < 64 else 0
            c = pool_case({"group_size": gs, "output_dim": od}, shape_fix={"data": [2, channels, 6, 7]})
            c.update(category="wrapped products", expect="error")
            yield c
    for ps in (2**31, 2**32, 2**32 + 1):
        c = pool_case({"pooled_size": ps})
        c.update(category="wrapped products", expect="error")
        yield c


def pool_value_cases() -> Iterator[dict]:
    yield from poisoned_inputs(lambda: pool_case({}), ("data", "trans"), "pool NaN/inf/huge values")
    for col in range(5):
        for label, v in SPECIAL_FLOATS:
            c = pool_case({})
            c["poison"] = {"rois": (f"col{col}", v)}
            # column 0 is the batch index: anything but an index in [0, N) is an error
            expect = "error" if col == 0 and not (0 <= v < POOL_DIMS["N"]) else "ok"
            c.update(category="pool NaN/inf/huge values", expect=expect)
            yield c


def pool_shape_cases() -> Iterator[dict]:
    base = pool_case({})
    for name, spec in base["inputs"].items():
        shape, _ = spec
        for axis in range(len(shape)):
            for delta in (+1, -shape[axis]):
                s = list(shape)
                s[axis] = shape[axis] + delta
                c = pool_case({}, shape_fix={name: s})
                # zero RoIs (rois and trans together) / an empty map are valid; see below
                # any map size is valid (an empty map gives 0 everywhere); anything else is an error
                expect = "ok" if name == "data" and (axis in (2, 3) or (axis == 0 and delta > 0)) else "error"
                c.update(category="pool wrong shapes", expect=expect)
                yield c
        for rank in (len(shape) - 1, len(shape) + 1):
            s = (list(shape) + [1])[:rank]
            c = pool_case({}, shape_fix={name: s})
            c.update(category="pool wrong shapes", expect="error")
            yield c
    c = pool_case({}, dims={"R": 0})
    c.update(category="pool empty tensors", expect="ok")
    yield c
    c = pool_case({"no_trans": 1}, trans=False)
    c.update(category="pool empty tensors", expect="ok")
    yield c


# ---------------------------------------------------------------------------- DeformRoIPool
ROI_ATTRS = dict(pooled_height=2, pooled_width=3, spatial_scale=0.5, sampling_ratio=2, gamma=0.1)
ROI_DIMS = dict(N=2, C=3, H=6, W=7, R=3)
HUGE_POOLED = (65536, 2**24)  # accepted silently before the limits (issue 22): seconds and gigabytes per node


def roi_pool_case(attrs: dict[str, Any], *, dims: Optional[dict] = None, offset: bool = True,
                  shape_fix: Optional[dict] = None) -> dict:
    """A DeformRoIPool case whose offset fits the pooled sizes (any that a small offset can hold: also
    those past the limit, so that the limit, not the offset's shape, is what refuses them)."""
    a = {**ROI_ATTRS, **attrs}
    d = {**ROI_DIMS, **(dims or {})}
    ph, pw = (v if isinstance(v, int) and 1 <= v <= 2**17 else 2 for v in (a["pooled_height"], a["pooled_width"]))
    inputs = {
        "data": ([d["N"], d["C"], d["H"], d["W"]], "float32"),
        "rois": ([d["R"], 5], "float32"),
        "offset": ([d["R"], 2, ph, pw], "float32") if offset else None,
    }
    for name, shape in (shape_fix or {}).items():
        inputs[name] = (shape, inputs[name][1] if inputs[name] else "float32")
    return {"op": DEFORM_ROI_POOL.op_type, "attrs": a, "inputs": inputs, "poison": {}, "dims": d}


def _roi_valid(attrs: dict[str, Any]) -> bool:
    limits = LIMITS[DEFORM_ROI_POOL.op_type]
    for name, v in attrs.items():
        if name in ("spatial_scale", "gamma"):
            f = float(v) if isinstance(v, float) else math.nan
            if not (math.isfinite(f) and abs(f) < 3.4e38 and (f > 0 or name == "gamma")):
                return False
            continue
        if not isinstance(v, int) or not MINIMUM[name] <= v <= limits[name]:
            return False
    return True


def roi_pool_attribute_cases() -> Iterator[dict]:
    """Every bound of the integer attributes and one past it, huge / zero / negative pooled sizes, values
    that wrap int32 / int64 (without offset, and with one of the matching shape where it is small);
    spatial_scale and gamma NaN / inf / huge / zero / negative."""
    op = DEFORM_ROI_POOL.op_type
    for name in ("pooled_height", "pooled_width", "sampling_ratio"):
        for v in bound_values(name, op) + list(HUGE_POOLED):
            variants = ((False, 2), (False, 0), (True, 0)) if name != "sampling_ratio" else ((False, v), (True, v))
            for offset, ratio in variants:
                attrs = {name: v} if name == "sampling_ratio" else {name: v, "sampling_ratio": ratio}
                if offset and name != "sampling_ratio" and not (isinstance(v, int) and 1 <= v <= 2**17):
                    continue  # an offset of that shape would not fit in memory
                c = roi_pool_case(attrs, offset=offset)
                c.update(category="roi pool attribute bounds", expect="ok" if _roi_valid(attrs) else "error")
                yield c
    for name in ("spatial_scale", "gamma"):
        for label, v in SPECIAL_FLOATS + (("zero", 0.0), ("negative", -1.0)):
            c = roi_pool_case({name: v})
            c.update(category="roi pool attribute bounds", expect="ok" if _roi_valid({name: v}) else "error")
            yield c


def roi_pool_value_cases() -> Iterator[dict]:
    """NaN / inf / huge values in data, offset and every RoI column (adaptive grid and a fixed one), batch
    indices on both sides of [0, N), and RoIs far larger than the map (the grid at its cap)."""
    yield from poisoned_inputs(lambda: roi_pool_case({}), ("data", "offset"), "roi pool NaN/inf/huge values")
    for col in range(5):
        for label, v in SPECIAL_FLOATS:
            for ratio in (0, 2):
                c = roi_pool_case({"sampling_ratio": ratio})
                c["poison"] = {"rois": (f"col{col}", v)}
                # column 0 is the batch index: anything but a value in (-1, N) (truncated) is an error
                expect = "error" if col == 0 and not (-1 < v < ROI_DIMS["N"]) else "ok"
                c.update(category="roi pool NaN/inf/huge values", expect=expect)
                yield c
    n = ROI_DIMS["N"]
    for v in (-2.0, -1.0, -0.999, -0.5, 0.0, n - 1.0, n - 0.001, n, n + 0.5, 2.0**31, 2.0**63, -(2.0**63)):
        c = roi_pool_case({})
        c["poison"] = {"rois": ("col0", v)}
        c.update(category="roi pool batch indices", expect="ok" if -1 < v < n else "error")
        yield c
    for span in (1e3, 1e4, 1e5, 1e7, 1e30):  # (x1, y1, x2, y2) = (-span, -span, span, span) around the map
        for ratio, offset in ((0, True), (0, False), (LIMITS[DEFORM_ROI_POOL.op_type]["sampling_ratio"], False)):
            c = roi_pool_case({"sampling_ratio": ratio}, dims={"R": 1} if ratio else None, offset=offset)
            c["poison"] = {"rois": ("box", span)}
            c.update(category="roi pool grid cap", expect="ok")
            yield c
    # one such RoI over a mask head's shape (512 channels, 14 x 14 bins): the loops walk only the samples that can
    # land on the map (roi_pool_rows / roi_pool_cols); walking the capped grid, 1024^2 samples a value, took minutes
    c = roi_pool_case({"sampling_ratio": 0, "pooled_height": 14, "pooled_width": 14}, dims={"R": 1, "C": 512})
    c["poison"] = {"rois": ("box", 1e7)}
    c.update(category="roi pool grid cap", expect="ok")
    yield c


def roi_pool_shape_cases() -> Iterator[dict]:
    """Every dimension of every input one more or zero, ranks one off, the offset's pooled axes swapped,
    empty R / C / N / H / W."""
    base = roi_pool_case({})
    for name, spec in base["inputs"].items():
        shape, _ = spec
        for axis in range(len(shape)):
            for delta in (+1, -shape[axis]):
                s = list(shape)
                s[axis] = shape[axis] + delta
                c = roi_pool_case({}, shape_fix={name: s})
                # data: any N >= 1 (the batch indices are < 2), C (0 included), H and W (empty: 0) are valid
                ok = name == "data" and (axis > 0 or delta > 0)
                c.update(category="roi pool wrong shapes", expect="ok" if ok else "error")
                yield c
        for rank in (len(shape) - 1, len(shape) + 1):
            c = roi_pool_case({}, shape_fix={name: (list(shape) + [1])[:rank]})
            c.update(category="roi pool wrong shapes", expect="error")
            yield c
    c = roi_pool_case({}, shape_fix={"offset": [ROI_DIMS["R"], 2, ROI_ATTRS["pooled_width"], ROI_ATTRS["pooled_height"]]})
    c.update(category="roi pool wrong shapes", expect="error")  # pooled axes swapped
    yield c
    for dims, expect in (({"R": 0}, "ok"), ({"C": 0}, "ok"), ({"H": 0}, "ok"), ({"W": 0}, "ok"),
                         ({"H": 0, "W": 0}, "ok"), ({"N": 0}, "error"), ({"N": 0, "R": 0}, "ok"),
                         ({"R": 0, "C": 0}, "ok")):
        for offset in (True, False):
            c = roi_pool_case({}, dims=dims, offset=offset)
            c.update(category="roi pool empty tensors", expect=expect)
            yield c


def roi_pool_dtype_cases() -> Iterator[dict]:
    """Wrong element types, float16 RoIs in a float16 node among them (refused: RoIs are float32)."""
    base = roi_pool_case({})
    yield from dtype_cases(base, "roi pool wrong dtypes")
    c = {**base, "inputs": {k: (v[0], "float16") for k, v in base["inputs"].items()}, "poison": {}}
    c.update(category="roi pool wrong dtypes", expect="error")
    yield c


# ---------------------------------------------------------------------------- every registered op, from its entry
def example_case(spec: OpSpec) -> dict:
    """The op's small valid case (reference.py ``example_inputs``) as a fuzz case; index inputs
    (``Input(dtype=INDEX)``, level tables) keep their element type and carry their values (``values``)."""
    arrays, attrs = ops.part(spec.name, "reference").example_inputs()
    inputs = {i.name: ([*arrays[i.name].shape], str(arrays[i.name].dtype) if i.dtype == INDEX else "float32")
              if arrays.get(i.name) is not None else None for i in spec.inputs}
    first = arrays[spec.inputs[0].name]
    dims = {"N": first.shape[0], "H": first.shape[-2], "W": first.shape[-1]} if first.ndim == 4 else {}
    case = {"op": spec.op_type, "attrs": dict(attrs), "inputs": inputs, "poison": {}, "dims": dims}
    if spec.index_inputs:
        case["values"] = {spec.inputs[i].name: arrays[spec.inputs[i].name] for i in spec.index_inputs}
    return case


def feeds_with_values(case: dict, rng) -> dict:
    """The feeds of a case that carries some inputs' values (``values``: index inputs): those values (zeros
    where the case changed the shape), the other inputs generated: uniform in [-0.3, 1.3] for inputs
    the entry fixes to float32 (normalised coordinates; mostly on the map), else N(0, 1)."""
    fixed = {i.name: i.dtype for i in contract_ops()[case["op"]].inputs}
    out = {}
    for name, given in case["inputs"].items():
        if given is None:
            continue
        shape, dtype = given
        if name in case["values"]:
            a = np.asarray(case["values"][name])
            a = a if list(a.shape) == list(shape) else np.zeros(shape, np.int64)
        elif fixed.get(name) == "float32":
            a = rng.uniform(-0.3, 1.3, shape)
        else:
            a = rng.normal(0, 1, shape)
        out[name] = a.astype(dtype)
    return out


_WRONG_KIND = {INT: 1.5, INTS: 2, FLOAT: 1}  # a value ONNX stores as another attribute type


def spec_cases(spec: OpSpec) -> Iterator[dict]:
    """Errors derived from the entry alone: every input with a wrong element type or rank, every attribute
    of the wrong kind, every required attribute missing, every limited attribute past its limit."""
    base = example_case(spec)
    yield from dtype_cases(base, "wrong dtypes")
    for name, given in base["inputs"].items():
        if given is None:
            continue
        shape, dtype = given
        for s in (shape[:-1], shape + [1]):
            c = {**base, "inputs": {**base["inputs"], name: (s, dtype)}, "poison": {}}
            c.update(category="wrong ranks", expect="error")
            yield c
    for a in spec.attrs:
        c = {**base, "attrs": {**base["attrs"], a.name: _WRONG_KIND[a.kind]}, "poison": {}}
        c.update(category="attribute kinds", expect="error")
        yield c
        if a.required:
            c = {**base, "attrs": {k: v for k, v in base["attrs"].items() if k != a.name}, "poison": {}}
            c.update(category="attribute kinds", expect="error")
            yield c
    for name, limit in spec.limits.items():
        for v in (limit + 1, *WRAPPING):
            value = [v] * spec.attr(name).length if spec.attr(name).kind == INTS else v
            c = {**base, "attrs": {**base["attrs"], name: value}, "poison": {}}
            c.update(category="past the limits", expect="error")
            yield c


def all_cases() -> list[dict]:
    from .fuzz_msda import msda_cases  # noqa: PLC0415  (it imports this module)

    gens = (conv_attribute_cases(), conv_wrapped_product_cases(), conv_value_cases(), conv_shape_cases(),
            pool_attribute_cases(), pool_wrapped_product_cases(), pool_value_cases(), pool_shape_cases(),
            roi_pool_attribute_cases(), roi_pool_value_cases(), roi_pool_shape_cases(), roi_pool_dtype_cases(),
            *(spec_cases(s) for s in specs()), msda_cases(), conv_constant_weight_cases())
    cases = [c for g in gens for c in g]
    for i, c in enumerate(cases):
        c["id"] = f"{i:03d}-{c['op']}-{c['category'].replace(' ', '_')}"
    return cases


def max_elements_ok(shape: list[int]) -> bool:
    n = 1
    for s in shape:
        n *= max(s, 0)
    return n <= MAX_ELEMENTS
