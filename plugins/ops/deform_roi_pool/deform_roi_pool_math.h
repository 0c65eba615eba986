// deform_roi_pool_math.h: dcn::DeformRoIPool's math and validation (mmcv's deformable RoI pooling;
// contract: docs/deform_roi_pool.md), on the shared core (plugins/common), for the host and CUDA.
//
//
//   struct DeformRoIPoolDims { N, C, H, W, R, pooled_height, pooled_width; double spatial_scale;
//                              int64_t sampling_ratio; double gamma; bool has_offset; };
//   template<class Acc, class I = int64_t> struct RoIAlignTaps { I idx[4]; Acc w[4]; bool inside; };
//   template<class Acc, class I = int64_t> DCN_HD RoIAlignTaps<Acc, I> roi_align_taps(I H, I W, Acc y, Acc x);
//   template<class Acc, class T, class I> DCN_HD Acc apply_roi_align_taps(const T* plane, const RoIAlignTaps<Acc, I>&);
//   template<class Acc, class T> DCN_HD Acc roi_align_bilinear(const T* plane, int64_t H, int64_t W, Acc y, Acc x);
//       RoIAlign's rule: 0 when y < -1, y > H, x < -1, x > W (or NaN); coordinates below 0 read as
//       0; at or past the last row / column (y >= H - 1) that row / column alone.
//       roi_align_bilinear = apply_roi_align_taps o roi_align_taps; the taps are the four
//       neighbours (y0, x0), (y0, x1), (y1, x0), (y1, x1) (repeated where clamped) and their weights.
//   constexpr int64_t kRoIPoolMaxGrid, kMaxRoIPoolPooledSize, kMaxRoIPoolSamplingRatio;
//       the limits (spec.py MAX_GRID and LIMITS of exporter/ops/deform_roi_pool, tested equal): the
//       adaptive sampling grid per bin and axis (clamped), pooled_height / pooled_width, sampling_ratio
//   template<class Acc> DCN_HD int64_t roi_pool_grid(Acc roi_size, int64_t pooled, int64_t sampling_ratio);
//       samples per bin along one axis: sampling_ratio, or (0) ceil(roi_size / pooled); both
//       clamped to [0, kRoIPoolMaxGrid] (NaN -> 0).
//   template<class Acc> struct RoIPoolBin { int64_t b, gh, gw; Acc y0, x0, bin_h, bin_w; };
//   template<class Acc, class T, class RT> DCN_HD RoIPoolBin<Acc> deform_roi_pool_bin(
//       const RT* rois, const T* offset /*nullable*/, const DeformRoIPoolDims& d, int64_t r, int64_t ph, int64_t pw);
//       bin (ph, pw) of RoI r: batch index b (-1: the bin is 0), gh x gw samples (the same for every
//       bin of a RoI), where they start (offset included) and the bin's size.
//   template<class Acc, class I = int64_t> DCN_HD RoIAlignTaps<Acc, I> deform_roi_pool_taps(const RoIPoolBin<Acc>&,
//       I H, I W, I iy, I ix);     the taps of sample (iy, ix) of the bin (I = int32_t: needs H*W <= INT32_MAX)
//   template<class Acc> DCN_HD SampleRun roi_pool_rows(const RoIPoolBin<Acc>&, int64_t H);   (roi_pool_cols: W)
//       the samples iy in [lo, hi) whose y can be inside the map (the rest count zero): the loops' bounds
//   template<class Acc> DCN_HD int64_t deform_roi_pool_count(const RoIPoolBin<Acc>&);   max(gh*gw, 1)
//   template<class Acc, class T, class RT> DCN_HD Acc deform_roi_pool_element(
//       const T* data, const RT* rois, const T* offset /*nullable*/, const DeformRoIPoolDims& d,
//       int64_t r, int64_t c, int64_t ph, int64_t pw);
//       one output value; coordinates in Acc (float for float / half data: RoIs are float32);
//       0 when rois[r, 0] is not a batch index. = (sum over iy, ix of apply_roi_align_taps(plane,
//       deform_roi_pool_taps(bin, H, W, iy, ix))) / deform_roi_pool_count(bin), in that order.
//   template<class Acc, int B> struct RoIAlignBlock { int32_t idx[4][B]; Acc w[4][B]; uint32_t keep[B]; };
//   template<class Acc, int B> DCN_HD void set_roi_align_taps(RoIAlignBlock<Acc, B>&, int lane,
//                                                             const RoIAlignTaps<Acc>&);
//   template<class Acc, class T, int B> DCN_HD void accumulate_roi_align_block(const T* plane,
//       const RoIAlignBlock<Acc, B>&, Acc* acc);
//       B samples' taps for sampling one plane many times (every channel of a RoI's batch item):
//       acc[l] += apply_roi_align_taps(plane, taps l), the same terms in the same order, vectorised on
//       the host (any plane values, inf / NaN included); needs H*W <= INT32_MAX.
//   Host only: struct DeformRoIPoolAttrs; validate_deform_roi_pool_attrs / validate_deform_roi_pool /
//       validate_deform_roi_pool_batch_indices, messages as above.
#pragma once

