"""The user-path matrix: model format x precision x shapes x model, each cell the commands a user runs.

Every cell: ``dcn-export FILE --check`` passes on ONNX Runtime with our float32 / float16 kernels
(the check judges against PyTorch float64 with ``dcn_base.tolerance.passes``); a dynamic cell
also passes ``dcn-compare FILE model.onnx`` at a second shape; the "converted" precision is the
float32 export converted to float16 the way ``dcn-build`` does for TensorRT 11
(``trt_runtime.fp16_convert``), proven with ``dcn-compare --precision fp16``. Cells refused by
design (``REFUSED``) assert their one-line message instead.

The cells are generated (``cells()``): a greedy cover of every (format, precision, shapes),
every (model, precision, shapes) and every (model, format) combination -- the combinations
users run -- instead of the full product, to keep CI to a couple of minutes. Models are tiny
(tests/helpers/user_path_models.py); each model file is written once per module.
"""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import user_path_models as upm
from helpers.built_libs import require
from exporter.cli import main as export_main
from trt_runtime import plugins
from trt_runtime.cli import compare_main

FORMATS = ("state_dict", "pickle", "trace", "script", "pt2", "pt2_dynamic")
PRECISIONS = ("float32", "fp16", "fp16_io", "converted")
SHAPES = ("static", "dynamic")
MODELS = ("dcnv1_bias", "dcnv2_bn", "tv_functional", "psroi_head", "dict_out", "mdpool_head", "dcnv3_block",
          "dcnv4_block", "msda_layer")
ROI_MODELS = ("psroi_head", "mdpool_head")  # features + RoIs

# (format, shapes, model) -> the one-line message of a combination refused by design: DCNv4's module turns
# the batch into a number (TorchScript's aten::Int), which a trace keeps at the example's 1.
# A static program (pt2) holds such sizes as well.
REFUSED: dict[tuple[str, str, str], str] = {
    ("trace", "dynamic", "dcnv4_block"): "for dynamic axes export a torch.export program (.pt2) or a state dict "
                                         "with --factory",
    ("pt2", "dynamic", "dcnv4_block"): "export it with dynamic_shapes (torch.export.Dim) for those axes, or a "
                                       "state dict with --factory",
    ("pt2", "dynamic", "msda_layer"): "export it with dynamic_shapes (torch.export.Dim) for those axes, or a "
                                      "state dict with --factory",
}
# Models whose module (like its upstream original: mmcv's RoI pooling packs, InternImage's DCNv3, the DCNv4
# package, mmcv's attention) torch.jit.script cannot compile: no scripted file of them for a user to export.
UNSCRIPTABLE = ("mdpool_head", "dcnv3_block", "dcnv4_block", "msda_layer")


def cells() -> list[tuple[str, str, str, str]]:
    """(format, precision, shapes, model): a greedy cover of the combinations named in the module doc."""
    need = set()
    for f, p, s in itertools.product(FORMATS, PRECISIONS, SHAPES):
        need.add(("fps", f, p, s))
    for m, p, s in itertools.product(MODELS, PRECISIONS, SHAPES):
        need.add(("mps", m, p, s))
    for m, f in itertools.product(MODELS, FORMATS):
        if not (f == "script" and m in UNSCRIPTABLE):
            need.add(("mf", m, f))

    def covers(c):
        f, p, s, m = c
        return {("fps", f, p, s), ("mps", m, p, s), ("mf", m, f)}

    chosen = []
    candidates = [c for c in itertools.product(FORMATS, PRECISIONS, SHAPES, MODELS)
                  if not (c[0] == "script" and c[3] in UNSCRIPTABLE)]
    while need:
        best = max(candidates, key=lambda c: len(covers(c) & need))  # first best: deterministic
        chosen.append(best)
        need -= covers(best)
    return chosen


CELLS = cells()


