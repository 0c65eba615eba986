// dcn_aggregate_launch.h: launch geometry and the per-thread body of the channels-last deformable
// aggregation kernels (each such op's <op>_kernels.cu wraps aggregate_thread in its own __global__
// kernel with its inputs' layout), as __host__ __device__ code (g++ and nvcc). The host tests
// (<op>_host_kernels.cpp, plugins/tests/host_aggregate.h) call the same function for every (block,
// thread) of the grid the launcher would start, so indexing, vector loads and arithmetic are tested
// without a GPU. The math is plugins/common/dcn_aggregate.h on dcn_math.h (never copied here).
//
// Work split (8 channels per thread, the anchor of FlashInternImage's kernels): one thread item = one
// output position and V consecutive channels of one group (V in {8, 4, 2, 1}: the largest dividing
// group_channels with X and Y aligned to V elements), item idx <-> Y elements [idx*V, idx*V + V):
// consecutive threads write consecutive channels (coalesced NHWC). Per point the thread computes the
// taps (float coordinates, the mask folded into the weights), then reads V channels of each in-map
// neighbour with one vector load (16 bytes for 8 halves, 2 x 16 for 8 floats) and accumulates in float;
// one vector store at the end. with_vector_width(V, f) calls f(std::integral_constant<int, V>) for the
// launcher's V (8, 4, 2 or 1).
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "dcn_launch.h"  // plugins/cuda: kThreads, blocks_for, fits_int32, load_vec, store_vec
#include "dcn_aggregate.h"  // plugins/common

namespace dcn {
namespace launch {

// The channels per thread for these pointers and dims (see the file comment).
DCN_HD int aggregate_vector_width(int64_t group_channels, const void* x, const void* y, int64_t elem_size) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(x) | reinterpret_cast<uintptr_t>(y);
    for (int v = 8; v > 1; v /= 2)
        if (group_channels % v == 0 && a % static_cast<uintptr_t>(v * elem_size) == 0) return v;
    return 1;
}

// f(std::integral_constant<int, V>{}) for V = width (8, 4 or 2; anything else 1): the kernels' instances.
template <class F> auto with_vector_width(int width, F&& f) {
    switch (width) {
    case 8: return f(std::integral_constant<int, 8>{});
    case 4: return f(std::integral_constant<int, 4>{});
    case 2: return f(std::integral_constant<int, 2>{});
    default: return f(std::integral_constant<int, 1>{});
    }
}

// Thread items of one launch: N*Ho*Wo*C / V.
DCN_HD int64_t aggregate_total(const AggregateDims& d, int V) { return d.N * d.outH * d.outW * (d.C / V); }

// One thread of the kernel: Y [N, Ho, Wo, C] items tid, tid + nthreads, ... (I: int32_t when the
// launch fits it, else int64_t).
template <class T, int V, class I>
DCN_HD void aggregate_thread(I tid, I nthreads, const T* X, const T* offset, const T* mask, const AggregateDims& d, T* Y) {
    using Acc = typename AccOf<T>::type;
    const I cv = static_cast<I>(d.C / V), total = static_cast<I>(aggregate_total(d, V));
    const I oH = static_cast<I>(d.outH), oW = static_cast<I>(d.outW);
    // The input's sizes in int64 whatever I: the items (outputs / V) may fit int32 where an input
    // image (H*W, strided down to the output) or the channel offset (C up to V*INT32_MAX) does not.
    const int64_t hw_in = d.H * d.W;
    for (I idx = tid; idx < total; idx += nthreads) {
        const I pos = idx / cv;
        const int64_t c = static_cast<int64_t>(idx % cv) * V;
        const I wo = pos % oW, ho = (pos / oW) % oH, n = pos / (oW * oH);
        const AggregateSite<Acc, T> s = aggregate_site<Acc>(offset, mask, d, pos, ho, wo, c / d.groupChannels);
        const T* xn = X + static_cast<int64_t>(n) * hw_in * d.C + c;
        Acc acc[V];
        for (int v = 0; v < V; ++v) acc[v] = Acc(0);
        aggregate_for_points(d, [&](int64_t i, int64_t j, int64_t p) {
            const BilinearTaps<Acc> t = aggregate_taps<Acc>(s, d, i, j, p);
            for (int q = 0; q < 4; ++q) {
                if (t.idx[q] < 0) continue;  // a neighbour outside the map reads nothing
                Acc val[V];
                load_vec<V>(xn + t.idx[q] * d.C, val);
                for (int v = 0; v < V; ++v) acc[v] += t.w[q] * val[v];
            }
        });
        store_vec<V>(Y + static_cast<int64_t>(idx) * V, acc);
    }
}

}  // namespace launch
}  // namespace dcn
