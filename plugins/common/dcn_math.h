// dcn_math.h: the shared math core of the dcn ops, once, for the host (g++ -std=c++17) and CUDA (nvcc).
//
// What every op's math (plugins/ops/<op>/<op>_math.h) stands on: half precision, storage <->
// accumulation, checked int64 arithmetic and bilinear sampling. Nothing here names an op. The
// contract the ops implement is shared/design/ops.md (exporter/contract.py in code); the float64
// PyTorch reference (exporter/ops) is the truth they are tested against (tests/test_math_header.py).
//
// Types: T is the storage type (float, double, dcn::Half on the host, __half under nvcc);
// Acc the accumulation type (AccOf<T>: float for float and half, double for double).
// Indices are int64_t. Nothing here allocates, throws or touches memory outside the
// tensors described; a sample outside the map reads nothing.
//
// API (DCN_HD = __host__ __device__ inline under nvcc, inline otherwise):
//
//   struct Half;                                   16-bit IEEE binary16 (bits), host + device
//   DCN_HD float    half_bits_to_float(uint16_t);
//   DCN_HD uint16_t float_to_half_bits(float);     round to nearest even
//   template<class T> struct AccOf;                AccOf<T>::type
//   template<class Acc, class T> DCN_HD Acc load(const T& v);    T -> Acc
//   template<class T, class Acc> DCN_HD T   store(Acc v);        Acc -> T (half: RNE)
//   floor_of, round_of (C round: halves away from zero), ceil_of   float / double
//
//   DCN_HD int64_t conv_out_size(int64_t size, int64_t pad_begin, int64_t pad_end,
//                                int64_t dilation, int64_t kernel, int64_t stride);
//       floor((size + pad_begin + pad_end - dilation*(kernel-1) - 1) / stride) + 1
//   DCN_HD bool add_ok(int64_t a, int64_t b, int64_t* out);   mul_ok alike: false on int64 overflow
//   DCN_HD bool conv_out_size_ok(size, pad_begin, pad_end, dilation, kernel, stride, int64_t* out);
//   constexpr int64_t kMaxElements;                any tensor or workspace, in elements
//
//   template<class Acc, class I = int64_t> struct BilinearTaps { I idx[4]; Acc w[4]; I hl, wl; };  idx < 0: unused
//   template<class Acc, class I = int64_t> DCN_HD BilinearTaps<Acc, I> bilinear_taps(I H, I W, Acc h, Acc w);
//   template<class Acc, class T, class I> DCN_HD Acc apply_taps(const T* plane, const BilinearTaps<Acc, I>& t);
//   template<class Acc, class T, class I = int64_t> DCN_HD Acc bilinear(const T* plane, I H, I W, Acc h, Acc w);
//       0 when h <= -1, h >= H, w <= -1, w >= W (or NaN); else the four integer neighbours
//       weighted, each neighbour outside the map counting zero. bilinear = apply_taps o bilinear_taps.
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
//
// Also here (host only, included below): the validation helpers of dcn_validate.h (ShapeRef,
// messages). The RoI pools' shared RoI checks: dcn_roi.h; the attribute tables' machinery: dcn_fields.h.
#pragma once

#include <cstdint>
#include <cstring>
#include <cmath>
#include <type_traits>

#include "dcn_validate.h"  // host only: ShapeRef, message helpers

#if defined(__CUDACC__)
#include <cuda_fp16.h>
#define DCN_HD __host__ __device__ inline
#else
#define DCN_HD inline
#endif

