// dcn_aggregate.h: the math the channels-last deformable aggregation ops share (InternImage's and
// FlashInternImage's: shared/design/ops.md states them in one section), host (g++ -std=c++17) and CUDA
// (nvcc), on top of dcn_math.h's bilinear sampling core (bilinear_taps: never copied). Truth: the float64
// reference (exporter/ops/aggregation.py). Names no op: each op's <op>_math.h validates its own inputs
// and says, in AggregateDims' strides, where the offsets and masks of one output position lie (so one
// element function serves every layout), e.g. offsets and masks as two tensors [N, Ho, Wo, G*P*2] and
// [N, Ho, Wo, G*P] (offStride 2GP, offGroupStride 2P, maskStride GP, maskGroupStride P), or packed per
// group in one tensor [N, Ho, Wo, K] (both strides K, group strides 3P, maskShift 2P).
//
// API (DCN_HD: host + device):
//   constexpr int64_t kMaxAggregateKernel, kMaxAggregateStride, kMaxAggregatePad, kMaxAggregateDilation;
//                                                    attribute limits (contract LIMITS)
//   struct AggregateDims;                            shapes, attributes, the offset / mask strides
//   template<Acc, T> DCN_HD AggregateSite<Acc, T> aggregate_site(offset, mask, d, pos, ho, wo, g);
//       one output position pos = (n*Ho + ho)*Wo + wo of group g: its offsets, masks, window centre
//   template<F> DCN_HD void aggregate_for_points(d, f);   f(i, j, p) for the P points, x-major (i over
//                                                    the kernel's width outer, j over its height), centre
//                                                    skipped with remove_center
//   template<Acc, T> DCN_HD BilinearTaps<Acc> aggregate_taps(site, d, i, j, p);
//       taps of point p = (i, j), weights times its mask:
//       x = wo*sw - left + cw + s*(i*dw - cw + dx),  y = ho*sh - top + ch + s*(j*dh - ch + dy)
//   template<Acc, T> DCN_HD void aggregate_accumulate(Xn, C, taps, c0, count, acc);
//       acc[v] += sum over the taps' neighbours of w * Xn[idx*C + c0 + v], v < count (Xn: one image, NHWC)
//   template<Acc, T> DCN_HD Acc aggregate_element(X, offset, mask, d, pos, c);   one output value
//   Host only: struct AggregateAttrs; validate_aggregate_attrs(op, node, a); validate_aggregate_x(op, node,
//       a, X, d) (X and the attributes: everything of d but the strides); validate_aggregate_io(prefix,
//       name, t, d, channels, formula, at_least): "" or one message "<Op> '<node>': <what>, expected ...".
#pragma once

#include "dcn_math.h"  // plugins/common: Half, load / store, bilinear_taps, checked arithmetic, ShapeRef

