// dcn_taps_block.h: taps blocks, the bilinear taps of many samples laid out for sampling one plane
// (or many channels) many times, vectorised on the host; for the host (g++ -std=c++17) and CUDA
// (nvcc), on dcn_math.h's bilinear sampling (BilinearTaps). Nothing here names an op.
//
// API:
//
//   template<class Acc, int B> struct TapsBlock { int32_t base[B]; Acc w[4][B]; };
//   DCN_HD bool block_sampling_ok(int64_t H, int64_t W);             H, W >= 2, H*W <= INT32_MAX
//   template<class Acc, int B> DCN_HD void set_taps(TapsBlock<Acc, B>&, int p, const BilinearTaps<Acc>&,
//                                                   int64_t H, int64_t W);
//   template<class Acc, class T, int B> DCN_HD Acc window_sum(const TapsBlock<Acc, B>&, int p,
//       T v00, T v01, T v10, T v11);   sample p from its window's four values (every block function's sum)
//   template<class Acc, class T, int B> DCN_HD void apply_taps_block(const T* plane, int64_t W,
//       const TapsBlock<Acc, B>&, int n, Acc* out);
//       the taps of B samples as one base index and four window weights each: out[p] =
//       apply_taps(plane, taps p), vectorised on the host; only for planes of finite values.
//   template<int NC, class Acc, class T, int B> DCN_HD void apply_taps_block_planes(const T* plane,
//       int64_t plane_stride, int64_t W, const TapsBlock<Acc, B>&, int n, Acc* out, int64_t out_stride);
//       the same for NC planes at once (plane + j*plane_stride into out + j*out_stride, j < NC):
//       each sample's base index and weights loaded once for the NC planes; equal bit for bit to
//       NC calls of apply_taps_block.
//   template<class Acc, class T, int B> DCN_HD void apply_taps_block_run(int64_t nc, const T* plane,
//       int64_t plane_stride, int64_t W, const TapsBlock<Acc, B>&, int n, Acc* out, int64_t out_stride);
//       apply_taps_block_planes over nc planes (any nc >= 0), kTapsRun at a time.
//   template<class Acc, class T, int B> DCN_HD void apply_taps_block_channels(const T* x,
//       int64_t pixel_stride, int64_t nc, int64_t W, const TapsBlock<Acc, B>&, int n, Acc* out,
//       int64_t out_stride);
//       the same samples from nc channels stored channels-last (channel c of pixel i at
//       x[i*pixel_stride + c]) into out[p*out_stride + c]; equal bit for bit to apply_taps_block
//       of each channel's plane; vectorised over channels on the host.
#pragma once

#include "dcn_math.h"

