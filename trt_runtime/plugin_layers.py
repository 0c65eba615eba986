"""The check after every build: the engine inspector's layer JSON must show every node of ours as one
of our plugin layers (not a layer TensorRT made itself); the per-node report and its table."""
from __future__ import annotations

import json
import re
from typing import Any, Mapping, Optional, Sequence

from dcn_base.console import table
from dcn_base.errors import DcnError, one_line
from exporter import contract


class PluginLayerCheckFailed(DcnError):
    """The built engine does not run a dcn node through our plugin (a wrong engine, not a usage error)."""

    exit_code = 1




def _layer_text_fields(layer: Mapping[str, Any]) -> list[str]:
    sep = re.compile(r"[\x1e\x1f]")
    texts = [str(layer.get("Name", ""))]
    meta = layer.get("Metadata")
    if meta:
        texts.extend(t.strip() for t in sep.split(str(meta)) if t.strip())
    return texts


def _mentions(texts: Sequence[str], node_name: str) -> bool:
    if not node_name:
        return False
    pat = re.compile(r"(^|[\s\[:+,])" + re.escape(node_name) + r"($|[\s\]+,]|\s*\[profile)")
    for t in texts:
        if t == node_name or pat.search(t):
            return True
    return False


# The inspector's JSON for plugin layers is not documented: the spellings below are read
# tolerantly. A layer is a plugin layer when a type field (LayerType, ParameterType, Type,
# "Layer Type", any case) says "plugin" (PluginV2, PluginV3, kPLUGIN_V3, Plugin...) or its
# metadata carries our plugins' getMetadataString ("<OpType> v1: ..."). Its plugin type is
# the first of the keys below (case, spaces and underscores ignored), a string or a nested
# object's Name / Type, without a namespace ("dcn::<OpType>") or version suffix
# ("<OpType>_1", "<OpType> v1", "<OpType> (version 1)"); else the op named by
# that metadata.
_TYPE_KEYS = ("layertype", "parametertype", "type")
_PLUGIN_KEYS = ("plugintype", "pluginname", "plugin", "plugincreator", "plugincreatorname", "creator", "pluginv3",
                "pluginv2")
_META_RE = re.compile(r"(?:^|[\s:\[])([A-Za-z_][A-Za-z0-9_]*) v" + re.escape(contract.PLUGIN_VERSION) + r":")


def _norm_key(key: Any) -> str:
    return re.sub(r"[\s_/-]", "", str(key)).lower()


def _normalized_fields(layer: Mapping[str, Any]) -> dict[str, Any]:
    return {_norm_key(k): v for k, v in layer.items()}


def _metadata_op(layer: Mapping[str, Any]) -> Optional[str]:
    for t in _layer_text_fields(layer)[1:]:
        m = _META_RE.search(t)
        if m and m.group(1) in contract.OPS:
            return m.group(1)
    return None


def _is_plugin_layer(layer: Mapping[str, Any]) -> bool:
    f = _normalized_fields(layer)
    kinds = " ".join(str(f.get(k, "")) for k in _TYPE_KEYS)
    return "plugin" in _norm_key(kinds) or _metadata_op(layer) is not None


def _clean_plugin_type(value: Any) -> Optional[str]:
    if isinstance(value, Mapping):
        inner = _normalized_fields(value)
        for k in ("name", "type", "plugintype", "pluginname"):
            if inner.get(k):
                return _clean_plugin_type(inner[k])
        return None
    text = str(value).strip()
    if not text:
        return None
    text = re.split(r"::|/", text)[-1].strip()  # namespace
    text = re.sub(r"\s*\(\s*version\s*\d[\w.]*\s*\)$|\s+v(?:ersion)?\s*\d[\w.]*$|_v?\d+$", "", text, flags=re.I)
    return text or None


def _plugin_type(layer: Mapping[str, Any]) -> Optional[str]:
    f = _normalized_fields(layer)
    for key in _PLUGIN_KEYS:
        if f.get(key):
            t = _clean_plugin_type(f[key])
            if t:
                # our op types in their own spelling, whatever the case the JSON used
                return next((op for op in contract.OPS if op.lower() == t.lower()), t)
    return _metadata_op(layer)


def _layer_precision(layer: Mapping[str, Any]) -> Optional[str]:
    ins = layer.get("Inputs") or []
    if ins and isinstance(ins[0], Mapping):
        for key in ("Format/Datatype", "Format/DataType", "DataType", "Datatype"):  # TensorRT 10 / 11 spellings
            if key in ins[0]:
                return str(ins[0][key])
    return None


