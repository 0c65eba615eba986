// multi_scale_deformable_attention_math.h: the math of dcn::MultiScaleDeformableAttention (shared/design/ops.md), once, for
// the host (g++ -std=c++17: ONNX Runtime op, host tests) and CUDA (nvcc: the kernels), on top of
// plugins/common/dcn_math.h's bilinear sampling core (bilinear_taps: never copied here).
//
//   Y[n, q, m*D + d] = sum_l sum_p A[n,q,m,l,p] * bilinear(V_l[n, :, :, m, d], y, x)
//   y = loc[n,q,m,l,p,1] * H_l - 0.5,  x = loc[n,q,m,l,p,0] * W_l - 0.5
//
// Layouts (row-major): value [N, S, M, D], spatial_shapes [L, 2], level_start_index [L],
// sampling_locations [N, Lq, M, L, P, 2] (float32; double for the float64 tests), attention_weights
// [N, Lq, M, L, P], Y [N, Lq, M*D]. A "group" g = (n*Lq + q)*M + m owns Y[g*D .. g*D + D).
// Per point: s = sum of the taps' w * v (in tap order), then acc += A * s (a NaN weight gives NaN,
// a NaN or off-map location no tap). Coordinates in Acc (float for float / half values).
//
// API (DCN_HD: host + device)
//   struct MsdaDims { N, S, M, D, L, Lq, P };
//   struct MsdaLevel { H, W, start; ok };  ok: 1 <= H, W and [start, start + H*W) inside [0, S)
//   template<class I> DCN_HD MsdaLevel msda_level(const I* shapes, const I* starts, int64_t l, int64_t S);
//       a level that does not fit reads nothing (the kernels' guard: never an out-of-bounds read)
//   template<class Acc, int V, class T, class TL, class Levels> DCN_HD void msda_accumulate(value, levels, loc,
//       attn, d, g, d0, nd, acc[, slice, slices]): acc[0..nd) = Y[g*D + d0 .. + nd) in Acc, nd <= V (or the
//       part of the points l*P + p = slice mod slices); levels(l) -> MsdaLevel
//   template<class Acc, class T, class I, class TL> DCN_HD Acc msda_element(...): one output value
//   host only: validate_msda (shapes), validate_msda_levels (values of the index tensors).
#pragma once

#include "dcn_math.h"  // plugins/common: bilinear_taps, load/store, Half, ShapeRef, messages
#include "multi_scale_deformable_attention_fields.h"

