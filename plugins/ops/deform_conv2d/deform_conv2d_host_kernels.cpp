// deform_conv2d_host_kernels.cpp: dcn::DeformConv2d's CUDA launches in the TensorRT plugin,
// emulated on the host, with C linkage for tests/test_host_kernels.py (ctypes; part of libdcn_host_tests).
//
// What runs here is the plugin's own code, not a copy: the launch geometry, the
// thread-index -> output-coordinate mapping and the per-thread bodies of the kernels
// (deform_conv2d_launch.h, called for every (block, thread) of the grid the launcher
// would use, in int32 or int64 indexing as the launcher picks: plugins/tests/host_tests.h),
// the plugin's work split (deform_conv2d_plan.h: batch chunks, workspace layout, the GEMMs per
// convolution group), its enqueue body (deform_conv2d_enqueue.h: the calls in order, their pointers,
// bias and betas, the staged copy) and the math (deform_conv2d_math.h). The stand-ins are the
// 2-D copy (a row copy) and the GEMM: cuBLAS is replaced by a plain column-major loop taking the
// very Gemm descriptors the plugin hands to cublasGemmStridedBatchedEx (accumulating in Acc like
// CUBLAS_COMPUTE_32F for float/half, whose handle disallows reductions in half:
// plugins/trt/cublas_resource.cpp; CUBLAS_COMPUTE_32F_FAST_TF32 of the 3xTF32 mode reads
// its operands as TF32, emulated by truncating them to 10 mantissa bits, the worst reading; its
// sums by IEEE adds, or for the tests by a tensor core's truncating model, TcAccumulation).
//
// dtype codes: 0 = float64, 1 = float32, 2 = float16 storage (dcn::Half bits). Outputs are
// in the storage type, as on the GPU. index_mode: 0 = as the launcher (int32 when it fits),
// 1 = int32, 2 = int64. max_blocks > 0 caps the grid (exercises the grid-stride loop).
// Entry points return 0 when fine, 1 with a message in msg otherwise (contract validation
// message from the header, or an emulation check that failed).
#include <algorithm>
#include <iterator>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "deform_conv2d_enqueue.h"
#include "deform_conv2d_host_args.h"
#include "deform_conv2d_launch.h"
#include "deform_conv2d_nhwc.h"
#include "deform_conv2d_plan.h"
#include "host_tests.h"  // plugins/tests

