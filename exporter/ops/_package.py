"""What makes a folder ``exporter/ops/<op>/`` an op package: its public names, loaded when first used
(so that reading an op's ``spec.py`` imports no torch), and the package callable as the op's float64
reference function (``exporter.ops.<op>(...)``, the documented entry point, with the same name as
the folder)."""
from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import Any


class OpPackage(ModuleType):
    """An op's package: ``PUBLIC`` maps each public name to the file (module) defining it;
    ``REFERENCE`` names the reference function the package stands for when called."""

    PUBLIC: dict[str, str]
    REFERENCE: str

    def __getattr__(self, name: str) -> Any:
        where = self.__dict__.get("PUBLIC", {}).get(name)
        if where is None:
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{self.__name__}.{where}"), name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(self, self.REFERENCE)(*args, **kwargs)


def op_package(module_name: str) -> None:
    """Make the module ``module_name`` (an op's ``__init__``, after it set PUBLIC and REFERENCE) an OpPackage."""
    sys.modules[module_name].__class__ = OpPackage
