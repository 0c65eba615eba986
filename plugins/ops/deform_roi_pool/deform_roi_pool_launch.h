// deform_roi_pool_launch.h: the work split, the item -> (RoI, channel block, bin) mapping and the
// per-thread body of dcn::DeformRoIPool's CUDA kernel (deform_roi_pool_kernels.cu), as
// __host__ __device__ code, run on the host by deform_roi_pool_host_kernels.cpp (launch rule:
// plugins/cuda/dcn_launch.h).
//
// One work item = (r, cb, bin): RoI r, block cb of K consecutive channels (c0 = cb*K; the last
// block may be shorter), bin = ph*pooled_width + pw. The item computes the bin once
// (deform_roi_pool_bin: batch index, sampling grid, start with the offset) and each sample's
// taps once (deform_roi_pool_taps: coordinates, RoIAlign's clamping, four neighbours and
// weights), and applies them to each of its K channels (apply_roi_align_taps), accumulating per
// channel: per channel the samples in order and the four corners in order, the very terms of
// deform_roi_pool_element in its order, so every output equals the element function's.
//   item = (r*nCb + cb)*bins + bin,  bins fastest: a warp's stores of one channel are adjacent
//   (Y[r][c][ph][pw], row-major), and its loads fall in one plane near each other.
// K: the most channels (kRoIPoolMaxChannels), no more than the power of two C rounds up to, while
// that leaves enough items to fill the GPU (kRoIPoolTargetItems), else halved (8, 4, 2, 1); with
// 64-bit indices (sizes past int32) K = 1,
// where 64-bit offsets leave no registers for more accumulators.
#pragma once

#include "dcn_launch.h"  // plugins/cuda
#include "deform_roi_pool_math.h"

#include <cstdint>

