"""samples/ and benchmarks/: every command of the sample READMEs runs, at a reduced size, and proves
numeric agreement with PyTorch (dcn-export --check and dcn-compare, tolerances from
dcn_base/tolerance.py) in the plugin mode and, for the conv samples, the standard-op mode.

The READMEs' ```bash blocks are parsed and each command is run through the same entry point a
shell would reach (``python -m samples.X.Y`` -> that module's ``main``, ``dcn-export`` ->
``exporter.cli.main``, ``dcn-compare`` / ``dcn-build`` -> ``trt_runtime.cli``, ``python
benchmarks/B.py`` -> its ``main``), in a temporary working directory, with the size reduced by
the fixed rules of :func:`reduce`. A command this file cannot dispatch fails the test, so the
documentation cannot drift from what is tested.
"""
from __future__ import annotations

import importlib
import importlib.util
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.ci_policy import missing, require_module

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"
SAMPLE_READMES = {name: SAMPLES / name / "README.md"
                  for name in ("resnet_dcn", "rfcn_dpsroi", "deeplab_dcn", "mmdet_mdpool", "internimage", "detr_msda")}
INDEX_README = SAMPLES / "README.md"
SETUP_LINES = ("bash scripts/setup.sh", "source .venv/bin/activate")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small models on a small shared machine: one PyTorch thread is faster and steadier."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --------------------------------------------------------------------------- README commands
def readme_commands(path: Path) -> list[str]:
    """The commands of a README's ```bash blocks (continuations joined, comments and set-up skipped)."""
    commands, block = [], None
    for line in path.read_text().splitlines():
        if line.strip().startswith("```"):
            block = [] if block is None and line.strip() == "```bash" else None
            continue
        if block is None:
            continue
        text = line.split(" #", 1)[0].strip() if not line.strip().startswith("#") else ""
        if commands and commands[-1].endswith("\\"):
            commands[-1] = commands[-1][:-1].rstrip() + " " + text
        elif text and not text.startswith(SETUP_LINES):
            commands.append(text)
    return commands


def have_gpu_and_tensorrt() -> bool:
    try:
        import tensorrt  # noqa: F401
    except Exception:
        return False
    return torch.cuda.is_available()


def reduce(argv: list[str]) -> list[str]:
    """A README command at CI size: the documented flags, nothing else, changed."""
    prog, args = argv[0], argv[1:]
    if prog == "python" and args[:1] == ["-m"] and args[1].startswith("samples."):
        return argv + ([] if "--tiny" in args else ["--tiny"])
    if prog == "python" and args[:1] == ["benchmarks/bench_e2e_cpu.py"]:
        return argv + ["--quick"]
    if prog == "python" and args[:1] == ["benchmarks/bench_gpu.py"]:
        return argv + (["--tiny", "--iterations", "5", "--warmup", "1"] if have_gpu_and_tensorrt() else [])
    if prog in ("dcn-export", "dcn-build"):
        out = []
        for a in args:
            a = re.sub(r"^(samples\.[\w.]+:)(?!tiny_)(\w+)$", r"\1tiny_\2", a)  # --factory: the tiny twin
            a = re.sub(r"(\d+x3x)224x224\b", r"\g<1>64x64", a)  # --input / --shapes: the tiny size
            a = re.sub(r"(\d+x3x)640x640\b", r"\g<1>64x64", a)  # samples.detr_msda's tiny sizes (a tenth,
            a = re.sub(r"(\d+x3x)800x1333\b", r"\g<1>64x128", a)  # multiples of 32, at least 64)
            out.append(a)
        return [prog] + out
    return argv


def dispatch(argv: list[str]) -> int:
    """Run one (reduced) command in this process; its exit code."""
    prog, args = argv[0], argv[1:]
    if prog == "python" and args[:1] == ["-m"]:
        return importlib.import_module(args[1]).main(args[2:])
    if prog == "python" and args[0].startswith("benchmarks/") and args[0].endswith(".py"):
        spec = importlib.util.spec_from_file_location(Path(args[0]).stem, REPO / args[0])
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.main(args[1:])
    if prog == "dcn-export":
        from exporter.cli import main

        return main(args)
    if prog == "dcn-compare":
        from trt_runtime.cli import compare_main

        return compare_main(args)
    if prog == "dcn-build":
        from trt_runtime.cli import build_main

        return build_main(args)
    raise AssertionError(f"README command {' '.join(argv)!r}: tests/test_samples.py cannot run it; add it to dispatch()")


