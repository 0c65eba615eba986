"""Ctrl-C at any moment of any command (issue 22): every console script of pyproject's ``[project.scripts]``,
run as installed (the venv's script, or the same three lines pip writes), gets SIGINT at several points:

* start-up: as soon as the command's imports have begun (the first extension module is mapped into the
  process, polled in /proc/PID/maps): the shim (dcn_base.entry) exits at once;
* 0.4 s, 1.2 s and 3 s later: imports of the command module, lazy imports of libraries inside the work
  (Polygraphy importing torch), the work itself (tracing, running, timing, writing), serving.

Each interrupted run must exit 130 with exactly one line of ours (``<tool>: interrupted``; a running
``dcn-serve``: ``dcn-serve: stopped``), no traceback, no crash, and nothing half-written: no temporary
left, an existing output untouched or replaced by a complete one. A command that finished before the
signal (dcn-plugins, dcn-build without TensorRT, a small dcn-triton-repo) is held to its own exit code
without a traceback. Out of reach, and not tested: the interpreter's own start before the shim's
first line (Python, ``site``, the wrapper's ``import re``: milliseconds).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import onnx
import pytest

from helpers import export_models as em
from helpers.ci_policy import require_module

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
POINTS = ("start-up", 0.4, 1.2, 3.0)
OLD = b"old output\n"
LONG_RUNNING = {"dcn-export", "dcn-infer", "dcn-serve"}  # busy for seconds here: every point interrupts them


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A small DCN model exported with its inputs / outputs (dcn-export --save-io)."""
    from exporter.cli import main as export_main

    d = tmp_path_factory.mktemp("interrupts")
    assert export_main(["--factory", "helpers.export_models:small_dcn", "-o", str(d / "m.onnx"), "--input",
                        "x:1x3x8x8", "--save-io", str(d / "io"), "-q"]) == 0
    return d


def _args(name: str, model: Path, out: Path) -> list[str]:
    """Arguments that keep each command busy for a while (and write outputs where it has any)."""
    m, io = str(model / "m.onnx"), model / "io"
    if name == "dcn-serve":
        from trt_runtime.serve_processes import free_port

        ports = [str(free_port("127.0.0.1")) for _ in range(3)]
        return [m, "--host", "127.0.0.1", "--http-port", ports[0], "--grpc-port", ports[1], "--metrics-port", ports[2]]
    return {
        "dcn-export": ["--factory", "helpers.export_models:small_dcn", "-o", str(out / "m.onnx"), "--input",
                       "x:1x3x8x8", "--save-io", str(out / "io")],
        "dcn-build": [m, "-o", str(out / "m.engine")],
        "dcn-infer": [m, "--load-inputs", str(io / "inputs.json"), "-o", str(out / "out.npz"), "--iterations",
                      "100000"],
        "dcn-compare": [str(io), m, "--report", str(out / "report.json"), "--iterations", "1"],
        "dcn-plugins": ["--ort"],
        "dcn-triton-repo": [m, "-o", str(out / "repo"), "--kind", "cpu"],
    }[name]


def _command(name: str, tmp: Path) -> list[str]:
    """The installed console script, or the three lines pip writes for it."""
    installed = Path(sys.executable).parent / name
    if installed.is_file():
        return [str(installed)]
    module, func = SCRIPTS[name].split(":")
    wrapper = tmp / name
    wrapper.write_text(f"import re\nimport sys\nfrom {module} import {func}\nsys.exit({func}())\n")
    return [sys.executable, str(wrapper)]


def _imports_begun(pid: int) -> bool:
    """Has the process mapped an extension module (lib-dynload / site-packages)? Only the command's imports
    do that: the interpreter, ``site`` and the script wrapper load none."""
    try:
        with open(f"/proc/{pid}/maps") as f:
            return any(".so" in line and ("lib-dynload" in line or "site-packages" in line) for line in f)
    except OSError:
        return False


def _descendants(pid: int) -> list[int]:
    from trt_runtime.serve_processes import descendants

    return descendants(pid)


def _kill_tree(p: subprocess.Popen) -> None:
    for pid in [*_descendants(p.pid), p.pid]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    p.wait()


