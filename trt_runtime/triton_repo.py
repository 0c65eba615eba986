"""``dcn-triton-repo MODEL -o REPO``: a native Triton model repository, served by NVIDIA's
Triton containers without any Python of ours.

    REPO/<name>/config.pbtxt          inputs, outputs, max_batch_size, dynamic batching, instance groups
    REPO/<name>/1/model.plan          engine (TensorRT backend)   | model.onnx (ONNX Runtime backend)
    REPO/<name>/libdcn_trt_plugins.so | libdcn_ort.so             our plugin / op library, copied
    REPO/<name>/README.md             the exact tritonserver command lines

Engines: Triton's TensorRT backend loads the plugin library named by
``--backend-config=tensorrt,plugins=...`` (or ``LD_PRELOAD``); the library registers its
creators when loaded. ONNX models: the ONNX Runtime backend registers the libraries listed in
``model_operations { op_library_filename: ... }`` on each session (an absolute path as the
server sees it: ``--mount`` names where REPO is inside the container).
See Triton's docs/user_guide/custom_operations.md (triton-inference-server/server) and the
onnxruntime_backend's src/onnxruntime.cc, where ``op_library_filename`` goes to
``RegisterCustomOpsLibrary`` as given.

The model's folder is written beside its final place and renamed onto it at the end; each
file in it through dcn_base.atomic, so an interrupted run leaves the previous version intact.
"""
from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Optional, Sequence

from dcn_base.atomic import atomic_path, uninterrupted
from dcn_base.cli import QUIET, VERBOSE, add_common_args, run_command, verbosity
from dcn_base.errors import DcnError
from dcn_base.libraries import ort_library, trt_library
from dcn_base.model_io import check_not_pytorch

from .plugin_loader import add_plugins_arg
from .triton_io import ModelSpec, TensorSpec, check_name, default_name, describe_engine, describe_onnx, is_onnx, \
    onnx_external_files

PROG = "dcn-triton-repo"


@dataclass
class RepoOptions:
    name: Optional[str] = None
    max_batch: int = 8
    queue_delay_us: int = 1000
    instances: int = 1
    kind: str = "auto"  # auto | cpu | gpu
    mount: Optional[str] = None  # REPO's path inside the server's container
    plugins: Optional[str] = None  # TensorRT plugin library
    ort_library: Optional[str] = None
    onnx: Optional[str] = None  # the ONNX an engine was built from (its inputs / outputs)


@dataclass
class RepoResult:
    model_dir: Path
    config: Path
    readme: Path
    library: Path
    spec: ModelSpec
    max_batch: int
    command: str
    batching: str  # the batching decision, as the README states it


def pbtxt_string(text: str) -> str:
    """``text`` as a quoted string of protobuf's text format: backslash, quotes and control characters
    escaped (a tensor named 'in"put' would otherwise end the string early and break the file)."""
    out = []
    for ch in text:
        if ch in '\\"\'':
            out.append("\\" + ch)
        elif ch in "\n\r\t":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\{ord(ch):03o}")
        else:
            out.append(ch)  # UTF-8 as it is: the text format reads it
    return '"' + "".join(out) + '"'


def _dims(t: TensorSpec, batching: bool) -> str:
    dims = t.dims[1:] if batching else t.dims
    return "[ " + ", ".join(str(d) for d in dims) + " ]" if dims else "[ 1 ]"


def config_text(name: str, spec: ModelSpec, *, platform: str, max_batch: int, queue_delay_us: int,
                instances: int, kind: str, op_library: Optional[str] = None) -> str:
    """config.pbtxt (model_config.proto text format)."""
    batching = max_batch > 0
    lines = [f"name: {pbtxt_string(name)}", f"platform: {pbtxt_string(platform)}", f"max_batch_size: {max_batch}"]
    for section, tensors in (("input", spec.inputs), ("output", spec.outputs)):
        entries = []
        for t in tensors:
            # a scalar (per batch item) is dims [1] reshaped to [] (Triton's convention)
            reshape = "" if (t.dims[1:] if batching else t.dims) else "\n    reshape: { shape: [ ] }"
            entries.append(f"  {{\n    name: {pbtxt_string(t.name)}\n    data_type: TYPE_{t.triton_type}\n"
                           f"    dims: {_dims(t, batching)}{reshape}\n  }}")
        lines.append(f"{section} [\n" + ",\n".join(entries) + "\n]")
    if batching:
        lines.append(f"dynamic_batching {{\n  max_queue_delay_microseconds: {queue_delay_us}\n}}")
    lines.append(f"instance_group [\n  {{\n    count: {instances}\n    kind: {kind}\n  }}\n]")
    if op_library:
        lines.append(f"model_operations {{\n  op_library_filename: {pbtxt_string(op_library)}\n}}")
    return "\n".join(lines) + "\n"