def needs_gpu(argv: list[str]) -> bool:
    return argv[0] == "dcn-build" or (argv[0] == "dcn-compare" and argv[2].endswith(".engine")) or \
        argv[1:2] == ["benchmarks/bench_gpu.py"]


def run_readme(path: Path, capsys, skip: set[str] = frozenset()) -> dict[str, str]:
    """Run every command of ``path`` in order (cwd must be a scratch directory); {command: its output}."""
    outputs = {}
    gpu = have_gpu_and_tensorrt()
    for command in readme_commands(path):
        if command in skip:
            continue
        argv = reduce(shlex.split(command))
        code = dispatch(argv)
        out, err = capsys.readouterr()
        if needs_gpu(argv) and not gpu:
            # Here: no TensorRT / GPU. The documented GPU command must say so in one line, exit 2.
            lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("usage:")]
            assert code == 2 and len(lines) == 1 and "error:" in lines[0], (command, code, err)
            if argv[0] != "dcn-compare":  # that one finds no engine, since none could be built here
                assert re.search(r"TensorRT|CUDA|GPU", lines[0]), lines[0]
            outputs[command] = err
            continue
        assert code == 0, f"{' '.join(argv)} exited {code}\n{out[-3000:]}\n{err[-2000:]}"
        outputs[command] = out
    return outputs


def assert_run_passed(out: str, modes: tuple[str, ...]) -> None:
    """A samples.*.run summary: every mode's row PASSes, and the offsets were non-zero."""
    assert "all PASS" in out, out[-3000:]
    table = out[out.rindex("=== "):]
    for mode in modes:
        assert re.search(rf"^{mode}\s.*PASS\s*$", table, re.M), table
    offsets = [float(x) for x in re.findall(r"mean \|offset\| ([0-9.]+) px", out)]
    assert offsets and min(offsets) > 0.1, f"deformable sampling not exercised: mean offsets {offsets}"


def test_readme_commands_are_all_runnable():
    """Every documented command is one this file knows how to run (cheap; the others run them)."""
    for path in list(SAMPLE_READMES.values()) + [INDEX_README]:
        commands = readme_commands(path)
        assert commands, path
        for command in commands:
            argv = shlex.split(command)
            assert argv[0] in ("python", "dcn-export", "dcn-compare", "dcn-build"), (path, command)
            if argv[0] == "python":
                assert argv[1] == "-m" and argv[2].startswith("samples.") or argv[1].startswith("benchmarks/"), command
                if argv[1] == "-m":
                    assert (REPO / (argv[2].replace(".", "/") + ".py")).is_file(), command


def test_index_lists_the_sample_commands():
    """samples/README.md's one-liners are the samples' own (run by their tests), plus the benchmarks."""
    sample_commands = {c for p in SAMPLE_READMES.values() for c in readme_commands(p)}
    for command in readme_commands(INDEX_README):
        assert command in sample_commands or command.startswith("python benchmarks/"), command


