// DeformConv2d, fused FP16 path: channels-last copy of X, tap-major copy of W, then one
// implicit-GEMM kernel on the tensor cores (WMMA 16x16x16, half inputs, float accumulation)
// that samples straight into shared-memory tiles and never writes a column buffer. Two such
// kernels: the one-stage kernel (loads, tiles, products in turn, two barriers a step; measured on
// an H200) and the two-stage one (the next step's loads in flight while the tensor cores multiply
// this step's tiles; one barrier a step; deform_conv2d_fused.h Schedule), which the plan takes only
// when DCN_DEFORM_CONV_FUSED_KERNEL=pipelined until it has run right on a GPU.
// Every per-thread body (tiles, taps, sampling, epilogue, the schedule) is deform_conv2d_fused.h,
// run on the host by deform_conv2d_host_fused.cpp; this file adds the WMMA products, shared memory
// and barriers. Whether the fused path runs is the plan's choice (deform_conv2d_plan.h choose_path).
#include <mma.h>

#include "dcn_launch.cuh"  // plugins/cuda
#include "deform_conv2d_fused.h"
#include "deform_conv2d_kernels.h"
#include "deform_conv2d_nhwc.h"

namespace dcn {
namespace cuda {
namespace {

using fused::kBK;
using fused::kBM;
using fused::kBN;
using fused::kLdA;
using fused::kLdB;
using fused::kLdC;

template <class I>
__global__ void __launch_bounds__(launch::kThreads, launch::kMinBlocksPerSM)
    dcn_fused_nhwc_kernel(const __half* __restrict__ X, const DeformConvDims d, __half* __restrict__ Xt) {
    I tid, nthreads;
    thread_range(tid, nthreads);
    fused::nhwc_thread<__half, I>(tid, nthreads, X, d, Xt);
}

template <class I>
__global__ void __launch_bounds__(launch::kThreads, launch::kMinBlocksPerSM)
    dcn_fused_weight_kernel(const __half* __restrict__ W, const DeformConvDims d, __half* __restrict__ Wt) {
    I tid, nthreads;
    thread_range(tid, nthreads);
    fused::weight_thread<__half, I>(tid, nthreads, W, d, Wt);
}

// The channels-last im2col path's sampling (deform_conv2d_nhwc.h), beside the copies it shares with the
// fused kernels.
template <class I>
__global__ void __launch_bounds__(launch::kThreads, nhwc::kMinBlocksPerSM)
    dcn_nhwc_im2col_kernel(const __half* __restrict__ Xt, const __half* __restrict__ offset,
                           const __half* __restrict__ mask, const DeformConvDims d, int64_t n0, int64_t nb,
                           __half* __restrict__ col) {
    I tid, nthreads;
    thread_range(tid, nthreads);
    nhwc::im2col_thread<__half, I>(tid, nthreads, Xt, offset, mask, d, n0, nb, col);
}

struct MainTiles {
    __half A[kBM * kLdA];  // weights: kBM rows x kBK channels (row-major)
    __half B[kBN * kLdB];  // samples: kBN pixels x kBK channels (the GEMM's B, column-major)
    fused::Tap<float> taps[kBN];
    fused::Pixel pixels[kBN];
};
union __align__(32) Tiles {
    MainTiles main;
    float C[kBM / 2 * kLdC];  // epilogue: half of the M tile at a time
};

// One block: output channels [blockIdx.y * kBM, + kBM) x pixels [blockIdx.x * kBN, + kBN) of the batch.
// Warps 4 (M) x 4 (N), each 32 x 32: 2 x 2 accumulator fragments.
constexpr int kFm = fused::kWarpM / 16, kFn = fused::kWarpN / 16;
using Acc = nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, 16, float>;

// acc (the warp's 32 x 32 of the tile) += A tile (rows wm * 32 ..) x B tile (pixels wn * 32 ..), kBK deep.
__device__ __forceinline__ void mma_tiles(Acc (&acc)[kFm][kFn], const __half* As, const __half* Bs, int wm, int wn) {
    using namespace nvcuda;
#pragma unroll
    for (int ks = 0; ks < kBK; ks += 16) {
        wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::col_major> b[kFn];
#pragma unroll
        for (int j = 0; j < kFn; ++j)
            wmma::load_matrix_sync(b[j], Bs + (wn * fused::kWarpN + j * 16) * kLdB + ks, kLdB);
#pragma unroll
        for (int i = 0; i < kFm; ++i) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> a;
            wmma::load_matrix_sync(a, As + (wm * fused::kWarpM + i * 16) * kLdA + ks, kLdA);
#pragma unroll
            for (int j = 0; j < kFn; ++j) wmma::mma_sync(acc[i][j], a, b[j], acc[i][j]);
        }
    }
}

// The epilogue: the accumulators through shared memory (Cs: kBM / 2 rows of kLdC floats, half of
// the M tile at a time) to Y, + B. Starts and ends with every thread past a barrier.
__device__ __forceinline__ void store_tile(Acc (&acc)[kFm][kFn], float* Cs, int tid, int wm, int wn,
                                           const __half* __restrict__ B, const DeformConvDims& d, int64_t tileN,
                                           int64_t m0, __half* __restrict__ Y) {
    using namespace nvcuda;
    constexpr int kWarpRowsPerHalf = kBM / 2 / fused::kWarpM;  // warp rows staged per half (2)
    for (int h = 0; h < 2; ++h) {
        if (wm / kWarpRowsPerHalf == h)
            for (int i = 0; i < kFm; ++i)
                for (int j = 0; j < kFn; ++j)
                    wmma::store_matrix_sync(Cs + ((wm % kWarpRowsPerHalf) * fused::kWarpM + i * 16) * kLdC +
                                                wn * fused::kWarpN + j * 16,
                                            acc[i][j], kLdC, wmma::mem_row_major);
        __syncthreads();
        fused::fused_store(tid, Cs, B, d, tileN, m0, h, Y);
        __syncthreads();
    }
}
__global__ void __launch_bounds__(fused::kThreads, 1)
    dcn_deform_conv_fused_kernel(const __half* __restrict__ Xt, const __half* __restrict__ Wt,
                                 const __half* __restrict__ offset, const __half* __restrict__ mask,
                                 const __half* __restrict__ B, const DeformConvDims d, __half* __restrict__ Y) {
    using namespace nvcuda;
    __shared__ Tiles sm;
    const int tid = static_cast<int>(threadIdx.x);
    const int warp = tid / 32, wm = warp / fused::kWarpsN, wn = warp % fused::kWarpsN;
    const int64_t tileN = blockIdx.x, m0 = static_cast<int64_t>(blockIdx.y) * kBM;
    Acc acc[kFm][kFn];
    for (int i = 0; i < kFm; ++i)
        for (int j = 0; j < kFn; ++j) wmma::fill_fragment(acc[i][j], 0.0f);
    const int kH = static_cast<int>(d.kH), kW = static_cast<int>(d.kW), Cg = static_cast<int>(d.C / d.offsetGroup);
    const int G = static_cast<int>(d.offsetGroup);
    if (tid < kBN) sm.main.pixels[tid] = fused::fused_pixel(d, tileN, tid);
#pragma unroll 1
    for (int k = 0; k < kH * kW; ++k) {
#pragma unroll 1
        for (int g = 0; g < G; ++g) {
            __syncthreads();  // pixels written / the last step's tiles read
            if (tid < kBN) sm.main.taps[tid] = fused::fused_tap<float>(offset, mask, d, sm.main.pixels[tid], k / kW, k % kW, g);
            __syncthreads();
#pragma unroll 1
            for (int c0 = g * Cg; c0 < (g + 1) * Cg; c0 += kBK) {
                // all of this step's global loads first, then the tiles
                const fused::RawA<__half> ra = fused::fused_fetch_a(tid, Wt, d, m0, static_cast<int64_t>(k) * d.C + c0);
                const fused::RawB<__half> rb = fused::fused_gather<float>(tid, Xt, d, sm.main.taps, c0);
                fused::fused_put_a(tid, ra, sm.main.A);
                fused::fused_combine<float>(tid, sm.main.taps, rb, sm.main.B);
                __syncthreads();
                mma_tiles(acc, sm.main.A, sm.main.B, wm, wn);
                __syncthreads();
            }
        }
    }
    store_tile(acc, sm.C, tid, wm, wn, B, d, tileN, m0, Y);
}

// ---- the two-stage kernel (deform_conv2d_fused.h Schedule): tiles and taps double-buffered in
// dynamic shared memory (50 KiB: over the 48 KiB of static shared memory).
struct PipeTiles {
    __half A[2][kBM * kLdA];
    __half B[2][kBN * kLdB];
    fused::Tap<float> taps[2][kBN];
};
union __align__(32) PipeShared {
    PipeTiles main;
    float C[kBM / 2 * kLdC];
};
constexpr size_t kPipeSharedBytes = sizeof(PipeShared);

__global__ void __launch_bounds__(fused::kThreads, 1)
    dcn_deform_conv_fused_pipelined_kernel(const __half* __restrict__ Xt, const __half* __restrict__ Wt,
                                           const __half* __restrict__ offset, const __half* __restrict__ mask,
                                           const __half* __restrict__ B, const DeformConvDims d,
                                           __half* __restrict__ Y) {
    extern __shared__ __align__(128) unsigned char pipe_smem[];
    PipeShared& sm = *reinterpret_cast<PipeShared*>(pipe_smem);
    const int tid = static_cast<int>(threadIdx.x);
    const int warp = tid / 32, wm = warp / fused::kWarpsN, wn = warp % fused::kWarpsN;
    const int64_t tileN = blockIdx.x, m0 = static_cast<int64_t>(blockIdx.y) * kBM;
    const fused::Schedule sc = fused::schedule(d);
    const int kW = static_cast<int>(d.kW);
    // thread tid < kBN computes pixel tid's taps for every pair
    const fused::Pixel px = fused::fused_pixel(d, tileN, tid < kBN ? tid : 0);
    auto taps_of = [&](int32_t kg) {
        const fused::Step p = fused::step_at(sc, kg * sc.perKg);  // the pair's first step: its k and g
        if (tid < kBN)
            sm.main.taps[kg & 1][tid] = fused::fused_tap<float>(offset, mask, d, px, p.k / kW, p.k % kW, p.g);
    };
    // step st's tiles into buffer buf: loads first (registers), then the tiles
    auto fetch = [&](const fused::Step& st, fused::RawA<__half>& ra, fused::RawB<__half>& rb) {
        ra = fused::fused_fetch_a(tid, Wt, d, m0, static_cast<int64_t>(st.k) * d.C + st.c0);
        rb = fused::fused_gather<float>(tid, Xt, d, sm.main.taps[st.kg & 1], st.c0);
    };
    auto put = [&](const fused::Step& st, const fused::RawA<__half>& ra, const fused::RawB<__half>& rb, int buf) {
        fused::fused_put_a(tid, ra, sm.main.A[buf]);
        fused::fused_combine<float>(tid, sm.main.taps[st.kg & 1], rb, sm.main.B[buf]);
    };

    Acc acc[kFm][kFn];
    for (int i = 0; i < kFm; ++i)
        for (int j = 0; j < kFn; ++j) nvcuda::wmma::fill_fragment(acc[i][j], 0.0f);
    fused::RawA<__half> ra;
    fused::RawB<__half> rb;
    taps_of(0);
    if (sc.pairs > 1) taps_of(1);
    __syncthreads();
    {
        const fused::Step st = fused::step_at(sc, 0);
        fetch(st, ra, rb);
        put(st, ra, rb, 0);
    }
    __syncthreads();
#pragma unroll 1
    for (int32_t s = 0; s < sc.steps; ++s) {
        const bool more = s + 1 < sc.steps;
        const fused::Step nx = fused::step_at(sc, more ? s + 1 : s);
        if (more) fetch(nx, ra, rb);  // in flight during the products below
        const int32_t ahead = fused::taps_ahead(sc, s);
        if (ahead >= 0) taps_of(ahead);
        mma_tiles(acc, sm.main.A[s & 1], sm.main.B[s & 1], wm, wn);
        if (more) put(nx, ra, rb, (s + 1) & 1);
        __syncthreads();
    }
    store_tile(acc, sm.C, tid, wm, wn, B, d, tileN, m0, Y);
}

}  // namespace

cudaError_t tap_major_weights(const __half* W, const DeformConvDims& d, __half* Wt, cudaStream_t stream) {
    return launch_grid_stride(fused::weight_items(d), stream, dcn_fused_weight_kernel<int32_t>,
                              dcn_fused_weight_kernel<int64_t>, W, d, Wt);
}

cudaError_t channels_last(const __half* X, const DeformConvDims& d, int64_t n0, int64_t nb, __half* Xt,
                          cudaStream_t stream) {
    const DeformConvDims c = nhwc::chunk_dims(d, nb);
    return launch_grid_stride(fused::nhwc_items(c), stream, dcn_fused_nhwc_kernel<int32_t>,
                              dcn_fused_nhwc_kernel<int64_t>, X + n0 * d.C * d.H * d.W, c, Xt);
}

cudaError_t nhwc_im2col(const __half* Xt, const __half* offset, const __half* mask, const DeformConvDims& d,
                        int64_t n0, int64_t nb, __half* col, cudaStream_t stream) {
    return launch_grid_stride(nhwc::items(d, nb), stream, dcn_nhwc_im2col_kernel<int32_t>,
                              dcn_nhwc_im2col_kernel<int64_t>, Xt, offset, mask, d, n0, nb, col);
}

cudaError_t deform_conv_fused(const __half* X, const __half* W, const __half* offset, const __half* mask,
                              const __half* B, const DeformConvDims& d, void* workspace, __half* Y,
                              bool pipelined, cudaStream_t stream) {
    const fused::Grid g = fused::grid(d);
    if (g.tilesN == 0 || g.tilesM == 0) return cudaSuccess;
    const fused::Layout l = fused::layout(d, sizeof(__half));
    __half* Xt = reinterpret_cast<__half*>(static_cast<char*>(workspace) + l.xt);
    __half* Wt = reinterpret_cast<__half*>(static_cast<char*>(workspace) + l.wt);
    cudaError_t e = launch_grid_stride(fused::nhwc_items(d), stream, dcn_fused_nhwc_kernel<int32_t>,
                                       dcn_fused_nhwc_kernel<int64_t>, X, d, Xt);
    if (e != cudaSuccess) return e;
    e = launch_grid_stride(fused::weight_items(d), stream, dcn_fused_weight_kernel<int32_t>,
                           dcn_fused_weight_kernel<int64_t>, W, d, Wt);
    if (e != cudaSuccess) return e;
    const dim3 grid(static_cast<unsigned>(g.tilesN), static_cast<unsigned>(g.tilesM));
    if (!pipelined) {
        return launch_kernel(dcn_deform_conv_fused_kernel, grid, dim3(fused::kThreads), 0, stream, Xt, Wt, offset, mask,
                             B, d, Y);
    }
    // per device and function, not a stream operation (the kit's graph-replay test captures it)
    e = cudaFuncSetAttribute(dcn_deform_conv_fused_pipelined_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             static_cast<int>(kPipeSharedBytes));
    if (e != cudaSuccess) return e;
    return launch_kernel(dcn_deform_conv_fused_pipelined_kernel, grid, dim3(fused::kThreads), kPipeSharedBytes, stream,
                         Xt, Wt, offset, mask, B, d, Y);
}

}  // namespace cuda
}  // namespace dcn
