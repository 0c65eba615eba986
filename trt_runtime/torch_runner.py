"""dcn-compare's PyTorch side: a Polygraphy runner over an ``nn.Module`` (float64 reference, or the
target's precision for PyTorch's own error), and loading the REFERENCE model file."""
from __future__ import annotations

import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from polygraphy.backend.base import BaseRunner
from polygraphy.common import TensorMetadata

from dcn_base.errors import DcnError, one_line



def _flatten_outputs(out) -> tuple[list[Any], Optional[list[str]]]:
    """Tensors of a forward() result in order, and names when it is a dict."""
    import torch  # noqa: PLC0415

    if isinstance(out, torch.Tensor):
        return [out], None
    if isinstance(out, Mapping):
        tensors, names = [], []
        for k, v in out.items():
            sub, sub_names = _flatten_outputs(v)
            tensors += sub
            names += [str(k)] if len(sub) == 1 and sub_names is None else (
                [f"{k}.{n}" for n in sub_names] if sub_names else [f"{k}.{i}" for i in range(len(sub))])
        return tensors, names
    if isinstance(out, (list, tuple)):
        tensors: list[Any] = []
        for v in out:
            tensors += _flatten_outputs(v)[0]
        return tensors, None
    return [], None


def _module_call(model, method: str, *args):
    """model.<method>(*args); modules of a torch.export program (.pt2) refuse eval() / to() and are
    already in inference form: they run as they are."""
    try:
        return getattr(model, method)(*args)
    except (NotImplementedError, RuntimeError) as err:
        if "not supported" not in str(err):
            raise
        return model


class TorchRunner(BaseRunner):
    """A device-agnostic Polygraphy runner for a ``torch.nn.Module``.

    Unlike Polygraphy's ``PytRunner`` it never calls ``.cuda()``: the model runs on ``device``
    ("cpu" by default). Inputs are fed positionally in ``input_metadata`` order; floating outputs
    come back as float32 numpy arrays named ``output_names`` (or the dict keys / output_<i>).
    """

    def __init__(self, model, input_metadata, output_names: Optional[Sequence[str]] = None,
                 device: str = "cpu", dtype=None, name: str = "pytorch", keep_float32: Sequence[str] = ()):
        """
        Args:
            model: an nn.Module or a callable returning one.
            input_metadata: a polygraphy TensorMetadata (names in forward() order; dtype; shape,
                None for dynamic dims), or a list of (name, numpy dtype, shape).
            output_names: names for the flattened outputs (e.g. the ONNX graph's outputs).
            device: torch device the model runs on.
            dtype: torch dtype for the model and its floating inputs (None: keep the model's); the
                model is then copied, and run in its own dtype where it refuses this one.
            keep_float32: inputs that stay float32 whatever ``dtype`` (RoIs in a float16 run).
        """
        super().__init__(name=name, prefix="pytorch-runner")
        if not isinstance(input_metadata, TensorMetadata):
            meta = TensorMetadata()
            for n, dt, shape in input_metadata:
                meta.add(n, dtype=dt, shape=shape)
            input_metadata = meta
        self._model = model
        self.input_metadata = input_metadata
        self.output_names = list(output_names) if output_names else None
        self.device = device
        self.dtype = dtype
        self.keep_float32 = set(keep_float32)

    def activate_impl(self):
        import copy  # noqa: PLC0415

        import torch  # noqa: PLC0415

        model = self._model() if callable(self._model) and not isinstance(self._model, torch.nn.Module) \
            else self._model
        self._as_given = model  # where the model refuses ``dtype`` when run: it runs as given
        if self.dtype is not None and isinstance(model, torch.nn.Module):
            model = copy.deepcopy(model)  # the caller's model keeps its dtype
        model = _module_call(model, "to", self.device)
        if self.dtype is not None:
            from exporter.dtype_mode import cast_constants  # noqa: PLC0415

            model = _module_call(model, "to", self.dtype)
            if isinstance(model, torch.nn.Module):
                cast_constants(model, self.dtype)
        self.model = _module_call(model, "eval")
        params = [p for p in self.model.parameters() if p.is_floating_point()]
        own = params[0].dtype if params else torch.float32
        self._float_dtype = self.dtype if self.dtype is not None and (not params or own == self.dtype) else own

    def get_input_metadata_impl(self):
        return self.input_metadata

    def infer_impl(self, feed_dict):
        import numpy as np  # noqa: PLC0415
        import torch  # noqa: PLC0415

        inputs = []
        for name in self.input_metadata.keys():
            t = torch.as_tensor(np.ascontiguousarray(feed_dict[name]))
            if t.is_floating_point():
                t = t.to(torch.float32 if name in self.keep_float32 else self._float_dtype)
            inputs.append(t.to(self.device))
        from exporter.dtype_mode import LikeData  # noqa: PLC0415

        start = time.perf_counter()
        try:
            with torch.inference_mode(), LikeData():  # traced graphs keep float32 constants of the dcn ops
                out = self.model(*inputs)
        except Exception:  # noqa: BLE001
            if self.dtype is None or self.model is self._as_given:
                raise
            # e.g. a model with float32 arithmetic of its own cannot run in float64: run it as given
            self.model = _module_call(_module_call(self._as_given, "to", self.device), "eval")
            params = [p for p in self.model.parameters() if p.is_floating_point()]
            self._float_dtype = params[0].dtype if params else torch.float32
            return self.infer_impl(feed_dict)
        tensors, dict_names = _flatten_outputs(out)
        if self.device != "cpu" and torch.cuda.is_available():
            torch.cuda.synchronize()
        self.inference_time = time.perf_counter() - start
        names = self.output_names or dict_names or [f"output_{i}" for i in range(len(tensors))]
        if len(tensors) != len(names):
            raise DcnError(
                f"the PyTorch model returned {len(tensors)} tensor(s), but the target has "
                f"{len(names)} output(s) {names}"
            )
        result = OrderedDict()
        for n, t in zip(names, tensors):
            t = t.detach().cpu()
            if t.is_floating_point():
                t = t.float()
            result[n] = np.ascontiguousarray(t.numpy())  # Polygraphy views its outputs: keep them contiguous
        return result

    def deactivate_impl(self):
        del self.model
        del self._as_given
        del self._float_dtype


def load_torch_model(reference: str, factory: Optional[str], trust_pickle: bool):
    if not Path(reference).exists():
        raise DcnError(f"REFERENCE {reference!r} does not exist")
    try:
        from exporter.loading import load_model  # noqa: PLC0415
    except ImportError as err:
        raise DcnError(f"cannot load PyTorch models: exporter.loading is not available ({one_line(err)})") from None
    return load_model(reference, factory=factory, trust_pickle=trust_pickle)