def test_resnet_dcn_readme(tmp_path, monkeypatch, capsys):
    """One-shot run (dcnv2, plugin + standard mode), the step-by-step dcnv1 commands (dynamic
    batch), the state-dict + factory route (DCNv2, 4 deform groups), the GPU commands' exit path."""
    monkeypatch.chdir(tmp_path)
    outputs = run_readme(SAMPLE_READMES["resnet_dcn"], capsys)
    run = next(o for c, o in outputs.items() if c.startswith("python -m samples.resnet_dcn.run"))
    assert_run_passed(run, ("plugin", "onnx"))
    assert "3 dcn::DeformConv2d" in run and "3 DeformConv " in run
    std = "dcn-export out/resnet_dcn/model.pt2 -o out/resnet_dcn/model_std.onnx --deform-conv onnx --check"
    assert f"$ {std}" in run and f"`{std}`" in SAMPLE_READMES["resnet_dcn"].read_text()  # the README's prose is true
    compares = [o for c, o in outputs.items() if c.startswith("dcn-compare") and not c.endswith(".engine")]
    assert len(compares) == 1 and all("PASS: all 1 output(s) within tolerance" in o for o in compares)
    checks = [o for c, o in outputs.items() if c.startswith("dcn-export")]
    assert len(checks) == 2 and all(re.search(r"check \(onnxruntime.*\) PASS", o) for o in checks), checks
    import onnx

    model = onnx.load(str(tmp_path / "out/resnet_dcn/model.onnx"))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert model.graph.input[0].name == "images" and [d.dim_param or d.dim_value for d in dims] == ["batch", 3, 64, 64]
    v1 = [n for n in model.graph.node if n.op_type == "DeformConv2d"]
    assert len(v1) == 3 and all(len(n.input) == 3 for n in v1)  # DCNv1 without bias: X, W, offset
    dg4 = onnx.load(str(tmp_path / "out/resnet_dcn/dg4.onnx"))
    convs = [n for n in dg4.graph.node if n.op_type == "DeformConv2d"]
    assert [n.name for n in convs] == ["layer2.0.conv2", "layer3.0.conv2", "layer4.0.conv2"]
    assert all({a.name: a.i for a in n.attribute}["offset_group"] == 4 for n in convs)
    assert all(len(n.input) == 5 for n in convs)  # DCNv2: zero bias + mask


def test_rfcn_dpsroi_readme(tmp_path, monkeypatch, capsys):
    """R-FCN (deformable PS-RoI pooling, one-shot run) and Faster R-CNN (deformable RoI pooling,
    step by step with a dynamic RoI count): plugin mode PASS."""
    monkeypatch.chdir(tmp_path)
    outputs = run_readme(SAMPLE_READMES["rfcn_dpsroi"], capsys)
    run = next(o for c, o in outputs.items() if c.startswith("python -m samples.rfcn_dpsroi.run"))
    assert_run_passed(run, ("plugin",))
    assert "3 dcn::DeformConv2d, 4 dcn::DeformPSROIPool" in run
    make = next(o for c, o in outputs.items() if c.startswith("python -m samples.rfcn_dpsroi.make_model"))
    for out in (run, make):
        pool_offsets = float(re.search(r"RoI pooling offsets mean ([0-9.]+) px", out).group(1))
        assert pool_offsets > 0.1, out
    compare = next(o for c, o in outputs.items() if c.startswith("dcn-compare"))
    assert re.search(r"^cls_score\s+8x21\s.*PASS", compare, re.M) and \
        re.search(r"^bbox_pred\s+8x8\s.*PASS", compare, re.M), compare
    import onnx

    def pools(path):
        model = onnx.load(str(path))
        return model, [{a.name: (a.i if a.type == onnx.AttributeProto.INT else a.f) for a in n.attribute}
                       for n in model.graph.node if n.op_type == "DeformPSROIPool"]

    _, attrs = pools(tmp_path / "out/rfcn_dpsroi/model.onnx")
    deformable = [a for a in attrs if not a["no_trans"]]
    assert sorted(a["output_dim"] for a in deformable) == [8, 21]
    assert all(a["group_size"] == 7 and a["pooled_size"] == 7 and abs(a["trans_std"] - 0.1) < 1e-7
               and abs(a["spatial_scale"] - 1 / 16) < 1e-9 for a in deformable)
    # the offsets' pooling: class-specific (2*21) for cls, class-agnostic (2) for bbox
    assert sorted(a["output_dim"] for a in attrs if a["no_trans"]) == [2, 42]
    faster, attrs = pools(tmp_path / "out/faster_dpsroi/model.onnx")
    assert [(a["group_size"], a["no_trans"]) for a in attrs] == [(1, 1), (1, 0)]
    rois = faster.graph.input[1]
    assert rois.name == "rois" and [d.dim_param or d.dim_value for d in rois.type.tensor_type.shape.dim] == \
        ["num_rois", 5]
    # another RoI count runs (dynamic axis)
    from samples.rfcn_dpsroi.model import example_rois
    from trt_runtime.plugins import ort_session

    sess = ort_session(str(tmp_path / "out/faster_dpsroi/model.onnx"))
    images = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    cls, bbox = sess.run(None, {"images": images, "rois": example_rois(3, 64, 64).numpy()})
    assert cls.shape == (3, 21) and bbox.shape == (3, 8) and np.isfinite(cls).all()


