// deform_conv2d_launch.h: the thread-index -> output-coordinate mapping and the per-thread bodies
// of dcn::DeformConv2d's CUDA kernels (deform_conv2d_kernels.cu), as __host__ __device__ code, run
// on the host by deform_conv2d_host_kernels.cpp (launch rule: plugins/cuda/dcn_launch.h).
//
// Layouts (row-major, contiguous):
//   columns  col[nl][c][k][p]  nl in [0, nb) (image n0 + nl), c in [0, C), k = i*kW + j,
//            p = ho*outW + wo;  i.e. per image a [C*kH*kW, outH*outW] matrix whose row
//            c*kH*kW + k matches W[m] flattened as [C/group, kH, kW] inside m's group.
//   bias     Y[n][m][p] = B[m]
#pragma once

#include "dcn_launch.h"  // plugins/cuda
#include "deform_conv2d_math.h"

#include <cstdint>

namespace dcn {
namespace launch {

// ---- DeformConv2d: deformable im2col -----------------------------------------------

struct Im2colCoord {
    int64_t n;  // image inside the chunk
    int64_t c, k, i, j, ho, wo;
};

// idx = (((n*C + c)*kH*kW + k)*outH + ho)*outW + wo, k = i*kW + j.
template <class I>
DCN_HD Im2colCoord im2col_coord(I idx, I C, I kH, I kW, I outH, I outW) {
    Im2colCoord q;
    I t = idx;
    q.wo = t % outW;
    t /= outW;
    q.ho = t % outH;
    t /= outH;
    q.j = t % kW;
    t /= kW;
    q.i = t % kH;
    t /= kH;
    q.c = t % C;
    q.n = t / C;
    q.k = q.i * kW + q.j;
    return q;
}

DCN_HD int64_t im2col_total(const DeformConvDims& d, int64_t nb) {
    return nb * d.C * d.kH * d.kW * d.outH * d.outW;
}

// One thread of the im2col kernel: columns of images [n0, n0 + nb) into col.
template <class T, class I>
DCN_HD void deform_im2col_thread(I tid, I nthreads, const T* X, const T* offset, const T* mask,
                                 const DeformConvDims& d, int64_t n0, int64_t nb, T* col) {
    using Acc = typename AccOf<T>::type;
    const I total = static_cast<I>(im2col_total(d, nb));
    const I C = static_cast<I>(d.C), kH = static_cast<I>(d.kH), kW = static_cast<I>(d.kW);
    const I oH = static_cast<I>(d.outH), oW = static_cast<I>(d.outW);
    for (I idx = tid; idx < total; idx += nthreads) {
        const Im2colCoord q = im2col_coord<I>(idx, C, kH, kW, oH, oW);
        col[idx] = store<T>(deform_im2col_element<Acc>(X, offset, mask, d, n0 + q.n, q.c, q.i, q.j, q.ho, q.wo));
    }
}

// ---- DeformConv2d: bias broadcast (the GEMM then accumulates with beta = 1) ----------

DCN_HD int64_t bias_total(const DeformConvDims& d) { return d.N * d.M * d.outH * d.outW; }

template <class T, class I>
DCN_HD void fill_bias_thread(I tid, I nthreads, const T* B, const DeformConvDims& d, T* Y) {
    const I total = static_cast<I>(bias_total(d));
    const I M = static_cast<I>(d.M), L = static_cast<I>(d.outH * d.outW);
    for (I idx = tid; idx < total; idx += nthreads) Y[idx] = B[(idx / L) % M];
}

}  // namespace launch
}  // namespace dcn
