"""Console-script entry points: Ctrl-C at any moment, start-up imports included, is one line, exit 130.

Imported first by the ``dcn-*`` scripts (pyproject ``[project.scripts]``), never by library
code: while the command's modules import (torch, ONNX, ...) nothing has been written, so
SIGINT then exits at once with code 130 (only the interpreter's own start, before this
module's first line, is out of reach). Once the command runs, Ctrl-C is a
KeyboardInterrupt again, so that temporaries are removed (exporter.atomic) on the way out,
and the command's own handler prints ``<tool>: interrupted`` and returns 130.
"""
import importlib
import os
import signal
import sys

_PROG = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0].startswith(("/", ".", "dcn")) else "dcn"


def _startup_interrupt(signum, frame):  # pragma: no cover - exercised by a subprocess test
    os.write(2, f"{_PROG}: interrupted\n".encode())
    os._exit(130)


signal.signal(signal.SIGINT, _startup_interrupt)


def _run(load):
    try:
        main = load()
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        code = main()
    except KeyboardInterrupt:
        code = 130
        print(f"{_PROG}: interrupted", file=sys.stderr)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the work is done (or undone): exit with its code
    return code


def _entry(module: str, name: str):
    def entry():
        return _run(lambda: getattr(importlib.import_module(module), name))
    return entry


export_main = _entry("exporter.cli", "main")
build_main = _entry("trt_runtime.cli", "build_main")
infer_main = _entry("trt_runtime.cli", "infer_main")
compare_main = _entry("trt_runtime.cli", "compare_main")
plugins_main = _entry("trt_runtime.plugins", "main")
serve_main = _entry("trt_runtime.serve", "main")
triton_repo_main = _entry("trt_runtime.triton_repo", "main")