namespace {

using dcn::DeformConvDims;
using namespace dcn_host;
namespace plan = dcn::plan;

// Items the im2col plan aims at (launch::kIm2colTargetItems; tests lower it to force channel blocks).
int64_t g_im2col_target = launch::kIm2colTargetItems;
// 3xTF32 terms (plan::kSplitTerms) left out from the first (tests: 2 leaves hi x hi alone, plain TF32).
int g_split_terms_skipped = 0;

// A float as the tensor cores read it for TF32 (low 13 mantissa bits dropped).
inline float tf32_truncate(float v) {
    uint32_t b = 0;
    std::memcpy(&b, &v, sizeof b);
    b &= 0xffffe000u;
    std::memcpy(&v, &b, sizeof v);
    return v;
}
template <class Acc, class T> Acc gemm_operand(T v, bool tf32) {
    if constexpr (std::is_same<T, float>::value)
        if (tf32) return tf32_truncate(v);
    return dcn::load<Acc>(v);
}

// How the TF32 GEMMs accumulate (tests: dcn_emu_set_tc_accumulation). block_k 0: IEEE float, one
// rounded add a product. block_k > 0: a tensor core's multiply-add in the model Fasi, Higham,
// Mikaitis and Pranesh derived from measurements ("Numerical behavior of NVIDIA tensor cores", PeerJ
// Computer Science 7:e330, 2021), with the block size and the extra bits as parameters (they differ
// between cards): per block of block_k products, the products exact, each of them and the
// accumulator cut to the grid of 24 + extra_bits bits below the largest one's leading bit
// (truncated: the shifted-out bits are lost), the sum normalised to float by truncation.
struct TcAccumulation {
    int block_k = 0;
    int extra_bits = 0;
};
TcAccumulation g_tc_accumulation;

float truncate_to_float(double v) {
    float f = static_cast<float>(v);
    if (std::isfinite(v) && std::fabs(static_cast<double>(f)) > std::fabs(v)) f = std::nextafter(f, 0.f);
    return f;
}

// acc + terms[0 .. n) by the block model above (non-finite values: plain IEEE sums, inf / NaN as cuBLAS).
float tc_block(float acc, const double* terms, int n, int extra_bits) {
    double plain = acc;
    int emax = 0;
    bool any = acc != 0.f;
    if (any) std::frexp(static_cast<double>(acc), &emax);
    for (int t = 0; t < n; ++t) {
        plain += terms[t];
        if (terms[t] == 0.0) continue;
        int e = 0;
        std::frexp(terms[t], &e);
        emax = any ? std::max(emax, e) : e;
        any = true;
    }
    if (!any || !std::isfinite(plain)) return static_cast<float>(plain);
    const double q = std::ldexp(1.0, emax - 24 - extra_bits);  // the grid: exact sums in double
    double sum = std::trunc(static_cast<double>(acc) / q) * q;
    for (int t = 0; t < n; ++t) sum += std::trunc(terms[t] / q) * q;
    return truncate_to_float(sum);
}

// cublasGemmStridedBatchedEx(OP_N or, transA, OP_T; OP_N) on the host, column-major, Acc accumulation; tf32: the
// operands read as TF32 (CUBLAS_COMPUTE_32F_FAST_TF32), accumulated as g_tc_accumulation says.
template <class T>
void host_gemm(const plan::Gemm& g, const T* A, const T* B, T* C, float alpha, float beta, bool tf32 = false) {
    using Acc = typename dcn::AccOf<T>::type;
    const int block_k = tf32 && std::is_same<T, float>::value ? g_tc_accumulation.block_k : 0;
    std::vector<double> terms(static_cast<size_t>(std::max(block_k, 1)));
    for (int64_t b = 0; b < g.count; ++b)
        for (int64_t j = 0; j < g.n; ++j)
            for (int64_t i = 0; i < g.m; ++i) {
                Acc acc = Acc(0);
                for (int64_t l = 0; l < g.k; ++l) {
                    const int64_t at = g.transA ? l + i * g.lda : i + l * g.lda;  // op(A)[i, l]
                    const Acc a = gemm_operand<Acc>(A[g.a + b * g.strideA + at], tf32);
                    const Acc w = gemm_operand<Acc>(B[g.b + b * g.strideB + l + j * g.ldb], tf32);
                    if (block_k == 0) {
                        acc += a * w;
                        continue;
                    }
                    const int t = static_cast<int>(l % block_k);
                    terms[static_cast<size_t>(t)] = static_cast<double>(a) * static_cast<double>(w);  // exact: TF32
                    if (t == block_k - 1 || l == g.k - 1)
                        acc = static_cast<Acc>(tc_block(static_cast<float>(acc), terms.data(), t + 1,
                                                        g_tc_accumulation.extra_bits));
                }
                T& c = C[g.c + b * g.strideC + i + j * g.ldc];
                const Acc r = beta == 0.f ? Acc(alpha) * acc : Acc(alpha) * acc + Acc(beta) * dcn::load<Acc>(c);
                c = dcn::store<T>(r);
            }
}

// deform_conv2d_enqueue.h's Backend on the host: the kernels' thread bodies over the grid their
// launchers would use (int32 or int64 indexing as index_mode says), host_gemm for cuBLAS, a row copy for
// cudaMemcpy2DAsync; it checks that im2col writes exactly each chunk's column entries and counts
// chunks, GEMMs and batches.
template <class T>
struct HostIm2col {
    const T* X;
    const T* off;
    const T* mask;
    const DeformConvDims& d;
    int index_mode;
    int64_t max_blocks;
    T* ws;                // the workspace from its aligned base (columns, staging, 3xTF32 parts)
    int64_t colCapacity;  // elements of the column part (before the weights' halves)
    bool split;
    const plan::Im2colLayout& lay;
    int64_t chunks = 0, gemms = 0, batches = 0, uncovered = 0, outside = 0;
    int64_t firstBlocks = 0, firstBits = 0, firstV = 0, firstCpt = 0;
    float chunkBeta = 0.f;  // term 0's beta (a test leaving out the first terms starts the output with it)

