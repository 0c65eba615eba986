"""``dcn-plugins``: print the paths of the built libraries.

The locator and the ONNX Runtime session factory live in :mod:`dcn_base.libraries` (shared with
``dcn-export --check``); their names are re-exported here for the runtime's users.
"""
from __future__ import annotations

import argparse
import sys
from typing import Iterable, Optional

from dcn_base.cli import VERBOSE, add_common_args, run_command, verbosity
from dcn_base.libraries import (HOST_TESTS, ORT, REPO, SETUP_HINT, TRT, TRT_BUILD_HINT, Library,  # noqa: F401
                                LibraryNotBuiltError, host_test_library, locate, ort_library, ort_session,
                                trt_library)


def main(argv: Optional[Iterable[str]] = None) -> int:
    """``dcn-plugins [--ort] [--trt]``: print the libraries' paths (both by default)."""
    parser = argparse.ArgumentParser(
        prog="dcn-plugins",
        description="Print the paths of the built dcn libraries: the ONNX Runtime op library "
        "(--ort) and the TensorRT plugin library (--trt); both when neither is given. "
        "Exit 0 when every one asked for is found, else 1 with one line per missing library on stderr.",
    )
    parser.add_argument("--ort", action="store_true", help="the ONNX Runtime op library (libdcn_ort)")
    parser.add_argument("--trt", action="store_true", help="the TensorRT plugin library (libdcn_trt_plugins)")

    add_common_args(parser)
    args = parser.parse_args(None if argv is None else list(argv))
    return run_command("dcn-plugins", lambda: _print_paths(args), verbose=verbosity(args) >= VERBOSE)


def _print_paths(args) -> int:
    wanted = [lib for lib, on in ((ORT, args.ort), (TRT, args.trt)) if on] or [ORT, TRT]
    missing = 0
    for lib in wanted:
        try:
            path = locate(lib)
            if verbosity(args) >= 0:
                print(path)
        except LibraryNotBuiltError as err:
            print(f"dcn-plugins: {err}", file=sys.stderr)
            missing += 1
    return 1 if missing else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
