"""The layout's rules (issue 21), checked on the sources:

* one op, one folder: no op is named (its op type or folder name) in more than 5 product files outside
  its own folders (exporter/ops/<op>/, plugins/ops/<op>/); product = not tests/, docs/, samples/,
  benchmarks/; the two registries (exporter/ops/__init__.py, plugins/ops/ops.list) list the same ops,
  each with its folder on both sides;
* small pieces: no product source file over 500 lines, no function over 60 lines in the main paths
  (export, build, compare, the engine);
* layers one way: exporter never imports trt_runtime (nor looks it up by name), dcn_base imports neither,
  no library module imports a command module, dcn-export's entry point is in exporter; the libraries'
  install folder (dcn_base.libraries) is CMake's; reading the contract (every op's entry) imports no torch.
"""
from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from exporter import ops
from exporter.contract import specs
from helpers.cpp_ops import OPS_DIR, cpp_ops
from helpers.ci_policy import missing

REPO = Path(__file__).resolve().parents[1]
NOT_PRODUCT = ("tests/", "docs/", "samples/", "benchmarks/")
SOURCE_SUFFIXES = (".py", ".h", ".cpp", ".cu", ".cuh", ".sh", ".cmake", ".list", ".txt", ".toml")
MAX_FILES_NAMING_AN_OP = 5
MAX_LINES = 500
MAX_FUNCTION_LINES = 60
MAIN_PATHS = ("exporter/cli.py", "exporter/loading.py", "exporter/swap.py", "exporter/trace.py", "exporter/translate.py",
              "exporter/onnx_post.py", "exporter/verify.py", "exporter/export.py", "trt_runtime/build.py",
              "trt_runtime/compare.py", "trt_runtime/infer.py", "trt_runtime/cli.py")
COMMAND_MODULES = {"exporter.cli", "exporter.cli_inputs", "exporter.entry", "exporter.__main__", "trt_runtime.cli",
                   "trt_runtime.plugins", "trt_runtime.serve", "trt_runtime.triton_repo", "trt_runtime.entry",
                   "dcn_base.entry"}


def product_files() -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                             text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        missing("git is needed to list the repository's files")
    return sorted(f for f in out if not f.startswith(NOT_PRODUCT) and (REPO / f).is_file())


def python_modules(package: str) -> dict[str, Path]:
    out = {}
    for f in sorted((REPO / package).rglob("*.py")):
        rel = f.relative_to(REPO).with_suffix("")
        parts = list(rel.parts[:-1]) if rel.name == "__init__" else list(rel.parts)
        out[".".join(parts)] = f
    return out


def imported(module: str, path: Path) -> set[str]:
    """Every module ``path`` imports (relative imports resolved), at any depth of the file."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names.add(base)
            names |= {f"{base}.{a.name}" for a in node.names}
    return names


# --------------------------------------------------------------------------- one op, one folder
def test_the_two_registries_list_the_same_ops_with_their_folders():
    assert [(s.name, s.op_type) for s in specs()] == cpp_ops()
    assert list(ops.REGISTRY) == [s.name for s in specs()]
    for spec in specs():
        py = REPO / "exporter" / "ops" / spec.name
        for part in ("spec", "reference", "custom", "modules", "swap", "onnx"):
            assert (py / f"{part}.py").is_file(), f"{py}/{part}.py"
        cpp = OPS_DIR / spec.name
        for name in (f"{spec.name}_fields.h", f"{spec.name}_math.h", f"{spec.name}_ort.cpp", f"{spec.name}_plugin.h",
                     f"{spec.name}_plugin.cpp"):
            assert (cpp / name).is_file(), f"{cpp}/{name}"
        assert list(cpp.glob("*.cu")), f"{cpp}: no CUDA kernels"


@pytest.mark.parametrize("spec", specs(), ids=lambda s: s.op_type)
def test_no_op_named_in_more_than_five_product_files_outside_its_folders(spec):
    own = (f"exporter/ops/{spec.name}/", f"plugins/ops/{spec.name}/")
    pattern = re.compile(rf"{re.escape(spec.op_type)}|{re.escape(spec.name)}")
    naming = [f for f in product_files() if not f.startswith(own) and pattern.search((REPO / f).read_text(errors="replace"))]
    assert len(naming) <= MAX_FILES_NAMING_AN_OP, f"{spec.op_type} is named in {len(naming)} files: {naming}"


# --------------------------------------------------------------------------- small pieces
def test_no_product_source_file_over_500_lines():
    long = {f: n for f in product_files() if f.endswith(SOURCE_SUFFIXES) or f.endswith("CMakeLists.txt")
            for n in [len((REPO / f).read_text(errors="replace").splitlines())] if n > MAX_LINES}
    assert not long, long


@pytest.mark.parametrize("path", MAIN_PATHS)
def test_no_long_function_in_the_main_paths(path):
    tree = ast.parse((REPO / path).read_text())
    long = {n.name: n.end_lineno - n.lineno + 1 for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > MAX_FUNCTION_LINES}
    assert not long, long


# --------------------------------------------------------------------------- layers one way
def test_exporter_never_imports_trt_runtime():
    for module, path in python_modules("exporter").items():
        bad = {m for m in imported(module, path) if m == "trt_runtime" or m.startswith("trt_runtime.")}
        assert not bad, f"{module} imports {sorted(bad)}"
        assert "trt_runtime" not in re.sub(r"#[^\n]*|\"\"\".*?\"\"\"", "", path.read_text(), flags=re.S) \
            .replace("trt_runtime/lib", ""), f"{module} names trt_runtime (find_spec?)"


def test_dcn_base_imports_neither_half():
    for module, path in python_modules("dcn_base").items():
        bad = {m for m in imported(module, path) if m.split(".")[0] in ("exporter", "trt_runtime")}
        assert not bad, f"{module} imports {sorted(bad)}"


def test_no_library_module_imports_a_command_module():
    for package in ("dcn_base", "exporter", "trt_runtime"):
        for module, path in python_modules(package).items():
            if module in COMMAND_MODULES:
                continue
            bad = imported(module, path) & COMMAND_MODULES
            assert not bad, f"library module {module} imports the command module(s) {sorted(bad)}"


def test_dcn_export_entry_point_is_in_exporter():
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["dcn-export"].startswith("exporter.")
    assert all(v.split(":")[0] in COMMAND_MODULES for v in scripts.values())


def test_library_install_folder_is_cmakes():
    from dcn_base.libraries import INSTALL_LIBDIR

    m = re.search(r'set\(DCN_INSTALL_LIBDIR "([^"]+)"', (REPO / "plugins" / "CMakeLists.txt").read_text())
    assert m and Path(m.group(1)) == INSTALL_LIBDIR


def test_reading_the_contract_imports_no_torch():
    """The registry is lazy: every op's entry (its spec.py, and what the entries share) loads without torch."""
    code = ("import sys, exporter.contract as c; s = c.specs(); c.OPS; c.LIMITS; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'onnx', 'numpy')); "
            "assert not bad, bad; print(len(s))")
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert p.returncode == 0 and int(p.stdout) == len(ops.REGISTRY), p.stdout + p.stderr
