// multi_scale_deformable_attention_host_kernels.cpp: the dcn::MultiScaleDeformableAttention CUDA launch emulated on the host, with
// C linkage for tests/test_msda_cpp.py (ctypes; part of libdcn_host_tests).
//
// What runs here is the kernel's own code: the launcher's choices (vector width V, group threads G,
// blocks_for / fits_int32: multi_scale_deformable_attention_launch.h, dcn_launch.h), the block prologue that fills the shared
// level table (msda_levels_thread) and the per-thread body (msda_thread) for every (block, thread) of
// the grid, and the math (multi_scale_deformable_attention_math.h on dcn_math.h). Plus the element function and validation.
//
// dtype: 0 = float64 (locations float64), 1 = float32, 2 = float16 storage (dcn::Half bits; locations
// float32). index_bytes: 4 (int32) or 8 (int64). vector: 0 = the launcher's choice, else forced
// (1, 2, 4: must divide D). split: the split kernel's K (0 = the launcher's choice, 1 = the plain kernel).
// index_mode: 0 = launcher's, 1 = int32, 2 = int64. max_blocks > 0 caps the grid (grid-stride loop).
// Returns 0, or 1 with the message in msg.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "host_tests.h"  // plugins/tests: report, DCN_EXPORT
#include "multi_scale_deformable_attention_launch.h"
#include "multi_scale_deformable_attention_math.h"