def test_rfcn_dpsroi_faster_head_run(tmp_path, monkeypatch, capsys):
    """The main README's `python -m samples.rfcn_dpsroi.run --head rfcn|faster`: the Faster R-CNN head
    (deformable RoI pooling, group_size 1) one-shot too, at CI size; plugin mode PASS."""
    monkeypatch.chdir(tmp_path)
    assert "`python -m samples.rfcn_dpsroi.run --head rfcn|faster`" in (REPO / "README.md").read_text()
    assert dispatch(reduce(["python", "-m", "samples.rfcn_dpsroi.run", "--head", "faster", "--workdir",
                            "out/faster"])) == 0
    out = capsys.readouterr().out
    assert_run_passed(out, ("plugin",))
    assert "dcn::DeformPSROIPool" in out


def test_mmdet_mdpool_readme(tmp_path, monkeypatch, capsys):
    """mmdetection's mdpool head (ModulatedDeformRoIPoolPack): one-shot run and step by step, plugin mode PASS,
    two dcn::DeformRoIPool nodes with mmdet's attributes, the mask a Mul after the deformable one."""
    monkeypatch.chdir(tmp_path)
    outputs = run_readme(SAMPLE_READMES["mmdet_mdpool"], capsys)
    run = next(o for c, o in outputs.items() if c.startswith("python -m samples.mmdet_mdpool.run"))
    assert_run_passed(run, ("plugin",))
    assert "3 dcn::DeformConv2d, 2 dcn::DeformRoIPool" in run
    make = next(o for c, o in outputs.items() if c.startswith("python -m samples.mmdet_mdpool.make_model"))
    assert float(re.search(r"RoI pooling offsets mean ([0-9.]+) px", make).group(1)) > 0.1, make
    compare = next(o for c, o in outputs.items() if c.startswith("dcn-compare"))
    assert re.search(r"^cls_score\s+8x81\s.*PASS", compare, re.M) and \
        re.search(r"^bbox_pred\s+8x320\s.*PASS", compare, re.M), compare
    import onnx

    model = onnx.load(str(tmp_path / "out/mmdet_mdpool/model.onnx"))
    nodes = [n for n in model.graph.node if n.op_type == "DeformRoIPool"]
    attrs = [{a.name: (a.i if a.type == onnx.AttributeProto.INT else a.f) for a in n.attribute} for n in nodes]
    assert [len(n.input) for n in nodes] == [2, 3]  # plain pooling for the branches, then with offsets
    assert all(a["pooled_height"] == a["pooled_width"] == 7 and a["sampling_ratio"] == 0
               and abs(a["gamma"] - 0.1) < 1e-7 and abs(a["spatial_scale"] - 1 / 16) < 1e-9 for a in attrs)
    consumers = [n.op_type for n in model.graph.node if nodes[1].output[0] in n.input]
    assert consumers == ["Mul"], consumers


