// DeformPSROIPool kernel: one thread per output value (grid-stride), a thin wrapper
// around deform_psroi_pool_launch.h (index mapping + per-thread body, tested on the host) and
// deform_psroi_pool_math.h (the math), in int32 indices (loop and element) where they fit.
#include "dcn_launch.cuh"  // plugins/cuda
#include "deform_psroi_pool_kernels.h"
#include "deform_psroi_pool_launch.h"

namespace dcn {
namespace cuda {
namespace {

template <class T, class I>
__global__ void __launch_bounds__(launch::kThreads, launch::kMinBlocksPerSM)
    dcn_deform_psroi_pool_kernel(const T* __restrict__ data, const float* __restrict__ rois,
                                 const T* __restrict__ trans, const DeformPSROIPoolDims d, T* __restrict__ Y) {
    I tid, nthreads;
    thread_range(tid, nthreads);
    launch::deform_psroi_pool_thread<T, I>(tid, nthreads, data, rois, trans, d, Y);
}

}  // namespace

template <class T>
cudaError_t deform_psroi_pool(const T* data, const float* rois, const T* trans, const DeformPSROIPoolDims& d, T* Y,
                              cudaStream_t stream) {
    return launch_grid_stride_when(launch::fits_psroi_int32(d), launch::psroi_total(d), stream,
                                   dcn_deform_psroi_pool_kernel<T, int32_t>, dcn_deform_psroi_pool_kernel<T, int64_t>,
                                   data, rois, trans, d, Y);
}

template cudaError_t deform_psroi_pool<float>(const float*, const float*, const float*, const DeformPSROIPoolDims&,
                                              float*, cudaStream_t);
template cudaError_t deform_psroi_pool<__half>(const __half*, const float*, const __half*,
                                               const DeformPSROIPoolDims&, __half*, cudaStream_t);

}  // namespace cuda
}  // namespace dcn
