"""The TensorRT creators against the op contract (exporter/contract.py), and the plugin
layer's behaviour on the host.

1. The field tables the creators and the ONNX Runtime ops are built from (plugins/ops/<op>/<op>_fields.h), compiled
   with g++ and printed, equals the contract: op types, attribute names in order, kinds,
   TensorRT field types (INT/INTS -> kINT32, FLOAT -> kFLOAT32), lengths, defaults,
   required flags; and no plugin source spells a field name outside that table.
2. The real creators (plugin sources compiled against TensorRT 10.14 headers into the host
   harness of scripts/check_cuda_build.sh, plugins/trt/testing/) report exactly those
   fields through getFieldNames(); createPlugin / getFieldsToSerialize / createPlugin
   (runtime) round-trips; errors name op, layer, attribute, got and expected (messages of
   the common header); getOutputShapes() gives the contract's output shape as symbolic
   expressions; formats, output types, workspace size; enqueue without a GPU fails with a
   reported, non-zero status (every CUDA / cuBLAS status reaches the return value).
"""
from __future__ import annotations

import ctypes
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers.cpp_ops import cpp_ops, include_flags, op_files
from helpers.cuda_check import REPO, check_build
from exporter import contract
from exporter.ops.deform_conv2d.spec import SPEC as DEFORM_CONV2D
from exporter.ops.deform_psroi_pool.spec import SPEC as DEFORM_PSROI_POOL
from exporter.contract import conv_out_size
from helpers.ci_policy import missing

TRT_DIR = REPO / "plugins" / "trt"
ORT_DIR = REPO / "plugins" / "ort"

PRINTER = r"""
#include <cstdio>
#include <iterator>
@INCLUDES@
using namespace dcn;
static void op(const char* name, const FieldSpec* f, int n, bool last) {
    std::printf("\"%s\": [", name);
    for (int i = 0; i < n; ++i) {
        std::printf("%s{\"name\": \"%s\", \"kind\": \"%s\", \"trt\": \"%s\", \"length\": %d, \"required\": %s, "
                    "\"has_default\": %s, \"defaults\": [", i ? ", " : "", f[i].name, fieldKindName(f[i].kind),
                    fieldTrtTypeName(f[i].kind), f[i].length, f[i].required ? "true" : "false",
                    f[i].hasDefault ? "true" : "false");
        for (int k = 0; f[i].hasDefault && k < f[i].length; ++k) std::printf("%s%.17g", k ? ", " : "", f[i].defaults[k]);
        std::printf("]}");
    }
    std::printf("]%s", last ? "" : ", ");
}
int main() {
    std::printf("{\"version\": \"%s\", \"namespace\": \"%s\", \"ops\": {", kPluginVersion, kPluginNamespace);
@OPS@
    std::printf("}}\n");
}
"""


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        missing("no C++ compiler (g++) to compile the field tables (plugins/ops/<op>/<op>_fields.h)")
    d = tmp_path_factory.mktemp("fields")
    ops = cpp_ops()  # every op of the registry plugins/ops/ops.list, in its order
    includes = "\n".join(f'#include "{snake}_fields.h"' for snake, _ in ops)
    calls = "\n".join(f"    op(k{t}Name, k{t}Fields, static_cast<int>(std::size(k{t}Fields)), {str(i == len(ops) - 1).lower()});"
                      for i, (_, t) in enumerate(ops))
    (d / "p.cpp").write_text(PRINTER.replace("@INCLUDES@", includes).replace("@OPS@", calls))
    subprocess.run([cxx, "-std=c++17", "-Wall", "-Werror", *include_flags(), str(d / "p.cpp"), "-o", str(d / "p")],
                   check=True)
    return json.loads(subprocess.run([str(d / "p")], capture_output=True, text=True, check=True).stdout)


def contract_rows(op: contract.OpSpec):
    rows = []
    for a in op.attrs:
        has_default = a.default is not None
        defaults = list(a.default) if isinstance(a.default, (tuple, list)) else ([a.default] if has_default else [])
        rows.append(dict(name=a.name, kind=a.kind, trt=a.trt_type, length=a.length, required=a.required,
                         has_default=has_default, defaults=[float(v) for v in defaults]))
    return rows


# --------------------------------------------------------------------------- 1. the table
def test_field_table_equals_contract(table):
    assert table["version"] == contract.PLUGIN_VERSION
    assert table["namespace"] == contract.PLUGIN_NAMESPACE
    assert list(table["ops"]) == list(contract.OPS)
    for op_type, op in contract.OPS.items():
        assert table["ops"][op_type] == contract_rows(op), op_type
    assert not set(table["ops"]) & set(contract.FORBIDDEN_OP_TYPES)