def _complete(path: Path) -> None:
    """An output that exists is whole: the old content, or a file its reader loads."""
    if path.read_bytes() == OLD:
        return
    if path.suffix == ".onnx":
        onnx.load(str(path))
    elif path.suffix == ".json":
        json.loads(path.read_text())
    elif path.suffix == ".npz":
        with np.load(path) as z:
            list(z.items())


def _nothing_half_written(out: Path) -> None:
    files = [p for p in out.rglob("*") if p.is_file()]
    assert not [p for p in files if ".tmp" in p.name], files
    for p in files:
        _complete(p)
    repo = out / "repo"
    if repo.exists():  # a model repository is there whole, or not at all
        assert (repo / "m" / "config.pbtxt").is_file() and (repo / "m" / "1" / "model.onnx").is_file()
    io = out / "io"
    if io.exists():
        assert sorted(p.name for p in io.iterdir()) == ["inputs.json", "outputs.json"]


def _run(name: str, point, model: Path, tmp: Path) -> tuple[bool, int, str, str]:
    out = tmp / "out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    for existing in ("m.onnx", "out.npz", "report.json"):
        (out / existing).write_bytes(OLD)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")]))
    p = subprocess.Popen(_command(name, tmp) + _args(name, model, out), cwd=out, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while p.poll() is None and not _imports_begun(p.pid) and time.monotonic() < deadline:
            time.sleep(0.0005)
        if point != "start-up":
            time.sleep(point)
        sent = p.poll() is None
        if sent:
            p.send_signal(signal.SIGINT)
        stdout, stderr = p.communicate(timeout=300)
    finally:
        if p.poll() is None:
            _kill_tree(p)
    _nothing_half_written(out)
    return sent, p.returncode, stdout, stderr


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_ctrl_c_at_any_moment_is_130_one_line_nothing_half_written(name, model, tmp_path):
    if name == "dcn-serve":
        require_module("pytriton", reason="dcn-serve needs nvidia-pytriton")
    results = []
    for point in POINTS:
        sent, code, stdout, stderr = _run(name, point, model, tmp_path)
        where = f"{name}, SIGINT at {point}: exit {code}\nstdout: {stdout[-1500:]}\nstderr: {stderr[-3000:]}"
        assert "Traceback" not in stderr + stdout and code >= 0, where  # no traceback, no crash (signal)
        ours = [ln for ln in stderr.splitlines() if ln.strip() == f"{name}: interrupted"]
        stopped = [ln for ln in stdout.splitlines() if ln.strip() == f"{name}: stopped"]
        if code == 130:
            assert len(ours) + len(stopped) == 1, where
            if ours:
                assert stderr.strip().splitlines()[-1] == f"{name}: interrupted", where
        else:  # finished before the signal (or while exiting): its own code, no interruption line
            assert not ours and code in (0, 2), where
        results.append((point, sent, code))
    assert results[0][2] == 130, results  # the start-up point always interrupts
    if name in LONG_RUNNING:
        assert all(code == 130 for _, _, code in results), results


def test_shim_is_the_first_thing_a_script_imports():
    """Every console script's module imports dcn_base.entry before anything else (its SIGINT handler is
    installed before the command's imports), and dcn_base.entry installs it from the C module _signal."""
    import ast

    for name, target in SCRIPTS.items():
        module = target.split(":")[0]
        path = ROOT / (module.replace(".", "/") + ".py")
        first = next(n for n in ast.parse(path.read_text()).body if isinstance(n, (ast.Import, ast.ImportFrom)))
        assert isinstance(first, ast.ImportFrom) and first.module == "dcn_base.entry", (name, path)
    src = (ROOT / "dcn_base" / "entry.py").read_text()
    first = next(n for n in ast.parse(src).body if isinstance(n, (ast.Import, ast.ImportFrom)))
    assert isinstance(first, ast.Import) and first.names[0].name == "_signal"


# --------------------------------------------------------------------------- the shim's rules, deterministic
SWALLOWING_LIBRARY = '''
import os, signal, time

def main():
    try:
        import slow_import  # Ctrl-C arrives during this import
    except:  # noqa: E722  a library that swallows whatever an import raises (Polygraphy's is_importable)
        pass
    time.sleep(5)  # the work: the Ctrl-C held back during the import lands here
    print("finished")
    return 0
'''
SLOW_IMPORT = "import os, signal, time\nos.kill(os.getpid(), signal.SIGINT)\ntime.sleep(0.3)\n"
CLEAN_UP = '''
import os, signal, sys, time

def main():
    try:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)
    finally:  # the command's clean-up; a second Ctrl-C meanwhile must not cut it short
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)
        print("cleaned up", flush=True)
    return 0
'''

SWALLOWED_RETURN = '''
import os, signal, time

def main():
    try:  # a library that catches everything (a bare except) while the Ctrl-C lands
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)
    except:  # noqa: E722
        pass
    print("finished", flush=True)
    return 0
'''
SWALLOWED_ERROR = '''
import os, signal, time
from dcn_base.cli import run_command

def body():
    try:  # numpy's reader turned a Ctrl-C into "Cannot load file containing pickled data"
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)
    except BaseException:
        raise ValueError("Cannot load file containing pickled data when allow_pickle=False")

def main():
    return run_command("tool", body)
'''

FINAL_COMMIT = '''
import os, signal
from pathlib import Path
from dcn_base import atomic
from dcn_base.cli import run_command

HERE = Path(__file__).parent
real_replace = os.replace


def replace_then_interrupt(src, dst):  # a Ctrl-C during the renames
    real_replace(src, dst)
    os.kill(os.getpid(), signal.SIGINT)


def body():
    with atomic.final_commit():
        with atomic.AtomicGroup() as group:
            group.path(HERE / "a.txt").write_text("new a")
            group.path(HERE / "b.txt").write_text("new b")
            os.replace = replace_then_interrupt
    os.replace = real_replace
    os.kill(os.getpid(), signal.SIGINT)  # and one after the commit, during the summary
    print("summary", flush=True)
    return 0


def main():
    return run_command("tool", body)
'''


def _shim(tmp: Path, module: str) -> subprocess.CompletedProcess:
    code = f"import sys; from dcn_base.entry import entry; sys.exit(entry({module!r}, 'main')())"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(tmp)]))
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)