namespace dcn {
namespace launch {

constexpr int kRoIPoolMaxChannels = 8;                    // K at most (K accumulators per thread)
constexpr int64_t kRoIPoolTargetItems = int64_t(1) << 18;  // items wanted before K is halved
// int32 plane offsets: H and W at most this (exact in float, so floor(y) <= H stays in int32).
constexpr int64_t kRoIPoolMaxNarrowSide = int64_t(1) << 24;

struct RoIPoolPlan {
    int K;          // channels per item: 8, 4, 2 or 1
    int64_t nCb;    // channel blocks: ceil(C / K)
    int64_t bins;   // pooled_height * pooled_width
    int64_t total;  // items: R * nCb * bins
};

DCN_HD RoIPoolPlan roi_pool_plan(const DeformRoIPoolDims& d, int64_t target = kRoIPoolTargetItems,
                                 int max_k = kRoIPoolMaxChannels) {
    RoIPoolPlan pl{};
    pl.bins = d.pooled_height * d.pooled_width;
    pl.K = max_k;
    while (pl.K > 1 && pl.K / 2 >= d.C) pl.K /= 2;  // no more than C needs (C = 1: 1; 3 or 4: 4)
    while (pl.K > 1 && d.R * pl.bins * ((d.C + pl.K - 1) / pl.K) < target) pl.K /= 2;
    pl.nCb = (d.C + pl.K - 1) / pl.K;
    pl.total = d.R * pl.nCb * pl.bins;
    return pl;
}

struct RoIPoolItem {
    int64_t r, cb, bin, ph, pw;
};

template <class I> DCN_HD RoIPoolItem roi_pool_item(I item, I bins, I nCb, I PW) {
    RoIPoolItem q;
    const I bin = item % bins, rc = item / bins;
    q.bin = bin;
    q.cb = rc % nCb;
    q.r = rc / nCb;
    q.ph = bin / PW;
    q.pw = bin % PW;
    return q;
}

// int32 indices: the item loop (item + nthreads), the outputs (R*C*bins), the data offsets
// (N*C*H*W), the plane size (H*W: computed even with no images) and the plane offsets (H, W <=
// kRoIPoolMaxNarrowSide) all stay in int32.
DCN_HD bool fits_roi_pool_int32(const RoIPoolPlan& pl, int64_t blocks, const DeformRoIPoolDims& d) {
    return fits_int32(pl.total, blocks) && d.R * d.C * pl.bins <= int64_t(INT32_MAX) &&
           d.N * d.C * d.H * d.W <= int64_t(INT32_MAX) && d.H * d.W <= int64_t(INT32_MAX) &&
           d.H <= kRoIPoolMaxNarrowSide && d.W <= kRoIPoolMaxNarrowSide;
}

// The launcher's choice: the plan, and int32 indices when they fit (else K = 1 and int64).
// max_blocks > 0 caps the grid (host tests: the grid-stride loop).
DCN_HD RoIPoolPlan roi_pool_launch_plan(const DeformRoIPoolDims& d, bool* narrow, int64_t target = kRoIPoolTargetItems,
                                        int64_t max_blocks = 0) {
    RoIPoolPlan pl = roi_pool_plan(d, target);
    int64_t blocks = blocks_for(pl.total);
    if (max_blocks > 0 && blocks > max_blocks) blocks = max_blocks;
    *narrow = fits_roi_pool_int32(pl, blocks, d);
    return *narrow ? pl : roi_pool_plan(d, target, 1);
}

// One thread of the kernel: items tid, tid + nthreads, ... into Y [R, C, pooled_height,
// pooled_width]. I: int32_t when fits_roi_pool_int32 holds, else int64_t. rois: float32 (TR =
// float) for float32 and float16 data; TR = double for the host's float64 tests.
template <class T, class I, int K, class TR>
DCN_HD void deform_roi_pool_thread(I tid, I nthreads, const T* data, const TR* rois, const T* offset,
                                   const DeformRoIPoolDims& d, const RoIPoolPlan& pl, T* Y) {
    using Acc = typename AccOf<T>::type;
    const I total = static_cast<I>(pl.total), bins = static_cast<I>(pl.bins), nCb = static_cast<I>(pl.nCb);
    const I PW = static_cast<I>(d.pooled_width), C = static_cast<I>(d.C);
    const I H = static_cast<I>(d.H), W = static_cast<I>(d.W), HW = H * W;
    const T* off = d.has_offset ? offset : nullptr;
    for (I item = tid; item < total; item += nthreads) {
        const RoIPoolItem q = roi_pool_item<I>(item, bins, nCb, PW);
        const I r = static_cast<I>(q.r), c0 = static_cast<I>(q.cb) * K;
        const I nk = C - c0 < K ? C - c0 : K;  // channels of this block
        const RoIPoolBin<Acc> b = deform_roi_pool_bin<Acc>(rois, off, d, q.r, q.ph, q.pw);
        Acc acc[K];
        for (int k = 0; k < K; ++k) acc[k] = Acc(0);
        if (b.b >= 0) {
            const I at = (static_cast<I>(b.b) * C + c0) * HW;  // channel c0's plane
            // the samples that can count (<= kRoIPoolMaxGrid a side): roi_pool_rows / roi_pool_cols
            const SampleRun ry = roi_pool_rows(b, d.H), rx = roi_pool_cols(b, d.W);
            for (I iy = static_cast<I>(ry.lo); iy < static_cast<I>(ry.hi); ++iy)
                for (I ix = static_cast<I>(rx.lo); ix < static_cast<I>(rx.hi); ++ix) {
                    const RoIAlignTaps<Acc, I> t = deform_roi_pool_taps<Acc, I>(b, H, W, iy, ix);
                    // a sample outside the map adds +0 in the element: no change (a sum from +0 is never -0)
                    if (!t.inside) continue;
                    // channels past C (a partial last block) read channel C-1 and are never stored
                    for (int k = 0; k < K; ++k)
                        acc[k] += apply_roi_align_taps<Acc>(data, t, at + (k < nk ? k : nk - 1) * HW);
                }
        }
        const Acc count = Acc(deform_roi_pool_count(b));
        T* out = Y + (r * C + c0) * bins + static_cast<I>(q.bin);
        for (int k = 0; k < K; ++k)
            if (k < nk) out[k * bins] = store<T>(b.b >= 0 ? acc[k] / count : Acc(0));
    }
}

}  // namespace launch
}  // namespace dcn
