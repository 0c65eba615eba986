// deform_conv2d_fused.h: the fused (implicit-GEMM) DeformConv2d path, as __host__ __device__ code:
// its plan, workspace layout and every per-thread body except the tensor-core product itself,
// so that deform_conv2d_host_fused.cpp runs the very same tile loading, sampling and
// epilogue on the host (with a plain loop for the 16x16x16 products) and checks them against
// the float64 reference, in the order of either CUDA kernel (deform_conv2d_fused.cu: one-stage, and
// two-stage per Schedule below), which add only the WMMA calls, shared memory and barriers. No
// TensorRT, no CUDA runtime API.
//
// The GEMM it computes is the im2col path's (deform_conv2d_plan.h), without the column buffer:
//   Y[n, m, p] = B[m] + sum_K Wt[m, K] * col[n, K, p],   K = k*C + c (kernel point major)
// Per block: a BM x BN tile of (output channel m, pixel P = n*L + p over the whole batch).
// For each kernel point k and offset group g: the BN pixels' bilinear taps are computed once
// (fused_tap: dcn_math.h deform_im2col_taps, mask folded in), then for each slice of
// BK channels of group g (kFusedBK divides C / offset_group): the A tile (weights, from the
// tap-major copy Wt) and the B tile (samples from the channels-last copy Xt of X, BK
// channels per pixel, 16-byte loads on the GPU) go to shared memory in half precision, and
// the tensor cores accumulate A x B in float32. The B tile holds exactly the im2col path's
// column entries (same taps, same order of terms, float accumulation, stored as half).
//   workspace = [ pad to 256 B | Xt: N*H*W*C | Wt: M*kH*kW*C ]   (half, each 256-byte aligned)
// Only for half data, group == 1, C / offset_group a multiple of kFusedBK (detection
// backbones: 3x3, C = 128 .. 2048); the plan (deform_conv2d_plan.h) falls back to im2col
// otherwise and while the path is switched off.
#pragma once

#include "dcn_vector_check.h"  // plugins/common
#include "deform_conv2d_math.h"

#include <cstdint>
#include <cstring>

