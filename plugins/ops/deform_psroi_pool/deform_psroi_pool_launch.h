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

// rois: float32 (TR = float) for float32 and float16 data; TR = T for the host's float64 tests.
template <class T, class I, class TR>
DCN_HD void deform_psroi_pool_thread(I tid, I nthreads, const T* data, const TR* rois, const T* trans,
                                     const DeformPSROIPoolDims& d, T* Y) {
    using Acc = typename AccOf<T>::type;
    const I total = static_cast<I>(psroi_total(d));
    const I od = static_cast<I>(d.output_dim), P = static_cast<I>(d.pooled_size);
    const T* tr = d.no_trans ? nullptr : trans;
    for (I idx = tid; idx < total; idx += nthreads) {
        const PoolCoord q = psroi_coord<I>(idx, od, P);
        Y[idx] = store<T>(deform_psroi_pool_element<Acc>(data, rois, tr, d, q.r, q.ctop, q.ph, q.pw));
    }
}

}  // namespace launch
}  // namespace dcn