def test_no_field_name_spelled_outside_the_table():
    names = {a.name for op in contract.OPS.values() for a in op.attrs} | set(contract.OPS)
    for f in sorted([*TRT_DIR.glob("*.[ch]*"), *ORT_DIR.glob("*.[ch]*"), *op_files("*_plugin.*"), *op_files("*_ort.cpp")]):
        code = re.sub(r"//[^\n]*|/\*.*?\*/", "", f.read_text(), flags=re.S)  # comments may name them
        for lit in re.findall(r'"([A-Za-z_0-9]+)"', code):
            assert lit not in names, f"{f.name} spells \"{lit}\": use the op's table (plugins/ops/<op>/<op>_fields.h)"


def test_creators_use_the_table():
    src = "\n".join(f.read_text() for f in [*TRT_DIR.glob("*.cpp"), *op_files("*_plugin.cpp")])
    for sym in ("kDeformConv2dFields", "kDeformPSROIPoolFields", "kDeformConv2dName", "kDeformPSROIPoolName",
                "kDeformRoIPoolFields", "kDeformRoIPoolName"):
        assert src.count(sym) >= 2, sym
    # one parse path: every creator parses with parseFields(), the runtime phase included
    assert src.count("parseFields(kDeformConv2dName") == 1 and src.count("parseFields(kDeformPSROIPoolName") == 1
    assert src.count("parseFields(kDeformRoIPoolName") == 1