def test_detr_msda_readme(tmp_path, monkeypatch, capsys):
    """Deformable DETR and DINO (mmdetection configs, mmcv attention swapped), RT-DETR (transformers; also
    from its GridSample ONNX through --fuse-msda) and transformers' Deformable DETR (float16): every mode
    PASSes with one dcn::MultiScaleDeformableAttention node per attention layer and no GridSample left."""
    require_module("transformers")
    if importlib.util.find_spec("mmdet") is None:  # (importing it needs the sample's mmcv version shim)
        missing("mmdet is not installed (scripts/setup.sh installs it with the mmcv wheel)")
    monkeypatch.chdir(tmp_path)
    outputs = run_readme(SAMPLE_READMES["detr_msda"], capsys)
    runs = {c.split("--model ")[1].split()[0]: o for c, o in outputs.items() if c.startswith("python -m samples.detr_msda.run")}
    assert set(runs) == {"rtdetr", "deformable-detr", "deformable-detr-hf"}
    for model, modes, nodes in (("rtdetr", ("plugin", "fuse-msda"), 2), ("deformable-detr", ("plugin",), 3),
                                ("deformable-detr-hf", ("plugin", "fp16"), 3)):
        out = runs[model]
        assert "all PASS" in out, out[-3000:]
        table = out[out.rindex("=== "):]
        for mode in modes:
            assert re.search(rf"^{mode}\s+{nodes} dcn::MultiScaleDeformableAttention\s.*PASS\s*$", table, re.M), table
    dino = next(o for c, o in outputs.items() if c.startswith("dcn-export out/detr_msda/dino.pth"))  # tiny as written
    assert "swapped detector.encoder.layers.0.self_attn: mmcv.ops.multi_scale_deform_attn.MultiScaleDeformableAttention" \
        in dino and "vs PyTorch float64) PASS" in dino
    compares = [o for c, o in outputs.items() if c.startswith("dcn-compare")]
    assert len(compares) == 2 and all("PASS: all 2 output(s) within tolerance" in o for o in compares)
    fused = next(o for c, o in outputs.items() if c.startswith("dcn-export") and "--fuse-msda" in c)
    assert "rewrote 2 node(s)" in fused and "vs the original graph on onnxruntime) PASS" in fused
    import onnx

    for name, count in (("dino.onnx", 3), ("rtdetr_fused.onnx", 2)):
        types = [n.op_type for n in onnx.load(str(tmp_path / "out/detr_msda" / name)).graph.node]
        assert types.count("MultiScaleDeformableAttention") == count and "GridSample" not in types, name
    source = [n.op_type for n in onnx.load(str(tmp_path / "out/detr_msda/rtdetr_gridsample.onnx")).graph.node]
    assert source.count("GridSample") == 6  # 2 decoder layers x 3 levels, before the rewrite


def test_deeplab_dcn_readme(tmp_path, monkeypatch, capsys):
    """DeepLab-DCN: plugin + standard mode PASS; logits at the input size; c5 dilated 2, stride 1."""
    monkeypatch.chdir(tmp_path)
    outputs = run_readme(SAMPLE_READMES["deeplab_dcn"], capsys)
    run = next(o for c, o in outputs.items() if c.startswith("python -m samples.deeplab_dcn.run"))
    assert_run_passed(run, ("plugin", "onnx"))
    assert len(re.findall(r"^logits\s+1x21x64x64\s.*PASS", run, re.M)) == 2, run
    import onnx

    model = onnx.load(str(tmp_path / "out/deeplab_dcn/model.onnx"))
    ints = [{a.name: list(a.ints) for a in n.attribute if a.ints} for n in model.graph.node
            if n.op_type == "DeformConv2d" and "layer4" in n.name]
    assert ints and all(a["dilations"] == [2, 2] and a["strides"] == [1, 1] and a["pads"] == [2, 2, 2, 2]
                        for a in ints)


def test_benchmark_commands(tmp_path, monkeypatch, capsys):
    """The index README's benchmark commands: the CPU one --quick (a table with ratios), the GPU one
    here exits 2 naming what is missing (or runs a tiny benchmark on a GPU machine)."""
    monkeypatch.chdir(REPO)  # the documented commands name benchmarks/ relative to the repository root
    commands = [c for c in readme_commands(INDEX_README) if c.startswith("python benchmarks/")]
    assert [shlex.split(c)[1] for c in commands] == ["benchmarks/bench_e2e_cpu.py", "benchmarks/bench_gpu.py"]
    outputs = run_readme(INDEX_README, capsys, skip={c for c in readme_commands(INDEX_README)
                                                     if not c.startswith("python benchmarks/")})
    cpu = outputs[commands[0]]
    for row in ("PyTorch eager", "ORT + dcn ops (ours)", "ORT standard DeformConv", "ORT dense ResNet-50"):
        assert re.search(rf"^\| {re.escape(row)}.*\|\s+[0-9.]+x \|$", cpu, re.M), cpu
    assert cpu.count("output within tolerance of PyTorch") == 2
    if not have_gpu_and_tensorrt():
        assert "bench_gpu: error: needs an NVIDIA GPU machine with TensorRT; missing: " in outputs[commands[1]]


