// multi_scale_deformable_attention_launch.h: launch geometry and per-thread bodies of the dcn::MultiScaleDeformableAttention
// CUDA kernel, as __host__ __device__ code: the .cu kernel is a wrapper that calls these with
// (blockIdx.x * blockDim.x + threadIdx.x, gridDim.x * blockDim.x); the host tests
// (multi_scale_deformable_attention_host_kernels.cpp) call the very same functions for every (block, thread) of the same grid.
//
// Layout of the work: G threads (a power of two <= 32, a divisor of the block) per group
// g = (n*Lq + q)*M + m, each thread owning chunks of V <= 4 channels (one 16-byte float4 or 8-byte
// half4 load per tap), c = lane, lane + G, ...; a grid-stride loop over groups. The level table
// (H, W, start, ok per level) is built once per block into shared memory (msda_levels_thread) when
// L <= kMsdaSharedLevels, else read from the index tensors by every thread (LevelReader).
#pragma once

#include "dcn_launch.h"  // plugins/cuda: kThreads, blocks_for, fits_int32
#include "multi_scale_deformable_attention_math.h"

namespace dcn {

constexpr int64_t kMsdaSharedLevels = 64;

// Levels straight from spatial_shapes / level_start_index of either index type (4 or 8 bytes).
struct LevelReader {
    const void* shapes;
    const void* starts;
    int index_bytes;
    int64_t S;
    DCN_HD MsdaLevel operator()(int64_t l) const {
        return index_bytes == 4 ? msda_level(static_cast<const int32_t*>(shapes), static_cast<const int32_t*>(starts),
                                             l, S)
                                : msda_level(static_cast<const int64_t*>(shapes), static_cast<const int64_t*>(starts),
                                             l, S);
    }
};

// What a kernel thread reads levels from: the block's table for the first kMsdaSharedLevels levels, the
// reader for any beyond.
struct BlockLevels {
    const MsdaLevel* table;
    LevelReader reader;
    DCN_HD MsdaLevel operator()(int64_t l) const { return l < kMsdaSharedLevels ? table[l] : reader(l); }
};

namespace launch {

// Channels per thread: the widest of max_v, max_v/2, ..., 1 dividing D with value and Y aligned to its bytes.
// kMsdaMaxVector = 4: 16-byte loads of float, 8-byte of half (8 halves a thread would pass 64 registers).
constexpr int kMsdaMaxVector = 4;
DCN_HD int msda_vector_width(int64_t D, int64_t elem_bytes, int max_v, uint64_t value_addr, uint64_t y_addr) {
    for (int64_t v = max_v; v > 1; v /= 2)
        if (D % v == 0 && value_addr % (v * elem_bytes) == 0 && y_addr % (v * elem_bytes) == 0)
            return static_cast<int>(v);
    return 1;
}

// Threads per group: the smallest power of two >= D / V, at most 32.
DCN_HD int msda_group_threads(int64_t D, int V) {
    const int64_t chunks = D / V;
    int G = 1;
    while (G < chunks && G < 32) G *= 2;
    return G;
}

DCN_HD int64_t msda_groups(const MsdaDims& d) { return d.N * d.Lq * d.M; }
DCN_HD int64_t msda_total_threads(const MsdaDims& d, int G) { return msda_groups(d) * G; }

// The plain kernel may index with int32_t when its grid-stride loop over `total` threads with `blocks`
// blocks fits (fits_int32; the groups count is below total) and so does a lane's chunk loop
// c = lane, lane + G, ... < D / V (its last step reaches D / V + G). Value, Y and level offsets are
// int64 whatever the index type.
DCN_HD bool fits_msda_int32(const MsdaDims& d, int V, int G, int64_t total, int64_t blocks) {
    return fits_int32(total, blocks) && d.D / V + G <= int64_t(INT32_MAX);
}

// The block's prologue, thread t of nb: its share of the level table (shared memory on the GPU).
DCN_HD void msda_levels_thread(int t, int nb, const LevelReader& reader, const MsdaDims& d, MsdaLevel* table) {
    for (int64_t l = t; l < d.L && l < kMsdaSharedLevels; l += nb) table[l] = reader(l);
}

#if !defined(__CUDA_ARCH__)
// Host emulation: the value loads (VecLoad, V at once on a GPU) of group g's channels d0 .. d0+V are
// at value + row * M*D + m*D + d0 for the levels' pixel rows: all aligned iff the first is and M*D
// is a multiple of V (msda_accumulate is shared with the ONNX Runtime op, so the check is here).
template <int V, class T> void note_msda_value_loads(const T* value, const MsdaDims& d, int64_t g, int64_t d0) {
    if (V == 1 || sizeof(T) > 4) return;
    note_vector_access(value + (g % d.M) * d.D + d0, V * static_cast<int64_t>(sizeof(T)));
    if ((d.M * d.D) % V != 0) ++misaligned_vector_accesses();
}
#endif

// One thread: every group g = tid / G + k * (nthreads / G) and chunk c = tid % G + k' * G.
template <int V, class T, class TL, class Idx, class Levels>
DCN_HD void msda_thread(Idx tid, Idx nthreads, int G, const T* value, const Levels& levels, const TL* loc,
                        const T* attn, const MsdaDims& d, T* Y) {
    using Acc = typename AccOf<T>::type;
    const Idx groups = static_cast<Idx>(msda_groups(d));
    const Idx chunks = static_cast<Idx>(d.D / V);
    const Idx g_step = nthreads / static_cast<Idx>(G);
    const Idx lane = tid % static_cast<Idx>(G);
    for (Idx g = tid / static_cast<Idx>(G); g < groups; g += g_step) {
        for (Idx c = lane; c < chunks; c += static_cast<Idx>(G)) {
            Acc acc[V];
#if !defined(__CUDA_ARCH__)
            note_msda_value_loads<V>(value, d, static_cast<int64_t>(g), static_cast<int64_t>(c) * V);
#endif
            msda_accumulate<Acc, V>(value, levels, loc, attn, d, static_cast<int64_t>(g),
                                    static_cast<int64_t>(c) * V, V, acc);
            store_vec<V, T, Acc>(Y + static_cast<int64_t>(g) * d.D + static_cast<int64_t>(c) * V, acc);
        }
    }
}

// ---- the split kernel (small batches): each group's L*P points over K thread slices ----------------
// Few groups (a small batch, few queries) leave the GPU mostly idle with G threads a group: each group
// then gets G*K threads, slice k summing the points l*P + p = k (mod K) of its lane's channel chunk; the K
// partial sums meet in shared memory and slice 0 adds them in slice order and stores. One chunk a lane
// (D / V <= G) and a group's G*K threads inside one block; K a power of two <= kMsdaMaxSplit and <= L*P.
// Grid-stride over blocks of kThreads / (G*K) groups (every thread of a block takes every round: the
// rounds hold __syncthreads()).
constexpr int kMsdaMaxSplit = 8;
constexpr int64_t kMsdaSplitTarget = int64_t(1) << 17;  // threads below which the launcher splits

DCN_HD int msda_point_split(const MsdaDims& d, int G, int V) {
    const int64_t points = d.L * d.P, threads = msda_total_threads(d, G);
    if (d.D / V > G || threads == 0) return 1;
    int K = 1;
    while (K < kMsdaMaxSplit && 2 * K <= points && G * 2 * K <= kThreads && threads * K < kMsdaSplitTarget) K *= 2;
    return K;
}

// A forced split (DCN_MSDA_SPLIT, the host tests) within the same constraints; 1 where none fits.
DCN_HD int msda_clamp_split(const MsdaDims& d, int G, int V, int K) {
    if (d.D / V > G) return 1;
    int k = 1;
    while (2 * k <= K && 2 * k <= kMsdaMaxSplit && 2 * k <= d.L * d.P && G * 2 * k <= kThreads) k *= 2;
    return k;
}

DCN_HD int64_t msda_split_groups_per_block(int G, int K) { return kThreads / (G * K); }

// Phase 1, thread t of the block whose first group is `first`: its slice's partial sums -> part[t*V ..).
template <int V, class T, class TL, class Levels, class Acc>
DCN_HD void msda_split_partial(int t, int64_t first, int G, int K, const T* value, const Levels& levels, const TL* loc,
                               const T* attn, const MsdaDims& d, Acc* part) {
    const int64_t g = first + t / (G * K);
    const int lane = t % (G * K), c = lane % G, k = lane / G;
    Acc* out = part + static_cast<int64_t>(t) * V;
    if (g < msda_groups(d) && c < d.D / V) {
#if !defined(__CUDA_ARCH__)
        note_msda_value_loads<V>(value, d, g, static_cast<int64_t>(c) * V);
#endif
        msda_accumulate<Acc, V>(value, levels, loc, attn, d, g, static_cast<int64_t>(c) * V, V, out, k, K);
    } else {
        for (int j = 0; j < V; ++j) out[j] = Acc(0);
    }
}

// Phase 2 (after the block's barrier), thread t: for slice 0, the K partials in slice order -> Y.
template <int V, class T, class Acc>
DCN_HD void msda_split_reduce(int t, int64_t first, int G, int K, const MsdaDims& d, const Acc* part, T* Y) {
    const int64_t g = first + t / (G * K);
    const int lane = t % (G * K), c = lane % G;
    if (lane >= G || g >= msda_groups(d) || c >= d.D / V) return;
    Acc acc[V];
    for (int j = 0; j < V; ++j) acc[j] = part[static_cast<int64_t>(t) * V + j];
    for (int k = 1; k < K; ++k)
        for (int j = 0; j < V; ++j) acc[j] += part[static_cast<int64_t>(t + k * G) * V + j];
    store_vec<V, T, Acc>(Y + g * d.D + static_cast<int64_t>(c) * V, acc);
}

}  // namespace launch
}  // namespace dcn
