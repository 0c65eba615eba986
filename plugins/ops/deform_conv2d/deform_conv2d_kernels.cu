// DeformConv2d kernels: deformable im2col (coordinates once per item, see deform_conv2d_launch.h) and the bias broadcast.
// Thin wrappers around deform_conv2d_launch.h (index mapping + per-thread body, tested on the
// host) and deform_conv2d_math.h (the math). The GEMM is cuBLAS, called by the TensorRT plugin.
#include "dcn_launch.cuh"  // plugins/cuda
#include "deform_conv2d_kernels.h"
#include "deform_conv2d_launch.h"

namespace dcn {
namespace cuda {
namespace {

template <class T, class I, int V>
__global__ void __launch_bounds__(launch::kThreads, launch::im2col_min_blocks_per_sm<T, I>())
    dcn_deform_im2col_kernel(const T* __restrict__ X, const T* __restrict__ offset, const T* __restrict__ mask,
                             const DeformConvDims d, int64_t n0, const launch::Im2colPlan pl, T* __restrict__ col,
                             T* __restrict__ colLo) {
    I tid, nthreads;
    thread_range(tid, nthreads);
    launch::deform_im2col_thread<T, I, V>(tid, nthreads, X, offset, mask, d, n0, pl, col, colLo);
}

template <class T, int V>
cudaError_t im2col_v(const T* X, const T* offset, const T* mask, const DeformConvDims& d, int64_t n0,
                     const launch::Im2colPlan& pl, T* col, T* colLo, cudaStream_t stream) {
    const bool narrow = launch::fits_im2col_int32(pl, launch::blocks_for(pl.total), d);
    return launch_grid_stride_when(narrow, pl.total, stream, dcn_deform_im2col_kernel<T, int32_t, V>,
                                   dcn_deform_im2col_kernel<T, int64_t, V>, X, offset, mask, d, n0, pl, col, colLo);
}

template <class T, class I>
__global__ void __launch_bounds__(launch::kThreads, launch::kMinBlocksPerSM)
    dcn_fill_bias_kernel(const T* __restrict__ B, int64_t M, int64_t rows, int64_t ld, T* __restrict__ Y) {
    I tid, nthreads;
    thread_range(tid, nthreads);
    launch::fill_bias_thread<T, I>(tid, nthreads, B, M, rows, ld, Y);
}

template <class I>
__global__ void __launch_bounds__(launch::kThreads, launch::kMinBlocksPerSM)
    dcn_split_tf32_kernel(int64_t n, const float* __restrict__ src, float* __restrict__ hi, float* __restrict__ lo) {
    I tid, nthreads;
    thread_range(tid, nthreads);
    launch::split_tf32_thread<I>(tid, nthreads, n, src, hi, lo);
}

}  // namespace

template <class T>
cudaError_t deform_im2col(const T* X, const T* offset, const T* mask, const DeformConvDims& d, int64_t n0,
                          int64_t nb, int64_t ld, T* col, T* colLo, cudaStream_t stream) {
    const launch::Im2colPlan pl = launch::im2col_plan(d, nb, ld);
    switch (pl.V) {
        case 4: return im2col_v<T, 4>(X, offset, mask, d, n0, pl, col, colLo, stream);
        case 2: return im2col_v<T, 2>(X, offset, mask, d, n0, pl, col, colLo, stream);
        default: return im2col_v<T, 1>(X, offset, mask, d, n0, pl, col, colLo, stream);
    }
}

cudaError_t split_tf32(const float* src, int64_t n, float* hi, float* lo, cudaStream_t stream) {
    return launch_grid_stride(n, stream, dcn_split_tf32_kernel<int32_t>, dcn_split_tf32_kernel<int64_t>, n, src, hi,
                              lo);
}

template <class T>
cudaError_t fill_bias(const T* B, int64_t M, int64_t rows, int64_t ld, T* Y, cudaStream_t stream) {
    return launch_grid_stride(rows * ld, stream, dcn_fill_bias_kernel<T, int32_t>, dcn_fill_bias_kernel<T, int64_t>,
                              B, M, rows, ld, Y);
}

template cudaError_t deform_im2col<float>(const float*, const float*, const float*, const DeformConvDims&, int64_t,
                                          int64_t, int64_t, float*, float*, cudaStream_t);
template cudaError_t deform_im2col<__half>(const __half*, const __half*, const __half*, const DeformConvDims&,
                                           int64_t, int64_t, int64_t, __half*, __half*, cudaStream_t);
template cudaError_t fill_bias<float>(const float*, int64_t, int64_t, int64_t, float*, cudaStream_t);
template cudaError_t fill_bias<__half>(const __half*, int64_t, int64_t, int64_t, __half*, cudaStream_t);

}  // namespace cuda
}  // namespace dcn