    int zero(T* y, int64_t n) {
        std::fill(y, y + n, dcn::store<T>(0.0f));
        return 0;
    }
    int fill_bias(const T* B, int64_t M, int64_t rows, int64_t ld, T* dst) {
        const int64_t total = rows * ld;
        if (use_int32(index_mode, total, max_blocks))
            emulate_grid<int32_t>(total, max_blocks, [&](int32_t tid, int32_t nt) {
                launch::fill_bias_thread<T, int32_t>(tid, nt, B, M, rows, ld, dst);
            });
        else
            emulate_grid<int64_t>(total, max_blocks, [&](int64_t tid, int64_t nt) {
                launch::fill_bias_thread<T, int64_t>(tid, nt, B, M, rows, ld, dst);
            });
        return 0;
    }
    int split_weights(const T* W, int64_t n, T* hi, T* lo) {
        if constexpr (std::is_same<T, float>::value) {  // the weight split kernel, as its launcher starts it
            if (use_int32(index_mode, n, max_blocks))
                emulate_grid<int32_t>(n, max_blocks, [&](int32_t tid, int32_t nt) {
                    launch::split_tf32_thread<int32_t>(tid, nt, n, W, hi, lo);
                });
            else
                emulate_grid<int64_t>(n, max_blocks, [&](int64_t tid, int64_t nt) {
                    launch::split_tf32_thread<int64_t>(tid, nt, n, W, hi, lo);
                });
            return 0;
        }
        return 1;
    }
    int im2col(int64_t n0, int64_t nb, int64_t ld, T* col, T* colLo) {
        for (int64_t q = 0; q < colCapacity; ++q) ws[q] = sentinel<T>();
        const launch::Im2colPlan pl = launch::im2col_plan(d, nb, ld, g_im2col_target);
        int64_t blocks = 0;
        const bool i32 = use_int32(index_mode, pl.total, max_blocks) && (index_mode == 1 || d.H * d.W <= INT32_MAX);
        auto run = [&](auto vtag) {
            constexpr int V = decltype(vtag)::value;
            if (i32)
                blocks = emulate_grid<int32_t>(pl.total, max_blocks, [&](int32_t tid, int32_t nt) {
                    launch::deform_im2col_thread<T, int32_t, V>(tid, nt, X, off, mask, d, n0, pl, col, colLo);
                });
            else
                blocks = emulate_grid<int64_t>(pl.total, max_blocks, [&](int64_t tid, int64_t nt) {
                    launch::deform_im2col_thread<T, int64_t, V>(tid, nt, X, off, mask, d, n0, pl, col, colLo);
                });
        };
        if (pl.V == 4) run(std::integral_constant<int, 4>());
        else if (pl.V == 2) run(std::integral_constant<int, 2>());
        else run(std::integral_constant<int, 1>());
        if (chunks == 0) {
            firstBlocks = blocks;
            firstBits = i32 ? 32 : 64;
            firstV = pl.V;
            firstCpt = pl.cpt;
        }
        // every column entry (p < L of each row; 3xTF32: and of the lo halves) written; nothing else
        // (row padding, staging, beyond)
        const int64_t rows = nb * d.C * d.kH * d.kW;
        const int64_t loStart = split ? colLo - col : -1;
        for (int64_t q = 0; q < colCapacity; ++q) {
            const bool entry = (q < rows * ld && q % ld < lay.L) ||
                               (split && q >= loStart && q - loStart < rows * ld && (q - loStart) % ld < lay.L);
            const bool written = !is_sentinel(ws[q]);
            uncovered += entry && !written ? 1 : 0;
            outside += !entry && written ? 1 : 0;
        }
        ++chunks;
        return 0;
    }
    int gemm(const plan::Gemm& g, const T* a, const T* b, float beta, int term, T* c) {
        if (term == 0) chunkBeta = beta;
        if (term >= 0 && term < g_split_terms_skipped) return 0;  // (tests: 3xTF32 without its first terms)
        host_gemm<T>(g, a, b, c, 1.f, term > 0 && term == g_split_terms_skipped ? chunkBeta : beta, term >= 0);
        ++gemms;
        batches += g.count;
        return 0;
    }
    int copy_rows(T* dst, int64_t dpitch, const T* src, int64_t spitch, int64_t width, int64_t rows) {
        for (int64_t r = 0; r < rows; ++r) std::memcpy(dst + r * dpitch, src + r * spitch, width * sizeof(T));
        return 0;
    }
    // The channels-last path's kernels (deform_conv2d_nhwc.h; the launchers in deform_conv2d_fused.cu), each
    // over the grid its launcher starts. The chunk's part of the workspace (columns, staging, Xt) is filled
    // with sentinels before its copy; the sampling kernel must write exactly the chunk's columns and the
    // copy exactly its Xt (uncovered / outside).
    int tap_major_weights(const T* W, T* wt) {
        const int64_t n = dcn::fused::weight_items(d);
        run_grid(n, [&](auto tid, auto nt) { dcn::fused::weight_thread<T>(tid, nt, W, d, wt); });
        return 0;
    }
    int channels_last(int64_t n0, int64_t nb, T* xt) {
        for (int64_t q = 0; q < colCapacity; ++q) ws[q] = sentinel<T>();
        const DeformConvDims c = dcn::nhwc::chunk_dims(d, nb);
        const T* Xc = X + n0 * d.C * d.H * d.W;
        run_grid(dcn::fused::nhwc_items(c), [&](auto tid, auto nt) { dcn::fused::nhwc_thread<T>(tid, nt, Xc, c, xt); });
        return 0;
    }
    int nhwc_im2col(int64_t n0, int64_t nb, const T* xt, T* col) {
        const int64_t total = dcn::nhwc::items(d, nb);
        const int64_t blocks =
            run_grid(total, [&](auto tid, auto nt) { dcn::nhwc::im2col_thread<T>(tid, nt, xt, off, mask, d, n0, nb, col); });
        if (chunks == 0) {
            firstBlocks = blocks;
            firstBits = use_int32(index_mode, total, max_blocks) ? 32 : 64;
        }
        const int64_t cols = nb * lay.L * d.kH * d.kW * d.C, xtAt = xt - col, xts = nb * d.H * d.W * d.C;
        for (int64_t q = 0; q < colCapacity; ++q) {
            const bool entry = q < cols || (q >= xtAt && q < xtAt + xts);
            const bool written = !is_sentinel(ws[q]);
            uncovered += entry && !written ? 1 : 0;
            outside += !entry && written ? 1 : 0;
        }
        ++chunks;
        return 0;
    }
    // f(tid, nthreads) for every thread of the launcher's grid of `total` items, in int32 or int64 as
    // index_mode says; the grid's blocks.
    template <class F> int64_t run_grid(int64_t total, F&& f) {
        if (use_int32(index_mode, total, max_blocks))
            return emulate_grid<int32_t>(total, max_blocks, [&](int32_t tid, int32_t nt) { f(tid, nt); });
        return emulate_grid<int64_t>(total, max_blocks, [&](int64_t tid, int64_t nt) { f(tid, nt); });
    }
};

// The plugin's channels-last path (deform_conv2d_plugin.cpp, run<T>: deform_conv2d_enqueue.h nhwc_enqueue) on
// the host, for any storage type (the plugin takes it for half only; float64 checks the path exactly).
template <class T>
std::string conv2d_nhwc(const DeformConvDims& d, int index_mode, int64_t max_blocks, int64_t cap, const T* X,
                        const T* W, const T* off, const T* B, const T* mask, T* Y, int64_t* stats) {
    const int64_t es = static_cast<int64_t>(sizeof(T));
    const plan::NhwcParts parts = plan::nhwc_parts(d, es, cap);
    const int64_t wsBytes = plan::conv_workspace_bytes(d, es == 2 ? 2 : es, cap);
    const int64_t needed = plan::kAlignBytes + parts.end;
    if (parts.chunk * parts.lay.perImageBytes > parts.weightsAt ||
        parts.weightsAt + plan::nhwc_weight_bytes(d, es) > parts.cublasAt || (es == 2 && needed > wsBytes))
        return "plan: a channels-last chunk of " + std::to_string(parts.chunk) + " images overlaps the weights / the "
               "cuBLAS workspace, or the cuBLAS workspace ends past the plugin's workspace of " +
               std::to_string(wsBytes) + " B";
    if (parts.stagingAt % 16 != 0 || parts.xtAt % 16 != 0 || parts.weightsAt % 16 != 0)
        return "plan: a channels-last part is not 16-byte aligned";
    // columns, staging and Xt (the chunk part), then the weights
    std::vector<T> ws(static_cast<size_t>(parts.cublasAt / es));
    HostIm2col<T> be{X, off, mask, d, index_mode, max_blocks, ws.data(), parts.weightsAt / es, false, parts.lay.lay};
    const plan::EnqueueStatus st = plan::nhwc_enqueue<T>(d, parts, W, B, Y, reinterpret_cast<char*>(ws.data()), be);
    if (st.code != 0) return std::string(st.what) + " failed";
    const int64_t yTotal = d.N * d.M * d.outH * d.outW;
    int64_t yUnwritten = 0;
    for (int64_t q = 0; q < yTotal; ++q) yUnwritten += is_sentinel(Y[q]) ? 1 : 0;
    if (stats) {
        const int64_t v[] = {be.chunks, be.gemms, be.batches, be.firstBlocks, be.firstBits, be.uncovered, be.outside,
                             yUnwritten, parts.chunk, wsBytes, dcn::nhwc::kVec, d.C / d.offsetGroup, 0};
        std::copy(std::begin(v), std::end(v), stats);
    }
    return "";
}

// The plugin's enqueue (deform_conv2d_plugin.cpp, run<T>: deform_conv2d_enqueue.h) on the host.
template <class T>
std::string conv2d(const DeformConvDims& d, int index_mode, int64_t max_blocks, int64_t cap, const void* Xv,
                   const void* Wv, const void* offv, const void* Bv, const void* maskv, void* Yv, int64_t* stats) {
    const T* X = static_cast<const T*>(Xv);
    const T* W = static_cast<const T*>(Wv);
    const T* off = static_cast<const T*>(offv);
    const T* B = static_cast<const T*>(Bv);
    const T* mask = d.hasMask ? static_cast<const T*>(maskv) : nullptr;
    T* Y = static_cast<T*>(Yv);
    const int64_t yTotal = d.N * d.M * d.outH * d.outW;
    for (int64_t q = 0; q < yTotal; ++q) Y[q] = sentinel<T>();
    if (yTotal == 0) return "";
    // the plan's choice where the switch is on (the plugin: half only; here every type, the shapes it takes)
    if (plan::nhwc_selected() && dcn::nhwc::applicable(d, true))
        return conv2d_nhwc<T>(d, index_mode, max_blocks, cap, X, W, off, B, mask, Y, stats);

    const bool split = std::is_same<T, float>::value && plan::fp32_gemm() == plan::Fp32Gemm::k3xTf32;
    const plan::Im2colParts parts = plan::im2col_parts(d, static_cast<int64_t>(sizeof(T)), split, cap);
    const plan::Im2colLayout& lay = parts.lay;
    const int64_t perImage = lay.perImageBytes;
    const int64_t splitWeightBytes = split ? plan::split_weight_bytes(d) : 0;
    const int64_t wsBytes = plan::conv_workspace_bytes(d, static_cast<int64_t>(sizeof(T)), cap);
    if (parts.chunk * perImage > parts.weightsAt || parts.weightsAt + splitWeightBytes > parts.cublasAt ||
        plan::kAlignBytes + parts.end > wsBytes)
        return "plan: a chunk of " + std::to_string(parts.chunk) + " images (" +
               std::to_string(parts.chunk * perImage) + " B) overlaps the weights / the cuBLAS workspace at " +
               std::to_string(parts.cublasAt) + ", or the cuBLAS workspace ends past the plugin's workspace of " +
               std::to_string(wsBytes) + " B";
    // Only the columns + staging (+ 3xTF32 weights) part is materialised (the cuBLAS part is cuBLAS's own business).
    std::vector<T> ws(static_cast<size_t>(parts.cublasAt / static_cast<int64_t>(sizeof(T))));
    HostIm2col<T> be{X, off, mask, d, index_mode, max_blocks, ws.data(),
                     parts.weightsAt / static_cast<int64_t>(sizeof(T)), split, lay};
    const plan::EnqueueStatus st =
        plan::im2col_enqueue<T>(d, parts, W, B, Y, reinterpret_cast<char*>(ws.data()), be);
    if (st.code != 0) return std::string(st.what) + " failed";
    int64_t yUnwritten = 0;
    for (int64_t q = 0; q < yTotal; ++q) yUnwritten += is_sentinel(Y[q]) ? 1 : 0;
    if (stats) {
        const int64_t v[] = {be.chunks, be.gemms, be.batches, be.firstBlocks, be.firstBits, be.uncovered, be.outside,
                             yUnwritten, parts.chunk, wsBytes, be.firstV, be.firstCpt, split ? 1 : 0};
        std::copy(std::begin(v), std::end(v), stats);
    }
    return "";
}

}  // namespace