namespace dcn {

struct MsdaDims {
    int64_t N, S, M, D;  // value
    int64_t L;           // levels
    int64_t Lq, P;       // queries, points per level
};

struct MsdaLevel {
    int64_t H, W, start;
    int64_t ok;  // 1: the level is read; 0: empty or not inside value's S (reads nothing)
};

template <class I> DCN_HD MsdaLevel msda_level(const I* shapes, const I* starts, int64_t l, int64_t S) {
    MsdaLevel v;
    v.H = static_cast<int64_t>(shapes[2 * l]);
    v.W = static_cast<int64_t>(shapes[2 * l + 1]);
    v.start = static_cast<int64_t>(starts[l]);
    // H*W <= S - start, written without a product that could overflow
    v.ok = (v.H >= 1 && v.W >= 1 && v.start >= 0 && v.start <= S && v.H <= (S - v.start) / v.W) ? 1 : 0;
    return v;
}

// V channels from p (channel stride 1) into Acc: generic loop; 16-byte loads on the device.
template <class Acc, int V, class T> struct VecLoad {
    DCN_HD static void run(const T* p, int nd, Acc* out) {
        for (int j = 0; j < nd; ++j) out[j] = load<Acc>(p[j]);
    }
};
#if defined(__CUDA_ARCH__)
template <> struct VecLoad<float, 4, float> {
    __device__ static void run(const float* p, int, float* out) {
        const float4 v = __ldg(reinterpret_cast<const float4*>(p));
        out[0] = v.x, out[1] = v.y, out[2] = v.z, out[3] = v.w;
    }
};
template <> struct VecLoad<float, 2, float> {
    __device__ static void run(const float* p, int, float* out) {
        const float2 v = __ldg(reinterpret_cast<const float2*>(p));
        out[0] = v.x, out[1] = v.y;
    }
};
template <> struct VecLoad<float, 8, __half> {
    __device__ static void run(const __half* p, int, float* out) {
        const uint4 raw = __ldg(reinterpret_cast<const uint4*>(p));
        const __half2* h = reinterpret_cast<const __half2*>(&raw);
        for (int j = 0; j < 4; ++j) {
            const float2 f = __half22float2(h[j]);
            out[2 * j] = f.x, out[2 * j + 1] = f.y;
        }
    }
};
template <> struct VecLoad<float, 4, __half> {
    __device__ static void run(const __half* p, int, float* out) {
        const uint2 raw = __ldg(reinterpret_cast<const uint2*>(p));
        const __half2* h = reinterpret_cast<const __half2*>(&raw);
        for (int j = 0; j < 2; ++j) {
            const float2 f = __half22float2(h[j]);
            out[2 * j] = f.x, out[2 * j + 1] = f.y;
        }
    }
};
template <> struct VecLoad<float, 2, __half> {
    __device__ static void run(const __half* p, int, float* out) {
        const float2 f = __half22float2(__ldg(reinterpret_cast<const __half2*>(p)));
        out[0] = f.x, out[1] = f.y;
    }
};
#endif

// The level table as an array (host; the kernels' shared-memory copy).
struct LevelArray {
    const MsdaLevel* p;
    DCN_HD MsdaLevel operator()(int64_t l) const { return p[l]; }
};

// acc[0..nd) = Y[g*D + d0 .. g*D + d0 + nd), nd <= V (the GPU passes nd = V: loops unroll, arrays stay in
// registers; the CPU op a runtime nd <= V over contiguous channels). levels(l) -> MsdaLevel.
// slice / slices: only the group's points l*P + p with (l*P + p) % slices == slice (the split kernel's
// thread slices; 0 / 1: every point, in order).
template <class Acc, int V, class T, class TL, class Levels>
DCN_HD void msda_accumulate(const T* value, const Levels& levels, const TL* loc, const T* attn, const MsdaDims& d,
                            int64_t g, int64_t d0, int nd, Acc* acc, int64_t slice = 0, int64_t slices = 1) {
    for (int j = 0; j < nd; ++j) acc[j] = Acc(0);
    const int64_t m = g % d.M, n = (g / d.M) / d.Lq;
    const int64_t MD = d.M * d.D;
    const int64_t pt0 = g * d.L * d.P;  // first point of the group: ((n*Lq + q)*M + m)*L*P
    for (int64_t l = 0; l < d.L; ++l) {
        const MsdaLevel lv = levels(l);
        if (!lv.ok) continue;
        const T* base = value + (n * d.S + lv.start) * MD + m * d.D + d0;
        const Acc Hf = Acc(lv.H), Wf = Acc(lv.W);
        for (int64_t p = 0; p < d.P; ++p) {
            if (slices > 1 && (l * d.P + p) % slices != slice) continue;
            const int64_t pt = pt0 + l * d.P + p;
            const Acc x = static_cast<Acc>(loc[2 * pt]) * Wf - Acc(0.5);
            const Acc y = static_cast<Acc>(loc[2 * pt + 1]) * Hf - Acc(0.5);
            const Acc a = load<Acc>(attn[pt]);
            const BilinearTaps<Acc> t = bilinear_taps<Acc>(lv.H, lv.W, y, x);
            Acc s[V];
            for (int j = 0; j < nd; ++j) s[j] = Acc(0);
            for (int k = 0; k < 4; ++k) {
                if (t.idx[k] < 0) continue;
                Acc v[V];
                VecLoad<Acc, V, T>::run(base + t.idx[k] * MD, nd, v);
                for (int j = 0; j < nd; ++j) s[j] += t.w[k] * v[j];
            }
            for (int j = 0; j < nd; ++j) acc[j] += a * s[j];
        }
    }
}

// One output value Y[n, q, m*D + dch], g = (n*Lq + q)*M + m, from the index tensors themselves (the
// tests' element function: the kernels' per-channel arithmetic in the same order).
template <class Acc, class T, class I, class TL>
DCN_HD Acc msda_element(const T* value, const I* shapes, const I* starts, const TL* loc, const T* attn,
                        const MsdaDims& d, int64_t g, int64_t dch) {
    const int64_t m = g % d.M, n = (g / d.M) / d.Lq, MD = d.M * d.D;
    Acc acc = Acc(0);
    for (int64_t l = 0; l < d.L; ++l) {
        const MsdaLevel lv = msda_level(shapes, starts, l, d.S);
        if (!lv.ok) continue;
        const T* base = value + (n * d.S + lv.start) * MD + m * d.D + dch;
        for (int64_t p = 0; p < d.P; ++p) {
            const int64_t pt = (g * d.L + l) * d.P + p;
            const Acc x = static_cast<Acc>(loc[2 * pt]) * Acc(lv.W) - Acc(0.5);
            const Acc y = static_cast<Acc>(loc[2 * pt + 1]) * Acc(lv.H) - Acc(0.5);
            const BilinearTaps<Acc> t = bilinear_taps<Acc>(lv.H, lv.W, y, x);
            Acc s = Acc(0);
            for (int k = 0; k < 4; ++k)
                if (t.idx[k] >= 0) s += t.w[k] * load<Acc>(base[t.idx[k] * MD]);
            acc += load<Acc>(attn[pt]) * s;
        }
    }
    return acc;
}

#if !defined(__CUDA_ARCH__)

inline std::string msda_prefix(const std::string& node) { return op_prefix(kMultiScaleDeformableAttentionName, node); }

// Shapes of the five inputs against each other (exporter/ops/multi_scale_deformable_attention/spec.py
// says the same words); fills *out.
inline std::string validate_msda(const std::string& node, ShapeRef value, ShapeRef shapes, ShapeRef starts,
                                 ShapeRef loc, ShapeRef attn, MsdaDims* out) {
    const std::string p = msda_prefix(node);
    struct In { const char* name; ShapeRef s; int64_t rank; const char* layout; };
    const In ins[] = {{"value", value, 4, "[N, S, M, D]"}, {"spatial_shapes", shapes, 2, "[L, 2]"},
                      {"level_start_index", starts, 1, "[L]"},
                      {"sampling_locations", loc, 6, "[N, Lq, M, L, P, 2]"},
                      {"attention_weights", attn, 5, "[N, Lq, M, L, P]"}};
    for (const In& i : ins) {
        if (i.s.rank != i.rank)
            return p + i.name + " has rank " + std::to_string(i.s.rank) + ", expected " + std::to_string(i.rank) + " " +
                   i.layout;
        for (int64_t k = 0; k < i.s.rank; ++k)
            if (i.s[k] < 0) return p + i.name + " has shape " + shape_str(i.s) + ", expected non-negative dimensions";
    }
    MsdaDims d{};
    d.N = value[0], d.S = value[1], d.M = value[2], d.D = value[3], d.L = shapes[0];
    if (shapes[1] != 2) return p + "spatial_shapes has shape " + shape_str(shapes) + ", expected [L, 2]";
    if (starts[0] != d.L)
        return p + "level_start_index has shape " + shape_str(starts) + ", expected [L] = [" + std::to_string(d.L) + "]";
    d.Lq = loc[1], d.P = loc[4];
    const int64_t want[6] = {d.N, d.Lq, d.M, d.L, d.P, 2};
    for (int k = 0; k < 6; ++k)
        if (loc[k] != want[k])
            return p + "sampling_locations has shape " + shape_str(loc) + ", expected [N, Lq, M, L, P, 2] = " +
                   ints_str(want, 6);
    for (int k = 0; k < 5; ++k)
        if (attn[k] != want[k])
            return p + "attention_weights has shape " + shape_str(attn) + ", expected [N, Lq, M, L, P] = " +
                   ints_str(want, 5);
    int64_t y = 0;
    if (!mul_ok(d.N, d.Lq, &y) || !mul_ok(y, d.M, &y) || !mul_ok(y, d.D, &y) || y > kMaxElements)
        return p + "output size N*Lq*M*D overflows (N = " + std::to_string(d.N) + ", Lq = " + std::to_string(d.Lq) +
               ", M*D = " + std::to_string(d.M) + "*" + std::to_string(d.D) + "), expected at most 2^58 elements";
    if (out) *out = d;
    return "";
}

// The index tensors' values (host memory): every level inside value's S, sizes >= 0, sum(H*W) == S.
template <class I>
inline std::string validate_msda_levels(const std::string& node, int64_t S, const I* shapes, const I* starts,
                                        int64_t L) {
    const std::string p = msda_prefix(node);
    int64_t total = 0;
    for (int64_t l = 0; l < L; ++l) {
        const int64_t h = shapes[2 * l], w = shapes[2 * l + 1], st = starts[l];
        const std::string lvl = std::to_string(l);
        if (h < 0 || w < 0)
            return p + "spatial_shapes[" + lvl + "] = [" + std::to_string(h) + ", " + std::to_string(w) +
                   "], expected sizes >= 0";
        int64_t area = 0, end = 0;
        const bool fits = mul_ok(h, w, &area) && add_ok(st, area, &end);
        if (st < 0 || !fits || end > S)
            return p + "level " + lvl + " spans [" + std::to_string(st) + ", " + (fits ? std::to_string(end) : "overflow") +
                   ") (level_start_index[" + lvl + "] = " + std::to_string(st) + ", spatial_shapes[" + lvl + "] = [" +
                   std::to_string(h) + ", " + std::to_string(w) + "]), expected inside value's S = " + std::to_string(S);
        if (!add_ok(total, area, &total))
            return p + "spatial_shapes give sum(H*W) > 2^63, expected value's S = " + std::to_string(S);
    }
    if (total != S)
        return p + "spatial_shapes give sum(H*W) = " + std::to_string(total) + ", expected value's S = " +
               std::to_string(S);
    return "";
}

#endif  // !__CUDA_ARCH__

}  // namespace dcn
