// deform_conv2d_math.h: dcn::DeformConv2d's math and validation, on the shared core (plugins/common),
// for the host (g++) and CUDA (nvcc). Every back end (CUDA kernels, ONNX Runtime op, host tests)
// calls these functions; nothing copies them.
//
//   constexpr int64_t kMaxConvStride, kMaxConvPad, kMaxConvDilation;   attribute limits (contract LIMITS)
//   struct DeformConvDims { N, C, H, W, M, kH, kW, strideH, strideW, padT, padL, padB, padR,
//                           dilH, dilW, group, offsetGroup, outH, outW; bool hasMask; };
//   template<class Acc, class T, class I = int64_t> DCN_HD BilinearTaps<Acc, I> deform_im2col_taps(
//       const T* offset, const T* mask /*nullptr = 1*/, const DeformConvDims& d,
//       int64_t n, int64_t g /*offset group*/, int64_t i, int64_t j, int64_t ho, int64_t wo);
//       the taps of kernel point (i, j) at output (ho, wo), weights already times the mask;
//       the same for every channel of offset group g; h = ho*stride - pad + i*dilation + offset
//       exactly (bilinear_taps_split). I = int32_t needs deform_grid_exact_in_float(d).
//   template<class Acc, class T> DCN_HD Acc deform_im2col_element(
//       const T* X, const T* offset, const T* mask /*nullptr = 1*/, const DeformConvDims& d,
//       int64_t n, int64_t c, int64_t i, int64_t j, int64_t ho, int64_t wo);
//       mask * bilinear(X[n, c], h, w): one entry of the column matrix, row c*kH*kW + i*kW + j,
//       column ho*outW + wo. Y[n, m] = B[m] + W[m] (flattened [C/group*kH*kW]) x columns of m's group.
//   template<class Acc, class T, int B> DCN_HD void deform_taps_block(const T* offset,
//       const T* mask /*nullptr = 1*/, const DeformConvDims& d, int64_t n, int64_t g, int64_t k,
//       int64_t q0, int qn, TapsBlock<Acc, B>& blk);
//       blk's first qn samples: set_taps of deform_im2col_taps of kernel point k at the output
//       positions q0 .. q0+qn-1 (row-major), byte for byte; four positions of a row at a time on
//       the host for float (block_sampling_ok(H, W) needed, as for set_taps).
//   DCN_HD void split_tf32(float v, float& hi, float& lo);   v = hi + lo, hi in TF32 (3xTF32 GEMM)
//
//   Host only (validation; "" when fine, else one message, dcn_validate.h):
//   struct DeformConvAttrs { vector strides, pads, dilations, kernel_shape (empty: absent);
//                            int64_t group, offset_group; };           contract defaults
//   std::string validate_deform_conv2d_attrs(const std::string& node, const DeformConvAttrs&);
//   std::string validate_deform_conv2d(const std::string& node, const DeformConvAttrs&,
//       ShapeRef X, ShapeRef W, ShapeRef offset, ShapeRef B, ShapeRef mask, DeformConvDims* out);
#pragma once

#include "dcn_math.h"      // plugins/common: the core
#include "dcn_taps_block.h"  // plugins/common: taps blocks (the CPU op's sampling)
#include "dcn_validate.h"  // plugins/common: messages
#include "deform_conv2d_fields.h"

