"""Where a plugin's enqueue spends its GPU time, per kernel (torch.profiler sees the kernels the
plugin library launches: they run on the same device and CUPTI records every one).

    kernel_split(fn, calls=5) -> {"im2col": ms per call, "gemm": ..., ...}

Kernel names are grouped by the first matching pattern of GROUPS; what matches none is "other".
Used by benchmarks/bench_plugins_cuda.py; a benchmark helper, it asserts nothing about time.
"""
from __future__ import annotations

import re

GROUPS = [
    ("im2col", r"dcn_deform_im2col_kernel"),
    ("fused", r"dcn_deform_conv_fused_(pipelined_)?kernel"),  # the one-stage or two-stage kernel
    ("fused-prep", r"dcn_fused_(nhwc|weight)_kernel"),  # (also the channels-last im2col's copies)
    ("im2col-nhwc", r"dcn_nhwc_im2col_kernel"),  # the channels-last im2col's sampling
    ("tf32-split", r"dcn_split_tf32_kernel"),  # 3xTF32: the weights' hi / lo halves
    ("bias", r"dcn_fill_bias_kernel"),
    ("roi-pool", r"dcn_deform_roi_pool"),
    ("psroi-pool", r"dcn_deform_psroi_pool"),
    ("gemm", r"gemm|nvjet|cutlass|sm\d+_xmma|Kernel2|ampere|hopper|cublas"),
]


def group_of(name: str) -> str:
    for g, pat in GROUPS:
        if re.search(pat, name, re.IGNORECASE):
            return g
    return "other"


def kernel_split(fn, calls: int = 5) -> dict[str, float]:
    """GPU time per kernel group in ms per call of fn (after one warm-up call)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()
    out: dict[str, float] = {}
    for ev in prof.key_averages():
        us = getattr(ev, "device_time_total", None)
        if us is None:
            us = getattr(ev, "cuda_time_total", 0.0)
        if not us:
            continue
        g = group_of(ev.key)
        out[g] = out.get(g, 0.0) + us / 1000.0 / calls
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def fmt_split(split: dict[str, float]) -> str:
    total = sum(split.values()) or 1.0
    return ", ".join(f"{k} {v:.3f} ({100 * v / total:.0f}%)" for k, v in split.items())
