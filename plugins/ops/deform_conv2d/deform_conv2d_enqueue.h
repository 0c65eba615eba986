// deform_conv2d_enqueue.h: the DeformConv2d plugin's im2col + GEMM enqueue, one body for the TensorRT
// plugin (deform_conv2d_plugin.cpp: CUDA kernels, cuBLAS, cudaMemcpy2DAsync) and its host emulation
// (deform_conv2d_host_kernels.cpp: the kernels' thread bodies over the grid, a host GEMM), so that the
// order of the calls, their pointers, bias handling, betas and the staged copy the plugin runs are the
// ones the tests run. Host code, no CUDA or cuBLAS includes.
//
// A Backend provides (each returns its status, 0 = fine):
//   int zero(T* y, int64_t n)                                     y[0 .. n) = 0
//   int fill_bias(const T* B, int64_t M, int64_t rows, int64_t ld, T* dst)   rows of ld: B[row % M]
//   int split_weights(const T* W, int64_t n, T* hi, T* lo)        3xTF32's weight halves (float only)
//   int im2col(int64_t n0, int64_t nb, int64_t ld, T* col, T* colLo)         a chunk's columns
//   int gemm(const Gemm& g, const T* a, const T* b, float beta, int term, T* c)
//       term -1: one GEMM (CUBLAS_COMPUTE_32F); 0..2: 3xTF32's kSplitTerms[term] (FAST_TF32)
//   int copy_rows(T* dst, int64_t dpitch, const T* src, int64_t spitch, int64_t width, int64_t rows)
// (pitches and widths in elements); and for the channels-last path (nhwc_enqueue, deform_conv2d_nhwc.h):
//   int tap_major_weights(const T* W, T* wt)                      Wt[m][k][c] = W[m][c][k]
//   int channels_last(int64_t n0, int64_t nb, T* xt)              the chunk's X as [nb][H][W][C]
//   int nhwc_im2col(int64_t n0, int64_t nb, const T* xt, T* col)  the chunk's columns [nb][L][K]
#pragma once

#include "deform_conv2d_plan.h"

#include <cstdint>

