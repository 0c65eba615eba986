// The DeformConv2d ONNX Runtime op's layout helpers (deform_conv2d_ort.cpp only): X copied
// channels-last for the pixel-major columns, the pixel-major GEMM's orientation and its
// position-major output transposed into Y (bias added), and the inf / NaN check of a plane.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "deform_conv2d_math.h"

namespace dcn_ort {

#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12)
#define DCN_ORT_VEC4 1
typedef float v4f __attribute__((vector_size(16)));
// Rows r0..r3 of a 4x4 block of floats become its columns (SSE on any x86-64: four shuffles of
// pairs, then four of halves).
inline void transpose4x4(v4f& r0, v4f& r1, v4f& r2, v4f& r3) {
    const v4f t0 = __builtin_shufflevector(r0, r1, 0, 4, 1, 5), t1 = __builtin_shufflevector(r2, r3, 0, 4, 1, 5);
    const v4f t2 = __builtin_shufflevector(r0, r1, 2, 6, 3, 7), t3 = __builtin_shufflevector(r2, r3, 2, 6, 3, 7);
    r0 = __builtin_shufflevector(t0, t1, 0, 1, 4, 5);
    r1 = __builtin_shufflevector(t0, t1, 2, 3, 6, 7);
    r2 = __builtin_shufflevector(t2, t3, 0, 1, 4, 5);
    r3 = __builtin_shufflevector(t2, t3, 2, 3, 6, 7);
}
// The 4x4 block at src (rows ls apart) transposed to dst (rows ld apart).
inline void transpose4x4(const float* src, int64_t ls, float* dst, int64_t ld) {
    v4f r0, r1, r2, r3;
    std::memcpy(&r0, src, sizeof r0);
    std::memcpy(&r1, src + ls, sizeof r1);
    std::memcpy(&r2, src + 2 * ls, sizeof r2);
    std::memcpy(&r3, src + 3 * ls, sizeof r3);
    transpose4x4(r0, r1, r2, r3);
    std::memcpy(dst, &r0, sizeof r0);
    std::memcpy(dst + ld, &r1, sizeof r1);
    std::memcpy(dst + 2 * ld, &r2, sizeof r2);
    std::memcpy(dst + 3 * ld, &r3, sizeof r3);
}
#endif

// dst[i * C + c] = src[c * hw + i] (in float) for the pixels i in [i0, i1) of every channel c:
// for float, blocks of 4 channels x 4 pixels (transpose4x4), else and for the rest, 8 channels'
// runs read side by side. Measured (one thread, a c3 image, 128 x 4096): 0.16 ms; the same loop on
// runs of 64 pixels 8 channels at a time: 0.23.
template <class T> inline void to_channels_last(const T* src, float* dst, int64_t C, int64_t hw, int64_t i0, int64_t i1) {
    int64_t c = 0;
#if DCN_ORT_VEC4
    if constexpr (std::is_same<T, float>::value) {
        for (; c + 4 <= C; c += 4) {
            int64_t i = i0;
            for (; i + 4 <= i1; i += 4) transpose4x4(src + c * hw + i, hw, dst + i * C + c, C);
            for (; i < i1; ++i)
                for (int64_t k = 0; k < 4; ++k) dst[i * C + c + k] = src[(c + k) * hw + i];
        }
    }
#endif
    for (; c < C; c += 8) {
        const int64_t c1 = std::min(C, c + 8);
        for (int64_t i = i0; i < i1; ++i)
            for (int64_t k = c; k < c1; ++k) dst[i * C + k] = dcn::load<float>(src[k * hw + i]);
    }
}

// The pixel-major GEMM's orientation. MLAS packs the GEMM's right-hand side on every call and runs
// the left-hand side straight from memory, so the smaller of W (M x K) and the chunk's columns
// (positions x K) goes right: where a chunk has more positions than there are filters, columns x
// W^T (position-major [positions, M], then transposed into Y by 4x4 blocks with the bias added:
// from_positions_major, one pass over the chunk's output, which a chunk narrower than an image or
// a bias took anyway), else W x columns^T straight into Y. Measured (ONNX Runtime's Gemm, one
// thread, 2 MiB L2, interleaved), columns x W^T / W x columns^T: c3's chunk 128 x 1152 x 416 0.90,
// a whole c3 image (4096 positions) 0.90, the small layer 32 x 288 x 256 0.81, c4 256 x 2304 x 256
// 0.99, c5 512 x 4608 x 256 0.98. In the op (the old and new library side by side, W an
// initializer; outputs bit for bit the same on c3-c5): one thread c3 0.93-0.96, small 0.89-0.91,
// c3 at 100x100 0.91-0.97; two threads c3 0.95-0.97, small 0.96-0.97; columns x W^T for every
// chunk took c5 1.05-1.08 at one thread, which the rule leaves as it was.
inline bool positions_major_gemm(int64_t filters, int64_t chunk_positions) { return filters < chunk_positions; }

// The GEMM's position-major output src [pn, M] into Y's rows: y[m * ldy + p] = src[p * M + m] +
// bias[m] (stored as T; no addition where bias is null) for the filters m in [m0, m1) and the
// positions p in [0, pn): for float, blocks of 4 positions x 4 filters (transpose4x4, then the
// bias of each row added), else and for the rest one value at a time (the same sum).
template <class T> inline void from_positions_major(const float* src, int64_t M, int64_t pn, int64_t m0, int64_t m1,
                                                    const T* bias, T* y, int64_t ldy) {
    int64_t m = m0;
#if DCN_ORT_VEC4
    if constexpr (std::is_same<T, float>::value) {
        for (; m + 4 <= m1; m += 4) {
            v4f b[4] = {};
            if (bias != nullptr)
                for (int r = 0; r < 4; ++r) b[r] = v4f{bias[m + r], bias[m + r], bias[m + r], bias[m + r]};
            int64_t p = 0;
            for (; p + 4 <= pn; p += 4) {
                v4f r[4];
                for (int j = 0; j < 4; ++j) std::memcpy(&r[j], src + (p + j) * M + m, sizeof r[j]);
                transpose4x4(r[0], r[1], r[2], r[3]);
                for (int j = 0; j < 4; ++j) {
                    if (bias != nullptr) r[j] += b[j];
                    std::memcpy(y + (m + j) * ldy + p, &r[j], sizeof r[j]);
                }
            }
            for (; p < pn; ++p)
                for (int j = 0; j < 4; ++j)
                    y[(m + j) * ldy + p] = bias != nullptr ? src[p * M + m + j] + bias[m + j] : src[p * M + m + j];
        }
    }
#endif
    for (; m < m1; ++m) {
        const float b = bias != nullptr ? dcn::load<float>(bias[m]) : 0.0f;
        for (int64_t p = 0; p < pn; ++p)
            y[m * ldy + p] = dcn::store<T>(bias != nullptr ? src[p * M + m] + b : src[p * M + m]);
    }
}

inline bool all_finite(const float* v, int64_t n) {
    uint32_t bad = 0;  // exponent all ones: inf or NaN
    for (int64_t i = 0; i < n; ++i) {
        uint32_t u;
        std::memcpy(&u, v + i, sizeof u);
        bad |= static_cast<uint32_t>((u & 0x7f800000u) == 0x7f800000u);
    }
    return bad == 0;
}
inline bool all_finite(const dcn::Half* v, int64_t n) {
    uint32_t bad = 0;  // exponent all ones: inf or NaN
    for (int64_t i = 0; i < n; ++i) bad |= static_cast<uint32_t>((v[i].bits & 0x7c00u) == 0x7c00u);
    return bad == 0;
}

}  // namespace dcn_ort