DCN_EXPORT int dcn_emu_deform_conv2d(int dtype, int index_mode, int64_t max_blocks, int64_t columns_cap,
                                         const void* X, const int64_t* x_shape, const void* W, const int64_t* w_shape,
                                         const void* offset, const int64_t* offset_shape, const void* B,
                                         const int64_t* b_shape, const void* mask, const int64_t* mask_shape,
                                         const int64_t* strides, const int64_t* pads, const int64_t* dilations,
                                         int64_t group, int64_t offset_group, void* Y, int64_t* stats, char* msg,
                                         size_t msg_size) {
    DeformConvDims d{};
    std::string e = conv_dims(x_shape, w_shape, offset_shape, B, b_shape, mask, mask_shape, strides, pads, dilations,
                              group, offset_group, &d);
    if (!e.empty()) return report(e, msg, msg_size);
    const int64_t cap = columns_cap > 0 ? columns_cap : plan::kColumnsCapBytes;
    switch (dtype) {
        case 0: e = conv2d<double>(d, index_mode, max_blocks, cap, X, W, offset, B, mask, Y, stats); break;
        case 1: e = conv2d<float>(d, index_mode, max_blocks, cap, X, W, offset, B, mask, Y, stats); break;
        case 2: e = conv2d<dcn::Half>(d, index_mode, max_blocks, cap, X, W, offset, B, mask, Y, stats); break;
        default: e = "dtype code " + std::to_string(dtype) + ", expected 0, 1 or 2";
    }
    return report(e, msg, msg_size);
}

