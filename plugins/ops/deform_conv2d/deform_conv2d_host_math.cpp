// deform_conv2d_host_math.cpp: dcn::DeformConv2d's math header (deform_conv2d_math.h) over whole
// tensors, exported with C linkage for tests/test_math_header.py (ctypes). Test code: it only loops
// over outputs and calls the header; the one place with arithmetic of its own is the plain
// W x columns sum that turns columns into a convolution output for comparison with the reference.
//
// dtype codes: 0 = float64 (Acc double), 1 = float32 (Acc float), 2 = float16 bits (Acc float).
// Outputs are in Acc: double for 0, float for 1 and 2 (half results are not rounded).
// Every entry point validates with the header first and returns 0 when fine, 1 with the
// message in msg (NUL-terminated, truncated to msg_size) when not.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "deform_conv2d_math.h"
#include "host_tests.h"  // plugins/tests

namespace {

using namespace dcn_host;

std::vector<int64_t> vec(const int64_t* v, int64_t n) {
    return n > 0 ? std::vector<int64_t>(v, v + n) : std::vector<int64_t>();
}

// The arguments of the functions below, typed.
template <class T> struct Typed {
    Typed(const void* x, const void* o, const void* m, void* out_)
        : X(static_cast<const T*>(x)), off(static_cast<const T*>(o)), mask(static_cast<const T*>(m)),
          out(static_cast<typename dcn::AccOf<T>::type*>(out_)) {}
    const T *X, *off, *mask;
    typename dcn::AccOf<T>::type* out;
};

// The column matrix [N, C*kH*kW, L] the way the ONNX Runtime op samples it: taps blocks of
// kBlock positions (deform_taps_block; shared by the channels of an offset group; blocks that
// start and end inside output rows), apply_taps_block_run over the
// group's channels (runs of up to four: the sweep's groups of 1 to 4, 7 and 9 channels take
// every run length).
constexpr int kBlock = 48;  // not the op's 128: other tails
// Each block is also checked byte for byte against set_taps of deform_im2col_taps per position
// (what deform_taps_block promises); "" or where the first difference is.
template <class T>
std::string columns_by_blocks(const dcn::DeformConvDims& d, const void* Xv, const void* offv, const void* maskv,
                              void* outv) {
    using Acc = typename dcn::AccOf<T>::type;
    const Typed<T> t(Xv, offv, maskv, outv);
    const T *X = t.X, *off = t.off, *mask = t.mask;
    Acc* out = t.out;
    const int64_t kk = d.kH * d.kW, L = d.outH * d.outW, Cog = d.C / d.offsetGroup;
    dcn::TapsBlock<Acc, kBlock> blk, one;
    for (int64_t n = 0; n < d.N; ++n)
        for (int64_t g = 0; g < d.offsetGroup; ++g)
            for (int64_t k = 0; k < kk; ++k)
                for (int64_t p0 = 0; p0 < L; p0 += kBlock) {
                    const int pn = static_cast<int>(std::min<int64_t>(kBlock, L - p0));
                    dcn::deform_taps_block<Acc>(off, mask, d, n, g, k, p0, pn, blk);
                    for (int p = 0; p < pn; ++p) {
                        const int64_t pos = p0 + p;
                        dcn::set_taps(one, p,
                                      dcn::deform_im2col_taps<Acc>(off, mask, d, n, g, k / d.kW, k % d.kW,
                                                                   pos / d.outW, pos % d.outW),
                                      d.H, d.W);
                        bool same = blk.base[p] == one.base[p];
                        for (int q = 0; q < 4; ++q) same = same && std::memcmp(&blk.w[q][p], &one.w[q][p], sizeof(Acc)) == 0;
                        if (!same)
                            return "deform_taps_block differs from set_taps at n " + std::to_string(n) + ", offset group " +
                                   std::to_string(g) + ", kernel point " + std::to_string(k) + ", position " +
                                   std::to_string(pos);
                    }
                    dcn::apply_taps_block_run<Acc>(Cog, X + (n * d.C + g * Cog) * d.H * d.W,
                                                   d.H * d.W, d.W, blk, pn,
                                                   out + ((n * d.C + g * Cog) * kk + k) * L + p0, kk * L);
                }
    return "";
}

// The same columns the way the ONNX Runtime op samples them pixel-major: X copied channels-last,
// then apply_taps_block_channels over each offset group's channels into [L, kH*kW, C], returned
// in the element function's layout [N, C*kH*kW, L].
template <class T>
void columns_by_channels(const dcn::DeformConvDims& d, const void* Xv, const void* offv, const void* maskv,
                         void* outv) {
    using Acc = typename dcn::AccOf<T>::type;
    const Typed<T> t(Xv, offv, maskv, outv);
    const T *X = t.X, *off = t.off, *mask = t.mask;
    Acc* out = t.out;
    const int64_t kk = d.kH * d.kW, L = d.outH * d.outW, Cog = d.C / d.offsetGroup, hw = d.H * d.W;
    std::vector<T> x_cl(static_cast<size_t>(hw * d.C));
    std::vector<Acc> cols(static_cast<size_t>(L * kk * d.C));
    dcn::TapsBlock<Acc, kBlock> blk;
    for (int64_t n = 0; n < d.N; ++n) {
        for (int64_t c = 0; c < d.C; ++c)
            for (int64_t i = 0; i < hw; ++i) x_cl[static_cast<size_t>(i * d.C + c)] = X[(n * d.C + c) * hw + i];
        for (int64_t g = 0; g < d.offsetGroup; ++g)
            for (int64_t k = 0; k < kk; ++k)
                for (int64_t p0 = 0; p0 < L; p0 += kBlock) {
                    const int pn = static_cast<int>(std::min<int64_t>(kBlock, L - p0));
                    dcn::deform_taps_block<Acc>(off, mask, d, n, g, k, p0, pn, blk);
                    dcn::apply_taps_block_channels<Acc>(x_cl.data() + g * Cog, d.C, Cog, d.W, blk, pn,
                                                        cols.data() + (p0 * kk + k) * d.C + g * Cog, kk * d.C);
                }
        for (int64_t c = 0; c < d.C; ++c)
            for (int64_t k = 0; k < kk; ++k)
                for (int64_t l = 0; l < L; ++l)
                    out[((n * d.C + c) * kk + k) * L + l] = cols[static_cast<size_t>((l * kk + k) * d.C + c)];
    }
}

template <class T>
void conv2d(const dcn::DeformConvDims& d, const void* Xv, const void* Wv, const void* offv, const void* Bv,
            const void* maskv, bool columns_only, void* outv) {
    using Acc = typename dcn::AccOf<T>::type;
    const Typed<T> t(Xv, offv, maskv, outv);
    const T *X = t.X, *off = t.off, *mask = t.mask;
    Acc* out = t.out;
    const int64_t kk = d.kH * d.kW, L = d.outH * d.outW, rows = d.C * kk;
    std::vector<Acc> cols(static_cast<size_t>(rows * L));
    for (int64_t n = 0; n < d.N; ++n) {
        for (int64_t c = 0; c < d.C; ++c)
            for (int64_t i = 0; i < d.kH; ++i)
                for (int64_t j = 0; j < d.kW; ++j)
                    for (int64_t ho = 0; ho < d.outH; ++ho)
                        for (int64_t wo = 0; wo < d.outW; ++wo)
                            cols[static_cast<size_t>((c * kk + i * d.kW + j) * L + ho * d.outW + wo)] =
                                dcn::deform_im2col_element<Acc>(X, off, mask, d, n, c, i, j, ho, wo);
        if (columns_only) {
            std::memcpy(out + n * rows * L, cols.data(), cols.size() * sizeof(Acc));
            continue;
        }
        const T* Wt = static_cast<const T*>(Wv);
        const T* B = static_cast<const T*>(Bv);
        const int64_t Mg = d.M / d.group, Kg = (d.C / d.group) * kk;
        for (int64_t m = 0; m < d.M; ++m) {
            const int64_t g = m / Mg;
            for (int64_t l = 0; l < L; ++l) {
                Acc acc = B ? dcn::load<Acc>(B[m]) : Acc(0);
                for (int64_t q = 0; q < Kg; ++q)
                    acc += dcn::load<Acc>(Wt[m * Kg + q]) * cols[static_cast<size_t>((g * Kg + q) * L + l)];
                out[(n * d.M + m) * L + l] = acc;
            }
        }
    }
}

}  // namespace

