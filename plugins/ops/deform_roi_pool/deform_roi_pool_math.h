// deform_roi_pool_math.h: dcn::DeformRoIPool's math and validation (mmcv's deformable RoI pooling;
// contract: docs/deform_roi_pool.md), on the shared core (plugins/common), for the host and CUDA.
//
//
//   struct DeformRoIPoolDims { N, C, H, W, R, pooled_height, pooled_width; double spatial_scale;
//                              int64_t sampling_ratio; double gamma; bool has_offset; };
//   template<class Acc, class T> DCN_HD Acc roi_align_bilinear(const T* plane, int64_t H, int64_t W, Acc y, Acc x);
//       RoIAlign's rule: 0 when y < -1, y > H, x < -1, x > W (or NaN); coordinates below 0 read as
//       0; at or past the last row / column (y >= H - 1) that row / column alone.
//   constexpr int64_t kRoIPoolMaxGrid, kMaxRoIPoolPooledSize, kMaxRoIPoolSamplingRatio;
//       the limits (spec.py MAX_GRID and LIMITS of exporter/ops/deform_roi_pool, tested equal): the
//       adaptive sampling grid per bin and axis (clamped), pooled_height / pooled_width, sampling_ratio
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