namespace {

using dcn::MsdaDims;
using dcn::MsdaLevel;
using dcn_host::report;
namespace launch = dcn::launch;

MsdaDims dims_of(const int64_t* v) { return MsdaDims{v[0], v[1], v[2], v[3], v[4], v[5], v[6]}; }

template <int V, class T, class TL, class I>
void run_grid(int G, const T* value, const dcn::LevelReader& reader, const TL* loc, const T* attn, const MsdaDims& d,
              T* Y, int64_t max_blocks, int64_t* stats) {
    const int64_t total = launch::msda_total_threads(d, G);
    int64_t blocks = launch::blocks_for(total);
    if (max_blocks > 0 && blocks > max_blocks) blocks = max_blocks;
    const I nthreads = static_cast<I>(blocks * launch::kThreads);
    std::vector<MsdaLevel> table(static_cast<size_t>(dcn::kMsdaSharedLevels));
    for (int64_t b = 0; b < blocks; ++b) {
        for (int t = 0; t < launch::kThreads; ++t) launch::msda_levels_thread(t, launch::kThreads, reader, d, table.data());
        const dcn::BlockLevels levels{table.data(), reader};
        for (int t = 0; t < launch::kThreads; ++t)
            launch::msda_thread<V>(static_cast<I>(b * launch::kThreads + t), nthreads, G, value, levels, loc, attn, d, Y);
    }
    stats[0] = V, stats[1] = G, stats[2] = blocks, stats[3] = sizeof(I);
}

// The split kernel: per block the level prologue, then per round phase 1 for every thread, the barrier,
// phase 2 for every thread (shared memory: the block's partial sums).
template <int V, class T, class TL>
void run_split(int G, int K, const T* value, const dcn::LevelReader& reader, const TL* loc, const T* attn,
               const MsdaDims& d, T* Y, int64_t max_blocks, int64_t* stats) {
    using Acc = typename dcn::AccOf<T>::type;
    int64_t blocks = launch::blocks_for(launch::msda_total_threads(d, G) * K);
    if (max_blocks > 0 && blocks > max_blocks) blocks = max_blocks;
    const int64_t per_block = launch::msda_split_groups_per_block(G, K), groups = launch::msda_groups(d);
    std::vector<MsdaLevel> table(static_cast<size_t>(dcn::kMsdaSharedLevels));
    std::vector<Acc> part(static_cast<size_t>(launch::kThreads) * V);
    for (int64_t b = 0; b < blocks; ++b) {
        for (int t = 0; t < launch::kThreads; ++t) launch::msda_levels_thread(t, launch::kThreads, reader, d, table.data());
        const dcn::BlockLevels levels{table.data(), reader};
        for (int64_t first = b * per_block; first < groups; first += blocks * per_block) {
            for (int t = 0; t < launch::kThreads; ++t)
                launch::msda_split_partial<V>(t, first, G, K, value, levels, loc, attn, d, part.data());
            for (int t = 0; t < launch::kThreads; ++t) launch::msda_split_reduce<V>(t, first, G, K, d, part.data(), Y);
        }
    }
    stats[0] = V, stats[1] = G, stats[2] = blocks, stats[3] = 8, stats[4] = K;
}

template <class T, class TL, class I>
int emulate(const void* value, const void* shapes, const void* starts, int index_bytes, const void* loc,
            const void* attn, const MsdaDims& d, int vector, int split, int64_t max_blocks, void* Y, int64_t* stats) {
    const T* v = static_cast<const T*>(value);
    T* y = static_cast<T*>(Y);
    if (d.N * d.Lq * d.M * d.D == 0) return 0;  // the launcher starts nothing
    const dcn::LevelReader reader{shapes, starts, index_bytes, d.S};
    const int V = vector ? vector
                         : launch::msda_vector_width(d.D, sizeof(T), launch::kMsdaMaxVector,
                                                     reinterpret_cast<uint64_t>(value), reinterpret_cast<uint64_t>(Y));
    const int G = launch::msda_group_threads(d.D, V);
    const TL* l = static_cast<const TL*>(loc);
    const T* a = static_cast<const T*>(attn);
    const int K = split ? launch::msda_clamp_split(d, G, V, split) : launch::msda_point_split(d, G, V);
    stats[4] = K;
    if (K > 1) {
        switch (V) {
        case 4: run_split<4, T, TL>(G, K, v, reader, l, a, d, y, max_blocks, stats); return 0;
        case 2: run_split<2, T, TL>(G, K, v, reader, l, a, d, y, max_blocks, stats); return 0;
        case 1: run_split<1, T, TL>(G, K, v, reader, l, a, d, y, max_blocks, stats); return 0;
        default: return 1;
        }
    }
    switch (V) {
    case 4: run_grid<4, T, TL, I>(G, v, reader, l, a, d, y, max_blocks, stats); return 0;
    case 2: run_grid<2, T, TL, I>(G, v, reader, l, a, d, y, max_blocks, stats); return 0;
    case 1: run_grid<1, T, TL, I>(G, v, reader, l, a, d, y, max_blocks, stats); return 0;
    default: return 1;
    }
}

// The launcher's index type at vector width V: int32_t where launch::fits_msda_int32 holds for its
// G and grid (max_blocks > 0: the grid capped, as the tests cap it).
bool launcher_int32(const MsdaDims& d, int V, int64_t max_blocks) {
    const int G = launch::msda_group_threads(d.D, V);
    const int64_t total = launch::msda_total_threads(d, G);
    int64_t blocks = launch::blocks_for(total);
    if (max_blocks > 0 && blocks > max_blocks) blocks = max_blocks;
    return launch::fits_msda_int32(d, V, G, total, blocks);
}

template <class T, class TL>
int emulate_t(int index_mode, const void* value, const void* shapes, const void* starts, int index_bytes, const void* loc,
              const void* attn, const MsdaDims& d, int vector, int split, int64_t max_blocks, void* Y, int64_t* stats) {
    bool i32 = index_mode == 1;
    if (index_mode == 0) {
        const int V = vector ? vector
                             : launch::msda_vector_width(d.D, sizeof(T), launch::kMsdaMaxVector,
                                                         reinterpret_cast<uint64_t>(value), reinterpret_cast<uint64_t>(Y));
        i32 = launcher_int32(d, V, max_blocks);
    }
    return i32 ? emulate<T, TL, int32_t>(value, shapes, starts, index_bytes, loc, attn, d, vector, split, max_blocks, Y,
                                         stats)
               : emulate<T, TL, int64_t>(value, shapes, starts, index_bytes, loc, attn, d, vector, split, max_blocks, Y,
                                         stats);
}

template <class T, class TL, class I>
void elements(const void* value, const void* shapes, const void* starts, const void* loc, const void* attn,
              const MsdaDims& d, void* Y) {
    using Acc = typename dcn::AccOf<T>::type;
    T* y = static_cast<T*>(Y);
    const int64_t groups = d.N * d.Lq * d.M;
    for (int64_t g = 0; g < groups; ++g)
        for (int64_t c = 0; c < d.D; ++c)
            y[g * d.D + c] = dcn::store<T>(dcn::msda_element<Acc>(
                static_cast<const T*>(value), static_cast<const I*>(shapes), static_cast<const I*>(starts),
                static_cast<const TL*>(loc), static_cast<const T*>(attn), d, g, c));
}

}  // namespace