# --------------------------------------------------------------------------- inputs
def _inputs(model: str, second: bool = False) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1 if second else 0)
    if model in ROI_MODELS:  # stride-16 features of a 1344x800 image; RoIs beyond 1024 px
        n, h, w = (2, 40, 70) if second else (1, 50, 84)
        return {"features": torch.randn(n, 4, h, w, generator=g),
                "rois": upm.far_rois(5 if second else 8, n, h * 16, w * 16, seed=int(second))}
    if model == "msda_layer":  # the value map's 8x10 + 4x5 positions; queries vary
        n, q = (2, 7) if second else (1, 5)
        return {"query": torch.randn(n, q, 16, generator=g), "value": torch.randn(n, 100, 16, generator=g),
                "reference_points": torch.rand(n, q, 2, 2, generator=g)}
    if model in ("dcnv3_block", "dcnv4_block"):  # channels last
        c = 8 if model == "dcnv3_block" else 16
        return {"images": torch.randn((2, 20, 12, c) if second else (1, 16, 16, c), generator=g)}
    shape = (2, 3, 20, 12) if second else (1, 3, 16, 16)
    return {"images": torch.randn(shape, generator=g)}


def _dynamic(model: str) -> list[str]:
    if model in ROI_MODELS:
        return ["features:0=batch,2=height,3=width", "rois:0=num_rois"]
    if model == "msda_layer":
        return ["query:0=batch,1=queries", "value:0=batch", "reference_points:0=batch,1=queries"]
    if model in ("dcnv3_block", "dcnv4_block"):
        return ["images:0=batch,1=height,2=width"]
    return ["images:0=batch,2=height,3=width"]


@pytest.fixture(scope="module", autouse=True)
def _ort_lib():
    require(plugins.ort_library)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """(model, format) -> (model file, extra loader flags), written on first use."""
    root = tmp_path_factory.mktemp("user_paths")
    cache: dict[tuple[str, str], tuple[Path, list[str]]] = {}

    def get(model: str, fmt: str):
        key = (model, fmt)
        if key in cache:
            return cache[key]
        m = getattr(upm, model)()
        ex = tuple(_inputs(model).values())
        path = root / f"{model}.{fmt}"
        flags: list[str] = []
        if fmt == "state_dict":
            torch.save(m.state_dict(), path)
            flags = ["--factory", f"helpers.user_path_models:{model}"]
        elif fmt == "pickle":
            torch.save(m, path)
            flags = ["--trust-pickle"]
        elif fmt == "trace":
            torch.jit.save(torch.jit.trace(m, ex, strict=False), path)
        elif fmt == "script":
            torch.jit.save(torch.jit.script(m), path)
        else:
            dyn = None
            if fmt == "pt2_dynamic":  # the axes of --dynamic, as torch.export.Dim.AUTO (its ranges)
                dyn = tuple({int(x.split("=")[0]): torch.export.Dim.AUTO for x in spec.split(":")[1].split(",")}
                            for spec in _dynamic(model))
                ex = tuple(_inputs(model, second=True).values())  # batch 2: not specialised
            torch.export.save(torch.export.export(m, ex, dynamic_shapes=dyn), path)
        cache[key] = (path, flags)
        return cache[key]

    return root, get


def _input_flags(tmp: Path, tensors: dict[str, torch.Tensor]) -> list[str]:
    flags = []
    for name, t in tensors.items():
        npy = tmp / f"{name}.npy"
        np.save(npy, t.numpy())
        flags += ["--input", f"{name}={npy}"]
    return flags


def _save_inputs(path: Path, tensors: dict[str, torch.Tensor]) -> Path:
    from dcn_base.model_io import save_inputs

    save_inputs(path, [{k: v.numpy() for k, v in tensors.items()}])
    return path