// Validates, then (when out != NULL) computes the op (columns_only = 0: Y [N, M, oH, oW])
// or its column matrix [N, C*kH*kW, oH*oW] (columns_only = 1: deform_im2col_element per entry;
// 2: taps blocks and apply_taps_block_run, as the ONNX Runtime op, each block checked against set_taps per
// position (a message where they differ); 3: taps blocks and apply_taps_block_channels from X copied
// channels-last, as the op's pixel-major columns; 2 and 3: finite X, H and W >= 2 only). B / mask NULL = absent;
// kernel_shape with n_kernel_shape = 0 = absent. dims_out (optional) receives the 19
// DeformConvDims integers in declaration order.
DCN_EXPORT int dcn_host_deform_conv2d(int dtype, int columns_only, const void* X, const int64_t* x_shape,
                                      int64_t x_rank, const void* W, const int64_t* w_shape, int64_t w_rank,
                                      const void* offset, const int64_t* offset_shape, int64_t offset_rank,
                                      const void* B, const int64_t* b_shape, int64_t b_rank, const void* mask,
                                      const int64_t* mask_shape, int64_t mask_rank, const int64_t* strides,
                                      int64_t n_strides, const int64_t* pads, int64_t n_pads,
                                      const int64_t* dilations, int64_t n_dilations, const int64_t* kernel_shape,
                                      int64_t n_kernel_shape, int64_t group, int64_t offset_group,
                                      const char* node, void* out, int64_t* dims_out, char* msg,
                                      size_t msg_size) {
    dcn::DeformConvAttrs a;
    a.strides = vec(strides, n_strides);
    a.pads = vec(pads, n_pads);
    a.dilations = vec(dilations, n_dilations);
    a.kernel_shape = vec(kernel_shape, n_kernel_shape);
    a.group = group;
    a.offset_group = offset_group;
    dcn::DeformConvDims d{};
    const std::string e = dcn::validate_deform_conv2d(
        node ? node : "", a, dcn::ShapeRef(x_shape, x_rank), dcn::ShapeRef(w_shape, w_rank),
        dcn::ShapeRef(offset_shape, offset_rank), opt_shape(B, b_shape, b_rank), opt_shape(mask, mask_shape, mask_rank), &d);
    if (!e.empty()) return report(e, msg, msg_size);
    if (dims_out) {
        const int64_t v[19] = {d.N,    d.C,    d.H,    d.W,    d.M,    d.kH,    d.kW,          d.strideH, d.strideW, d.padT,
                               d.padL, d.padB, d.padR, d.dilH, d.dilW, d.group, d.offsetGroup, d.outH,    d.outW};
        std::memcpy(dims_out, v, sizeof v);
    }
    if (out && columns_only == 3) {
        if (!dcn::block_sampling_ok(d.H, d.W))
            return report("dcn_host_deform_conv2d: taps blocks need H, W >= 2", msg, msg_size);
        switch (dtype) {
            case 0: columns_by_channels<double>(d, X, offset, mask, out); break;
            case 1: columns_by_channels<float>(d, X, offset, mask, out); break;
            case 2: columns_by_channels<dcn::Half>(d, X, offset, mask, out); break;
            default: return report("dcn_host_deform_conv2d: dtype " + std::to_string(dtype) + ", expected 0, 1 or 2", msg, msg_size);
        }
    } else if (out && columns_only == 2) {
        if (!dcn::block_sampling_ok(d.H, d.W))
            return report("dcn_host_deform_conv2d: taps blocks need H, W >= 2", msg, msg_size);
        std::string bad;
        switch (dtype) {
            case 0: bad = columns_by_blocks<double>(d, X, offset, mask, out); break;
            case 1: bad = columns_by_blocks<float>(d, X, offset, mask, out); break;
            case 2: bad = columns_by_blocks<dcn::Half>(d, X, offset, mask, out); break;
            default: return report("dcn_host_deform_conv2d: dtype " + std::to_string(dtype) + ", expected 0, 1 or 2", msg, msg_size);
        }
        if (!bad.empty()) return report(bad, msg, msg_size);
    } else if (out) {
        const bool cols = columns_only != 0;
        switch (dtype) {
            case 0: conv2d<double>(d, X, W, offset, B, mask, cols, out); break;
            case 1: conv2d<float>(d, X, W, offset, B, mask, cols, out); break;
            case 2: conv2d<dcn::Half>(d, X, W, offset, B, mask, cols, out); break;
            default: return report("dcn_host_deform_conv2d: dtype " + std::to_string(dtype) + ", expected 0, 1 or 2", msg, msg_size);
        }
    }
    return report("", msg, msg_size);
}
