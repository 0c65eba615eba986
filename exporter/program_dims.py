"""A torch.export program's own dynamic dimensions, carried into the ONNX model's dynamic axes.

``torch.export.save`` keeps each dynamic dimension as a symbol with its range (``s0 in [2, 512]``),
not the ``Dim("batch")`` name it was made with, so the axes get the name of the first
input axis that carries the symbol (``images_dim0``); axes sharing a symbol share the name.
``--dynamic`` overrides them input by input.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence


def program_dynamic_axes(ep: Any) -> list[dict[int, str]]:
    """[{axis: name}] per user input of an ExportedProgram, in forward order (empty dicts: static)."""
    user = list(ep.graph_signature.user_inputs)
    nodes = {n.name: n for n in ep.graph.nodes if n.op == "placeholder"}
    seen: dict[str, str] = {}
    out: list[dict[int, str]] = []
    for name in user:
        val = nodes[name].meta.get("val") if name in nodes else None
        axes: dict[int, str] = {}
        for axis, dim in enumerate(getattr(val, "shape", ())):
            if isinstance(dim, int):
                continue
            expr = getattr(getattr(dim, "node", None), "expr", None)
            if expr is None or not getattr(expr, "is_Symbol", False):
                continue  # a derived dimension (2*s0) follows its symbol
            axes[axis] = seen.setdefault(str(expr), f"{name}_dim{axis}")
        out.append(axes)
    return out


def dynamic_axes_of(model: Any) -> list[dict[int, str]]:
    """The program's dynamic axes: of an ExportedProgram, or kept by exporter.loading on its module."""
    import torch

    if isinstance(model, torch.export.ExportedProgram):
        return program_dynamic_axes(model)
    return list(getattr(model, "dynamic_axes", None) or [])


def merge_dynamic(program: Sequence[Mapping[int, str]], user: Optional[Mapping[str, Any]],
                  names: Sequence[str]) -> Optional[dict[str, Any]]:
    """{input name: axes}: the program's axes by position, replaced input by input by ``user``'s."""
    merged: dict[str, Any] = {names[i]: dict(axes) for i, axes in enumerate(program) if axes and i < len(names)}
    merged.update(user or {})
    return merged or None
