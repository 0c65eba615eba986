"""samples/internimage: every command of its README at CI size (tests/test_samples.py's runner: --tiny added
to the sample's own commands), InternImage-T-like and FlashInternImage-T-like, float32 and float16 exports
PASS through dcn-compare with the offsets exercised; the model's structure at full size."""
from __future__ import annotations

import re

import onnx

from samples.internimage import model as M
from test_samples import SAMPLE_READMES, run_readme


def test_internimage_readme(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    outputs = run_readme(SAMPLE_READMES["internimage"], capsys)
    for core, op in (("dcnv3", "DCNv3"), ("dcnv4", "DCNv4")):
        run = next(o for c, o in outputs.items() if c.startswith(f"python -m samples.internimage.run --core {core}"))
        assert "all PASS" in run, run[-3000:]
        table = run[run.rindex("=== "):]
        assert re.search(rf"^plugin\s+4 dcn::{op}\s.*PASS\s*$", table, re.M), table
        assert re.search(rf"^plugin fp16\s+4 dcn::{op} \(float16\)\s.*PASS\s*$", table, re.M), table
        assert float(re.search(r"mean \|offset\| ([0-9.]+) px", run).group(1)) > 0.3
    compares = [o for c, o in outputs.items() if c.startswith("dcn-compare")]
    assert len(compares) == 2 and all(re.search(r"^logits\s+1x10\s.*PASS", o, re.M) for o in compares), compares
    m = onnx.load(str(tmp_path / "out/internimage/model.onnx"))
    dcn = [n for n in m.graph.node if n.domain == "dcn"]
    assert [(n.op_type, n.name) for n in dcn] == [("DCNv3", f"stages.{i}.0.dcn") for i in range(4)]
    m16 = onnx.load(str(tmp_path / "out/internimage/model_fp16.onnx"))
    dcn16 = [n for n in m16.graph.node if n.domain == "dcn"]
    assert len(dcn16) == 4  # (names: fx names; an FP16 re-export of a .pt2 program has no module scopes)
    assert {t.data_type for t in m16.graph.initializer if ".dcn." in t.name} == {onnx.TensorProto.FLOAT16}


def test_full_size_structure():
    for core in M.CORES:
        net = M.InternImageClassifier(core, **M.FULL)
        blocks = [b for s in net.stages for b in s]
        assert [len(s) for s in net.stages] == [4, 4, 18, 4]
        assert [(b.dcn.channels, b.dcn.group, b.dcn.group_channels) for b in (s[0] for s in net.stages)] == \
            [(64, 4, 16), (128, 8, 16), (256, 16, 16), (512, 32, 16)]
        assert len(blocks) == 30 and 29e6 < sum(p.numel() for p in net.parameters()) < 31e6
