"""``dcn-export --fuse-msda``: the GridSample decomposition of the op in an ONNX graph -> one
``dcn::MultiScaleDeformableAttention`` node each (opt-in; the export then checks the rewritten graph,
exporter.rewrites).

The decomposition is what mmcv's ``multi_scale_deformable_attn_pytorch``, Deformable DETR's
``ms_deform_attn_core_pytorch``, RT-DETR's ``deformable_attention_core_func`` and transformers' PyTorch
path compute, as torch's exporters (TorchScript-based and dynamo) write it::

    value [N, S, M, D] --Split(axis 1, H_l*W_l)--> per level: reshape / transpose -> [N*M, D, H_l, W_l]
    2 * sampling_locations [N, Lq, M, L, P, 2] - 1 --Gather(axis 3, l)--> transpose / reshape -> [N*M, Lq, P, 2]
    GridSample(bilinear, zeros, align_corners 0) per level -> Unsqueeze -> Concat -> reshape
    * attention_weights [N, Lq, M, L, P] (Transpose (0, 2, 1, 3, 4), reshaped) -> ReduceSum(last axis, keepdims 0) [N*M, D, Lq]

Found from each ReduceSum back through the layout ops (Reshape, Transpose, Flatten, Squeeze, Unsqueeze,
Identity); the facts the node's semantics rest on are checked (GridSample's mode, padding and
align_corners; levels in order, one Split of one value along S; the grid an affine 2x - 1 of one rank-6
tensor taken at level l on axis 3; weights of rank 5; static sizes consistent where known). The layout
ops between them are trusted to be the decomposition's: the export's check compares the rewritten graph
with the original (or with PyTorch), so a graph that only looks alike fails that check and nothing is
written. Level shapes and starts are constants where the shapes are static, else computed in the graph
(Shape of each level's map, CumSum of the areas). The ReduceSum's output is rebuilt from the node's
[N, Lq, M*D] (Reshape, Transpose, Reshape); where it is followed by exactly the decomposition's
Reshape to [N, M*D, Lq] and Transpose (0, 2, 1), the node writes that Transpose's output directly.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from exporter.contract import DOMAIN

from .spec import SPEC

LAYOUT_OPS = {"Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Identity"}
_BILINEAR = ("bilinear", "linear")  # GridSample's mode before / from opset 20


@dataclass
class _Level:
    sample: onnx.NodeProto  # the GridSample
    level: int  # from the grid's Gather / Slice on axis 3
    split_index: int  # which output of the value's Split (or -1 for a Slice)
    start: Optional[int]  # the level's first row of S where known (Slice, or Split sizes)


@dataclass
class _Match:
    reduce: onnx.NodeProto
    value: str
    locations: str
    weights: str
    levels: list[_Level]
    area_known: list[Optional[tuple[int, int]]]  # static (H, W) per level


class _Graph:
    """Producers, consumers, constants and inferred types of one graph."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        g = model.graph
        self.producer = {o: n for n in g.node for o in n.output}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for n in g.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self.init = {t.name: t for t in g.initializer}
        try:
            inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
        except Exception:  # noqa: BLE001 - without shapes: ranks unknown, nothing fuses
            inferred = model
        ig = inferred.graph
        self.types = {vi.name: vi.type.tensor_type for vi in list(ig.input) + list(ig.value_info) + list(ig.output)
                      if vi.type.HasField("tensor_type")}
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)

    def const(self, name: str) -> Optional[np.ndarray]:
        if name in self.init:
            return numpy_helper.to_array(self.init[name])
        n = self.producer.get(name)
        if n is not None and n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    return numpy_helper.to_array(a.t)
                if a.name in ("value_float", "value_int"):
                    return np.array(helper.get_attribute_value(a))
                if a.name in ("value_floats", "value_ints"):
                    return np.array(list(helper.get_attribute_value(a)))
        return None

    def dims(self, name: str) -> Optional[list[Optional[int]]]:
        t = self.types.get(name)
        if t is None or not t.HasField("shape"):
            return None
        return [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]

    def elem(self, name: str) -> int:
        t = self.types.get(name)
        return t.elem_type if t is not None else 0

    def back(self, name: str, through=LAYOUT_OPS) -> tuple[str, Optional[onnx.NodeProto]]:
        """Follow input 0 through layout ops: (the tensor reached, the node that produced it)."""
        node = self.producer.get(name)
        while node is not None and node.op_type in through:
            name = node.input[0]
            node = self.producer.get(name)
        return name, node