def test_bench_gpu_names_each_missing_piece(capsys):
    """Without TensorRT or a GPU: exit 2, one line, naming TensorRT and the GPU as missing."""
    if have_gpu_and_tensorrt():
        pytest.skip("this machine has TensorRT and a GPU")
    spec = importlib.util.spec_from_file_location("bench_gpu", REPO / "benchmarks/bench_gpu.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    code = bench.main([])
    out, err = capsys.readouterr()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and out == "" and len(lines) == 1, (code, out, err)
    try:
        import tensorrt  # noqa: F401
    except Exception:
        assert "TensorRT:" in lines[0]
    if not torch.cuda.is_available():
        assert "a CUDA GPU" in lines[0]


# --------------------------------------------------------------------------- scripts/run.sh's command
def test_make_model_command_of_the_main_script(tmp_path, monkeypatch, capsys):
    """scripts/run.sh's ``python -m samples.resnet_dcn.make_model ...``: exit 0, the .pt2 loads with
    its example input and runs, no temp file left, the next command printed."""
    monkeypatch.chdir(tmp_path)
    command = "python -m samples.resnet_dcn.make_model --variant dcnv1 --tiny --offset-std 0.05 -o out/sample/model.pt2"
    assert command in (REPO / "scripts/run.sh").read_text().replace('"$out/sample/model.pt2"', "out/sample/model.pt2")
    assert dispatch(shlex.split(command)) == 0
    assert "next: dcn-export out/sample/model.pt2 -o out/sample/model.onnx" in capsys.readouterr().out
    out = tmp_path / "out/sample/model.pt2"
    assert sorted(p.name for p in out.parent.iterdir()) == ["model.pt2"]
    from exporter.loading import load_model

    module = load_model(out)
    (images,), _ = module.example_inputs
    assert tuple(images.shape) == (1, 3, 64, 64)
    with torch.no_grad():
        assert module(images).shape == (1, 1000)


def test_python_dash_m_entry_points():
    """Each sample module runs as ``python -m`` (its ``__main__`` guard calls main)."""
    for name in ("resnet_dcn", "rfcn_dpsroi", "deeplab_dcn", "detr_msda"):
        for module in ("make_model", "run"):
            text = (SAMPLES / name / f"{module}.py").read_text()
            assert text.rstrip().endswith('if __name__ == "__main__":\n    sys.exit(main())'), (name, module)


def test_make_model_errors_are_one_line(tmp_path, capsys):
    from samples.resnet_dcn import make_model

    for argv, message in ((["--size", "16"], "--size 16: must be at least 32"),
                          (["--offset-std", "-1"], "--offset-std -1.0: must be >= 0")):
        code = make_model.main(argv + ["--tiny", "-o", str(tmp_path / "m.pt2")])
        out, err = capsys.readouterr()
        assert code == 2 and err.strip().count("\n") == 0 and message in err, err
        assert err.startswith("samples.resnet_dcn.make_model: error: ")
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------- the models' structure
def test_resnet50_dcn_structure():
    """Full-size ResNet-50 (DCNv1): conv2 of every bottleneck in layer2-4 deformable (13), stride 2
    on the first block's 3x3, no bias, dense weights kept, zero offset branch; the rest is
    torchvision's resnet50(weights=None) (bn3's weight excepted: RESIDUAL_GAIN)."""
    import torchvision

    from exporter.ops import DeformConv2d, DeformConv2dPack
    from samples.resnet_dcn import model as M

    net = M.backbone("dcnv1")
    torch.manual_seed(0)
    tv = torchvision.models.resnet50(weights=None)
    convs = dict(M.deformable_convs(net))
    expected = [f"layer{s}.{b}.conv2" for s, n in ((2, 4), (3, 6), (4, 3)) for b in range(n)]
    assert list(convs) == expected
    for name, m in convs.items():
        assert type(m) is DeformConv2dPack and m.deform_groups == 1 and m.bias is None
        assert m.kernel_size == (3, 3) and m.padding == (1, 1, 1, 1) and m.dilation == (1, 1)
        assert m.stride == ((2, 2) if name.endswith(".0.conv2") else (1, 1))
        assert not m.conv_offset.weight.any() and not m.conv_offset.bias.any()
        assert torch.equal(m.weight, tv.get_submodule(name).weight)
    assert not any(isinstance(m, DeformConv2d) for m in net.layer1.modules())
    ours = {k: v for k, v in net.state_dict().items() if "conv_offset" not in k}
    theirs = tv.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(v, theirs[k]) for k, v in ours.items() if not k.endswith("bn3.weight"))
    assert all((v == M.RESIDUAL_GAIN).all() for k, v in ours.items() if k.endswith("bn3.weight"))