namespace dcn {

// ---------------------------------------------------------------------------------------
// Scalars: half precision bits, storage <-> accumulation
// ---------------------------------------------------------------------------------------

DCN_HD uint32_t float_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

DCN_HD float bits_float(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

// IEEE binary16 -> float32 (exact).
DCN_HD float half_bits_to_float(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0x1fu) {  // inf / NaN
        bits = sign | 0x7f800000u | (man << 13);
    } else if (exp != 0) {  // normal
        bits = sign | ((exp + 112u) << 23) | (man << 13);
    } else if (man == 0) {  // signed zero
        bits = sign;
    } else {  // subnormal: man * 2^-24, normalise
        exp = 113u;
        while (!(man & 0x400u)) {
            man <<= 1;
            --exp;
        }
        bits = sign | (exp << 23) | ((man & 0x3ffu) << 13);
    }
    return bits_float(bits);
}

// float32 -> IEEE binary16, round to nearest even; overflow -> inf, NaN stays NaN.
DCN_HD uint16_t float_to_half_bits(float f) {
    const uint32_t x = float_bits(f);
    const uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t a = x & 0x7fffffffu;
    if (a >= 0x7f800000u) return static_cast<uint16_t>(sign | (a > 0x7f800000u ? 0x7e00u : 0x7c00u));
    if (a >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // >= 65520: inf
    if (a >= 0x38800000u) {                                                // normal half (>= 2^-14)
        a += 0xc8000fffu + ((a >> 13) & 1u);  // rebias exponent by -112, round half to even
        return static_cast<uint16_t>(sign | (a >> 13));
    }
    if (a < 0x33000000u) return static_cast<uint16_t>(sign);  // <= 2^-25: rounds to zero
    // subnormal half: value = m * 2^(e - 150); result in units of 2^-24 = m >> (126 - e)
    const uint32_t e = a >> 23;
    const uint32_t m = (a & 0x7fffffu) | 0x800000u;
    const uint32_t s = 126u - e;  // 14 .. 24
    uint32_t r = m >> s;
    const uint32_t rem = m & ((1u << s) - 1u);
    const uint32_t halfway = 1u << (s - 1u);
    if (rem > halfway || (rem == halfway && (r & 1u))) ++r;
    return static_cast<uint16_t>(sign | r);
}

// Host/device 16-bit float: the IEEE bits, layout-compatible with Ort::Float16_t, MLFloat16
// and __half (reinterpret a tensor of those as const Half*).
struct Half {
    uint16_t bits;
    Half() = default;
    DCN_HD explicit Half(float f) : bits(float_to_half_bits(f)) {}
    DCN_HD static Half from_bits(uint16_t b) {
        Half h;
        h.bits = b;
        return h;
    }
    DCN_HD explicit operator float() const { return half_bits_to_float(bits); }
};
static_assert(sizeof(Half) == 2, "dcn::Half must be 16 bits");

template <class T> struct AccOf { using type = T; };
template <> struct AccOf<Half> { using type = float; };

template <class T> struct Scalar {  // float, double
    template <class Acc> DCN_HD static Acc load(const T& v) { return static_cast<Acc>(v); }
    template <class Acc> DCN_HD static T store(Acc v) { return static_cast<T>(v); }
};
template <> struct Scalar<Half> {
    template <class Acc> DCN_HD static Acc load(const Half& v) { return static_cast<Acc>(half_bits_to_float(v.bits)); }
    template <class Acc> DCN_HD static Half store(Acc v) { return Half::from_bits(float_to_half_bits(static_cast<float>(v))); }
};

#if defined(__CUDACC__)
template <> struct AccOf<__half> { using type = float; };
template <> struct Scalar<__half> {
    template <class Acc> DCN_HD static Acc load(const __half& v) { return static_cast<Acc>(__half2float(v)); }
    template <class Acc> DCN_HD static __half store(Acc v) { return __float2half_rn(static_cast<float>(v)); }
};
#endif

template <class Acc, class T> DCN_HD Acc load(const T& v) { return Scalar<T>::template load<Acc>(v); }
template <class T, class Acc> DCN_HD T store(Acc v) { return Scalar<T>::template store<Acc>(v); }

DCN_HD float floor_of(float x) { return floorf(x); }
DCN_HD double floor_of(double x) { return ::floor(x); }
// C round(): halves away from zero (2.5 -> 3, -0.5 -> -1).
DCN_HD float round_of(float x) { return roundf(x); }
DCN_HD double round_of(double x) { return ::round(x); }
DCN_HD float ceil_of(float x) { return ceilf(x); }
DCN_HD double ceil_of(double x) { return ::ceil(x); }

// ---------------------------------------------------------------------------------------
// Output sizes
// ---------------------------------------------------------------------------------------

DCN_HD int64_t floor_div(int64_t a, int64_t b) {
    const int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

// floor((size + pad_begin + pad_end - dilation*(kernel-1) - 1) / stride) + 1; stride >= 1.
DCN_HD int64_t conv_out_size(int64_t size, int64_t pad_begin, int64_t pad_end, int64_t dilation, int64_t kernel,
                             int64_t stride) {
    return floor_div(size + pad_begin + pad_end - dilation * (kernel - 1) - 1, stride) + 1;
}

// Overflow-checked int64 arithmetic: false (and *out untouched) when the exact result does not fit.
DCN_HD bool add_ok(int64_t a, int64_t b, int64_t* out) {
    if ((b > 0 && a > INT64_MAX - b) || (b < 0 && a < INT64_MIN - b)) return false;
    *out = a + b;
    return true;
}
DCN_HD bool mul_ok(int64_t a, int64_t b, int64_t* out) {
    if (a != 0 && b != 0) {
        const bool bad = a > 0 ? (b > 0 ? a > INT64_MAX / b : b < INT64_MIN / a)
                               : (b > 0 ? a < INT64_MIN / b : b < INT64_MAX / a);
        if (bad) return false;
    }
    *out = a * b;
    return true;
}
// conv_out_size with every step checked; false when an intermediate value overflows int64.
DCN_HD bool conv_out_size_ok(int64_t size, int64_t pad_begin, int64_t pad_end, int64_t dilation, int64_t kernel,
                             int64_t stride, int64_t* out) {
    int64_t padded, extent, span;
    if (!add_ok(size, pad_begin, &padded) || !add_ok(padded, pad_end, &padded)) return false;
    if (!mul_ok(dilation, kernel - 1, &extent) || !add_ok(extent, 1, &extent)) return false;
    if (!add_ok(padded, -extent, &span) || stride < 1) return false;
    *out = floor_div(span, stride) + 1;
    return true;
}

// The size limit of every tensor or workspace (contract: exporter/contract.py MAX_ELEMENTS);
// each op's attribute limits are in its <op>_math.h (kMax*, equal to the contract's LIMITS).
constexpr int64_t kMaxElements = int64_t{1} << 58;  // any tensor or workspace, in elements (bytes fit int64)

// ---------------------------------------------------------------------------------------
// Bilinear sampling (paper eq. 3-4; torchvision and ONNX DeformConv agree)
// ---------------------------------------------------------------------------------------

// I: the index type (int64_t; int32_t in a CUDA kernel whose planes fit int32 and whose H, W are
// exact in Acc, so that floor(h) < H converts exactly).
template <class Acc, class I = int64_t> struct BilinearTaps {
    I idx[4];  // offsets into the H*W plane: (hl, wl), (hl, wl+1), (hl+1, wl), (hl+1, wl+1); < 0: outside
    Acc w[4];  // weights (times the mask where the caller folds one in)
    I hl, wl;  // the top-left neighbour (-2, -2 when the sample is outside the map)
};

template <class Acc, class I = int64_t> DCN_HD BilinearTaps<Acc, I> bilinear_taps(I H, I W, Acc h, Acc w) {
    BilinearTaps<Acc, I> t;
    for (int q = 0; q < 4; ++q) {
        t.idx[q] = -1;
        t.w[q] = Acc(0);
    }
    t.hl = t.wl = -2;
    // Zero when h <= -1, h >= H, w <= -1, w >= W; written so that NaN is zero too.
    if (!(h > Acc(-1) && h < Acc(H) && w > Acc(-1) && w < Acc(W))) return t;
    const Acc hf = floor_of(h), wf = floor_of(w);
    const I hl = static_cast<I>(hf), wl = static_cast<I>(wf);
    const I hh = hl + 1, wh = wl + 1;
    t.hl = hl;
    t.wl = wl;
    const Acc lh = h - hf, lw = w - wf;
    const Acc uh = Acc(1) - lh, uw = Acc(1) - lw;
    if (hl >= 0 && wl >= 0) {
        t.idx[0] = hl * W + wl;
        t.w[0] = uh * uw;
    }
    if (hl >= 0 && wh <= W - 1) {
        t.idx[1] = hl * W + wh;
        t.w[1] = uh * lw;
    }
    if (hh <= H - 1 && wl >= 0) {
        t.idx[2] = hh * W + wl;
        t.w[2] = lh * uw;
    }
    if (hh <= H - 1 && wh <= W - 1) {
        t.idx[3] = hh * W + wh;
        t.w[3] = lh * lw;
    }
    return t;
}

template <class Acc, class T, class I> DCN_HD Acc apply_taps(const T* plane, const BilinearTaps<Acc, I>& t) {
    Acc v = Acc(0);
    for (int q = 0; q < 4; ++q)
        if (t.idx[q] >= 0) v += t.w[q] * load<Acc>(plane[t.idx[q]]);
    return v;
}

template <class Acc, class T, class I = int64_t> DCN_HD Acc bilinear(const T* plane, I H, I W, Acc h, Acc w) {
    return apply_taps<Acc>(plane, bilinear_taps<Acc, I>(H, W, h, w));
}

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