def test_ctrl_c_during_a_swallowed_import_is_delivered_after_it(tmp_path):
    (tmp_path / "swallow.py").write_text(SWALLOWING_LIBRARY)
    (tmp_path / "slow_import.py").write_text(SLOW_IMPORT)
    r = _shim(tmp_path, "swallow")
    assert (r.returncode, r.stderr, r.stdout) == (130, "dcn: interrupted\n", "")


@pytest.mark.parametrize("module, source, stderr, stdout", [
    ("swallowed_return", SWALLOWED_RETURN, "dcn: interrupted\n", "finished\n"),
    ("swallowed_error", SWALLOWED_ERROR, "tool: interrupted\n", ""),
])
def test_a_swallowed_ctrl_c_still_ends_as_interrupted(tmp_path, module, source, stderr, stdout):
    """A library that swallows the shim's KeyboardInterrupt (returning normally, or raising another
    error) cannot hide the Ctrl-C: 130 and one line (seen on dcn-infer under load, exit 0 or 2)."""
    (tmp_path / f"{module}.py").write_text(source)
    r = _shim(tmp_path, module)
    assert (r.returncode, r.stderr, r.stdout) == (130, stderr, stdout)


def test_a_second_ctrl_c_does_not_cut_the_clean_up_short(tmp_path):
    (tmp_path / "cleanup.py").write_text(CLEAN_UP)
    r = _shim(tmp_path, "cleanup")
    assert (r.returncode, r.stderr, r.stdout) == (130, "dcn: interrupted\n", "cleaned up\n")


def test_a_ctrl_c_after_the_final_commit_leaves_a_finished_command(tmp_path):
    """A command's final commit (dcn_base.atomic.final_commit, as dcn-export's model and --save-io
    files): a Ctrl-C during its renames or after them cannot make it "interrupted" (130) over replaced
    outputs; it ends as finished, its outputs whole and new."""
    for name in ("a.txt", "b.txt"):
        (tmp_path / name).write_text("old")
    (tmp_path / "final_commit.py").write_text(FINAL_COMMIT)
    r = _shim(tmp_path, "final_commit")
    assert (r.returncode, r.stderr, r.stdout) == (0, "", "summary\n")
    assert ((tmp_path / "a.txt").read_text(), (tmp_path / "b.txt").read_text()) == ("new a", "new b")
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".txt") == ["a.txt", "b.txt"]


