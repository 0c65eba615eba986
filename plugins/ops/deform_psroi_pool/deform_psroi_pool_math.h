// deform_psroi_pool_math.h: dcn::DeformPSROIPool's math and validation, on the shared core
// (plugins/common), for the host (g++) and CUDA (nvcc).
//
//   constexpr int64_t kMaxPoolOutputDim, kMaxPoolGroupSize, kMaxPoolPooledSize, kMaxPoolPartSize,
//       kMaxPoolSamplePerPart;                                       attribute limits (contract LIMITS)
//   struct DeformPSROIPoolDims { N, C, H, W, R; double spatial_scale; output_dim, group_size,
//                                pooled_size, part_size /*resolved*/, sample_per_part;
//                                double trans_std; num_classes; bool no_trans; };
//   template<class Acc, class T, class TR, class I = int64_t> DCN_HD Acc deform_psroi_pool_element(
//       const T* data, const TR* rois /*float32 for float32/float16 data*/, const T* trans /*nullable*/, const DeformPSROIPoolDims& d,
//       I r, I ctop, I ph, I pw);   I = int32_t only where every offset fits (deform_psroi_pool_launch.h)
//       one output value; 0 when no sample counted (NaN / inf box or trans included) or when
//       rois[r, 0] is not a batch index (psroi_batch_index, dcn_roi.h).
//   template<class I> DCN_HD I psroi_part_index(I p, I P, I part_size);   trans's part bin of bin p
//
//   Host only (validation; "" when fine, else one message, dcn_validate.h):
//   struct DeformPSROIPoolAttrs { double spatial_scale; int64_t output_dim, group_size,
//       pooled_size, part_size, sample_per_part; double trans_std; int64_t no_trans; };
//   std::string validate_deform_psroi_pool_attrs(const std::string& node, const DeformPSROIPoolAttrs&);
//   std::string validate_deform_psroi_pool(const std::string& node, const DeformPSROIPoolAttrs&,
//       ShapeRef data, ShapeRef rois, ShapeRef trans, DeformPSROIPoolDims* out);
//   template<class T> std::string validate_deform_psroi_pool_batch_indices(
//       const std::string& node, const T* rois, int64_t R, int64_t N);   reads rois[r, 0] (host memory)
#pragma once

#include "dcn_math.h"  // plugins/common: the core
#include "dcn_roi.h"   // plugins/common: batch indices, RoI input checks
#include "deform_psroi_pool_fields.h"

