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
//   mul_rn, add_rn   float / double: a * b, a + b each rounded on its own, never fused into an fma
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
//   template<class Acc, class I = int64_t> DCN_HD BilinearTaps<Acc, I> bilinear_taps_split(I H, I W,
//       int64_t hb, Acc hoff, int64_t wb, Acc woff);
//       the same at h = hb + hoff, w = wb + woff exactly (integer grid points plus float offsets:
//       split_coord keeps the integer part in int64 and the fraction exact; no sum rounded to Acc;
//       I = int32_t: in Acc, where grid_exact_in_float holds).
//
// Also here (host only, included below): the validation helpers of dcn_validate.h (ShapeRef,
// messages). Taps blocks (many samples of one plane at a time, the CPU ops' sampling):
// dcn_taps_block.h. The RoI pools' shared RoI checks: dcn_roi.h; the attribute tables'
// machinery: dcn_fields.h.
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

// a * b and a + b, each rounded on its own: never contracted into one fma. nvcc fuses a * b + c into an
// fma by default (-fmad=true) while the host libraries are built with -ffp-contract=off, so the same
// expression rounds once on the device and twice on the host. Where a coordinate decides something
// discrete (a sample inside or skipped, a grid size by ceil: the RoI pools), that one rounding moves
// whole samples, so such coordinates are written with these and agree bit for bit on every side.
// DCN_FMA_CONTRACTION_TEST (tests only: the host built with contraction on, as nvcc builds the device)
// keeps them opaque to the host compiler, as __fmul_rn / __fadd_rn are to nvcc's.
#if defined(__CUDA_ARCH__)
DCN_HD float mul_rn(float a, float b) { return __fmul_rn(a, b); }
DCN_HD double mul_rn(double a, double b) { return __dmul_rn(a, b); }
DCN_HD float add_rn(float a, float b) { return __fadd_rn(a, b); }
DCN_HD double add_rn(double a, double b) { return __dadd_rn(a, b); }
#else
template <class A> DCN_HD A rn_opaque(A r) {
#if defined(DCN_FMA_CONTRACTION_TEST)
    __asm__("" : "+x"(r));  // the value leaves the compiler's sight: nothing fuses across it
#endif
    return r;
}
DCN_HD float mul_rn(float a, float b) { return rn_opaque(a * b); }
DCN_HD double mul_rn(double a, double b) { return rn_opaque(a * b); }
DCN_HD float add_rn(float a, float b) { return rn_opaque(a + b); }
DCN_HD double add_rn(double a, double b) { return rn_opaque(a + b); }
#endif

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

// The taps of a sample outside the map: nothing to read.
template <class Acc, class I> DCN_HD BilinearTaps<Acc, I> outside_taps() {
    BilinearTaps<Acc, I> t;
    for (int q = 0; q < 4; ++q) {
        t.idx[q] = -1;
        t.w[q] = Acc(0);
    }
    t.hl = t.wl = -2;
    return t;
}

