// DeformRoIPool kernel: one thread per output value (grid-stride), output index
// ((r * C + c) * pooled_height + ph) * pooled_width + pw; the math is deform_roi_pool_math.h's
// deform_roi_pool_element (the function the ONNX Runtime op and the host tests run).
#include "dcn_launch.cuh"  // plugins/cuda
#include "deform_roi_pool_kernels.h"

namespace dcn {
namespace cuda {
namespace {

DCN_HD int64_t roi_pool_total(const DeformRoIPoolDims& d) { return d.R * d.C * d.pooled_height * d.pooled_width; }

template <class T, class I>
__global__ void __launch_bounds__(launch::kThreads, launch::kMinBlocksPerSM)
    dcn_deform_roi_pool_kernel(const T* __restrict__ data, const float* __restrict__ rois,
                               const T* __restrict__ offset, const DeformRoIPoolDims d, T* __restrict__ Y) {
    using Acc = typename AccOf<T>::type;
    const I total = static_cast<I>(roi_pool_total(d));
    const I PH = static_cast<I>(d.pooled_height), PW = static_cast<I>(d.pooled_width), C = static_cast<I>(d.C);
    I tid, nthreads;
    thread_range(tid, nthreads);
    for (I idx = tid; idx < total; idx += nthreads) {
        I t = idx;
        const I pw = t % PW;
        t /= PW;
        const I ph = t % PH;
        t /= PH;
        const I c = t % C;
        const I r = t / C;
        Y[idx] = store<T>(deform_roi_pool_element<Acc>(data, rois, d.has_offset ? offset : nullptr, d, r, c, ph, pw));
    }
}

}  // namespace

template <class T>
cudaError_t deform_roi_pool(const T* data, const float* rois, const T* offset, const DeformRoIPoolDims& d, T* Y,
                            cudaStream_t stream) {
    return launch_grid_stride(roi_pool_total(d), stream, dcn_deform_roi_pool_kernel<T, int32_t>,
                              dcn_deform_roi_pool_kernel<T, int64_t>, data, rois, offset, d, Y);
}

template cudaError_t deform_roi_pool<float>(const float*, const float*, const float*, const DeformRoIPoolDims&,
                                            float*, cudaStream_t);
template cudaError_t deform_roi_pool<__half>(const __half*, const float*, const __half*, const DeformRoIPoolDims&,
                                             __half*, cudaStream_t);

}  // namespace cuda
}  // namespace dcn
