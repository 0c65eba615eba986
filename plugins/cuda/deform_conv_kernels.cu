// DeformConv2d kernels: deformable im2col (the hot kernel) and the bias broadcast.
// Thin wrappers around dcn_launch.h (index mapping + per-thread body, tested on the host)
// and dcn_math.h (the math). The GEMM is cuBLAS, called by the TensorRT plugin.
#include "dcn_kernels.h"
#include "dcn_launch.h"

namespace dcn {
namespace cuda {
namespace {

template <class I>
__device__ __forceinline__ void thread_range(I& tid, I& nthreads) {
    tid = static_cast<I>(blockIdx.x) * static_cast<I>(blockDim.x) + static_cast<I>(threadIdx.x);
    nthreads = static_cast<I>(gridDim.x) * static_cast<I>(blockDim.x);
}

template <class T, class I>
__global__ void __launch_bounds__(launch::kThreads, launch::kMinBlocksPerSM)
    dcn_deform_im2col_kernel(const T* __restrict__ X, const T* __restrict__ offset, const T* __restrict__ mask,
                             const DeformConvDims d, int64_t n0, int64_t nb, T* __restrict__ col) {
    I tid, nthreads;
    thread_range(tid, nthreads);
    launch::deform_im2col_thread<T, I>(tid, nthreads, X, offset, mask, d, n0, nb, col);
}

template <class T, class I>
__global__ void __launch_bounds__(launch::kThreads, launch::kMinBlocksPerSM)
    dcn_fill_bias_kernel(const T* __restrict__ B, const DeformConvDims d, T* __restrict__ Y) {
    I tid, nthreads;
    thread_range(tid, nthreads);
    launch::fill_bias_thread<T, I>(tid, nthreads, B, d, Y);
}

}  // namespace

template <class T>
cudaError_t deform_im2col(const T* X, const T* offset, const T* mask, const DeformConvDims& d, int64_t n0,
                          int64_t nb, T* col, cudaStream_t stream) {
    const int64_t total = launch::im2col_total(d, nb);
    if (total <= 0) return cudaSuccess;
    const int64_t blocks = launch::blocks_for(total);
    const dim3 grid(static_cast<unsigned>(blocks)), block(launch::kThreads);
    if (launch::fits_int32(total, blocks))
        dcn_deform_im2col_kernel<T, int32_t><<<grid, block, 0, stream>>>(X, offset, mask, d, n0, nb, col);
    else
        dcn_deform_im2col_kernel<T, int64_t><<<grid, block, 0, stream>>>(X, offset, mask, d, n0, nb, col);
    return cudaGetLastError();
}

template <class T>
cudaError_t fill_bias(const T* B, const DeformConvDims& d, T* Y, cudaStream_t stream) {
    const int64_t total = launch::bias_total(d);
    if (total <= 0) return cudaSuccess;
    const int64_t blocks = launch::blocks_for(total);
    const dim3 grid(static_cast<unsigned>(blocks)), block(launch::kThreads);
    if (launch::fits_int32(total, blocks))
        dcn_fill_bias_kernel<T, int32_t><<<grid, block, 0, stream>>>(B, d, Y);
    else
        dcn_fill_bias_kernel<T, int64_t><<<grid, block, 0, stream>>>(B, d, Y);
    return cudaGetLastError();
}

template cudaError_t deform_im2col<float>(const float*, const float*, const float*, const DeformConvDims&, int64_t,
                                          int64_t, float*, cudaStream_t);
template cudaError_t deform_im2col<__half>(const __half*, const __half*, const __half*, const DeformConvDims&,
                                           int64_t, int64_t, __half*, cudaStream_t);
template cudaError_t fill_bias<float>(const float*, const DeformConvDims&, float*, cudaStream_t);
template cudaError_t fill_bias<__half>(const __half*, const DeformConvDims&, __half*, cudaStream_t);

}  // namespace cuda
}  // namespace dcn