# --------------------------------------------------------------------------- 2. the harness
class Harness:
    def __init__(self, path: Path):
        L = self.L = ctypes.CDLL(str(path))
        P, I32, I64 = ctypes.c_void_p, ctypes.POINTER(ctypes.c_int32), ctypes.POINTER(ctypes.c_int64)
        L.dcn_harness_enum.restype = ctypes.c_int
        L.dcn_harness_enum.argtypes = [ctypes.c_char_p]
        L.dcn_harness_create.restype = P
        L.dcn_harness_create.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int32,
                                         ctypes.POINTER(ctypes.c_char_p), I32, I32, ctypes.POINTER(P), ctypes.c_int32]
        L.dcn_harness_roundtrip.restype = P
        L.dcn_harness_roundtrip.argtypes = [P, ctypes.c_char_p]
        L.dcn_harness_attach.restype = P
        L.dcn_harness_attach.argtypes = [P]
        L.dcn_harness_serialize.argtypes = [P, ctypes.c_char_p, ctypes.c_size_t]
        L.dcn_harness_output_shapes.argtypes = [P, ctypes.c_int32, I32, I64, I32, I32, I64, I32, ctypes.c_char_p,
                                                ctypes.c_size_t]
        L.dcn_harness_supports.argtypes = [P, ctypes.c_int32, ctypes.c_int32, ctypes.c_int32, I32, I32]
        L.dcn_harness_output_types.argtypes = [P, ctypes.c_int32, I32, I32]
        L.dcn_harness_configure.argtypes = [P, ctypes.c_int32, I32, I64, I32, ctypes.c_int32, I64, I64]
        L.dcn_harness_configure_range.argtypes = [P, ctypes.c_int32, I32, I64, I64, I32, ctypes.c_int32, I64, I64]
        L.dcn_harness_run.argtypes = [P, ctypes.c_int32, I32, I64, I32, ctypes.c_int32, I64, I32]
        L.dcn_harness_destroy.argtypes = [P]
        L.dcn_harness_take_log.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
        L.dcn_harness_describe.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
        self.handles = []

    def enum(self, name: str) -> int:
        v = self.L.dcn_harness_enum(name.encode())
        assert v != -1000, name
        return v

    def text(self, fn, *args) -> str:
        buf = ctypes.create_string_buffer(1 << 16)
        fn(*args, buf, len(buf))
        return buf.value.decode()

    def log(self) -> str:
        return self.text(self.L.dcn_harness_take_log)

    def create(self, op: str, layer: str, fields: dict, phase: int = 0, types: dict | None = None):
        """fields: name -> list of values (ints -> kINT32, floats -> kFLOAT32 unless `types` says otherwise)."""
        names, tps, lens, keep, ptrs = [], [], [], [], []
        for name, vals in fields.items():
            vals = vals if isinstance(vals, (list, tuple)) else [vals]
            t = (types or {}).get(name) or ("kFLOAT32" if any(isinstance(v, float) for v in vals) else "kINT32")
            ctype = {"kFLOAT32": ctypes.c_float, "kINT32": ctypes.c_int32, "kFLOAT64": ctypes.c_double,
                     "kINT64": ctypes.c_int64}[t]
            arr = (ctype * max(len(vals), 1))(*vals)
            keep.append(arr)
            names.append(name.encode())
            tps.append(self.enum(t))
            lens.append(len(vals))
            ptrs.append(ctypes.cast(arr, ctypes.c_void_p))
        n = len(names)
        h = self.L.dcn_harness_create(op.encode(), layer.encode(), n, (ctypes.c_char_p * max(n, 1))(*names),
                                      (ctypes.c_int32 * max(n, 1))(*tps), (ctypes.c_int32 * max(n, 1))(*lens),
                                      (ctypes.c_void_p * max(n, 1))(*ptrs), phase)
        if h:
            self.handles.append(h)
        return h

    def serialize(self, h) -> dict:
        return json.loads(self.text(self.L.dcn_harness_serialize, h))

    def roundtrip(self, h, layer: str):
        h2 = self.L.dcn_harness_roundtrip(h, layer.encode())
        if h2:
            self.handles.append(h2)
        return h2

    def attach(self, h):
        h2 = self.L.dcn_harness_attach(h)
        if h2:
            self.handles.append(h2)
        return h2

    @staticmethod
    def _flat(shapes):
        ranks = (ctypes.c_int32 * len(shapes))(*[len(s) for s in shapes])
        dims = (ctypes.c_int64 * (8 * len(shapes)))()
        for i, s in enumerate(shapes):
            for k, v in enumerate(s):
                dims[8 * i + k] = v
        return ranks, dims

    def output_shape(self, h, shapes, symbolic):
        """shapes: input dims; symbolic: per input, per dim True = a runtime dimension."""
        ranks, dims = self._flat(shapes)
        sym = (ctypes.c_int32 * (8 * len(shapes)))()
        for i, s in enumerate(symbolic):
            for k, v in enumerate(s):
                sym[8 * i + k] = int(v)
        rank, out, const = ctypes.c_int32(), (ctypes.c_int64 * 8)(), (ctypes.c_int32 * 8)()
        err = ctypes.create_string_buffer(1024)
        rc = self.L.dcn_harness_output_shapes(h, len(shapes), ranks, dims, sym, ctypes.byref(rank), out, const, err,
                                              len(err))
        assert err.value == b"", err.value
        return rc, list(out[: rank.value]), [bool(c) for c in const[: rank.value]]

    def configure(self, h, shapes, out_shape, dtype="FP32"):
        ranks, dims = self._flat(shapes)
        types = (ctypes.c_int32 * len(shapes))(*[self.enum(dtype)] * len(shapes))
        ws = ctypes.c_int64()
        rc = self.L.dcn_harness_configure(h, len(shapes), ranks, dims, types, len(out_shape),
                                          (ctypes.c_int64 * 8)(*out_shape), ctypes.byref(ws))
        return rc, ws.value

    def configure_range(self, h, min_shapes, shapes, out_shape, dtype="FP32"):
        """configure for a profile from min_shapes to shapes (opt = max)."""
        ranks, dims = self._flat(shapes)
        _, mins = self._flat(min_shapes)
        types = (ctypes.c_int32 * len(shapes))(*[self.enum(dtype)] * len(shapes))
        ws = ctypes.c_int64()
        rc = self.L.dcn_harness_configure_range(h, len(shapes), ranks, mins, dims, types, len(out_shape),
                                                (ctypes.c_int64 * 8)(*out_shape), ctypes.byref(ws))
        return rc, ws.value

    def run(self, h, shapes, out_shape, dtype="FP32"):
        ranks, dims = self._flat(shapes)
        types = (ctypes.c_int32 * len(shapes))(*[self.enum(dtype)] * len(shapes))
        stage = ctypes.c_int32()
        rc = self.L.dcn_harness_run(h, len(shapes), ranks, dims, types, len(out_shape),
                                    (ctypes.c_int64 * 8)(*out_shape), ctypes.byref(stage))
        return rc, stage.value

    def supports(self, h, pos, types, formats, nb_inputs):
        n = len(types)
        return bool(self.L.dcn_harness_supports(h, pos, nb_inputs, n - nb_inputs,
                                                (ctypes.c_int32 * n)(*[self.enum(t) for t in types]),
                                                (ctypes.c_int32 * n)(*[self.enum(f) for f in formats])))

    def output_type(self, h, types):
        out = ctypes.c_int32()
        rc = self.L.dcn_harness_output_types(h, len(types), (ctypes.c_int32 * len(types))(*[self.enum(t) for t in types]),
                                             ctypes.byref(out))
        return rc, out.value

    def close(self):
        for h in reversed(self.handles):
            self.L.dcn_harness_destroy(h)
        self.handles.clear()