namespace dcn {
namespace fused {

constexpr int kBM = 128;      // output channels per block
constexpr int kBN = 128;      // pixels per block
constexpr int kBK = 32;       // channels per K step
constexpr int kThreads = 512;  // 16 warps: 4 (M) x 4 (N), each 32 x 32 of the tile
constexpr int kWarpsN = 4;
constexpr int kWarpM = kBM / (kThreads / 32 / kWarpsN), kWarpN = kBN / kWarpsN;  // 32 x 32
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
    if (sizeof(T) == 2) {  // the device's 16-byte accesses (half only)
        note_vector_access(dst, 16);
        note_vector_access(src, 16);
    }
    memcpy(dst, src, kVec * sizeof(T));
#endif
}

// The kinds of problem the fused path takes, whatever N, H and W: half data, one group, at
// least kBK channels an offset group and a multiple of kBK (C == 0 would leave the two-stage
// kernel's schedule without a step: perKg 0), output channels in at most 65535 tiles (grid y).
DCN_HD bool applicable_kind(const DeformConvDims& d, bool half) {
    if (!half || d.group != 1 || d.offsetGroup < 1 || d.C % d.offsetGroup != 0) return false;
    const int64_t Cg = d.C / d.offsetGroup;
    return Cg >= kBK && Cg % kBK == 0 && d.M >= 1 && (d.M + kBM - 1) / kBM <= 65535;
}
// The sizes the kernels' 32-bit tile arithmetic holds: pixels of the batch, NHWC offsets and
// weight rows fit int32.
DCN_HD bool fits_int32(const DeformConvDims& d) {
    const int64_t L = d.outH * d.outW;
    return d.N * L <= int64_t(INT32_MAX) - kBN && d.N * d.H * d.W * d.C <= int64_t(INT32_MAX) &&
           d.M * d.kH * d.kW * d.C <= int64_t(INT32_MAX);
}
// The shapes and types the fused path takes.
DCN_HD bool applicable(const DeformConvDims& d, bool half) { return applicable_kind(d, half) && fits_int32(d); }

// Workspace parts (bytes from the 256-aligned base), for elements of elemBytes.
struct Layout {
    int64_t xt, wt, bytes;  // offsets of Xt and Wt; bytes used from the aligned base
};
DCN_HD Layout layout_of(int64_t xElems, int64_t wElems, int64_t elemBytes) {
    Layout l;
    l.xt = 0;
    l.wt = align_up(xElems * elemBytes);
    l.bytes = l.wt + align_up(wElems * elemBytes);
    return l;
}
DCN_HD Layout layout(const DeformConvDims& d, int64_t elemBytes) {
    return layout_of(d.N * d.H * d.W * d.C, d.M * d.kH * d.kW * d.C, elemBytes);
}
// At least layout(e).bytes for every problem e the fused path takes (applicable) with dims no
// larger than d's, whether d itself fits int32 or not (the workspace is sized for the largest
// shapes, the path chosen per run): the copies' sizes grow with the dims and stop at int32's.
DCN_HD int64_t layout_bound_bytes(const DeformConvDims& d, int64_t elemBytes) {
    const int64_t cap = int64_t(INT32_MAX);
    const int64_t x = d.N * d.H * d.W * d.C, w = d.M * d.kH * d.kW * d.C;
    return layout_of(x < cap ? x : cap, w < cap ? w : cap, elemBytes).bytes;
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
//
// Per K step every thread first issues all its global loads (2 weight vectors, up to 8
// sample vectors: fused_fetch_a / fused_gather into registers), then writes the tiles
// (fused_put_a / fused_combine): one memory latency a step, not one per load.

// Pixel pix (< kBN) of block column tileN: image and output position, decoded once per block
// (n < 0: past the batch's last pixel).
struct Pixel {
    int32_t n, ho, wo;
};
DCN_HD Pixel fused_pixel(const DeformConvDims& d, int64_t tileN, int pix) {
    const int64_t L = d.outH * d.outW, P = tileN * kBN + pix;
    if (P >= d.N * L) return Pixel{-1, 0, 0};
    const int64_t p = P % L;
    return Pixel{static_cast<int32_t>(P / L), static_cast<int32_t>(p / d.outW), static_cast<int32_t>(p % d.outW)};
}

// The taps of one pixel for one kernel point and offset group: NHWC pixel offsets inside the
// image (h*W + w, < 0: neighbour outside) and weights (mask folded in). n < 0: no pixel.
template <class Acc> struct Tap {
    int32_t pix[4];
    Acc w[4];
    int32_t n;
};

template <class Acc, class T>
DCN_HD Tap<Acc> fused_tap(const T* offset, const T* mask, const DeformConvDims& d, const Pixel& px, int64_t i,
                          int64_t j, int64_t g) {
    Tap<Acc> tp;
    for (int q = 0; q < 4; ++q) {
        tp.pix[q] = -1;
        tp.w[q] = Acc(0);
    }
    tp.n = px.n;
    if (px.n < 0) return tp;
    const BilinearTaps<Acc> t = deform_im2col_taps<Acc>(offset, mask, d, px.n, g, i, j, px.ho, px.wo);
    for (int q = 0; q < 4; ++q) {
        tp.pix[q] = static_cast<int32_t>(t.idx[q]);
        tp.w[q] = t.w[q];
    }
    return tp;
}

// Where vector idx of a tile goes (row, vector in the row), for tiles of kBK halves a row (4 vectors)
// in shared rows of kLdA = kLdB halves (80 bytes): each warp's 32 vectors fill 8 rows x 4 vectors with
// the row fastest, so a quarter-warp's eight 16-byte shared stores land in eight rows, eight different
// 16-byte bank groups (80 * r mod 128): no bank conflict. (Row-major idx / 4, idx % 4 put lanes 0 and
// 7 of a quarter-warp in one group: 2-way.) A warp's global loads cover the same rows and bytes either
// way.
constexpr int kTileVecs = kBK / kVec;      // vectors a tile row (4)
constexpr int kWarpRows = 32 / kTileVecs;  // rows a warp's vectors fill (8)
static_assert(kLdA == kLdB && kLdA * 2 % 128 == 80, "tile rows 80 bytes apart (mod 128): see tile_slot");
struct Slot {
    int row, vec;
};
DCN_HD Slot tile_slot(int idx) {
    const int lane = idx % 32;
    return {idx / 32 * kWarpRows + lane % kWarpRows, lane / kWarpRows};
}

// A tile: thread tid loads vector tile_slot(tid + i*kThreads) (8 elements; one a thread) of
// Wt[m0 + row, kcol .. kcol + kBK) (kcol = k*C + c0); rows past M are zero.
constexpr int kARegs = kBM * kTileVecs / kThreads;  // vectors a thread (1)
template <class T> struct RawA {
    alignas(16) T v[kARegs][kVec];
};
template <class T>
DCN_HD RawA<T> fused_fetch_a(int tid, const T* Wt, const DeformConvDims& d, int64_t m0, int64_t kcol) {
    const int64_t K = d.kH * d.kW * d.C;
    RawA<T> a;
    for (int i = 0; i < kARegs; ++i) {
        const Slot s = tile_slot(tid + i * kThreads);
        if (m0 + s.row < d.M)
            copy_vec(a.v[i], Wt + (m0 + s.row) * K + kcol + s.vec * kVec);
        else
            for (int e = 0; e < kVec; ++e) a.v[i][e] = store<T>(0.0f);
    }
    return a;
}
template <class T> DCN_HD void fused_put_a(int tid, const RawA<T>& a, T* As) {
    for (int i = 0; i < kARegs; ++i) {
        const Slot s = tile_slot(tid + i * kThreads);
        copy_vec(As + s.row * kLdA + s.vec * kVec, a.v[i]);
    }
}

// B tile: thread tid samples pixel tile_slot(tid).row, channels c0 + tile_slot(tid).vec * kPer .. + kPer:
// the four neighbours' kPer channels (16-byte loads; zeros for a neighbour outside) ...
constexpr int kPer = kBK * kBN / kThreads;  // channels a thread (8: one vector, as tile_slot wants)
static_assert(kPer == kVec && kBN * kTileVecs == kThreads, "B tile: one vector a thread");
template <class T> struct RawB {
    alignas(16) T v[4][kPer];
};
template <class Acc, class T>
DCN_HD RawB<T> fused_gather(int tid, const T* Xt, const DeformConvDims& d, const Tap<Acc>* taps, int64_t c0) {
    const Slot s = tile_slot(tid);
    const Tap<Acc>& tp = taps[s.row];
    const T* img = Xt + static_cast<int64_t>(tp.n < 0 ? 0 : tp.n) * d.H * d.W * d.C + c0 + s.vec * kPer;
    RawB<T> b;
    for (int q = 0; q < 4; ++q) {
        if (tp.n >= 0 && tp.pix[q] >= 0) {
            const T* src = img + static_cast<int64_t>(tp.pix[q]) * d.C;
            for (int h = 0; h < kPer; h += kVec) copy_vec(b.v[q] + h, src + h);
        } else {
            for (int e = 0; e < kPer; ++e) b.v[q][e] = store<T>(0.0f);
        }
    }
    return b;
}
// ... then the column entries sum_q w_q * x_q in Acc, in apply_taps' order (corners 0..3, a
// neighbour outside adds nothing), stored as T to Bs[row * kLdB + vec * kPer ...] (tile_slot(tid)).
template <class Acc, class T>
DCN_HD void fused_combine(int tid, const Tap<Acc>* taps, const RawB<T>& b, T* Bs) {
    const Slot s = tile_slot(tid);
    const Tap<Acc>& tp = taps[s.row];
    T* dst = Bs + s.row * kLdB + s.vec * kPer;
    for (int h = 0; h < kPer; h += kVec) {
        alignas(16) T out[kVec];
        for (int e = 0; e < kVec; ++e) {
            Acc acc = Acc(0);
            for (int q = 0; q < 4; ++q)
                if (tp.pix[q] >= 0) acc += tp.w[q] * load<Acc>(b.v[q][h + e]);
            out[e] = store<T>(acc);
        }
        copy_vec(dst + h, out);
    }
}

// ---- the two-stage (pipelined) kernel's schedule
//
// Steps s = 0 .. steps-1 run (k, g, c0) in the one-stage kernel's order; kg = k * G + g indexes
// the (kernel point, offset group) pairs, each perKg = Cg / kBK steps long. Iteration s: every
// thread issues step s+1's loads (fetch_a / gather) into registers, the pixels' threads compute
// the taps of the pair after step s+1's where step s+1 opens a pair (taps_ahead), the tensor
// cores multiply step s's tiles, then step s+1's tiles are written to the other buffer (put_a /
// combine) and one barrier ends the iteration. Tiles alternate per step (buffer s & 1), taps per
// pair (buffer kg & 1): in iteration s only pair kg(s+1)'s taps are read, and the buffer written
// is the other one, last read in an earlier iteration (a barrier between).
struct Schedule {
    int32_t G, Cg, perKg, pairs, steps;
};
DCN_HD Schedule schedule(const DeformConvDims& d) {
    Schedule sc;
    sc.G = static_cast<int32_t>(d.offsetGroup);
    sc.Cg = static_cast<int32_t>(d.C / d.offsetGroup);
    sc.perKg = sc.Cg / kBK;
    sc.pairs = static_cast<int32_t>(d.kH * d.kW) * sc.G;
    sc.steps = sc.pairs * sc.perKg;
    return sc;
}
struct Step {
    int32_t kg, k, g, c0;  // pair, kernel point, offset group, first channel
};
DCN_HD Step step_at(const Schedule& sc, int32_t s) {
    Step st;
    st.kg = s / sc.perKg;
    st.k = st.kg / sc.G;
    st.g = st.kg % sc.G;
    st.c0 = st.g * sc.Cg + (s % sc.perKg) * kBK;
    return st;
}
// The pair whose taps iteration s computes (-1: none): the one after step s+1's pair, where
// step s+1 is the first of its pair (the prologue computes pairs 0 and 1).
DCN_HD int32_t taps_ahead(const Schedule& sc, int32_t s) {
    if (s + 1 >= sc.steps || (s + 1) % sc.perKg != 0) return -1;
    const int32_t next = (s + 1) / sc.perKg + 1;
    return next < sc.pairs ? next : -1;
}

// Epilogue thread tid for half `h` (0, 1) of the M tile: Cs[r][pix] (r < kBM / 2, float,
// row stride kLdC) + B[m] to Y[n, m, p] for m = m0 + h * kBM / 2 + r; pixel tid % kBN, rows
// tid / kBN, + kThreads / kBN, ...: consecutive threads write consecutive pixels.
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