def test_atomic_group_commits_whole_when_ctrl_c_comes_during_the_renames(tmp_path, monkeypatch):
    """A Ctrl-C between two renames of an AtomicGroup: every output replaced, then the KeyboardInterrupt."""
    from dcn_base import atomic

    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("old a")
    b.write_text("old b")
    real_replace = os.replace

    def replace_then_interrupt(src, dst):
        real_replace(src, dst)
        os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        with atomic.AtomicGroup() as group:
            group.path(a).write_text("new a")
            group.path(b).write_text("new b")
            monkeypatch.setattr(atomic.os, "replace", replace_then_interrupt)
    assert (a.read_text(), b.read_text()) == ("new a", "new b")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]
    with pytest.raises(KeyboardInterrupt):  # during the work: nothing replaced, nothing left
        with atomic.atomic_path(a) as tmp:
            tmp.write_text("newer a")
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
    assert a.read_text() == "new a" and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]


def test_ctrl_c_while_an_archive_is_written_leaves_no_open_zip(tmp_path, monkeypatch):
    """dcn_base.model_io.save_npz: numpy leaves its zip archive open when interrupted mid-write (at exit:
    'Exception ignored ... seek of closed file'); the write is whole, then the KeyboardInterrupt."""
    import gc

    from dcn_base import model_io

    import numpy.lib.format as npy_format

    real_write = npy_format.write_array

    def write_interrupted(fid, array, **kw):  # Ctrl-C while numpy's zip member is open
        os.kill(os.getpid(), signal.SIGINT)
        real_write(fid, array, **kw)

    monkeypatch.setattr(npy_format, "write_array", write_interrupted)
    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    dest = tmp_path / "out.npz"
    dest.write_bytes(OLD)
    with pytest.raises(KeyboardInterrupt):
        model_io.save_npz(dest, {"y": np.arange(1000.0)})
    gc.collect()
    assert not unraisable, [u.exc_value for u in unraisable]
    assert dest.read_bytes() == OLD and sorted(p.name for p in tmp_path.iterdir()) == ["out.npz"]


def test_a_directory_in_the_way_of_an_output_replaces_nothing(tmp_path):
    """--save-io into a folder where outputs.json is a directory: the model and inputs.json had been
    replaced before that rename failed, under a message saying 'nothing was replaced' and naming the
    temporary. Now every destination is checked first (before any work: dcn_base.atomic.check_writable for
    each --save-io file; and again before the renames): nothing replaced, the destination named."""
    import torch

    import exporter
    from dcn_base.errors import DcnError

    model_path, io = tmp_path / "m.onnx", tmp_path / "io"
    io.mkdir()
    (io / "outputs.json").mkdir()
    model_path.write_bytes(OLD)
    (io / "inputs.json").write_bytes(OLD)
    with pytest.raises(DcnError, match=r"output '.*io/outputs.json' is a directory, expected a file path"):
        exporter.export(em.small_dcn(), torch.randn(1, 3, 8, 8), model_path, save_io=io)
    assert model_path.read_bytes() == OLD and (io / "inputs.json").read_bytes() == OLD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["io", "m.onnx"]
    assert sorted(p.name for p in io.iterdir()) == ["inputs.json", "outputs.json"]


def test_a_group_removes_its_stale_files_only_when_it_commits(tmp_path):
    """AtomicGroup.remove: the stale file goes after the renames, not when the group fails; a stale name that
    is a directory fails the group before any rename (nothing replaced, the name given)."""
    from dcn_base import atomic
    from dcn_base.errors import DcnError

    new, stale = tmp_path / "outputs.npz", tmp_path / "outputs.json"
    stale.write_bytes(OLD)
    with pytest.raises(RuntimeError):
        with atomic.AtomicGroup() as group:
            group.write_bytes(new, b"new")
            group.remove(stale)
            raise RuntimeError("a failure before the commit")
    assert stale.read_bytes() == OLD and not new.exists()
    with atomic.AtomicGroup() as group:
        group.write_bytes(new, b"new")
        group.remove(stale)
        group.remove(tmp_path / "never-there.json")
    assert new.read_bytes() == b"new" and not stale.exists()
    stale.mkdir()
    with pytest.raises(DcnError, match=r"outputs.json' is a directory, expected a file to remove; nothing was replaced"):
        with atomic.AtomicGroup() as group:
            group.write_bytes(new, b"newer")
            group.remove(stale)
    assert new.read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == ["outputs.json", "outputs.npz"]