// The CUDA launcher's index choice for im2col over all N images at ld = L (deform_conv2d_kernels.cu):
// 1 = int32, 0 = int64. v: N, C, H, W, M, kH, kW, strideH, strideW, padT, padL, padB, padR, dilH, dilW,
// group, offsetGroup (the output size from these, as the plugin computes it).
DCN_EXPORT int dcn_emu_im2col_fits_int32(const int64_t* v) {
    DeformConvDims d{};
    d.N = v[0], d.C = v[1], d.H = v[2], d.W = v[3], d.M = v[4], d.kH = v[5], d.kW = v[6];
    d.strideH = v[7], d.strideW = v[8], d.padT = v[9], d.padL = v[10], d.padB = v[11], d.padR = v[12];
    d.dilH = v[13], d.dilW = v[14], d.group = v[15], d.offsetGroup = v[16];
    d.outH = dcn::conv_out_size(d.H, d.padT, d.padB, d.dilH, d.kH, d.strideH);
    d.outW = dcn::conv_out_size(d.W, d.padL, d.padR, d.dilW, d.kW, d.strideW);
    const launch::Im2colPlan pl = launch::im2col_plan(d, d.N, d.outH * d.outW);
    return launch::fits_im2col_int32(pl, launch::blocks_for(pl.total), d) ? 1 : 0;
}

