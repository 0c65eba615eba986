// deform_conv2d_launch.h: the thread-index -> output-coordinate mapping and the per-thread bodies
// of dcn::DeformConv2d's CUDA kernels (deform_conv2d_kernels.cu), as __host__ __device__ code, run
// on the host by deform_conv2d_host_kernels.cpp (launch rule: plugins/cuda/dcn_launch.h).
//
// Layouts (row-major, contiguous):
//   columns  col[nl][c][k][p]  nl in [0, nb) (image n0 + nl), c in [0, C), k = i*kW + j,
//            p = ho*outW + wo < L, rows of ld >= L entries (the plan's 16-byte aligned leading
//            dimension; entries past L unused);  i.e. per image a [C*kH*kW, ld] matrix whose row
//            c*kH*kW + k matches W[m] flattened as [C/group, kH, kW] inside m's group.
//   bias     Y[r][p] = B[r % M] over rows of ld
#pragma once

#include "dcn_launch.h"  // plugins/cuda
#include "deform_conv2d_math.h"

#include <cstdint>
#include <type_traits>

namespace dcn {
namespace launch {

// ---- DeformConv2d: deformable im2col, coordinates once ----------------------------
//
// One work item = (nl, g, cb, k, pv): image nl of the chunk, offset group g, block cb of
// that group's channels (plan.cpt channels), kernel point k = i*kW + j, and V consecutive
// output pixels p = pv*V .. pv*V + V-1 (p = ho*outW + wo; V divides outH*outW). The item
// reads the offsets / mask and computes the bilinear taps of its V samples once (dcn_math.h
// deform_im2col_taps, mask folded in) and applies them to every channel of its block,
// storing V adjacent column entries at a time (one vector store on the GPU):
//   item = (((nl*G + g)*nCb + cb)*kk + k)*Lv + pv,  pixels fastest (coalesced stores).
// Channel blocks: the whole group when that gives enough items to fill the GPU
// (kIm2colTargetItems), else halved until it does or reaches kIm2colMinChannels.
constexpr int64_t kIm2colTargetItems = int64_t(1) << 18;
constexpr int64_t kIm2colMinChannels = 4;
// __launch_bounds__ of the im2col kernel (4 samples' taps live across the channel loop): for half
// data with int32 indices 3 blocks of 256 threads per SM at least (up to 80 registers; there the
// kernel is the bottleneck and latency bound, ncu on an H200 at 2 blocks: 94% L1 hits, 75% of
// stalls on L1TEX), else 2 (128: float's 4-wide taps need more than 80 on some architectures).
template <class T, class I> constexpr int im2col_min_blocks_per_sm() {
    return sizeof(I) == 4 && sizeof(T) == 2 ? 3 : 2;
}

struct Im2colPlan {
    int64_t ld;   // row stride of the columns (multiple of V: every store stays aligned)
    int64_t cpt;  // channels per item (block size); the last block of a group may be shorter
    int64_t nCb;  // channel blocks per offset group
    int V;        // pixels per item (1, 2 or 4; divides L)
    int64_t Lv;   // L / V
    int64_t total;  // items
};

// V: the widest of 4, 2, 1 dividing L and ld (with alignment of the column buffer to V
// elements, every item's store is aligned to V elements: row starts are multiples of ld).
DCN_HD Im2colPlan im2col_plan(const DeformConvDims& d, int64_t nb, int64_t ld,
                              int64_t target = kIm2colTargetItems) {
    Im2colPlan pl{};
    pl.ld = ld;
    const int64_t L = d.outH * d.outW, kk = d.kH * d.kW;
    const int64_t Cg = d.offsetGroup > 0 ? d.C / d.offsetGroup : 0;
    pl.V = L % 4 == 0 && ld % 4 == 0 ? 4 : (L % 2 == 0 && ld % 2 == 0 ? 2 : 1);
    pl.Lv = L / pl.V;
    const int64_t perBlock = nb * d.offsetGroup * kk * pl.Lv;  // items per channel block
    pl.cpt = Cg < 1 ? 1 : Cg;
    while (pl.cpt > kIm2colMinChannels && perBlock * ((Cg + pl.cpt - 1) / pl.cpt) < target)
        pl.cpt = (pl.cpt + 1) / 2;
    pl.nCb = Cg < 1 ? 0 : (Cg + pl.cpt - 1) / pl.cpt;
    pl.total = perBlock * pl.nCb;
    return pl;
}

// Item -> coordinates.
struct Im2colItem {
    int64_t nl, g, cb, k, pv;
};

template <class I>
DCN_HD Im2colItem im2col_item(I item, I Lv, I kk, I nCb, I G) {
    Im2colItem q;
    I t = item;
    q.pv = t % Lv;
    t /= Lv;
    q.k = t % kk;
    t /= kk;
    q.cb = t % nCb;
    t /= nCb;
    q.g = t % G;
    q.nl = t / G;
    return q;
}

// One thread of the im2col kernel: items tid, tid + nthreads, ... of images [n0, n0 + nb)
// into col[nl][c][k][p]. I: the index type of the item loop (int32 when the launcher's
// fits_im2col_int32 holds); tensor offsets are 64-bit. colLo (float only, nullptr otherwise):
// 3xTF32 (deform_conv2d_plan.h): col gets each entry's TF32 hi half, colLo (same layout) its lo.
template <class T, class I, int V>
DCN_HD void deform_im2col_thread(I tid, I nthreads, const T* X, const T* offset, const T* mask,
                                 const DeformConvDims& d, int64_t n0, const Im2colPlan& pl, T* col,
                                 T* colLo = nullptr) {
    using Acc = typename AccOf<T>::type;
    const I total = static_cast<I>(pl.total), Lv = static_cast<I>(pl.Lv), nCb = static_cast<I>(pl.nCb);
    const I kk = static_cast<I>(d.kH * d.kW), G = static_cast<I>(d.offsetGroup), kW = static_cast<I>(d.kW);
    const I outW = static_cast<I>(d.outW);
    const int64_t ld = pl.ld, HW = d.H * d.W, Cg = d.C / d.offsetGroup;
    for (I item = tid; item < total; item += nthreads) {
        const Im2colItem q = im2col_item<I>(item, Lv, kk, nCb, G);
        const int64_t n = n0 + q.nl;
        const I p0 = static_cast<I>(q.pv) * V;
        const I i = static_cast<I>(q.k) / kW, j = static_cast<I>(q.k) % kW;
        I idx[V][4];  // plane offsets (< H*W, which fits I), < 0: neighbour outside
        Acc w[V][4];
        for (int v = 0; v < V; ++v) {
            const I p = p0 + v;
            const BilinearTaps<Acc, I> t = deform_im2col_taps<Acc, T, I>(offset, mask, d, n, q.g, i, j, p / outW, p % outW);
            for (int c = 0; c < 4; ++c) {
                idx[v][c] = static_cast<I>(t.idx[c]);
                w[v][c] = t.w[c];
            }
        }
        const int64_t c0 = q.g * Cg + q.cb * pl.cpt;
        const int64_t c1 = c0 + pl.cpt < (q.g + 1) * Cg ? c0 + pl.cpt : (q.g + 1) * Cg;
        const T* plane = X + (n * d.C + c0) * HW;
        int64_t at = ((q.nl * d.C + c0) * kk + q.k) * ld + p0;
        for (int64_t c = c0; c < c1; ++c, plane += HW, at += kk * ld) {
            Acc v[V];
            for (int e = 0; e < V; ++e) {
                Acc a = Acc(0);
                for (int cr = 0; cr < 4; ++cr)
                    if (idx[e][cr] >= 0) a += w[e][cr] * load<Acc>(plane[idx[e][cr]]);
                v[e] = a;
            }
            if constexpr (std::is_same<T, float>::value) {
                if (colLo != nullptr) {
                    float lo[V];
                    for (int e = 0; e < V; ++e) split_tf32(v[e], v[e], lo[e]);
                    store_vec<V, T>(colLo + at, lo);  // (dcn_launch.h: one V-wide store)
                }
            }
            store_vec<V, T>(col + at, v);
        }
    }
}

// int32 indices: the item loop (item + nthreads), the plane offsets (< H*W), the output positions
// (p0 < outH*outW: offset / mask planes and the column row) stay in int32, and the sampling positions
// split in float (deform_grid_exact_in_float).
DCN_HD bool fits_im2col_int32(const Im2colPlan& pl, int64_t blocks, const DeformConvDims& d) {
    return fits_int32(pl.total, blocks) && d.H * d.W <= int64_t(INT32_MAX) && d.outH * d.outW <= int64_t(INT32_MAX) &&
           deform_grid_exact_in_float(d);
}

// ---- DeformConv2d: the 3xTF32 weight split (deform_conv2d_plan.h) -----------------------
// n floats of src into hi and lo halves (split_tf32).
template <class I>
DCN_HD void split_tf32_thread(I tid, I nthreads, int64_t n, const float* src, float* hi, float* lo) {
    const I total = static_cast<I>(n);
    for (I q = tid; q < total; q += nthreads) {
        float h = 0.f, l = 0.f;
        split_tf32(src[q], h, l);
        hi[q] = h;
        lo[q] = l;
    }
}

// ---- DeformConv2d: bias broadcast (the GEMM then accumulates with beta = 1) ----------
// rows of ld values: Y[r*ld + p] = B[r % M] (rows = images * M; ld: Y's L, or the staging's ld).

template <class T, class I>
DCN_HD void fill_bias_thread(I tid, I nthreads, const T* B, int64_t M, int64_t rows, int64_t ld, T* Y) {
    const I total = static_cast<I>(rows * ld), Mi = static_cast<I>(M), ldi = static_cast<I>(ld);
    for (I idx = tid; idx < total; idx += nthreads) Y[idx] = B[(idx / ldi) % Mi];
}

}  // namespace launch
}  // namespace dcn
