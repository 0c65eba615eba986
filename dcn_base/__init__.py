"""dcn-deploy's neutral base: what the exporter (PyTorch -> ONNX) and the runtime (ONNX -> TensorRT,
ONNX Runtime) both use, and nothing else. It imports neither ``exporter`` nor ``trt_runtime`` (and no
tensorrt, torch or onnx at import time), so either half can stand on it.

* :mod:`dcn_base.errors`     one-line user errors (``DcnError``, exit codes)
* :mod:`dcn_base.tolerance`  tolerances per dtype and the one PASS rule
* :mod:`dcn_base.atomic`     nothing half-written: temp files renamed at the end
* :mod:`dcn_base.libraries`  where the built C++ libraries are (found by path), an ONNX Runtime session with our ops
* :mod:`dcn_base.model_io`   inputs and outputs of a model on disk: Polygraphy JSON and .npz, both directions
* :mod:`dcn_base.cli`        every command's conventions: --version, verbosity, errors -> exit codes
* :mod:`dcn_base.console`    progress, stage times, tables
* :mod:`dcn_base.entry`      the console scripts' shim: Ctrl-C at any moment is one line and exit 130
"""
