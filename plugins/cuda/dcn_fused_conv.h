// dcn_fused_conv.h: the fused (implicit-GEMM) DeformConv2d path, as __host__ __device__ code:
// its plan, workspace layout and every per-thread body except the tensor-core product itself,
// so that plugins/tests/host_kernels.cpp runs the very same tile loading, sampling and
// epilogue on the host (with a plain loop for the 16x16x16 products) and checks them against
// the float64 reference. The CUDA kernel (deform_conv_fused.cu) adds only the WMMA calls,
// shared memory and barriers. No TensorRT, no CUDA runtime API.
//
// The GEMM it computes is the im2col path's (dcn_conv_plan.h), without the column buffer:
//   Y[n, m, p] = B[m] + sum_K Wt[m, K] * col[n, K, p],   K = k*C + c (kernel point major)
// Per block: a BM x BN tile of (output channel m, pixel P = n*L + p over the whole batch).
// For each kernel point k and offset group g: the BN pixels' bilinear taps are computed once
// (fused_tap_thread: dcn_math.h deform_im2col_taps, mask folded in), then for each slice of
// BK channels of group g (kFusedBK divides C / offset_group): the A tile (weights, from the
// tap-major copy Wt) and the B tile (samples from the channels-last copy Xt of X, BK
// channels per pixel, 16-byte loads on the GPU) go to shared memory in half precision, and
// the tensor cores accumulate A x B in float32. The B tile holds exactly the im2col path's
// column entries (same taps, same order of terms, float accumulation, stored as half).
//   workspace = [ pad to 256 B | Xt: N*H*W*C | Wt: M*kH*kW*C ]   (half, each 256-byte aligned)
// Only for half data, group == 1, C / offset_group a multiple of kFusedBK (detection
// backbones: 3x3, C = 128 .. 2048); the plan (dcn_conv_plan.h) falls back to im2col
// otherwise and while the path is switched off.
#pragma once

#include "dcn_math.h"  // plugins/common

#include <cstdint>
#include <cstring>

