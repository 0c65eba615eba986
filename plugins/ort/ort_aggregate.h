// ort_aggregate.h: the ONNX Runtime CPU computation the channels-last deformable aggregation ops share
// (their kernels: plugins/ops/<op>/<op>_ort.cpp): attributes read by their shared table
// (dcn_aggregate_fields.h), and the output threaded over output rows (n, ho) on the session's intra-op
// pool. Per output position and group, each point's taps (dcn_aggregate.h: geometry, bilinear_taps,
// mask) are computed once and applied to the group's channels, which lie next to each other in NHWC
// (a vectorisable loop). float32 and float16 (float16: X widened to float once; coordinates, sampling
// and sums in float32, rounded once). Names no op.
#pragma once

#include <algorithm>
#include <type_traits>

#include "dcn_aggregate.h"         // plugins/common
#include "dcn_aggregate_fields.h"  // plugins/common
#include "ort_common.h"

namespace dcn_ort {

// Channels summed at once (a stack buffer; a group wider than this takes several passes).
constexpr int64_t kAggregateChannelChunk = 256;

inline void read_aggregate_attrs(const Attributes& attrs, dcn::AggregateAttrs& a) {
    const auto& f = dcn::kAggregateFields;
    attrs.field(f[dcn::kAG_KERNEL_SHAPE], a.kernel_shape);
    attrs.field(f[dcn::kAG_STRIDES], a.strides);
    attrs.field(f[dcn::kAG_PADS], a.pads);
    attrs.field(f[dcn::kAG_DILATIONS], a.dilations);
    attrs.field(f[dcn::kAG_GROUP], a.group);
    attrs.field(f[dcn::kAG_GROUP_CHANNELS], a.group_channels);
    attrs.field(f[dcn::kAG_OFFSET_SCALE], a.offset_scale);
    attrs.field(f[dcn::kAG_REMOVE_CENTER], a.remove_center);
}

// y [N, Ho, Wo, C] from x [N, H, W, C] (TX: T, or float for float16 data, see aggregate_compute) and the offsets /
// masks d's strides describe.
template <class TX, class T>
void aggregate_rows(const Ort::KernelContext& ctx, const TX* x, const T* offset, const T* mask, const dcn::AggregateDims& d, T* y) {
    const int64_t Cg = d.groupChannels;
    parallel_for(ctx, static_cast<size_t>(d.N * d.outH), double(d.outW * d.C * d.P), [&](size_t row) {
        float acc[kAggregateChannelChunk];
        const int64_t n = static_cast<int64_t>(row) / d.outH;
        const TX* xn = x + n * d.H * d.W * d.C;
        const int64_t ho = static_cast<int64_t>(row) % d.outH;
        for (int64_t wo = 0; wo < d.outW; ++wo) {
            const int64_t pos = static_cast<int64_t>(row) * d.outW + wo;
            for (int64_t g = 0; g < d.group; ++g) {
                const dcn::AggregateSite<float, T> s = dcn::aggregate_site<float>(offset, mask, d, pos, ho, wo, g);
                for (int64_t c0 = 0; c0 < Cg; c0 += kAggregateChannelChunk) {
                    const int64_t cnt = std::min(kAggregateChannelChunk, Cg - c0);
                    std::fill(acc, acc + cnt, 0.0f);
                    dcn::aggregate_for_points(d, [&](int64_t i, int64_t j, int64_t p) {
                        dcn::aggregate_accumulate<float>(xn, d.C, dcn::aggregate_taps<float>(s, d, i, j, p), g * Cg + c0, cnt, acc);
                    });
                    T* dst = y + pos * d.C + g * Cg + c0;
                    for (int64_t v = 0; v < cnt; ++v) dst[v] = dcn::store<T>(acc[v]);
                }
            }
        }
    });
}

// float16: X is read about 4*P times per element, so it is widened to float once (a scratch copy) and
// sampled from there; the same values and sums as sampling the halves directly.
template <class T>
void aggregate_compute(const Ort::KernelContext& ctx, const T* x, const T* offset, const T* mask, const dcn::AggregateDims& d,
                 T* y) {
    if constexpr (std::is_same<T, dcn::Half>::value) {
        const int64_t rows = d.N * d.H, row = d.W * d.C;
        Scratch<float> xf(ctx, static_cast<size_t>(rows * row));
        parallel_for(ctx, static_cast<size_t>(rows), double(row), [&](size_t r) {
            for (int64_t k = static_cast<int64_t>(r) * row; k < (static_cast<int64_t>(r) + 1) * row; ++k)
                xf.get()[k] = dcn::load<float>(x[k]);
        });
        aggregate_rows(ctx, static_cast<const float*>(xf.get()), offset, mask, d, y);
    } else {
        aggregate_rows(ctx, x, offset, mask, d, y);
    }
}

}  // namespace dcn_ort