namespace dcn {

// B samples' taps for sampling one plane many times (every channel of an offset group):
// per sample, the 2x2 window at (hb, wb) = (clamp(hl, 0, H-2), clamp(wl, 0, W-2)), which holds
// every neighbour inside the map, as base = hb*W + wb (neighbours at base, base+1, base+W,
// base+W+1, all inside the plane) and the four window slots' weights (0 where no neighbour).
// Needs H >= 2, W >= 2 and H*W <= INT32_MAX (block_sampling_ok).
template <class Acc, int B> struct TapsBlock {
    int32_t base[B];
    Acc w[4][B];
};

DCN_HD bool block_sampling_ok(int64_t H, int64_t W) { return H >= 2 && W >= 2 && H * W <= INT32_MAX; }

template <class Acc, int B>
DCN_HD void set_taps(TapsBlock<Acc, B>& blk, int p, const BilinearTaps<Acc>& t, int64_t H, int64_t W) {
    const int64_t hb = t.hl < 0 ? 0 : (t.hl > H - 2 ? H - 2 : t.hl);
    const int64_t wb = t.wl < 0 ? 0 : (t.wl > W - 2 ? W - 2 : t.wl);
    blk.base[p] = static_cast<int32_t>(hb * W + wb);
    for (int s = 0; s < 4; ++s) blk.w[s][p] = Acc(0);
    for (int q = 0; q < 4; ++q) {
        if (t.idx[q] < 0) continue;
        // neighbour q = (hl + q/2, wl + q%2) lands on window slot (row - hb, col - wb), in the same order
        const int64_t slot = (t.hl + q / 2 - hb) * 2 + (t.wl + q % 2 - wb);
        blk.w[slot][p] = t.w[q];
    }
}

// Sample p of a taps block from its window's four values (slots 0 .. 3: top left, top right,
// bottom left, bottom right): the weighted sum, slot by slot, as every block function sums it.
template <class Acc, class T, int B>
DCN_HD Acc window_sum(const TapsBlock<Acc, B>& blk, int p, T v00, T v01, T v10, T v11) {
    Acc v = Acc(0);
    v += blk.w[0][p] * load<Acc>(v00);
    v += blk.w[1][p] * load<Acc>(v01);
    v += blk.w[2][p] * load<Acc>(v10);
    v += blk.w[3][p] * load<Acc>(v11);
    return v;
}

// out[p] = apply_taps(plane, taps of sample p) for p < n: the same terms in the same order,
// plus 0 * (a value inside the plane) for the empty slots. Equal to apply_taps only when every
// value of the plane is finite (0 * inf is NaN): callers check that, else use apply_taps.
// NC planes at once (plane j at plane + j * plane_stride, its samples at out + j * out_stride):
// each sample's base index and four weights are loaded once for all of them (per value, four
// loads of the taps become 4 / NC; measured on 64x64 planes of 128 channels, 2 MiB of L2: 0.71
// ns a value with one plane, 0.59 with four, and 1.04 -> 0.62 on 100x100 planes, where one
// plane's pass over all its taps blocks evicted the blocks from L1).
template <int NC, class Acc, class T, int B>
DCN_HD void apply_taps_block_planes(const T* plane, int64_t plane_stride, int64_t W, const TapsBlock<Acc, B>& blk,
                                    int n, Acc* out, int64_t out_stride) {
    static_assert(NC >= 1, "at least one plane");
    int p = 0;
#if !defined(__CUDACC__) && (defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12))
    if constexpr (std::is_same<Acc, float>::value && std::is_same<T, float>::value) {
        // 4 samples at a time (SSE on any x86-64): each sample's two window rows are two pairs
        // of adjacent floats, loaded 8 bytes at a time and unzipped into the four slot vectors.
        typedef float v4 __attribute__((vector_size(16)));
        const float* pf = reinterpret_cast<const float*>(plane);
        const float* pb = pf + W;  // the windows' bottom rows
        __asm__("" : "+r"(pb));  // a pointer of its own: no "+ W" per load (GCC would fold pb into pf + (base + W))
        for (; p + 4 <= n; p += 4) {
            int32_t base[4];
            for (int l = 0; l < 4; ++l) base[l] = blk.base[p + l];
            v4 w00, w01, w10, w11;
            memcpy(&w00, &blk.w[0][p], sizeof w00);
            memcpy(&w01, &blk.w[1][p], sizeof w01);
            memcpy(&w10, &blk.w[2][p], sizeof w10);
            memcpy(&w11, &blk.w[3][p], sizeof w11);
            for (int j = 0; j < NC; ++j) {
                const float* pt = pf + j * plane_stride;
                const float* pd = pb + j * plane_stride;
                float top[8], bot[8];  // (x00, x01) and (x10, x11) of samples p .. p+3
                for (int l = 0; l < 4; ++l) {
                    memcpy(top + 2 * l, pt + base[l], 2 * sizeof(float));
                    memcpy(bot + 2 * l, pd + base[l], 2 * sizeof(float));
                }
                v4 t01, t23, b01, b23;
                memcpy(&t01, top, sizeof t01);
                memcpy(&t23, top + 4, sizeof t23);
                memcpy(&b01, bot, sizeof b01);
                memcpy(&b23, bot + 4, sizeof b23);
                v4 v = {0.0f, 0.0f, 0.0f, 0.0f};
                v += w00 * __builtin_shufflevector(t01, t23, 0, 2, 4, 6);
                v += w01 * __builtin_shufflevector(t01, t23, 1, 3, 5, 7);
                v += w10 * __builtin_shufflevector(b01, b23, 0, 2, 4, 6);
                v += w11 * __builtin_shufflevector(b01, b23, 1, 3, 5, 7);
                memcpy(reinterpret_cast<float*>(out) + j * out_stride + p, &v, sizeof v);
            }
        }
    }
#endif
    for (; p < n; ++p) {
        const int32_t base = blk.base[p];
        for (int j = 0; j < NC; ++j) {
            const T* q = plane + j * plane_stride + base;
            out[j * out_stride + p] = window_sum(blk, p, q[0], q[1], q[W], q[W + 1]);
        }
    }
}

// Channels-last: channel c of pixel i at x[i * pixel_stride + c], so that a sample's four
// neighbours are four runs of nc adjacent values (where planes need two 8-byte loads and their
// unzipping per sample and channel). out[p * out_stride + c] for p < n, c < nc: the same terms in
// the same order as apply_taps_block_planes (equal to it bit for bit, so only for finite values
// as it). On the host, for float, four channels at a time (SSE on any x86-64). Measured (one
// thread, a c3 layer's 128 channels of 64x64, columns in L2): 0.24 ns a value, 0.43 with planes.
template <class Acc, class T, int B>
DCN_HD void apply_taps_block_channels(const T* x, int64_t pixel_stride, int64_t nc, int64_t W,
                                      const TapsBlock<Acc, B>& blk, int n, Acc* out, int64_t out_stride) {
    for (int p = 0; p < n; ++p) {
        const T* x00 = x + static_cast<int64_t>(blk.base[p]) * pixel_stride;
        const T* x01 = x00 + pixel_stride;
        const T* x10 = x00 + W * pixel_stride;
        const T* x11 = x10 + pixel_stride;
        Acc* o = out + p * out_stride;
        int64_t c = 0;
#if !defined(__CUDACC__) && (defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12))
        if constexpr (std::is_same<Acc, float>::value && std::is_same<T, float>::value) {
            typedef float v4 __attribute__((vector_size(16)));
            const v4 a00 = v4{} + blk.w[0][p], a01 = v4{} + blk.w[1][p];
            const v4 a10 = v4{} + blk.w[2][p], a11 = v4{} + blk.w[3][p];
            for (; c + 4 <= nc; c += 4) {
                v4 t00, t01, t10, t11;
                memcpy(&t00, x00 + c, sizeof t00);
                memcpy(&t01, x01 + c, sizeof t01);
                memcpy(&t10, x10 + c, sizeof t10);
                memcpy(&t11, x11 + c, sizeof t11);
                v4 v = {0.0f, 0.0f, 0.0f, 0.0f};
                v += a00 * t00;
                v += a01 * t01;
                v += a10 * t10;
                v += a11 * t11;
                memcpy(o + c, &v, sizeof v);
            }
        }
#endif
        for (; c < nc; ++c) o[c] = window_sum(blk, p, x00[c], x01[c], x10[c], x11[c]);
    }
}

template <class Acc, class T, int B>
DCN_HD void apply_taps_block(const T* plane, int64_t W, const TapsBlock<Acc, B>& blk, int n, Acc* out) {
    apply_taps_block_planes<1>(plane, 0, W, blk, n, out, 0);
}

// The most planes apply_taps_block_run samples together (measured: see apply_taps_block_planes).
constexpr int kTapsRun = 4;
template <class Acc, class T, int B>
DCN_HD void apply_taps_block_run(int64_t nc, const T* plane, int64_t plane_stride, int64_t W,
                                 const TapsBlock<Acc, B>& blk, int n, Acc* out, int64_t out_stride) {
    static_assert(kTapsRun == 4, "the switch below takes 1 .. 4 planes");
    for (; nc > 0; nc -= kTapsRun, plane += kTapsRun * plane_stride, out += kTapsRun * out_stride) {
        switch (nc < kTapsRun ? nc : kTapsRun) {
            case 4: apply_taps_block_planes<4>(plane, plane_stride, W, blk, n, out, out_stride); break;
            case 3: apply_taps_block_planes<3>(plane, plane_stride, W, blk, n, out, out_stride); break;
            case 2: apply_taps_block_planes<2>(plane, plane_stride, W, blk, n, out, out_stride); break;
            default: apply_taps_block_planes<1>(plane, plane_stride, W, blk, n, out, out_stride); break;
        }
    }
}

}  // namespace dcn