namespace dcn {
namespace fused {

constexpr int kBM = 128;      // output channels per block
constexpr int kBN = 128;      // pixels per block
constexpr int kBK = 32;       // channels per K step
constexpr int kThreads = 256;  // 8 warps: 2 (M) x 4 (N), each 64 x 32 of the tile
constexpr int kLdA = kBK + 8;  // shared A row stride (halves): 80 bytes, rows 16-byte aligned
constexpr int kLdB = kBK + 8;  // shared B: one pixel's kBK channels per row (WMMA col_major B)
constexpr int kLdC = kBN + 4;  // epilogue staging row stride (floats), half of the M tile at a time
constexpr int kVec = 8;        // halves per 16-byte vector
constexpr int64_t kAlign = 256;

DCN_HD int64_t align_up(int64_t v) { return (v + kAlign - 1) / kAlign * kAlign; }

// 8 elements (16 bytes for half) from src to dst: one 16-byte load / store on the GPU, where every
// caller's addresses are 16-byte aligned (256-aligned buffers, channel offsets multiples of 8).
template <class T> DCN_HD void copy_vec(T* dst, const T* src) {
#if defined(__CUDA_ARCH__)
    if constexpr (sizeof(T) == 2)
        *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(src);
    else
        memcpy(dst, src, kVec * sizeof(T));
#else
    memcpy(dst, src, kVec * sizeof(T));
#endif
}

// The shapes and types the fused path takes.
DCN_HD bool applicable(const DeformConvDims& d, bool half) {
    if (!half || d.group != 1 || d.offsetGroup < 1 || d.C % d.offsetGroup != 0) return false;
    if ((d.C / d.offsetGroup) % kBK != 0 || d.M < 1) return false;
    // 32-bit tile arithmetic: pixels of the batch, NHWC offsets and weight rows fit int32
    const int64_t L = d.outH * d.outW;
    return d.N * L <= int64_t(INT32_MAX) - kBN && d.N * d.H * d.W * d.C <= int64_t(INT32_MAX) &&
           d.M * d.kH * d.kW * d.C <= int64_t(INT32_MAX);
}

// Workspace parts (bytes from the 256-aligned base), for elements of elemBytes.
struct Layout {
    int64_t xt, wt, bytes;  // offsets of Xt and Wt; bytes used from the aligned base
};
DCN_HD Layout layout(const DeformConvDims& d, int64_t elemBytes) {
    Layout l;
    l.xt = 0;
    l.wt = align_up(d.N * d.H * d.W * d.C * elemBytes);
    l.bytes = l.wt + align_up(d.M * d.kH * d.kW * d.C * elemBytes);
    return l;
}

struct Grid {
    int64_t tilesN, tilesM;  // blocks along pixels (x) and output channels (y)
};
DCN_HD Grid grid(const DeformConvDims& d) {
    const int64_t P = d.N * d.outH * d.outW;
    return Grid{(P + kBN - 1) / kBN, (d.M + kBM - 1) / kBM};
}

// ---- preparation: channels-last X, tap-major W (grid-stride, one element group a thread)

// Xt[n, h, w, c] = X[n, c, h, w]; item = (n, c8, hw), hw fastest: 8 coalesced reads, one 8-wide write.
DCN_HD int64_t nhwc_items(const DeformConvDims& d) { return d.N * (d.C / kVec) * d.H * d.W; }
template <class T, class I>
DCN_HD void nhwc_thread(I tid, I nthreads, const T* X, const DeformConvDims& d, T* Xt) {
    const I HW = static_cast<I>(d.H * d.W), C8 = static_cast<I>(d.C / kVec), C = static_cast<I>(d.C);
    const I total = static_cast<I>(nhwc_items(d));
    for (I item = tid; item < total; item += nthreads) {
        const I hw = item % HW, t = item / HW;
        const I c8 = t % C8, n = t / C8;
        const T* src = X + (static_cast<int64_t>(n) * C + c8 * kVec) * HW + hw;
        alignas(16) T v[kVec];
        for (int e = 0; e < kVec; ++e) v[e] = src[static_cast<int64_t>(e) * HW];
        copy_vec(Xt + (static_cast<int64_t>(n) * HW + hw) * C + c8 * kVec, v);
    }
}

// Wt[m, k, c] = W[m, c, k] (group 1); item = (m, k, c), c fastest (coalesced writes).
DCN_HD int64_t weight_items(const DeformConvDims& d) { return d.M * d.kH * d.kW * d.C; }
template <class T, class I>
DCN_HD void weight_thread(I tid, I nthreads, const T* W, const DeformConvDims& d, T* Wt) {
    const I C = static_cast<I>(d.C), kk = static_cast<I>(d.kH * d.kW);
    const I total = static_cast<I>(weight_items(d));
    for (I item = tid; item < total; item += nthreads) {
        const I c = item % C, t = item / C;
        const I k = t % kk, m = t / kk;
        Wt[item] = W[(static_cast<int64_t>(m) * C + c) * kk + k];
    }
}

// ---- one block's work

// The taps of one pixel for one kernel point and offset group: NHWC pixel offsets inside the
// image (h*W + w, < 0: neighbour outside) and weights (mask folded in). n < 0: no pixel.
template <class Acc> struct Tap {
    int32_t pix[4];
    Acc w[4];
    int32_t n;
};

// Thread `pix` (< kBN) of block column tileN: its pixel's taps for kernel point k, group g.
template <class Acc, class T>
DCN_HD Tap<Acc> fused_tap(const T* offset, const T* mask, const DeformConvDims& d, int64_t tileN, int pix,
                          int64_t k, int64_t g) {
    Tap<Acc> tp;
    const int64_t L = d.outH * d.outW;
    const int64_t P = tileN * kBN + pix;
    for (int q = 0; q < 4; ++q) {
        tp.pix[q] = -1;
        tp.w[q] = Acc(0);
    }
    tp.n = -1;
    if (P >= d.N * L) return tp;
    const int64_t n = P / L, p = P % L;
    const BilinearTaps<Acc> t =
        deform_im2col_taps<Acc>(offset, mask, d, n, g, k / d.kW, k % d.kW, p / d.outW, p % d.outW);
    for (int q = 0; q < 4; ++q) {
        tp.pix[q] = static_cast<int32_t>(t.idx[q]);
        tp.w[q] = t.w[q];
    }
    tp.n = static_cast<int32_t>(n);
    return tp;
}

// Sampling thread tid (< kThreads) of the B tile: pixel tid / 2, channels c0 + (tid % 2) * 16 ..
// + 16 of that pixel, written to Bs[pix * kLdB + (tid % 2) * 16 ...] as T: the im2col column
// entries sum_q w_q * Xt[n, pix_q, c] in Acc, in apply_taps' order (corners 0..3, outside skipped).
template <class Acc, class T>
DCN_HD void fused_sample(int tid, const T* Xt, const DeformConvDims& d, const Tap<Acc>* taps, int64_t c0, T* Bs) {
    constexpr int kPer = kBK / 2;  // 16 channels a thread, in vectors of kVec (few live registers)
    const int pix = tid >> 1, part = tid & 1;
    const Tap<Acc>& tp = taps[pix];
    const T* img = Xt + static_cast<int64_t>(tp.n < 0 ? 0 : tp.n) * d.H * d.W * d.C + c0 + part * kPer;
    T* dst = Bs + pix * kLdB + part * kPer;
    for (int h = 0; h < kPer; h += kVec) {
        Acc acc[kVec];
        for (int e = 0; e < kVec; ++e) acc[e] = Acc(0);
        if (tp.n >= 0) {
            for (int q = 0; q < 4; ++q) {
                if (tp.pix[q] < 0) continue;
                alignas(16) T v[kVec];
                copy_vec(v, img + static_cast<int64_t>(tp.pix[q]) * d.C + h);  // one 16-byte load
                for (int e = 0; e < kVec; ++e) acc[e] += tp.w[q] * load<Acc>(v[e]);
            }
        }
        alignas(16) T out[kVec];
        for (int e = 0; e < kVec; ++e) out[e] = store<T>(acc[e]);
        copy_vec(dst + h, out);
    }
}

// A tile loader thread tid: rows m0 + (tid + i*kThreads) / 4, 8 halves each (4 vectors a row),
// from Wt[m, kcol .. kcol + kBK) (kcol = k*C + c0); rows past M are zero.
template <class T>
DCN_HD void fused_load_a(int tid, const T* Wt, const DeformConvDims& d, int64_t m0, int64_t kcol, T* As) {
    const int64_t K = d.kH * d.kW * d.C;
    constexpr int kSegs = kBK / kVec;
    for (int i = 0; i < kBM * kSegs / kThreads; ++i) {
        const int idx = tid + i * kThreads;
        const int row = idx / kSegs, seg = idx % kSegs;
        alignas(16) T v[kVec];
        if (m0 + row < d.M)
            copy_vec(v, Wt + (m0 + row) * K + kcol + seg * kVec);
        else
            for (int e = 0; e < kVec; ++e) v[e] = store<T>(0.0f);
        copy_vec(As + row * kLdA + seg * kVec, v);
    }
}

// Epilogue thread tid for half `h` (0, 1) of the M tile: Cs[r][pix] (r < kBM / 2, float,
// row stride kLdC) + B[m] to Y[n, m, p] for m = m0 + h * kBM / 2 + r; pixel tid % kBN, rows
// tid / kBN, + 2, ...: consecutive threads write consecutive pixels.
template <class T, class CT>
DCN_HD void fused_store(int tid, const CT* Cs, const T* B, const DeformConvDims& d, int64_t tileN, int64_t m0,
                        int h, T* Y) {
    const int64_t L = d.outH * d.outW;
    const int pix = tid % kBN;
    const int64_t P = tileN * kBN + pix;
    if (P >= d.N * L) return;
    const int64_t n = P / L, p = P % L;
    for (int r = tid / kBN; r < kBM / 2; r += kThreads / kBN) {
        const int64_t m = m0 + h * (kBM / 2) + r;
        if (m >= d.M) break;
        CT v = Cs[r * kLdC + pix];
        if (B != nullptr) v += load<CT>(B[m]);
        Y[(n * d.M + m) * L + p] = store<T>(v);
    }
}

}  // namespace fused
}  // namespace dcn
