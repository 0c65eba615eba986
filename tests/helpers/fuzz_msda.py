"""Generated hostile cases for dcn::MultiScaleDeformableAttention (tests/test_fuzz_ops.py): NaN / inf /
huge values in every float input, locations far outside, L / P / M / D / N / Lq zero and large, level
tables that do not fit S (starts past S, negative sizes, H*W wrapping int64, sums != S), every dimension
of every input off by one, wrong element types. Index inputs carry explicit values (case["values"]: the
feeds come from fuzz_cases.feeds_with_values, the reference from the op's onnx.py ``evaluate``)."""
from __future__ import annotations

from typing import Iterator

import numpy as np

from exporter.ops.multi_scale_deformable_attention.spec import SPEC

from .fuzz_cases import poisoned_inputs

OP = SPEC.op_type
BASE = dict(N=2, Lq=3, M=2, D=4, P=2, levels=((3, 4), (2, 2)))


def msda_case(*, dims=None, levels=None, starts=None, index="int64", dtypes=None, shape_fix=None) -> dict:
    d = {**BASE, **(dims or {})}
    lv = [list(x) for x in (levels if levels is not None else d["levels"])]
    L = len(lv)
    areas = [h * w for h, w in lv]
    st = starts if starts is not None else [int(sum(areas[:i])) for i in range(L)]
    S = d.get("S", max(0, sum(a for a in areas if 0 <= a < 1 << 40)))
    N, Lq, M, D, P = d["N"], d["Lq"], d["M"], d["D"], d["P"]
    dt = {"value": "float32", "spatial_shapes": index, "level_start_index": index, "sampling_locations": "float32",
          "attention_weights": "float32", **(dtypes or {})}
    inputs = {"value": [N, S, M, D], "spatial_shapes": [L, 2], "level_start_index": [L],
              "sampling_locations": [N, Lq, M, L, P, 2], "attention_weights": [N, Lq, M, L, P], **(shape_fix or {})}
    values = {"spatial_shapes": np.array(lv, dtype=np.int64).reshape(-1, 2),
              "level_start_index": np.array(st, dtype=np.int64).reshape(-1)}
    for k in ("spatial_shapes", "level_start_index"):
        if list(values[k].shape) != inputs[k]:  # a wrong shape: values of that shape
            values[k] = np.zeros(inputs[k], dtype=np.int64)
    return {"op": OP, "attrs": {}, "inputs": {k: (inputs[k], dt[k]) for k in inputs}, "values": values, "poison": {}}


def _tag(c: dict, category: str, expect: str) -> dict:
    c.update(category=category, expect=expect)
    return c


def msda_cases() -> Iterator[dict]:
    yield from poisoned_inputs(msda_case, ("value", "sampling_locations", "attention_weights"),
                               "msda NaN/inf/huge values", values=("value", "attention_weights"))
    for dims in ({"N": 0}, {"Lq": 0}, {"M": 0}, {"D": 0}, {"P": 0}, {"D": 300}, {"P": 40}, {"M": 33, "D": 1},
                 {"Lq": 2000, "N": 1}):
        yield _tag(msda_case(dims=dims), "msda zero and large dimensions", "ok")
    yield _tag(msda_case(levels=[]), "msda zero and large dimensions", "ok")  # L = 0: zeros
    yield _tag(msda_case(levels=[(1, 1)] * 70), "msda zero and large dimensions", "ok")  # past the shared table
    yield _tag(msda_case(levels=[(0, 5), (3, 4)]), "msda zero and large dimensions", "ok")  # an empty level
    yield _tag(msda_case(index="int32"), "msda level tables", "ok")
    for levels, starts, S in (([(3, 4), (2, 2)], [0, 13], None), ([(3, 4), (2, 2)], [-1, 12], None),
                              ([(3, 4), (-2, 2)], [0, 12], None), ([(3, 4), (2, 2)], [0, 12], 15),
                              ([(3, 4), (2, 2)], [0, 12], 17), ([(2**62, 4), (2, 2)], [0, 12], 16),
                              ([(2**32, 2**32), (2, 2)], [0, 12], 16), ([(3, 4), (2, 2)], [0, 2**63 - 1], 16),
                              ([(3, 4), (2, 2)], [0, -(2**63)], 16)):
        c = msda_case(levels=levels, starts=starts, dims={"S": S} if S is not None else {"S": 16})
        yield _tag(c, "msda level tables", "error")
    base = msda_case()
    for name, (shape, _) in base["inputs"].items():
        for axis in range(len(shape)):
            s = list(shape)
            s[axis] += 1
            ok = name == "value" and axis == 3  # another D is just another size
            yield _tag(msda_case(shape_fix={name: s}), "msda wrong shapes", "ok" if ok else "error")
        yield _tag(msda_case(shape_fix={name: list(shape) + [1]}), "msda wrong shapes", "error")
    for name, bad in (("value", "float64"), ("value", "int64"), ("sampling_locations", "float16"),
                      ("attention_weights", "float64"), ("spatial_shapes", "float32"), ("level_start_index", "int32")):
        yield _tag(msda_case(dtypes={name: bad}), "wrong dtypes", "error")