def plugin_layer_report(engine_info: str | Mapping[str, Any],
                        nodes: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """Match every dcn node to the engine's layers (IEngineInspector JSON, DETAILED verbosity).

    Returns one entry per node: {node, op_type, ok, layer, layer_type, plugin_type, precision,
    problem}. A node is ok when a plugin layer (LayerType/ParameterType "PluginV3"...) names it
    (layer name or ONNX metadata) and, where the JSON says, its plugin type is the op type.
    An unnamed node claims a plugin layer of its type that no named node accounts for.
    """
    if isinstance(engine_info, (str, bytes)):
        try:
            engine_info = json.loads(engine_info)
        except ValueError as err:
            raise DcnError(f"engine layer information is not JSON: {one_line(err)}") from None
    layers = engine_info.get("Layers") if isinstance(engine_info, Mapping) else None
    if not isinstance(layers, list):
        raise DcnError("engine layer information has no 'Layers' list")
    if layers and not isinstance(layers[0], Mapping):
        raise DcnError("engine layer information has only layer names: build with ProfilingVerbosity.DETAILED")

    plugin_layers = [l for l in layers if _is_plugin_layer(l)]
    used_unnamed: set[int] = set()
    report = []
    for node_name, op_type in nodes:
        entry: dict[str, Any] = {"node": node_name, "op_type": op_type, "ok": False, "layer": None,
                                 "layer_type": None, "plugin_type": None, "precision": None, "problem": None}
        named = [l for l in layers if _mentions(_layer_text_fields(l), node_name)]
        # the node's own layer before reformatting copies that only mention it as their destination
        named.sort(key=lambda l: "reformat" in f"{l.get('LayerType', '')} {l.get('Name', '')}".lower())
        candidates = [l for l in named if _is_plugin_layer(l)]
        good = [l for l in candidates if _plugin_type(l) in (None, op_type)]
        if not node_name:
            # An unnamed node: claim a plugin layer of its type not named after any listed node.
            pool = [(i, l) for i, l in enumerate(plugin_layers) if i not in used_unnamed
                    and not any(_mentions(_layer_text_fields(l), n) for n, _ in nodes if n)
                    and (_plugin_type(l) == op_type or (_plugin_type(l) is None and op_type in str(l)))]
            if pool:
                i, l = pool[0]
                used_unnamed.add(i)
                good = [l]
            else:
                entry["problem"] = "unnamed node, and no unclaimed plugin layer of this type exists"
        elif not named:
            entry["problem"] = "no layer of the engine comes from this node"
        if good:
            l = good[0]
            entry.update(ok=True, layer=l.get("Name"), layer_type=l.get("LayerType"),
                         plugin_type=_plugin_type(l) or op_type, precision=_layer_precision(l))
        elif named and not entry["problem"]:
            l = (candidates or named)[0]
            entry.update(layer=l.get("Name"), layer_type=l.get("LayerType"), plugin_type=_plugin_type(l))
            if candidates:
                entry["problem"] = f"became plugin {_plugin_type(l)!r}, not {op_type!r}"
            else:
                entry["problem"] = (f"became a TensorRT {l.get('LayerType') or l.get('ParameterType')} layer, "
                                    "not our plugin (TensorRT imported it itself)")
        report.append(entry)
    return report


def check_plugin_layers(engine_info: str | Mapping[str, Any], nodes: Sequence[tuple[str, str]]) -> list[dict]:
    """:func:`plugin_layer_report`, raising PluginLayerCheckFailed naming every node that is not our plugin."""
    report = plugin_layer_report(engine_info, nodes)
    bad = [r for r in report if not r["ok"]]
    if bad:
        details = "; ".join(f"{r['op_type']} {r['node']!r}: {r['problem']}" for r in bad)
        raise PluginLayerCheckFailed(
            f"{len(bad)} of {len(report)} dcn node(s) did not become our plugin layers: {details}"
        )
    return report


def plugin_layer_table(report: Sequence[Mapping[str, Any]]) -> list[str]:
    """The plugin-layer check as the same kind of table as dcn-compare's (dcn_base.console.table)."""
    if not report:
        return []
    rows = [[r.get("node") or "?", r.get("op_type") or "-", r.get("plugin_type") or "-",
             r.get("precision") or "-", "ok" if r.get("ok") else (r.get("problem") or "not our plugin")]
            for r in report]
    return table(["node", "op_type", "plugin", "precision", "check"], rows, indent="  ")


def _precisions(report: Sequence[Mapping[str, Any]]) -> str:
    seen: dict[str, int] = {}
    for r in report:
        key = r.get("precision") or "precision not reported"
        seen[key] = seen.get(key, 0) + 1
    return ", ".join(f"{v}x {k}" for k, v in seen.items())
