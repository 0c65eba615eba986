// dcn_math.h: THE math of the dcn ops, once, for the host (g++ -std=c++17) and CUDA (nvcc).
//
// Everything that computes a value of dcn::DeformConv2d or dcn::DeformPSROIPool, on any
// back end, calls these functions; nothing copies them. The contract they implement is
// shared/design/ops.md (exporter/contract.py in code); the float64 PyTorch reference
// (exporter/ops) is the truth they are tested against (tests/test_math_header.py).
//
// Types: T is the storage type (float, double, dcn::Half on the host, __half under nvcc);
// Acc the accumulation type (AccOf<T>: float for float and half, double for double).
// Indices are int64_t. Nothing here allocates, throws or touches memory outside the
// tensors described by the dims structs; a sample outside the map reads nothing.
//
// API (DCN_HD = __host__ __device__ inline under nvcc, inline otherwise):
//
//   struct Half;                                   16-bit IEEE binary16 (bits), host + device
//   DCN_HD float    half_bits_to_float(uint16_t);
//   DCN_HD uint16_t float_to_half_bits(float);     round to nearest even
//   template<class T> struct AccOf;                AccOf<T>::type
//   template<class Acc, class T> DCN_HD Acc load(const T& v);    T -> Acc
//   template<class T, class Acc> DCN_HD T   store(Acc v);        Acc -> T (half: RNE)
//
//   DCN_HD int64_t conv_out_size(int64_t size, int64_t pad_begin, int64_t pad_end,
//                                int64_t dilation, int64_t kernel, int64_t stride);
//       floor((size + pad_begin + pad_end - dilation*(kernel-1) - 1) / stride) + 1
//   DCN_HD bool add_ok(int64_t a, int64_t b, int64_t* out);   mul_ok alike: false on int64 overflow
//   DCN_HD bool conv_out_size_ok(size, pad_begin, pad_end, dilation, kernel, stride, int64_t* out);
//   constexpr int64_t kMaxConvStride, kMaxConvPad, kMaxConvDilation, kMaxPoolOutputDim, kMaxPoolGroupSize,
//       kMaxPoolPooledSize, kMaxPoolPartSize, kMaxPoolSamplePerPart;   attribute limits (contract LIMITS)
//
//   template<class Acc> struct BilinearTaps { int64_t idx[4]; Acc w[4]; int64_t hl, wl; };  idx < 0: unused
//   template<class Acc>          DCN_HD BilinearTaps<Acc> bilinear_taps(int64_t H, int64_t W, Acc h, Acc w);
//   template<class Acc, class T> DCN_HD Acc apply_taps(const T* plane, const BilinearTaps<Acc>& t);
//   template<class Acc, class T> DCN_HD Acc bilinear(const T* plane, int64_t H, int64_t W, Acc h, Acc w);
//       0 when h <= -1, h >= H, w <= -1, w >= W (or NaN); else the four integer neighbours
//       weighted, each neighbour outside the map counting zero. bilinear = apply_taps o bilinear_taps.
//
//   struct DeformConvDims { N, C, H, W, M, kH, kW, strideH, strideW, padT, padL, padB, padR,
//                           dilH, dilW, group, offsetGroup, outH, outW; bool hasMask; };
//   template<class Acc, class T> DCN_HD BilinearTaps<Acc> deform_im2col_taps(
//       const T* offset, const T* mask /*nullptr = 1*/, const DeformConvDims& d,
//       int64_t n, int64_t g /*offset group*/, int64_t i, int64_t j, int64_t ho, int64_t wo);
//       the taps of kernel point (i, j) at output (ho, wo), weights already times the mask;
//       the same for every channel of offset group g.
//   template<class Acc, class T> DCN_HD Acc deform_im2col_element(
//       const T* X, const T* offset, const T* mask /*nullptr = 1*/, const DeformConvDims& d,
//       int64_t n, int64_t c, int64_t i, int64_t j, int64_t ho, int64_t wo);
//       mask * bilinear(X[n, c], h, w): one entry of the column matrix, row c*kH*kW + i*kW + j,
//       column ho*outW + wo. Y[n, m] = B[m] + W[m] (flattened [C/group*kH*kW]) x columns of m's group.
//
//   template<class Acc, int B> struct TapsBlock { int32_t base[B]; Acc w[4][B]; };
//   DCN_HD bool block_sampling_ok(int64_t H, int64_t W);             H, W >= 2, H*W <= INT32_MAX
//   template<class Acc, int B> DCN_HD void set_taps(TapsBlock<Acc, B>&, int p, const BilinearTaps<Acc>&,
//                                                   int64_t H, int64_t W);
//   template<class Acc, class T, int B> DCN_HD void apply_taps_block(const T* plane, int64_t W,
//       const TapsBlock<Acc, B>&, int n, Acc* out);
//       the taps of B samples as one base index and four window weights each: out[p] =
//       apply_taps(plane, taps p), vectorised on the host; only for planes of finite values.
//
//   struct DeformPSROIPoolDims { N, C, H, W, R; double spatial_scale; output_dim, group_size,
//                                pooled_size, part_size /*resolved*/, sample_per_part;
//                                double trans_std; num_classes; bool no_trans; };
//   template<class Acc> DCN_HD int64_t psroi_batch_index(Acc v, int64_t N);  -1 if not in [0, N)
//   template<class Acc, class T, class TR> DCN_HD Acc deform_psroi_pool_element(
//       const T* data, const TR* rois /*float32 for float32/float16 data*/, const T* trans /*nullable*/, const DeformPSROIPoolDims& d,
//       int64_t r, int64_t ctop, int64_t ph, int64_t pw);
//       one output value; 0 when no sample counted (NaN / inf box or trans included) or when
//       rois[r, 0] is not a batch index.
//
//   Host only (validation; "" when fine, else one message, see "Messages" below):
//   struct ShapeRef { const int64_t* dims; int64_t rank; };           rank < 0: input absent
//   struct DeformConvAttrs { vector strides, pads, dilations, kernel_shape (empty: absent);
//                            int64_t group, offset_group; };           contract defaults
//   std::string validate_deform_conv2d_attrs(const std::string& node, const DeformConvAttrs&);
//   std::string validate_deform_conv2d(const std::string& node, const DeformConvAttrs&,
//       ShapeRef X, ShapeRef W, ShapeRef offset, ShapeRef B, ShapeRef mask, DeformConvDims* out);
//   struct DeformPSROIPoolAttrs { double spatial_scale; int64_t output_dim, group_size,
//       pooled_size, part_size, sample_per_part; double trans_std; int64_t no_trans; };
//   std::string validate_deform_psroi_pool_attrs(const std::string& node, const DeformPSROIPoolAttrs&);
//   std::string validate_deform_psroi_pool(const std::string& node, const DeformPSROIPoolAttrs&,
//       ShapeRef data, ShapeRef rois, ShapeRef trans, DeformPSROIPoolDims* out);
//   template<class T> std::string validate_deform_psroi_pool_batch_indices(
//       const std::string& node, const T* rois, int64_t R, int64_t N);   reads rois[r, 0] (host memory)
//   std::string missing_attribute_message(op_type, node, attr, kind);
//   std::string attribute_type_message(op_type, node, attr, kind);
//
// Messages: "<OpType> '<node>': <what> <got>, expected <expected>", fixed text, e.g.
//   DeformConv2d 'backbone.layer3.0.conv2': offset has 36 channels, expected 2*offset_group*kH*kW = 18
// The full list of templates is in the validate_* functions below; tests match them.
#pragma once