@pytest.mark.parametrize("variant, cls_name, groups", [("dcnv2", "ModulatedDeformConv2dPack", 1),
                                                       ("dcnv2-dg4", "ModulatedDeformConv2dPack", 4)])
def test_dcnv2_variants(variant, cls_name, groups):
    from samples.resnet_dcn import model as M

    convs = M.deformable_convs(M.backbone(variant, tiny=True))
    assert [n for n, _ in convs] == ["layer2.0.conv2", "layer3.0.conv2", "layer4.0.conv2"]
    for _, m in convs:
        assert type(m).__name__ == cls_name and m.deform_groups == groups and m.bias is None
        assert m.conv_offset.out_channels == 27 * groups  # (dh, dw, mask) per kernel point and group


def test_tiny_and_dilated_backbones():
    from samples.rfcn_dpsroi.model import features
    from samples.resnet_dcn import model as M

    tiny = M.backbone("dcnv2", tiny=True)
    assert [len(layer) for layer in (tiny.layer1, tiny.layer2, tiny.layer3, tiny.layer4)] == [1, 1, 1, 1]
    assert tiny.fc.in_features == 512
    dilated = features("dcnv1", True, 0.5, 0)
    c5 = dilated.body.layer4[0].conv2
    assert c5.stride == (1, 1) and c5.dilation == (2, 2) and c5.padding == (2, 2, 2, 2)
    assert dilated.body.layer4[0].downsample[0].stride == (1, 1)
    with torch.no_grad():
        assert dilated(torch.randn(1, 3, 64, 64)).shape == (1, 512, 4, 4)  # output stride 16
    stats = M.offset_stats(M.build("dcnv1", tiny=True, offset_std=0.5), M.example_images(64))
    assert 0.2 < stats["mean_abs_offset"] < 2.0  # offset_std 0.5: about half a pixel


def test_detection_heads_structure():
    from exporter.ops import DeformPSROIPoolPack
    from samples.rfcn_dpsroi import model as R

    rfcn = R.build("rfcn", tiny=True, offset_std=0.5)
    cls, bbox = rfcn.psroi_cls, rfcn.psroi_bbox
    assert (cls.group_size, cls.output_dim, cls.num_offset_classes, cls.pooled_size) == (7, 21, 21, 7)
    assert (bbox.group_size, bbox.output_dim, bbox.num_offset_classes) == (7, 8, 1)
    assert cls.trans_std == bbox.trans_std == 0.1 and cls.spatial_scale == 1 / 16
    assert cls.offset_conv.weight.any()  # randomized: the pooling really deforms
    faster = R.build("faster", tiny=True)
    pool = faster.roi_pool
    assert isinstance(pool, DeformPSROIPoolPack) and pool.group_size == 1 and pool.trans_std == 0.1
    assert pool.offset_fc is not None and not pool.offset_fc[-1].weight.any()  # zero-initialised by default
    rois = R.example_rois(50, 64, 80, batch=2, seed=3)
    assert (rois[:, 1] >= 0).all() and (rois[:, 3] <= 79).all() and (rois[:, 2] >= 0).all() and \
        (rois[:, 4] <= 63).all() and ((rois[:, 3] - rois[:, 1]) >= 8).all() and set(rois[:, 0].tolist()) <= {0, 1}
