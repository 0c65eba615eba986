// dcn_launch.h: launch geometry, the thread-index -> output-coordinate mapping and the
// per-thread bodies of the dcn CUDA kernels, as __host__ __device__ code.
//
// The __global__ kernels in *.cu are one-line wrappers that call the *_thread functions
// below with (blockIdx.x * blockDim.x + threadIdx.x, gridDim.x * blockDim.x); the host
// test library (plugins/tests/host_kernels.cpp) calls the very same functions for every
// (block, thread) of the same grid, so the kernels' indexing and arithmetic are tested
// on the host. The math itself is plugins/common/dcn_math.h (never copied here).
// No TensorRT, no CUDA runtime API: this header compiles with g++ and nvcc.
//
// Layouts (row-major, contiguous):
//   columns  col[nl][c][k][p]  nl in [0, nb) (image n0 + nl), c in [0, C), k = i*kW + j,
//            p = ho*outW + wo;  i.e. per image a [C*kH*kW, outH*outW] matrix whose row
//            c*kH*kW + k matches W[m] flattened as [C/group, kH, kW] inside m's group.
//   bias     Y[n][m][p] = B[m]
//   pooling  Y[r][ctop][ph][pw]
#pragma once

#include "dcn_math.h"  // plugins/common

#include <cstdint>

namespace dcn {
namespace launch {

// Threads per block and the grid cap of every dcn kernel (grid-stride loops beyond it).
// kMinBlocksPerSM goes to __launch_bounds__: it caps registers at 64 per thread (65536 /
// (256 * 4)), which keeps ptxas for sm_120/121 from choosing 40 registers and spilling
// in the PS-RoI kernel (seen with nvcc 13.0 without it).
constexpr int kThreads = 256;
constexpr int kMinBlocksPerSM = 4;
constexpr int64_t kMaxBlocks = int64_t(1) << 20;

DCN_HD int64_t blocks_for(int64_t total) {
    const int64_t b = (total + kThreads - 1) / kThreads;
    return b < 1 ? 1 : (b > kMaxBlocks ? kMaxBlocks : b);
}

// True when a grid-stride loop over `total` items with `blocks` blocks never leaves
// int32 (idx + stride <= INT32_MAX), so the kernel may index with int32_t.
DCN_HD bool fits_int32(int64_t total, int64_t blocks) {
    return total + blocks * int64_t(kThreads) <= int64_t(INT32_MAX);
}

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
