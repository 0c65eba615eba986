"""GPU + TensorRT: the DeformRoIPool plugin in a built engine (FP32 / FP16 data, FP32 RoIs, dynamic RoI
count, serialization), against the float64 reference. Skips with the missing piece named (no GPU /
TensorRT in CI); the helpers are tests/test_trt_plugins_gpu.py's."""
from __future__ import annotations

import pytest
import torch

from exporter.ops.deform_roi_pool.spec import SPEC as DEFORM_ROI_POOL
from exporter.ops import deform_roi_pool
from test_trt_plugins_gpu import (TORCH_DTYPE, assert_close, build, creator, deserialize, env,  # noqa: F401
                                  field_collection, layer_infos, new_network, our_plugin_layers, rounded, run,
                                  trt_dtype)

pytestmark = [pytest.mark.gpu, pytest.mark.trt]

ROI_POOL = dict(pooled_height=3, pooled_width=2, spatial_scale=0.25, sampling_ratio=0, gamma=0.1)
C = 5


def roi_pool_network(env, dtype: str, builder):  # noqa: F811
    trt, p = env.trt, ROI_POOL
    net = new_network(env, builder)
    data = net.add_input("data", trt_dtype(env, dtype), (-1, C, -1, -1))
    rois = net.add_input("rois", trt.float32, (-1, 5))  # coordinates: FP32 always
    offset = net.add_input("offset", trt_dtype(env, dtype), (-1, 2, p["pooled_height"], p["pooled_width"]))
    fields = field_collection(env, DEFORM_ROI_POOL, p)
    plugin = creator(env, "DeformRoIPool").create_plugin("roi_head.pool", fields, trt.TensorRTPhase.BUILD)
    assert plugin is not None, "\n".join(env.logger.messages[-10:])
    layer = net.add_plugin_v3([data, rois, offset], [], plugin)
    layer.name = "roi_head.pool"
    layer.get_output(0).name = "Y"
    net.mark_output(layer.get_output(0))
    o = (2, p["pooled_height"], p["pooled_width"])
    profile = {"data": ((1, C, 8, 8), (2, C, 20, 24), (3, C, 40, 40)),
               "rois": ((0, 5), (50, 5), (300, 5)),
               "offset": ((0,) + o, (50,) + o, (300,) + o)}
    return net, profile


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_deform_roi_pool_plugin_dynamic_rois_and_serialization(env, dtype):  # noqa: F811
    trt, p = env.trt, ROI_POOL
    builder = trt.Builder(env.logger)
    net, profile = roi_pool_network(env, dtype, builder)
    blob = build(env, builder, net, profile)
    _, engine = deserialize(env, blob)
    assert our_plugin_layers(layer_infos(env, engine), "DeformRoIPool"), layer_infos(env, engine)
    g = torch.Generator().manual_seed(1)
    results = []
    for n, h, w, R in [(2, 20, 24, 50), (1, 8, 8, 1), (3, 40, 40, 300), (2, 13, 31, 7), (1, 9, 9, 0)]:
        data = torch.randn(n, C, h, w, generator=g, dtype=torch.float64)
        xy = torch.rand(R, 4, generator=g, dtype=torch.float64) * torch.tensor([w, h, w, h]) * 6 - 20  # some off the map
        rois = torch.cat([torch.randint(0, n, (R, 1), generator=g).double(), xy], dim=1).float()
        offset = torch.randn(R, 2, p["pooled_height"], p["pooled_width"], generator=g, dtype=torch.float64)
        feeds = {"data": data.to(TORCH_DTYPE[dtype]), "rois": rois, "offset": offset.to(TORCH_DTYPE[dtype])}
        got = run(env, engine, feeds)["Y"]
        want = deform_roi_pool(rounded(data, dtype), rois.double(), rounded(offset, dtype), **p)
        assert tuple(got.shape) == (R, C, p["pooled_height"], p["pooled_width"])
        assert_close(got, want, dtype, f"DeformRoIPool {dtype} N={n} {h}x{w} R={R}")
        results.append((feeds, got))
    _, engine2 = deserialize(env, bytes(engine.serialize()))
    for feeds, got in results:
        torch.testing.assert_close(run(env, engine2, feeds)["Y"], got, atol=0, rtol=0)