namespace dcn {
namespace plan {

// What failed: the backend's status, the step's name, and whether it is a GEMM's (cuBLAS) status.
struct EnqueueStatus {
    int code;
    const char* what;
    bool gemm;
};

// The chunk loop both im2col paths run: the bias broadcast (into Y, or per chunk into the staged rows), then
// prepare(), then per chunk of images [n0, n0 + nb): sample(n0, nb) (the columns), multiply(nb, Yc) (the GEMMs
// into Y's rows of the chunk or the staging), and the staged rows moved into Y. Each step returns its status.
template <class T, class Backend, class Prepare, class Sample, class Multiply>
EnqueueStatus run_chunks(const DeformConvDims& d, const Im2colLayout& lay, int64_t chunk, const T* B, T* Y, T* staging,
                         Backend& be, Prepare&& prepare, Sample&& sample, Multiply&& multiply) {
    int e = 0;
    if (B != nullptr && !lay.staged && (e = be.fill_bias(B, d.M, d.N * d.M, lay.L, Y)) != 0)
        return {e, "bias broadcast kernel launch", false};
    EnqueueStatus st = prepare();
    if (st.code != 0) return st;
    const int64_t outImage = d.M * lay.L;
    for (int64_t n0 = 0; n0 < d.N; n0 += chunk) {
        const int64_t nb = d.N - n0 < chunk ? d.N - n0 : chunk;
        if ((st = sample(n0, nb)).code != 0) return st;
        if (B != nullptr && lay.staged && (e = be.fill_bias(B, d.M, nb * d.M, lay.ld, staging)) != 0)
            return {e, "bias broadcast kernel launch", false};
        if ((st = multiply(nb, lay.staged ? staging : Y + n0 * outImage)).code != 0) return st;
        if (lay.staged && (e = be.copy_rows(Y + n0 * outImage, lay.L, staging, lay.ld, lay.L, nb * d.M)) != 0)
            return {e, "output copy (cudaMemcpy2DAsync)", false};
    }
    return {0, nullptr, false};
}

// The im2col path for dims d: Y = conv(X, W) (+ B), columns and GEMMs in the workspace from `base`
// (256-byte aligned) as `parts` (im2col_parts of d: its chunks; 3xTF32 when parts.split, float only) lays it out.
template <class T, class Backend>
EnqueueStatus im2col_enqueue(const DeformConvDims& d, const Im2colParts& parts, const T* W, const T* B, T* Y,
                             char* base, Backend& be) {
    if (bias_only(d)) {  // no input channels: Y = B broadcast, or zeros (cuBLAS refuses k = 0 with ldb = 0)
        const int64_t L = d.outH * d.outW;
        const int e = B != nullptr ? be.fill_bias(B, d.M, d.N * d.M, L, Y) : be.zero(Y, d.N * d.M * L);
        return {e, "output for no input channels (bias or zeros)", false};
    }
    const Im2colLayout& lay = parts.lay;
    const bool split = parts.split;
    T* col = reinterpret_cast<T*>(base);
    T* staging = reinterpret_cast<T*>(base + parts.stagingAt);  // the GEMM's output rows of ld when ld != L
    T* colLo = split ? reinterpret_cast<T*>(base + parts.colLoAt) : nullptr;
    T* wHi = reinterpret_cast<T*>(base + parts.weightsAt);
    T* wLo = wHi + split_weight_lo_offset(d);
    const float beta = B != nullptr ? 1.f : 0.f;
    return run_chunks<T>(
        d, lay, parts.chunk, B, Y, staging, be,
        [&]() -> EnqueueStatus {
            return {split ? be.split_weights(W, weight_elems(d), wHi, wLo) : 0, "3xTF32 weight split kernel launch",
                    false};
        },
        [&](int64_t n0, int64_t nb) -> EnqueueStatus {
            return {be.im2col(n0, nb, lay.ld, col, colLo), "deformable im2col kernel launch", false};
        },
        [&](int64_t nb, T* Yc) -> EnqueueStatus {
            int e = 0;
            for_each_gemm(d, lay, nb, [&](const Gemm& g) {
                if (e != 0) return;
                if (!split) {
                    e = be.gemm(g, col, W, beta, -1, Yc);
                    return;
                }
                for (int t = 0; t < 3 && e == 0; ++t) {
                    const SplitOperands<T> o = split_operands<T>(kSplitTerms[t], col, colLo, wHi, wLo, beta);
                    e = be.gemm(g, o.columns, o.weights, o.beta, t, Yc);
                }
            });
            return {e, "cublasGemmStridedBatchedEx", true};
        });
}

// The channels-last im2col path (nhwc::applicable(d, ...) holds, so C > 0): Y = conv(X, W) (+ B), its
// parts in the workspace from `base` (256-byte aligned) as `parts` (nhwc_parts of d) lays them out.
template <class T, class Backend>
EnqueueStatus nhwc_enqueue(const DeformConvDims& d, const NhwcParts& parts, const T* W, const T* B, T* Y, char* base,
                           Backend& be) {
    T* col = reinterpret_cast<T*>(base);
    T* staging = reinterpret_cast<T*>(base + parts.stagingAt);
    T* xt = reinterpret_cast<T*>(base + parts.xtAt);
    T* wt = reinterpret_cast<T*>(base + parts.weightsAt);
    const float beta = B != nullptr ? 1.f : 0.f;
    return run_chunks<T>(
        d, parts.lay.lay, parts.chunk, B, Y, staging, be,
        [&]() -> EnqueueStatus { return {be.tap_major_weights(W, wt), "tap-major weight copy kernel launch", false}; },
        [&](int64_t n0, int64_t nb) -> EnqueueStatus {
            const int e = be.channels_last(n0, nb, xt);
            if (e != 0) return {e, "channels-last copy kernel launch", false};
            return {be.nhwc_im2col(n0, nb, xt, col), "channels-last deformable im2col kernel launch", false};
        },
        [&](int64_t nb, T* Yc) -> EnqueueStatus {
            return {be.gemm(nhwc_gemm(d, parts.lay, nb), col, wt, beta, -1, Yc), "cublasGemmStridedBatchedEx", true};
        });
}

}  // namespace plan
}  // namespace dcn
