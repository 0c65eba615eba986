"""dcn-export on multi-scale deformable attention models: mmcv's MultiScaleDeformableAttention (mmdet's
Deformable DETR / DINO layer) and Hugging Face DeformableDetr / RT-DETR / RT-DETRv2 (random init, tiny
backbones) are swapped to ours with their weights, written as one dcn::MultiScaleDeformableAttention
node per layer and no GridSample, with dynamic batch / queries / image size, checked on ONNX Runtime
with libdcn_ort against PyTorch; FP16 export keeps the sampling locations float32."""
from __future__ import annotations

import copy

import numpy as np
import onnx
import pytest
import torch

from exporter import export
from dcn_base.libraries import ort_session
from exporter.swap import swap_modules
from helpers import msda_models
from helpers.built_libs import require
from trt_runtime import plugins
from helpers.ci_policy import require_module

OP = "MultiScaleDeformableAttention"


@pytest.fixture(scope="module", autouse=True)
def _ort_lib():
    require(plugins.ort_library)


def _nodes(path):
    m = onnx.load(str(path))
    return [n for n in m.graph.node if n.domain == "dcn"], {n.op_type for n in m.graph.node}, m


def _mmcv_inputs(N=2, Lq=7, levels=((8, 10), (4, 5)), E=32, ref_dim=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    shapes = torch.tensor(levels)
    starts = torch.cat([shapes.new_zeros(1), (shapes[:, 0] * shapes[:, 1]).cumsum(0)[:-1]])
    S = int((shapes[:, 0] * shapes[:, 1]).sum())
    return (torch.randn(N, Lq, E, generator=g), torch.randn(N, S, E, generator=g),
            torch.rand(N, Lq, len(levels), ref_dim, generator=g), shapes, starts)


@pytest.mark.parametrize("ref_dim", [2, 4])
def test_mmcv_layer_exports_one_node_dynamic(tmp_path, ref_dim):
    require_module("mmcv.ops.multi_scale_deform_attn")
    m = msda_models.MmcvLayer().eval()
    path = tmp_path / "layer.onnx"
    res = export(m, _mmcv_inputs(ref_dim=ref_dim), path, check=True,
                 dynamic={"query": {0: "batch", 1: "queries"}, "value": {0: "batch", 1: "S"},
                          "reference_points": {0: "batch", 1: "queries"}})
    assert res.check.passed and list(res.dcn_nodes.values()) == [OP] and [s.path for s in res.swaps] == ["attn"]
    nodes, types, model = _nodes(path)
    assert len(nodes) == 1 and "GridSample" not in types
    sess = ort_session(str(path))
    for N, Lq, levels in ((1, 1, ((8, 10), (4, 5))), (3, 900, ((12, 9), (6, 5)))):
        ins = _mmcv_inputs(N, Lq, levels, ref_dim=ref_dim, seed=N)
        with torch.no_grad():
            want = m(*ins).numpy()
        got = sess.run(None, {i.name: t.numpy() for i, t in zip(model.graph.input, ins)})[0]
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_mmcv_layer_fp16_export_keeps_locations_float32(tmp_path):
    require_module("mmcv.ops.multi_scale_deform_attn")
    path = tmp_path / "fp16.onnx"
    res = export(msda_models.MmcvLayer().eval(), _mmcv_inputs(), path, fp16=True, check=True)
    assert res.check.passed
    nodes, _, model = _nodes(path)
    types = {vi.name: vi.type.tensor_type.elem_type for vi in list(model.graph.value_info) + list(model.graph.input)}
    n = nodes[0]
    assert types[n.input[0]] == onnx.TensorProto.FLOAT16 and types[n.input[3]] == onnx.TensorProto.FLOAT
    assert types[n.input[4]] == onnx.TensorProto.FLOAT16


def test_deformable_detr_exports_and_runs_on_ort(tmp_path):
    """The three attention layers as our node, checked on ORT against PyTorch float64 (a random tiny
    DeformableDetr is ill-conditioned: PyTorch float32 itself is 0.2 off float64; the check's bound is
    relative to that). Other image sizes: HF's own mask / position code bakes the traced size."""
    require_module("transformers")
    m = msda_models.Detections(msda_models.deformable_detr())
    path = tmp_path / "ddetr.onnx"
    res = export(m, (torch.randn(1, 3, 128, 160),), path, check=True, output_names=["logits", "boxes"])
    assert res.check.passed
    assert sorted(res.dcn_nodes) == ["model.model.decoder.layers.0.encoder_attn.attn",
                                     "model.model.decoder.layers.1.encoder_attn.attn",
                                     "model.model.encoder.layers.0.self_attn.attn"]
    _, types, _ = _nodes(path)
    assert "GridSample" not in types


def _rt_layer_inputs(d_model=64, N=2, Lq=30, levels=((16, 16), (8, 8), (4, 4)), seed=0):
    g = torch.Generator().manual_seed(seed)
    shapes = torch.tensor(levels)
    starts = torch.cat([shapes.new_zeros(1), (shapes[:, 0] * shapes[:, 1]).cumsum(0)[:-1]])
    S = int((shapes[:, 0] * shapes[:, 1]).sum())
    ref = torch.cat([torch.rand(N, Lq, 1, 2, generator=g), torch.rand(N, Lq, 1, 2, generator=g) * 0.5], -1)
    return dict(hidden_states=torch.randn(N, Lq, d_model, generator=g, dtype=torch.float64),
                encoder_hidden_states=torch.randn(N, S, d_model, generator=g, dtype=torch.float64),
                position_embeddings=torch.randn(N, Lq, d_model, generator=g, dtype=torch.float64),
                reference_points=ref.double(), spatial_shapes=shapes, spatial_shapes_list=[tuple(x) for x in levels],
                level_start_index=starts)


@pytest.mark.parametrize("version", [1, 2])
def test_rt_detr_layers_swap_equal_and_export_one_node_per_layer(tmp_path, version):
    require_module("transformers")
    model = msda_models.rt_detr(version)
    layer = model.model.decoder.layers[0].encoder_attn.double()
    theirs = copy.deepcopy(layer)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in theirs.parameters():
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.1)
    ours, swaps = swap_modules(copy.deepcopy(theirs))
    assert swaps
    kw = _rt_layer_inputs()
    with torch.no_grad():
        torch.testing.assert_close(ours(**kw)[0], theirs(**kw)[0], rtol=1e-10, atol=1e-10)
    path = tmp_path / "rt.onnx"
    res = export(msda_models.Detections(msda_models.rt_detr(version)), (torch.randn(1, 3, 128, 128),), path,
                 verify=False)
    assert len(res.dcn_nodes) == 2 and set(res.dcn_nodes.values()) == {OP}
    _, types, _ = _nodes(path)
    assert "GridSample" not in types


def test_rt_detr_v2_discrete_method_is_refused():
    require_module("transformers")
    from dcn_base.errors import DcnError

    model = msda_models.rt_detr(2)
    model.model.decoder.layers[0].encoder_attn.method = "discrete"
    with pytest.raises(DcnError, match=r"decoder_method is 'discrete', expected 'default'"):
        swap_modules(model)