// The taps of a sample inside the map (h > -1, h < H, w > -1, w < W) from its top-left neighbour
// (hl, wl) and the fractions lh = h - hl, lw = w - wl in [0, 1).
template <class Acc, class I> DCN_HD BilinearTaps<Acc, I> taps_from_parts(I H, I W, I hl, Acc lh, I wl, Acc lw) {
    BilinearTaps<Acc, I> t = outside_taps<Acc, I>();
    const I hh = hl + 1, wh = wl + 1;
    t.hl = hl;
    t.wl = wl;
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

template <class Acc, class I = int64_t> DCN_HD BilinearTaps<Acc, I> bilinear_taps(I H, I W, Acc h, Acc w) {
    // Zero when h <= -1, h >= H, w <= -1, w >= W; written so that NaN is zero too.
    if (!(h > Acc(-1) && h < Acc(H) && w > Acc(-1) && w < Acc(W))) return outside_taps<Acc, I>();
    const Acc hf = floor_of(h), wf = floor_of(w);
    return taps_from_parts<Acc, I>(H, W, static_cast<I>(hf), h - hf, static_cast<I>(wf), w - wf);
}

// A coordinate base + off (base an integer, off a float) split exactly, without forming the sum in
// Acc: the integer part ip = base + floor(off) in int64 and the fraction off - floor(off) in [0, 1)
// (exact, and +0 when zero: floor(-0) is -0). A float sum keeps 24 bits: on a map of 4096 rows the
// offset's fraction to 2^-12 of a pixel, past 2^24 rows not even the row. ok = false (the sample
// is outside) for an offset that is NaN, infinite or past 2^60.
template <class Acc> struct SplitCoord {
    int64_t ip;
    Acc frac;
    bool ok;
};
template <class Acc> DCN_HD SplitCoord<Acc> split_coord(int64_t base, Acc off) {
    SplitCoord<Acc> s;
    const Acc fo = floor_of(off), lim = Acc(1152921504606846976.0);  // 2^60
    s.ok = fo > -lim && fo < lim;  // false for NaN
    s.ip = s.ok ? base + static_cast<int64_t>(fo) : 0;
    s.frac = off - fo;
    return s;
}
// Inside (-1, size) along one axis: ip > -1, or ip = -1 with a fraction; ip < size (the fraction is below 1).
template <class Acc> DCN_HD bool split_inside(const SplitCoord<Acc>& c, int64_t size) {
    return c.ok && (c.ip > -1 || (c.ip == -1 && c.frac > Acc(0))) && c.ip < size;
}

// bilinear_taps at the exact h = hb + hoff, w = wb + woff (DeformConv2d's sampling positions: an
// integer grid point plus a float offset): the same rule, every bit of the offsets kept.
// I = int32_t (a CUDA kernel's narrow instance), in fewer registers: inside is hoff > -1 - hb and
// hoff < H - hb (w alike), comparisons with integers that Acc holds exactly where the map's sides
// and every grid point are within 2^23 (grid_exact_in_float); inside, floor(hoff) is small, so
// int32 holds it. The same decisions and taps as the int64 instance.
template <class Acc, class I = int64_t>
DCN_HD BilinearTaps<Acc, I> bilinear_taps_split(I H, I W, int64_t hb, Acc hoff, int64_t wb, Acc woff) {
    if constexpr (sizeof(I) == 4) {
        const I h0 = static_cast<I>(hb), w0 = static_cast<I>(wb);
        // false for NaN too
        if (!(hoff > Acc(-1 - h0) && hoff < Acc(H - h0) && woff > Acc(-1 - w0) && woff < Acc(W - w0)))
            return outside_taps<Acc, I>();
        const Acc fh = floor_of(hoff), fw = floor_of(woff);
        return taps_from_parts<Acc, I>(H, W, h0 + static_cast<I>(fh), hoff - fh, w0 + static_cast<I>(fw), woff - fw);
    } else {
        const SplitCoord<Acc> h = split_coord(hb, hoff), w = split_coord(wb, woff);
        if (!(split_inside(h, H) && split_inside(w, W))) return outside_taps<Acc, I>();
        return taps_from_parts<Acc, I>(H, W, static_cast<I>(h.ip), h.frac, static_cast<I>(w.ip), w.frac);
    }
}
// Does every grid point base (|base| <= bound) and side (H, W) stay within 2^23, so that float holds
// every -1 - base and size - base exactly (bilinear_taps_split's int32 instance)?
DCN_HD bool grid_exact_in_float(int64_t H, int64_t W, int64_t hbound, int64_t wbound) {
    const int64_t lim = int64_t(1) << 23;
    return H <= lim && W <= lim && hbound <= lim && wbound <= lim;
}

// A tap's weight times its sample's mask (DCNv2's modulation folded into the bilinear weights): a
// zero weight stays zero, so that an infinite mask gives mask * bilinear's inf where the sample sits
// on a neighbour (weights 1, 0, 0, 0), not inf * 0 = NaN. Exact only there: with two or more
// non-zero weights an infinite mask can still give NaN where mask * (their sum) is inf.
template <class Acc> DCN_HD Acc fold_mask(Acc w, Acc m) { return w == Acc(0) ? Acc(0) : w * m; }

template <class Acc, class T, class I> DCN_HD Acc apply_taps(const T* plane, const BilinearTaps<Acc, I>& t) {
    Acc v = Acc(0);
    for (int q = 0; q < 4; ++q)
        if (t.idx[q] >= 0) v += t.w[q] * load<Acc>(plane[t.idx[q]]);
    return v;
}

template <class Acc, class T, class I = int64_t> DCN_HD Acc bilinear(const T* plane, I H, I W, Acc h, Acc w) {
    return apply_taps<Acc>(plane, bilinear_taps<Acc, I>(H, W, h, w));
}

}  // namespace dcn