#include "dcn_math.h"  // plugins/common: the core
#include "dcn_roi.h"   // plugins/common: batch indices, RoI input checks
#include "deform_roi_pool_fields.h"

namespace dcn {

constexpr int64_t kRoIPoolMaxGrid = 1024;          // adaptive grid per bin and axis: clamped to it (data-dependent)
constexpr int64_t kMaxRoIPoolPooledSize = 256;     // pooled_height, pooled_width: bins per RoI and axis
constexpr int64_t kMaxRoIPoolSamplingRatio = 64;   // sampling_ratio: the grid, given (<= 4096 samples per value)

struct DeformRoIPoolDims {
    int64_t N, C, H, W;  // data
    int64_t R;           // rois: [R, 5]
    int64_t pooled_height, pooled_width;
    double spatial_scale;
    int64_t sampling_ratio;  // 0 = adaptive
    double gamma;
    bool has_offset;  // offset [R, 2, pooled_height, pooled_width] given
};

// RoIAlign's four neighbours of sample (y, x) with their weights (hy*hx, hy*lx, ly*hx, ly*lx);
// inside = false (and nothing to read) when the sample counts zero.
// I: the index type (int64_t; int32_t in the CUDA kernel where the sizes fit: deform_roi_pool_launch.h).
template <class Acc, class I = int64_t> struct RoIAlignTaps {
    I idx[4];  // plane offsets of (y0, x0), (y0, x1), (y1, x0), (y1, x1); x1 = x0 / y1 = y0 where clamped
    Acc w[4];
    bool inside;
};

template <class Acc, class I = int64_t> DCN_HD RoIAlignTaps<Acc, I> roi_align_taps(I H, I W, Acc y, Acc x) {
    RoIAlignTaps<Acc, I> t;
    for (int q = 0; q < 4; ++q) {
        t.idx[q] = 0;
        t.w[q] = Acc(0);
    }
    t.inside = y >= Acc(-1) && y <= Acc(H) && x >= Acc(-1) && x <= Acc(W);  // false for NaN too
    if (!t.inside) return t;
    if (y < Acc(0)) y = Acc(0);
    if (x < Acc(0)) x = Acc(0);
    I y0 = static_cast<I>(floor_of(y)), x0 = static_cast<I>(floor_of(x)), y1, x1;  // in [0, H] and [0, W]
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
    t.idx[0] = y0 * W + x0;
    t.idx[1] = y0 * W + x1;
    t.idx[2] = y1 * W + x0;
    t.idx[3] = y1 * W + x1;
    t.w[0] = hy * hx;
    t.w[1] = hy * lx;
    t.w[2] = ly * hx;
    t.w[3] = ly * lx;
    return t;
}

// The sample's value in the plane at data + at (at: the plane's offset, in I, so that the CUDA
// kernel adds one int32 per neighbour rather than a 64-bit pointer).
template <class Acc, class T, class I>
DCN_HD Acc apply_roi_align_taps(const T* data, const RoIAlignTaps<Acc, I>& t, I at = 0) {
    if (!t.inside) return Acc(0);
    return t.w[0] * load<Acc>(data[at + t.idx[0]]) + t.w[1] * load<Acc>(data[at + t.idx[1]]) +
           t.w[2] * load<Acc>(data[at + t.idx[2]]) + t.w[3] * load<Acc>(data[at + t.idx[3]]);
}

template <class Acc, class T>
DCN_HD Acc roi_align_bilinear(const T* plane, int64_t H, int64_t W, Acc y, Acc x) {
    return apply_roi_align_taps<Acc>(plane, roi_align_taps<Acc>(H, W, y, x));
}

template <class Acc> DCN_HD int64_t roi_pool_grid(Acc roi_size, int64_t pooled, int64_t sampling_ratio) {
    if (sampling_ratio > 0) return sampling_ratio < kRoIPoolMaxGrid ? sampling_ratio : kRoIPoolMaxGrid;
    const Acc g = roi_size / Acc(pooled);
    if (!(g > Acc(0))) return 0;  // also NaN
    if (g >= Acc(kRoIPoolMaxGrid)) return kRoIPoolMaxGrid;
    return static_cast<int64_t>(ceil_of(g));
}

// Bin (ph, pw) of RoI r: what its samples need. b < 0: the bin is 0 (no batch item, or an empty map).
template <class Acc> struct RoIPoolBin {
    int64_t b;       // batch index
    int64_t gh, gw;  // samples along y and x (the same for every bin of the RoI)
    Acc y0, x0;      // start_h + ph * bin_h, start_w + pw * bin_w (offset included)
    Acc bin_h, bin_w;
};

template <class Acc, class T, class RT>
DCN_HD RoIPoolBin<Acc> deform_roi_pool_bin(const RT* rois, const T* offset, const DeformRoIPoolDims& d, int64_t r,
                                           int64_t ph, int64_t pw) {
    RoIPoolBin<Acc> bin;
    const RT* roi = rois + r * 5;
    bin.b = psroi_batch_index<Acc>(static_cast<Acc>(roi[0]), d.N);
    if (d.H < 1 || d.W < 1) bin.b = -1;
    // Every product and sum rounded on its own (mul_rn / add_rn: no fma on the device either): the grid
    // (ceil) and the samples' inside test are discrete in these coordinates.
    const Acc scale = static_cast<Acc>(d.spatial_scale), half = Acc(0.5);
    Acc start_w = add_rn(mul_rn(static_cast<Acc>(roi[1]), scale), -half);
    Acc start_h = add_rn(mul_rn(static_cast<Acc>(roi[2]), scale), -half);
    const Acc roi_w = add_rn(mul_rn(static_cast<Acc>(roi[3]), scale), -half) - start_w;
    const Acc roi_h = add_rn(mul_rn(static_cast<Acc>(roi[4]), scale), -half) - start_h;
    bin.bin_w = roi_w / Acc(d.pooled_width);
    bin.bin_h = roi_h / Acc(d.pooled_height);
    bin.gh = roi_pool_grid<Acc>(roi_h, d.pooled_height, d.sampling_ratio);
    bin.gw = roi_pool_grid<Acc>(roi_w, d.pooled_width, d.sampling_ratio);
    if (d.has_offset && offset != nullptr) {  // offset[r, 0] moves x, offset[r, 1] moves y
        const int64_t plane = d.pooled_height * d.pooled_width;
        const T* o = offset + r * 2 * plane + ph * d.pooled_width + pw;
        const Acc gamma = static_cast<Acc>(d.gamma);
        start_w = add_rn(start_w, mul_rn(mul_rn(gamma, roi_w), load<Acc>(o[0])));
        start_h = add_rn(start_h, mul_rn(mul_rn(gamma, roi_h), load<Acc>(o[plane])));
    }
    bin.y0 = add_rn(start_h, mul_rn(Acc(ph), bin.bin_h));
    bin.x0 = add_rn(start_w, mul_rn(Acc(pw), bin.bin_w));
    return bin;
}

// Sample g (0 <= g < count) of a bin along one axis: start + (g + 1/2) * size / count.
template <class Acc> DCN_HD Acc roi_pool_sample(Acc start, Acc size, int64_t g, int64_t count) {
    return start + (Acc(g) + Acc(0.5)) * size / Acc(count);
}

template <class Acc, class I = int64_t>
DCN_HD RoIAlignTaps<Acc, I> deform_roi_pool_taps(const RoIPoolBin<Acc>& bin, I H, I W, I iy, I ix) {
    const Acc y = roi_pool_sample(bin.y0, bin.bin_h, static_cast<int64_t>(iy), bin.gh);
    const Acc x = roi_pool_sample(bin.x0, bin.bin_w, static_cast<int64_t>(ix), bin.gw);
    return roi_align_taps<Acc, I>(H, W, y, x);
}

// The samples of a bin along one axis that can count: those whose coordinate is in [-1, extent]
// (RoIAlign's inside test on that axis), g in [lo, hi). The coordinate is monotone in g (every
// rounding is), so they are one run, found by bisection on the very coordinates the taps compute;
// a sample outside it counts zero (adds +0), so skipping it changes no bit. What it saves: a huge
// RoI's clamped grid (up to kRoIPoolMaxGrid^2 samples a bin) that mostly misses the map, which the
// loops would otherwise walk for every channel. Up to kRoIPoolDirectSamples samples the loop
// decides each one (the whole grid); a start or size that is not finite has no sample inside.
constexpr int32_t kRoIPoolDirectSamples = 16;
struct SampleRun {
    int32_t lo, hi;  // a grid has at most kRoIPoolMaxGrid samples a side
};
template <class P> DCN_HD int32_t first_where(int32_t n, const P& pred) {  // pred false ... true on [0, n)
    int32_t a = 0, b = n;
    while (a < b) {
        const int32_t m = a + (b - a) / 2;
        if (pred(m)) b = m;
        else a = m + 1;
    }
    return a;
}
template <class Acc> DCN_HD SampleRun roi_pool_inside_run(Acc start, Acc size, int64_t count, int64_t extent) {
    const int32_t n = static_cast<int32_t>(count);  // <= kRoIPoolMaxGrid
    if (n <= kRoIPoolDirectSamples) return {0, n};
    if (!(start - start == Acc(0)) || !(size - size == Acc(0))) return {0, 0};  // inf or NaN
    const Acc low = Acc(-1), high = Acc(extent);
    SampleRun r;
    if (size >= Acc(0)) {  // non-decreasing
        r.lo = first_where(n, [&](int32_t g) { return roi_pool_sample(start, size, g, count) >= low; });
        r.hi = first_where(n, [&](int32_t g) { return roi_pool_sample(start, size, g, count) > high; });
    } else {  // non-increasing
        r.lo = first_where(n, [&](int32_t g) { return roi_pool_sample(start, size, g, count) <= high; });
        r.hi = first_where(n, [&](int32_t g) { return roi_pool_sample(start, size, g, count) < low; });
    }
    if (r.hi < r.lo) r.hi = r.lo;
    return r;
}
template <class Acc> DCN_HD SampleRun roi_pool_rows(const RoIPoolBin<Acc>& bin, int64_t H) {
    return roi_pool_inside_run(bin.y0, bin.bin_h, bin.gh, H);
}
template <class Acc> DCN_HD SampleRun roi_pool_cols(const RoIPoolBin<Acc>& bin, int64_t W) {
    return roi_pool_inside_run(bin.x0, bin.bin_w, bin.gw, W);
}

template <class Acc> DCN_HD int64_t deform_roi_pool_count(const RoIPoolBin<Acc>& bin) {
    return bin.gh * bin.gw > 1 ? bin.gh * bin.gw : 1;
}

template <class Acc, class T, class RT>
DCN_HD Acc deform_roi_pool_element(const T* data, const RT* rois, const T* offset, const DeformRoIPoolDims& d,
                                   int64_t r, int64_t c, int64_t ph, int64_t pw) {
    const RoIPoolBin<Acc> bin = deform_roi_pool_bin<Acc>(rois, offset, d, r, ph, pw);
    if (bin.b < 0) return Acc(0);
    const T* plane = data + (bin.b * d.C + c) * d.H * d.W;
    const SampleRun ry = roi_pool_rows(bin, d.H), rx = roi_pool_cols(bin, d.W);
    Acc sum = Acc(0);
    for (int64_t iy = ry.lo; iy < ry.hi; ++iy)
        for (int64_t ix = rx.lo; ix < rx.hi; ++ix)
            sum += apply_roi_align_taps<Acc>(plane, deform_roi_pool_taps<Acc>(bin, d.H, d.W, iy, ix));
    return sum / Acc(deform_roi_pool_count(bin));
}

// B samples' taps (one per lane; in the ONNX Runtime op: one sample of each of B bins of a RoI),
// for sampling one plane many times: four neighbour offsets and weights per lane, keep = all ones
// for a sample inside the map, 0 for one that counts zero (its offsets and weights 0). Needs
// H*W <= INT32_MAX.
template <class Acc, int B> struct RoIAlignBlock {
    int32_t idx[4][B];
    Acc w[4][B];
    uint32_t keep[B];
};

template <class Acc, int B>
DCN_HD void set_roi_align_taps(RoIAlignBlock<Acc, B>& blk, int lane, const RoIAlignTaps<Acc>& t) {
    for (int q = 0; q < 4; ++q) {
        blk.idx[q][lane] = t.inside ? static_cast<int32_t>(t.idx[q]) : 0;
        blk.w[q][lane] = t.inside ? t.w[q] : Acc(0);
    }
    blk.keep[lane] = t.inside ? 0xffffffffu : 0u;
}

// acc[l] += apply_roi_align_taps(plane, taps of lane l) for every lane: the same four terms in the
// same order (samples outside the map add +0 and read nothing they would not: their offsets are 0
// and their result is masked, so inf / NaN anywhere in the plane give what the element gives).
template <class Acc, class T, int B>
DCN_HD void accumulate_roi_align_block(const T* plane, const RoIAlignBlock<Acc, B>& blk, Acc* acc) {
    int l = 0;
#if !defined(__CUDACC__) && (defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12))
    if constexpr (std::is_same<Acc, float>::value && std::is_same<T, float>::value) {
        typedef float v4 __attribute__((vector_size(16)));
        typedef uint32_t u4 __attribute__((vector_size(16)));
        const float* pf = reinterpret_cast<const float*>(plane);
        for (; l + 4 <= B; l += 4) {
            v4 x[4], w[4], a;
            for (int q = 0; q < 4; ++q) {
                x[q] = v4{pf[blk.idx[q][l]], pf[blk.idx[q][l + 1]], pf[blk.idx[q][l + 2]], pf[blk.idx[q][l + 3]]};
                memcpy(&w[q], &blk.w[q][l], sizeof(v4));
            }
            u4 keep;
            memcpy(&keep, &blk.keep[l], sizeof keep);
            memcpy(&a, reinterpret_cast<float*>(acc) + l, sizeof a);
            const v4 v = w[0] * x[0] + w[1] * x[1] + w[2] * x[2] + w[3] * x[3];
            a += reinterpret_cast<v4>(reinterpret_cast<u4>(v) & keep);
            memcpy(reinterpret_cast<float*>(acc) + l, &a, sizeof a);
        }
    }
#endif
    for (; l < B; ++l) {
        if (!blk.keep[l]) {
            acc[l] += Acc(0);
            continue;
        }
        acc[l] += blk.w[0][l] * load<Acc>(plane[blk.idx[0][l]]) + blk.w[1][l] * load<Acc>(plane[blk.idx[1][l]]) +
                  blk.w[2][l] * load<Acc>(plane[blk.idx[2][l]]) + blk.w[3][l] * load<Acc>(plane[blk.idx[3][l]]);
    }
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
    struct Int { const char* name; int64_t v; int64_t min, max; const char* note; };
    const Int ints[] = {{"pooled_height", a.pooled_height, 1, kMaxRoIPoolPooledSize, ""},
                        {"pooled_width", a.pooled_width, 1, kMaxRoIPoolPooledSize, ""},
                        {"sampling_ratio", a.sampling_ratio, 0, kMaxRoIPoolSamplingRatio, " (0 = adaptive)"}};
    for (const Int& x : ints) {
        if (x.v < x.min)
            return p + "attribute " + x.name + " = " + std::to_string(x.v) + ", expected >= " + std::to_string(x.min) +
                   x.note;
        if (x.v > x.max)
            return p + "attribute " + x.name + " = " + std::to_string(x.v) + ", expected <= " +
                   std::to_string(x.max) + " (limit)";
    }
    if (!(std::isfinite(a.spatial_scale) && a.spatial_scale > 0))
        return p + "attribute spatial_scale = " + float_str(a.spatial_scale) + ", expected a finite value > 0";
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
    int64_t out_elems = 0;  // R * C * pooled_height * pooled_width (pooled sizes <= 2^8 by the limits)
    if (!mul_ok(d.R, d.C, &out_elems) || !mul_ok(out_elems, d.pooled_height * d.pooled_width, &out_elems) ||
        out_elems > kMaxElements)
        return p + "output size R*C*pooled_height*pooled_width overflows (R = " + std::to_string(d.R) + ", C = " +
               std::to_string(d.C) + "), expected at most 2^58 elements";
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