def _attr(node: onnx.NodeProto, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            v = helper.get_attribute_value(a)
            return v.decode() if isinstance(v, bytes) else v
    return default


def _scalar(g: _Graph, name: str) -> Optional[float]:
    c = g.const(name)
    return float(c.reshape(-1)[0]) if c is not None and c.size == 1 else None


# --------------------------------------------------------------------------- matching
def _reduce_ok(g: _Graph, r: onnx.NodeProto) -> bool:
    if r.op_type != "ReduceSum" or _attr(r, "keepdims", 1) != 0:
        return False
    axes = _attr(r, "axes") if g.opset < 13 or len(r.input) < 2 else g.const(r.input[1])
    rank = g.dims(r.input[0])
    axes = None if axes is None else [int(a) for a in np.asarray(axes).reshape(-1)]
    return axes is not None and len(axes) == 1 and (axes[0] == -1 or (rank is not None and axes[0] == len(rank) - 1))


def _samples(g: _Graph, name: str) -> Optional[list[onnx.NodeProto]]:
    """The GridSample nodes stacked into ``name`` (Concat of Unsqueezed samples), in Concat order."""
    _, concat = g.back(name)
    if concat is None or concat.op_type != "Concat" or len(concat.input) < 1:
        return None
    out = []
    for i in concat.input:
        _, s = g.back(i)
        if s is None or s.op_type != "GridSample":
            return None
        out.append(s)
    return out


def _weights(g: _Graph, name: str) -> Optional[str]:
    """attention_weights [N, Lq, M, L, P]: the input of the Transpose (0, 2, 1, 3, 4) the weights factor is
    reshaped from."""
    _, node = g.back(name, LAYOUT_OPS - {"Transpose"})
    if node is None or node.op_type != "Transpose" or list(_attr(node, "perm", [])) != [0, 2, 1, 3, 4]:
        return None
    return node.input[0]


def _sample_ok(s: onnx.NodeProto) -> bool:
    return _attr(s, "mode", "bilinear") in _BILINEAR and _attr(s, "padding_mode", "zeros") == "zeros" \
        and int(_attr(s, "align_corners", 0)) == 0


def _value_level(g: _Graph, x: str) -> Optional[tuple[str, int, Optional[int]]]:
    """(value [N, S, M, D], Split output index or -1, start) of a level's map, or None."""
    name, node = g.back(x)
    if node is None:
        return None
    if node.op_type == "Split" and int(_attr(node, "axis", 0)) in (1, -3):
        k = list(node.output).index(name)
        sizes = g.const(node.input[1]) if len(node.input) > 1 and node.input[1] else _attr(node, "split")
        start = int(np.sum(np.asarray(sizes).reshape(-1)[:k])) if sizes is not None else None
        return node.input[0], k, start
    if node.op_type == "Slice" and len(node.input) >= 4:
        starts, axes = g.const(node.input[1]), g.const(node.input[3])
        if starts is not None and axes is not None and [int(a) for a in axes.reshape(-1)] in ([1], [-3]):
            return node.input[0], -1, int(starts.reshape(-1)[0])
    return None


def _grid_level(g: _Graph, grid: str) -> Optional[tuple[str, int]]:
    """(sampling_locations [N, Lq, M, L, P, 2], level) of a grid = 2 * loc - 1 taken at level l on axis 3."""
    name, level, affine = grid, None, []
    while True:
        node = g.producer.get(name)
        if node is None:
            break
        if node.op_type in LAYOUT_OPS:
            name = node.input[0]
        elif node.op_type == "Gather" and level is None and int(_attr(node, "axis", 0)) == 3:
            idx = g.const(node.input[1])
            if idx is None or idx.size != 1:
                return None
            level, name = int(idx.reshape(-1)[0]), node.input[0]
        elif node.op_type == "Slice" and level is None and len(node.input) >= 4:
            starts, ends, axes = (g.const(i) for i in node.input[1:4])
            if starts is None or ends is None or axes is None or [int(a) for a in axes.reshape(-1)] != [3] or \
                    int(ends.reshape(-1)[0]) != int(starts.reshape(-1)[0]) + 1:
                return None
            level, name = int(starts.reshape(-1)[0]), node.input[0]
        elif node.op_type in ("Mul", "Add", "Sub"):
            c0, c1 = _scalar(g, node.input[0]), _scalar(g, node.input[1])
            if c1 is not None:
                affine.append((node.op_type, c1))
                name = node.input[0]
            elif c0 is not None and node.op_type != "Sub":
                affine.append((node.op_type, c0))
                name = node.input[1]
            else:
                break  # the locations are computed here
        else:
            break
    f = _compose(affine)
    if level is None or f(0.0) != -1.0 or f(1.0) != 1.0:
        return None
    return name, level


def _compose(affine: list[tuple[str, float]]):
    """x -> the ops recorded walking back (the last recorded is applied first)."""
    def f(x: float) -> float:
        for op, c in reversed(affine):
            x = x * c if op == "Mul" else (x + c if op == "Add" else x - c)
        return x
    return f


def _match(g: _Graph, r: onnx.NodeProto) -> Optional[_Match]:
    if not _reduce_ok(g, r):
        return None
    mul = g.producer.get(r.input[0])
    if mul is None or mul.op_type != "Mul":
        return None
    for side in (0, 1):
        samples = _samples(g, mul.input[side])
        if samples:
            weights = _weights(g, mul.input[1 - side])
            break
    else:
        return None
    if weights is None:
        return None
    levels, values, locs = [], set(), set()
    for s in samples:
        v, gr = _value_level(g, s.input[0]), _grid_level(g, s.input[1])
        if not _sample_ok(s) or v is None or gr is None:
            return None
        values.add(v[0])
        locs.add(gr[0])
        levels.append(_Level(s, gr[1], v[1], v[2]))
    m = _Match(r, values.pop() if len(values) == 1 else "", locs.pop() if len(locs) == 1 else "", weights,
               levels, [_static_hw(g, lv.sample.input[0]) for lv in levels])
    return m if m.value and m.locations and _consistent(g, m) else None


def _static_hw(g: _Graph, x: str) -> Optional[tuple[int, int]]:
    d = g.dims(x)
    return (d[2], d[3]) if d is not None and len(d) == 4 and d[2] is not None and d[3] is not None else None


def _consistent(g: _Graph, m: _Match) -> bool:
    """Ranks, levels in order (Concat order = level index = Split output), sizes where static."""
    vd, ld, wd = g.dims(m.value), g.dims(m.locations), g.dims(m.weights)
    if vd is None or ld is None or wd is None or (len(vd), len(ld), len(wd)) != (4, 6, 5):
        return False
    L = len(m.levels)
    if [lv.level for lv in m.levels] != list(range(L)):
        return False
    if any(lv.split_index not in (-1, i) for i, lv in enumerate(m.levels)):
        return False
    if ld[3] not in (None, L) or ld[5] not in (None, 2) or wd[3] not in (None, L):
        return False
    for i, hw in enumerate(m.area_known):
        xd = g.dims(m.levels[i].sample.input[0])
        if xd is not None and vd[3] is not None and xd[1] not in (None, vd[3]):
            return False  # the map's channels are value's D
        start = m.levels[i].start
        if hw is not None and start is not None and i + 1 < L and m.levels[i + 1].start is not None \
                and m.levels[i + 1].start - start != hw[0] * hw[1]:
            return False
    return True


# --------------------------------------------------------------------------- writing
class _Writer:
    def __init__(self, g: _Graph, m: _Match, name: str) -> None:
        self.g, self.m, self.name, self.nodes, self.inits = g, m, name, [], []

    def const(self, what: str, value: np.ndarray) -> str:
        t = numpy_helper.from_array(value, f"{self.name}/{what}")
        self.inits.append(t)
        return t.name

    def node(self, op: str, inputs: list[str], what: str, domain: str = "", **attrs) -> str:
        out = f"{self.name}/{what}"
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, domain=domain, **attrs))
        return out

    def shape_slice(self, tensor: str, start: int, end: int, what: str) -> str:
        if self.g.opset >= 15:
            return self.node("Shape", [tensor], what, start=start, end=end)
        shape = self.node("Shape", [tensor], f"{what}_shape")
        return self.node("Slice", [shape, self.const(f"{what}_s", np.array([start], np.int64)),
                                   self.const(f"{what}_e", np.array([end], np.int64))], what)

    def levels(self) -> tuple[str, str]:
        """spatial_shapes [L, 2] and level_start_index [L], int64."""
        m = self.m
        if all(hw is not None for hw in m.area_known):
            hw = np.array(m.area_known, np.int64).reshape(-1, 2)
            starts = np.concatenate([[0], np.cumsum(hw[:, 0] * hw[:, 1])[:-1]]).astype(np.int64)
            return self.const("spatial_shapes", hw), self.const("level_start_index", starts)
        rows = [self.node("Unsqueeze", [self.shape_slice(lv.sample.input[0], 2, 4, f"hw{i}"),
                                        self.const(f"axis{i}", np.array([0], np.int64))], f"hw{i}_row")
                if self.g.opset >= 13 else
                self.node("Unsqueeze", [self.shape_slice(lv.sample.input[0], 2, 4, f"hw{i}")], f"hw{i}_row", axes=[0])
                for i, lv in enumerate(m.levels)]
        shapes = self.node("Concat", rows, "spatial_shapes", axis=0)
        h = self.node("Gather", [shapes, self.const("i0", np.array(0, np.int64))], "H", axis=1)
        w = self.node("Gather", [shapes, self.const("i1", np.array(1, np.int64))], "W", axis=1)
        area = self.node("Mul", [h, w], "areas")
        starts = self.node("CumSum", [area, self.const("axis", np.array(0, np.int64))], "level_start_index",
                           exclusive=1)
        return shapes, starts

    def typed(self, tensor: str, elem: int, what: str) -> str:
        got = self.g.elem(tensor)
        return tensor if got in (0, elem) else self.node("Cast", [tensor], what, to=elem)

    def core(self) -> str:
        m, vt = self.m, self.g.elem(self.m.value) or TensorProto.FLOAT
        shapes, starts = self.levels()
        loc = self.typed(m.locations, TensorProto.FLOAT, "sampling_locations_float32")
        weights = self.typed(m.weights, vt, "attention_weights_cast")
        return self.node(SPEC.op_type, [m.value, shapes, starts, loc, weights], "Y", domain=DOMAIN, im2col_step=64)

    def as_reduce_output(self, y: str) -> None:
        """The ReduceSum's [N*M, D, Lq] from Y [N, Lq, M*D]."""
        m = self.m
        md = self.shape_slice(m.value, 2, 4, "MD")
        zeros = self.const("zeros", np.array([0, 0], np.int64))
        split = self.node("Reshape", [y, self.node("Concat", [zeros, md], "NLqMD_shape", axis=0)], "NLqMD")
        moved = self.node("Transpose", [split], "NMDLq", perm=[0, 2, 3, 1])
        target = self.node("Concat", [self.const("minus1", np.array([-1], np.int64)),
                                      self.shape_slice(m.value, 3, 4, "D"),
                                      self.shape_slice(m.locations, 1, 2, "Lq")], "out_shape", axis=0)
        self.nodes.append(helper.make_node("Reshape", [moved, target], [m.reduce.output[0]],
                                           name=f"{self.name}/as_reduce_sum"))


