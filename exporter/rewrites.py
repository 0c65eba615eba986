"""Opt-in ONNX rewrites into our nodes: each op's entry lists its own (``OpSpec.rewrites``: a flag, its
help, the op folder's file with ``rewrite(model) -> (model, names of the nodes written)``); ``dcn-export
--<flag>`` applies them to the exported graph before the check (PyTorch models) or to an ONNX file given as
the model (exporter.onnx_file). Names no op."""
from __future__ import annotations

from typing import Sequence

import onnx
from onnx import helper

from dcn_base.errors import DcnError

from . import ops
from .contract import DOMAIN, DOMAIN_VERSION, OpSpec, Rewrite, specs


def known() -> dict[str, tuple[OpSpec, Rewrite]]:
    """{flag: (the op's entry, its rewrite)} of every registered op."""
    return {r.flag: (s, r) for s in specs() for r in s.rewrites}


def check_flags(flags: Sequence[str]) -> tuple[str, ...]:
    table = known()
    for f in flags:
        if f not in table:
            raise DcnError(f"rewrite {f!r} is not known; expected one of {', '.join(table) or 'none'}")
    return tuple(dict.fromkeys(flags))


def apply(model: onnx.ModelProto, flags: Sequence[str]) -> tuple[onnx.ModelProto, dict[str, str]]:
    """``model`` rewritten by each flag's pass (in place), unused nodes and initializers removed, our
    domain imported; {node name: op type} of the nodes written. A pass that finds nothing is an error."""
    written: dict[str, str] = {}
    for flag in check_flags(flags):
        spec, rw = known()[flag]
        model, names = ops.part(spec.name, rw.part).rewrite(model)
        if not names:
            raise DcnError(f"--{flag}: found no {rw.what} in the graph")
        written.update({n: spec.op_type for n in names})
    if written:
        prune(model)
        if not any(o.domain == DOMAIN for o in model.opset_import):
            model.opset_import.append(helper.make_opsetid(DOMAIN, DOMAIN_VERSION))
    return model, written


def prune(model: onnx.ModelProto) -> None:
    """Remove the nodes no graph output depends on, then the initializers nothing reads."""
    g = model.graph
    needed = {o.name for o in g.output}
    keep = []
    for n in reversed(g.node):
        if any(o in needed for o in n.output if o):
            keep.append(n)
            needed.update(i for i in n.input if i)
            for a in n.attribute:  # a subgraph's outer-scope reads
                for sub in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)):
                    needed.update(i for sn in sub.node for i in sn.input)
    del g.node[:]
    g.node.extend(reversed(keep))
    inits = [t for t in g.initializer if t.name in needed]
    del g.initializer[:]
    g.initializer.extend(inits)
    infos = [vi for vi in g.value_info if vi.name in needed]
    del g.value_info[:]
    g.value_info.extend(infos)
