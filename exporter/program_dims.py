"""A torch.export program's own dynamic dimensions, carried into the ONNX model's dynamic axes.

``torch.export.save`` keeps each dynamic dimension as a symbol with its range (``s0 in [2, 512]``),
not the ``Dim("batch")`` name it was made with, so the axes get the name of the first
input axis that carries the symbol (``images_dim0``); axes sharing a symbol share the name.
``--dynamic`` overrides them input by input.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import torch


# An axis label before the ONNX input names are known: (input position, axis, the program's input name).
Label = tuple[int, int, str]


def program_dynamic_axes(ep: Any) -> list[dict[int, Label]]:
    """[{axis: label}] per user input of an ExportedProgram, in forward order (empty dicts: static);
    :func:`merge_dynamic` turns the labels into names once the ONNX input names are known."""
    user = list(ep.graph_signature.user_inputs)
    nodes = {n.name: n for n in ep.graph.nodes if n.op == "placeholder"}
    seen: dict[str, Label] = {}
    out: list[dict[int, Label]] = []
    for i, name in enumerate(user):
        val = nodes[name].meta.get("val") if name in nodes else None
        axes: dict[int, str] = {}
        for axis, dim in enumerate(getattr(val, "shape", ())):
            if isinstance(dim, int):
                continue
            expr = getattr(getattr(dim, "node", None), "expr", None)
            if expr is None or not getattr(expr, "is_Symbol", False):
                continue  # a derived dimension (2*s0) follows its symbol
            axes[axis] = seen.setdefault(str(expr), (i, axis, name))
        out.append(axes)
    return out


def dynamic_axes_of(model: Any) -> list[dict[int, Label]]:
    """The program's dynamic axes: of an ExportedProgram, or kept by exporter.loading on its module."""
    if isinstance(model, torch.export.ExportedProgram):
        return program_dynamic_axes(model)
    return list(getattr(model, "dynamic_axes", None) or [])


def merge_dynamic(program: Sequence[Mapping[int, Label]], user: Optional[Mapping[str, Any]],
                  names: Sequence[str]) -> Optional[dict[str, Any]]:
    """{input name: axes}: the program's axes by position, named after the ONNX input that first
    carries each dimension (``images_dim0``), then ``user``'s: axis by axis where both name axes
    ({axis: label}: naming the batch keeps the program's dynamic H and W), else input by input."""
    def label(lab: Label) -> str:
        i, axis, program_name = lab
        return f"{names[i] if i < len(names) else program_name}_dim{axis}"

    merged: dict[str, Any] = {names[i]: {a: label(lab) for a, lab in axes.items()}
                              for i, axes in enumerate(program) if axes and i < len(names)}
    for name, axes in (user or {}).items():
        if isinstance(axes, Mapping) and isinstance(merged.get(name), dict):
            merged[name] = {**merged[name], **axes}
        else:
            merged[name] = axes
    return merged or None
