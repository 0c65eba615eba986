// The ONNX Runtime CPU computation dcn::DCNv3 and dcn::DCNv4 share (their kernels: dcnv3_ort.cpp,
// plugins/ops/dcnv4/dcnv4_ort.cpp): attributes read by the contract's table, and the output
// threaded over output rows (n, ho) on the session's intra-op pool. Per output position and group,
// each point's taps (dcnv3_math.h: geometry, bilinear_taps, mask) are computed once and applied to
// the group's channels, which lie next to each other in NHWC (a vectorisable loop). float32 and
// float16 (float16: X widened to float once; coordinates, sampling and sums in float32, rounded once).
#pragma once

#include <algorithm>
#include <type_traits>

#include "dcnv3_math.h"
#include "ort_common.h"

namespace dcn_ort {

// Channels summed at once (a stack buffer; a group wider than this takes several passes).
constexpr int64_t kDcnChannelChunk = 256;

inline void read_dcn_attrs(const Attributes& attrs, dcn::DcnAttrs& a) {
    const auto& f = dcn::kDCNv3Fields;
    attrs.field(f[dcn::kDN_KERNEL_SHAPE], a.kernel_shape);
    attrs.field(f[dcn::kDN_STRIDES], a.strides);
    attrs.field(f[dcn::kDN_PADS], a.pads);
    attrs.field(f[dcn::kDN_DILATIONS], a.dilations);
    attrs.field(f[dcn::kDN_GROUP], a.group);
    attrs.field(f[dcn::kDN_GROUP_CHANNELS], a.group_channels);
    attrs.field(f[dcn::kDN_OFFSET_SCALE], a.offset_scale);
    attrs.field(f[dcn::kDN_REMOVE_CENTER], a.remove_center);
}

// y [N, Ho, Wo, C] from x [N, H, W, C] (TX: T, or float for float16 data, see dcn_compute) and the offsets /
// masks d's strides describe.
template <class TX, class T>
void dcn_rows(const Ort::KernelContext& ctx, const TX* x, const T* offset, const T* mask, const dcn::DcnDims& d, T* y) {
    const int64_t Cg = d.groupChannels;
    parallel_for(ctx, static_cast<size_t>(d.N * d.outH), [&](size_t row) {
        float acc[kDcnChannelChunk];
        const int64_t n = static_cast<int64_t>(row) / d.outH;
        const TX* xn = x + n * d.H * d.W * d.C;
        const int64_t ho = static_cast<int64_t>(row) % d.outH;
        for (int64_t wo = 0; wo < d.outW; ++wo) {
            const int64_t pos = static_cast<int64_t>(row) * d.outW + wo;
            for (int64_t g = 0; g < d.group; ++g) {
                const dcn::DcnSite<float, T> s = dcn::dcn_site<float>(offset, mask, d, pos, ho, wo, g);
                for (int64_t c0 = 0; c0 < Cg; c0 += kDcnChannelChunk) {
                    const int64_t cnt = std::min(kDcnChannelChunk, Cg - c0);
                    std::fill(acc, acc + cnt, 0.0f);
                    dcn::dcn_for_points(d, [&](int64_t i, int64_t j, int64_t p) {
                        dcn::dcn_accumulate<float>(xn, d.C, dcn::dcn_taps<float>(s, d, i, j, p), g * Cg + c0, cnt, acc);
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
void dcn_compute(const Ort::KernelContext& ctx, const T* x, const T* offset, const T* mask, const dcn::DcnDims& d,
                 T* y) {
    if constexpr (std::is_same<T, dcn::Half>::value) {
        const int64_t rows = d.N * d.H, row = d.W * d.C;
        Scratch<float> xf(ctx, static_cast<size_t>(rows * row));
        parallel_for(ctx, static_cast<size_t>(rows), [&](size_t r) {
            for (int64_t k = static_cast<int64_t>(r) * row; k < (static_cast<int64_t>(r) + 1) * row; ++k)
                xf.get()[k] = dcn::load<float>(x[k]);
        });
        dcn_rows(ctx, static_cast<const float*>(xf.get()), offset, mask, d, y);
    } else {
        dcn_rows(ctx, x, offset, mask, d, y);
    }
}

}  // namespace dcn_ort