// dims: N, S, M, D, L, Lq, P. split: 0 = the launcher's choice, 1 = never, K = forced where it fits.
// stats (5): V, G, blocks, index bytes, K.
DCN_EXPORT int dcn_emu_msda(int dtype, int index_mode, const void* value, const void* shapes, const void* starts,
                            int index_bytes, const void* loc, const void* attn, const int64_t* dims, int vector,
                            int split, int64_t max_blocks, void* Y, int64_t* stats) {
    const MsdaDims d = dims_of(dims);
    stats[4] = 1;
    if (dtype == 0)
        return emulate_t<double, double>(index_mode, value, shapes, starts, index_bytes, loc, attn, d, vector, split,
                                          max_blocks, Y, stats);
    if (dtype == 1)
        return emulate_t<float, float>(index_mode, value, shapes, starts, index_bytes, loc, attn, d, vector, split,
                                        max_blocks, Y, stats);
    return emulate_t<dcn::Half, float>(index_mode, value, shapes, starts, index_bytes, loc, attn, d, vector, split,
                                        max_blocks, Y, stats);
}

// The launcher's index type for dims (N, S, M, D, L, Lq, P) at vector width V: 1 = int32_t, 0 = int64_t.
DCN_EXPORT int dcn_emu_msda_fits_int32(const int64_t* dims, int V) {
    return launcher_int32(dims_of(dims), V, 0) ? 1 : 0;
}

DCN_EXPORT void dcn_msda_elements(int dtype, const void* value, const void* shapes, const void* starts,
                                      int index_bytes, const void* loc, const void* attn, const int64_t* dims, void* Y) {
    const MsdaDims d = dims_of(dims);
    const bool i4 = index_bytes == 4;
    if (dtype == 0)
        i4 ? elements<double, double, int32_t>(value, shapes, starts, loc, attn, d, Y)
           : elements<double, double, int64_t>(value, shapes, starts, loc, attn, d, Y);
    else if (dtype == 1)
        i4 ? elements<float, float, int32_t>(value, shapes, starts, loc, attn, d, Y)
           : elements<float, float, int64_t>(value, shapes, starts, loc, attn, d, Y);
    else
        i4 ? elements<dcn::Half, float, int32_t>(value, shapes, starts, loc, attn, d, Y)
           : elements<dcn::Half, float, int64_t>(value, shapes, starts, loc, attn, d, Y);
}

// The validation messages: shapes (ranks[5], dims[5*8]), then the levels' values (host memory).
DCN_EXPORT int dcn_msda_validate(const char* node, const int32_t* ranks, const int64_t* dims, const void* shapes,
                                     const void* starts, int index_bytes, int64_t* out_dims, char* msg, size_t n) {
    dcn::ShapeRef s[5];
    for (int i = 0; i < 5; ++i) s[i] = dcn::ShapeRef(dims + 8 * i, ranks[i]);
    MsdaDims d{};
    std::string e = dcn::validate_msda(node, s[0], s[1], s[2], s[3], s[4], &d);
    if (e.empty() && shapes != nullptr)
        e = index_bytes == 4 ? dcn::validate_msda_levels(node, d.S, static_cast<const int32_t*>(shapes),
                                                         static_cast<const int32_t*>(starts), d.L)
                             : dcn::validate_msda_levels(node, d.S, static_cast<const int64_t*>(shapes),
                                                         static_cast<const int64_t*>(starts), d.L);
    if (e.empty() && out_dims) {
        const int64_t v[7] = {d.N, d.S, d.M, d.D, d.L, d.Lq, d.P};
        std::memcpy(out_dims, v, sizeof v);
    }
    return report(e, msg, n);
}
