"""The ``dcn-export`` console script (pyproject ``[project.scripts]``): ``exporter.cli.main`` under the
Ctrl-C shim of :mod:`dcn_base.entry` (imported first, before torch and ONNX)."""
from dcn_base.entry import entry

main = entry("exporter.cli", "main")
