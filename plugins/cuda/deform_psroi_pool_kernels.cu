// DeformPSROIPool kernel: one thread per output value (grid-stride), a thin wrapper
// around dcn_launch.h (index mapping + per-thread body, tested on the host) and
// dcn_math.h (the math).
#include "dcn_kernels.h"
#include "dcn_launch.h"

namespace dcn {
namespace cuda {
namespace {

template <class T, class I>
__global__ void __launch_bounds__(launch::kThreads, launch::kMinBlocksPerSM)
    dcn_deform_psroi_pool_kernel(const T* __restrict__ data, const float* __restrict__ rois,
                                 const T* __restrict__ trans, const DeformPSROIPoolDims d, T* __restrict__ Y) {
    const I tid = static_cast<I>(blockIdx.x) * static_cast<I>(blockDim.x) + static_cast<I>(threadIdx.x);
    const I nthreads = static_cast<I>(gridDim.x) * static_cast<I>(blockDim.x);
    launch::deform_psroi_pool_thread<T, I>(tid, nthreads, data, rois, trans, d, Y);
}

}  // namespace

template <class T>
cudaError_t deform_psroi_pool(const T* data, const float* rois, const T* trans, const DeformPSROIPoolDims& d, T* Y,
                              cudaStream_t stream) {
    const int64_t total = launch::psroi_total(d);
    if (total <= 0) return cudaSuccess;
    const int64_t blocks = launch::blocks_for(total);
    const dim3 grid(static_cast<unsigned>(blocks)), block(launch::kThreads);
    if (launch::fits_int32(total, blocks))
        dcn_deform_psroi_pool_kernel<T, int32_t><<<grid, block, 0, stream>>>(data, rois, trans, d, Y);
    else
        dcn_deform_psroi_pool_kernel<T, int64_t><<<grid, block, 0, stream>>>(data, rois, trans, d, Y);
    return cudaGetLastError();
}

template cudaError_t deform_psroi_pool<float>(const float*, const float*, const float*, const DeformPSROIPoolDims&,
                                              float*, cudaStream_t);
template cudaError_t deform_psroi_pool<__half>(const __half*, const float*, const __half*,
                                               const DeformPSROIPoolDims&, __half*, cudaStream_t);

}  // namespace cuda
}  // namespace dcn