#include "dcn_fields.h"  // op type names, attribute table

#include <cstdint>
#include <cstring>
#include <cmath>
#include <type_traits>

#if defined(__CUDACC__)
#include <cuda_fp16.h>
#define DCN_HD __host__ __device__ inline
#else
#define DCN_HD inline
#endif

#if !defined(__CUDA_ARCH__)
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>
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

// Limits of the attributes that alone drive work or memory (contract: exporter/contract.py
// LIMITS, README "Limits"). Also keeps every value inside TensorRT's int32 fields.
constexpr int64_t kMaxElements = int64_t{1} << 58;  // any tensor or workspace, in elements (bytes fit int64)
constexpr int64_t kMaxConvStride = 1024;      // strides
constexpr int64_t kMaxConvPad = 1024;         // pads: each adds outputs
constexpr int64_t kMaxConvDilation = 1024;    // dilations
constexpr int64_t kMaxPoolOutputDim = 1 << 20;  // output_dim
constexpr int64_t kMaxPoolGroupSize = 32;     // group_size: channels output_dim*group_size^2
constexpr int64_t kMaxPoolPooledSize = 32;    // pooled_size: output pooled_size^2 per RoI and channel
constexpr int64_t kMaxPoolPartSize = 32;      // part_size
constexpr int64_t kMaxPoolSamplePerPart = 16;  // sample_per_part: sample_per_part^2 samples per output value

// ---------------------------------------------------------------------------------------
// Bilinear sampling (paper eq. 3-4; torchvision and ONNX DeformConv agree)
// ---------------------------------------------------------------------------------------

template <class Acc> struct BilinearTaps {
    int64_t idx[4];  // offsets into the H*W plane: (hl, wl), (hl, wl+1), (hl+1, wl), (hl+1, wl+1); < 0: outside
    Acc w[4];        // weights (times the mask where the caller folds one in)
    int64_t hl, wl;  // the top-left neighbour (-2, -2 when the sample is outside the map)
};