// The im2col kernel's item mapping, for every item < total: out[5*item ...] = nl, g, cb, k, pv.
DCN_EXPORT void dcn_emu_im2col_items(int64_t Lv, int64_t kk, int64_t nCb, int64_t G, int64_t total, int64_t* out) {
    for (int64_t item = 0; item < total; ++item) {
        const launch::Im2colItem q = launch::im2col_item<int64_t>(item, Lv, kk, nCb, G);
        const int64_t v[5] = {q.nl, q.g, q.cb, q.k, q.pv};
        std::memcpy(out + 5 * item, v, sizeof v);
    }
}

// 3xTF32: the emulation leaves out the first `skipped` of the three GEMM terms (tests only: 2 = plain
// TF32, hi x hi); returns the previous value.
DCN_EXPORT int dcn_emu_set_split_terms_skipped(int skipped) {
    const int old = g_split_terms_skipped;
    g_split_terms_skipped = skipped >= 0 && skipped < 3 ? skipped : 0;
    return old;
}

// 3xTF32's GEMMs accumulate by the tensor-core model of TcAccumulation (block_k > 0) or in IEEE float
// (block_k 0, the default); extra_bits below float's 24. Returns the previous block_k.
DCN_EXPORT int dcn_emu_set_tc_accumulation(int block_k, int extra_bits) {
    const int old = g_tc_accumulation.block_k;
    g_tc_accumulation.block_k = block_k > 0 ? block_k : 0;
    g_tc_accumulation.extra_bits = extra_bits > 0 ? extra_bits : 0;
    return old;
}

