// The dcn::DCNv3 / dcn::DCNv4 kernel: one-line wrapper around dcnv3_launch.h's dcn_thread (the body the host
// tests run), instantiated for float / __half, 8 / 4 / 2 / 1 channels per thread and int32 / int64 indices;
// the launcher picks the width (dcn_vector_width) and the index type (launch_grid_stride).
#include "dcn_launch.cuh"  // plugins/cuda: thread_range, launch_grid_stride
#include "dcnv3_kernels.h"
#include "dcnv3_launch.h"

namespace dcn {
namespace cuda {
namespace {

template <class T, int V, class I>
__global__ void __launch_bounds__(launch::kThreads, launch::kMinBlocksPerSM)
    dcn_dcnv3_kernel(const T* __restrict__ X, const T* __restrict__ offset, const T* __restrict__ mask,
                     const DcnDims d, T* __restrict__ Y) {
    I tid, nthreads;
    thread_range(tid, nthreads);
    launch::dcn_thread<T, V, I>(tid, nthreads, X, offset, mask, d, Y);
}

template <class T, int V>
cudaError_t launch_width(const T* X, const T* offset, const T* mask, const DcnDims& d, T* Y, cudaStream_t stream) {
    return launch_grid_stride(launch::dcn_total(d, V), stream, dcn_dcnv3_kernel<T, V, int32_t>,
                              dcn_dcnv3_kernel<T, V, int64_t>, X, offset, mask, d, Y);
}

}  // namespace

template <class T>
cudaError_t dcn_sample(const T* X, const T* offset, const T* mask, const DcnDims& d, T* Y, cudaStream_t stream) {
    switch (launch::dcn_vector_width(d.groupChannels, X, Y, static_cast<int64_t>(sizeof(T)))) {
    case 8: return launch_width<T, 8>(X, offset, mask, d, Y, stream);
    case 4: return launch_width<T, 4>(X, offset, mask, d, Y, stream);
    case 2: return launch_width<T, 2>(X, offset, mask, d, Y, stream);
    default: return launch_width<T, 1>(X, offset, mask, d, Y, stream);
    }
}

template cudaError_t dcn_sample<float>(const float*, const float*, const float*, const DcnDims&, float*, cudaStream_t);
template cudaError_t dcn_sample<__half>(const __half*, const __half*, const __half*, const DcnDims&, __half*,
                                        cudaStream_t);

}  // namespace cuda
}  // namespace dcn
