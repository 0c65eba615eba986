"""An exported ONNX model on ONNX Runtime (CPU) with our dcn ops, callable like :class:`trt_runtime.Engine`.

``dcn-infer MODEL.onnx`` runs and times it the same way as an engine, so a model can be run,
timed and its outputs saved without TensorRT. A model without ``dcn`` nodes (``dcn-export
--deform-conv onnx``) runs on plain ONNX Runtime when our op library is not built.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np
import onnx

from dcn_base.errors import DcnError, one_line
from dcn_base.libraries import ort_session, session_options
from exporter.contract import DOMAIN, is_dcn_node


# ONNX Runtime's type strings -> numpy dtype names
_ORT_TYPES = {
    "tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
    "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int8)": "int8", "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
}


def _has_dcn_nodes(path: str) -> bool:

    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as err:  # noqa: BLE001
        raise DcnError(f"{path!r} is not a readable ONNX model: {one_line(err)}") from None
    return any(is_dcn_node(n, standard=False) for n in model.graph.node) or any(
        f.domain == DOMAIN for f in model.functions)


class OrtModel:
    """``OrtModel("model.onnx")(images=array) -> {"output": array}`` on the CPU."""

    def __init__(self, path: str | os.PathLike, library: Optional[str] = None, threads: Optional[int] = None):
        import onnxruntime as ort  # noqa: PLC0415  (onnxruntime: heavy, imported where a session is made)

        self.path = str(path)
        if not Path(self.path).is_file():
            raise DcnError(f"ONNX model {self.path!r} does not exist or is not a file")
        so = session_options()
        if threads:
            so.intra_op_num_threads = int(threads)
        dcn = _has_dcn_nodes(self.path)
        try:
            if dcn:
                self._sess = ort_session(self.path, sess_options=so, library=library)
            else:
                self._sess = ort.InferenceSession(self.path, sess_options=so, providers=["CPUExecutionProvider"])
        except DcnError:
            raise
        except Exception as err:  # noqa: BLE001
            raise DcnError(f"ONNX Runtime cannot load {self.path!r}: {one_line(err)}") from None
        self.input_names = [i.name for i in self._sess.get_inputs()]
        self.output_names = [o.name for o in self._sess.get_outputs()]
        self.dtypes = {i.name: _ORT_TYPES.get(i.type) for i in self._sess.get_inputs()}
        threads_used = so.intra_op_num_threads or "default"
        self.description = (f"ONNX Runtime {ort.__version__} CPU" + (" + dcn ops" if dcn else "")
                            + f", intra-op threads {threads_used}")

    def input_shape(self, name: str) -> tuple[Any, ...]:
        i = next(i for i in self._sess.get_inputs() if i.name == name)
        return tuple(d if isinstance(d, int) else -1 for d in i.shape)

    def __call__(self, feeds: Optional[Mapping[str, Any]] = None, **named) -> dict[str, Any]:
        feeds = {**(dict(feeds) if feeds else {}), **named}
        unknown = sorted(set(feeds) - set(self.input_names))
        missing = [n for n in self.input_names if n not in feeds]
        if unknown or missing:
            raise DcnError(f"model {Path(self.path).name!r} takes inputs {self.input_names}; "
                           + "; ".join(([f"missing {missing}"] if missing else [])
                                       + ([f"unknown {unknown}"] if unknown else [])))
        arrays = {}
        for n, v in feeds.items():
            a = np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v)
            want = self.dtypes.get(n)
            arrays[n] = a.astype(want) if want and a.dtype != want else a
        try:
            outs = self._sess.run(None, arrays)
        except Exception as err:  # noqa: BLE001
            raise DcnError(f"ONNX Runtime failed on {Path(self.path).name!r}: {one_line(err)}") from None
        return dict(zip(self.output_names, outs))

    def close(self) -> None:
        self._sess = None

    def __enter__(self) -> "OrtModel":
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False
