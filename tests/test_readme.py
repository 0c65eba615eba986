"""Examples are tests: every ``bash`` and ``python`` block of the README runs here, in order,
from the repository root, with the project's virtual environment first on PATH.

Blocks whose first line starts with ``# GPU machine only`` need TensorRT and an NVIDIA GPU and
are skipped with that reason. The test command itself (``bash scripts/test.sh``) is not
re-run from inside the tests; the main command (``bash scripts/run.sh``) is, with its
outputs in a temporary folder.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.named_paths import missing_outputs, written_paths

REPO = Path(__file__).resolve().parents[1]
GPU_MARK = "# GPU machine only"


def blocks(path: Path = REPO / "README.md") -> list[tuple[str, str]]:
    text = path.read_text()
    return [(m.group(1), m.group(2)) for m in re.finditer(r"```(bash|python)\n(.*?)```", text, re.S)]


def _env(tmp_path: Path) -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{REPO / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["DCN_OUT"] = str(tmp_path / "run-out")
    env["PYTHONPATH"] = str(REPO)
    return env


def _ids():
    return [f"{i}-{lang}-{body.strip().splitlines()[0][:40]}" for i, (lang, body) in enumerate(blocks())]


@pytest.mark.parametrize("index", range(len(blocks())), ids=_ids())
def test_readme_block(index, tmp_path):
    lang, body = blocks()[index]
    if body.lstrip().startswith(GPU_MARK):
        pytest.skip("README block for a GPU machine: needs TensorRT and an NVIDIA GPU (not on this machine)")
    env = _env(tmp_path)
    if lang == "python":
        cmd = [sys.executable, "-c", body]
    else:
        lines = [ln for ln in body.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        # the test command runs this very suite: not from inside it
        lines = [ln for ln in lines if not ln.split("#")[0].strip().startswith("bash scripts/test.sh")]
        if not lines:
            pytest.skip("only the test command itself")
        cmd = ["bash", "-euo", "pipefail", "-c", "\n".join(lines)]
    (REPO / "out").mkdir(exist_ok=True)
    started = time.time()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"README block {index} failed:\n{body}\n--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"
    # the files each command names (-o, --save-io, --report, --plot) exist, written by this run
    if lang == "bash":
        for line in lines:
            assert missing_outputs(shlex.split(line, comments=True), REPO, since=started) == [], line
    # scripts/run.sh takes the next step its sample's make_model prints: the files that step names exist
    follows_next = lang == "bash" and any(ln.startswith("bash scripts/run.sh") for ln in lines)
    nexts = [ln.split("next: ", 1)[1] for ln in proc.stdout.splitlines() if ln.startswith("next: ")]
    assert nexts or not follows_next, proc.stdout[-2000:]
    for line in nexts if follows_next else []:
        written = [p for _, p in written_paths(shlex.split(line))]
        assert written and missing_outputs(shlex.split(line), REPO, since=started) == [], \
            f"printed next step {line!r} names outputs the run did not write"


def test_readme_opens_with_the_two_commands():
    first = blocks()[0][1].splitlines()
    assert first[0].startswith("bash scripts/run.sh") and first[1].startswith("bash scripts/test.sh")
    ci = (REPO / ".ci" / "run").read_text()
    assert "scripts/test.sh" in ci
