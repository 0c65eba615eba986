"""dcn-export (exporter.cli.main, in-process, and ``python -m exporter``): success paths and
every error path - exit code, one line on stderr, no traceback, no partial output and an
existing output file left untouched."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from helpers import export_models as em
from exporter.cli import main, make_inputs, parse_dynamic, parse_input
from exporter.contract import DOMAIN
from dcn_base.errors import DcnError

REPO = Path(__file__).resolve().parent.parent
OLD = b"previous model, must survive failures"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    model = em.small_dcn()
    x = torch.randn(1, 3, 8, 8)
    torch.jit.save(torch.jit.script(model), d / "model.ts")
    torch.export.save(torch.export.export(model, (x,)), d / "model.pt2")
    torch.save(model, d / "pickled.pt")
    torch.save(model.state_dict(), d / "weights.pth")
    (d / "corrupt.pt").write_bytes(b"PK\x03\x04 this is not really a zip" * 3)
    (d / "a_dir").mkdir()
    (d / "a_file").write_text("not a directory")
    np.save(d / "x.npy", x.numpy())
    return d


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, message, expected_code=2):
    assert code == expected_code, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("dcn-export: error: "), err
    assert "Traceback" not in err
    assert message in lines[0], lines[0]


# --------------------------------------------------------------------------- error paths
ERROR_CASES = [
    # (id, argv after MODEL/-o, model file, message)
    ("missing file", ["--input", "images:1x3x8x8"], "nope.pt", "model file '{d}/nope.pt' not found"),
    ("directory", ["--input", "images:1x3x8x8"], "a_dir", "'{d}/a_dir' is a directory, expected a model file"),
    ("corrupt file", ["--input", "images:1x3x8x8"], "corrupt.pt",
     "is not a TorchScript archive, torch.export program or torch.save file"),
    ("pickle without trust", ["--input", "images:1x3x8x8"], "pickled.pt",
     "unpickling runs code from the file, so dcn-export loads it only with --trust-pickle"),
    ("state dict without factory", ["--input", "images:1x3x8x8"], "weights.pth",
     "holds a state dict (6 tensors); give the model's constructor with --factory"),
    ("input syntax", ["--input", "images=1x3x8x8"], "model.ts", "--input images=1x3x8x8: file '1x3x8x8' not found (a shape is written images:1x3x8x8)"),
    ("input file a directory", ["--input", "images={d}/a_dir"], "model.ts",
     "--input images={d}/a_dir: file '{d}/a_dir' is a directory, expected a .npy file"),
    ("input syntax 2", ["--input", "images1x3x8x8"], "model.ts",
     "--input 'images1x3x8x8': expected NAME:SHAPE[:DTYPE] (e.g. images:1x3x512x512) or NAME=FILE.npy"),
    ("input syntax 3", ["--input", "images:1xax8"], "model.ts", "expected NAME:SHAPE[:DTYPE]"),
    ("input dtype", ["--input", "images:1x3x8x8:float8"], "model.ts", "dtype 'float8' is not one of float32"),
    ("input zero dim", ["--input", "images:0x3x8x8"], "model.ts", "every dimension must be positive, got [0, 3, 8, 8]"),
    ("input twice", ["--input", "a:1x3x8x8", "--input", "a:1x3x8x8"], "model.ts", "--input 'a' given more than once"),
    ("dynamic syntax", ["--input", "images:1x3x8x8", "--dynamic", "images0=batch"], "model.ts",
     "--dynamic 'images0=batch': expected NAME:AXIS=LABEL"),
    ("dynamic unknown input", ["--input", "images:1x3x8x8", "--dynamic", "x:0=batch"], "model.ts",
     "dynamic axes for input 'x': no such input; inputs are images"),
    ("shape rejected", ["--input", "images:1x4x8x8"], "model.ts", "model rejected the example inputs (images: 1x4x8x8 "
                                                                  "float32)"),
    ("no inputs", [], "model.ts", "no example inputs: give --input NAME:SHAPE"),
    ("onnx mode opset", ["--input", "images:1x3x8x8", "--deform-conv", "onnx", "--opset", "18"], "model.ts",
     "--deform-conv onnx writes the standard DeformConv, which needs opset >= 19; got opset 18"),
    ("unknown op", ["--input", "images:1x3x8x8", "--factory", "helpers.export_models:unknown_op_net"], None,
     "operator dcn_test::mystery in module 'body.1' (helpers.export_models._Mystery) has no ONNX translation"),
    ("unknown autograd function", ["--input", "images:1x3x8x8", "--factory", "helpers.export_models:unknown_function_net"],
     None, "torch.export failed in module 'neck.custom' (helpers.export_models._Custom) at "),
    ("bad factory", ["--input", "images:1x3x8x8", "--factory", "export_models"], None,
     "--factory 'export_models': expected MODULE:CALLABLE"),
]


@pytest.mark.parametrize("argv, model_file, message", [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES])
def test_error_paths(files, tmp_path, capsys, argv, model_file, message):
    out = tmp_path / "out.onnx"
    out.write_bytes(OLD)
    model = [files / model_file] if model_file else []
    code, _, err = run(model + ["-o", out] + [a.format(d=files) for a in argv], capsys)
    assert_one_line_error(code, err, message.format(d=files))
    assert out.read_bytes() == OLD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.onnx"]  # no temp / partial files


@pytest.mark.parametrize("output, message", [
    ("{d}/no_such_dir/out.onnx", "output directory '{d}/no_such_dir' does not exist"),
    ("{d}/a_file/out.onnx", "output directory '{d}/a_file' is not a directory"),
    ("{d}/a_dir", "output '{d}/a_dir' is a directory, expected a file path"),
])
def test_unwritable_output(files, capsys, output, message):
    before = sorted(os.listdir(files))
    code, _, err = run([files / "model.ts", "-o", output.format(d=files), "--input", "images:1x3x8x8"], capsys)
    assert_one_line_error(code, err, message.format(d=files))
    assert sorted(os.listdir(files)) == before and os.listdir(files / "a_dir") == []


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_directory(files, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        code, _, err = run([files / "model.ts", "-o", ro / "out.onnx", "--input", "images:1x3x8x8"], capsys)
        assert_one_line_error(code, err, f"output directory '{ro}' is not writable")
    finally:
        ro.chmod(0o755)


def test_argparse_usage_error(capsys):
    code, _, err = run(["--deform-conv", "magic", "-o", "x.onnx"], capsys)
    assert code == 2 and "invalid choice: 'magic'" in err and "Traceback" not in err


def test_check_failure_exit_1(tmp_path, capsys):
    out = tmp_path / "out.onnx"
    out.write_bytes(OLD)
    code, _, err = run(["--factory", "helpers.export_models:noisy_net", "-o", out, "--input", "images:1x3x8x8", "--check"],
                       capsys)
    assert_one_line_error(code, err, "FAIL: output: max abs", expected_code=1)
    assert "nothing written" in err
    assert out.read_bytes() == OLD and sorted(p.name for p in tmp_path.iterdir()) == ["out.onnx"]


def test_mismatch_without_check_is_a_warning(tmp_path, capsys):
    out = tmp_path / "out.onnx"
    code, stdout, err = run(["--factory", "helpers.export_models:noisy_net", "-o", out, "--input", "images:1x3x8x8"], capsys)
    assert code == 0 and out.is_file()
    assert "FAIL" in stdout and "(--check makes this an error)" in stdout


# --------------------------------------------------------------------------- success paths
def test_torchscript_with_dynamic_axes_and_save_io(files, tmp_path, capsys):
    out, io = tmp_path / "m.onnx", tmp_path / "io"
    code, stdout, err = run([files / "model.ts", "-o", out, "--input", "images:2x3x8x8",
                             "--dynamic", "images:0=batch,2=height,3=width", "--save-io", io, "--check"], capsys)
    assert code == 0, err
    assert "check (" in stdout and "PASS" in stdout and f"wrote {out}" in stdout
    model = onnx.load(str(out))
    assert [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == \
        ["batch", 3, "height", "width"]
    assert [n.name for n in model.graph.node if n.domain == DOMAIN] == ["2"]
    assert (io / "inputs.json").is_file() and (io / "outputs.json").is_file()


def test_pt2_uses_its_saved_example_inputs(files, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    code, stdout, err = run([files / "model.pt2", "-o", out, "-q"], capsys)
    assert code == 0, err
    assert stdout == ""  # --quiet
    assert [d.dim_value for d in onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim] == [1, 3, 8, 8]


def test_state_dict_factory_npy_input_standard_mode(files, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    code, stdout, err = run([files / "weights.pth", "--factory", "helpers.export_models:small_dcn", "-o", out,
                             "--input", f"images={files / 'x.npy'}", "--deform-conv", "onnx", "--check"], capsys)
    assert code == 0, err
    assert "check (onnxruntime vs PyTorch float64) PASS" in stdout
    assert [n.op_type for n in onnx.load(str(out)).graph.node if n.op_type.startswith("Deform")] == ["DeformConv"]


def test_pickled_with_trust_and_fp16(files, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    code, stdout, err = run([files / "pickled.pt", "--trust-pickle", "-o", out, "--input", "images:1x3x8x8",
                             "--fp16", "--check"], capsys)
    assert code == 0, err
    assert "float16 (float32 I/O)" in stdout and "[float16 tolerance" in stdout


def test_psroi_factory_generated_rois(tmp_path, capsys):
    out, io = tmp_path / "m.onnx", tmp_path / "io"
    code, stdout, err = run(["--factory", "helpers.export_models:psroi_net", "-o", out, "--input", "images:2x4x8x10",
                             "--input", "rois:7x5", "--dynamic", "rois:0=num_rois", "--save-io", io, "--check"],
                            capsys)
    assert code == 0, err
    from polygraphy.json import load_json

    rois = load_json(str(io / "inputs.json"))[0]["rois"]
    assert rois.shape == (7, 5)
    # boxes inside the image: the feature map (8x10) / spatial_scale (1/4) = 32x40 pixels
    assert set(np.unique(rois[:, 0])) <= {0.0, 1.0}
    assert (rois[:, 1] >= 0).all() and (rois[:, 3] <= 39).all() and (rois[:, 3] > rois[:, 1]).all()
    assert (rois[:, 2] >= 0).all() and (rois[:, 4] <= 31).all() and (rois[:, 4] > rois[:, 2]).all()


def test_parsers():
    s = parse_input("rois:300x5")
    assert (s.name, s.shape, s.dtype) == ("rois", (300, 5), "float32")
    assert parse_input("ids:4,2:int64").shape == (4, 2) and parse_input("ids:4,2:int64").dtype == "int64"
    assert parse_input("x=a/b.npy").file == "a/b.npy"
    assert parse_dynamic("images:0=batch,2=height") == ("images", {0: "batch", 2: "height"})
    assert parse_dynamic("images:0,3") == ("images", {0: "images_dim0", 3: "images_dim3"})
    for bad in ("images", ":1x3", "images:", "images:1x3:"):
        with pytest.raises(DcnError):
            parse_input(bad)
    for bad in ("images", "images:a=b", "images:0=1abc", ":0=batch"):
        with pytest.raises(DcnError):
            parse_dynamic(bad)


def test_inputs_are_seeded():
    specs = [parse_input("images:1x3x4x4"), parse_input("rois:3x5")]
    a = make_inputs(specs, torch.nn.Identity(), seed=1)
    b = make_inputs(specs, torch.nn.Identity(), seed=1)
    c = make_inputs(specs, torch.nn.Identity(), seed=2)
    assert all(torch.equal(x, y) for x, y in zip(a, b)) and not torch.equal(a[0], c[0])


def test_python_dash_m_exporter(files, tmp_path):
    """A real process: exit code 2, one line on stderr, no traceback, nothing written."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "tests")]))
    proc = subprocess.run([sys.executable, "-m", "exporter", str(files / "pickled.pt"), "-o",
                           str(tmp_path / "m.onnx"), "--input", "images:1x3x8x8"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "--trust-pickle" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "m.onnx").exists()


def test_generated_rois_lie_inside_the_image_for_image_inputs():
    """RoIs are image pixels: with an image input (3 channels) they are not scaled by 1/spatial_scale;
    with the pooling's own feature map as input they are."""
    import torch

    from exporter.cli import InputSpec, make_inputs
    from exporter.ops import DeformPSROIPool

    class Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = torch.nn.Conv2d(3, 2 * 3 * 3, 1, stride=16)
            self.pool = DeformPSROIPool(1 / 16, 2, 3, 3)

        def forward(self, images, rois):
            return self.pool(self.body(images), rois)

    def boxes(first):
        specs = [InputSpec(first[0], first[1], "float32", None), InputSpec("rois", (6, 5), "float32", None)]
        return make_inputs(specs, Head(), seed=0)[1]

    on_image = boxes(("images", (1, 3, 64, 64)))
    assert float(on_image[:, 1:].max()) <= 64 and float(on_image[:, 1:].min()) >= 0
    on_features = boxes(("features", (1, 18, 4, 4)))
    assert float(on_features[:, 1:].max()) <= 64 and float(on_features[:, 1:].max()) > 4


def test_naming_one_axis_of_a_program_keeps_its_other_dynamic_axes(tmp_path, capsys):
    """A torch.export program with N, H and W dynamic: --dynamic input:0=batch names the batch and keeps H
    and W dynamic (it used to replace the input's axes whole and fix H and W at the example's 16)."""
    D = torch.export.Dim.AUTO
    program = torch.export.export(em.small_dcn(), (torch.randn(2, 3, 16, 16),), dynamic_shapes=({0: D, 2: D, 3: D},))
    torch.export.save(program, tmp_path / "dyn.pt2")
    out = tmp_path / "d.onnx"
    code, _, err = run([tmp_path / "dyn.pt2", "-o", out, "-q", "--dynamic", "input:0=batch"], capsys)
    assert code == 0, err
    name = onnx.load(str(out)).graph.input[0].name
    dims = [d.dim_param or d.dim_value for d in onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, f"{name}_dim2", f"{name}_dim3"], dims
