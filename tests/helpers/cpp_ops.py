"""The C++ side's op registry (plugins/ops/ops.list) for the tests that compile or scan C++ sources:
which ops there are, where their folders are, and the include flags that reach every header."""
from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PLUGINS = REPO / "plugins"
COMMON = PLUGINS / "common"
OPS_DIR = PLUGINS / "ops"
OPS_LIST = OPS_DIR / "ops.list"


def cpp_ops() -> list[tuple[str, str]]:
    """(folder, op type) of every ``DCN_OP(<op>, <OpType>)`` line of ops.list, in its order."""
    return re.findall(r"^DCN_OP\(([a-z0-9_]+), *([A-Za-z0-9_]+)\)", OPS_LIST.read_text(), flags=re.M)


def op_dirs() -> list[Path]:
    return [OPS_DIR / snake for snake, _ in cpp_ops()]


def op_files(pattern: str) -> list[Path]:
    """The files of every op folder matching ``pattern`` (a glob, e.g. ``*_plugin.*``)."""
    return sorted(f for d in op_dirs() for f in d.glob(pattern))


def include_flags() -> list[str]:
    """-I for the shared core, ops.list and every op folder (as CMake's dcn_common)."""
    return [f"-I{d}" for d in (COMMON, OPS_DIR, *op_dirs())]