@pytest.fixture(scope="module")
def hx():
    r = check_build(need_trt=True)
    h = Harness(r.harness)
    yield h
    h.close()


@pytest.fixture(autouse=False)
def clean_log(hx):
    hx.log()
    yield


def test_creators_report_the_contract_fields(hx):
    creators = json.loads(hx.text(hx.L.dcn_harness_describe))
    assert [c["name"] for c in creators] == list(contract.OPS)
    for c in creators:
        op = contract.OPS[c["name"]]
        assert c["version"] == contract.PLUGIN_VERSION and c["namespace"] == contract.PLUGIN_NAMESPACE
        assert c["interface"] == "PLUGIN CREATOR_V3ONE"
        assert [(f["name"], f["type"], f["length"]) for f in c["fields"]] == \
            [(a.name, a.trt_type, a.length) for a in op.attrs]


CONV_FIELDS = dict(strides=[2, 1], pads=[1, 0, 2, 1], dilations=[2, 1], group=2, offset_group=3, kernel_shape=[3, 2])
POOL_FIELDS = dict(spatial_scale=0.0625, output_dim=21, group_size=7, pooled_size=7, part_size=7,
                   sample_per_part=4, trans_std=0.1, no_trans=0)


def _values(ser):
    return {f["name"]: f["values"] for f in ser["fields"]}


def test_conv_serialize_roundtrip(hx, clean_log):
    h = hx.create("DeformConv2d", "backbone.layer3.0.conv2", CONV_FIELDS)
    assert h, hx.log()
    ser = hx.serialize(h)
    assert (ser["name"], ser["version"], ser["namespace"]) == ("DeformConv2d", "1", "")
    assert _values(ser) == {k: (v if isinstance(v, list) else [v]) for k, v in CONV_FIELDS.items()}
    assert {f["name"]: f["type"] for f in ser["fields"]} == {a.name: a.trt_type for a in DEFORM_CONV2D.attrs}
    h2 = hx.roundtrip(h, "backbone.layer3.0.conv2")
    assert h2, hx.log()
    assert hx.serialize(h2) == ser
    assert ser["metadata"].startswith("DeformConv2d v1: strides=[2, 1] pads=[1, 0, 2, 1]")


def test_conv_defaults_and_optional_kernel_shape(hx, clean_log):
    h = hx.create("DeformConv2d", "l", {})
    assert h, hx.log()
    vals = _values(hx.serialize(h))
    want = {a.name: [float(x) for x in (a.default if isinstance(a.default, tuple) else (a.default,))]
            for a in DEFORM_CONV2D.attrs if a.default is not None}
    assert {k: [float(x) for x in v] for k, v in vals.items()} == want
    assert "kernel_shape" not in vals  # optional without default: absent stays absent after a round trip
    assert "kernel_shape" not in _values(hx.serialize(hx.roundtrip(h, "l")))


def test_pool_serialize_roundtrip_and_defaults(hx, clean_log):
    h = hx.create("DeformPSROIPool", "rfcn.psroi", POOL_FIELDS)
    assert h, hx.log()
    ser = hx.serialize(h)
    got = _values(ser)
    assert got["output_dim"] == [21] and got["no_trans"] == [0]
    assert got["spatial_scale"] == pytest.approx([0.0625]) and got["trans_std"] == pytest.approx([0.1])
    assert hx.serialize(hx.roundtrip(h, "rfcn.psroi")) == ser
    required = {a.name: POOL_FIELDS[a.name] for a in DEFORM_PSROI_POOL.attrs if a.required}
    h3 = hx.create("DeformPSROIPool", "p", required)
    assert h3, hx.log()
    vals = _values(hx.serialize(h3))
    for a in DEFORM_PSROI_POOL.attrs:
        if a.default is not None:
            assert vals[a.name] == pytest.approx([a.default]), a.name


@pytest.mark.parametrize("op,fields,types,message", [
    ("DeformPSROIPool", {k: v for k, v in POOL_FIELDS.items() if k != "spatial_scale"}, None,
     "DeformPSROIPool 'head': attribute spatial_scale is missing, expected a FLOAT (kFLOAT32)"),
    ("DeformConv2d", dict(group=2.0), None,
     "DeformConv2d 'head': attribute group has the wrong type, expected an INT (kINT32); got kFLOAT32"),
    ("DeformConv2d", dict(strides=[1, 1]), dict(strides="kINT64"),
     "DeformConv2d 'head': attribute strides has the wrong type, expected an INTS (kINT32); got kINT64"),
    ("DeformConv2d", dict(strides=[1, 1, 1]), None,
     "DeformConv2d 'head': attribute strides has 3 values, expected 2"),
    ("DeformConv2d", dict(dilations=[1, 0]), None,
     "DeformConv2d 'head': attribute dilations = [1, 0], expected values >= 1"),
    ("DeformConv2d", dict(group=[1, 2]), None,
     "DeformConv2d 'head': attribute group has 2 values, expected 1"),
    ("DeformPSROIPool", dict(POOL_FIELDS, sample_per_part=0), None,
     "DeformPSROIPool 'head': attribute sample_per_part = 0, expected >= 1"),
    ("DeformPSROIPool", dict(POOL_FIELDS, no_trans=2), None,
     "DeformPSROIPool 'head': attribute no_trans = 2, expected 0 or 1"),
])
def test_create_rejects_with_a_message_naming_everything(hx, clean_log, op, fields, types, message):
    assert not hx.create(op, "head", fields, types=types)
    log = hx.log()
    assert message in log, log


