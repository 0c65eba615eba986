"""The console scripts' shim: Ctrl-C at any moment, start-up imports included, is one line, exit 130.

Imported first by the ``dcn-*`` scripts (pyproject ``[project.scripts]``: ``exporter.entry`` and
``trt_runtime.entry`` build their entry points with :func:`entry`), never by library code: while the command's modules import (torch, ONNX, ...) nothing has been written, so
SIGINT then exits at once with code 130 (only the interpreter's own start, before this
module's first line, is out of reach). Once the command runs, Ctrl-C is a
KeyboardInterrupt again, so that temporaries are removed (dcn_base.atomic) on the way out,
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


def entry(module: str, name: str):
    """A console-script function running ``module.name()`` (imported only when called) under this shim."""
    def main():
        return _run(lambda: getattr(importlib.import_module(module), name))
    return main
