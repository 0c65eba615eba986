// The dcn::DCNv3 kernel: one-line wrapper around plugins/cuda/dcn_aggregate_launch.h's aggregate_thread (the
// body the host tests run), instantiated for float / __half, 8 / 4 / 2 / 1 channels per thread and int32 /
// int64 indices; the launcher picks the width (aggregate_vector_width) and the index type (launch_grid_stride).
#include "dcn_aggregate_launch.h"  // plugins/cuda
#include "dcn_launch.cuh"          // plugins/cuda: thread_range, launch_grid_stride
#include "dcnv3_kernels.h"

namespace dcn {
namespace cuda {
namespace {

template <class T, int V, class I>
__global__ void __launch_bounds__(launch::kThreads, launch::kMinBlocksPerSM)
    dcn_dcnv3_kernel(const T* __restrict__ X, const T* __restrict__ offset, const T* __restrict__ mask,
                     const AggregateDims d, T* __restrict__ Y) {
    I tid, nthreads;
    thread_range(tid, nthreads);
    launch::aggregate_thread<T, V, I>(tid, nthreads, X, offset, mask, d, Y);
}

}  // namespace

template <class T>
cudaError_t dcnv3(const T* X, const T* offset, const T* mask, const AggregateDims& d, T* Y, cudaStream_t stream) {
    const int width = launch::aggregate_vector_width(d.groupChannels, X, Y, static_cast<int64_t>(sizeof(T)));
    return launch::with_vector_width(width, [&](auto v) {
        constexpr int V = decltype(v)::value;
        return launch_grid_stride(launch::aggregate_total(d, V), stream, dcn_dcnv3_kernel<T, V, int32_t>,
                                  dcn_dcnv3_kernel<T, V, int64_t>, X, offset, mask, d, Y);
    });
}

template cudaError_t dcnv3<float>(const float*, const float*, const float*, const AggregateDims&, float*,
                                  cudaStream_t);
template cudaError_t dcnv3<__half>(const __half*, const __half*, const __half*, const AggregateDims&, __half*,
                                   cudaStream_t);

}  // namespace cuda
}  // namespace dcn