def _copy(src: Path, dest: Path) -> None:
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)


def _write_text(dest: Path, text: str) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_text(text)


def batching_text(spec: ModelSpec, max_batch: int, wanted: int) -> str:
    return (f"dynamic batching up to {max_batch} over axis 0" if max_batch
            else f"no batching ({spec.no_batching_reason(wanted)}): full shapes")


def _readme(name: str, spec: ModelSpec, engine: bool, lib_name: str, repo_in: str, command: str,
            max_batch: int, instances: int, kind: str, wanted: int) -> str:
    lib_in = f"{repo_in}/{name}/{lib_name}"
    repo_q = shlex.quote(repo_in)  # the shell lines' paths quoted (a space in REPO's path)
    io = "\n".join(f"- {'input ' if t in spec.inputs else 'output'} `{t.name}` {t.triton_type} "
                   f"{t.shape_text()}" for t in spec.inputs + spec.outputs)
    batching = batching_text(spec, max_batch, wanted)
    head = [f"# Triton model `{name}` ({'TensorRT engine' if engine else 'ONNX Runtime'}, written by {PROG})", "",
            f"{batching}; {instances} instance(s), {kind}.", "", io, "",
            f"Paths below are as the server sees them: this repository at `{repo_in}`.", ""]
    if engine:
        body = [
            "TensorRT backend (NVIDIA's `nvcr.io/nvidia/tritonserver:<yy.mm>-py3` container, whose TensorRT must be",
            "the version the engine was built with; the engine is bound to its GPU model too). Load our plugins",
            "with the backend's `plugins` option:", "", "```sh", command, "```", "",
            "or preload the library (it registers its creators when loaded):", "", "```sh",
            f"LD_PRELOAD={shlex.quote(lib_in)} {shlex.join(['tritonserver', f'--model-repository={repo_in}'])}",
            "```", "",
            "In Docker, mount the repository where the commands expect it:", "", "```sh",
            f"docker run --gpus all --rm -p 8000:8000 -p 8001:8001 -p 8002:8002 -v \"$PWD\":{repo_q} \\",
            f"  nvcr.io/nvidia/tritonserver:<yy.mm>-py3 {command}", "```",
        ]
    else:
        body = [
            "ONNX Runtime backend: `config.pbtxt` registers our op library with every session",
            f"(`model_operations {{ op_library_filename: {pbtxt_string(lib_in)} }}`; the backend's ONNX Runtime "
            "must be",
            ">= 1.17, the op library's minimum C API). CPU instances serve without a GPU:", "", "```sh", command,
            "```", "", "In Docker, mount the repository where `config.pbtxt` expects the library:", "", "```sh",
            f"docker run --rm -p 8000:8000 -p 8001:8001 -p 8002:8002 -v \"$PWD\":{repo_q} \\",
            f"  nvcr.io/nvidia/tritonserver:<yy.mm>-py3 {command}", "```",
        ]
    tail = ["", f"Requests: `POST /v2/models/{name}/infer` (HTTP, port 8000) or gRPC `ModelInfer` (port 8001);",
            f"statistics (the batch sizes formed): `GET /v2/models/{name}/stats`."]
    return "\n".join(head + body + tail) + "\n"


