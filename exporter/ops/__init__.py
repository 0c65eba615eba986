"""The op registry of the Python side: one line per op, the name of its folder (snake case), in the
contract's order (plugins/ops/ops.list is the same list for C++; tests/test_layout.py checks both).

Everything about one op lives in its folder ``exporter/ops/<op>/``:

* ``spec.py``       its contract entry ``SPEC`` (exporter.contract.OpSpec): inputs with dtype facts,
                    attributes, limits, the torch op, ONNX's equivalent
* ``reference.py``  the float64 PyTorch reference, written from the contract (the truth)
* ``custom.py``     the ``torch.library`` op, its fake kernel and autograd
* ``modules.py``    the nn.Modules users put in models
* ``swap.py``       ``RULES``: third-party modules (mmcv, detectron2) swapped for ours at export
* ``onnx.py``       ONNX translation, schema shape inference, reference-evaluator node, post-processing

Beside the folders, what several ops share (naming none of them): ``common.py`` (argument forms, the
contract's bilinear sampling), ``aggregation_spec.py`` / ``aggregation.py`` / ``aggregation_onnx.py``
(the channels-last deformable aggregation ops: attribute set, sampling, torch-op plumbing, shape
inference). ``_package.py`` makes a folder an op package.

Generic steps (export, schemas, FP16 conversion, limits, verification, swap) ask the ops through
:func:`parts` and the entries through :func:`exporter.contract.specs`; nothing outside a folder
names its op. Importing this package imports no torch: the folders load when asked for.

Public names (lazy): ``exporter.ops.<Name>`` for every name an op's package lists in ``PUBLIC``
(``exporter.ops.DeformConv2dPack``, ``exporter.ops.deform_conv2d_op`` ...); ``exporter.ops.<op>`` is
the op's package, which is also callable as its float64 reference function.
"""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

REGISTRY = (
    "deform_conv2d",
    "deform_psroi_pool",
    "deform_roi_pool",
    "dcnv3",
    "dcnv4",
)


def package(name: str) -> ModuleType:
    """The op's package ``exporter.ops.<name>``."""
    return importlib.import_module(f"{__name__}.{name}")


def part(name: str, kind: str) -> ModuleType:
    """One file of an op's folder: ``part("deform_conv2d", "onnx")`` is ``exporter.ops.deform_conv2d.onnx``."""
    return importlib.import_module(f"{__name__}.{name}.{kind}")


def parts(kind: str) -> list[ModuleType]:
    """That file of every registered op, in the registry's order."""
    return [part(name, kind) for name in REGISTRY]


def register_torch_ops() -> None:
    """Register every op's ``torch.ops.dcn.*`` custom op (each folder's custom.py)."""
    parts("custom")


def __getattr__(name: str) -> Any:
    if name in REGISTRY:
        return package(name)
    for op in REGISTRY:
        pkg = package(op)
        if name in pkg.PUBLIC:
            return getattr(pkg, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(REGISTRY) | {n for op in REGISTRY for n in package(op).PUBLIC})