namespace dcn {

// Limits of the attributes that alone drive work or memory (contract: exporter/contract.py
// LIMITS, README "Limits"). Also keeps every value inside TensorRT's int32 fields.
constexpr int64_t kMaxPoolOutputDim = 1 << 20;  // output_dim
constexpr int64_t kMaxPoolGroupSize = 32;     // group_size: channels output_dim*group_size^2
constexpr int64_t kMaxPoolPooledSize = 32;    // pooled_size: output pooled_size^2 per RoI and channel
constexpr int64_t kMaxPoolPartSize = 32;      // part_size
constexpr int64_t kMaxPoolSamplePerPart = 16;  // sample_per_part: sample_per_part^2 samples per output value

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

// The part bin of output bin p (ph or pw): floor(p / P * part_size) as the contract writes it, in float32
// in every type (contract: all coordinate arithmetic is float32; the original computes it so), not the
// exact integer p * part_size / P: the two differ where p / P rounds down, e.g. P = part_size = 22,
// p = 13 (float32 12.999999: part 12). Below part_size (p < P; P, part_size <= 32).
template <class I> DCN_HD I psroi_part_index(I p, I P, I part_size) {
    const I q = static_cast<I>(floor_of(static_cast<float>(p) / static_cast<float>(P) * static_cast<float>(part_size)));
    return q < part_size - 1 ? q : part_size - 1;
}

// rois: float32 for float32 and float16 data (contract: coordinates never in half); TR = T for float64.
// I: the index type (int64_t; int32_t in the CUDA kernel where every offset fits, deform_psroi_pool_launch.h).
template <class Acc, class T, class TR, class I = int64_t>
DCN_HD Acc deform_psroi_pool_element(const T* data, const TR* rois, const T* trans, const DeformPSROIPoolDims& d,
                                     I r, I ctop, I ph, I pw) {
    const TR* roi = rois + r * 5;
    const I b = static_cast<I>(psroi_batch_index<Acc>(load<Acc>(roi[0]), d.N));
    if (b < 0) return Acc(0);
    const Acc scale = static_cast<Acc>(d.spatial_scale);
    const Acc half = Acc(0.5);
    // Every product and sum of the coordinates rounded on its own (mul_rn / add_rn: no fma on the device
    // either): the samples' skip test below is discrete in them.
    const Acc start_w = add_rn(mul_rn(round_of(load<Acc>(roi[1])), scale), -half);
    const Acc start_h = add_rn(mul_rn(round_of(load<Acc>(roi[2])), scale), -half);
    const Acc end_w = add_rn(mul_rn(round_of(load<Acc>(roi[3])) + Acc(1), scale), -half);
    const Acc end_h = add_rn(mul_rn(round_of(load<Acc>(roi[4])) + Acc(1), scale), -half);
    // A box that is not finite (NaN / inf coordinates, or overflowing when scaled) counts no sample: 0.
    if (!((start_w - start_w) == Acc(0) && (start_h - start_h) == Acc(0) && (end_w - end_w) == Acc(0) &&
          (end_h - end_h) == Acc(0)))
        return Acc(0);
    const Acc roi_w = (end_w - start_w > Acc(0.1)) ? end_w - start_w : Acc(0.1);
    const Acc roi_h = (end_h - start_h > Acc(0.1)) ? end_h - start_h : Acc(0.1);
    const I P = static_cast<I>(d.pooled_size), S = static_cast<I>(d.sample_per_part);
    const Acc bin_w = roi_w / Acc(P), bin_h = roi_h / Acc(P);
    const Acc sub_w = bin_w / Acc(S), sub_h = bin_h / Acc(S);

    Acc dx = Acc(0), dy = Acc(0);
    if (!d.no_trans && trans != nullptr) {
        const I part = static_cast<I>(d.part_size);
        const I part_h = psroi_part_index<I>(ph, P, part), part_w = psroi_part_index<I>(pw, P, part);
        const I class_id = ctop / static_cast<I>(d.output_dim / d.num_classes);
        const I plane = part * part;
        const T* tr = trans + ((r * static_cast<I>(d.num_classes) + class_id) * 2) * plane + part_h * part + part_w;
        const Acc std_ = static_cast<Acc>(d.trans_std);
        dx = load<Acc>(tr[0]) * std_;
        dy = load<Acc>(tr[plane]) * std_;
    }
    const Acc wstart = add_rn(add_rn(mul_rn(Acc(pw), bin_w), start_w), mul_rn(dx, roi_w));
    const Acc hstart = add_rn(add_rn(mul_rn(Acc(ph), bin_h), start_h), mul_rn(dy, roi_h));

    const I G = static_cast<I>(d.group_size);
    I gw = pw * G / P, gh = ph * G / P;  // floor(pw * group_size / P), exactly
    gw = gw < 0 ? 0 : (gw > G - 1 ? G - 1 : gw);
    gh = gh < 0 ? 0 : (gh > G - 1 ? G - 1 : gh);
    const I c = (ctop * G + gh) * G + gw;
    const I H = static_cast<I>(d.H), W = static_cast<I>(d.W);
    const T* plane = data + (b * static_cast<I>(d.C) + c) * H * W;

    const Acc Wm = Acc(W) - half, Hm = Acc(H) - half;
    const Acc Wmax = Acc(W - 1), Hmax = Acc(H - 1);
    Acc sum = Acc(0);
    I count = 0;
    for (I iy = 0; iy < S; ++iy) {
        for (I ix = 0; ix < S; ++ix) {
            Acc w = add_rn(wstart, mul_rn(Acc(ix), sub_w));
            Acc h = add_rn(hstart, mul_rn(Acc(iy), sub_h));
            // skip w < -0.5, w > W - 0.5, h < -0.5, h > H - 0.5 (and NaN)
            if (!(w >= -half && w <= Wm && h >= -half && h <= Hm)) continue;
            w = w < Acc(0) ? Acc(0) : (w > Wmax ? Wmax : w);
            h = h < Acc(0) ? Acc(0) : (h > Hmax ? Hmax : h);
            sum += bilinear<Acc, T, I>(plane, H, W, h, w);
            ++count;
        }
    }
    return count == 0 ? Acc(0) : sum / Acc(count);
}

#if !defined(__CUDA_ARCH__)

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