namespace dcn {

// Attribute limits (contract: exporter/ops/aggregation_spec.py LIMITS, README "Limits"); they also keep
// every value inside TensorRT's int32 fields.
constexpr int64_t kMaxAggregateKernel = 32;     // kernel_shape: at most 32*32 points per output
constexpr int64_t kMaxAggregateStride = 1024;   // strides
constexpr int64_t kMaxAggregatePad = 1024;      // pads
constexpr int64_t kMaxAggregateDilation = 1024;  // dilations

struct AggregateDims {
    int64_t N, H, W, C;            // X [N, H, W, C], C = group*groupChannels
    int64_t group, groupChannels;  //
    int64_t kH, kW, strideH, strideW, padT, padL, padB, padR, dilH, dilW;
    int64_t outH, outW;
    int64_t P;                     // points: kH*kW - removeCenter
    bool removeCenter;
    double offsetScale;
    int64_t offStride, offGroupStride;    // offset of (pos, g, p): pos*offStride + g*offGroupStride + 2p (+1 for dy)
    int64_t maskStride, maskGroupStride;  // mask of (pos, g, p): pos*maskStride + g*maskGroupStride + p
    int64_t maskShift;                    // where a group's masks start past its offsets (packed: 2P; else 0)
};

// One output position (n, ho, wo) of group g: where its offsets and masks are, and the kernel window's
// centre in input pixels (cw = floor(dw*(kw-1)/2), ch alike), before offset_scale.
template <class Acc, class T> struct AggregateSite {
    const T* off;   // dx_0, dy_0, dx_1, ...
    const T* mask;  // m_0, m_1, ...
    Acc x0, y0;     // wo*sw - left + cw, ho*sh - top + ch (exact integers)
};

template <class Acc, class T>
DCN_HD AggregateSite<Acc, T> aggregate_site(const T* offset, const T* mask, const AggregateDims& d, int64_t pos, int64_t ho, int64_t wo,
                                int64_t g) {
    AggregateSite<Acc, T> s;
    s.off = offset + pos * d.offStride + g * d.offGroupStride;
    s.mask = mask + pos * d.maskStride + d.maskShift + g * d.maskGroupStride;
    s.x0 = Acc(wo * d.strideW - d.padL + d.dilW * (d.kW - 1) / 2);
    s.y0 = Acc(ho * d.strideH - d.padT + d.dilH * (d.kH - 1) / 2);
    return s;
}

// f(i, j, p) for the P points: p enumerates i over the kernel's width (outer) and j over its height
// (inner), the centre (i = kW/2, j = kH/2) skipped with remove_center.
template <class F> DCN_HD void aggregate_for_points(const AggregateDims& d, F&& f) {
    int64_t p = 0;
    for (int64_t i = 0; i < d.kW; ++i)
        for (int64_t j = 0; j < d.kH; ++j) {
            if (d.removeCenter && i == d.kW / 2 && j == d.kH / 2) continue;
            f(i, j, p);
            ++p;
        }
}

// Taps of point p = (i, j) at site s, weights times the point's mask:
//   x = x0 + offset_scale*(i*dw - cw + dx_p),  y = y0 + offset_scale*(j*dh - ch + dy_p)
template <class Acc, class T>
DCN_HD BilinearTaps<Acc> aggregate_taps(const AggregateSite<Acc, T>& s, const AggregateDims& d, int64_t i, int64_t j, int64_t p) {
    const Acc sc = static_cast<Acc>(d.offsetScale);
    const Acc x = s.x0 + sc * (Acc(i * d.dilW - d.dilW * (d.kW - 1) / 2) + load<Acc>(s.off[2 * p]));
    const Acc y = s.y0 + sc * (Acc(j * d.dilH - d.dilH * (d.kH - 1) / 2) + load<Acc>(s.off[2 * p + 1]));
    BilinearTaps<Acc> t = bilinear_taps<Acc>(d.H, d.W, y, x);
    const Acc m = load<Acc>(s.mask[p]);
    for (int q = 0; q < 4; ++q) t.w[q] = fold_mask(t.w[q], m);
    return t;
}

template <class Acc, class T>
DCN_HD void aggregate_accumulate(const T* Xn, int64_t C, const BilinearTaps<Acc>& t, int64_t c0, int64_t count, Acc* acc) {
    for (int q = 0; q < 4; ++q) {
        if (t.idx[q] < 0) continue;  // a neighbour outside the map reads nothing
        const T* src = Xn + t.idx[q] * C + c0;
        for (int64_t v = 0; v < count; ++v) acc[v] += t.w[q] * load<Acc>(src[v]);
    }
}

// One output value: Y[pos, c], pos = (n*Ho + ho)*Wo + wo.
template <class Acc, class T>
DCN_HD Acc aggregate_element(const T* X, const T* offset, const T* mask, const AggregateDims& d, int64_t pos, int64_t c) {
    const int64_t wo = pos % d.outW, ho = (pos / d.outW) % d.outH, n = pos / (d.outH * d.outW);
    const AggregateSite<Acc, T> s = aggregate_site<Acc>(offset, mask, d, pos, ho, wo, c / d.groupChannels);
    const T* Xn = X + n * d.H * d.W * d.C;
    Acc acc = Acc(0);
    aggregate_for_points(d, [&](int64_t i, int64_t j, int64_t p) {
        aggregate_accumulate<Acc>(Xn, d.C, aggregate_taps<Acc>(s, d, i, j, p), c, 1, &acc);
    });
    return acc;
}

// ---------------------------------------------------------------------------------------
// Validation (host only)
// ---------------------------------------------------------------------------------------
#if !defined(__CUDA_ARCH__)

struct AggregateAttrs {
    std::vector<int64_t> kernel_shape;  // required
    std::vector<int64_t> strides{1, 1};
    std::vector<int64_t> pads{0, 0, 0, 0};  // top, left, bottom, right
    std::vector<int64_t> dilations{1, 1};
    int64_t group = 1;
    int64_t group_channels = 0;  // required
    double offset_scale = 1.0;
    int64_t remove_center = 0;
};

inline std::string validate_aggregate_attrs(const char* op_type, const std::string& node, const AggregateAttrs& a) {
    const std::string p = op_prefix(op_type, node);
    const std::string lists = check_int_lists(p, {{"kernel_shape", a.kernel_shape, 2, 1, kMaxAggregateKernel},
                                               {"strides", a.strides, 2, 1, kMaxAggregateStride},
                                               {"pads", a.pads, 4, 0, kMaxAggregatePad},
                                               {"dilations", a.dilations, 2, 1, kMaxAggregateDilation}});
    if (!lists.empty()) return lists;
    if (a.group < 1) return p + "attribute group = " + std::to_string(a.group) + ", expected >= 1";
    if (a.group_channels < 1)
        return p + "attribute group_channels = " + std::to_string(a.group_channels) + ", expected >= 1";
    if (!std::isfinite(a.offset_scale))
        return p + "attribute offset_scale = " + float_str(a.offset_scale) + ", expected a finite value";
    if (a.remove_center != 0 && a.remove_center != 1)
        return p + "attribute remove_center = " + std::to_string(a.remove_center) + ", expected 0 or 1";
    if (a.remove_center && (a.kernel_shape[0] != a.kernel_shape[1] || a.kernel_shape[0] % 2 == 0))
        return p + "attribute remove_center = 1 with kernel_shape = " + ints_str(a.kernel_shape) +
               ", expected an odd square kernel";
    return "";
}

// X and the attributes: fills everything of d but the offset / mask strides. "" or the message.
inline std::string validate_aggregate_x(const char* op_type, const std::string& node, const AggregateAttrs& a, ShapeRef X,
                                  AggregateDims& d) {
    std::string e = validate_aggregate_attrs(op_type, node, a);
    if (!e.empty()) return e;
    const std::string p = op_prefix(op_type, node);
    if (X.rank != 4) return p + "X has rank " + std::to_string(X.rank) + ", expected 4 [N, H, W, C]";
    for (int q = 0; q < 4; ++q)
        if (X[q] < 0) return p + "X has shape " + shape_str(X) + ", expected non-negative dimensions";
    d = AggregateDims{};
    d.N = X[0], d.H = X[1], d.W = X[2], d.C = X[3];
    d.group = a.group, d.groupChannels = a.group_channels;
    d.kH = a.kernel_shape[0], d.kW = a.kernel_shape[1];
    d.strideH = a.strides[0], d.strideW = a.strides[1];
    d.padT = a.pads[0], d.padL = a.pads[1], d.padB = a.pads[2], d.padR = a.pads[3];
    d.dilH = a.dilations[0], d.dilW = a.dilations[1];
    d.removeCenter = a.remove_center != 0;
    d.P = d.kH * d.kW - a.remove_center;
    d.offsetScale = a.offset_scale;
    int64_t c = 0;
    if (!mul_ok(a.group, a.group_channels, &c) || c != d.C)
        return p + "X has " + std::to_string(d.C) + " channels, expected group*group_channels = " +
               std::to_string(a.group) + "*" + std::to_string(a.group_channels) +
               (mul_ok(a.group, a.group_channels, &c) ? " = " + std::to_string(c) : " (overflows int64)");
    if (d.H < 1 || d.W < 1)
        return p + "X has spatial size " + std::to_string(d.H) + "x" + std::to_string(d.W) + ", expected >= 1x1";
    const std::string geometry = " for input " + std::to_string(d.H) + "x" + std::to_string(d.W) + " (kernel " +
                                 std::to_string(d.kH) + "x" + std::to_string(d.kW) + ", pads " + ints_str(a.pads) +
                                 ", strides " + ints_str(a.strides) + ", dilations " + ints_str(a.dilations) + ")";
    if (!conv_out_size_ok(d.H, d.padT, d.padB, d.dilH, d.kH, d.strideH, &d.outH) ||
        !conv_out_size_ok(d.W, d.padL, d.padR, d.dilW, d.kW, d.strideW, &d.outW))
        return p + "output size overflows int64" + geometry + ", expected a representable size";
    if (d.outH < 1 || d.outW < 1)
        return p + "output size is " + std::to_string(d.outH) + "x" + std::to_string(d.outW) + geometry +
               ", expected >= 1x1";
    int64_t x = 0, y = 0;
    if (!mul_ok(d.N, d.H, &x) || !mul_ok(x, d.W, &x) || !mul_ok(x, d.C, &x) || x > kMaxElements ||
        !mul_ok(d.N, d.outH, &y) || !mul_ok(y, d.outW, &y) || !mul_ok(y, d.C, &y) || !mul_ok(y, 3 * d.P, &y) ||
        y > kMaxElements)
        return p + "sizes N*H*W*C or N*Ho*Wo*C*3*P overflow" + geometry + ", expected at most 2^58 elements";
    return "";
}

// "" when `t` is [N, Ho, Wo, channels] (exactly, or at least with at_least), else the message.
inline std::string validate_aggregate_io(const std::string& p, const char* name, ShapeRef t, const AggregateDims& d,
                                   int64_t channels, const char* formula, bool at_least = false) {
    const bool ok = t.rank == 4 && t[0] == d.N && t[1] == d.outH && t[2] == d.outW &&
                    (at_least ? t[3] >= channels : t[3] == channels);
    if (ok) return "";
    return p + name + " has shape " + shape_str(t) + ", expected [" + std::to_string(d.N) + ", " +
           std::to_string(d.outH) + ", " + std::to_string(d.outW) + ", " + (at_least ? "K >= " : "") + formula +
           " = " + std::to_string(channels) + "] (P = " + std::to_string(d.P) + ")";
}

#endif  // !__CUDA_ARCH__

}  // namespace dcn