namespace dcn {

// Limits of the attributes that alone drive work or memory (contract: exporter/contract.py
// LIMITS, README "Limits"). Also keeps every value inside TensorRT's int32 fields.
constexpr int64_t kMaxConvStride = 1024;      // strides
constexpr int64_t kMaxConvPad = 1024;         // pads: each adds outputs
constexpr int64_t kMaxConvDilation = 1024;    // dilations

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
// I = int32_t: plane offsets in int32 (H*W <= INT32_MAX) and the sampling positions split in Acc,
// which needs deform_grid_exact_in_float(d) (bilinear_taps_split).
template <class Acc, class T, class I = int64_t>
DCN_HD BilinearTaps<Acc, I> deform_im2col_taps(const T* offset, const T* mask, const DeformConvDims& d, int64_t n,
                                               int64_t g, int64_t i, int64_t j, int64_t ho, int64_t wo) {
    const int64_t kk = d.kH * d.kW;
    const int64_t k = i * d.kW + j;
    const int64_t L = d.outH * d.outW;
    const int64_t pos = ho * d.outW + wo;
    const int64_t ch = 2 * (g * kk + k);  // channel of dh; dw follows
    const T* off = offset + (n * 2 * d.offsetGroup * kk + ch) * L + pos;
    // h = ho*stride - pad + i*dilation + offset, exactly (bilinear_taps_split: no sum rounded to Acc)
    BilinearTaps<Acc, I> t =
        bilinear_taps_split<Acc, I>(static_cast<I>(d.H), static_cast<I>(d.W), ho * d.strideH - d.padT + i * d.dilH,
                                    load<Acc>(off[0]), wo * d.strideW - d.padL + j * d.dilW, load<Acc>(off[L]));
    if (mask != nullptr) {
        const Acc m = load<Acc>(mask[(n * d.offsetGroup * kk + g * kk + k) * L + pos]);
        for (int q = 0; q < 4; ++q) t.w[q] = fold_mask(t.w[q], m);
    }
    return t;
}

// Every grid point ho*stride - pad + i*dilation (w alike) and the map's sides within 2^23: the
// int32 instance of deform_im2col_taps may decide and split the sampling positions in float.
DCN_HD bool deform_grid_exact_in_float(const DeformConvDims& d) {
    const int64_t hb = d.outH * d.strideH + d.padT + (d.kH - 1) * d.dilH;
    const int64_t wb = d.outW * d.strideW + d.padL + (d.kW - 1) * d.dilW;
    return grid_exact_in_float(d.H, d.W, hb, wb);
}

template <class Acc, class T>
DCN_HD Acc deform_im2col_element(const T* X, const T* offset, const T* mask, const DeformConvDims& d, int64_t n,
                                 int64_t c, int64_t i, int64_t j, int64_t ho, int64_t wo) {
    const int64_t g = c / (d.C / d.offsetGroup);
    const BilinearTaps<Acc> t = deform_im2col_taps<Acc>(offset, mask, d, n, g, i, j, ho, wo);
    return apply_taps<Acc>(X + (n * d.C + c) * d.H * d.W, t);
}

// The taps blocks of the CPU op (dcn_math.h TapsBlock): kernel point k = i*kW + j of image n,
// offset group g, at output positions q0 .. q0+qn-1, into blk's first qn samples; the same bytes
// as set_taps(blk, p, deform_im2col_taps(...)) for each position (the host test library checks
// every block it samples byte for byte against that, and tests/test_math_header.py the columns
// sampled from the blocks against the element function's, bit for bit).
// On the host, for float, four positions of one output row at a time (SSE on any x86-64):
// the same operations as bilinear_taps_split lane by lane (each offset split into its floor, by
// truncation corrected where it went up, and its exact fraction; the integer parts in int32),
// then the slots set_taps would fill, with the same products in the same order ((row weight *
// column weight) * mask); a row's last 1-3 positions and maps or grid coordinates past 2^22
// take the loop at the end (set_taps of deform_im2col_taps, one by one).
// Measured (one thread, maps of 16x16 to 100x100): 12-15 ns a position with that loop, 3.4-3.9
// four at a time.
template <class Acc, class T, int B>
DCN_HD void deform_taps_block(const T* offset, const T* mask, const DeformConvDims& d, int64_t n, int64_t g,
                              int64_t k, int64_t q0, int qn, TapsBlock<Acc, B>& blk) {
    const int64_t i = k / d.kW, j = k % d.kW;
    int64_t ho = q0 / d.outW, wo = q0 % d.outW;
    int p = 0;
#if !defined(__CUDACC__) && (defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12))
    if constexpr (std::is_same<Acc, float>::value && std::is_same<T, float>::value) {
        typedef float v4 __attribute__((vector_size(16)));
        typedef int32_t v4i __attribute__((vector_size(16)));
        // every grid coordinate (ho*strideH - padT + i*dilH, and w alike over the row's lanes) and the
        // map's sides at most 2^22: an offset of 2^23 or more (or NaN) then lands outside, and the
        // rest split exactly in int32 and float
        const int64_t span = int64_t(1) << 22;
        const int64_t hspan = d.outH * d.strideH + d.padT + (d.kH - 1) * d.dilH;
        const int64_t wspan = (d.outW + 3) * d.strideW + d.padL + (d.kW - 1) * d.dilW;
        const bool fits = d.H <= span && d.W <= span && hspan <= span && wspan <= span;
        const int64_t kk = d.kH * d.kW, L = d.outH * d.outW;
        const float* offh = offset + (n * 2 * d.offsetGroup * kk + 2 * (g * kk + k)) * L + q0;
        const float* offw = offh + L;
        const float* msk = mask != nullptr ? mask + (n * d.offsetGroup * kk + g * kk + k) * L + q0 : nullptr;
        const int64_t hoff = i * d.dilH - d.padT;
        const int32_t woff = static_cast<int32_t>(j * d.dilW - d.padL), sW = static_cast<int32_t>(d.strideW);
        const v4i hm2 = v4i{} + static_cast<int32_t>(d.H - 2), wm2 = v4i{} + static_cast<int32_t>(d.W - 2);
        const v4i width = v4i{} + static_cast<int32_t>(d.W), lane = v4i{0, 1, 2, 3};
        const v4i sizeH = v4i{} + static_cast<int32_t>(d.H), sizeW = v4i{} + static_cast<int32_t>(d.W);
        const v4i one_bits = (v4i)(v4{} + 1.0f);
        const v4 big = v4{} + 8388608.0f;  // 2^23
        const auto pick = [](v4i c, v4 a, v4 b) { return (v4)(((v4i)a & c) | ((v4i)b & ~c)); };  // c ? a : b
        // split_coord and split_inside lane by lane: ip = base + floor(off), frac = off - floor(off) (+ 0:
        // truncation takes -0 to +0, where floor keeps -0, and -0 - +0 would be -0); the lanes' mask of
        // samples inside (-1, size) along this axis
        const auto split = [&](v4 off, v4i base, v4i size, v4i& ip, v4& frac) {
            const v4i ok = (off > -big) & (off < big);  // false for NaN; beyond: outside (|base| <= 2^22)
            const v4 o = pick(ok, off, v4{});
            const v4i t = __builtin_convertvector(o, v4i);  // truncation, exact here
            const v4 ft = __builtin_convertvector(t, v4);
            const v4i up = ft > o;  // -1 where truncation went up: floor is one less
            ip = base + t + up;
            frac = (o - (ft - (v4)(up & one_bits))) + 0.0f;
            return ok & ((ip > -1) | ((ip == -1) & (frac > 0.0f))) & (ip < size);
        };
        while (fits && p < qn) {
            const int rowend = p + static_cast<int>(d.outW - wo < qn - p ? d.outW - wo : qn - p);
            const v4i hrow = v4i{} + static_cast<int32_t>(ho * d.strideH + hoff);
            for (; p + 4 <= rowend; p += 4, wo += 4) {
                v4 oh, ow, m = v4{} + 1.0f;
                memcpy(&oh, offh + p, sizeof oh);
                memcpy(&ow, offw + p, sizeof ow);
                if (msk != nullptr) memcpy(&m, msk + p, sizeof m);
                v4i hl, wl;
                v4 lh, lw;
                const v4i wcol = (v4i{} + static_cast<int32_t>(wo) + lane) * sW + woff;
                const v4i in = split(oh, hrow, sizeH, hl, lh) & split(ow, wcol, sizeW, wl, lw);
                const v4 uh = 1.0f - lh, uw = 1.0f - lw;
                // the 2x2 window at (clamp(hl, 0, H-2), clamp(wl, 0, W-2)): row 0 holds neighbour
                // row hl (weight uh) or, where hl = -1, row hl+1 (lh); row 1 holds hl+1 (lh) or,
                // where hl = H-1, hl (uh); a slot is empty where its row or column is.
                const v4i rlow = hl < 0, rhigh = hl > hm2, clow = wl < 0, chigh = wl > wm2;
                const v4 r0 = pick(rlow, lh, uh), r1 = pick(rhigh, uh, lh);
                const v4 c0 = pick(clow, lw, uw), c1 = pick(chigh, uw, lw);
                // fold_mask lane by lane: a zero weight stays zero (an infinite mask times 0 is no NaN)
                const auto fold = [&](v4i slot, v4 wt) { return pick(slot & (wt != 0.0f), wt * m, v4{}); };
                const v4 s00 = fold(in & ~rhigh & ~chigh, r0 * c0);
                const v4 s01 = fold(in & ~rhigh & ~clow, r0 * c1);
                const v4 s10 = fold(in & ~rlow & ~chigh, r1 * c0);
                const v4 s11 = fold(in & ~rlow & ~clow, r1 * c1);
                const v4i hb = ~rlow & ((rhigh & hm2) | (~rhigh & hl));
                const v4i wb = ~clow & ((chigh & wm2) | (~chigh & wl));
                const v4i base = in & (hb * width + wb);
                memcpy(blk.base + p, &base, sizeof base);
                memcpy(&blk.w[0][p], &s00, sizeof s00);
                memcpy(&blk.w[1][p], &s01, sizeof s01);
                memcpy(&blk.w[2][p], &s10, sizeof s10);
                memcpy(&blk.w[3][p], &s11, sizeof s11);
            }
            for (; p < rowend; ++p, ++wo)
                set_taps(blk, p, deform_im2col_taps<Acc>(offset, mask, d, n, g, i, j, ho, wo), d.H, d.W);
            if (wo == d.outW) wo = 0, ++ho;
        }
    }
#endif
    for (; p < qn; ++p) {
        set_taps(blk, p, deform_im2col_taps<Acc>(offset, mask, d, n, g, i, j, ho, wo), d.H, d.W);
        if (++wo == d.outW) wo = 0, ++ho;
    }
}

// 3xTF32 (float32 accuracy from TF32 tensor cores, the FP32 GEMM's opt-in mode, deform_conv2d_plan.h):
// v = hi + lo exactly, hi with TF32's 10 mantissa bits (rounded to nearest, ties away from zero,
// as cvt.rna.tf32.f32), lo = v - hi (|lo| <= 2^-11 |v|, exact in float). Then a x b ~= a_lo x b_hi
// + a_hi x b_lo + a_hi x b_hi: the dropped a_lo x b_lo and the tensor cores' TF32 reading of lo
// cost ~2^-21 relative, float32's own rounding. A finite v that would round to inf is truncated
// instead. Not finite v: hi = 0 and lo = v (NaN as 0x7fffffff, which a TF32 reading keeps a NaN),
// so that inf x b reaches the output through a_lo x b_hi (inf, as float32 gives) and not as
// inf x 0 = NaN through a_hi x b_lo where b is exactly a TF32 value (b_lo = 0). Left different from
// float32: inf x inf (NaN) and inf x a subnormal below 2^-137 (its hi is 0: NaN).
DCN_HD void split_tf32(float v, float& hi, float& lo) {
    uint32_t b = 0;
    std::memcpy(&b, &v, sizeof b);
    if ((b & 0x7f800000u) == 0x7f800000u) {
        const uint32_t nonfinite = (b & 0x007fffffu) != 0 ? 0x7fffffffu : b;
        std::memcpy(&lo, &nonfinite, sizeof lo);
        hi = 0.f;
        return;
    }
    uint32_t r = (b + 0x1000u) & 0xffffe000u;
    if ((r & 0x7f800000u) == 0x7f800000u) r = b & 0xffffe000u;
    float h = 0.f;
    std::memcpy(&h, &r, sizeof h);
    hi = h;
    lo = v - h;
}

#if !defined(__CUDA_ARCH__)

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
    const std::string lists = check_int_lists(p, {{"strides", a.strides, 2, 1, kMaxConvStride},
                                               {"pads", a.pads, 4, 0, kMaxConvPad},
                                               {"dilations", a.dilations, 2, 1, kMaxConvDilation}});
    if (!lists.empty()) return lists;
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

#endif  // !__CUDA_ARCH__

}  // namespace dcn