def _tail(g: _Graph, m: _Match) -> Optional[str]:
    """The output of the decomposition's Reshape [N, M*D, Lq] + Transpose (0, 2, 1) after the ReduceSum, if so."""
    users = g.consumers.get(m.reduce.output[0], [])
    if len(users) != 1 or users[0].op_type != "Reshape":
        return None
    d = g.dims(users[0].output[0])
    nxt = g.consumers.get(users[0].output[0], [])
    if d is None or len(d) != 3 or len(nxt) != 1 or nxt[0].op_type != "Transpose" or \
            list(_attr(nxt[0], "perm", [])) != [0, 2, 1]:
        return None
    vd = g.dims(m.value)
    if vd is not None and None not in (vd[2], vd[3], d[1]) and d[1] != vd[2] * vd[3]:
        return None
    return nxt[0].output[0]


def _name(m: _Match, i: int) -> str:
    names = [lv.sample.name for lv in m.levels]
    if all(names):
        common = names[0]
        for n in names[1:]:
            while not n.startswith(common):
                common = common[:-1]
        common = common.rsplit("/", 1)[0].strip("/") if "/" in common else ""
        if common:
            return common
    return f"multi_scale_deformable_attention_{i}"


def rewrite(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """Every decomposition of ``model`` as one node; (the model, the names of the nodes written). The
    model is changed in place; unused nodes are left for the caller's clean-up (exporter.rewrites)."""
    g = _Graph(model)
    matches = [m for m in (_match(g, n) for n in model.graph.node if n.op_type == "ReduceSum") if m is not None]
    taken = {n.name for n in model.graph.node}
    written = []
    for i, m in enumerate(matches):
        name = _name(m, i)
        while name in taken:
            name += "_"
        taken.add(name)
        w = _Writer(g, m, name)
        y = w.core()
        tail = _tail(g, m)
        if tail is not None:  # the node writes the decomposition's final output itself
            w.nodes[-1].output[0] = tail
            g.producer[tail].output[0] = f"{name}/replaced"
        else:
            w.as_reduce_output(y)
            m.reduce.output[0] = f"{name}/replaced"
        next(n for n in w.nodes if n.op_type == SPEC.op_type).name = name
        at = list(model.graph.node).index(m.reduce)
        for k, n in enumerate(w.nodes):
            model.graph.node.insert(at + k, n)
        model.graph.initializer.extend(w.inits)
        written.append(name)
    return model, written
