"""The console scripts' shim: Ctrl-C at any moment is one line and exit 130, no traceback, nothing half-written.

Imported first by the ``dcn-*`` scripts (pyproject ``[project.scripts]``: ``exporter.entry`` and
``trt_runtime.entry`` build their entry points with :func:`entry`), never by library code. Its SIGINT
handler is installed before anything else of the command is imported, and acts by phase:

* start-up (the command's modules import: torch, ONNX, ...): nothing has been written, so it writes
  ``<tool>: interrupted`` and exits 130 at once;
* running: one KeyboardInterrupt, so that temporaries are removed on the way out (dcn_base.atomic) and
  the command's own handler (dcn_base.cli.run_command) prints ``<tool>: interrupted`` and returns 130.
  Only one: a second Ctrl-C while the command cleans up is noted, not raised (a clean-up cut short
  would leave temporaries). A library that swallows that KeyboardInterrupt (numpy's reader turns it
  into "Cannot load file containing pickled data", others into a return) cannot hide it: the command
  still ends as interrupted (:func:`interrupted`, read by dcn_base.cli.run_command; outputs are
  written atomically, so they are whole or untouched). While an import runs (a library importing
  lazily, e.g. Polygraphy's ``is_importable`` importing torch) the KeyboardInterrupt waits until the
  import is over: some libraries swallow any exception of an import (a bare ``except:``) and carry on
  with a half-imported module, which can crash the interpreter at exit;
* done (the command returned, or its final outputs were committed: dcn_base.atomic.final_commit,
  :func:`outputs_committed`): Ctrl-C is ignored while the command ends with its own code, so that
  a command marking its final commit (dcn-export, dcn-build) never ends as interrupted over outputs it
  replaced.

Out of reach: the interpreter's own start before this module's first line (Python's start-up, ``site``,
the script wrapper's ``import re``: a few milliseconds). A Ctrl-C there ends the process as Python does.
"""
import _signal  # the C module: the handler is installed before `signal` (and its enum) import

import os
import sys

_PROG = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0].startswith(("/", ".", "dcn")) else "dcn"
_STARTUP, _RUNNING, _INTERRUPTED, _DONE = range(4)
_state = {"phase": _STARTUP}
_REDELIVER_S = 0.02  # how soon a Ctrl-C that arrived during an import is delivered again


def _importing(frame) -> bool:
    """Is an import running in the main thread (importlib's frames on the stack)?"""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _redeliver_soon() -> None:
    import threading  # noqa: PLC0415  (only when a Ctrl-C came during an import)

    def again():
        if _state["phase"] == _RUNNING:
            os.kill(os.getpid(), _signal.SIGINT)

    timer = threading.Timer(_REDELIVER_S, again)
    timer.daemon = True
    timer.start()


def _on_sigint(signum, frame):  # pragma: no cover - exercised by subprocess tests (tests/test_interrupts.py)
    phase = _state["phase"]
    if phase == _STARTUP:
        os.write(2, f"{_PROG}: interrupted\n".encode())
        os._exit(130)
    if phase != _RUNNING:
        return  # interrupted already (cleaning up) or done
    if _importing(frame):
        _redeliver_soon()
        return
    _state["phase"] = _INTERRUPTED  # one KeyboardInterrupt per command
    raise KeyboardInterrupt


_signal.signal(_signal.SIGINT, _on_sigint)


def outputs_committed() -> None:
    """The command's final outputs are in place (dcn_base.atomic.final_commit): from now on Ctrl-C is
    ignored and the command ends with its own code (an interrupt already raised stays raised)."""
    if _state["phase"] == _RUNNING:
        _state["phase"] = _DONE


def interrupted() -> bool:
    """Has this shim raised its KeyboardInterrupt (whatever became of it on the way)?"""
    return _state["phase"] == _INTERRUPTED


def _run(load):
    """The command's main under the phases above; its exit code (130 when interrupted)."""
    code = 130
    try:
        main = load()
        _state["phase"] = _RUNNING
        code = main()
        if interrupted() and code != 130:  # a library swallowed the KeyboardInterrupt; the command went on
            code = 130
            print(f"{_PROG}: interrupted", file=sys.stderr, flush=True)
    except KeyboardInterrupt:  # raised at most once (the handler), outside the command's own handler
        code = 130
        print(f"{_PROG}: interrupted", file=sys.stderr, flush=True)
    finally:
        _state["phase"] = _DONE
        _signal.signal(_signal.SIGINT, _signal.SIG_IGN)  # the work is done (or undone): exit with its code
    return code


def entry(module: str, name: str):
    """A console-script function running ``module.name()`` (imported only when called) under this shim."""
    def main():
        import importlib  # noqa: PLC0415  (the command's modules import under the shim)

        return _run(lambda: getattr(importlib.import_module(module), name))
    return main