// tc_block itself: acc + terms[0 .. n) by the tensor-core model (tests of the model).
DCN_EXPORT float dcn_emu_tc_block(float acc, const double* terms, int n, int extra_bits) {
    return tc_block(acc, terms, n, extra_bits);
}

// split_tf32_thread over n floats (one grid as the launcher starts it).
DCN_EXPORT void dcn_emu_split_tf32(const float* src, int64_t n, float* hi, float* lo) {
    emulate_grid<int64_t>(n, 0, [&](int64_t tid, int64_t nt) { launch::split_tf32_thread<int64_t>(tid, nt, n, src, hi, lo); });
}

// The items the im2col plan aims at (0: launch::kIm2colTargetItems); returns the previous value.
DCN_EXPORT int64_t dcn_emu_set_im2col_target(int64_t items) {
    const int64_t old = g_im2col_target;
    g_im2col_target = items > 0 ? items : launch::kIm2colTargetItems;
    return old;
}

// The workspace plan for a problem of (perImage, N) run in a workspace sized for
// (perImageMax, maxN): out = chunk, columns used, cuBLAS offset, workspace size.
// Returns 0 when the chunk's columns end before the cuBLAS part and that part ends
// inside the workspace.
DCN_EXPORT int dcn_emu_plan(int64_t perImageMax, int64_t maxN, int64_t perImage, int64_t N, int64_t cap,
                                int64_t* out) {
    cap = cap > 0 ? cap : plan::kColumnsCapBytes;
    const int64_t ws = plan::workspace_bytes(perImageMax, maxN, cap);
    const int64_t chunk = plan::chunk_images(perImage, N, cap);
    const int64_t offset = plan::cublas_workspace_offset(perImage, N, cap);
    out[0] = chunk;
    out[1] = chunk * perImage;
    out[2] = offset;
    out[3] = ws;
    // the worst base padding (kAlignBytes - 1) included: any workspace address works
    const bool ok = chunk * perImage <= offset &&
                    plan::kAlignBytes - 1 + offset + plan::kCublasWorkspaceBytes <= ws && offset % plan::kAlignBytes == 0 &&
                    (N == 0 || (chunk >= 1 && chunk <= N));
    bool aligned = true;  // the base the plugin starts at, for workspace addresses of every residue
    for (uintptr_t addr : {uintptr_t(0), uintptr_t(1), uintptr_t(16), uintptr_t(255), uintptr_t(256), uintptr_t(4097)}) {
        const int64_t pad = plan::base_padding(addr);
        aligned = aligned && (addr + static_cast<uintptr_t>(pad)) % plan::kAlignBytes == 0 && pad < plan::kAlignBytes &&
                  pad + offset + plan::kCublasWorkspaceBytes <= ws;
    }
    return ok && aligned ? 0 : 1;
}

DCN_EXPORT int dcn_emu_launch_constants(int64_t* out) {
    out[0] = launch::kThreads;
    out[1] = launch::kMaxBlocks;
    out[2] = plan::kColumnsCapBytes;
    out[3] = plan::kCublasWorkspaceBytes;
    return 0;
}
