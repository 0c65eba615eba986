"""ONNX post-processing of an exported model: dcn nodes named by module path, each op's own
post-processing (its onnx.py ``postprocess``, e.g. zero-bias inputs), axis labels, value_info, the IR
version ONNX Runtime accepts, metadata, the contract check, shape inference and ``onnx.checker``."""
from __future__ import annotations

import ast
import functools
import re
from importlib.metadata import version
from typing import Mapping, Optional, Sequence

import onnx

import onnxruntime as ort
from onnx import TensorProto, helper

from dcn_base.errors import DcnError, describe
from dcn_base.libraries import session_options

from . import ops, schemas
from .contract import (DOMAIN, DOMAIN_VERSION, check_graph_attributes, is_dcn_node, ops as contract_ops,
                       spec_of_node, standard_ops)
from .swap import Swap
from .torch_scope import strip_prefix


MAX_PROTO_BYTES = 2**31 - 1


@functools.lru_cache(maxsize=None)
def max_ir_version_for_onnxruntime() -> Optional[int]:
    """The highest IR version the installed ONNX Runtime loads (probed once), or None without it."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    opts = session_options()
    for ir_version in range(onnx.IR_VERSION, 6, -1):
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=ir_version)
        try:
            ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
            return ir_version
        except Exception:
            continue
    return None


def _meta(node: onnx.NodeProto) -> dict[str, str]:
    return {p.key: p.value for p in node.metadata_props}


def _name_dcn_nodes(model: onnx.ModelProto, strip: Optional[str]) -> dict[str, str]:
    """Name each dcn node by its PyTorch module path (``backbone.layer3.0.conv2``).

    Several nodes from one module (e.g. a pooling pack's two calls) get ``path/<fx name>``.
    Without module scope (TorchScript), the weight's parameter name gives the path.
    """
    graph = model.graph
    dcn = [n for n in graph.node if is_dcn_node(n)]
    proposals = []
    for n in dcn:
        scopes: list[str] = []
        raw = _meta(n).get("pkg.torch.onnx.name_scopes")
        if raw:
            try:
                scopes = [str(s) for s in ast.literal_eval(raw)]
            except (ValueError, SyntaxError):
                scopes = []
        fx_name = scopes[-1] if scopes else n.name
        path = strip_prefix(scopes[-2], strip) if len(scopes) >= 2 else ""
        if not path:
            path = strip_prefix(_weight_path(n), strip)
        proposals.append((n, path, fx_name))
    per_path: dict[str, int] = {}
    for _, path, _ in proposals:
        per_path[path] = per_path.get(path, 0) + 1
    taken = {n.name for n in graph.node if not is_dcn_node(n)}
    names: dict[str, str] = {}
    for n, path, fx_name in proposals:
        name = path if path and per_path[path] == 1 else (f"{path}/{fx_name}" if path else fx_name)
        base, i = name, 1
        while name in taken:
            name = f"{base}_{i}"
            i += 1
        taken.add(name)
        n.name = name
        names[name] = n.op_type
    return names


def _weight_path(node: onnx.NodeProto) -> str:
    """The module path in the name of the node's weight input (``layer1.0.conv2.weight``), for ops
    whose contract entry names one (``weight_input``); '' otherwise."""
    spec = spec_of_node(node)
    if spec is None or spec.weight_input is None:
        return ""
    i = spec.input_names.index(spec.weight_input)
    if len(node.input) > i and node.input[i].endswith(".weight"):
        return node.input[i][: -len(".weight")]
    return ""


def _strip_value_prefix(model: onnx.ModelProto, prefix: str) -> None:
    """Initializer names without the float16 wrapper's prefix (``model.backbone.0.weight`` -> ``backbone.0.weight``)."""
    g = model.graph
    taken = {t.name for t in g.initializer} | {o for n in g.node for o in n.output} | {i.name for i in g.input}
    rename = {}
    for t in g.initializer:
        if t.name.startswith(prefix):
            new = t.name[len(prefix):]
            if new and new not in taken:
                rename[t.name] = new
                taken.add(new)
    if not rename:
        return
    for t in g.initializer:
        t.name = rename.get(t.name, t.name)
    for n in g.node:
        for i, name in enumerate(n.input):
            if name in rename:
                n.input[i] = rename[name]
    for vi in g.value_info:
        vi.name = rename.get(vi.name, vi.name)


def _rename_dims(model: onnx.ModelProto, mapping: Mapping[str, str]) -> None:
    if not mapping:
        return
    pattern = re.compile(r"\b(" + "|".join(re.escape(k) for k in sorted(mapping, key=len, reverse=True)) + r")\b")
    g = model.graph
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        if not vi.type.HasField("tensor_type"):
            continue
        for d in vi.type.tensor_type.shape.dim:
            if d.HasField("dim_param"):
                d.dim_param = pattern.sub(lambda m: mapping[m.group(1)], d.dim_param)


def _ensure_value_info(model: onnx.ModelProto) -> onnx.ModelProto:
    """Shape inference (strict, with our schemas); every dcn output must then have a full-rank shape."""
    schemas.register()
    try:
        inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except Exception as e:
        raise DcnError(f"ONNX shape inference rejected the exported graph: {describe(e)}") from e
    known = {vi.name: vi for vi in list(inferred.graph.value_info) + list(inferred.graph.output)}
    for n in inferred.graph.node:
        if not is_dcn_node(n):
            continue
        vi = known.get(n.output[0])
        rank = spec_of_node(n).output_rank
        if vi is None or not vi.type.tensor_type.HasField("shape") or len(vi.type.tensor_type.shape.dim) != rank:
            raise DcnError(f"{n.op_type} '{n.name}': no {rank}-D output shape after shape inference")
    return inferred


def _check_contract(model: onnx.ModelProto) -> None:
    """Invariants of our own output (a violation is a bug here, not a user error)."""
    for n in model.graph.node:
        if n.domain == DOMAIN and n.op_type in standard_ops():
            raise AssertionError(f"node '{n.name}': op type {n.op_type} in domain {DOMAIN} is forbidden")
        if n.domain == DOMAIN:
            spec = contract_ops().get(n.op_type)
            if spec is None:
                raise AssertionError(f"node '{n.name}': op type {n.op_type} in domain {DOMAIN} is not in the contract")
            unknown = [a.name for a in n.attribute if a.name not in spec.attr_names]
            if unknown:
                raise AssertionError(f"{n.op_type} '{n.name}': attributes {unknown} not in the contract")
    imports = {o.domain: o.version for o in model.opset_import}
    if any(n.domain == DOMAIN for n in model.graph.node) and imports.get(DOMAIN) != DOMAIN_VERSION:
        raise AssertionError(f"opset import {DOMAIN} is {imports.get(DOMAIN)}, expected {DOMAIN_VERSION}")


def postprocess(proto: onnx.ModelProto, strip: Optional[str], dim_labels: Mapping[str, str], deform_conv: str,
                 fp16: bool, fp16_io: bool, swaps: Sequence[Swap]) -> tuple[onnx.ModelProto, dict[str, str]]:
    """Names, zero-bias inputs, axis labels, IR version, metadata; then shape inference and the checker."""
    dcn_nodes = _name_dcn_nodes(proto, strip)
    if strip:
        _strip_value_prefix(proto, strip + ".")
    for part in ops.parts("onnx"):  # each op's own post-processing, where it has one
        if hasattr(part, "postprocess"):
            part.postprocess(proto)
    _rename_dims(proto, dim_labels)
    _set_metadata(proto, deform_conv, fp16, fp16_io, swaps)
    return check_graph(proto), dcn_nodes


def check_graph(proto: onnx.ModelProto) -> onnx.ModelProto:
    """The IR version ONNX Runtime reads, the contract's invariants, shape inference with our schemas
    (every dcn output shaped), the size limit and ``onnx.checker``; the inferred model."""
    needed = onnx.helper.find_min_ir_version_for(list(proto.opset_import), ignore_unknown=True)
    proto.ir_version = max(proto.ir_version, needed)  # e.g. opset 23 needs IR 11
    ort_ir = max_ir_version_for_onnxruntime()
    if ort_ir is not None and proto.ir_version > ort_ir:
        if needed > ort_ir:  # lowering it would write a model that claims an IR its opsets do not exist in
            opsets = ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in proto.opset_import)
            raise DcnError(f"the exported model's opsets ({opsets}) need ONNX IR {needed}, but the installed "
                           f"onnxruntime {ort.__version__} reads at most IR {ort_ir}: upgrade onnxruntime, or "
                           "export with a lower opset (--opset)")
        proto.ir_version = ort_ir
    _check_contract(proto)
    check_graph_attributes(proto)  # the contract's limits, naming the node
    proto = _ensure_value_info(proto)
    if proto.ByteSize() > MAX_PROTO_BYTES:
        raise DcnError(f"exported model is {proto.ByteSize() / 2**30:.1f} GiB, over protobuf's 2 GiB limit")
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as e:
        raise DcnError(f"onnx.checker rejected the exported model: {describe(e)}") from e
    return proto


def _set_metadata(model: onnx.ModelProto, deform_conv: str, fp16: bool, fp16_io: bool, swaps: Sequence[Swap]) -> None:
    try:
        ver = version("dcn-deploy")
    except Exception:
        ver = "source"
    props = {
        "dcn.exporter": f"dcn-export {ver}",
        "dcn.deform_conv": deform_conv,
        "dcn.precision": ("float16" + ("/io-float16" if fp16_io else "/io-float32")) if fp16 else "float32",
    }
    if swaps:
        props["dcn.swapped"] = "; ".join(str(s) for s in swaps)
    existing = {p.key: p for p in model.metadata_props}
    for k, v in props.items():
        if k in existing:
            existing[k].value = v
        else:
            model.metadata_props.add(key=k, value=v)