def test_unknown_field_is_a_warning(hx, clean_log):
    h = hx.create("DeformConv2d", "x", dict(CONV_FIELDS, plugin_version=[1]))
    assert h
    assert "DeformConv2d 'x': ignoring unknown attribute plugin_version, expected one of strides, pads" in hx.log()


# (N, C, H, W, M, kH, kW, strides, pads, dilations, group, offset_group, mask, bias)
SHAPES = [
    (2, 6, 7, 9, 4, 3, 2, (2, 1), (1, 0, 2, 1), (2, 1), 2, 3, True, True),
    (1, 6, 8, 5, 6, 2, 3, (1, 2), (0, 2, 1, 0), (1, 2), 3, 2, True, False),
    (33, 4, 13, 17, 8, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1, 1, False, True),
    (1, 8, 4, 4, 8, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 4, 8, False, False),
    (3, 4, 31, 29, 4, 3, 3, (3, 2), (2, 1, 0, 3), (2, 3), 1, 2, True, True),
]


def conv_io(s):
    N, C, H, W, M, kH, kW, st, pd, dl, g, og, mask, bias = s
    oh, ow = conv_out_size(H, pd[0], pd[2], dl[0], kH, st[0]), conv_out_size(W, pd[1], pd[3], dl[1], kW, st[1])
    shapes = [[N, C, H, W], [M, C // g, kH, kW], [N, 2 * og * kH * kW, oh, ow]]
    if bias or mask:
        shapes.append([M])
    if mask:
        shapes.append([N, og * kH * kW, oh, ow])
    fields = dict(strides=list(st), pads=list(pd), dilations=list(dl), group=g, offset_group=og, kernel_shape=[kH, kW])
    return shapes, [N, M, oh, ow], fields


@pytest.mark.parametrize("s", SHAPES)
def test_conv_output_shape_is_symbolic_and_follows_the_contract(hx, clean_log, s):
    shapes, want, fields = conv_io(s)
    h = hx.create("DeformConv2d", "c", fields)
    # dynamic batch / H / W: symbolic; channels and kernel: constants
    symbolic = [[True, False, True, True], [False] * 4, [True, False, True, True], [False], [True, False, True, True]]
    rc, got, const = hx.output_shape(h, shapes, symbolic[: len(shapes)])
    assert rc == 0, hx.log()
    assert got == want
    assert const == [False, True, False, False]
    # other H / W through the same expressions
    N, C, H, W, M, kH, kW, st, pd, dl, g, og, _, _ = s
    for H2, W2 in ((H + 5, W + 11), (64, 48), (kH * dl[0] + 3, kW * dl[1] + 2)):
        sh = [list(x) for x in shapes]
        sh[0][2:] = [H2, W2]
        rc, got, _ = hx.output_shape(h, sh, symbolic[: len(shapes)])
        assert got[2:] == [conv_out_size(H2, pd[0], pd[2], dl[0], kH, st[0]),
                           conv_out_size(W2, pd[1], pd[3], dl[1], kW, st[1])]
    # a weight with a runtime kernel size takes the general expression
    rc, got, _ = hx.output_shape(h, shapes, [[True] * 4, [False, False, True, True]] + symbolic[2: len(shapes)])
    assert rc == 0 and got == want


def test_pool_output_shape_has_a_dynamic_roi_count(hx, clean_log):
    h = hx.create("DeformPSROIPool", "p", POOL_FIELDS)
    rc, got, const = hx.output_shape(h, [[2, 21 * 49, 38, 50], [300, 5], [300, 2, 7, 7]],
                                     [[True, False, True, True], [True, False], [True, False, False, False]])
    assert rc == 0
    assert got == [300, 21, 7, 7] and const == [False, True, True, True]


def test_formats_fp32_fp16_linear_one_type(hx, clean_log):
    h = hx.create("DeformConv2d", "c", {})
    n_in = 5
    for t in ("FP32", "FP16"):
        assert hx.supports(h, 0, [t] * 6, ["LINEAR"] * 6, n_in)
        for pos in range(1, 6):
            assert hx.supports(h, pos, [t] * 6, ["LINEAR"] * 6, n_in)
            other = "FP16" if t == "FP32" else "FP32"
            assert not hx.supports(h, pos, [t] * pos + [other] + [t] * (5 - pos), ["LINEAR"] * 6, n_in)
    for t in ("INT8", "INT32", "BF16"):
        assert not hx.supports(h, 0, [t] * 6, ["LINEAR"] * 6, n_in)
    assert not hx.supports(h, 0, ["FP16"] * 6, ["CHW32"] * 6, n_in)
    assert hx.output_type(h, ["FP16"] * 5) == (0, hx.enum("FP16"))
    assert hx.output_type(h, ["FP32"] * 3) == (0, hx.enum("FP32"))
    rc, _ = hx.output_type(h, ["FP16", "FP16", "FP32"])
    assert rc != 0
    assert "DeformConv2d 'c': input 2 has type FP32, expected FP16 like input 0 (all inputs of one type)" in hx.log()


def test_pool_formats_rois_always_fp32(hx, clean_log):
    """DeformPSROIPool: data, trans and the output share FP32 or FP16; rois are FP32 in both (contract)."""
    h = hx.create("DeformPSROIPool", "p", {"spatial_scale": 0.0625, "output_dim": 2, "group_size": 3,
                                            "pooled_size": 3})
    for t in ("FP32", "FP16"):
        types = [t, "FP32", t, t]  # data, rois, trans, Y
        for pos in range(4):
            assert hx.supports(h, pos, types, ["LINEAR"] * 4, 3), (t, pos)
        assert hx.output_type(h, [t, "FP32", t]) == (0, hx.enum(t))
        assert hx.output_type(h, [t, "FP32"]) == (0, hx.enum(t))
    assert not hx.supports(h, 1, ["FP16", "FP16", "FP16", "FP16"], ["LINEAR"] * 4, 3)  # half rois refused
    assert not hx.supports(h, 2, ["FP16", "FP32", "FP32", "FP16"], ["LINEAR"] * 4, 3)  # trans follows data
    rc, _ = hx.output_type(h, ["FP16", "FP16", "FP16"])
    assert rc != 0
    assert "DeformPSROIPool 'p': input 1 has type FP16, expected FP32 (also in an FP16 layer)" in hx.log()


def _columns_bytes(per_image, n, cap=256 << 20):
    return max(per_image, min(n * per_image, cap))


FUSED_SHAPE = (2, 64, 9, 11, 40, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1, 2, True, True)  # the fused FP16 path applies


@pytest.mark.parametrize("s", SHAPES + [FUSED_SHAPE])
@pytest.mark.parametrize("dtype,size", [("FP32", 4), ("FP16", 2)])
def test_conv_configure_and_workspace(hx, clean_log, s, dtype, size):
    shapes, out, fields = conv_io(s)
    h = hx.create("DeformConv2d", "c", fields)
    rc, ws = hx.configure(h, shapes, out, dtype)
    assert rc == 0, hx.log()
    assert ws == conv_workspace(s, out, size, fused=s is FUSED_SHAPE and size == 2)


@pytest.mark.parametrize("s", SHAPES + [FUSED_SHAPE])
@pytest.mark.parametrize("dtype,size", [("FP32", 4), ("FP16", 2)])
def test_conv_workspace_of_a_dynamic_profile_reserves_the_staging(hx, clean_log, s, dtype, size):
    """A profile whose minimum H / W is smaller than its maximum: a run at a smaller output area may need the
    staged output that the largest area does not (its rows of L a multiple of 16 bytes); getWorkspaceSize
    reads the profile's minimum and reserves the staging unless every run has the largest area."""
    shapes, out, fields = conv_io(s)
    low = list(s)
    low[2], low[3] = max(s[5] * s[9][0] - s[8][0] - s[8][2], 1), max(s[6] * s[9][1] - s[8][1] - s[8][3], 1)
    min_shapes, min_out, _ = conv_io(tuple(low))
    assert min_out[2] >= 1 and min_out[3] >= 1 and min_out[2] * min_out[3] < out[2] * out[3]
    h = hx.create("DeformConv2d", "c", fields)
    rc, ws = hx.configure_range(h, min_shapes, shapes, out, dtype)
    assert rc == 0, hx.log()
    fused = s is FUSED_SHAPE and size == 2
    assert ws == conv_workspace(s, out, size, fused=fused, min_area=min_out[2] * min_out[3])
    rc, fixed = hx.configure_range(h, shapes, shapes, out, dtype)  # min = max: no staging where L needs none
    assert rc == 0 and fixed == conv_workspace(s, out, size, fused=fused) <= ws, hx.log()


@pytest.mark.parametrize("mb", ["64", "1024"])
def test_conv_workspace_ignores_the_columns_cap_knob(hx, clean_log, monkeypatch, mb):
    """DCN_DEFORM_CONV_COLUMNS_MB only lowers the chunks a run takes (measurements), never the workspace:
    it may differ between building an engine and running it (a larger cap at run time than at build time
    had overrun the workspace), and a value above the default does not raise the cap."""
    s = (8, 64, 100, 100, 16, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1, 1, True, True)  # columns: 8 x 23 MB
    shapes, out, fields = conv_io(s)
    monkeypatch.setenv("DCN_DEFORM_CONV_COLUMNS_MB", mb)
    rc, ws = hx.configure(hx.create("DeformConv2d", "c", fields), shapes, out, "FP32")
    assert rc == 0, hx.log()
    assert ws == conv_workspace(s, out, 4)


def conv_workspace(s, out, size, *, fused=False, min_area=None):
    """The DeformConv2d plugin's workspace for shape s (max shapes) of elements of `size` bytes, for runs whose
    output area is at least min_area (default: the largest's, a profile fixed in H and W)."""
    N, C, H, W, M, kH, kW = s[:7]
    # im2col: columns with rows of L padded to 16 bytes, plus the GEMM's staged output where padded, or where a
    # smaller run's area may be (a smaller L may need the staging that the largest does not)
    L = out[2] * out[3]
    ld = -(-L // (16 // size)) * (16 // size)
    staged = ld != L or (min_area is not None and min_area < L)
    per_image = (C * kH * kW + (M if staged else 0)) * ld * size
    align = lambda v: (v + 255) // 256 * 256  # noqa: E731
    want = 256 + align(_columns_bytes(per_image, N)) + (32 << 20)  # 256: slack to align the base
    if size == 4:  # FP32: room for the 3xTF32 GEMM too (the columns' lo halves, the weights' hi and lo halves)
        per_split = (2 * C * kH * kW + (M if staged else 0)) * ld * size
        weights = M * (C // s[10]) * kH * kW * size
        want = max(want, 256 + align(_columns_bytes(per_split, N)) + 2 * align(weights) + (32 << 20))
    if fused:  # the fused path's copies: channels-last X, tap-major W
        want = max(want, 256 + align(N * H * W * C * size) + align(M * kH * kW * C * size))
    group, og = s[10], s[11]
    if size == 2 and group == 1 and C % og == 0 and C // og >= 8 and (C // og) % 8 == 0:
        # the channels-last im2col (DCN_DEFORM_CONV_IM2COL=nhwc, off by default): per image columns [L][K],
        # the staged output where padded (as above) and the channels-last copy; the tap-major weights once
        K = kH * kW * C
        per_nhwc = (L * K + (M * ld if staged else 0) + H * W * C) * size
        want = max(want, 256 + align(_columns_bytes(per_nhwc, N)) + align(M * K * size) + (32 << 20))
    return want


def test_conv_configure_rejects_bad_shapes_with_header_messages(hx, clean_log):
    shapes, out, fields = conv_io(SHAPES[0])
    h = hx.create("DeformConv2d", "backbone.layer3.0.conv2", fields)
    bad = [list(x) for x in shapes]
    bad[2][1] -= 2
    rc, _ = hx.configure(h, bad, out)
    assert rc != 0
    assert ("DeformConv2d 'backbone.layer3.0.conv2': offset has 34 channels, expected 2*offset_group*kH*kW = 36"
            " [configurePlugin]") in hx.log()
    h2 = hx.create("DeformConv2d", "k", dict(fields, kernel_shape=[3, 3]))
    rc, _ = hx.configure(h2, shapes, out)
    assert rc != 0
    assert "DeformConv2d 'k': attribute kernel_shape = [3, 3], expected W's kernel size [3, 2]" in hx.log()
    rc, _ = hx.configure(h, shapes[:2], out)
    assert rc != 0
    assert "DeformConv2d 'backbone.layer3.0.conv2': got 2 inputs, expected 3 to 5 (X, W, offset[, B[, mask]])" \
        in hx.log()


def test_conv_configure_rejects_a_staged_pitch_over_int_max(hx, clean_log):
    """600000001 output positions: a leading dimension cuBLAS takes (< 2**31), but the staged output's
    rows, 600000004 floats, are 2400000016 bytes apart: more than cudaMemcpy2DAsync's pitch allows."""
    s = (1, 1, 1, 600000001, 1, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1, 1, False, False)
    shapes, out, fields = conv_io(s)
    rc, _ = hx.configure(hx.create("DeformConv2d", "wide", fields), shapes, out)
    assert rc != 0
    assert ("DeformConv2d 'wide': oH*oW (rounded up to 16 bytes) * 4 bytes, the staged output's pitch = 2400000016,"
            " expected <= 2147483647") in hx.log()


def test_enqueue_without_gpu_reports_and_returns_the_status(hx, clean_log):
    # null device pointers: the error is reported, naming the layer and the input, to the
    # execution context's error recorder, and returned (the cuBLAS / kernel launch statuses
    # without a GPU: tests/test_trt_robustness.py)
    shapes, out, fields = conv_io(SHAPES[0])
    h = hx.attach(hx.create("DeformConv2d", "dcn.layer", fields))
    assert h
    rc, stage = hx.run(h, shapes, out)
    log = hx.log()
    assert stage == 2 and rc != 0, log
    assert re.search(r"RECORDER\(\d+\): DeformConv2d 'dcn.layer': X has shape \[2,6,7,9\] and a null device pointer",
                     log), log

    p = hx.attach(hx.create("DeformPSROIPool", "psroi", POOL_FIELDS))
    rc, stage = hx.run(p, [[1, 21 * 49, 10, 12], [4, 5], [4, 2, 7, 7]], [4, 21, 7, 7])
    log = hx.log()
    assert stage == 2 and rc != 0, log
    assert re.search(r"RECORDER\(\d+\): DeformPSROIPool 'psroi': data has shape \[1,1029,10,12\] and a null device "
                     r"pointer", log), log


def test_enqueue_takes_an_empty_input_without_memory(hx, clean_log):
    """An empty input (here X with no rows, padded into a 2x7 output; PS-RoI data with no rows) may come
    with a null pointer: no kernel reads it. The next used input, non-empty and null here, is the one
    reported."""
    fields = dict(strides=[1, 1], pads=[1, 1, 1, 1], dilations=[1, 1], group=1, offset_group=1, kernel_shape=[1, 1])
    h = hx.attach(hx.create("DeformConv2d", "c", fields))
    rc, stage = hx.run(h, [[1, 4, 0, 5], [3, 4, 1, 1], [1, 2, 2, 7]], [1, 3, 2, 7])
    log = hx.log()
    assert stage == 2 and rc != 0, log
    assert "DeformConv2d 'c': W has shape [3,4,1,1] and a null device pointer" in log and "X has shape" not in log
    p = hx.attach(hx.create("DeformPSROIPool", "p", POOL_FIELDS))
    rc, stage = hx.run(p, [[1, 21 * 49, 0, 12], [4, 5], [4, 2, 7, 7]], [4, 21, 7, 7])
    log = hx.log()
    assert stage == 2 and rc != 0, log
    assert "DeformPSROIPool 'p': rois has shape [4,5] and a null device pointer" in log and "data has shape" not in log


def test_enqueue_empty_batch_and_no_rois_do_nothing(hx, clean_log):
    shapes, out, fields = conv_io(SHAPES[2])
    h = hx.attach(hx.create("DeformConv2d", "c", fields))
    shapes[0][0] = shapes[2][0] = 0
    out[0] = 0
    assert hx.run(h, shapes, out) == (0, 2)
    p = hx.attach(hx.create("DeformPSROIPool", "p", POOL_FIELDS))
    assert hx.run(p, [[1, 21 * 49, 10, 12], [0, 5], [0, 2, 7, 7]], [0, 21, 7, 7]) == (0, 2)


def test_onshapechange_validates_runtime_shapes(hx, clean_log):
    p = hx.attach(hx.create("DeformPSROIPool", "p", POOL_FIELDS))
    rc, stage = hx.run(p, [[1, 21 * 49, 10, 12], [4, 4], [4, 2, 7, 7]], [4, 21, 7, 7])
    assert stage == 1 and rc != 0
    assert "DeformPSROIPool 'p': rois has shape [4, 4], expected [R, 5] [onShapeChange]" in hx.log()


def test_ort_ops_read_attributes_from_the_table():
    """The ONNX Runtime ops read every attribute through the same table (<op>_fields.h)."""
    src = "\n".join(f.read_text() for f in [*ORT_DIR.glob("*.cpp"), *op_files("*_ort.cpp")])
    for op, prefix in ((DEFORM_CONV2D, "kDC_"), (DEFORM_PSROI_POOL, "kPS_")):
        for a in op.attrs:
            assert f"attrs_.field(f[dcn::{prefix}{a.name.upper()}]" in src, (op.op_type, a.name)