def write_repository(model: str, repo: str, opts: RepoOptions) -> RepoResult:
    src = Path(model)
    if not src.is_file():
        raise DcnError(f"model {model!r} does not exist or is not a file")
    check_not_pytorch(src)
    if opts.instances < 1:
        raise DcnError(f"--instances {opts.instances}: must be >= 1")
    if opts.max_batch < 0 or opts.queue_delay_us < 0:
        raise DcnError("--max-batch and --max-queue-delay-us must be >= 0")
    if opts.mount is not None and not PurePosixPath(opts.mount).is_absolute():
        raise DcnError(f"--mount {opts.mount!r}: expected an absolute path (REPO's path as the server sees it, "
                       "e.g. /models; op_library_filename would be read relative to the server's directory)")
    engine = not is_onnx(src)
    spec = describe_engine(src, opts.onnx) if engine else describe_onnx(src)
    for t in spec.inputs + spec.outputs:
        t.triton_type  # noqa: B018  (raises for a dtype Triton lacks)
    name = check_name(opts.name or default_name(src))
    library = Path(trt_library(opts.plugins) if engine else ort_library(opts.ort_library))
    max_batch = spec.batch_size(opts.max_batch)
    kind = {"auto": "KIND_GPU" if engine else "KIND_CPU", "cpu": "KIND_CPU", "gpu": "KIND_GPU"}[opts.kind]

    repo_dir = Path(repo)
    if repo_dir.exists() and not repo_dir.is_dir():
        raise DcnError(f"-o {repo!r}: exists and is not a directory")
    repo_dir.mkdir(parents=True, exist_ok=True)
    repo_in = (opts.mount or str(repo_dir.resolve())).rstrip("/") or "/"
    lib_in = f"{repo_in}/{name}/{library.name}"
    command = shlex.join(["tritonserver", f"--model-repository={repo_in}"]  # printed and in the README: quoted
                         + ([f"--backend-config=tensorrt,plugins={lib_in}"] if engine else []))
    if engine:
        text = config_text(name, spec, platform="tensorrt_plan", max_batch=max_batch,
                           queue_delay_us=opts.queue_delay_us, instances=opts.instances, kind=kind)
    else:
        text = config_text(name, spec, platform="onnxruntime_onnx", max_batch=max_batch,
                           queue_delay_us=opts.queue_delay_us, instances=opts.instances, kind=kind,
                           op_library=lib_in)

    final = repo_dir / name
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=repo_dir))
    try:
        (staging / "1").mkdir()
        if engine:
            _copy(src, staging / "1" / "model.plan")
        else:
            _copy(src, staging / "1" / "model.onnx")
            for rel in onnx_external_files(src):
                data = src.parent / rel
                if not data.is_file():
                    raise DcnError(f"model {model!r}: its external data file {str(data)!r} does not exist")
                (staging / "1" / rel).parent.mkdir(parents=True, exist_ok=True)
                _copy(data, staging / "1" / rel)
        _copy(library, staging / library.name)
        _write_text(staging / "config.pbtxt", text)
        _write_text(staging / "README.md",
                    _readme(name, spec, engine, library.name, repo_in, command, max_batch, opts.instances, kind,
                            opts.max_batch))
        os.chmod(staging, 0o755)
        with uninterrupted():  # the old folder moved aside and the new one in, or (an error) the old one back
            old = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".old", dir=repo_dir)) if final.exists() else None
            try:
                if old is not None:
                    os.replace(final, old / name)
                os.replace(staging, final)
            except OSError:
                if old is not None and (old / name).exists() and not final.exists():
                    os.replace(old / name, final)
                if old is not None:
                    shutil.rmtree(old, ignore_errors=True)
                raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return RepoResult(final, final / "config.pbtxt", final / "README.md", final / library.name, spec, max_batch,
                      command, batching_text(spec, max_batch, opts.max_batch))


# --------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Write a native Triton Inference Server model repository for an engine (TensorRT backend + "
                    "our plugin library) or an ONNX model (ONNX Runtime backend + our op library), with a README "
                    "holding the tritonserver command.",
    )
    p.add_argument("model", metavar="MODEL", help="MODEL.onnx from dcn-export, or a TensorRT engine from dcn-build")
    p.add_argument("-o", "--output", required=True, metavar="REPO", help="model repository (created if needed)")
    p.add_argument("--name", help="model name (default: the file's stem, or its folder for model.onnx)")
    p.add_argument("--max-batch", type=int, default=8, help="max_batch_size (default 8; 0: no batching; "
                   "models without one batch axis, and an engine's profile, lower it)")
    p.add_argument("--max-queue-delay-us", type=int, default=1000, help="dynamic batcher delay (default 1000)")
    p.add_argument("--instances", type=int, default=1, help="instance_group count (default 1)")
    p.add_argument("--kind", choices=("auto", "cpu", "gpu"), default="auto",
                   help="instance kind (default: GPU for engines, CPU for ONNX)")
    p.add_argument("--mount", metavar="DIR", help="REPO's path as the server sees it, e.g. /models in a container "
                   "(default: REPO's absolute path here)")
    add_plugins_arg(p, " to ship")
    p.add_argument("--ort-library", metavar="PATH", help="ONNX Runtime op library to ship (default: the one built here)")
    p.add_argument("--onnx", metavar="MODEL.onnx", help="engines: the ONNX model it was built from (default: named "
                   "by the engine's .build.json)")
    add_common_args(p)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(None if argv is None else list(argv))
    opts = RepoOptions(name=args.name, max_batch=args.max_batch, queue_delay_us=args.max_queue_delay_us,
                       instances=args.instances, kind=args.kind, mount=args.mount, plugins=args.plugins,
                       ort_library=args.ort_library, onnx=args.onnx)
    return run_command(PROG, lambda: _write(args, opts), verbose=verbosity(args) >= VERBOSE)


def _write(args: argparse.Namespace, opts: RepoOptions) -> int:
    res = write_repository(args.model, args.output, opts)
    if verbosity(args) <= QUIET:
        return 0
    print(f"wrote {res.model_dir}/: config.pbtxt, 1/{'model.onnx' if is_onnx(args.model) else 'model.plan'}, "
          f"{res.library.name}, README.md (max_batch_size {res.max_batch}: {res.batching})")
    for note in res.spec.notes:
        print(note)
    print(f"serve it with: {res.command}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
