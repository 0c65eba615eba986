// dcn::MultiScaleDeformableAttention kernels: G threads per (n, q, m) group, V channels a thread
// (16-byte loads where D and the pointers allow), the level table in shared memory; for small batches
// the split kernel (each group's points over K thread slices, reduced in shared memory); the per-thread
// body and the geometry are multi_scale_deformable_attention_launch.h's (host-emulated by multi_scale_deformable_attention_host_kernels.cpp), the math
// multi_scale_deformable_attention_math.h on dcn_math.h's bilinear_taps.
#include <cstdlib>

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

// Small batches: each group's points over K thread slices, partial sums reduced in shared memory
// (multi_scale_deformable_attention_launch.h, "the split kernel").
template <int V, class T>
__global__ void __launch_bounds__(launch::kThreads, launch::kMinBlocksPerSM)
    dcn_msda_split_kernel(int G, int K, const T* __restrict__ value, LevelReader reader, const float* __restrict__ loc,
                          const T* __restrict__ attn, const MsdaDims d, T* __restrict__ Y) {
    __shared__ MsdaLevel table[kMsdaSharedLevels];
    __shared__ float part[launch::kThreads * V];
    const int t = static_cast<int>(threadIdx.x);
    launch::msda_levels_thread(t, static_cast<int>(blockDim.x), reader, d, table);
    __syncthreads();
    const BlockLevels levels{table, reader};
    const int64_t per_block = launch::msda_split_groups_per_block(G, K), groups = launch::msda_groups(d);
    for (int64_t first = static_cast<int64_t>(blockIdx.x) * per_block; first < groups;
         first += static_cast<int64_t>(gridDim.x) * per_block) {
        launch::msda_split_partial<V>(t, first, G, K, value, levels, loc, attn, d, part);
        __syncthreads();
        launch::msda_split_reduce<V>(t, first, G, K, d, part, Y);
        __syncthreads();
    }
}

// DCN_MSDA_SPLIT: unset = the launcher's choice (msda_point_split), 1 = never split, K = split by K where
// it fits (for measurements).
int split_for(const MsdaDims& d, int G, int V) {
    const char* env = std::getenv("DCN_MSDA_SPLIT");
    if (env != nullptr && env[0] != '\0') return launch::msda_clamp_split(d, G, V, std::atoi(env));
    return launch::msda_point_split(d, G, V);
}

template <int V, class T>
cudaError_t launch_v(int G, const T* value, const LevelReader& reader, const float* loc, const T* attn,
                     const MsdaDims& d, T* Y, cudaStream_t stream) {
    const int K = split_for(d, G, V);
    if (K > 1) {
        const int64_t blocks = launch::blocks_for(launch::msda_total_threads(d, G) * K);
        return launch_kernel(dcn_msda_split_kernel<V, T>, dim3(static_cast<unsigned>(blocks)), dim3(launch::kThreads), 0,
                             stream, G, K, value, reader, loc, attn, d, Y);
    }
    const int64_t total = launch::msda_total_threads(d, G);
    return launch_grid_stride_when(launch::fits_msda_int32(d, V, G, total, launch::blocks_for(total)), total, stream,
                                   dcn_msda_kernel<V, T, int32_t>, dcn_msda_kernel<V, T, int64_t>, G, value, reader,
                                   loc, attn, d, Y);
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
