// dcn::MultiScaleDeformableAttention kernel: G threads per (n, q, m) group, V channels a thread
// (16-byte loads where D and the pointers allow), the level table in shared memory; the per-thread
// body and the geometry are multi_scale_deformable_attention_launch.h's (host-emulated by multi_scale_deformable_attention_host_kernels.cpp), the math
// multi_scale_deformable_attention_math.h on dcn_math.h's bilinear_taps.
#include "dcn_launch.cuh"
#include "multi_scale_deformable_attention_kernels.h"
#include "multi_scale_deformable_attention_launch.h"

namespace dcn {
namespace cuda {
namespace {

template <int V, class T, class I>
__global__ void __launch_bounds__(launch::kThreads, launch::kMinBlocksPerSM)
    dcn_msda_kernel(int G, const T* __restrict__ value, LevelReader reader, const float* __restrict__ loc,
                    const T* __restrict__ attn, const MsdaDims d, T* __restrict__ Y) {
    __shared__ MsdaLevel table[kMsdaSharedLevels];
    launch::msda_levels_thread(static_cast<int>(threadIdx.x), static_cast<int>(blockDim.x), reader, d, table);
    __syncthreads();
    I tid, nthreads;
    thread_range(tid, nthreads);
    launch::msda_thread<V>(tid, nthreads, G, value, BlockLevels{table, reader}, loc, attn, d, Y);
}

template <int V, class T>
cudaError_t launch_v(int G, const T* value, const LevelReader& reader, const float* loc, const T* attn,
                     const MsdaDims& d, T* Y, cudaStream_t stream) {
    return launch_grid_stride(launch::msda_total_threads(d, G), stream, dcn_msda_kernel<V, T, int32_t>,
                              dcn_msda_kernel<V, T, int64_t>, G, value, reader, loc, attn, d, Y);
}

}  // namespace

template <class T>
cudaError_t multi_scale_deformable_attention(const T* value, const void* spatial_shapes, const void* level_start_index,
                                             int index_bytes, const float* sampling_locations,
                                             const T* attention_weights, const MsdaDims& d, T* Y, cudaStream_t stream) {
    if (d.N * d.Lq * d.M * d.D == 0) return cudaSuccess;
    const LevelReader reader{spatial_shapes, level_start_index, index_bytes, d.S};
    const int V = launch::msda_vector_width(d.D, sizeof(T), launch::kMsdaMaxVector, reinterpret_cast<uint64_t>(value),
                                            reinterpret_cast<uint64_t>(Y));
    const int G = launch::msda_group_threads(d.D, V);
    switch (V) {
    case 4: return launch_v<4>(G, value, reader, sampling_locations, attention_weights, d, Y, stream);
    case 2: return launch_v<2>(G, value, reader, sampling_locations, attention_weights, d, Y, stream);
    default: return launch_v<1>(G, value, reader, sampling_locations, attention_weights, d, Y, stream);
    }
}

template cudaError_t multi_scale_deformable_attention<float>(const float*, const void*, const void*, int, const float*,
                                                             const float*, const MsdaDims&, float*, cudaStream_t);
template cudaError_t multi_scale_deformable_attention<__half>(const __half*, const void*, const void*, int,
                                                              const float*, const __half*, const MsdaDims&, __half*,
                                                              cudaStream_t);

}  // namespace cuda
}  // namespace dcn
