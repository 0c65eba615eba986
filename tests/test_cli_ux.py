"""The command lines as a Polygraphy / trtexec user meets them (issue 16): ``--version`` everywhere,
``-q`` silence, no Polygraphy noise by default, ``dcn-infer MODEL.onnx`` on the CPU, ``.npz`` I/O
round trips, ``dcn-export --report``, and every printed ``next:`` command run with the files it
names checked.

Commands run as the installed console scripts (subprocesses: what a shell sees, stderr included)
where the output streams are the point, in-process elsewhere (faster).
"""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import export_models as em
from exporter.cli import main as export_main
from dcn_base.cli import join_option_values, versions
from dcn_base.console import table
from helpers.named_paths import missing_outputs
from trt_runtime.cli import compare_main, infer_main

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
def _console_scripts() -> dict[str, str]:
    """Every command pyproject.toml declares, as ``from MODULE import FUNC as main`` (new ones included)."""
    import tomllib

    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    return {name: "from {} import {} as main".format(*target.split(":")) for name, target in scripts.items()}


ENTRY = _console_scripts()


def command(prog: str) -> list[str]:
    """The console script, or the same entry point through this interpreter."""
    script = BIN / prog
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", f"import sys; {ENTRY[prog]}; sys.exit(main())"]


def sh(prog: str, *args, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(command(prog) + [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A small DCNv2 model as a torch.export program (dynamic batch, example input 2x3x8x8) and its
    ONNX export, with inputs and PyTorch outputs saved as JSON and as .npz."""
    d = tmp_path_factory.mktemp("ux")
    model = em.small_dcn()
    program = torch.export.export(model, (torch.randn(2, 3, 8, 8),), dynamic_shapes=({0: torch.export.Dim.DYNAMIC},))
    torch.export.save(program, d / "m.pt2")
    assert export_main([str(d / "m.pt2"), "-o", str(d / "m.onnx"), "--input", "images:2x3x8x8",
                        "--dynamic", "images:0=batch", "--save-io", str(d / "io"), "-q"]) == 0
    assert export_main([str(d / "m.pt2"), "-o", str(d / "m2.onnx"), "--input", "images:2x3x8x8",
                        "--save-io", str(d / "npzio"), "--io-format", "npz", "--report", str(d / "report.json"),
                        "--check", "-q"]) == 0
    return d


# --------------------------------------------------------------------------- --version
@pytest.mark.parametrize("prog", sorted(ENTRY))
def test_version_of_every_command(prog, tmp_path):
    proc = sh(prog, "--version", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    lines = proc.stdout.splitlines()
    assert re.fullmatch(rf"{prog} \S+ \(dcn-deploy\)", lines[0]), lines
    names = [ln.split()[0] for ln in lines[1:]]
    assert names[:5] == ["torch", "onnx", "onnxruntime", "polygraphy", "TensorRT"], lines
    assert f"torch {torch.__version__.split('+')[0]}" in proc.stdout


def test_version_survives_a_broken_tensorrt(tmp_path, monkeypatch):
    """A TensorRT that fails to import is reported 'not installed', never an error."""
    (tmp_path / "tensorrt.py").write_text("raise RuntimeError('libnvinfer.so.10: cannot open shared object file')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "tensorrt", raising=False)
    from importlib import metadata

    real = metadata.version

    def no_trt_dist(name):
        if name.startswith("tensorrt"):
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(metadata, "version", no_trt_dist)
    v = versions()
    assert v["TensorRT"] is None and v["torch"]


# --------------------------------------------------------------------------- verbosity
def test_quiet_passing_runs_print_nothing(made, tmp_path):
    """-q: a passing run of every command writes nothing to stdout or stderr."""
    runs = [
        ("dcn-export", made / "m.pt2", "-o", tmp_path / "q.onnx", "--input", "images:1x3x8x8", "--save-io",
         tmp_path / "qio", "--check", "--report", tmp_path / "q.json", "-q"),
        ("dcn-compare", made / "io", made / "m.onnx", "--report", tmp_path / "c.json", "-q"),
        ("dcn-infer", made / "m.onnx", "--load-inputs", made / "io/inputs.json", "--iterations", "2", "-o",
         tmp_path / "o.npz", "-q"),
        ("dcn-plugins", "--ort", "-q"),
    ]
    for prog, *args in runs:
        proc = sh(prog, *args, cwd=tmp_path)
        assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", ""), (prog, proc.stdout, proc.stderr)
    assert (tmp_path / "q.onnx").is_file() and (tmp_path / "q.json").is_file() and (tmp_path / "o.npz").is_file()


def test_default_compare_is_a_table_without_polygraphy_noise(made, tmp_path):
    proc = sh("dcn-compare", made / "io", made / "m.onnx", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    lines = proc.stdout.splitlines()
    assert not [ln for ln in lines if re.match(r"\[[WIEV]\] ", ln)], lines  # no "[W] 'colored'..", "[I] Loading.."
    head = next(i for i, ln in enumerate(lines) if ln.startswith("output "))
    assert lines[head + 1].startswith("output ") and lines[head + 1].split()[-1] == "PASS"
    assert lines[-1] == "PASS: all 1 output(s) within tolerance" and len(lines) <= 6, lines


def test_export_check_is_a_table_and_verbose_gives_stage_times(made, tmp_path, capsys):
    code = export_main([str(made / "m.pt2"), "-o", str(tmp_path / "v.onnx"), "--input", "images:1x3x8x8", "--check",
                        "-v"])
    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    i = next(i for i, ln in enumerate(lines) if ln.startswith("dcn-export: check ("))
    assert lines[i + 1].split() == ["output", "max_abs", "max_rel", "of_tolerance", "scale", "result"]
    assert lines[i + 2].split()[0] == "output" and lines[i + 2].split()[-1] == "PASS"
    stages = {ln.split()[0]: float(ln.split()[-1]) for ln in lines if re.match(r"  [a-z.]+( [a-z]+)?\s+[0-9.]+$", ln)}
    for stage in ("load", "torch.export", "verify", "save", "total"):
        assert stage in " ".join(lines), (stage, out)
    total = float(re.search(r"wrote \S+ \(.*\) in ([0-9.]+) s", out).group(1))
    assert total >= max(stages.values()) - 0.05, out  # the summary's time is the whole run's


def test_verbosity_flags_are_the_same_everywhere():
    from exporter.cli import build_parser
    from trt_runtime import cli

    from trt_runtime import serve, triton_repo

    parsers = [build_parser(), cli._build_parser("dcn-build"), cli._infer_parser("dcn-infer"),
               cli._compare_parser("dcn-compare"), serve.build_parser(), triton_repo.build_parser()]
    for p in parsers:
        opts = {o for a in p._actions for o in a.option_strings}
        assert {"-q", "--quiet", "-v", "--verbose", "--version"} <= opts, p.prog
    args = cli._compare_parser("dcn-compare").parse_args(["a", "b", "-vv"])
    assert args.verbose == 2


def test_negative_val_range_is_a_value():
    assert join_option_values(["x", "--val-range", "-2,2", "--val-range", "rois:0,5", "-q"], ["--val-range"]) == \
        ["x", "--val-range=-2,2", "--val-range", "rois:0,5", "-q"]
    args = compare_parser_args(["ref", "t.onnx", "--val-range", "-2,2"])
    assert args.val_range == ["-2,2"]


def compare_parser_args(argv):
    from trt_runtime import cli

    return cli._compare_parser("dcn-compare").parse_args(join_option_values(argv, ["--val-range"]))


def test_dynamic_input_hint_names_a_usable_shape():
    from dcn_base.console import example_shape
    from trt_runtime.build import check_profile

    assert example_shape((None, 3, None, None)) == "1x3x224x224"
    assert example_shape((None, 5)) == "16x5"
    assert example_shape((2, 3, 64, "width")) == "2x3x64x224"
    with pytest.raises(Exception, match=r"--shapes images:1x3x224x224:1x3x224x224:1x3x224x224"):
        check_profile([("images", 1, ("batch", 3, "height", "width"))], {})


def test_one_table_helper():
    assert table(["a", "bb"], [["xxx", 1], ["y", None]]) == ["a    bb", "xxx  1", "y    None"]
    from trt_runtime.build import plugin_layer_table

    lines = plugin_layer_table([{"node": "layer2.0.conv2", "op_type": "DeformConv2d", "plugin_type": "DeformConv2d",
                                 "precision": "Half", "ok": True}])
    assert [ln.split() for ln in lines] == [["node", "op_type", "plugin", "precision", "check"],
                                            ["layer2.0.conv2", "DeformConv2d", "DeformConv2d", "Half", "ok"]]


# --------------------------------------------------------------------------- dcn-infer on the CPU
def test_infer_onnx_on_the_cpu(made, tmp_path, capsys):
    from trt_runtime.plugins import ort_session

    out = tmp_path / "out.npz"
    code = infer_main([str(made / "m.onnx"), "--load-inputs", str(made / "io/inputs.json"), "-o", str(out),
                       "--iterations", "3", "--warmup", "1", "--threads", "1"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert re.search(r"^output\s+shape\s+dtype\s+min\s+max\s+mean$", text, re.M), text
    assert "latency (ONNX Runtime" in text and "dcn ops" in text
    row = text.splitlines()[-1].split()
    assert row[:2] == ["3", "2"] and float(row[2]) > 0, text  # runs, batch, median_ms
    from polygraphy.json import load_json

    feed = load_json(str(made / "io/inputs.json"))[0]
    want = ort_session(str(made / "m.onnx")).run(None, dict(feed))[0]
    with np.load(out) as z:
        np.testing.assert_array_equal(z["output"], want)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.npz"]  # atomic: no temp file left


@pytest.mark.parametrize("prog", ["dcn-infer", "dcn-triton-repo"])
def test_runtime_commands_name_a_pytorch_file(made, tmp_path, prog, capsys):
    """dcn-infer and dcn-triton-repo run ONNX models and engines: a .pt2 is named as a PyTorch file, not
    taken for an engine ("TensorRT is not installed", "engine 'm.pt2': ... pass --onnx")."""
    from trt_runtime.triton_repo import main as repo_main

    np.save(tmp_path / "x.npy", np.zeros((2, 3, 8, 8), np.float32))
    argv = {"dcn-infer": [str(made / "m.pt2"), "--input", f"images={tmp_path / 'x.npy'}"],
            "dcn-triton-repo": [str(made / "m.pt2"), "-o", str(tmp_path / "repo")]}[prog]
    assert {"dcn-infer": infer_main, "dcn-triton-repo": repo_main}[prog](argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"{prog}: error: model {str(made / 'm.pt2')!r} is a PyTorch file; expected an ONNX model (from "
                   "dcn-export) or a TensorRT engine (from dcn-build)"], err
    assert not (tmp_path / "repo").exists()


@pytest.mark.parametrize("model", ["missing.onnx", "missing.engine", "."], ids=["onnx", "engine", "directory"])
def test_infer_names_a_model_that_is_not_there(tmp_path, model, capsys):
    """A missing model (or a directory) is named, before any runtime is asked: not "TensorRT is not
    installed" for an engine path that does not exist."""
    np.save(tmp_path / "x.npy", np.zeros((1, 3, 8, 8), np.float32))
    assert infer_main([str(tmp_path / model), "--input", f"x={tmp_path / 'x.npy'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"dcn-infer: error: model {str(tmp_path / model)!r} does not exist or is not a file"], err


def test_reference_check_runs_even_with_no_verify():
    """--reference-check asks for the run as --check does: --no-verify beside it does not silently skip it."""
    from exporter.export import ExportOptions

    assert ExportOptions(Path("m.onnx"), verify=False, runtime="reference").checked().verify
    assert ExportOptions(Path("m.onnx"), verify=False, check=True).checked().verify
    assert not ExportOptions(Path("m.onnx"), verify=False).checked().verify


def test_infer_help_points_at_the_standard_op():
    from trt_runtime import cli

    text = cli._infer_parser("dcn-infer").format_help()
    assert "MODEL.onnx" in text and "--deform-conv onnx" in text


# --------------------------------------------------------------------------- .npz round trips, --report
def test_npz_io_round_trips(made, tmp_path, capsys):
    npzio = made / "npzio"
    assert sorted(p.name for p in npzio.iterdir()) == ["inputs.npz", "outputs.npz"]
    assert compare_main([str(npzio), str(made / "m2.onnx")]) == 0  # the directory: outputs.npz + inputs.npz
    assert compare_main([str(npzio / "outputs.npz"), str(made / "m2.onnx"), "--load-inputs",
                         str(npzio / "inputs.npz")]) == 0
    assert compare_main([str(made / "m.pt2"), str(made / "m2.onnx"), "--load-inputs", str(npzio / "inputs.npz")]) == 0
    assert "PASS: all 1 output(s)" in capsys.readouterr().out
    out = tmp_path / "o.npz"
    assert infer_main([str(made / "m2.onnx"), "--load-inputs", str(npzio / "inputs.npz"), "-o", str(out), "-q"]) == 0
    with np.load(npzio / "outputs.npz") as ref, np.load(out) as got:
        np.testing.assert_allclose(got["output"], ref["output"], rtol=1e-4, atol=1e-4)

    from dcn_base.model_io import load_npz, save_npz

    arrays = {"a": np.arange(6, dtype=np.float16).reshape(2, 3), "rois": np.ones((4, 5), np.float32),
              "n": np.array([3], np.int64), "file": np.zeros(2, np.float32)}  # 'file': np.savez's own argument
    save_npz(tmp_path / "x.npz", arrays)
    back = load_npz(tmp_path / "x.npz")
    assert back.keys() == arrays.keys()
    for k in arrays:
        assert back[k].dtype == arrays[k].dtype
        np.testing.assert_array_equal(back[k], arrays[k])


def test_save_io_in_one_format_removes_the_other_pair(made, tmp_path):
    """--save-io DIR --io-format npz over a DIR holding an earlier JSON pair (and back): the old pair goes
    with the commit, so dcn-compare DIR (outputs.json first) judges the new reference, not a stale one."""
    io = tmp_path / "io"
    common = [str(made / "m.pt2"), "--input", "images:2x3x8x8", "--save-io", str(io), "-q"]
    assert export_main(common + ["-o", str(tmp_path / "a.onnx")]) == 0
    assert sorted(p.name for p in io.iterdir()) == ["inputs.json", "outputs.json"]
    assert export_main(common + ["-o", str(tmp_path / "b.onnx"), "--io-format", "npz", "--seed", "5"]) == 0
    assert sorted(p.name for p in io.iterdir()) == ["inputs.npz", "outputs.npz"]
    assert compare_main([str(io), str(tmp_path / "b.onnx"), "-q"]) == 0
    assert export_main(common + ["-o", str(tmp_path / "c.onnx")]) == 0
    assert sorted(p.name for p in io.iterdir()) == ["inputs.json", "outputs.json"]
    # a stale name that cannot be removed (a directory): refused before any work, nothing replaced
    (io / "outputs.npz").mkdir()
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert export_main(common + ["-o", str(tmp_path / "c.onnx")]) == 2
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("case", ["export -o = model", "export --report = -o", "export -o in --save-io",
                                  "export -o = --input file", "compare --report = TARGET",
                                  "compare --report in REFERENCE", "compare --report = inputs beside REFERENCE",
                                  "infer -o = model", "infer -o = --input file"])
def test_an_output_never_replaces_an_input_or_another_output(made, tmp_path, case, capsys):
    """Each command refuses, before any work (exit 2, one line naming both), an output path that is one of
    its inputs or another of its outputs; every file stays as it was."""
    import shutil

    for name in ("m.pt2", "m.onnx"):
        shutil.copy(made / name, tmp_path / name)
    shutil.copytree(made / "io", tmp_path / "io")
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((2, 3, 8, 8), np.float32))
    pt2, onnx_, io = str(tmp_path / "m.pt2"), str(tmp_path / "m.onnx"), tmp_path / "io"
    main, argv, said = {
        "export -o = model": (export_main, [pt2, "-o", pt2, "--input", "images:2x3x8x8"], "output -o"),
        "export --report = -o": (export_main, [pt2, "-o", onnx_, "--report", onnx_, "--input", "images:2x3x8x8"],
                                 "output --report"),
        "export -o in --save-io": (export_main, [pt2, "-o", str(io / "inputs.json"), "--save-io", str(io),
                                                 "--input", "images:2x3x8x8"], "output --save-io inputs.json"),
        "export -o = --input file": (export_main, [pt2, "-o", str(x), "--input", f"images={x}"], "output -o"),
        "compare --report = TARGET": (compare_main, [str(io), onnx_, "--report", onnx_], "output --report"),
        "compare --report in REFERENCE": (compare_main, [str(io), onnx_, "--report", str(io / "outputs.json")],
                                          "output --report"),
        "compare --report = inputs beside REFERENCE": (compare_main, [str(io / "outputs.json"), onnx_, "--report",
                                                                      str(io / "inputs.json")], "output --report"),
        "infer -o = model": (infer_main, [onnx_, "--input", f"images={x}", "-o", onnx_], "output -o"),
        "infer -o = --input file": (infer_main, [onnx_, "--input", f"images={x}", "-o", str(x)], "output -o"),
    }[case]
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and said in err[0] and "is also the" in err[0] and "expected a path of its own" in err[0], err
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("prog", ["dcn-infer", "dcn-export"])
def test_onnx_runtime_errors_are_our_one_line_only(made, tmp_path, prog):
    """A session that ONNX Runtime refuses (here DCN_ORT_GEMM holds no choice: the op's kernel throws when
    made) is one line of ours, exit 2: ONNX Runtime's own coloured log line of the same error is off."""
    np.save(tmp_path / "x.npy", np.zeros((2, 3, 8, 8), np.float32))
    args = {"dcn-infer": [made / "m.onnx", "--input", f"images={tmp_path / 'x.npy'}"],
            "dcn-export": [made / "m.pt2", "-o", tmp_path / "m.onnx", "--input", "images:2x3x8x8"]}[prog]
    env = dict(os.environ, PYTHONPATH=str(REPO), DCN_ORT_GEMM="fastest")
    r = subprocess.run(command(prog) + [str(a) for a in args], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=600)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "DCN_ORT_GEMM" in lines[0] and "\x1b" not in r.stderr, r.stderr


def test_export_report(made):
    rep = json.loads((made / "report.json").read_text())
    assert rep["output"].endswith("m2.onnx") and rep["source"].endswith("m.pt2")
    # the program's own dynamic batch is carried into the ONNX model (issue 10) without --dynamic
    assert rep["inputs"] == [{"name": "images", "shape": ["images_dim0", 3, 8, 8], "dtype": "float32"}]
    assert rep["node_counts"] == {"DeformConv2d": 1} and len(rep["dcn_nodes"]) == 1
    assert rep["check"]["passed"] is True and rep["check"]["outputs"][0]["max_abs"] < 1e-3
    assert {"load", "torch.export", "onnx conversion", "verify", "save"} <= set(rep["stage_seconds"])
    assert rep["io"]["files"] == ["inputs.npz", "outputs.npz"] and rep["versions"]["torch"]
    assert rep["swaps"] == [] and rep["dynamic_axes"] == {"images": {"0": "images_dim0"}}
    dyn = made / "dyn.json"
    assert export_main([str(made / "m.pt2"), "-o", str(made / "dyn.onnx"), "--input", "images:2x3x8x8",
                        "--dynamic", "images:0=batch,2=height", "--report", str(dyn), "-q", "--no-verify"]) == 0
    rep = json.loads(dyn.read_text())
    assert rep["dynamic_axes"] == {"images": {"0": "batch", "2": "height"}} and rep["check"] is None


# --------------------------------------------------------------------------- printed next: commands
NEXT_SOURCES = [
    ["python", "-m", "samples.resnet_dcn.make_model", "--variant", "dcnv1", "--tiny", "--offset-std", "0.05",
     "-o", "out/sample/model.pt2"],  # scripts/run.sh's
    ["python", "-m", "samples.resnet_dcn.make_model", "--variant", "dcnv2", "--tiny", "--format", "state-dict",
     "-o", "out/sd/model.pth"],
    ["python", "-m", "samples.rfcn_dpsroi.make_model", "--tiny", "-o", "out/rfcn/model.pt2"],
    ["python", "-m", "samples.deeplab_dcn.make_model", "--tiny", "-o", "out/deeplab/model.pt2"],
]


@pytest.mark.parametrize("argv", NEXT_SOURCES, ids=lambda a: " ".join(a[2:4]))
def test_printed_next_commands_run_and_write_what_they_name(argv, tmp_path, monkeypatch, capsys):
    from test_samples import dispatch

    monkeypatch.chdir(tmp_path)
    assert dispatch(argv) == 0
    nexts = [ln[len("next: "):] for ln in capsys.readouterr().out.splitlines() if ln.startswith("next: ")]
    assert len(nexts) == 1, nexts
    step = shlex.split(nexts[0])
    assert dispatch(step) == 0, capsys.readouterr()
    assert missing_outputs(step, tmp_path) == [], nexts[0]
    assert "-o" in step


def test_run_sh_writes_where_the_sample_next_line_points():
    """scripts/run.sh's sample run writes the ONNX model and I/O make_model's next: line names."""
    text = (REPO / "scripts/run.sh").read_text()
    assert 'onnx="$out/model.onnx"' in text and 'io="$out/io"' in text and 'out="$out/sample"' in text


# --------------------------------------------------------------------------- progress
PROGRESS_SCRIPT = """
import time
from dcn_base.console import Stages, progress_bar
s = Stages(["load", "torch.export", "save"], level={level}, prog="dcn-export")
for name in ("load", "torch.export", "save"):
    s.start(name)
    time.sleep(0.05)
s.done()
bar = progress_bar({level}, total=2, desc="dcn-compare", unit="run")
bar.update(2)
bar.close()
print("done")
"""


def _on_a_terminal(code: str) -> bytes:
    """Run ``python -c code`` with stdout and stderr on a pseudo-terminal (100 columns); its output."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=slave, stderr=slave, stdin=slave, env=env)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    proc.wait(timeout=60)
    os.close(master)
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pseudo-terminal test written for Linux")
def test_progress_only_on_a_terminal_and_not_with_quiet(tmp_path):
    shown = _on_a_terminal(PROGRESS_SCRIPT.format(level=0)).decode(errors="replace")
    assert "torch.export" in shown and "dcn-compare" in shown and "done" in shown, shown
    quiet = _on_a_terminal(PROGRESS_SCRIPT.format(level=-1)).decode(errors="replace")
    assert "torch.export" not in quiet and "dcn-compare" not in quiet and "done" in quiet, quiet
    piped = subprocess.run([sys.executable, "-c", PROGRESS_SCRIPT.format(level=0)], capture_output=True, text=True,
                           env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=60)
    assert (piped.stdout, piped.stderr) == ("done\n", ""), piped  # stderr not a terminal: no bars


def test_build_progress_monitor_without_a_terminal_prints_lines():
    """dcn-build's TensorRT IProgressMonitor (a stand-in base class here): phase lines when the
    stream is not a terminal (the CLI turns progress off then; the library call keeps lines)."""
    import io
    import types

    from trt_runtime.build_progress import make_progress_monitor as _make_progress_monitor

    class IProgressMonitor:
        def __init__(self):
            pass

    stream = io.StringIO()
    mon = _make_progress_monitor(types.SimpleNamespace(IProgressMonitor=IProgressMonitor), stream=stream, interval=0)
    mon.phase_start("Building engine", None, 3)
    assert mon.step_complete("Building engine", 0) is True
    mon.phase_finish("Building engine")
    assert stream.getvalue().splitlines() == ["[dcn-build] Building engine (3 steps)", "[dcn-build]   Building engine: 1/3"]
    assert _make_progress_monitor(types.SimpleNamespace()) is None
