// DeformRoIPool kernel: one thread per (RoI, block of K channels, bin) item (grid-stride), a thin
// wrapper around deform_roi_pool_launch.h (work split, index mapping and per-thread body, tested
// on the host) and deform_roi_pool_math.h (the math: the bin and each sample's taps once per
// item, applied to its K channels; every output equals deform_roi_pool_element's).
#include "dcn_launch.cuh"  // plugins/cuda
#include "deform_roi_pool_kernels.h"
#include "deform_roi_pool_launch.h"

namespace dcn {
namespace cuda {
namespace {

template <class T, class I, int K>
__global__ void __launch_bounds__(launch::kThreads, launch::kMinBlocksPerSM)
    dcn_deform_roi_pool_kernel(const T* __restrict__ data, const float* __restrict__ rois,
                               const T* __restrict__ offset, const DeformRoIPoolDims d, const launch::RoIPoolPlan pl,
                               T* __restrict__ Y) {
    I tid, nthreads;
    thread_range(tid, nthreads);
    launch::deform_roi_pool_thread<T, I, K>(tid, nthreads, data, rois, offset, d, pl, Y);
}

template <class T, class I, int K>
cudaError_t launch_k(const T* data, const float* rois, const T* offset, const DeformRoIPoolDims& d,
                     const launch::RoIPoolPlan& pl, T* Y, cudaStream_t stream) {
    const dim3 grid(static_cast<unsigned>(launch::blocks_for(pl.total))), block(launch::kThreads);
    return launch_kernel(dcn_deform_roi_pool_kernel<T, I, K>, grid, block, 0, stream, data, rois, offset, d, pl, Y);
}

}  // namespace

template <class T>
cudaError_t deform_roi_pool(const T* data, const float* rois, const T* offset, const DeformRoIPoolDims& d, T* Y,
                            cudaStream_t stream) {
    bool narrow = false;
    const launch::RoIPoolPlan pl = launch::roi_pool_launch_plan(d, &narrow);
    if (pl.total <= 0) return cudaSuccess;
    if (!narrow) return launch_k<T, int64_t, 1>(data, rois, offset, d, pl, Y, stream);
    switch (pl.K) {
        case 8: return launch_k<T, int32_t, 8>(data, rois, offset, d, pl, Y, stream);
        case 4: return launch_k<T, int32_t, 4>(data, rois, offset, d, pl, Y, stream);
        case 2: return launch_k<T, int32_t, 2>(data, rois, offset, d, pl, Y, stream);
        default: return launch_k<T, int32_t, 1>(data, rois, offset, d, pl, Y, stream);
    }
}

template cudaError_t deform_roi_pool<float>(const float*, const float*, const float*, const DeformRoIPoolDims&,
                                            float*, cudaStream_t);
template cudaError_t deform_roi_pool<__half>(const __half*, const float*, const __half*, const DeformRoIPoolDims&,
                                             __half*, cudaStream_t);

}  // namespace cuda
}  // namespace dcn
