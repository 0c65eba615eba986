"""exporter.loading: every model file format, and a one-line DcnError for every bad file."""
from __future__ import annotations

import zipfile

import pytest
import torch
from torch import nn

from helpers import export_models as em
from exporter import ops
from dcn_base.errors import DcnError
from exporter.loading import file_kind, load_model, parse_factory


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    model = em.small_dcn()
    x = torch.randn(1, 3, 8, 8)
    torch.jit.save(torch.jit.script(model), d / "scripted.pt")
    torch.jit.save(torch.jit.trace(model, (x,)), d / "traced.ts")
    torch.export.save(torch.export.export(model, (x,)), d / "program.pt2")
    torch.save(model, d / "pickled.pt")
    torch.save(model.state_dict(), d / "weights.pth")
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}},
               d / "checkpoint.pth")
    (d / "garbage.pt").write_bytes(b"\x00not a model at all\xff" * 10)
    data = (d / "scripted.pt").read_bytes()
    (d / "truncated.pt").write_bytes(data[: len(data) // 2])
    with zipfile.ZipFile(d / "other.zip", "w") as z:
        z.writestr("hello.txt", "hi")
    (d / "a_dir").mkdir()
    return d, model, x


def _same(a: nn.Module, b: nn.Module, x):
    with torch.no_grad():
        torch.testing.assert_close(a(x), b(x))


@pytest.mark.parametrize("name, kind", [("scripted.pt", "torchscript"), ("traced.ts", "torchscript"),
                                        ("program.pt2", "pt2"), ("pickled.pt", "torch.save"),
                                        ("weights.pth", "torch.save"), ("garbage.pt", "unknown"),
                                        ("truncated.pt", "unknown"), ("other.zip", "unknown")])
def test_file_kind(files, name, kind):
    d, _, _ = files
    assert file_kind(d / name) == kind


def test_torchscript(files):
    d, model, x = files
    for name in ("scripted.pt", "traced.ts"):
        m = load_model(d / name)
        assert isinstance(m, torch.jit.ScriptModule)
        _same(m, model, x)


def test_torch_export_program_keeps_example_inputs(files):
    d, model, x = files
    m = load_model(d / "program.pt2")
    _same(m, model, x)
    args, kwargs = m.example_inputs
    assert [tuple(a.shape) for a in args] == [(1, 3, 8, 8)] and not kwargs


def test_pickle_needs_trust(files):
    d, model, x = files
    with pytest.raises(DcnError, match=r"'.*pickled.pt' is a pickled Python object \(e.g. a whole nn.Module\); "
                                       r"unpickling runs code from the file, so dcn-export loads it only with "
                                       r"--trust-pickle"):
        load_model(d / "pickled.pt")
    m = load_model(d / "pickled.pt", trust_pickle=True)
    assert isinstance(m, nn.Sequential)
    _same(m, model, x)


def test_state_dict_with_factory(files):
    d, model, x = files
    for name in ("weights.pth", "checkpoint.pth"):
        m = load_model(d / name, factory="helpers.export_models:small_dcn")
        _same(m, model, x)
    with pytest.raises(DcnError, match=r"holds a state dict \(\d+ tensors\); give the model's constructor with "
                                       r"--factory MODULE:CALLABLE"):
        load_model(d / "weights.pth")


def test_state_dict_that_does_not_fit(files):
    d, _, _ = files
    with pytest.raises(DcnError, match=r"does not fit the model from --factory 'helpers.export_models:psroi_net': "
                                       r"missing body.weight, .*; unexpected 0.weight"):
        load_model(d / "weights.pth", factory="helpers.export_models:psroi_net")


def test_factory_alone_builds_a_fresh_model():
    m = load_model(None, factory="helpers.export_models:small_dcn")
    assert isinstance(m[2], ops.ModulatedDeformConv2dPack)
    with pytest.raises(DcnError, match="no model: give a model file, or --factory"):
        load_model(None)


@pytest.mark.parametrize("spec, message", [
    ("export_models", r"--factory 'export_models': expected MODULE:CALLABLE"),
    ("no_such_module_xyz:build", r"cannot import module 'no_such_module_xyz': ModuleNotFoundError"),
    ("helpers.export_models:nope", r"module 'helpers.export_models' has no attribute 'nope'"),
    ("helpers.export_models:torch", r"'torch' is module, expected a callable returning nn.Module"),
    ("helpers.export_models:rois_for", r"--factory 'helpers.export_models:rois_for' failed: TypeError"),
    ("helpers.export_models:_define_mystery", r"returned NoneType, expected an nn.Module"),
])
def test_factory_errors(spec, message):
    with pytest.raises(DcnError, match=message):
        load_model(None, factory=spec) if ":" not in spec or spec.count(":") == 1 else parse_factory(spec)


@pytest.mark.parametrize("name, message", [
    ("missing.pt", r"model file '.*missing.pt' not found"),
    ("a_dir", r"'.*a_dir' is a directory, expected a model file"),
    ("garbage.pt", r"is not a TorchScript archive, torch.export program or torch.save file \(unrecognised or corrupt\)"),
    ("truncated.pt", r"is not a TorchScript archive, torch.export program or torch.save file"),
    ("other.zip", r"is not a TorchScript archive"),
])
def test_bad_files(files, name, message):
    d, _, _ = files
    with pytest.raises(DcnError, match=message) as e:
        load_model(d / name)
    assert "\n" not in str(e.value)


def test_factory_with_whole_model_file_is_an_error(files):
    d, _, _ = files
    with pytest.raises(DcnError, match="--factory applies to state-dict files; '.*scripted.pt' is a TorchScript"):
        load_model(d / "scripted.pt", factory="helpers.export_models:small_dcn")


def test_corrupt_zip_member(files, tmp_path):
    d, _, _ = files
    # a torch.save zip whose tensor data is damaged
    raw = bytearray((d / "weights.pth").read_bytes())
    with zipfile.ZipFile(d / "weights.pth") as z:
        info = next(i for i in z.infolist() if i.filename.endswith("/data.pkl"))
    h = info.header_offset  # local header: name and extra lengths at bytes 26..29
    start = h + 30 + int.from_bytes(raw[h + 26:h + 28], "little") + int.from_bytes(raw[h + 28:h + 30], "little")
    raw[start:start + 8] = b"\xff" * 8
    bad = tmp_path / "damaged.pth"
    bad.write_bytes(bytes(raw))
    with pytest.raises(DcnError, match=r"damaged.pth"):
        load_model(bad, factory="helpers.export_models:small_dcn")
