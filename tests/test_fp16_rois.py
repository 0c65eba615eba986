"""Why RoIs stay float32 in FP16: an R-FCN head at detection size (1333x800 image, stride-16
features, 21 classes, 7x7 position-sensitive bins) with RoI corners beyond 512 / 1024 px.

float16 holds no fraction above 512 px (spacing 0.5, then 1.0 above 1024, ties to even), so a
corner like 700.3 becomes 700.5 and C-rounds to 701: the bins shift. With float32 RoIs (the
contract; our float16 ONNX Runtime kernel) the head matches the float64 reference within the
float16 row of dcn_base/tolerance.py; with the same RoIs rounded to float16 (what a float16
rois input did before) it demonstrably does not.
"""
from __future__ import annotations

import numpy as np
import torch

from helpers import user_path_models as upm
from helpers.built_libs import require
from exporter.contract import DEFORM_PSROI_POOL
from exporter.ops import deform_psroi_pool
from dcn_base.tolerance import error_ratio, tolerance
from test_ort_ops import make_model
from trt_runtime import plugins

D, G, P, S = 21, 7, 7, 4  # classes, group size, pooled size, samples per bin
H, W, STRIDE = 50, 84, 16  # features of a 1333x800 image (padded to 1344)


def _head_case():
    g = torch.Generator().manual_seed(0)
    data = torch.randn(1, D * G * G, H, W, generator=g).half()
    rois = upm.far_rois(300, 1, 800, 1333)
    trans = torch.randn(300, 2 * D, P, P, generator=g).half()
    attrs = dict(spatial_scale=1.0 / STRIDE, output_dim=D, group_size=G, pooled_size=P, part_size=P,
                 sample_per_part=S, trans_std=0.1, no_trans=0)
    return data, rois, trans, attrs


def _run_fp16_head(data, rois, trans, attrs):
    ins = {"data": data.numpy(), "rois": rois.numpy().astype(np.float32), "trans": trans.numpy()}
    sess = plugins.ort_session(make_model(DEFORM_PSROI_POOL, ins, attrs, "float16"))
    return sess.run(None, ins)[0]


def test_rfcn_head_fp16_needs_float32_rois():
    require(plugins.ort_library)
    data, rois, trans, attrs = _head_case()
    assert float(rois[:, 1::2].max()) > 1024 and float(((rois[:, 1:] > 512) & (rois[:, 1:] % 1 != 0)).float().mean()) > 0.5
    kwargs = {k: v for k, v in attrs.items() if k != "no_trans"}
    want = deform_psroi_pool(data.double(), rois.double(), trans.double(), **kwargs).numpy()
    atol, rtol = tolerance("float16")

    got = _run_fp16_head(data, rois, trans, attrs)  # float32 rois: the contract
    assert got.dtype == np.float16
    ok = error_ratio(got, want, atol, rtol)
    assert ok <= 1.0, f"float32 rois: {ok:.3g} x the float16 row"

    half_rois = rois.half().float()  # the same boxes as float16 could hold them
    bad = error_ratio(_run_fp16_head(data, half_rois, trans, attrs), want, atol, rtol)
    assert bad > 1.0, f"float16 rois: {bad:.3g} x the float16 row, expected beyond it"
    print(f"R-FCN head 1333x800, 300 RoIs, float16 data: float32 rois {ok:.3g} x row, float16 rois {bad:.3g} x row")