# --------------------------------------------------------------------------- the matrix
@pytest.mark.parametrize("fmt,precision,shapes,model", CELLS, ids=["-".join(c) for c in CELLS])
def test_user_path(files, tmp_path, capsys, fmt, precision, shapes, model):
    _, get = files
    path, loader = get(model, fmt)
    out = tmp_path / "m.onnx"
    argv = [str(path), "-o", str(out), *loader, *_input_flags(tmp_path, _inputs(model))]
    argv += {"float32": [], "converted": [], "fp16": ["--fp16"], "fp16_io": ["--fp16-io"]}[precision]
    if shapes == "dynamic":
        for spec in _dynamic(model):
            argv += ["--dynamic", spec]
    refused = REFUSED.get((fmt, shapes, model))
    rc = export_main(argv + ["--check"])
    cap = capsys.readouterr()
    if refused:
        assert rc == 2 and refused in cap.err and cap.err.count("\n") == 1, cap.err
        return
    assert rc == 0, cap.out + cap.err
    assert "check (onnxruntime + dcn ops vs PyTorch float64) PASS" in cap.out, cap.out

    import onnx

    proto = onnx.load(str(out))
    if model == "dict_out":
        assert [o.name for o in proto.graph.output] == ["scores", "boxes", "feat"]
    if shapes == "dynamic" or fmt == "pt2_dynamic":  # the program's own dynamic dims are kept
        first = proto.graph.input[0].type.tensor_type.shape.dim
        assert first[0].dim_param, f"batch axis of {proto.graph.input[0].name} is static"
    coordinates = {"psroi_head": "rois", "mdpool_head": "rois", "msda_layer": "reference_points"}.get(model)
    if coordinates:  # float32 in every precision (contract); reference points: what the locations derive from
        inp = next(i for i in proto.graph.input if i.name == coordinates)
        assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        assert not [n for n in proto.graph.node if n.op_type == "Cast" and coordinates in n.input and
                    any(a.name == "to" and a.i == onnx.TensorProto.FLOAT16 for a in n.attribute)]

    target = out
    compare_flags: list[str] = []
    if precision == "converted":  # what dcn-build does for TensorRT 11
        from trt_runtime.fp16_convert import convert_to_float16

        target = tmp_path / "m.fp16.onnx"
        onnx.save(convert_to_float16(proto), str(target))
        compare_flags = ["--precision", "fp16"]
    shapes_to_check = [False] + ([True] if shapes == "dynamic" or fmt == "pt2_dynamic" else [])
    if precision != "converted":
        shapes_to_check = shapes_to_check[1:]  # the first shape is the export's check
    for second in shapes_to_check:
        inputs = _save_inputs(tmp_path / f"inputs{int(second)}.json", _inputs(model, second))
        rc = compare_main([str(path), str(target), *loader, "--load-inputs", str(inputs), *compare_flags])
        cap = capsys.readouterr()
        assert rc == 0, cap.out + cap.err
        assert "PASS: all" in cap.out


def test_cells_cover_the_matrix():
    """Every (format, precision, shapes), every (model, precision, shapes) and (model, format) is run."""
    got = set(CELLS)
    for f, p, s in itertools.product(FORMATS, PRECISIONS, SHAPES):
        assert any(c[:3] == (f, p, s) for c in got)
    for m, p, s in itertools.product(MODELS, PRECISIONS, SHAPES):
        assert any((c[3], c[1], c[2]) == (m, p, s) for c in got)
    for m, f in itertools.product(MODELS, FORMATS):
        assert any((c[3], c[0]) == (m, f) for c in got) or (f == "script" and m in UNSCRIPTABLE)
    for m in UNSCRIPTABLE:  # still so: else they belong in the scripted cells
        with pytest.raises(Exception):
            torch.jit.script(getattr(upm, m)())


def test_scripted_model_the_converter_refuses_names_module_and_routes(tmp_path, capsys):
    """A scripted model whose own code slices a list torch's converter cannot translate (even frozen):
    one line naming the module and the source line, and the routes that work."""
    path = tmp_path / "slice.ts"
    torch.jit.save(torch.jit.script(upm.input_shape_slice()), path)
    rc = export_main([str(path), "-o", str(tmp_path / "m.onnx"), "--input", "images:1x3x8x8"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1, err
    assert "module '<top>', helpers.user_path_models.InputShapeSlice: " in err and "user_path_models.py line" in err
    assert "export it from torch.jit.trace, a torch.export program (.pt2) or a state dict with --factory" in err


def test_trust_pickle_imports_the_model_class_from_the_current_directory(tmp_path):
    """As with --factory: the pickled module's class lives next to the user, in the current directory."""
    import subprocess
    import sys

    (tmp_path / "my_dcn_model.py").write_text(
        "import torch\nfrom exporter.ops import DeformConv2dPack\n"
        "class Net(torch.nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n        self.dcn = DeformConv2dPack(3, 4, 3, padding=1)\n"
        "    def forward(self, images):\n        return self.dcn(images)\n")
    script = ("import sys, torch; sys.path.insert(0, '.'); import my_dcn_model; "
              "torch.save(my_dcn_model.Net().eval(), 'net.pt')")
    subprocess.run([sys.executable, "-c", script], cwd=tmp_path, check=True, capture_output=True)
    exe = Path(sys.executable).with_name("dcn-export")
    proc = subprocess.run([str(exe), "net.pt", "--trust-pickle", "-o", "net.onnx", "--input", "images:1x3x8x8", "-q"],
                          cwd=tmp_path, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "net.onnx").is_file()
