"""Untrusted model files: a pickle planted in any format never runs without --trust-pickle.

Every archive below carries a payload whose unpickling creates a marker file. Loading it
(load_model, dcn-export, dcn-compare) without --trust-pickle must refuse it in one line or
ignore the pickled part, and the marker must never appear. A control with --trust-pickle
proves each payload is live where that path unpickles at all.
"""
from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from helpers import export_models as em
from dcn_base.errors import DcnError
from exporter.loading import load_model

ROOT = Path(__file__).resolve().parent.parent


class Planted:
    """Unpickling this runs exec(): it writes the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def _rewrite(src: Path, dst: Path, replace: dict[str, bytes], add: dict[str, bytes] = {}) -> None:
    """Copy zip src to dst, replacing members whose name ends with a key of `replace`."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        root = zin.namelist()[0].split("/", 1)[0] + "/"
        for info in zin.infolist():
            data = zin.read(info.filename)
            for suffix, new in replace.items():
                if info.filename.endswith(suffix):
                    data = new
            zout.writestr(info.filename, data)
        for name, data in add.items():
            zout.writestr(root + name, data)


def _pickle_bytes(obj) -> bytes:
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    d = tmp_path_factory.mktemp("planted")
    model = em.small_dcn()
    x = torch.randn(1, 3, 8, 8)
    torch.export.save(torch.export.export(model, (x,)), d / "program.pt2")
    return d


def _pt2_sample_inputs(d: Path, marker: Path) -> Path:
    out = d / "sample_inputs.pt2"
    _rewrite(d / "program.pt2", out, {"data/sample_inputs/model.pt": _pickle_bytes(((Planted(marker),), {}))})
    return out


def _pt2_pickled_weight(d: Path, marker: Path) -> Path:
    out = d / "pickled_weight.pt2"
    with zipfile.ZipFile(d / "program.pt2") as z:
        name = next(n for n in z.namelist() if n.endswith("model_weights_config.json"))
        cfg = json.loads(z.read(name))
    first = next(iter(cfg["config"].values()))
    first["use_pickle"] = True
    _rewrite(d / "program.pt2", out, {"model_weights_config.json": json.dumps(cfg).encode(),
                                      "data/weights/" + first["path_name"]: _pickle_bytes(Planted(marker))})
    return out


def _pt2_opaque_constant(d: Path, marker: Path) -> Path:
    import pickle

    out = d / "opaque_constant.pt2"
    cfg = {"config": {"evil": {"path_name": "opaque_0", "is_param": False, "use_pickle": True, "tensor_meta": None}}}
    _rewrite(d / "program.pt2", out, {"model_constants_config.json": json.dumps(cfg).encode()},
             {"data/constants/opaque_0": pickle.dumps(Planted(marker))})
    return out


def _pt2_legacy_weights(d: Path, marker: Path) -> Path:
    out = d / "legacy_weights.pt2"
    _rewrite(d / "program.pt2", out, {}, {"data/weights/model.pt": _pickle_bytes(Planted(marker))})
    return out


def _pt2_aoti(d: Path, marker: Path) -> Path:
    out = d / "aoti.pt2"
    _rewrite(d / "program.pt2", out, {}, {"data/aotinductor/model/model.so": b"\x7fELF"})
    return out


def _torch_save_module(d: Path, marker: Path) -> Path:
    torch.save(Planted(marker), d / "pickled.pt")
    return d / "pickled.pt"


def _torch_save_legacy(d: Path, marker: Path) -> Path:
    torch.save(Planted(marker), d / "legacy.pt", _use_new_zipfile_serialization=False)
    return d / "legacy.pt"


def _state_dict(d: Path, marker: Path) -> Path:
    torch.save({"state_dict": {"w": torch.zeros(2)}, "extra": Planted(marker)}, d / "checkpoint.pth")
    return d / "checkpoint.pth"


def _torchscript(d: Path, marker: Path) -> Path:
    import pickle

    out = d / "script.pt"
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("script/data.pkl", pickle.dumps(Planted(marker)))
        z.writestr("script/code/__torch__.py", "")
        z.writestr("script/constants.pkl", pickle.dumps(Planted(marker)))
        z.writestr("script/version", "3\n")
    return out


# name -> (maker, refused: raises DcnError without --trust-pickle, live: the payload runs with it)
CASES = {
    "pt2 example inputs": (_pt2_sample_inputs, False, True),
    "pt2 pickled weight": (_pt2_pickled_weight, True, True),
    "pt2 opaque constant": (_pt2_opaque_constant, True, None),
    "pt2 legacy weights": (_pt2_legacy_weights, True, None),
    "pt2 AOTInductor library": (_pt2_aoti, True, None),
    "torch.save whole object": (_torch_save_module, True, True),
    "torch.save legacy format": (_torch_save_legacy, True, True),
    "state dict with an object": (_state_dict, True, True),
    "TorchScript archive": (_torchscript, True, False),
}


@pytest.mark.parametrize("case", list(CASES))
def test_planted_pickle_never_runs(base, tmp_path, case):
    make, refused, _ = CASES[case]
    marker = tmp_path / "marker"
    path = make(tmp_path if case.startswith(("torch", "state", "Torch")) else base, marker)
    if refused:
        with pytest.raises(DcnError) as err:
            load_model(path)
        msg = str(err.value)
        assert "\n" not in msg
        if case.startswith("pt2"):
            assert "member " in msg and "--trust-pickle" in msg, msg
    else:
        m = load_model(path)
        assert getattr(m, "example_inputs", None) is None
        assert "--input" in m.example_inputs_note and "sample_inputs/model.pt" in m.example_inputs_note
    assert not marker.exists(), f"{case}: the planted pickle ran"


@pytest.mark.parametrize("case", [c for c, v in CASES.items() if v[2]])
def test_payload_is_live_with_trust_pickle(base, tmp_path, case):
    """Control: the same file with --trust-pickle does unpickle (so the tests above mean something)."""
    make = CASES[case][0]
    marker = tmp_path / "marker"
    path = make(tmp_path if case.startswith(("torch", "state")) else base, marker)
    try:
        load_model(path, trust_pickle=True)
    except Exception:  # noqa: BLE001 - the payload is not a model; only its side effect matters
        pass
    assert marker.exists()


def test_pt2_without_example_inputs_still_loads_and_matches(base):
    model = em.small_dcn()
    m = load_model(base / "program.pt2")
    (x,), _ = m.example_inputs
    assert x.shape == (1, 3, 8, 8)


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "import sys; from exporter.cli import main; sys.exit(main())", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=300, env={**__import__("os").environ,
                                                                                     "PYTHONPATH": str(ROOT)})


def test_cli_export_ignores_pickled_example_inputs(base, tmp_path):
    marker = tmp_path / "marker"
    path = _pt2_sample_inputs(base, marker)
    r = _cli(str(path), "-o", str(tmp_path / "m.onnx"), "--no-verify", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "ignored (give --input" in r.stdout and "no example inputs" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not marker.exists()


def test_cli_compare_refuses_planted_reference(base, tmp_path):
    marker = tmp_path / "marker"
    path = _pt2_pickled_weight(base, marker)
    (tmp_path / "m.onnx").write_bytes(b"not read: the reference is refused first")
    r = subprocess.run([sys.executable, "-c", "import sys; from trt_runtime.cli import compare_main; "
                        "sys.exit(compare_main())", str(path), str(tmp_path / "m.onnx"), "--input", "x:1x3x8x8"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300,
                       env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "--trust-pickle" in r.stderr, r.stderr
    assert not marker.exists()
