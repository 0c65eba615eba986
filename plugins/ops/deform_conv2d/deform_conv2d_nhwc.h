// deform_conv2d_nhwc.h: the channels-last im2col path of DeformConv2d (FP16), as __host__ __device__
// code: the fused kernel's sampling (a channels-last copy Xt of X, 16-byte loads of a neighbour's
// channels) writing a column buffer in the fused kernel's K order, multiplied by one cuBLAS GEMM
// (deform_conv2d_enqueue.h nhwc_enqueue). Run on the host by deform_conv2d_host_kernels.cpp.
//
// Why: the NCHW im2col kernel (deform_conv2d_launch.h) gathers one 2-byte value per neighbour and
// channel, pixels across a warp's lanes (an H200 ran it L1-bound: 94 % hits, 75 % of stalls on
// L1TEX); here a warp's lanes cover the channels of a few samples, so each neighbour is one 16-byte
// load a lane and a sample's channels are whole cache lines, and the columns are written 16 bytes a lane.
// Not yet run on a GPU: off by default (deform_conv2d_plan.h, DCN_DEFORM_CONV_IM2COL=nhwc).
//
// Per chunk of images [n0, n0 + nb):
//   Xt[nl, h, w, c]  = X[n0 + nl, c, h, w]                      fused::nhwc_thread on the chunk
//   col[nl, p, K]    = sum_q w_q * Xt[nl, pix_q, c]   K = k*C + c  (kernel point major, group 1)
//   Y[n0 + nl]       = Wt x col[nl]^T                            Wt[m, K] = W[m, c, k] (fused::weight_thread)
// The column entries are the NCHW im2col's, term for term (the same taps, deform_im2col_taps with
// the mask folded in; corners 0..3 summed in float, a neighbour outside adding nothing; stored as T):
// only the GEMM's order of K differs.
//   item = (((nl*L + p)*kk + k)*G + g)*nv + v    v: the offset group's vectors of kVec channels, fastest,
// so a warp's lanes hold the channels of 32 / nv samples of one pixel's consecutive kernel points:
// adjacent vectors of Xt (loads) and of col (stores). Each lane computes its sample's taps (the lanes
// of a sample read the same offset and mask: one broadcast load).
#pragma once

#include "dcn_launch.h"  // plugins/cuda
#include "deform_conv2d_fused.h"
#include "deform_conv2d_math.h"

#include <cstdint>

namespace dcn {
namespace nhwc {

constexpr int kVec = fused::kVec;  // channels a vector (8 halves: 16 bytes)
// __launch_bounds__'s minimum blocks of launch::kThreads per SM: up to 85 registers (the four neighbours'
// vectors are loaded before they are summed, 16 registers, besides the taps and 64-bit offsets; at the
// default 64 the int64 instance spilled).
constexpr int kMinBlocksPerSM = 3;

// The kinds of problem the path takes, whatever N, H and W: half data, one group, offset groups of
// a whole number of vectors (fused::nhwc_thread copies C in vectors too).
DCN_HD bool applicable(const DeformConvDims& d, bool half) {
    if (!half || d.group != 1 || d.offsetGroup < 1 || d.C % d.offsetGroup != 0 || d.M < 1) return false;
    const int64_t Cg = d.C / d.offsetGroup;
    return Cg >= kVec && Cg % kVec == 0;
}

// Items of the sampling kernel for a chunk of nb images.
DCN_HD int64_t items(const DeformConvDims& d, int64_t nb) {
    const int64_t nv = d.offsetGroup > 0 ? d.C / d.offsetGroup / kVec : 0;
    return nb * d.outH * d.outW * d.kH * d.kW * d.offsetGroup * nv;
}

// The chunk's dims for fused::nhwc_thread (X of the chunk's first image on, N = nb).
DCN_HD DeformConvDims chunk_dims(const DeformConvDims& d, int64_t nb) {
    DeformConvDims c = d;
    c.N = nb;
    return c;
}

// kVec column entries as T: one 16-byte store on the device (half: four half2 words, __stwb; a plain
// uint4 assignment, like launch::store_vec's, was split into four or six stores here, the address's
// alignment being unknown to nvcc), launch::store_vec on the host (which notes the access's alignment);
// element by element for the types only the host runs. Rounded to nearest as store<T>.
template <class T, class Acc> DCN_HD void store_column(T* dst, const Acc* acc) {
#if defined(__CUDA_ARCH__)
    if constexpr (sizeof(T) == 2) {
        uint32_t w[kVec / 2];
        for (int e = 0; e < kVec / 2; ++e) {
            const __half2 h = __floats2half2_rn(acc[2 * e], acc[2 * e + 1]);
            w[e] = *reinterpret_cast<const uint32_t*>(&h);
        }
        __stwb(reinterpret_cast<uint4*>(dst), make_uint4(w[0], w[1], w[2], w[3]));  // st.global.wb.v4
        return;
    }
#else
    if (sizeof(T) == 2) {  // the device's 16-byte store (half only: the other types run on the host only)
        launch::store_vec<kVec, T>(dst, acc);
        return;
    }
#endif
    for (int e = 0; e < kVec; ++e) dst[e] = store<T>(acc[e]);
}

// One thread of the sampling kernel: items tid, tid + nthreads, ... of images [n0, n0 + nb) (Xt: the
// chunk's channels-last copy) into col[nl][p][K]. I: the item loop's index type (int32 where
// items(d, nb) and the grid fit); offsets are 64-bit.
template <class T, class I>
DCN_HD void im2col_thread(I tid, I nthreads, const T* Xt, const T* offset, const T* mask, const DeformConvDims& d,
                          int64_t n0, int64_t nb, T* col) {
    using Acc = typename AccOf<T>::type;
    const int64_t L = d.outH * d.outW, kk = d.kH * d.kW, G = d.offsetGroup, Cg = d.C / G, C = d.C;
    const I total = static_cast<I>(items(d, nb)), nv = static_cast<I>(Cg / kVec);
    const I Gi = static_cast<I>(G), kki = static_cast<I>(kk), Li = static_cast<I>(L);
    const I kW = static_cast<I>(d.kW), outW = static_cast<I>(d.outW);
    const int64_t image = d.H * d.W * C;
    for (I item = tid; item < total; item += nthreads) {
        I t = item;
        const I v = t % nv;
        t /= nv;
        const I g = t % Gi;
        t /= Gi;
        const I k = t % kki;
        t /= kki;
        const I p = t % Li;
        const I nl = t / Li;
        const BilinearTaps<Acc> tp = deform_im2col_taps<Acc>(offset, mask, d, n0 + nl, g, k / kW, k % kW, p / outW,
                                                             p % outW);
        const int64_t c0 = static_cast<int64_t>(g) * Cg + static_cast<int64_t>(v) * kVec;
        const T* img = Xt + static_cast<int64_t>(nl) * image + c0;
        alignas(16) T x[4][kVec];
        for (int q = 0; q < 4; ++q)
            if (tp.idx[q] >= 0) fused::copy_vec(x[q], img + tp.idx[q] * C);  // idx: h*W + w, the NHWC pixel
        Acc acc[kVec];
        for (int e = 0; e < kVec; ++e) {
            acc[e] = Acc(0);
            for (int q = 0; q < 4; ++q)
                if (tp.idx[q] >= 0) acc[e] += tp.w[q] * load<Acc>(x[q][e]);
        }
        store_column(col + (static_cast<int64_t>(nl) * L + p) * (kk * C) + static_cast<int64_t>(k) * C + c0, acc);
    }
}

}  // namespace nhwc
}  // namespace dcn
