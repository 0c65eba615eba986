// deform_psroi_pool_launch.h: the thread-index -> output-coordinate mapping and the per-thread body
// of dcn::DeformPSROIPool's CUDA kernel (deform_psroi_pool_kernels.cu), as __host__ __device__ code,
// run on the host by deform_psroi_pool_host_kernels.cpp (launch rule: plugins/cuda/dcn_launch.h).
//
// Layout: Y[r][ctop][ph][pw] (row-major, contiguous).
#pragma once

#include "dcn_launch.h"  // plugins/cuda
#include "deform_psroi_pool_math.h"

#include <cstdint>

namespace dcn {
namespace launch {

// ---- DeformPSROIPool ----------------------------------------------------------------

struct PoolCoord {
    int64_t r, ctop, ph, pw;
};

// idx = ((r*output_dim + ctop)*P + ph)*P + pw.
template <class I>
DCN_HD PoolCoord psroi_coord(I idx, I output_dim, I P) {
    PoolCoord q;
    I t = idx;
    q.pw = t % P;
    t /= P;
    q.ph = t % P;
    t /= P;
    q.ctop = t % output_dim;
    q.r = t / output_dim;
    return q;
}

DCN_HD int64_t psroi_total(const DeformPSROIPoolDims& d) {
    return d.R * d.output_dim * d.pooled_size * d.pooled_size;
}

// H and W at most this for int32 indices (exact in float: floor(h) <= H - 1 converts exactly).
constexpr int64_t kPSRoIPoolMaxNarrowSide = int64_t(1) << 24;

// int32 indices in the element too (besides the grid-stride loop, launch_grid_stride_when's
// fits_int32): the data (N*C*H*W), the RoIs (R*5) and trans (R*num_classes*2*part_size^2) offsets.
DCN_HD bool fits_psroi_int32(const DeformPSROIPoolDims& d) {
    const int64_t most = int64_t(INT32_MAX);
    return d.N * d.C * d.H * d.W <= most && d.R * 5 <= most &&
           d.R * d.num_classes * 2 * d.part_size * d.part_size <= most && d.H <= kPSRoIPoolMaxNarrowSide &&
           d.W <= kPSRoIPoolMaxNarrowSide;
}

// rois: float32 (TR = float) for float32 and float16 data; TR = T for the host's float64 tests.
// I = int32_t only where fits_int32(total, blocks) and fits_psroi_int32(d) hold.
template <class T, class I, class TR>
DCN_HD void deform_psroi_pool_thread(I tid, I nthreads, const T* data, const TR* rois, const T* trans,
                                     const DeformPSROIPoolDims& d, T* Y) {
    using Acc = typename AccOf<T>::type;
    const I total = static_cast<I>(psroi_total(d));
    const I od = static_cast<I>(d.output_dim), P = static_cast<I>(d.pooled_size);
    const T* tr = d.no_trans ? nullptr : trans;
    for (I idx = tid; idx < total; idx += nthreads) {
        const PoolCoord q = psroi_coord<I>(idx, od, P);
        Y[idx] = store<T>(deform_psroi_pool_element<Acc, T, TR, I>(data, rois, tr, d, static_cast<I>(q.r),
                                                                   static_cast<I>(q.ctop), static_cast<I>(q.ph),
                                                                   static_cast<I>(q.pw)));
    }
}

}  // namespace launch
}  // namespace dcn