template <class Acc> DCN_HD BilinearTaps<Acc> bilinear_taps(int64_t H, int64_t W, Acc h, Acc w) {
    BilinearTaps<Acc> t;
    for (int q = 0; q < 4; ++q) {
        t.idx[q] = -1;
        t.w[q] = Acc(0);
    }
    t.hl = t.wl = -2;
    // Zero when h <= -1, h >= H, w <= -1, w >= W; written so that NaN is zero too.
    if (!(h > Acc(-1) && h < Acc(H) && w > Acc(-1) && w < Acc(W))) return t;
    const Acc hf = floor_of(h), wf = floor_of(w);
    const int64_t hl = static_cast<int64_t>(hf), wl = static_cast<int64_t>(wf);
    const int64_t hh = hl + 1, wh = wl + 1;
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

template <class Acc, class T> DCN_HD Acc apply_taps(const T* plane, const BilinearTaps<Acc>& t) {
    Acc v = Acc(0);
    for (int q = 0; q < 4; ++q)
        if (t.idx[q] >= 0) v += t.w[q] * load<Acc>(plane[t.idx[q]]);
    return v;
}

template <class Acc, class T> DCN_HD Acc bilinear(const T* plane, int64_t H, int64_t W, Acc h, Acc w) {
    return apply_taps<Acc>(plane, bilinear_taps<Acc>(H, W, h, w));
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

// out[p] = apply_taps(plane, taps of sample p) for p < n: the same terms in the same order,
// plus 0 * (a value inside the plane) for the empty slots. Equal to apply_taps only when every
// value of the plane is finite (0 * inf is NaN): callers check that, else use apply_taps.
template <class Acc, class T, int B>
DCN_HD void apply_taps_block(const T* plane, int64_t W, const TapsBlock<Acc, B>& blk, int n, Acc* out) {
    int p = 0;
#if !defined(__CUDACC__) && (defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12))
    if constexpr (std::is_same<Acc, float>::value && std::is_same<T, float>::value) {
        // 4 samples at a time (SSE on any x86-64): each sample's two window rows are two pairs
        // of adjacent floats, loaded 8 bytes at a time and unzipped into the four slot vectors.
        typedef float v4 __attribute__((vector_size(16)));
        const float* pf = reinterpret_cast<const float*>(plane);
        for (; p + 4 <= n; p += 4) {
            float top[8], bot[8];  // (x00, x01) and (x10, x11) of samples p .. p+3
            for (int l = 0; l < 4; ++l) {
                memcpy(top + 2 * l, pf + blk.base[p + l], 2 * sizeof(float));
                memcpy(bot + 2 * l, pf + blk.base[p + l] + W, 2 * sizeof(float));
            }
            v4 t01, t23, b01, b23, w00, w01, w10, w11;
            memcpy(&t01, top, sizeof t01);
            memcpy(&t23, top + 4, sizeof t23);
            memcpy(&b01, bot, sizeof b01);
            memcpy(&b23, bot + 4, sizeof b23);
            memcpy(&w00, &blk.w[0][p], sizeof w00);
            memcpy(&w01, &blk.w[1][p], sizeof w01);
            memcpy(&w10, &blk.w[2][p], sizeof w10);
            memcpy(&w11, &blk.w[3][p], sizeof w11);
            v4 v = {0.0f, 0.0f, 0.0f, 0.0f};
            v += w00 * __builtin_shufflevector(t01, t23, 0, 2, 4, 6);
            v += w01 * __builtin_shufflevector(t01, t23, 1, 3, 5, 7);
            v += w10 * __builtin_shufflevector(b01, b23, 0, 2, 4, 6);
            v += w11 * __builtin_shufflevector(b01, b23, 1, 3, 5, 7);
            memcpy(reinterpret_cast<float*>(out) + p, &v, sizeof v);
        }
    }
#endif
    for (; p < n; ++p) {
        const T* q = plane + blk.base[p];
        Acc v = Acc(0);
        v += blk.w[0][p] * load<Acc>(q[0]);
        v += blk.w[1][p] * load<Acc>(q[1]);
        v += blk.w[2][p] * load<Acc>(q[W]);
        v += blk.w[3][p] * load<Acc>(q[W + 1]);
        out[p] = v;
    }
}

// ---------------------------------------------------------------------------------------
// DeformConv2d: one column-matrix entry
// ---------------------------------------------------------------------------------------

struct DeformConvDims {
    int64_t N, C, H, W;        // X
    int64_t M, kH, kW;         // W: [M, C/group, kH, kW]
    int64_t strideH, strideW;  //
    int64_t padT, padL, padB, padR;
    int64_t dilH, dilW;
    int64_t group, offsetGroup;
    int64_t outH, outW;
    bool hasMask;
};

// Taps of kernel point (i, j) at output (ho, wo) of batch n, offset group g; weights times the mask.
// offset: [N, 2*offsetGroup*kH*kW, outH, outW], (dh, dw) pairs point-major inside each group;
// mask: [N, offsetGroup*kH*kW, outH, outW] or nullptr (= 1).
template <class Acc, class T>
DCN_HD BilinearTaps<Acc> deform_im2col_taps(const T* offset, const T* mask, const DeformConvDims& d, int64_t n,
                                            int64_t g, int64_t i, int64_t j, int64_t ho, int64_t wo) {
    const int64_t kk = d.kH * d.kW;
    const int64_t k = i * d.kW + j;
    const int64_t L = d.outH * d.outW;
    const int64_t pos = ho * d.outW + wo;
    const int64_t ch = 2 * (g * kk + k);  // channel of dh; dw follows
    const T* off = offset + (n * 2 * d.offsetGroup * kk + ch) * L + pos;
    const Acc h = Acc(ho * d.strideH - d.padT + i * d.dilH) + load<Acc>(off[0]);
    const Acc w = Acc(wo * d.strideW - d.padL + j * d.dilW) + load<Acc>(off[L]);
    BilinearTaps<Acc> t = bilinear_taps<Acc>(d.H, d.W, h, w);
    if (mask != nullptr) {
        const Acc m = load<Acc>(mask[(n * d.offsetGroup * kk + g * kk + k) * L + pos]);
        for (int q = 0; q < 4; ++q) t.w[q] *= m;
    }
    return t;
}

template <class Acc, class T>
DCN_HD Acc deform_im2col_element(const T* X, const T* offset, const T* mask, const DeformConvDims& d, int64_t n,
                                 int64_t c, int64_t i, int64_t j, int64_t ho, int64_t wo) {
    const int64_t g = c / (d.C / d.offsetGroup);
    const BilinearTaps<Acc> t = deform_im2col_taps<Acc>(offset, mask, d, n, g, i, j, ho, wo);
    return apply_taps<Acc>(X + (n * d.C + c) * d.H * d.W, t);
}

// ---------------------------------------------------------------------------------------
// DeformPSROIPool: one output value
// ---------------------------------------------------------------------------------------

struct DeformPSROIPoolDims {
    int64_t N, C, H, W;  // data
    int64_t R;           // rois: [R, 5]
    double spatial_scale;
    int64_t output_dim, group_size, pooled_size;
    int64_t part_size;  // resolved: 0 in the attribute -> pooled_size
    int64_t sample_per_part;
    double trans_std;
    int64_t num_classes;  // trans channels / 2; 1 without trans or with no_trans
    bool no_trans;        // true also when trans is absent
};

// rois[r, 0] as a batch index (truncated toward zero, as the original operator's int cast);
// -1 when it is not in [0, N) (or NaN).
template <class Acc> DCN_HD int64_t psroi_batch_index(Acc v, int64_t N) {
    if (!(v > Acc(-1) && v < Acc(N))) return -1;
    const int64_t b = static_cast<int64_t>(v);
    return (b >= 0 && b < N) ? b : -1;
}

// rois: float32 for float32 and float16 data (contract: coordinates never in half); TR = T for float64.
template <class Acc, class T, class TR>
DCN_HD Acc deform_psroi_pool_element(const T* data, const TR* rois, const T* trans, const DeformPSROIPoolDims& d,
                                     int64_t r, int64_t ctop, int64_t ph, int64_t pw) {
    const TR* roi = rois + r * 5;
    const int64_t b = psroi_batch_index<Acc>(load<Acc>(roi[0]), d.N);
    if (b < 0) return Acc(0);
    const Acc scale = static_cast<Acc>(d.spatial_scale);
    const Acc half = Acc(0.5);
    const Acc start_w = round_of(load<Acc>(roi[1])) * scale - half;
    const Acc start_h = round_of(load<Acc>(roi[2])) * scale - half;
    const Acc end_w = (round_of(load<Acc>(roi[3])) + Acc(1)) * scale - half;
    const Acc end_h = (round_of(load<Acc>(roi[4])) + Acc(1)) * scale - half;
    // A box that is not finite (NaN / inf coordinates, or overflowing when scaled) counts no sample: 0.
    if (!((start_w - start_w) == Acc(0) && (start_h - start_h) == Acc(0) && (end_w - end_w) == Acc(0) &&
          (end_h - end_h) == Acc(0)))
        return Acc(0);
    const Acc roi_w = (end_w - start_w > Acc(0.1)) ? end_w - start_w : Acc(0.1);
    const Acc roi_h = (end_h - start_h > Acc(0.1)) ? end_h - start_h : Acc(0.1);
    const int64_t P = d.pooled_size, S = d.sample_per_part;
    const Acc bin_w = roi_w / Acc(P), bin_h = roi_h / Acc(P);
    const Acc sub_w = bin_w / Acc(S), sub_h = bin_h / Acc(S);

    Acc dx = Acc(0), dy = Acc(0);
    if (!d.no_trans && trans != nullptr) {
        const int64_t part_h = ph * d.part_size / P;  // floor(ph / P * part_size), exactly
        const int64_t part_w = pw * d.part_size / P;
        const int64_t class_id = ctop / (d.output_dim / d.num_classes);
        const int64_t plane = d.part_size * d.part_size;
        const T* tr = trans + ((r * d.num_classes + class_id) * 2) * plane + part_h * d.part_size + part_w;
        const Acc std_ = static_cast<Acc>(d.trans_std);
        dx = load<Acc>(tr[0]) * std_;
        dy = load<Acc>(tr[plane]) * std_;
    }
    const Acc wstart = Acc(pw) * bin_w + start_w + dx * roi_w;
    const Acc hstart = Acc(ph) * bin_h + start_h + dy * roi_h;

    const int64_t G = d.group_size;
    int64_t gw = pw * G / P, gh = ph * G / P;  // floor(pw * group_size / P), exactly
    gw = gw < 0 ? 0 : (gw > G - 1 ? G - 1 : gw);
    gh = gh < 0 ? 0 : (gh > G - 1 ? G - 1 : gh);
    const int64_t c = (ctop * G + gh) * G + gw;
    const T* plane = data + (b * d.C + c) * d.H * d.W;

    const Acc Wm = Acc(d.W) - half, Hm = Acc(d.H) - half;
    const Acc Wmax = Acc(d.W - 1), Hmax = Acc(d.H - 1);
    Acc sum = Acc(0);
    int64_t count = 0;
    for (int64_t iy = 0; iy < S; ++iy) {
        for (int64_t ix = 0; ix < S; ++ix) {
            Acc w = wstart + Acc(ix) * sub_w;
            Acc h = hstart + Acc(iy) * sub_h;
            // skip w < -0.5, w > W - 0.5, h < -0.5, h > H - 0.5 (and NaN)
            if (!(w >= -half && w <= Wm && h >= -half && h <= Hm)) continue;
            w = w < Acc(0) ? Acc(0) : (w > Wmax ? Wmax : w);
            h = h < Acc(0) ? Acc(0) : (h > Hmax ? Hmax : h);
            sum += bilinear<Acc>(plane, d.H, d.W, h, w);
            ++count;
        }
    }
    return count == 0 ? Acc(0) : sum / Acc(count);
}

// ---------------------------------------------------------------------------------------
// Validation (host only): "" when fine, else "<OpType> '<node>': <what> <got>, expected <expected>"
// ---------------------------------------------------------------------------------------
#if !defined(__CUDA_ARCH__)


struct ShapeRef {
    const int64_t* dims = nullptr;
    int64_t rank = -1;  // < 0: the (optional) input is absent
    ShapeRef() = default;
    ShapeRef(const int64_t* d, int64_t r) : dims(d), rank(r) {}
    ShapeRef(const std::vector<int64_t>& v) : dims(v.data()), rank(static_cast<int64_t>(v.size())) {}
    bool present() const { return rank >= 0; }
    int64_t operator[](int64_t i) const { return dims[i]; }
};

inline std::string ints_str(const int64_t* v, int64_t n) {
    std::string s = "[";
    for (int64_t i = 0; i < n; ++i) {
        if (i) s += ", ";
        s += std::to_string(v[i]);
    }
    return s + "]";
}
inline std::string ints_str(const std::vector<int64_t>& v) { return ints_str(v.data(), static_cast<int64_t>(v.size())); }
inline std::string shape_str(ShapeRef s) { return ints_str(s.dims, s.rank); }

// Shortest text that reads back to the same double ("0.0625", "nan", "inf").
inline std::string float_str(double v) {
    if (std::isnan(v)) return "nan";
    if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
    char buf[40];
    for (int prec = 1; prec <= 17; ++prec) {
        std::snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (std::strtod(buf, nullptr) == v) break;
    }
    return buf;
}

inline std::string op_prefix(const char* op_type, const std::string& node) {
    return std::string(op_type) + " '" + node + "': ";
}

// "<OpType> '<node>': attribute <attr> is missing, expected <kind>" (kind e.g. "an INT")
inline std::string missing_attribute_message(const char* op_type, const std::string& node, const char* attr,
                                             const char* kind) {
    return op_prefix(op_type, node) + "attribute " + attr + " is missing, expected " + kind;
}
// "<OpType> '<node>': attribute <attr> has the wrong type, expected <kind>"
inline std::string attribute_type_message(const char* op_type, const std::string& node, const char* attr,
                                          const char* kind) {
    return op_prefix(op_type, node) + "attribute " + attr + " has the wrong type, expected " + kind;
}

struct DeformConvAttrs {
    std::vector<int64_t> strides{1, 1};
    std::vector<int64_t> pads{0, 0, 0, 0};  // top, left, bottom, right
    std::vector<int64_t> dilations{1, 1};
    std::vector<int64_t> kernel_shape;  // empty: absent
    int64_t group = 1;
    int64_t offset_group = 1;
};

inline std::string validate_deform_conv2d_attrs(const std::string& node, const DeformConvAttrs& a) {
    const std::string p = op_prefix(kDeformConv2dName, node);
    struct List { const char* name; const std::vector<int64_t>& v; size_t n; int64_t min, max; };
    const List lists[] = {{"strides", a.strides, 2, 1, kMaxConvStride},
                          {"pads", a.pads, 4, 0, kMaxConvPad},
                          {"dilations", a.dilations, 2, 1, kMaxConvDilation}};
    for (const List& l : lists) {
        if (l.v.size() != l.n)
            return p + "attribute " + l.name + " has " + std::to_string(l.v.size()) + " values, expected " +
                   std::to_string(l.n);
        for (int64_t x : l.v)
            if (x < l.min)
                return p + "attribute " + l.name + " = " + ints_str(l.v) + ", expected values >= " +
                       std::to_string(l.min);
        for (int64_t x : l.v)
            if (x > l.max)
                return p + "attribute " + l.name + " = " + ints_str(l.v) + ", expected values <= " +
                       std::to_string(l.max) + " (limit)";
    }
    if (!a.kernel_shape.empty()) {
        if (a.kernel_shape.size() != 2)
            return p + "attribute kernel_shape has " + std::to_string(a.kernel_shape.size()) +
                   " values, expected 2";
        for (int64_t x : a.kernel_shape)
            if (x < 1) return p + "attribute kernel_shape = " + ints_str(a.kernel_shape) + ", expected values >= 1";
    }
    for (int64_t x : a.kernel_shape)
        if (x > INT32_MAX)
            return p + "attribute kernel_shape = " + ints_str(a.kernel_shape) + ", expected values <= " +
                   std::to_string(INT32_MAX);
    if (a.group < 1) return p + "attribute group = " + std::to_string(a.group) + ", expected >= 1";
    if (a.offset_group < 1)
        return p + "attribute offset_group = " + std::to_string(a.offset_group) + ", expected >= 1";
    return "";
}

// Checks shapes against each other and the attributes; fills *out (when not null) on success.
// B and mask may be absent (rank < 0). Batch 0 is fine (empty output).
inline std::string validate_deform_conv2d(const std::string& node, const DeformConvAttrs& a, ShapeRef X, ShapeRef W,
                                          ShapeRef offset, ShapeRef B, ShapeRef mask, DeformConvDims* out) {
    std::string e = validate_deform_conv2d_attrs(node, a);
    if (!e.empty()) return e;
    const std::string p = op_prefix(kDeformConv2dName, node);
    auto rank = [&](const char* name, ShapeRef s, int64_t want, const char* layout) -> std::string {
        if (s.rank != want)
            return p + name + " has rank " + std::to_string(s.rank) + ", expected " + std::to_string(want) + " (" +
                   layout + ")";
        return "";
    };
    if (!(e = rank("X", X, 4, "[N, C, H, W]")).empty()) return e;
    if (!(e = rank("W", W, 4, "[M, C/group, kH, kW]")).empty()) return e;
    if (!(e = rank("offset", offset, 4, "[N, 2*offset_group*kH*kW, oH, oW]")).empty()) return e;
    if (B.present() && !(e = rank("B", B, 1, "[M]")).empty()) return e;
    if (mask.present() && !(e = rank("mask", mask, 4, "[N, offset_group*kH*kW, oH, oW]")).empty()) return e;

    DeformConvDims d{};
    d.N = X[0];
    d.C = X[1];
    d.H = X[2];
    d.W = X[3];
    d.M = W[0];
    d.kH = W[2];
    d.kW = W[3];
    d.strideH = a.strides[0];
    d.strideW = a.strides[1];
    d.padT = a.pads[0];
    d.padL = a.pads[1];
    d.padB = a.pads[2];
    d.padR = a.pads[3];
    d.dilH = a.dilations[0];
    d.dilW = a.dilations[1];
    d.group = a.group;
    d.offsetGroup = a.offset_group;
    d.hasMask = mask.present();
    for (int q = 0; q < 4; ++q)
        if (X[q] < 0) return p + "X has shape " + shape_str(X) + ", expected non-negative dimensions";
    if (d.C % d.group != 0)
        return p + "X has " + std::to_string(d.C) + " channels, expected a multiple of group = " +
               std::to_string(d.group);
    if (d.C % d.offsetGroup != 0)
        return p + "X has " + std::to_string(d.C) + " channels, expected a multiple of offset_group = " +
               std::to_string(d.offsetGroup);
    if (d.M < 0 || d.M % d.group != 0)
        return p + "W has " + std::to_string(d.M) + " output channels, expected a multiple of group = " +
               std::to_string(d.group);
    if (W[1] != d.C / d.group)
        return p + "W has " + std::to_string(W[1]) + " input channels, expected C/group = " +
               std::to_string(d.C / d.group);
    if (d.kH < 1 || d.kW < 1)
        return p + "W has kernel size " + std::to_string(d.kH) + "x" + std::to_string(d.kW) + ", expected >= 1x1";
    if (!a.kernel_shape.empty() && (a.kernel_shape[0] != d.kH || a.kernel_shape[1] != d.kW))
        return p + "attribute kernel_shape = " + ints_str(a.kernel_shape) + ", expected W's kernel size [" +
               std::to_string(d.kH) + ", " + std::to_string(d.kW) + "]";
    const std::string geometry = " (input " + std::to_string(d.H) + "x" + std::to_string(d.W) + ", kernel " +
                                 std::to_string(d.kH) + "x" + std::to_string(d.kW) + ", pads " + ints_str(a.pads) +
                                 ", strides " + ints_str(a.strides) + ", dilations " + ints_str(a.dilations) + ")";
    if (!conv_out_size_ok(d.H, d.padT, d.padB, d.dilH, d.kH, d.strideH, &d.outH) ||
        !conv_out_size_ok(d.W, d.padL, d.padR, d.dilW, d.kW, d.strideW, &d.outW))
        return p + "output size overflows int64" + geometry + ", expected a representable size";
    if (d.outH < 1 || d.outW < 1)
        return p + "output size " + std::to_string(d.outH) + "x" + std::to_string(d.outW) + geometry +
               ", expected >= 1x1";
    // Every size product the runtimes form (offset channels, output and column elements) must fit int64.
    int64_t kk = 0, off_c = 0, L = 0, y = 0, cols = 0;
    if (!mul_ok(d.kH, d.kW, &kk) || !mul_ok(d.offsetGroup, kk, &off_c) || !mul_ok(off_c, 2, &off_c) ||
        !mul_ok(d.outH, d.outW, &L) || !mul_ok(d.N, d.M, &y) || !mul_ok(y, L, &y) || !mul_ok(d.C, kk, &cols) ||
        !mul_ok(cols, L, &cols) || !mul_ok(cols, d.N, &cols) || y > kMaxElements || cols > kMaxElements)
        return p + "sizes N*M*oH*oW, N*C*kH*kW*oH*oW or 2*offset_group*kH*kW overflow" + geometry +
               ", expected at most 2^58 elements";
    auto spatial = [&](const char* name, ShapeRef s, int64_t channels, const char* formula) -> std::string {
        if (s[0] != d.N)
            return p + name + " has batch " + std::to_string(s[0]) + ", expected N = " + std::to_string(d.N);
        if (s[1] != channels)
            return p + name + " has " + std::to_string(s[1]) + " channels, expected " + formula + " = " +
                   std::to_string(channels);
        if (s[2] != d.outH || s[3] != d.outW)
            return p + name + " has spatial size " + std::to_string(s[2]) + "x" + std::to_string(s[3]) +
                   ", expected oH x oW = " + std::to_string(d.outH) + "x" + std::to_string(d.outW);
        return "";
    };
    if (!(e = spatial("offset", offset, off_c, "2*offset_group*kH*kW")).empty()) return e;
    if (mask.present() && !(e = spatial("mask", mask, d.offsetGroup * kk, "offset_group*kH*kW")).empty()) return e;
    if (B.present() && B[0] != d.M)
        return p + "B has " + std::to_string(B[0]) + " values, expected M = " + std::to_string(d.M);
    if (out) *out = d;
    return "";
}

struct DeformPSROIPoolAttrs {
    double spatial_scale = 0.0;  // required
    int64_t output_dim = 0;      // required
    int64_t group_size = 0;      // required
    int64_t pooled_size = 0;     // required
    int64_t part_size = 0;       // 0 = pooled_size
    int64_t sample_per_part = 4;
    double trans_std = 0.0;
    int64_t no_trans = 0;
};

// The RoI pools' data [N, C, H, W] (data_layout: how the message spells it) and rois [R, 5]:
// "" with N, C, H, W, R set, else the message (p: op_prefix).
inline std::string validate_roi_pool_inputs(const std::string& p, ShapeRef data, ShapeRef rois, const char* data_layout,
                                            int64_t& N, int64_t& C, int64_t& H, int64_t& W, int64_t& R) {
    if (data.rank != 4) return p + "data has rank " + std::to_string(data.rank) + ", expected 4 (" + data_layout + ")";
    if (rois.rank != 2 || rois[1] != 5) return p + "rois has shape " + shape_str(rois) + ", expected [R, 5]";
    for (int q = 0; q < 4; ++q)
        if (data[q] < 0) return p + "data has shape " + shape_str(data) + ", expected non-negative dimensions";
    N = data[0];
    C = data[1];
    H = data[2];
    W = data[3];
    R = rois[0];
    return "";
}

// Data check of the RoI pools, host memory: every rois[r, 0] (read as Acc) must be a batch index in [0, N).
template <class Acc, class RT>
inline std::string validate_roi_batch_indices(const char* op_type, const std::string& node, const RT* rois, int64_t R,
                                              int64_t N) {
    for (int64_t r = 0; r < R; ++r) {
        const Acc v = load<Acc>(rois[r * 5]);
        if (psroi_batch_index<Acc>(v, N) < 0)
            return op_prefix(op_type, node) + "rois[" + std::to_string(r) + ", 0] = " +
                   float_str(static_cast<double>(v)) + ", expected a batch index in [0, N) = [0, " +
                   std::to_string(N) + ")";
    }
    return "";
}

inline std::string validate_deform_psroi_pool_attrs(const std::string& node, const DeformPSROIPoolAttrs& a) {
    const std::string p = op_prefix(kDeformPSROIPoolName, node);
    if (!(std::isfinite(a.spatial_scale) && a.spatial_scale > 0))
        return p + "attribute spatial_scale = " + float_str(a.spatial_scale) + ", expected a finite value > 0";
    struct Int { const char* name; int64_t v; int64_t min, max; };
    const Int ints[] = {{"output_dim", a.output_dim, 1, kMaxPoolOutputDim},
                        {"group_size", a.group_size, 1, kMaxPoolGroupSize},
                        {"pooled_size", a.pooled_size, 1, kMaxPoolPooledSize},
                        {"part_size", a.part_size, 0, kMaxPoolPartSize},
                        {"sample_per_part", a.sample_per_part, 1, kMaxPoolSamplePerPart}};
    for (const Int& x : ints) {
        if (x.v < x.min)
            return p + "attribute " + x.name + " = " + std::to_string(x.v) + ", expected >= " + std::to_string(x.min);
        if (x.v > x.max)
            return p + "attribute " + x.name + " = " + std::to_string(x.v) + ", expected <= " +
                   std::to_string(x.max) + " (limit)";
    }
    if (!std::isfinite(a.trans_std))
        return p + "attribute trans_std = " + float_str(a.trans_std) + ", expected a finite value";
    if (a.no_trans != 0 && a.no_trans != 1)
        return p + "attribute no_trans = " + std::to_string(a.no_trans) + ", expected 0 or 1";
    return "";
}

// trans may be absent (rank < 0); with no_trans = 1 it is ignored. R = 0 is fine (empty output).
inline std::string validate_deform_psroi_pool(const std::string& node, const DeformPSROIPoolAttrs& a, ShapeRef data,
                                              ShapeRef rois, ShapeRef trans, DeformPSROIPoolDims* out) {
    std::string e = validate_deform_psroi_pool_attrs(node, a);
    if (!e.empty()) return e;
    const std::string p = op_prefix(kDeformPSROIPoolName, node);
    DeformPSROIPoolDims d{};
    e = validate_roi_pool_inputs(p, data, rois, "[N, output_dim*group_size^2, H, W]", d.N, d.C, d.H, d.W, d.R);
    if (!e.empty()) return e;
    d.spatial_scale = a.spatial_scale;
    d.output_dim = a.output_dim;
    d.group_size = a.group_size;
    d.pooled_size = a.pooled_size;
    d.part_size = a.part_size == 0 ? a.pooled_size : a.part_size;
    d.sample_per_part = a.sample_per_part;
    d.trans_std = a.trans_std;
    d.no_trans = a.no_trans != 0 || !trans.present();
    d.num_classes = 1;
    const int64_t want_c = a.output_dim * a.group_size * a.group_size;  // <= 2^30 by the limits
    int64_t out_elems = 0;
    if (!mul_ok(d.R, a.output_dim * a.pooled_size * a.pooled_size, &out_elems) || out_elems > kMaxElements)
        return p + "output size R*output_dim*pooled_size^2 overflows (R = " + std::to_string(d.R) +
               "), expected at most 2^58 elements";
    if (d.C != want_c)
        return p + "data has " + std::to_string(d.C) + " channels, expected output_dim*group_size^2 = " +
               std::to_string(want_c);
    if (!d.no_trans) {
        if (trans.rank != 4)
            return p + "trans has rank " + std::to_string(trans.rank) +
                   ", expected 4 ([R, 2*num_classes, part_size, part_size])";
        if (trans[0] != d.R)
            return p + "trans has " + std::to_string(trans[0]) + " RoIs, expected R = " + std::to_string(d.R);
        if (trans[1] < 2 || trans[1] % 2 != 0)
            return p + "trans has " + std::to_string(trans[1]) +
                   " channels, expected an even number >= 2 (2*num_classes)";
        d.num_classes = trans[1] / 2;
        if (a.output_dim % d.num_classes != 0)
            return p + "trans has " + std::to_string(trans[1]) + " channels (num_classes = " +
                   std::to_string(d.num_classes) + "), expected num_classes dividing output_dim = " +
                   std::to_string(a.output_dim);
        if (trans[2] != d.part_size || trans[3] != d.part_size)
            return p + "trans has spatial size " + std::to_string(trans[2]) + "x" + std::to_string(trans[3]) +
                   ", expected part_size x part_size = " + std::to_string(d.part_size) + "x" +
                   std::to_string(d.part_size);
    }
    if (out) *out = d;
    return "";
}

// Data check, host memory: every rois[r, 0] must be a batch index in [0, N).
template <class T>
inline std::string validate_deform_psroi_pool_batch_indices(const std::string& node, const T* rois, int64_t R,
                                                            int64_t N) {
    return validate_roi_batch_indices<typename AccOf<T>::type>(kDeformPSROIPoolName, node, rois, R, N);
}

#endif  // !__CUDA_ARCH__

}  // namespace dcn

// =======================================================================================
// DeformRoIPool (mmcv's deformable RoI pooling; contract: docs/deform_roi_pool.md)
// =======================================================================================
//
//   struct DeformRoIPoolDims { N, C, H, W, R, pooled_height, pooled_width; double spatial_scale;
//                              int64_t sampling_ratio; double gamma; bool has_offset; };
//   template<class Acc, class T> DCN_HD Acc roi_align_bilinear(const T* plane, int64_t H, int64_t W, Acc y, Acc x);
//       RoIAlign's rule: 0 when y < -1, y > H, x < -1, x > W (or NaN); coordinates below 0 read as
//       0; at or past the last row / column (y >= H - 1) that row / column alone.
//   template<class Acc> DCN_HD int64_t roi_pool_grid(Acc roi_size, int64_t pooled, int64_t sampling_ratio);
//       samples per bin along one axis: sampling_ratio, or (0) ceil(roi_size / pooled); both
//       clamped to [0, kRoIPoolMaxGrid] (NaN -> 0).
//   template<class Acc, class T, class RT> DCN_HD Acc deform_roi_pool_element(
//       const T* data, const RT* rois, const T* offset /*nullable*/, const DeformRoIPoolDims& d,
//       int64_t r, int64_t c, int64_t ph, int64_t pw);
//       one output value; coordinates in Acc (float for float / half data: RoIs are float32);
//       0 when rois[r, 0] is not a batch index.
//   Host only: struct DeformRoIPoolAttrs; validate_deform_roi_pool_attrs / validate_deform_roi_pool /
//       validate_deform_roi_pool_batch_indices, messages as above.
namespace dcn {

constexpr int64_t kRoIPoolMaxGrid = 1024;

DCN_HD float ceil_of(float x) { return ceilf(x); }
DCN_HD double ceil_of(double x) { return ::ceil(x); }

struct DeformRoIPoolDims {
    int64_t N, C, H, W;  // data
    int64_t R;           // rois: [R, 5]
    int64_t pooled_height, pooled_width;
    double spatial_scale;
    int64_t sampling_ratio;  // 0 = adaptive
    double gamma;
    bool has_offset;  // offset [R, 2, pooled_height, pooled_width] given
};

template <class Acc, class T>
DCN_HD Acc roi_align_bilinear(const T* plane, int64_t H, int64_t W, Acc y, Acc x) {
    if (!(y >= Acc(-1) && y <= Acc(H) && x >= Acc(-1) && x <= Acc(W))) return Acc(0);
    if (y < Acc(0)) y = Acc(0);
    if (x < Acc(0)) x = Acc(0);
    int64_t y0 = static_cast<int64_t>(floor_of(y)), x0 = static_cast<int64_t>(floor_of(x)), y1, x1;
    if (y0 >= H - 1) {
        y0 = y1 = H - 1;
        y = Acc(y0);
    } else {
        y1 = y0 + 1;
    }
    if (x0 >= W - 1) {
        x0 = x1 = W - 1;
        x = Acc(x0);
    } else {
        x1 = x0 + 1;
    }
    const Acc ly = y - Acc(y0), lx = x - Acc(x0);
    const Acc hy = Acc(1) - ly, hx = Acc(1) - lx;
    return hy * hx * load<Acc>(plane[y0 * W + x0]) + hy * lx * load<Acc>(plane[y0 * W + x1]) +
           ly * hx * load<Acc>(plane[y1 * W + x0]) + ly * lx * load<Acc>(plane[y1 * W + x1]);
}

template <class Acc> DCN_HD int64_t roi_pool_grid(Acc roi_size, int64_t pooled, int64_t sampling_ratio) {
    if (sampling_ratio > 0) return sampling_ratio < kRoIPoolMaxGrid ? sampling_ratio : kRoIPoolMaxGrid;
    const Acc g = roi_size / Acc(pooled);
    if (!(g > Acc(0))) return 0;  // also NaN
    if (g >= Acc(kRoIPoolMaxGrid)) return kRoIPoolMaxGrid;
    return static_cast<int64_t>(ceil_of(g));
}

template <class Acc, class T, class RT>
DCN_HD Acc deform_roi_pool_element(const T* data, const RT* rois, const T* offset, const DeformRoIPoolDims& d,
                                   int64_t r, int64_t c, int64_t ph, int64_t pw) {
    const RT* roi = rois + r * 5;
    const int64_t b = psroi_batch_index<Acc>(static_cast<Acc>(roi[0]), d.N);
    if (b < 0 || d.H < 1 || d.W < 1) return Acc(0);
    const Acc scale = static_cast<Acc>(d.spatial_scale), half = Acc(0.5);
    Acc start_w = static_cast<Acc>(roi[1]) * scale - half;
    Acc start_h = static_cast<Acc>(roi[2]) * scale - half;
    const Acc roi_w = (static_cast<Acc>(roi[3]) * scale - half) - start_w;
    const Acc roi_h = (static_cast<Acc>(roi[4]) * scale - half) - start_h;
    const Acc bin_w = roi_w / Acc(d.pooled_width), bin_h = roi_h / Acc(d.pooled_height);
    const int64_t gh = roi_pool_grid<Acc>(roi_h, d.pooled_height, d.sampling_ratio);
    const int64_t gw = roi_pool_grid<Acc>(roi_w, d.pooled_width, d.sampling_ratio);
    if (d.has_offset && offset != nullptr) {  // offset[r, 0] moves x, offset[r, 1] moves y
        const int64_t plane = d.pooled_height * d.pooled_width;
        const T* o = offset + r * 2 * plane + ph * d.pooled_width + pw;
        const Acc gamma = static_cast<Acc>(d.gamma);
        start_w += gamma * roi_w * load<Acc>(o[0]);
        start_h += gamma * roi_h * load<Acc>(o[plane]);
    }
    const T* plane = data + (b * d.C + c) * d.H * d.W;
    Acc sum = Acc(0);
    for (int64_t iy = 0; iy < gh; ++iy) {
        const Acc y = start_h + Acc(ph) * bin_h + (Acc(iy) + half) * bin_h / Acc(gh);
        for (int64_t ix = 0; ix < gw; ++ix) {
            const Acc x = start_w + Acc(pw) * bin_w + (Acc(ix) + half) * bin_w / Acc(gw);
            sum += roi_align_bilinear<Acc>(plane, d.H, d.W, y, x);
        }
    }
    const int64_t count = gh * gw > 1 ? gh * gw : 1;
    return sum / Acc(count);
}

#if !defined(__CUDA_ARCH__)

struct DeformRoIPoolAttrs {
    int64_t pooled_height = 0;  // required
    int64_t pooled_width = 0;   // required
    double spatial_scale = 0.0;  // required
    int64_t sampling_ratio = 0;
    double gamma = 0.1;
};

inline std::string validate_deform_roi_pool_attrs(const std::string& node, const DeformRoIPoolAttrs& a) {
    const std::string p = op_prefix(kDeformRoIPoolName, node);
    if (a.pooled_height < 1)
        return p + "attribute pooled_height = " + std::to_string(a.pooled_height) + ", expected >= 1";
    if (a.pooled_width < 1)
        return p + "attribute pooled_width = " + std::to_string(a.pooled_width) + ", expected >= 1";
    if (!(std::isfinite(a.spatial_scale) && a.spatial_scale > 0))
        return p + "attribute spatial_scale = " + float_str(a.spatial_scale) + ", expected a finite value > 0";
    if (a.sampling_ratio < 0)
        return p + "attribute sampling_ratio = " + std::to_string(a.sampling_ratio) + ", expected >= 0 (0 = adaptive)";
    if (!std::isfinite(a.gamma)) return p + "attribute gamma = " + float_str(a.gamma) + ", expected a finite value";
    return "";
}

// offset may be absent (rank < 0). R = 0 is fine (empty output).
inline std::string validate_deform_roi_pool(const std::string& node, const DeformRoIPoolAttrs& a, ShapeRef data,
                                            ShapeRef rois, ShapeRef offset, DeformRoIPoolDims* out) {
    std::string e = validate_deform_roi_pool_attrs(node, a);
    if (!e.empty()) return e;
    const std::string p = op_prefix(kDeformRoIPoolName, node);
    DeformRoIPoolDims d{};
    e = validate_roi_pool_inputs(p, data, rois, "[N, C, H, W]", d.N, d.C, d.H, d.W, d.R);
    if (!e.empty()) return e;
    d.pooled_height = a.pooled_height;
    d.pooled_width = a.pooled_width;
    d.spatial_scale = a.spatial_scale;
    d.sampling_ratio = a.sampling_ratio;
    d.gamma = a.gamma;
    d.has_offset = offset.present();
    if (d.has_offset) {
        const int64_t want[4] = {d.R, 2, d.pooled_height, d.pooled_width};
        if (offset.rank != 4 || offset[0] != want[0] || offset[1] != 2 || offset[2] != want[2] || offset[3] != want[3])
            return p + "offset has shape " + shape_str(offset) + ", expected " + ints_str(want, 4) +
                   " ([R, 2, pooled_height, pooled_width])";
    }
    if (out) *out = d;
    return "";
}

// Data check, host memory: every rois[r, 0] must be a batch index in [0, N).
template <class RT>
inline std::string validate_deform_roi_pool_batch_indices(const std::string& node, const RT* rois, int64_t R,
                                                          int64_t N) {
    return validate_roi_batch_indices<double>(kDeformRoIPoolName, node, rois, R, N);
}

#endif  // !__CUDA_ARCH__

}  // namespace dcn
