// DeformRoIPool kernel: one thread per output value (grid-stride), output index
// ((r * C + c) * pooled_height + ph) * pooled_width + pw; the math is dcn_math.h's
// deform_roi_pool_element (the function the ONNX Runtime op and the host tests run).
#include "dcn_launch.h"
#include "dcn_roi_pool_kernels.h"

namespace dcn {
namespace cuda {
namespace {

template <class T, class I>
__global__ void __launch_bounds__(launch::kThreads, launch::kMinBlocksPerSM)
    dcn_deform_roi_pool_kernel(const T* __restrict__ data, const float* __restrict__ rois,
                               const T* __restrict__ offset, const DeformRoIPoolDims d, T* __restrict__ Y) {
    using Acc = typename AccOf<T>::type;
    const I total = static_cast<I>(d.R * d.C * d.pooled_height * d.pooled_width);
    const I PH = static_cast<I>(d.pooled_height), PW = static_cast<I>(d.pooled_width), C = static_cast<I>(d.C);
    const I nthreads = static_cast<I>(gridDim.x) * static_cast<I>(blockDim.x);
    for (I idx = static_cast<I>(blockIdx.x) * static_cast<I>(blockDim.x) + static_cast<I>(threadIdx.x); idx < total;
         idx += nthreads) {
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
    const int64_t total = d.R * d.C * d.pooled_height * d.pooled_width;
    if (total <= 0) return cudaSuccess;
    const int64_t blocks = launch::blocks_for(total);
    const dim3 grid(static_cast<unsigned>(blocks)), block(launch::kThreads);
    if (launch::fits_int32(total, blocks))
        dcn_deform_roi_pool_kernel<T, int32_t><<<grid, block, 0, stream>>>(data, rois, offset, d, Y);
    else
        dcn_deform_roi_pool_kernel<T, int64_t><<<grid, block, 0, stream>>>(data, rois, offset, d, Y);
    return cudaGetLastError();
}

template cudaError_t deform_roi_pool<float>(const float*, const float*, const float*, const DeformRoIPoolDims&,
                                            float*, cudaStream_t);
template cudaError_t deform_roi_pool<__half>(const __half*, const float*, const __half*, const DeformRoIPoolDims&,
                                             __half*, cudaStream_t);

}  // namespace cuda
}  // namespace dcn
